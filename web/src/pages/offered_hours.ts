// #/offered-hours (the signed-in user's own) and #/admin/offered-hours (the tenant default):
// per-day rows of windows (add/remove, keyboard only is fine: native inputs and buttons), date
// overrides, notice, buffers, caps, the time zone; saved with If-Match so a change made elsewhere
// is never overwritten silently; and, for a user, a preview of the next two weeks.

import { ApiError } from "../api";
import type { AvailabilityRules, DayName, OfferedPreview, RulesBody } from "../api";
import { busy, button, type Child, field, focusOn, h, notice, replace, uid } from "../dom";
import { addDays, dayLabel, rangeLabel, ymdKey, ymdOf, zonedToDate } from "../time";
import { type Ctx, errorText, pageHeading } from "../ui";

const DAYS: [DayName, string][] = [
  ["monday", "Monday"],
  ["tuesday", "Tuesday"],
  ["wednesday", "Wednesday"],
  ["thursday", "Thursday"],
  ["friday", "Friday"],
  ["saturday", "Saturday"],
  ["sunday", "Sunday"],
];
const MODES: Record<"off" | "replace" | "add", string> = {
  off: "Day off",
  replace: "Only these hours",
  add: "These hours as well",
};
const FIELD_NAMES: Record<string, string> = {
  timeZone: "Time zone",
  minNoticeMinutes: "Minimum notice",
  bufferBeforeMinutes: "Buffer before",
  bufferAfterMinutes: "Buffer after",
  maxPerDay: "Sessions per day",
  maxPerWeek: "Sessions per week",
};
const PREVIEW_DAYS = 14;

interface WindowState {
  start: string;
  end: string;
  endsNextDay: boolean;
}

interface OverrideState {
  date: string;
  mode: "off" | "replace" | "add";
  windows: WindowState[];
}

interface State {
  timeZone: string;
  weekly: Record<DayName, WindowState[]>;
  overrides: OverrideState[];
  noticeHours: string;
  before: string;
  after: string;
  perDay: string;
  perWeek: string;
  within: boolean;
}

interface Target {
  path: string;
  title: string;
  own: boolean; // the user's own rules (preview, "use the default") rather than the tenant default
}

const ME: Target = { path: "/me/availability-rules", title: "My offered hours", own: true };
const DEFAULT: Target = { path: "/integration/availability-rules/default", title: "Default offered hours", own: false };

export function renderMyOfferedHours(ctx: Ctx, main: HTMLElement): Promise<void> {
  return renderEditor(ctx, main, ME);
}

export async function renderDefaultOfferedHours(ctx: Ctx, main: HTMLElement): Promise<void> {
  if (!ctx.user.isAdmin) {
    replace(main, pageHeading(DEFAULT.title), notice("warning", "Default offered hours need the Integration.Admin role."));
    return;
  }
  return renderEditor(ctx, main, DEFAULT);
}

/** "24:00" has no <input type=time>: an end of 00:00 on the same day means midnight. */
function endForApi(w: WindowState): string {
  return w.end === "00:00" && !w.endsNextDay ? "24:00" : w.end;
}

function stateFrom(doc: AvailabilityRules, zone: string): State {
  const weekly = Object.fromEntries(DAYS.map(([d]) => [d, [] as WindowState[]])) as Record<DayName, WindowState[]>;
  for (const w of doc.weekly ?? []) {
    weekly[w.day].push({ start: w.start, end: w.end === "24:00" ? "00:00" : w.end, endsNextDay: Boolean(w.endsNextDay) });
  }
  return {
    timeZone: doc.timeZone ?? zone,
    weekly,
    overrides: (doc.overrides ?? []).map((o) => ({
      date: o.date,
      mode: o.mode,
      windows: (o.windows ?? []).map((w) => ({ start: w.start, end: w.end === "24:00" ? "00:00" : w.end, endsNextDay: Boolean(w.endsNextDay) })),
    })),
    noticeHours: doc.minNoticeMinutes ? String(Math.round((doc.minNoticeMinutes / 60) * 100) / 100) : "0",
    before: String(doc.bufferBeforeMinutes ?? 0),
    after: String(doc.bufferAfterMinutes ?? 0),
    perDay: doc.maxPerDay != null ? String(doc.maxPerDay) : "",
    perWeek: doc.maxPerWeek != null ? String(doc.maxPerWeek) : "",
    within: doc.withinWorkingHours ?? true,
  };
}

function integer(text: string, fallback: number): number {
  const value = Number(text.trim());
  return text.trim() === "" || !Number.isFinite(value) ? fallback : Math.round(value);
}

function bodyOf(state: State): RulesBody {
  return {
    timeZone: state.timeZone.trim(),
    weekly: DAYS.flatMap(([day]) => state.weekly[day].map((w) => ({ day, start: w.start, end: endForApi(w), endsNextDay: w.endsNextDay }))),
    overrides: state.overrides.map((o) => ({
      date: o.date,
      mode: o.mode,
      windows: o.mode === "off" ? [] : o.windows.map((w) => ({ start: w.start, end: endForApi(w), endsNextDay: w.endsNextDay })),
    })),
    minNoticeMinutes: Math.round(Number(state.noticeHours || "0") * 60) || 0,
    bufferBeforeMinutes: integer(state.before, 0),
    bufferAfterMinutes: integer(state.after, 0),
    maxPerDay: state.perDay.trim() === "" ? null : integer(state.perDay, 0),
    maxPerWeek: state.perWeek.trim() === "" ? null : integer(state.perWeek, 0),
    withinWorkingHours: state.within,
  };
}

function zones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  try {
    return intl.supportedValuesOf?.("timeZone") ?? [];
  } catch {
    return [];
  }
}

async function renderEditor(ctx: Ctx, main: HTMLElement, target: Target): Promise<void> {
  const [doc, myZone] = await Promise.all([ctx.api.get<AvailabilityRules>(target.path), ctx.timeZone()]);
  let etag = doc.etag ?? null;
  let source = doc.source;
  const state = stateFrom(doc, myZone);
  const message = h("div", { id: "offered-message" });
  const form = h("form", { class: "offered-form", "aria-label": target.title, novalidate: true });
  const preview = h("section", { class: "card", "aria-labelledby": "preview-title" });
  const sourceNote = h("div");

  const showSource = () => {
    const text = target.own
      ? source === "own"
        ? "These are your own offered hours. Others can book you only inside them (and only when your calendar is free)."
        : source === "default"
          ? "You have not set your own hours, so your organisation's default applies. Saving here makes them your own."
          : "You offer all your free time in your working hours. Add windows to offer only some of it."
      : source === "default"
        ? "These hours apply to everyone in your organisation who has not set their own. A person's own hours replace them entirely."
        : "There is no default: people without their own offered hours offer all their free working time.";
    replace(sourceNote, notice("info", text));
  };

  // -- the form, rebuilt from `state` whenever rows are added or removed ----------------------
  type Focus = () => HTMLElement | null | undefined;
  const timeInput = (w: WindowState, key: "start" | "end", label: string): HTMLElement => {
    const input = h("input", { type: "time", value: w[key], required: true, step: "300" });
    input.addEventListener("input", () => (w[key] = input.value));
    return field(label, input);
  };

  const windowRow = (list: WindowState[], index: number, what: string, loc: string, addId: string): HTMLElement => {
    const w = list[index]!;
    const next = h("input", { type: "checkbox", id: uid("next"), checked: w.endsNextDay });
    next.addEventListener("change", () => (w.endsNextDay = next.checked));
    const label = `${what} window ${index + 1}`;
    return h(
      "li",
      { class: "window-row", "data-loc": loc },
      h("span", { class: "window-name" }, label),
      timeInput(w, "start", "From"),
      timeInput(w, "end", "To"),
      h("div", { class: "choice" }, next, h("label", { for: next.id }, "ends the next day")),
      button(`Remove ${label}`, () => {
        list.splice(index, 1);
        build(() => form.querySelector<HTMLElement>(`#${addId}`));
      }, { class: "link remove" }),
    );
  };
  const lastWindow = (scope: string): Focus => () =>
    form.querySelector<HTMLElement>(`${scope} .window-row:last-child input[type=time]`);

  const build = (focus?: Focus) => {
    let weeklyIndex = 0;
    const days = DAYS.map(([day, name]) => {
      const list = state.weekly[day];
      const addId = `add-${day}`;
      const rows = list.map((_, i) => windowRow(list, i, name, `weekly.${weeklyIndex++}`, addId));
      return h(
        "fieldset",
        { class: "day-rules", "data-day": day },
        h("legend", null, name),
        rows.length ? h("ol", { class: "windows" }, rows) : h("p", { class: "hint" }, "Not offered"),
        button(`Add a window on ${name}`, () => {
          const last = list[list.length - 1];
          list.push(last && last.end < "23:00" && !last.endsNextDay && last.end !== "00:00"
            ? { start: last.end, end: last.end < "22:00" ? `${String(Number(last.end.slice(0, 2)) + 1).padStart(2, "0")}${last.end.slice(2)}` : "23:30", endsNextDay: false }
            : { start: "09:00", end: "17:00", endsNextDay: false });
          build(lastWindow(`fieldset[data-day="${day}"]`));
        }, { id: addId, class: "add" }),
      );
    });

    const overrides = state.overrides.map((o, i) => {
      const what = `Date ${i + 1}`;
      const addId = `add-date-${i}`;
      const date = h("input", { type: "date", value: o.date, required: true, id: `date-${i}` });
      date.addEventListener("input", () => (o.date = date.value));
      const mode = h("select", { id: `mode-${i}` }, Object.entries(MODES).map(([value, text]) => h("option", { value, selected: value === o.mode }, text)));
      mode.addEventListener("change", () => {
        o.mode = mode.value as OverrideState["mode"];
        if (o.mode !== "off" && !o.windows.length) o.windows.push({ start: "09:00", end: "17:00", endsNextDay: false });
        build(() => form.querySelector<HTMLElement>(`#mode-${i}`));
      });
      const windows = o.mode === "off"
        ? null
        : h("ol", { class: "windows" }, o.windows.map((_, n) => windowRow(o.windows, n, what, `overrides.${i}.windows.${n}`, addId)));
      return h(
        "li",
        { class: "override", "data-loc": `overrides.${i}` },
        h("div", { class: "override-head" }, field(what, date), field("What happens", mode)),
        windows,
        o.mode === "off" ? null : button(`Add a window on date ${i + 1}`, () => {
          o.windows.push({ start: "09:00", end: "17:00", endsNextDay: false });
          build(lastWindow(`li[data-loc="overrides.${i}"]`));
        }, { id: addId, class: "add" }),
        button(`Remove date ${i + 1}`, () => {
          state.overrides.splice(i, 1);
          build(() => form.querySelector<HTMLElement>("#add-override"));
        }, { class: "link remove" }),
      );
    });

    const tz = h("input", { type: "text", id: "rules-zone", value: state.timeZone, list: "zone-list", autocomplete: "off", required: true });
    tz.addEventListener("input", () => (state.timeZone = tz.value));
    const number = (key: "noticeHours" | "before" | "after" | "perDay" | "perWeek", label: string, hint: string, attrs: Record<string, string>) => {
      const input = h("input", { type: "number", value: state[key], inputmode: "numeric", ...attrs });
      input.addEventListener("input", () => (state[key] = input.value));
      return field(label, input, hint);
    };
    const within = h("input", { type: "checkbox", id: "rules-within", checked: state.within });
    within.addEventListener("change", () => (state.within = within.checked));
    const save = h("button", { type: "submit", class: "primary" }, "Save offered hours");
    const remove: HTMLButtonElement | null = (target.own ? source === "own" : source === "default")
      ? button(target.own ? "Use my organisation's default instead" : "Remove the default", () => void removeRules(remove), { class: "danger" })
      : null;

    replace(
      form,
      h("section", { class: "card" },
        field("Time zone", tz, "Every time and date below is in this zone; on days the clocks change, the times stay the same on the clock."),
        h("datalist", { id: "zone-list" }, zones().map((z) => h("option", { value: z }))),
      ),
      h("section", { class: "card", "aria-labelledby": "weekly-title" },
        h("h2", { id: "weekly-title" }, "Every week"),
        h("p", { class: "hint" }, "Windows you offer on each day. A window that runs past midnight belongs to the day it starts. An end of 00:00 means midnight."),
        h("div", { class: "week-rules" }, days),
      ),
      h("section", { class: "card", "aria-labelledby": "dates-title" },
        h("h2", { id: "dates-title" }, "Dates that differ"),
        h("p", { class: "hint" }, "A day off, other hours, or extra hours on a date. A day off also ends the previous night's window at midnight."),
        overrides.length ? h("ol", { class: "overrides" }, overrides) : h("p", { class: "hint" }, "None"),
        button("Add a date", () => {
          state.overrides.push({ date: ymdKey(addDays(ymdOf(new Date(), state.timeZone || myZone), 7)), mode: "off", windows: [] });
          build(() => form.querySelector<HTMLElement>(`#date-${state.overrides.length - 1}`));
        }, { id: "add-override", class: "add" }),
      ),
      h("section", { class: "card", "aria-labelledby": "limits-title" },
        h("h2", { id: "limits-title" }, "Limits"),
        h("div", { class: "limits" },
          number("noticeHours", "Minimum notice (hours)", "Nobody can book a time starting sooner than this.", { min: "0", max: "720", step: "0.25", id: "rules-notice" }),
          number("before", "Buffer before (minutes)", "Free time kept before each session.", { min: "0", max: "240", step: "5", id: "rules-before" }),
          number("after", "Buffer after (minutes)", "Free time kept after each session.", { min: "0", max: "240", step: "5", id: "rules-after" }),
          number("perDay", "Sessions per day (at most)", "Empty: no limit.", { min: "1", max: "24", id: "rules-per-day" }),
          number("perWeek", "Sessions per week (at most)", "Weeks start on Monday. Empty: no limit.", { min: "1", max: "100", id: "rules-per-week" }),
        ),
        h("div", { class: "choice" }, within, h("label", { for: "rules-within" }, "Only inside my working hours (untick to offer evenings or weekends)")),
      ),
      h("div", { class: "actions" }, save, remove),
    );
    if (focus) focusOn(focus() ?? null);
  };

  const FIELD_IDS: Record<string, string> = {
    timeZone: "rules-zone",
    minNoticeMinutes: "rules-notice",
    bufferBeforeMinutes: "rules-before",
    bufferAfterMinutes: "rules-after",
    maxPerDay: "rules-per-day",
    maxPerWeek: "rules-per-week",
  };
  /** The list of problems a 422 names, each marked on its control (aria-invalid). */
  const problems = (e: ApiError): Child[] => {
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    const fields = (e.details?.fields as { loc: (string | number)[]; msg: string }[] | undefined) ?? [];
    const flat = DAYS.flatMap(([day, name]) => state.weekly[day].map((_, i) => `${name} window ${i + 1}`));
    const describe = (loc: (string | number)[]): string => {
      const [, where, index, , n] = loc;
      const path = loc.slice(1).filter((p) => p !== "start" && p !== "end" && p !== "date").join(".");
      const marked = form.querySelector(`[data-loc="${path}"]`) ?? (typeof where === "string" && FIELD_IDS[where]
        ? form.querySelector(`#${FIELD_IDS[where]}`) : null);
      for (const input of marked?.matches("input") ? [marked] : marked?.querySelectorAll(":scope > .field input, :scope > .override-head input") ?? []) {
        input.setAttribute("aria-invalid", "true");
      }
      if (where === "weekly" && typeof index === "number") return flat[index] ?? "A weekly window";
      if (where === "overrides" && typeof index === "number") return `Date ${index + 1}${typeof n === "number" ? `, window ${n + 1}` : ""}`;
      return FIELD_NAMES[String(where)] ?? String(where ?? "");
    };
    return fields.length ? [h("ul", null, fields.map((f) => h("li", null, `${describe(f.loc)}: ${f.msg}`)))] : [];
  };

  const failed = (e: unknown) => {
    if (e instanceof ApiError && e.status === 412) {
      replace(message, notice("warning",
        h("strong", null, "These hours were changed somewhere else "),
        "(in another tab, or by an admin) since you opened this page, so your change was not saved. ",
        button("Reload the latest", () => ctx.refresh(), { class: "link" }),
        " and make your change again."));
    } else if (e instanceof ApiError && e.status === 422) {
      replace(message, notice("error", h("strong", null, "Not saved. "), e.message, ...problems(e)));
    } else {
      replace(message, notice("error", errorText(e)));
    }
    focusOn(message.querySelector<HTMLElement>(".notice"));
  };

  const removeRules = async (btn: HTMLButtonElement | null) => {
    await busy(btn, async () => {
      try {
        await ctx.api.call("DELETE", target.path, undefined, { headers: etag ? { "If-Match": etag } : {} });
        ctx.flash("success", target.own ? "Your own hours are removed; your organisation's default applies." : "The default is removed.");
        ctx.refresh();
      } catch (e) {
        failed(e);
      }
    });
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const submit = form.querySelector<HTMLButtonElement>("button[type=submit]");
    void busy(submit, async () => {
      const headers: Record<string, string> = etag ? { "If-Match": etag } : { "If-None-Match": "*" };
      // The default shown on a user's page is not theirs: saving creates their own (no ETag yet).
      try {
        const saved = await ctx.api.call<AvailabilityRules>("PUT", target.path, bodyOf(state), { headers });
        etag = saved.etag ?? null;
        source = saved.source;
        replace(message, notice("success", h("strong", null, "Saved. "), target.own ? "Others now see only these times when they look for a time with you." : "Everyone without their own hours now uses these."));
        showSource();
        build();
        focusOn(message.querySelector<HTMLElement>(".notice"));
        if (target.own) void loadPreview();
      } catch (e) {
        failed(e);
      }
    });
  });

  // -- the preview: the next two weeks ----------------------------------------------------------
  const loadPreview = async () => {
    const tz = state.timeZone || myZone;
    const from = new Date(Math.ceil(Date.now() / 900_000) * 900_000);
    const to = new Date(from.getTime() + PREVIEW_DAYS * 86_400_000);
    const params = { from: from.toISOString(), to: to.toISOString(), timeZone: tz };
    replace(preview, h("h2", { id: "preview-title" }, "The next two weeks"), h("p", { class: "hint", role: "status" }, "Loading…"));
    let result: OfferedPreview;
    try {
      result = await ctx.api.get<OfferedPreview>(`${target.path}/preview?${new URLSearchParams({ ...params, durationMinutes: "30" })}`);
    } catch {
      try {
        // Without a readable calendar (not connected yet): the offered windows alone.
        result = await ctx.api.get<OfferedPreview>(`${target.path}/preview?${new URLSearchParams({ from: params.from, to: params.to })}`);
      } catch (e) {
        replace(preview, h("h2", { id: "preview-title" }, "The next two weeks"), notice("error", errorText(e)));
        return;
      }
    }
    if (result.source === "none") {
      replace(preview, h("h2", { id: "preview-title" }, "The next two weeks"), h("p", null, "You have no offered hours: others see all your free time in your working hours."));
      return;
    }
    const days = new Map<string, { label: string; windows: string[]; slots: number }>();
    const dayOf = (iso: string) => {
      const date = new Date(iso);
      const key = ymdKey(ymdOf(date, tz));
      if (!days.has(key)) days.set(key, { label: dayLabel(zonedToDate(ymdOf(date, tz), 12, 0, tz), tz), windows: [], slots: 0 });
      return days.get(key)!;
    };
    for (const o of result.offered) dayOf(o.start).windows.push(rangeLabel(new Date(o.start), new Date(o.end), tz));
    for (const s of result.slots ?? []) dayOf(s.start).slots += 1;
    const items = [...days.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, d]) =>
      h("li", { class: "preview-day", "data-date": key },
        h("strong", null, d.label), " ", d.windows.join(", ") || "(no offered window starts this day)",
        result.slots ? h("span", { class: "hint" }, ` — ${d.slots} bookable 30-minute ${d.slots === 1 ? "time" : "times"}`) : null),
    );
    replace(
      preview,
      h("h2", { id: "preview-title" }, "The next two weeks"),
      h("p", { class: "hint" }, result.slots
        ? `Offered windows in ${tz}, and how many 30-minute times in them your calendar leaves free.`
        : `Offered windows in ${tz}; your busy time will be taken out of them.`),
      items.length ? h("ul", { class: "preview-list" }, items) : h("p", null, "Nothing is offered in the next two weeks."),
    );
  };

  showSource();
  build();
  replace(main, pageHeading(target.title), message, sourceNote, form, target.own ? preview : null);
  if (target.own) await loadPreview();
}

// Recurring sessions in the console: the repeat control of the booking dialog (rule in Graph's
// patternedRecurrence terms), the per-occurrence check before booking, and the series cards of
// My sessions (expand to occurrences; cancel one, cancel from here, cancel all; reschedule one).

import { ApiError, WriteIntent } from "./api";
import type { Session } from "./api";
import { badge, busy, button, type Child, field, h, notice, replace } from "./dom";
import { addDays, longDayLabel, parseYmd, rangeLabel, ymdKey, ymdOf } from "./time";
import { type Ctx, errorText, modal, RESPONSES, sleep } from "./ui";

export type Repeat = "none" | "weekly" | "biweekly" | "monthlyDate" | "monthlyNth" | "monthlyLast";
export type OnConflict = "fail" | "skipClashing" | "bookAnyway";

export interface Recurrence {
  pattern: { type: string; interval: number; daysOfWeek?: string[]; dayOfMonth?: number; index?: string };
  range: { type: "numbered" | "endDate"; startDate: string; numberOfOccurrences?: number; endDate?: string };
}

export interface SeriesCheck {
  timeZone: string;
  clashing: number;
  scheduleCalls: number;
  occurrences: { index: number; start: string; end: string; free: boolean; clashesWith: { role: string; user: string }[] }[];
  suggestions: { start: string; end: string; shiftMinutes: number; clashing: number }[];
}

export interface Occurrence {
  id?: string | null;
  index: number;
  status: Session["status"];
  start: string;
  end: string;
  originalStart: string;
  attendees: { user: string; response: string }[];
  room?: { email: string; response: string } | null;
  source: "platform" | "outlook";
  seriesNote?: string | null;
  pendingChange?: string | null;
}

export interface SeriesView {
  id: string;
  status: Session["status"];
  organizer: string;
  attendees: { user: string; response: string }[];
  recurrence: Recurrence;
  timeZone: string;
  start: string;
  end: string;
  joinUrl?: string | null;
  source: "platform" | "outlook";
  seriesNote?: string | null;
  pendingChange?: string | null;
  failureReason?: string | null;
  cancelledFrom?: string | null;
  occurrences: Occurrence[];
}

export interface SeriesSummary {
  id: string;
  status: Session["status"];
  organizer: string;
  attendees: { user: string; response: string }[];
  recurrence: Recurrence;
  timeZone: string;
  start: string;
  pendingChange?: string | null;
  cancelledFrom?: string | null;
}

const DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
const ORDINALS = ["first", "second", "third", "fourth"];
const ROLE_WORDS: Record<string, string> = { organizer: "you", attendee: "your partner", room: "the room" };

function weekdayOf(start: Date, tz: string): { day: string; nth: number; last: boolean; date: number } {
  const ymd = ymdOf(start, tz);
  const weekday = new Date(Date.UTC(ymd.year, ymd.month - 1, ymd.day)).getUTCDay();
  const next = addDays(ymd, 7);
  return { day: DAYS[weekday] ?? "monday", nth: Math.ceil(ymd.day / 7), last: next.month !== ymd.month, date: ymd.day };
}

/** The repeat choices the start allows (monthly by weekday names the start's own Nth or last weekday). */
export function repeatChoices(start: Date, tz: string): [Repeat, string][] {
  const w = weekdayOf(start, tz);
  const dayName = w.day[0]?.toUpperCase() + w.day.slice(1);
  const out: [Repeat, string][] = [
    ["none", "Does not repeat"],
    ["weekly", `Weekly on ${dayName}`],
    ["biweekly", `Every 2 weeks on ${dayName}`],
    ["monthlyDate", `Monthly on day ${w.date}`],
  ];
  if (w.nth <= 4) out.push(["monthlyNth", `Monthly on the ${ORDINALS[w.nth - 1]} ${dayName}`]);
  if (w.last) out.push(["monthlyLast", `Monthly on the last ${dayName}`]);
  return out;
}

/** Graph's patternedRecurrence for a repeat choice starting at ``start`` (its date in ``tz``). */
export function buildRecurrence(repeat: Repeat, start: Date, tz: string, ends: { count?: number; until?: string }): Recurrence | null {
  if (repeat === "none") return null;
  const w = weekdayOf(start, tz);
  const pattern: Recurrence["pattern"] =
    repeat === "weekly" ? { type: "weekly", interval: 1, daysOfWeek: [w.day] }
    : repeat === "biweekly" ? { type: "weekly", interval: 2, daysOfWeek: [w.day] }
    : repeat === "monthlyDate" ? { type: "absoluteMonthly", interval: 1, dayOfMonth: w.date }
    : { type: "relativeMonthly", interval: 1, daysOfWeek: [w.day], index: repeat === "monthlyLast" ? "last" : ORDINALS[w.nth - 1] ?? "first" };
  const startDate = ymdKey(ymdOf(start, tz));
  const range: Recurrence["range"] = ends.until
    ? { type: "endDate", startDate, endDate: ends.until }
    : { type: "numbered", startDate, numberOfOccurrences: ends.count ?? 12 };
  return { pattern, range };
}

/** A rule in words: "Weekly on Tuesday, 12 times", "Monthly on the last Friday, until 2026-06-30". */
export function describeRecurrence(r: Recurrence): string {
  const p = r.pattern;
  const day = (p.daysOfWeek ?? [])[0] ?? "";
  const dayName = day ? day[0]?.toUpperCase() + day.slice(1) : "";
  const how =
    p.type === "weekly" ? (p.interval === 1 ? `Weekly on ${dayName}` : `Every ${p.interval} weeks on ${dayName}`)
    : p.type === "absoluteMonthly" ? `Monthly on day ${p.dayOfMonth}`
    : p.type === "relativeMonthly" ? `Monthly on the ${p.index} ${dayName}`
    : p.type === "daily" ? (p.interval === 1 ? "Daily" : `Every ${p.interval} days`)
    : p.type;
  const until = r.range.type === "endDate" ? `until ${r.range.endDate}` : `${r.range.numberOfOccurrences} times`;
  return `${how}, ${until}`;
}

/** The repeat and end fields of the booking dialog; ``read`` gives the rule (or null), ``onChange`` fires on edits. */
export function repeatControls(start: Date, tz: string, onChange: () => void): { nodes: Child[]; read: () => Recurrence | null; error: () => string | null } {
  const repeat = h("select", { id: "repeat", name: "repeat" }, repeatChoices(start, tz).map(([v, label]) => h("option", { value: v }, label)));
  const endsKind = h("select", { id: "ends", name: "ends" }, h("option", { value: "count" }, "After a number of sessions"), h("option", { value: "date" }, "On a date"));
  const count = h("input", { type: "number", id: "count", name: "count", min: "2", max: "104", value: "12", inputmode: "numeric" });
  const until = h("input", { type: "date", id: "until", name: "until", value: ymdKey(addDays(ymdOf(start, tz), 7 * 11)) });
  const countField = field("Number of sessions", count, "Up to 104 sessions within two years.");
  const untilField = field("Last date", until);
  const endsBox = h("fieldset", { class: "repeat-ends", hidden: true }, h("legend", null, "Ends"), field("Ends", endsKind), countField, untilField);
  const sync = (initial = false) => {
    endsBox.hidden = repeat.value === "none";
    countField.hidden = endsKind.value !== "count";
    untilField.hidden = endsKind.value !== "date";
    if (!initial) onChange();
  };
  for (const el of [repeat, endsKind, count, until]) el.addEventListener("change", () => sync());
  count.addEventListener("input", onChange);
  sync(true);
  return {
    nodes: [field("Repeat", repeat), endsBox],
    read: () =>
      buildRecurrence(repeat.value as Repeat, start, tz, endsKind.value === "count" ? { count: Number(count.value) } : { until: until.value }),
    error: () => {
      if (repeat.value === "none") return null;
      if (endsKind.value === "count" && !(Number(count.value) >= 2 && Number(count.value) <= 104)) return "Choose 2 to 104 sessions.";
      if (endsKind.value === "date" && !parseYmd(until.value)) return "Choose the last date.";
      return null;
    },
  };
}

/** The per-occurrence answer of POST /availability/series, with the skip / book anyway choice when something clashes. */
export function renderCheck(target: HTMLElement, check: SeriesCheck, tz: string, choose: (c: OnConflict) => void, move: (start: string) => void): void {
  const rows = check.occurrences.map((o) =>
    h(
      "li",
      { class: o.free ? "occurrence free" : "occurrence clash", "data-index": String(o.index), "data-free": String(o.free) },
      h("span", { class: "occurrence-when" }, `${o.index}. ${longDayLabel(new Date(o.start), tz)}, ${rangeLabel(new Date(o.start), new Date(o.end), tz)}`),
      " ",
      o.free ? badge("Free", "ok") : badge(`Not free for ${o.clashesWith.map((c) => ROLE_WORDS[c.role] ?? c.role).join(", ")}`, "bad"),
    ),
  );
  const parts: Child[] = [
    h("p", { class: "check-summary", role: "status" }, check.clashing ? `${check.clashing} of ${check.occurrences.length} dates are not free.` : `All ${check.occurrences.length} dates are free.`),
    h("ol", { class: "occurrences", "aria-label": "Dates of the series" }, rows),
  ];
  if (check.clashing) {
    const skip = h("input", { type: "radio", name: "onConflict", id: "conflict-skip", value: "skipClashing", checked: true });
    const anyway = h("input", { type: "radio", name: "onConflict", id: "conflict-anyway", value: "bookAnyway" });
    const pick = () => choose(anyway.checked ? "bookAnyway" : "skipClashing");
    skip.addEventListener("change", pick);
    anyway.addEventListener("change", pick);
    parts.push(
      h(
        "fieldset",
        { class: "conflict-choice" },
        h("legend", null, "Dates that are not free"),
        h("div", { class: "choice" }, skip, h("label", { for: "conflict-skip" }, "Skip them (they show as cancelled in the series)")),
        h("div", { class: "choice" }, anyway, h("label", { for: "conflict-anyway" }, "Book them anyway")),
      ),
    );
    for (const s of check.suggestions.filter((x) => x.clashing === 0).slice(0, 2)) {
      const label = `Move every session to ${rangeLabel(new Date(s.start), new Date(s.end), tz)} (all free)`;
      parts.push(button(label, () => move(s.start), { class: "suggestion" }));
    }
    choose("skipClashing");
  } else {
    choose("fail");
  }
  replace(target, parts);
}

/** After the 202: poll the series until Outlook has it (booked) or it failed. */
export async function followSeries(ctx: Ctx, id: string, message: HTMLElement, what: string): Promise<void> {
  replace(message, notice("info", `Booking ${what}…`));
  const deadline = Date.now() + 90_000;
  let series: SeriesView | null = null;
  while (Date.now() < deadline) {
    series = await ctx.api.get<SeriesView>(`/series/${encodeURIComponent(id)}`);
    if (series.status !== "pending") break;
    await sleep(1000);
  }
  if (series?.status === "booked") {
    const booked = series.occurrences.filter((o) => o.status === "booked").length;
    const skipped = series.occurrences.length - booked;
    replace(
      message,
      notice(
        "success",
        h("strong", null, "Booked. "),
        `${what}: one series in your Outlook calendar, ${booked} sessions${skipped ? ` (${skipped} skipped)` : ""}. `,
        h("a", { href: "#/sessions" }, "See my sessions"),
      ),
    );
  } else if (series?.status === "failed") {
    replace(message, notice("error", `The series could not be booked${series.failureReason ? `: ${series.failureReason.replace(/_/g, " ")}` : ""}.`));
  } else {
    replace(message, notice("info", "Your series is still being booked. ", h("a", { href: "#/sessions" }, "Follow it on My sessions")));
  }
}

// --- My sessions ----------------------------------------------------------------------------------

export function seriesCard(
  ctx: Ctx,
  s: SeriesSummary,
  occurrences: Session[],
  tz: string,
  who: (user: string) => string,
  occurrenceCard: (session: Session, extra: Child) => HTMLElement,
  message: HTMLElement,
  reload: () => void,
): HTMLElement {
  const organizer = s.organizer === ctx.user.oid;
  const partner = s.attendees.map((a) => who(a.user)).join(", ");
  const active = s.status === "booked" || s.status === "pending";
  const statusBadge =
    s.status === "booked" ? badge(s.cancelledFrom ? `Booked until ${s.cancelledFrom}` : "Booked", "ok")
    : s.status === "pending" ? badge("Booking…", "info")
    : s.status === "failed" ? badge("Failed", "bad")
    : badge("Cancelled", "neutral");
  const items = occurrences.map((o) =>
    h(
      "li",
      null,
      occurrenceCard(
        o,
        organizer && o.status === "booked" && new Date(o.start).getTime() > Date.now() && active
          ? button("Cancel from here", () => cancelSeries(ctx, s, tz, message, reload, o), { "data-focus-key": `${o.id}:from`, "aria-label": `Cancel this and every later session, from ${longDayLabel(new Date(o.start), tz)}` })
          : null,
      ),
    ),
  );
  return h(
    "article",
    { class: `series series-${s.status}`, "data-series-id": s.id, "data-status": s.status, "aria-labelledby": `r-${s.id}` },
    h("h2", { id: `r-${s.id}`, class: "session-title" }, `Series with ${organizer ? partner : who(s.organizer)}`),
    h("p", { class: "badges" }, statusBadge, s.pendingChange ? [" ", badge("Updating…", "info")] : null),
    h("p", { class: "series-rule" }, `${describeRecurrence(s.recurrence)}, from ${longDayLabel(new Date(s.start), tz)}`),
    h(
      "details",
      { class: "series-occurrences" },
      h("summary", null, `Sessions in these weeks (${occurrences.length})`),
      occurrences.length ? h("ul", { class: "session-list" }, items) : h("p", { class: "hint" }, "None in the weeks shown."),
    ),
    organizer && active && !s.pendingChange
      ? h("div", { class: "actions" }, button("Cancel all", () => cancelSeries(ctx, s, tz, message, reload, null), { class: "danger", "data-focus-key": `${s.id}:all` }))
      : null,
  );
}

function cancelSeries(ctx: Ctx, s: SeriesSummary, tz: string, message: HTMLElement, reload: () => void, from: Session | null): void {
  const fromDay = from ? ymdKey(ymdOf(new Date(from.start), s.timeZone)) : null;
  modal(from ? "Cancel from this session on?" : "Cancel the whole series?", (close) => {
    const comment = h("textarea", { id: "series-comment", rows: "3", maxlength: "1000" });
    const error = h("div");
    const submit = h("button", { type: "submit", class: "danger" }, from ? "Cancel from here" : "Cancel all");
    const intent = new WriteIntent();
    const form = h(
      "form",
      null,
      h("p", null, from ? `Every session of the series from ${longDayLabel(new Date(from.start), tz)} on. Earlier ones stay.` : "Every session that has not started yet. Attendees get Outlook's cancellation."),
      field("Message to the attendees (optional)", comment),
      error,
      h("div", { class: "actions" }, button("Keep them", close), submit),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void busy(submit, async () => {
        const text = comment.value.trim();
        const body: Record<string, string> = {};
        if (text) body.comment = text;
        if (fromDay) body.from = fromDay;
        try {
          await ctx.api.call("DELETE", `/series/${encodeURIComponent(s.id)}`, Object.keys(body).length ? body : undefined, { idempotencyKey: intent.keyFor(body) });
          close();
          replace(message, notice("info", "Cancelling in Outlook…"));
          reload();
          void settled(ctx, s.id, message, from ? "The series was cancelled from that session on." : "The series was cancelled.");
        } catch (e) {
          replace(error, notice("error", e instanceof ApiError ? e.message : errorText(e)));
        }
      });
    });
    return [form];
  });
}

async function settled(ctx: Ctx, id: string, message: HTMLElement, done: string): Promise<void> {
  for (let i = 0; i < 60; i += 1) {
    await sleep(1000);
    if (!message.isConnected) return;
    const s = await ctx.api.get<SeriesView>(`/series/${encodeURIComponent(id)}`).catch(() => null);
    if (s && !s.pendingChange) {
      replace(message, s.status === "failed" ? notice("error", "The change failed.") : notice("success", done));
      return;
    }
  }
}

/** A response badge label for an occurrence's answers (shared words with the sessions page). */
export function responseLabel(r: string): string {
  return RESPONSES[r]?.label ?? r;
}

// #/slots: a week of free slots shared with the chosen partner, in the user's time zone, with
// the user's own calendar as busy blocks, and booking (Teams link toggle, optional room).

import { ApiError, SLOT_TAKEN, WriteIntent } from "../api";
import type { MyEvent, Pairing, Room, Session, Slot } from "../api";
import { badge, busy, button, type Child, field, focusOn, h, notice, replace } from "../dom";
import {
  addDays,
  dayLabel,
  longDayLabel,
  mondayOf,
  rangeLabel,
  ymdKey,
  ymdOf,
  zonedToDate,
  type Ymd,
} from "../time";
import { followSeries, type OnConflict, renderCheck, repeatControls, type SeriesCheck } from "../series";
import { type Ctx, errorText, failureText, modal, pageHeading, sleep, slotTakenText } from "../ui";

interface Partner {
  key: string;
  label: string;
  pairingId?: string;
  email?: string;
}

interface View {
  partner: string;
  duration: number;
  week: number;
}

const VIEW_KEY = "console.slots.view";
const BLOCKING = new Set(["busy", "tentative", "oof", "workingElsewhere"]);
let roomsCache: Promise<Room[]> | null = null;

function loadView(): View {
  try {
    const v = JSON.parse(sessionStorage.getItem(VIEW_KEY) ?? "{}") as Partial<View>;
    return { partner: v.partner ?? "", duration: v.duration ?? 30, week: v.week ?? 0 };
  } catch {
    return { partner: "", duration: 30, week: 0 };
  }
}

export function forgetSlotsView(): void {
  sessionStorage.removeItem(VIEW_KEY);
  roomsCache = null;
}

export async function renderSlots(ctx: Ctx, main: HTMLElement): Promise<void> {
  const [tz, pairings] = await Promise.all([ctx.timeZone(), ctx.api.get<Pairing[]>("/me/pairings")]);
  const partners: Partner[] = pairings
    .filter((p) => p.active)
    .map((p) => {
      const mentor = p.mentor === ctx.user.oid;
      const address = mentor ? p.menteeAddress : p.mentorAddress;
      return { key: `p:${p.pairingId}`, label: `${address} (your ${mentor ? "mentee" : "mentor"})`, pairingId: p.pairingId };
    });
  const view = loadView();
  if (!partners.some((p) => p.key === view.partner)) view.partner = partners[0]?.key ?? "";
  const save = () => sessionStorage.setItem(VIEW_KEY, JSON.stringify(view));

  const message = h("div", { id: "slots-message" });
  const results = h("div", { class: "week", "aria-live": "off" });
  const status = h("p", { class: "live", role: "status", "aria-live": "polite" });

  const partnerSelect = h(
    "select",
    { name: "partner", id: "partner" },
    partners.map((p) => h("option", { value: p.key, selected: p.key === view.partner }, p.label)),
  );
  const emailInput = h("input", { type: "email", name: "partnerEmail", id: "partner-email", autocomplete: "off", placeholder: "name@example.com" });
  const durationSelect = h(
    "select",
    { name: "duration", id: "duration" },
    [30, 45, 60, 90].map((m) => h("option", { value: String(m), selected: m === view.duration }, `${m} minutes`)),
  );
  const prev = button("Previous week", () => {
    view.week = Math.max(0, view.week - 1);
    save();
    void load();
  });
  const next = button("Next week", () => {
    view.week = Math.min(7, view.week + 1);
    save();
    void load();
  });
  const weekLabel = h("p", { class: "week-label", id: "week-label" });
  const findButton = h("button", { type: "submit" }, "Show free times");

  const partnerField = partners.length
    ? field("Schedule with", partnerSelect)
    : field(
        "Schedule with (email)",
        emailInput,
        "You have no pairing yet. Enter a colleague's email, or ask your admin to pair you.",
      );
  const form = h(
    "form",
    { class: "slot-controls", "aria-label": "Find a time" },
    partnerField,
    field("Length", durationSelect),
    partners.length ? null : h("div", { class: "actions" }, findButton),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void load();
  });
  partnerSelect.addEventListener("change", () => {
    view.partner = partnerSelect.value;
    save();
    void load();
  });
  durationSelect.addEventListener("change", () => {
    view.duration = Number(durationSelect.value);
    save();
    void load();
  });

  replace(
    main,
    pageHeading("Find a time"),
    message,
    h("section", { class: "card" }, form, h("p", { class: "hint" }, `Times are shown in your time zone, ${tz}.`)),
    h("nav", { class: "week-nav", "aria-label": "Week" }, prev, weekLabel, next),
    status,
    results,
  );

  const partnerNow = (): Partner | null => {
    if (partners.length) return partners.find((p) => p.key === partnerSelect.value) ?? null;
    const email = emailInput.value.trim();
    return email ? { key: `e:${email}`, label: email, email } : null;
  };

  let generation = 0;
  const load = async () => {
    const mine = ++generation;
    const partner = partnerNow();
    const monday = addDays(mondayOf(new Date(), tz), view.week * 7);
    const weekStart = zonedToDate(monday, 0, 0, tz);
    const weekEnd = zonedToDate(addDays(monday, 7), 0, 0, tz);
    weekLabel.textContent = `Week of ${longDayLabel(weekStart, tz)}`;
    prev.disabled = view.week === 0;
    next.disabled = view.week >= 7;
    if (!partner) {
      replace(results);
      status.textContent = partners.length ? "" : "Enter who you want to meet.";
      return;
    }
    const now = new Date();
    const from = new Date(Math.max(weekStart.getTime(), Math.ceil(now.getTime() / 900000) * 900000));
    results.setAttribute("aria-busy", "true");
    status.textContent = "Looking for free times…";
    try {
      if (weekEnd.getTime() - from.getTime() < view.duration * 60000) {
        replace(results, notice("info", "This week is over. Look at next week."));
        status.textContent = "";
        return;
      }
      const body: Record<string, unknown> = {
        start: from.toISOString(),
        end: weekEnd.toISOString(),
        durationMinutes: view.duration,
        stepMinutes: Math.min(view.duration, 30),
        timeZone: tz,
      };
      if (partner.pairingId) body.pairingId = partner.pairingId;
      else body.participants = [partner.email];
      const [availability, events] = await Promise.all([
        ctx.api.call<{ slots: Slot[] }>("POST", "/availability", body),
        ctx.api
          .get<MyEvent[]>(`/me/events?${new URLSearchParams({ from: weekStart.toISOString(), to: weekEnd.toISOString() })}`)
          .catch(() => [] as MyEvent[]),
      ]);
      if (mine !== generation) return;
      renderWeek(results, monday, tz, availability.slots, events, (slot) => openBooking(ctx, slot, partner, view.duration, tz, message, load));
      const n = availability.slots.length;
      status.textContent = n
        ? `${n} free ${n === 1 ? "time" : "times"} this week with ${partner.label}.`
        : "No time this week is free for both of you within both working days. Try another week or a shorter length.";
    } catch (e) {
      if (mine !== generation) return;
      replace(results, notice("error", explainAvailabilityError(e)));
      status.textContent = "";
    } finally {
      if (mine === generation) results.removeAttribute("aria-busy");
    }
  };
  await load();
}

function explainAvailabilityError(e: unknown): string {
  if (e instanceof ApiError && e.code === "participant_unreachable") {
    return `${e.message} Their calendar cannot be read, so no common time can be shown.`;
  }
  if (e instanceof ApiError && e.code === "participants_not_allowed") {
    return "Your organisation only allows booking with people you are paired with. Ask your admin to pair you.";
  }
  return errorText(e);
}

function renderWeek(
  target: HTMLElement,
  monday: Ymd,
  tz: string,
  slots: Slot[],
  events: MyEvent[],
  book: (slot: Slot) => void,
): void {
  const days: { ymd: Ymd; items: { start: Date; node: HTMLElement }[] }[] = [];
  for (let i = 0; i < 7; i += 1) days.push({ ymd: addDays(monday, i), items: [] });
  const dayOf = (date: Date) => days.find((d) => ymdKey(d.ymd) === ymdKey(ymdOf(date, tz)));
  for (const slot of slots) {
    const start = new Date(slot.start);
    const end = new Date(slot.end);
    const label = rangeLabel(start, end, tz);
    dayOf(start)?.items.push({
      start,
      node: h(
        "li",
        { class: "slot" },
        button(label, () => book(slot), {
          class: "slot-button",
          "aria-label": `Book ${longDayLabel(start, tz)}, ${label}`,
          "data-start": slot.start,
        }),
      ),
    });
  }
  for (const event of events) {
    if (!BLOCKING.has(event.showAs)) continue;
    const start = new Date(event.start);
    const end = new Date(event.end);
    const what = event.isSession ? "Session" : event.subject || "Busy";
    const allDay = end.getTime() - start.getTime() >= 86_400_000;
    dayOf(start)?.items.push({
      start,
      node: h(
        "li",
        { class: `busy busy-${event.showAs}` },
        h("span", { class: "busy-time" }, allDay ? "All day" : rangeLabel(start, end, tz)),
        " ",
        h("span", { class: "busy-what" }, what),
        event.showAs === "tentative" ? [" ", badge("Tentative", "warn")] : null,
      ),
    });
  }
  replace(
    target,
    days.map((d, i) => {
      const noon = zonedToDate(d.ymd, 12, 0, tz);
      if (i >= 5 && !d.items.length) return null; // an empty weekend day is just noise
      d.items.sort((a, b) => a.start.getTime() - b.start.getTime());
      const hasSlots = d.items.some((i) => i.node.classList.contains("slot"));
      return h(
        "section",
        { class: "day", "aria-label": longDayLabel(noon, tz) },
        h("h2", { class: "day-title" }, dayLabel(noon, tz)),
        d.items.length ? h("ul", { class: "day-items" }, d.items.map((i) => i.node)) : null,
        hasSlots ? null : h("p", { class: "hint" }, "No free time"),
      );
    }),
  );
}

function rooms(ctx: Ctx): Promise<Room[]> {
  roomsCache ??= ctx.api.get<Room[]>("/rooms").catch((e) => {
    roomsCache = null;
    throw e;
  });
  return roomsCache;
}

function openBooking(ctx: Ctx, slot: Slot, partner: Partner, duration: number, tz: string, message: HTMLElement, reload: () => Promise<void>): void {
  let start = new Date(slot.start);
  let end = new Date(slot.end);
  let when = `${longDayLabel(start, tz)}, ${rangeLabel(start, end, tz)}`;
  modal("Book a session", (close) => {
    const teams = h("input", { type: "checkbox", id: "teams", name: "teams", checked: true });
    const subject = h("input", { type: "text", id: "subject", name: "subject", maxlength: "255", value: "Mentoring session" });
    const room = h("select", { id: "room", name: "room" }, h("option", { value: "" }, "No room"));
    const roomStatus = h("p", { class: "hint", id: "room-status", role: "status", "aria-live": "polite" }, "Loading rooms…");
    room.setAttribute("aria-describedby", "room-status");
    const error = h("div");
    const submit = h("button", { type: "submit", class: "primary" }, "Book");
    const whenText = h("strong", null, when);
    const intent = new WriteIntent(); // one key per booking: a re-submit after a network error cannot book twice
    // A series: the dates are checked first (which clash, with whom), then booked with the chosen handling.
    let checked: string | null = null;
    let onConflict: OnConflict = "fail";
    const checkBox = h("div", { class: "series-check", "aria-live": "polite" });
    const resetCheck = () => {
      checked = null;
      replace(checkBox);
      submit.textContent = repeat.read() ? "Check the dates" : "Book";
    };
    const repeat = repeatControls(start, tz, resetCheck);
    const form = h(
      "form",
      null,
      h("p", { class: "when" }, whenText, h("br"), `with ${partner.label}`),
      field("Title in Outlook", subject, "Sent to Outlook only; the service does not store it."),
      h("div", { class: "choice" }, teams, h("label", { for: "teams" }, "Add a Microsoft Teams meeting link")),
      field("Room (optional)", room),
      roomStatus,
      repeat.nodes,
      checkBox,
      error,
      h("div", { class: "actions" }, button("Cancel", close), submit),
    );
    void roomAvailability(ctx, room, roomStatus, slot, duration, tz);
    room.addEventListener("change", () => {
      resetCheck();
      const option = room.selectedOptions[0];
      roomStatus.textContent = room.value ? option?.dataset.state === "free" ? "This room is free at that time." : option?.dataset.state === "busy" ? "This room is busy at that time." : "" : "";
    });
    const moveTo = (newStart: string) => {
      start = new Date(newStart);
      end = new Date(start.getTime() + (new Date(slot.end).getTime() - new Date(slot.start).getTime()));
      when = `${longDayLabel(start, tz)}, ${rangeLabel(start, end, tz)}`;
      whenText.textContent = when;
      resetCheck();
      submit.click();
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void busy(submit, async () => {
        const body: Record<string, unknown> = {
          start: start.toISOString(),
          end: end.toISOString(),
          timeZone: tz,
          onlineMeeting: teams.checked,
        };
        if (partner.pairingId) body.pairingId = partner.pairingId;
        else body.partner = partner.email;
        if (room.value) body.room = room.value;
        const recurrence = repeat.read();
        const problem = repeat.error();
        if (problem) {
          replace(error, notice("error", problem));
          return;
        }
        if (recurrence) {
          body.recurrence = recurrence;
          const key = JSON.stringify(body);
          if (checked !== key) {
            try {
              const { onlineMeeting: _teams, ...asked } = body; // the check takes the series, not the meeting options
              const check = await ctx.api.call<SeriesCheck>("POST", "/availability/series", asked);
              renderCheck(checkBox, check, tz, (c) => (onConflict = c), moveTo);
              checked = key;
              replace(error);
              submit.textContent = `Book ${check.occurrences.length - (check.clashing && onConflict === "skipClashing" ? check.clashing : 0)} sessions`;
            } catch (e) {
              replace(error, notice("error", errorText(e)));
            }
            return;
          }
          body.onConflict = onConflict;
        }
        if (subject.value.trim()) body.subject = subject.value.trim();
        try {
          const accepted = await ctx.api.call<{ id: string; seriesId?: string | null }>("POST", "/sessions", body, { idempotencyKey: intent.keyFor(body) });
          close();
          if (accepted.seriesId) await followSeries(ctx, accepted.seriesId, message, `your series from ${when} with ${partner.label}`);
          else await followBooking(ctx, accepted.id, when, partner.label, message);
          await reload();
        } catch (e) {
          if (e instanceof ApiError && e.code === SLOT_TAKEN) {
            const names = new Map([[partner.email?.toLowerCase() ?? "", partner.label]]);
            replace(error, notice("error", h("strong", null, "Slot taken. "), slotTakenText(e.details, names)));
            resetCheck();
            void reload(); // the free slots changed
          } else {
            replace(error, notice("error", e instanceof ApiError && e.status === 409 ? `${e.message} Pick another time.` : errorText(e)));
          }
        }
      });
    });
    return [form];
  });
}

async function roomAvailability(ctx: Ctx, select: HTMLSelectElement, status: HTMLElement, slot: Slot, duration: number, tz: string): Promise<void> {
  try {
    const list = await rooms(ctx);
    if (!list.length) {
      status.textContent = "No rooms are listed for your organisation.";
      return;
    }
    const states = new Map<string, "free" | "busy" | "unknown">();
    for (let i = 0; i < list.length; i += 20) {
      const chunk = list.slice(i, i + 20);
      const found = await ctx.api.call<{ rooms: { email: string; slots: Slot[]; status?: string }[] }>("POST", "/rooms/availability", {
        rooms: chunk.map((r) => r.email),
        start: slot.start,
        end: slot.end,
        durationMinutes: duration,
        timeZone: tz,
      });
      for (const r of found.rooms) {
        const free = r.slots.some((s) => new Date(s.start).getTime() <= new Date(slot.start).getTime() && new Date(s.end).getTime() >= new Date(slot.end).getTime());
        states.set(r.email.toLowerCase(), r.status && r.status !== "ok" ? "unknown" : free ? "free" : "busy");
      }
    }
    for (const r of list) {
      const state = states.get(r.email.toLowerCase()) ?? "unknown";
      const details = [r.capacity ? `${r.capacity} seats` : null, r.building].filter(Boolean).join(", ");
      const label = `${r.displayName}${details ? ` (${details})` : ""}: ${state === "free" ? "free" : state === "busy" ? "busy" : "availability unknown"}`;
      const option = h("option", { value: r.email, disabled: state === "busy" }, label);
      option.dataset.state = state;
      select.append(option);
    }
    const free = [...states.values()].filter((s) => s === "free").length;
    status.textContent = `${free} of ${list.length} rooms are free at that time.`;
  } catch (e) {
    status.textContent = `Rooms are not available: ${errorText(e)}`;
  }
}

/** After the 202: poll the session until Outlook has it (booked) or it failed. */
async function followBooking(ctx: Ctx, id: string, when: string, partner: string, message: HTMLElement): Promise<void> {
  const live = notice("info", `Booking your session on ${when} with ${partner}…`);
  replace(message, live);
  const deadline = Date.now() + 60_000;
  let session: Session | null = null;
  while (Date.now() < deadline) {
    session = await ctx.api.get<Session>(`/sessions/${encodeURIComponent(id)}`);
    if (session.status !== "pending") break;
    await sleep(1000);
  }
  const parts: Child[] = [];
  if (session?.status === "booked") {
    parts.push(
      notice(
        "success",
        h("strong", null, "Booked. "),
        `${when} with ${partner} is in your Outlook calendar. `,
        session.joinUrl ? "It has a Teams link. " : "",
        h("a", { href: "#/sessions" }, "See my sessions"),
      ),
    );
  } else if (session?.status === "failed" && session.failureReason === SLOT_TAKEN) {
    parts.push(notice("error", h("strong", null, "Slot taken. "), `The session could not be booked: ${failureText(session.failureReason)}. Pick another time.`));
  } else if (session?.status === "failed") {
    parts.push(notice("error", `The session could not be booked${session.failureReason ? `: ${failureText(session.failureReason)}` : ""}. Try another time.`));
  } else {
    parts.push(notice("info", "Your session is still being booked. ", h("a", { href: "#/sessions" }, "Follow it on My sessions")));
  }
  replace(message, parts);
  focusOn(message.querySelector<HTMLElement>(".notice"));
}

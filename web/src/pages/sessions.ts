// #/sessions: the caller's sessions with each attendee's RSVP (optional, guest and host marked),
// the room's answer and why an any-of room or host was chosen, Teams link,
// reschedule and cancel (organizer only). Polls quickly while a change is pending and
// slowly otherwise, so moves and answers made in Outlook show up without a reload.

import { ApiError, SLOT_TAKEN, WriteIntent } from "../api";
import type { Pairing, Session } from "../api";
import { badge, busy, button, type Child, field, h, notice, replace } from "../dom";
import { addDays, isoInZone, longDayLabel, minutesBetween, parseYmd, rangeLabel, timeLabel, ymdKey, ymdOf, zonedToDate } from "../time";
import { type SeriesSummary, seriesCard } from "../series";
import { type Ctx, errorText, failureText, modal, pageHeading, RESPONSES, sleep, slotTakenText } from "../ui";

const FAST_MS = 2000;
const SLOW_MS = 10000;

const STATUS_BADGE: Record<Session["status"], [string, "ok" | "warn" | "bad" | "neutral" | "info"]> = {
  pending: ["Booking…", "info"],
  booked: ["Booked", "ok"],
  cancelled: ["Cancelled", "neutral"],
  failed: ["Failed", "bad"],
};

export async function renderSessions(ctx: Ctx, main: HTMLElement): Promise<void> {
  const tz = await ctx.timeZone();
  const names = new Map<string, string>([[ctx.user.oid, "you"]]);
  try {
    for (const p of await ctx.api.get<Pairing[]>("/me/pairings")) {
      names.set(p.mentor, p.mentorAddress);
      names.set(p.mentee, p.menteeAddress);
    }
  } catch {
    // Names fall back to what the session holds.
  }
  const message = h("div", { id: "sessions-message" });
  const live = h("p", { class: "live visually-hidden", role: "status", "aria-live": "polite" });
  const list = h("div", { class: "sessions", id: "sessions-list" });
  const refresh = button("Refresh", () => void load(true));
  replace(
    main,
    pageHeading("My sessions"),
    message,
    h("div", { class: "toolbar" }, h("p", { class: "hint" }, `Times in ${tz}.`), refresh),
    live,
    list,
  );

  let alive = true;
  let timer: number | undefined;
  ctx.onLeave(() => {
    alive = false;
    if (timer !== undefined) clearTimeout(timer);
  });
  let signature = "";
  const today = ymdOf(new Date(), tz);
  const from = zonedToDate(addDays(today, -7), 0, 0, tz);
  const to = zonedToDate(addDays(today, 54), 0, 0, tz);

  const load = async (announce: boolean) => {
    if (timer !== undefined) clearTimeout(timer);
    let sessions: Session[] = [];
    let series: SeriesSummary[] = [];
    try {
      [sessions, series] = await Promise.all([
        ctx.api.get<Session[]>(`/sessions?${new URLSearchParams({ from: from.toISOString(), to: to.toISOString() })}`),
        ctx.api.get<SeriesSummary[]>("/series").catch(() => [] as SeriesSummary[]),
      ]);
    } catch (e) {
      if (!alive) return;
      replace(list, notice("error", errorText(e)));
      timer = window.setTimeout(() => void load(false), SLOW_MS);
      return;
    }
    if (!alive) return;
    const next = JSON.stringify([
      sessions.map((s) => [s.id, s.status, s.start, s.end, s.attendees, s.room, s.pendingChange, s.source, s.seriesNote]),
      series.map((r) => [r.id, r.status, r.pendingChange, r.cancelledFrom, r.recurrence]),
    ]);
    if (next !== signature) {
      const focusKey = (document.activeElement as HTMLElement | null)?.dataset?.focusKey;
      const first = signature === "";
      signature = next;
      renderList(ctx, list, sessions, tz, names, message, () => void load(true), series);
      if (focusKey) list.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
      if (!first) live.textContent = "Your sessions were updated.";
    } else if (announce) {
      live.textContent = "No changes.";
    }
    const pending = sessions.some((s) => s.status === "pending" || s.pendingChange)
      || series.some((r) => r.status === "pending" || r.pendingChange);
    timer = window.setTimeout(() => void load(false), pending ? FAST_MS : SLOW_MS);
  };
  await load(false);
}

function renderList(
  ctx: Ctx,
  list: HTMLElement,
  sessions: Session[],
  tz: string,
  names: Map<string, string>,
  message: HTMLElement,
  reload: () => void,
  series: SeriesSummary[] = [],
): void {
  const now = Date.now();
  // Occurrences of a series show inside their series' card (expand to see them), not one by one.
  const inSeries = new Map<string, Session[]>();
  for (const s of sessions) if (s.seriesId) inSeries.set(s.seriesId, [...(inSeries.get(s.seriesId) ?? []), s]);
  const who = (user: string) => names.get(user) ?? user;
  const shown = series.filter((r) => r.status !== "cancelled" || inSeries.has(r.id));
  const seriesCards = shown.map((r) =>
    h("li", null, seriesCard(ctx, r, (inSeries.get(r.id) ?? []).sort((a, b) => a.start.localeCompare(b.start)), tz, who,
      (o, extra) => card(ctx, o, tz, names, message, reload, extra), message, reload)),
  );
  sessions = sessions.filter((s) => !s.seriesId || !series.some((r) => r.id === s.seriesId));
  const sorted = [...sessions].sort((a, b) => a.start.localeCompare(b.start));
  const upcoming = sorted.filter((s) => s.status !== "cancelled" && new Date(s.end).getTime() >= now);
  const other = sorted.filter((s) => !upcoming.includes(s));
  const parts: Child[] = [];
  if (seriesCards.length) parts.push(h("ul", { class: "session-list series-list", "aria-label": "Series" }, seriesCards));
  parts.push(
    upcoming.length
      ? h("ul", { class: "session-list", "aria-label": "Upcoming sessions" }, upcoming.map((s) => h("li", null, card(ctx, s, tz, names, message, reload))))
      : seriesCards.length
        ? null
        : h("p", null, "No upcoming sessions. ", h("a", { href: "#/slots" }, "Find a time")),
  );
  if (other.length) {
    parts.push(
      h(
        "details",
        { class: "older" },
        h("summary", null, `Past and cancelled (${other.length})`),
        h("ul", { class: "session-list" }, other.map((s) => h("li", null, card(ctx, s, tz, names, message, reload)))),
      ),
    );
  }
  replace(list, parts);
}

function card(ctx: Ctx, s: Session, tz: string, names: Map<string, string>, message: HTMLElement, reload: () => void, extra: Child = null): HTMLElement {
  const start = new Date(s.start);
  const end = new Date(s.end);
  const organizer = s.organizer === ctx.user.oid;
  const [statusText, statusTone] = STATUS_BADGE[s.status] ?? [s.status, "neutral"];
  const who = (user: string, email?: string | null) => names.get(user) ?? email ?? user;
  const others = s.attendees.filter((a) => a.user !== ctx.user.oid);
  const me = s.attendees.find((a) => a.user === ctx.user.oid);
  const response = (r: string) => {
    const found = RESPONSES[r] ?? { label: r, tone: "neutral" as const };
    return badge(found.label, found.tone);
  };
  const rows: [string, Child][] = [];
  if (!organizer) rows.push(["Organizer", who(s.organizer)]);
  for (const a of organizer ? others : others.filter((a) => a.user !== s.organizer)) {
    const marks: Child[] = [
      a.type === "optional" ? [" ", badge("Optional", "neutral")] : null,
      a.guest ? [" ", badge("Guest", "info")] : null,
      a.host ? [" ", badge("Host", "info")] : null,
    ];
    rows.push([organizer ? "With" : "Also invited",
      h("span", { class: "attendee", "data-email": a.email ?? a.user }, h("span", { class: "person" }, who(a.user, a.email)), marks, " ",
        h("span", { class: "rsvp" }, response(a.response)))]);
  }
  if (me) rows.push(["Your answer", response(me.response)]);
  if (s.room) rows.push(["Room", [s.room.email, " ", h("span", { class: "room-rsvp" }, response(s.room.response))]]);
  if (s.assigned?.reason) rows.push(["Chosen", h("span", { class: "assigned-reason" }, s.assigned.reason)]);
  if (s.joinUrl) {
    rows.push(["Online", h("a", { href: s.joinUrl, target: "_blank", rel: "noopener noreferrer" }, "Join the Teams meeting")]);
  } else if (s.onlineMeetingUnavailable) {
    rows.push(["Online", "No Teams link: this calendar does not allow online meetings."]);
  }
  const canChange = organizer && (s.status === "booked" || s.status === "pending") && end.getTime() > Date.now();
  return h(
    "article",
    { class: `session session-${s.status}`, "data-session-id": s.id, "data-series-id": s.seriesId ?? null, "data-status": s.status, "data-start": s.start, "data-end": s.end, "aria-labelledby": `s-${s.id}` },
    h(
      "h2",
      { id: `s-${s.id}`, class: "session-title" },
      h("span", { class: "session-day" }, longDayLabel(start, tz)),
      ", ",
      h("span", { class: "session-time" }, rangeLabel(start, end, tz)),
    ),
    h(
      "p",
      { class: "badges" },
      badge(statusText, statusTone),
      s.pendingChange && s.status !== "pending" ? [" ", badge(s.pendingChange === "cancel" ? "Cancelling…" : "Updating…", "info")] : null,
      s.source === "outlook" ? [" ", badge("Changed in Outlook", "info")] : null,
      s.seriesNote === "skipped_clash" ? [" ", badge("Skipped: not free", "neutral")] : null,
      s.seriesNote === "exceptions_reset_by_pattern_change" ? [" ", badge("Own change dropped by a new series pattern", "warn")] : null,
    ),
    rows.length ? h("dl", { class: "details" }, rows.map(([k, v]) => [h("dt", null, k), h("dd", null, v)])) : null,
    s.status === "failed" && s.failureReason === SLOT_TAKEN
      ? notice("error", h("strong", null, "Slot taken. "), `This session was not booked: ${failureText(s.failureReason)}. `, h("a", { href: "#/slots" }, "Find another time"))
      : s.status === "failed"
        ? notice("error", `This session could not be written to Outlook${s.failureReason ? `: ${failureText(s.failureReason)}` : ""}.`, s.failureReason === "reconnect_required" ? [" ", h("a", { href: "#/connection" }, "Reconnect your calendar")] : null)
        : null,
    canChange
      ? h(
          "div",
          { class: "actions" },
          button("Reschedule", () => reschedule(ctx, s, tz, message, reload), { "data-focus-key": `${s.id}:reschedule`, "aria-label": `Reschedule the session on ${longDayLabel(start, tz)} at ${timeLabel(start, tz)}` }),
          button(s.seriesId ? "Cancel this one" : "Cancel session", () => cancel(ctx, s, tz, message, reload), { class: "danger", "data-focus-key": `${s.id}:cancel`, "aria-label": `Cancel the session on ${longDayLabel(start, tz)} at ${timeLabel(start, tz)}` }),
          extra,
        )
      : null,
  );
}

function reschedule(ctx: Ctx, s: Session, tz: string, message: HTMLElement, reload: () => void): void {
  const start = new Date(s.start);
  const length = minutesBetween(start, new Date(s.end));
  modal("Reschedule the session", (close) => {
    const date = h("input", { type: "date", id: "new-date", required: true, value: ymdKey(ymdOf(start, tz)) });
    const time = h("input", { type: "time", id: "new-time", required: true, step: "300", value: timeLabel(start, tz) });
    const minutes = h(
      "select",
      { id: "new-length" },
      [...new Set([length, 30, 45, 60, 90])].sort((a, b) => a - b).map((m) => h("option", { value: String(m), selected: m === length }, `${m} minutes`)),
    );
    const error = h("div");
    const submit = h("button", { type: "submit", class: "primary" }, "Move the session");
    const intent = new WriteIntent(); // one key per move: a re-submit of the same move never moves twice
    const form = h(
      "form",
      null,
      h("p", { class: "hint" }, `Times in ${tz}. Attendees get Outlook's update and answer again.`),
      field("New date", date),
      field("New start time", time),
      field("Length", minutes),
      error,
      h("div", { class: "actions" }, button("Keep the time", close), submit),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const ymd = parseYmd(date.value);
      const hm = /^(\d{2}):(\d{2})/.exec(time.value);
      if (!ymd || !hm) {
        replace(error, notice("error", "Enter a date and a start time."));
        return;
      }
      const newStart = zonedToDate(ymd, Number(hm[1]), Number(hm[2]), tz);
      const newEnd = new Date(newStart.getTime() + Number(minutes.value) * 60000);
      void busy(submit, async () => {
        const body = { start: isoInZone(newStart, tz), end: isoInZone(newEnd, tz), timeZone: tz };
        try {
          await ctx.api.call("PATCH", `/sessions/${encodeURIComponent(s.id)}`, body, { idempotencyKey: intent.keyFor(body) });
          close();
          replace(message, notice("info", "Moving the session in Outlook…"));
          reload();
          void clearWhenSettled(ctx, s.id, message, "The session was moved.");
        } catch (e) {
          if (e instanceof ApiError && e.code === SLOT_TAKEN) {
            replace(error, notice("error", h("strong", null, "Slot taken. "), slotTakenText(e.details)));
          } else {
            replace(error, notice("error", errorText(e)));
          }
        }
      });
    });
    return [form];
  });
}

function cancel(ctx: Ctx, s: Session, tz: string, message: HTMLElement, reload: () => void): void {
  modal("Cancel the session?", (close) => {
    const comment = h("textarea", { id: "cancel-comment", rows: "3", maxlength: "1000" });
    const error = h("div");
    const submit = h("button", { type: "submit", class: "danger" }, "Cancel the session");
    const intent = new WriteIntent();
    const form = h(
      "form",
      null,
      h("p", null, `${longDayLabel(new Date(s.start), tz)}, ${rangeLabel(new Date(s.start), new Date(s.end), tz)}. Attendees get Outlook's cancellation.`),
      field("Message to the attendees (optional)", comment),
      error,
      h("div", { class: "actions" }, button("Keep the session", close), submit),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void busy(submit, async () => {
        try {
          const text = comment.value.trim();
          const body = text ? { comment: text } : undefined;
          await ctx.api.call("DELETE", `/sessions/${encodeURIComponent(s.id)}`, body, { idempotencyKey: intent.keyFor(body) });
          close();
          replace(message, notice("info", "Cancelling the session in Outlook…"));
          reload();
          void clearWhenSettled(ctx, s.id, message, "The session was cancelled.");
        } catch (e) {
          replace(error, notice("error", errorText(e)));
        }
      });
    });
    return [form];
  });
}

async function clearWhenSettled(ctx: Ctx, id: string, message: HTMLElement, done: string): Promise<void> {
  for (let i = 0; i < 60; i += 1) {
    await sleep(1000);
    if (!message.isConnected) return;
    try {
      const s = await ctx.api.get<Session>(`/sessions/${encodeURIComponent(id)}`);
      if (!s.pendingChange && s.status !== "pending") {
        replace(message, s.status === "failed" ? notice("error", `The change failed${s.failureReason ? `: ${failureText(s.failureReason)}` : ""}.`) : notice("success", done));
        return;
      }
    } catch (e) {
      replace(message, notice("error", errorText(e)));
      return;
    }
  }
}

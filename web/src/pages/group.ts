// #/group: book a group. Colleagues (by email) and guests from outside the organisation (email
// and display name), each required or optional; any one of several hosts; any one of several
// rooms (first free in the order ticked, or the smallest that fits). A week of slots where
// every required person is free, each saying which optional people, hosts and rooms are free
// and what a booking would choose; the booking dialog books that and says what was chosen.
// docs/product-integration.md "Groups, guests and any-of".

import { ApiError, SLOT_TAKEN, WriteIntent } from "../api";
import type { GroupSlot, Room, Session } from "../api";
import { badge, busy, button, type Child, field, focusOn, h, notice, replace } from "../dom";
import { addDays, dayLabel, longDayLabel, mondayOf, rangeLabel, type Ymd, ymdKey, ymdOf, zonedToDate } from "../time";
import { type Ctx, errorText, failureText, modal, pageHeading, sleep, slotTakenText } from "../ui";

interface Person {
  email: string;
  name?: string;
  guest: boolean;
  type: "required" | "optional";
}

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

export async function renderGroup(ctx: Ctx, main: HTMLElement): Promise<void> {
  const tz = await ctx.timeZone();
  const people: Person[] = [];
  const hosts: string[] = [];
  let week = 0;
  let duration = 60;

  const message = h("div", { id: "group-message" });
  const peopleList = h("ul", { class: "people", id: "people", "aria-label": "People invited" });
  const hostList = h("ul", { class: "people", id: "hosts", "aria-label": "Host candidates" });
  const status = h("p", { class: "live", role: "status", "aria-live": "polite" });
  const results = h("div", { class: "week", "aria-live": "off" });
  const formError = h("div");

  const colleague = h("input", { type: "email", id: "colleague-email", autocomplete: "off", placeholder: "name@yourcompany.com" });
  const guestEmail = h("input", { type: "email", id: "guest-email", autocomplete: "off", placeholder: "name@example.org" });
  const guestName = h("input", { type: "text", id: "guest-name", maxlength: "255", autocomplete: "off" });
  const hostEmail = h("input", { type: "email", id: "host-email", autocomplete: "off" });
  const durationSelect = h("select", { id: "group-duration" }, [30, 45, 60, 90].map((m) => h("option", { value: String(m), selected: m === duration }, `${m} minutes`)));
  const roomChoice = h("select", { id: "room-choice" },
    h("option", { value: "first" }, "The first free room, in the order ticked"),
    h("option", { value: "bestFit" }, "The smallest free room that fits everyone"));
  const roomBox = h("fieldset", { class: "rooms-pick", id: "rooms" }, h("legend", null, "Any of these rooms (optional)"), h("p", { class: "hint" }, "Loading rooms…"));
  const picked: string[] = [];

  const renderPeople = () => {
    replace(
      peopleList,
      people.length
        ? people.map((p, i) => {
            const toggle = h("select", { "aria-label": `Required or optional: ${p.email}`, class: "person-type" },
              h("option", { value: "required", selected: p.type === "required" }, "Required"),
              h("option", { value: "optional", selected: p.type === "optional" }, "Optional"));
            toggle.addEventListener("change", () => {
              p.type = toggle.value === "optional" ? "optional" : "required";
            });
            return h("li", { class: "person-row", "data-email": p.email },
              h("span", { class: "person" }, p.name ? `${p.name} <${p.email}>` : p.email), " ",
              p.guest ? badge("Guest", "info") : null, " ", toggle, " ",
              button("Remove", () => { people.splice(i, 1); renderPeople(); }, { "aria-label": `Remove ${p.email}` }));
          })
        : h("li", { class: "hint" }, "Nobody yet."),
    );
  };
  const renderHosts = () => {
    replace(
      hostList,
      hosts.length
        ? hosts.map((email, i) => h("li", { class: "person-row" }, h("span", { class: "person" }, email), " ",
            button("Remove", () => { hosts.splice(i, 1); renderHosts(); }, { "aria-label": `Remove host ${email}` })))
        : h("li", { class: "hint" }, "No host candidates: the organizer and the people above meet."),
    );
  };
  const known = (email: string) =>
    people.some((p) => p.email.toLowerCase() === email.toLowerCase()) || hosts.some((x) => x.toLowerCase() === email.toLowerCase());
  const add = (input: HTMLInputElement, what: string, then: (email: string) => void) => {
    const email = input.value.trim();
    if (!EMAIL.test(email)) {
      replace(formError, notice("error", `Enter ${what}'s email address.`));
      focusOn(input);
      return;
    }
    if (known(email) || email.toLowerCase() === ctx.user.upn.toLowerCase()) {
      replace(formError, notice("error", `${email} is already in this session.`));
      return;
    }
    replace(formError);
    then(email);
    input.value = "";
  };

  replace(
    main,
    pageHeading("Book a group"),
    message,
    h("section", { class: "card", "aria-label": "Who" },
      h("h2", null, "People"),
      h("div", { class: "slot-controls" },
        h("div", null, field("Colleague's email", colleague), button("Add colleague", () => add(colleague, "the colleague", (email) => {
          people.push({ email, guest: false, type: "required" });
          renderPeople();
        }))),
        h("div", null, field("Guest's email", guestEmail, "Someone from outside your organisation: invited by email; their calendar is never read."),
          field("Guest's name (shown in the invitation only)", guestName),
          button("Add guest", () => add(guestEmail, "the guest", (email) => {
            people.push({ email, name: guestName.value.trim() || undefined, guest: true, type: "required" });
            guestName.value = "";
            renderPeople();
          }))),
      ),
      peopleList,
      h("h2", null, "Any one of these hosts"),
      h("div", { class: "slot-controls" }, h("div", null, field("Host candidate's email", hostEmail, "The free one with the fewest sessions around the time is chosen."),
        button("Add host", () => add(hostEmail, "the host", (email) => { hosts.push(email); renderHosts(); })))),
      hostList,
      h("h2", null, "Room"),
      roomBox,
      field("Which room", roomChoice),
      field("Length", durationSelect),
      formError,
      h("div", { class: "actions" }, button("Show free times", () => { week = 0; void load(); }, { class: "primary" })),
    ),
    h("nav", { class: "week-nav", "aria-label": "Week" },
      button("Previous week", () => { week = Math.max(0, week - 1); void load(); }),
      h("p", { class: "week-label", id: "group-week-label" }),
      button("Next week", () => { week = Math.min(7, week + 1); void load(); })),
    status,
    results,
  );
  renderPeople();
  renderHosts();
  durationSelect.addEventListener("change", () => { duration = Number(durationSelect.value); });
  void ctx.api.get<Room[]>("/rooms").then(
    (rooms) => {
      for (const r of rooms) ROOM_NAMES.set(r.email.toLowerCase(), r.displayName);
      replace(roomBox, h("legend", null, "Any of these rooms (optional)"),
        rooms.length
          ? rooms.map((r) => {
              const box = h("input", { type: "checkbox", id: `room-${r.email}`, value: r.email });
              box.addEventListener("change", () => {
                const at = picked.indexOf(r.email);
                if (box.checked && at < 0) picked.push(r.email);
                if (!box.checked && at >= 0) picked.splice(at, 1);
              });
              return h("div", { class: "choice" }, box, h("label", { for: `room-${r.email}` }, `${r.displayName}${r.capacity ? ` (${r.capacity} seats)` : ""}`));
            })
          : h("p", { class: "hint" }, "No rooms are listed for your organisation."));
    },
    (e) => replace(roomBox, h("legend", null, "Any of these rooms"), h("p", { class: "hint" }, `Rooms are not available: ${errorText(e)}`)),
  );

  const request = () => {
    const body: Record<string, unknown> = {};
    if (people.length) body.attendees = people.map((p) => (p.guest ? { email: p.email, type: p.type } : { user: p.email, type: p.type }));
    if (hosts.length) body.hosts = [...hosts];
    if (picked.length) {
      body.rooms = [...picked];
      body.roomChoice = roomChoice.value;
    }
    return body;
  };

  let generation = 0;
  const load = async () => {
    const mine = ++generation;
    if (!people.length && !hosts.length) {
      replace(formError, notice("error", "Add at least one person or host first."));
      return;
    }
    const monday = addDays(mondayOf(new Date(), tz), week * 7);
    const weekStart = zonedToDate(monday, 0, 0, tz);
    const weekEnd = zonedToDate(addDays(monday, 7), 0, 0, tz);
    document.getElementById("group-week-label")!.textContent = `Week of ${longDayLabel(weekStart, tz)}`;
    const from = new Date(Math.max(weekStart.getTime(), Math.ceil(Date.now() / 900000) * 900000));
    results.setAttribute("aria-busy", "true");
    status.textContent = "Looking for free times…";
    try {
      const answer = await ctx.api.call<{ slots: GroupSlot[] }>("POST", "/availability", {
        ...request(), start: from.toISOString(), end: weekEnd.toISOString(), durationMinutes: duration,
        stepMinutes: Math.min(duration, 30), timeZone: tz,
      });
      if (mine !== generation) return;
      renderWeek(results, monday, tz, answer.slots, (slot) => openBooking(ctx, slot, tz, people, request(), message, load));
      const n = answer.slots.length;
      status.textContent = n ? `${n} free ${n === 1 ? "time" : "times"} this week for everyone required.` : "No time this week suits everyone required. Try another week.";
    } catch (e) {
      if (mine !== generation) return;
      replace(results, notice("error", explain(e)));
      status.textContent = "";
    } finally {
      if (mine === generation) results.removeAttribute("aria-busy");
    }
  };
}

function explain(e: unknown): string {
  if (e instanceof ApiError && e.code === "attendee_not_paired") {
    return "Your organisation only allows sessions with people you are paired with. Ask your admin, or book through your scheduling product.";
  }
  if (e instanceof ApiError && e.code === "guests_not_allowed") {
    return "Your organisation only allows guests from outside it in sessions booked by your scheduling product or an admin.";
  }
  if (e instanceof ApiError && e.code === "participant_unreachable") {
    return `${e.message} Someone required cannot be read, so no common time can be shown.`;
  }
  return errorText(e);
}

/** A short label: a room's display name, a person's name before the @. */
function short(email: string): string {
  return ROOM_NAMES.get(email.toLowerCase()) ?? email.split("@")[0]!;
}

const ROOM_NAMES = new Map<string, string>();

function slotLines(slot: GroupSlot): Child[] {
  const lines: Child[] = [];
  const list = (items: string[]) => items.map(short).join(", ");
  if (slot.optional) lines.push(h("span", { class: "slot-optional" }, slot.optional.length ? `Optional free: ${list(slot.optional)}` : "No optional person free"));
  if (slot.hosts) lines.push(h("span", { class: "slot-hosts" }, `Hosts free: ${list(slot.hosts)}`));
  if (slot.rooms) lines.push(h("span", { class: "slot-rooms" }, `Rooms free: ${list(slot.rooms)}`));
  return lines.flatMap((line) => [h("br"), line]);
}

function renderWeek(target: HTMLElement, monday: Ymd, tz: string, slots: GroupSlot[], book: (slot: GroupSlot) => void): void {
  const days = Array.from({ length: 7 }, (_, i) => ({ ymd: addDays(monday, i), items: [] as HTMLElement[] }));
  for (const slot of slots) {
    const start = new Date(slot.start);
    const label = rangeLabel(start, new Date(slot.end), tz);
    const day = days.find((d) => ymdKey(d.ymd) === ymdKey(ymdOf(start, tz)));
    day?.items.push(h("li", { class: "slot" },
      h("button", { type: "button", class: "slot-button group-slot", "data-start": slot.start, "aria-label": `Book ${longDayLabel(start, tz)}, ${label}`, onclick: () => book(slot) },
        h("span", null, label), ...slotLines(slot))));
  }
  replace(target, days.map((d, i) => {
    const noon = zonedToDate(d.ymd, 12, 0, tz);
    if (i >= 5 && !d.items.length) return null;
    return h("section", { class: "day", "aria-label": longDayLabel(noon, tz) },
      h("h2", { class: "day-title" }, dayLabel(noon, tz)),
      d.items.length ? h("ul", { class: "day-items" }, d.items) : h("p", { class: "hint" }, "No free time"));
  }));
}

function openBooking(ctx: Ctx, slot: GroupSlot, tz: string, people: Person[], group: Record<string, unknown>, message: HTMLElement, reload: () => Promise<void>): void {
  const start = new Date(slot.start);
  const when = `${longDayLabel(start, tz)}, ${rangeLabel(start, new Date(slot.end), tz)}`;
  modal("Book the group", (close) => {
    const subject = h("input", { type: "text", id: "group-subject", maxlength: "255", value: "Interview" });
    const teams = h("input", { type: "checkbox", id: "group-teams", checked: true });
    const error = h("div");
    const submit = h("button", { type: "submit", class: "primary" }, "Book");
    const intent = new WriteIntent();
    const form = h("form", null,
      h("p", { class: "when" }, h("strong", null, when)),
      h("ul", { class: "people" }, people.map((p) => h("li", null, p.name ? `${p.name} <${p.email}>` : p.email, p.guest ? " (guest)" : "", p.type === "optional" ? " (optional)" : ""))),
      slot.assigned?.reason ? h("p", { class: "hint", id: "assigned-reason" }, `The service would choose: ${slot.assigned.reason}`) : null,
      field("Title in Outlook", subject, "Sent to Outlook only; the service does not store it."),
      h("div", { class: "choice" }, teams, h("label", { for: "group-teams" }, "Add a Microsoft Teams meeting link")),
      error,
      h("div", { class: "actions" }, button("Cancel", close), submit));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void busy(submit, async () => {
        const attendees = people.map((p) => (p.guest ? { email: p.email, ...(p.name ? { name: p.name } : {}), type: p.type } : { user: p.email, type: p.type }));
        const body: Record<string, unknown> = { ...group, start: slot.start, end: slot.end, timeZone: tz, onlineMeeting: teams.checked };
        if (attendees.length) body.attendees = attendees;
        if (subject.value.trim()) body.subject = subject.value.trim();
        try {
          const accepted = await ctx.api.call<{ id: string; assigned?: { room?: string; hostEmail?: string; reason?: string } }>("POST", "/sessions", body, { idempotencyKey: intent.keyFor(body) });
          close();
          await follow(ctx, accepted.id, when, message);
          await reload();
        } catch (e) {
          if (e instanceof ApiError && e.code === SLOT_TAKEN) {
            replace(error, notice("error", h("strong", null, "Slot taken. "), slotTakenText(e.details)));
            void reload();
          } else {
            replace(error, notice("error", explain(e)));
          }
        }
      });
    });
    return [form];
  });
}

async function follow(ctx: Ctx, id: string, when: string, message: HTMLElement): Promise<void> {
  replace(message, notice("info", `Booking the group on ${when}…`));
  const deadline = Date.now() + 60_000;
  let session: Session | null = null;
  while (Date.now() < deadline) {
    session = await ctx.api.get<Session>(`/sessions/${encodeURIComponent(id)}`);
    if (session.status !== "pending") break;
    await sleep(1000);
  }
  const chosen: Child[] = [];
  if (session?.assigned?.room) chosen.push(`Room: ${session.assigned.room}. `);
  if (session?.assigned?.hostEmail) chosen.push(`Host: ${session.assigned.hostEmail}. `);
  if (session?.status === "booked") {
    replace(message, notice("success", h("strong", null, "Booked. "), `${when} is in your Outlook calendar; everyone is invited. `, ...chosen, h("a", { href: "#/sessions" }, "See my sessions")));
  } else if (session?.status === "failed") {
    replace(message, notice("error", `The group could not be booked${session.failureReason ? `: ${failureText(session.failureReason)}` : ""}. Pick another time.`));
  } else {
    replace(message, notice("info", "The group is still being booked. ", h("a", { href: "#/sessions" }, "Follow it on My sessions")));
  }
  focusOn(message.querySelector<HTMLElement>(".notice"));
}

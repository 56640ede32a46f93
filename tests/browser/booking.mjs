// A user books a free slot with their pairing partner (Teams link, a free room) and sees it
// booked, on the slots page and then on My sessions.

import { check, main, openBrowser, result, screenshot, signIn } from "./lib.mjs";

const DOMAIN = process.env.DOMAIN ?? "contoso.test";
const USER = process.env.USER_UPN ?? `alice@${DOMAIN}`;
const PARTNER = process.env.PARTNER ?? `bob@${DOMAIN}`;

await main(async () => {
  const { page, close } = await openBrowser();
  const keys = []; // Idempotency-Key of every booking request the console sends
  page.on("request", (request) => {
    if (request.method() === "POST" && new URL(request.url()).pathname === "/api/sessions") {
      keys.push(request.headers()["idempotency-key"] ?? null);
    }
  });
  await signIn(page, { domain: DOMAIN, upn: USER, admin: false });
  await page.waitForURL((url) => url.hash === "#/slots");
  await page.getByRole("heading", { name: "Find a time" }).waitFor();
  const partner = page.getByLabel("Schedule with");
  check((await partner.locator("option:checked").textContent())?.includes(PARTNER), "the pairing partner is offered");

  // Next week always has working days ahead, whatever today is.
  await page.getByRole("button", { name: "Next week" }).click();
  await page.locator(".live", { hasText: /this week/ }).waitFor();
  const slots = page.locator(".slot-button");
  check((await slots.count()) > 0, "next week has free slots shared with the partner");
  check((await page.locator(".busy").count()) > 0, "the user's own calendar shows as busy blocks");
  const slot = slots.first();
  const start = await slot.getAttribute("data-start");
  const label = await slot.getAttribute("aria-label");
  await slot.click();

  const dialog = page.getByRole("dialog", { name: "Book a session" });
  await dialog.waitFor();
  check(await dialog.getByLabel("Add a Microsoft Teams meeting link").isChecked(), "Teams link is on by default");
  await dialog.getByText(/rooms are free at that time/).waitFor();
  const room = dialog.getByLabel("Room (optional)");
  const freeRoom = await room.locator("option").evaluateAll((opts) => opts.find((o) => o.dataset.state === "free")?.value ?? "");
  check(freeRoom, "at least one room is free for the slot");
  await room.selectOption(freeRoom);
  await dialog.getByText("This room is free at that time.").waitFor();
  await dialog.getByRole("button", { name: "Book", exact: true }).click();

  await page.getByText("Booked.").waitFor({ timeout: 60_000 });
  await page.waitForFunction((s) => !document.querySelector(`.slot-button[data-start="${s}"]`), start);
  await screenshot(page, "slots.png");

  await page.getByRole("link", { name: "See my sessions" }).click();
  await page.getByRole("heading", { name: "My sessions" }).waitFor();
  const card = page.locator("article.session", { has: page.getByText(PARTNER) }).first();
  await card.waitFor();
  const session = {
    id: await card.getAttribute("data-session-id"),
    status: await card.getAttribute("data-status"),
    start: await card.getAttribute("data-start"),
    end: await card.getAttribute("data-end"),
    rsvp: (await card.locator(".rsvp").first().textContent())?.trim(),
    room: (await card.locator(".room-rsvp").first().textContent())?.trim(),
    teams: await card.getByRole("link", { name: "Join the Teams meeting" }).count(),
  };
  check(session.status === "booked", `the session is booked (got ${session.status})`);
  check(new Date(session.start).getTime() === new Date(start).getTime(), "the session starts at the chosen slot");
  await screenshot(page, "sessions.png"); // replaced by the Outlook-move test's richer one when that runs
  await close();
  result({ slotLabel: label, slotStart: start, room: freeRoom, session, keys });
});

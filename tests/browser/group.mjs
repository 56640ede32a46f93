// A recruiter books a panel on "Book a group": two interviewers (one optional observer), an outside
// candidate added as a guest with a display name, and any of three rooms (smallest that fits). The
// slots say which optional people and rooms are free; the booking says which room was chosen; My
// sessions lists every attendee with their RSVP, the guest and optional marks, and why the room.

import { check, goTo, main, openBrowser, result, screenshot, signIn } from "./lib.mjs";

const DOMAIN = process.env.DOMAIN ?? "contoso.test";
const RECRUITER = process.env.RECRUITER ?? `laura@${DOMAIN}`;
const INTERVIEWERS = (process.env.INTERVIEWERS ?? `frank@${DOMAIN},chris@${DOMAIN}`).split(",");
const OBSERVER = process.env.OBSERVER ?? `grace@${DOMAIN}`;
const GUEST = process.env.GUEST ?? "jordan.candidate@example.org";
const GUEST_NAME = process.env.GUEST_NAME ?? "Jordan Candidate";
const ROOMS = (process.env.ROOMS ?? "Thames,Severn,Orca").split(",");

await main(async () => {
  const { page, close } = await openBrowser();
  const bodies = [];
  page.on("request", (request) => {
    if (request.method() === "POST" && new URL(request.url()).pathname === "/api/sessions") bodies.push(request.postDataJSON());
  });
  await signIn(page, { domain: DOMAIN, upn: RECRUITER, admin: false });
  await goTo(page, "#/group");
  await page.getByRole("heading", { name: "Book a group" }).waitFor();

  for (const person of [...INTERVIEWERS, OBSERVER]) {
    await page.getByLabel("Colleague's email").fill(person);
    await page.getByRole("button", { name: "Add colleague" }).click();
    await page.locator(`.person-row[data-email="${person}"]`).waitFor();
  }
  await page.getByLabel(`Required or optional: ${OBSERVER}`).selectOption("optional");
  await page.getByLabel("Guest's email").fill(GUEST);
  await page.getByLabel("Guest's name (shown in the invitation only)").fill(GUEST_NAME);
  await page.getByRole("button", { name: "Add guest" }).click();
  const guestRow = page.locator(`.person-row[data-email="${GUEST}"]`);
  await guestRow.waitFor();
  check((await guestRow.textContent()).includes("Guest"), "the guest is marked as a guest");

  await page.locator("#rooms input[type=checkbox]").first().waitFor();
  const ticked = [];
  for (const name of ROOMS) {
    const box = page.locator("#rooms .choice", { hasText: name }).locator("input");
    await box.check();
    ticked.push(await box.getAttribute("value"));
  }
  await page.getByLabel("Which room").selectOption("bestFit");
  await page.getByLabel("Length").selectOption("60");
  await page.getByRole("button", { name: "Show free times" }).click();
  await page.getByRole("button", { name: "Next week" }).click();
  await page.locator(".live", { hasText: /this week/ }).waitFor();
  const slots = page.locator(".group-slot");
  check((await slots.count()) > 0, "next week has a time that suits everyone required");
  const slot = slots.first();
  const start = await slot.getAttribute("data-start");
  const slotText = await slot.innerText();
  check(/Rooms free: /.test(slotText), "each slot lists the free rooms");
  check(/Optional free: |No optional person free/.test(slotText), "each slot says which optional people are free");
  await screenshot(page, "group-slots.png");
  await slot.click();

  const dialog = page.getByRole("dialog", { name: "Book the group" });
  await dialog.waitFor();
  check((await dialog.locator("#assigned-reason").innerText()).includes("Room "), "the dialog says which room would be chosen");
  await dialog.getByLabel("Title in Outlook").fill("Panel interview");
  await dialog.getByRole("button", { name: "Book", exact: true }).click();
  const booked = page.locator(".notice", { hasText: "Booked." });
  await booked.waitFor({ timeout: 60_000 });
  const bookedText = await booked.innerText();
  check(/Room: /.test(bookedText), "the booking says which room was chosen");

  await page.getByRole("link", { name: "See my sessions" }).click();
  await page.getByRole("heading", { name: "My sessions" }).waitFor();
  const card = page.locator(`article.session[data-start="${start}"]`).first();
  await card.waitFor();
  const attendees = await card.locator(".attendee").evaluateAll((rows) =>
    rows.map((row) => ({ email: row.dataset.email, text: row.innerText, rsvp: row.querySelector(".rsvp")?.innerText ?? "" })));
  const session = {
    id: await card.getAttribute("data-session-id"),
    status: await card.getAttribute("data-status"),
    room: (await card.locator(".room-rsvp").first().locator("xpath=..").innerText()).trim(),
    reason: (await card.locator(".assigned-reason").innerText()).trim(),
    attendees,
  };
  check(attendees.length === 4, `the session lists the four people invited (got ${attendees.length})`);
  check(attendees.some((a) => a.email === GUEST && a.text.includes("Guest")), "the guest is marked on the session");
  check(attendees.some((a) => a.email === OBSERVER && a.text.includes("Optional")), "the observer is marked optional");
  check(attendees.every((a) => a.rsvp), "every attendee shows an RSVP");
  await screenshot(page, "group-session.png");
  await close();
  result({ slotStart: start, ticked, bookedText, session, bodies });
});

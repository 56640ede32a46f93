// After an Outlook-side move (and the partner's answer) made through the simulator, the
// sessions page shows the new time, the "Changed in Outlook" mark and the partner's RSVP
// without a reload (it polls).

import { check, goTo, main, openBrowser, result, screenshot, signIn } from "./lib.mjs";

const DOMAIN = process.env.DOMAIN ?? "contoso.test";
const USER = process.env.USER_UPN ?? `alice@${DOMAIN}`;
const SESSION_ID = process.env.SESSION_ID;
const EXPECTED_START = process.env.EXPECTED_START;
const EXPECTED_RSVP = process.env.EXPECTED_RSVP ?? "Accepted";

await main(async () => {
  check(SESSION_ID && EXPECTED_START, "SESSION_ID and EXPECTED_START are set");
  const { page, close } = await openBrowser();
  await signIn(page, { domain: DOMAIN, upn: USER, admin: false });
  await goTo(page, "#/sessions");
  const card = page.locator(`article[data-session-id="${SESSION_ID}"]`);
  await card.waitFor();
  const expected = new Date(EXPECTED_START).getTime();
  // The page polls every few seconds; the sync from Outlook is asynchronous.
  await page.waitForFunction(
    ([id, ms]) => {
      const el = document.querySelector(`article[data-session-id="${id}"]`);
      return el && new Date(el.getAttribute("data-start")).getTime() === ms;
    },
    [SESSION_ID, expected],
    { timeout: 60_000, polling: 500 },
  );
  await card.getByText("Changed in Outlook").waitFor({ timeout: 30_000 });
  await card.locator(".rsvp", { hasText: EXPECTED_RSVP }).waitFor({ timeout: 30_000 });
  const shown = {
    start: await card.getAttribute("data-start"),
    time: (await card.locator(".session-time").textContent())?.trim(),
    rsvp: (await card.locator(".rsvp").first().textContent())?.trim(),
    room: (await card.locator(".room-rsvp").first().textContent().catch(() => ""))?.trim(),
  };
  check(await card.getByRole("button", { name: /Reschedule/ }).isVisible(), "the organizer can reschedule");
  check(await card.getByRole("button", { name: /Cancel the session/ }).isVisible(), "the organizer can cancel");
  await screenshot(page, "sessions.png");
  await close();
  result(shown);
});

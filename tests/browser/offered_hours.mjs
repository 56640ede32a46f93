// A mentor sets offered hours on "My offered hours" (rows added from the keyboard, a mistake
// reported, saved with an ETag, a change from "another tab" caught as a conflict, the preview),
// then the mentee's "Find a time" page shows only slots inside those hours.

import { BASE_URL, check, goTo, main, openBrowser, result, screenshot, signIn, signOut } from "./lib.mjs";

const DOMAIN = process.env.DOMAIN ?? "contoso.test";
const MENTOR = process.env.MENTOR ?? `alice@${DOMAIN}`;
const MENTEE = process.env.MENTEE ?? `carol@${DOMAIN}`;
const MENTOR_TOKEN = process.env.MENTOR_TOKEN ?? ""; // to change the rules "in another tab"
const FROM = process.env.WINDOW_START ?? "09:00";
const TO = process.env.WINDOW_END ?? "15:00";

async function setWindow(page, day, index, start, end) {
  const row = page.locator(`fieldset[data-day="${day}"] .window-row`).nth(index);
  await row.getByLabel("From").fill(start);
  await row.getByLabel("To").fill(end);
}

await main(async () => {
  const { page, close } = await openBrowser();
  await signIn(page, { domain: DOMAIN, upn: MENTOR, admin: false });
  await goTo(page, "#/offered-hours");
  await page.getByRole("heading", { name: "My offered hours" }).waitFor();
  const zone = await page.getByLabel("Time zone").inputValue();
  await page.getByText("You offer all your free time").waitFor();

  // Keyboard: Enter on "Add a window on Tuesday" adds a row and puts focus in its first time field.
  await page.getByRole("button", { name: "Add a window on Tuesday" }).focus();
  await page.keyboard.press("Enter");
  const focusDay = await page.evaluate(() => document.activeElement?.closest("fieldset")?.getAttribute("data-day"));
  check(focusDay === "tuesday", `focus moved into the new Tuesday window (was in ${focusDay})`);
  await setWindow(page, "tuesday", 0, FROM, TO);
  await page.getByRole("button", { name: "Add a window on Thursday" }).click();
  await setWindow(page, "thursday", 0, FROM, TO);

  // A mistake first: an overlapping second Thursday window is refused with the window named.
  await page.getByRole("button", { name: "Add a window on Thursday" }).click();
  await setWindow(page, "thursday", 1, "14:00", "16:00");
  await page.getByRole("button", { name: "Save offered hours" }).click();
  const error = page.locator("#offered-message .notice-error");
  await error.waitFor();
  check((await error.textContent()).includes("Thursday window 2"), "the error names the overlapping window");
  check(await page.locator('[data-loc="weekly.2"] input[aria-invalid="true"]').count() > 0, "the window is marked invalid");
  await page.getByRole("button", { name: "Remove Thursday window 2" }).click();
  await page.getByLabel("Buffer after (minutes)").fill("5");
  await page.getByRole("button", { name: "Save offered hours" }).click();
  await page.locator("#offered-message .notice-success").waitFor();
  await page.getByText("These are your own offered hours").waitFor();

  // Another tab changes them: this tab's next save is refused with a conflict, and Reload shows theirs.
  let conflict = false;
  if (MENTOR_TOKEN) {
    const current = await (await fetch(`${BASE_URL}/api/me/availability-rules`, { headers: { Authorization: `Bearer ${MENTOR_TOKEN}` } })).json();
    const { source, etag, updatedAt, ...rules } = current;
    const put = await fetch(`${BASE_URL}/api/me/availability-rules`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${MENTOR_TOKEN}`, "Content-Type": "application/json", "If-Match": etag },
      body: JSON.stringify({ ...rules, maxPerWeek: 10 }),
    });
    check(put.status === 200, `the other tab saved (${put.status})`);
    await page.getByLabel("Buffer after (minutes)").fill("10");
    await page.getByRole("button", { name: "Save offered hours" }).click();
    await page.getByText("These hours were changed somewhere else").waitFor();
    await page.getByRole("button", { name: "Reload the latest" }).click();
    await page.locator('main[data-route="#/offered-hours"]:not([aria-busy])').waitFor();
    await page.getByLabel("Sessions per week (at most)").waitFor();
    check((await page.getByLabel("Sessions per week (at most)").inputValue()) === "10", "reload shows the other tab's change");
    check((await page.getByLabel("Buffer after (minutes)").inputValue()) === "5", "this tab's unsaved change was not written");
    conflict = true;
  }

  await page.locator(".preview-day").first().waitFor();
  const preview = await page.locator(".preview-day").allTextContents();
  await screenshot(page, "offered-hours.png");

  // The mentee looks for a time with the mentor: only the offered days and hours remain.
  await signOut(page);
  await signIn(page, { domain: DOMAIN, upn: MENTEE, admin: false });
  await page.waitForURL((url) => url.hash === "#/slots");
  const partner = page.getByLabel("Schedule with");
  const option = await partner.locator("option", { hasText: MENTOR }).first().getAttribute("value");
  await partner.selectOption(option);
  await page.getByRole("button", { name: "Next week" }).click();
  await page.locator(".live", { hasText: /this week/ }).waitFor();
  const slots = await page.locator(".slot-button").evaluateAll((buttons) => buttons.map((b) => b.dataset.start));
  check(slots.length > 0, "the mentee still sees the offered slots");
  await screenshot(page, "slots-offered-hours.png");
  await close();
  result({ zone, preview, slots, conflict });
});

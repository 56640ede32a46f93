// A slot the user is about to book is taken meanwhile (another booking of theirs through the
// API, as the product's server or a second tab would): the booking dialog says so clearly.

import { check, main, openBrowser, result, signIn } from "./lib.mjs";

const DOMAIN = process.env.DOMAIN ?? "contoso.test";
const USER = process.env.USER_UPN ?? `alice@${DOMAIN}`;
const API = process.env.API_URL;
const TOKEN = process.env.USER_TOKEN;

await main(async () => {
  const { page, close } = await openBrowser();
  await signIn(page, { domain: DOMAIN, upn: USER, admin: false });
  await page.waitForURL((url) => url.hash === "#/slots");
  await page.getByRole("heading", { name: "Find a time" }).waitFor();
  await page.getByRole("button", { name: "Next week" }).click();
  await page.locator(".live", { hasText: /this week/ }).waitFor();
  const slots = page.locator(".slot-button");
  check((await slots.count()) > 1, "next week has free slots");
  const slot = slots.last();
  const start = await slot.getAttribute("data-start");
  await slot.click();
  const dialog = page.getByRole("dialog", { name: "Book a session" });
  await dialog.waitFor();

  // Meanwhile the same slot is booked elsewhere for this user.
  const headers = { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" };
  const pairings = await (await fetch(`${API}/me/pairings`, { headers })).json();
  const end = new Date(new Date(start).getTime() + 30 * 60000).toISOString();
  const other = await fetch(`${API}/sessions`, {
    method: "POST",
    headers,
    body: JSON.stringify({ pairingId: pairings[0].pairingId, start, end, timeZone: "UTC" }),
  });
  check(other.status === 202, `the other booking was accepted (got ${other.status})`);
  const otherId = (await other.json()).id;

  await dialog.getByRole("button", { name: "Book", exact: true }).click();
  const alert = dialog.getByRole("alert");
  await alert.getByText("Slot taken.").waitFor();
  const text = (await alert.textContent())?.trim() ?? "";
  check(/no longer free/.test(text) && /Pick another time/.test(text), `the dialog explains it (got ${text})`);
  check(await dialog.isVisible(), "the dialog stays open to pick another time");
  await close();
  result({ start, text, otherId });
});

// The admin registers the product's webhook endpoint, copies the secret shown once, sends a
// ping, watches it arrive in the delivery log, replays it, disables and enables the
// endpoint and rotates the secret.

import { check, goTo, main, openBrowser, result, screenshot, signIn } from "./lib.mjs";

const DOMAIN = process.env.DOMAIN ?? "contoso.test";
const RECEIVER_URL = process.env.RECEIVER_URL;

await main(async () => {
  check(RECEIVER_URL, "RECEIVER_URL is set");
  const { page, close } = await openBrowser();
  await signIn(page, { domain: DOMAIN, upn: `admin@${DOMAIN}`, admin: true });
  await page.getByRole("link", { name: "Webhooks" }).click();
  await page.locator('main[data-route="#/admin/webhooks"]:not([aria-busy])').waitFor();
  await page.getByRole("heading", { name: "Webhooks", level: 1 }).waitFor();

  // Register: bad input first (the service's message is shown), then the real URL.
  await page.getByLabel("Endpoint URL (https)").fill("https://10.0.0.1/hook");
  await page.getByRole("button", { name: "Add endpoint" }).click();
  const refusal = (await page.locator("#webhooks-message .notice-error").textContent({ timeout: 10_000 }))?.trim();
  await page.getByLabel("Endpoint URL (https)").fill(RECEIVER_URL);
  await page.getByLabel("Description (optional)").fill("Product server (browser test)");
  await page.getByRole("button", { name: "Add endpoint" }).click();
  const secretBox = page.locator("#webhook-secret");
  await secretBox.waitFor();
  const secret = await secretBox.inputValue();
  check(secret.startsWith("whsec_"), "the secret is shown once, whsec_...");
  check(await page.getByRole("button", { name: "Copy" }).isVisible(), "the secret can be copied");

  const row = page.locator("#webhook-endpoints tbody tr", { hasText: RECEIVER_URL });
  await row.waitFor();
  const endpointId = await row.getAttribute("data-endpoint-id");
  check((await row.locator(".endpoint-events").textContent())?.includes("All events"), "no filter means all events");

  // Ping, then watch the delivery log (refreshing) until the attempt shows as delivered.
  await row.getByRole("button", { name: "Send ping" }).click();
  await page.locator("#webhook-log-title").waitFor();
  const delivered = page.locator('#webhook-deliveries tr[data-event-type="ping"][data-outcome="delivered"]');
  for (let i = 0; i < 40 && !(await delivered.count()); i += 1) {
    await page.waitForTimeout(500);
    await page.locator("#webhook-log").getByRole("button", { name: "Refresh" }).click();
  }
  await delivered.first().waitFor();
  const status = (await delivered.first().locator(".delivery-status").textContent())?.trim();
  await delivered.first().getByRole("button", { name: "Replay" }).click();
  await page.locator("#webhooks-message .notice-info", { hasText: "same webhook-id" }).waitFor();
  await screenshot(page, "webhooks.png");

  // Disable and enable again.
  await row.getByRole("button", { name: "Disable" }).click();
  await page.locator("#webhook-endpoints tbody tr", { hasText: RECEIVER_URL }).locator(".endpoint-status", { hasText: "Disabled" }).waitFor();
  await page.locator("#webhook-endpoints tbody tr", { hasText: RECEIVER_URL }).getByRole("button", { name: "Enable" }).click();
  await page.locator("#webhook-endpoints tbody tr", { hasText: RECEIVER_URL }).locator(".endpoint-status", { hasText: "Enabled" }).waitFor();

  // Rotate: a new secret, shown once; the old one keeps signing for a day.
  await page.locator("#webhook-endpoints tbody tr", { hasText: RECEIVER_URL }).getByRole("button", { name: "Rotate secret" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Rotate" }).click();
  await page.locator("#webhooks-message", { hasText: "old secret keeps working" }).waitFor();
  const rotated = await page.locator("#webhook-secret").inputValue();
  check(rotated.startsWith("whsec_") && rotated !== secret, "rotation shows a new secret");
  await close();
  result({ endpointId, secret, rotated, status, refusal });
});

// The admin opens the audit trail: the product's server's request made just before is the
// newest entry (the app, the user it acted for, the answer), and older pages load on demand.

import { check, main, openBrowser, result, signIn } from "./lib.mjs";

const DOMAIN = process.env.DOMAIN ?? "contoso.test";
const APP_ID = process.env.APP_ID;

await main(async () => {
  check(APP_ID, "APP_ID is set");
  const { page, close } = await openBrowser();
  await signIn(page, { domain: DOMAIN, upn: `admin@${DOMAIN}`, admin: true });
  await page.getByRole("link", { name: "Audit trail" }).click();
  await page.locator('main[data-route="#/admin/audit"]:not([aria-busy])').waitFor();
  await page.getByRole("heading", { name: "Audit trail", level: 1 }).waitFor();
  const appRow = page.locator(`#audit-entries tbody tr[data-actor="app:${APP_ID}"]`).first();
  await appRow.waitFor();
  const action = await appRow.getAttribute("data-action");
  const cells = await appRow.locator("td").allInnerTexts();
  const before = await page.locator("#audit-entries tbody tr").count();
  const older = page.getByRole("button", { name: "Older entries" });
  let after = before;
  if (await older.count()) {
    await older.click();
    await page.waitForFunction((n) => document.querySelectorAll("#audit-entries tbody tr").length > n, before);
    after = await page.locator("#audit-entries tbody tr").count();
  }
  await close();
  result({ action, cells, before, after });
});

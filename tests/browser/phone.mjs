// Plain and accessible at phone width: no sideways scrolling at 360 px, every form control
// has a label, the skip link comes first, and the pages work from the keyboard alone.

import { check, goTo, main, openBrowser, result, signIn } from "./lib.mjs";

const DOMAIN = process.env.DOMAIN ?? "contoso.test";

await main(async () => {
  const { page, close } = await openBrowser({ width: 360, height: 740 });
  const report = {};
  await signIn(page, { domain: DOMAIN, upn: `admin@${DOMAIN}`, admin: true });
  for (const hash of ["#/admin", "#/admin/permissions", "#/slots", "#/sessions", "#/connection", "#/offered-hours",
                      "#/admin/offered-hours"]) {
    await goTo(page, hash);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `${hash} fits 360 px (overflows by ${overflow} px)`);
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll("input, select, textarea, button")]
        .filter((el) => el.offsetParent !== null || el.closest("details"))
        .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.textContent?.trim()))
        .map((el) => el.outerHTML.slice(0, 80)),
    );
    check(unlabelled.length === 0, `${hash} has only labelled controls: ${unlabelled.join(", ")}`);
    report[hash] = { overflow };
  }

  // Keyboard: the first Tab lands on the skip link, which moves focus to the main content.
  await goTo(page, "#/sessions");
  await page.reload();
  await page.locator('main[data-route="#/sessions"]:not([aria-busy])').waitFor();
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement?.id === "skip-link"), "the skip link is the first stop");
  await page.keyboard.press("Enter");
  check(await page.evaluate(() => document.activeElement?.id === "main"), "the skip link focuses the main content");

  // Keyboard-only sign-out and sign-in of a user on the slots page.
  await page.getByRole("button", { name: "Sign out" }).focus();
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.getByLabel("Person").focus();
  await page.keyboard.press("Tab"); // to the admin checkbox
  await page.keyboard.press("Tab"); // to Sign in
  await page.keyboard.press("Enter");
  await page.getByRole("button", { name: "Sign out" }).waitFor();
  report.keyboardSignIn = true;
  await close();
  result(report);
});

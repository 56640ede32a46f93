// The page never shows another tenant's data: a user of tenant B, signed in on the same tab
// right after a user of tenant A, sees none of A's integration, pairings or sessions, and
// A's session id answers 404 to B's token.

import { BASE_URL, check, goTo, main, openBrowser, result, signIn, signOut } from "./lib.mjs";

const HOME = process.env.HOME_DOMAIN ?? "contoso.test";
const OTHER = process.env.OTHER_DOMAIN ?? "fabrikam.test";
const SESSION_ID = process.env.SESSION_ID;

await main(async () => {
  check(SESSION_ID, "SESSION_ID is set");
  const { page, close } = await openBrowser();
  await signIn(page, { domain: HOME, upn: `alice@${HOME}`, admin: false });
  await goTo(page, "#/sessions");
  await page.locator(`article[data-session-id="${SESSION_ID}"]`).waitFor();
  await signOut(page);

  const visited = {};
  for (const [upn, admin] of [[`admin@${OTHER}`, true], [`felix@${OTHER}`, false]]) {
    await signIn(page, { domain: OTHER, upn, admin });
    for (const hash of admin ? ["#/admin", "#/sessions", "#/slots", "#/connection"] : ["#/sessions", "#/slots"]) {
      await goTo(page, hash);
      const text = (await page.locator("body").innerText()).toLowerCase();
      check(!text.includes(HOME), `${upn} on ${hash} sees nothing of ${HOME}`);
      check((await page.locator(`[data-session-id="${SESSION_ID}"]`).count()) === 0, `${upn} on ${hash} does not see ${HOME}'s session`);
      visited[`${upn} ${hash}`] = text.slice(0, 120);
    }
    if (admin) {
      await goTo(page, "#/admin");
      const owner = page.getByLabel("Integration owner email");
      if (await owner.count()) check(!(await owner.inputValue()).includes(HOME), "the wizard is not prefilled from another tenant");
    }
    const status = await page.evaluate(async ([base, id]) => {
      const session = JSON.parse(sessionStorage.getItem("console.local.session") ?? "{}");
      const r = await fetch(`${base}/api/sessions/${id}`, { headers: { Authorization: `Bearer ${session.token}` } });
      return r.status;
    }, [BASE_URL, SESSION_ID]);
    check(status === 404 || status === 403, `${HOME}'s session answers 404 to ${upn} (got ${status})`);
    visited[`${upn} api`] = status;
    await signOut(page);
  }
  await close();
  result(visited);
});

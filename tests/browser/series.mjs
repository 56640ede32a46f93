// A pair books a 12-week cadence from the booking dialog (repeat weekly, 12 sessions), sees every
// date checked first, and then sees it on My sessions as ONE series that expands to its sessions.

import { check, goTo, main, openBrowser, result, screenshot, signIn } from "./lib.mjs";

const DOMAIN = process.env.DOMAIN ?? "contoso.test";
const USER = process.env.USER_UPN ?? `alice@${DOMAIN}`;

await main(async () => {
  const { page, close } = await openBrowser();
  const bodies = []; // what the console sent to POST /api/sessions
  page.on("request", (request) => {
    if (request.method() === "POST" && new URL(request.url()).pathname === "/api/sessions") {
      bodies.push({ body: JSON.parse(request.postData() ?? "{}"), key: request.headers()["idempotency-key"] ?? null });
    }
  });
  await signIn(page, { domain: DOMAIN, upn: USER, admin: false });
  await page.waitForURL((url) => url.hash === "#/slots");
  await page.getByRole("heading", { name: "Find a time" }).waitFor();
  for (let i = 0; i < 3; i += 1) {
    await page.getByRole("button", { name: "Next week" }).click(); // weeks the other scripts leave alone
    await page.locator(".live", { hasText: /this week/ }).waitFor();
  }
  const slot = page.locator(".slot-button").first();
  check((await page.locator(".slot-button").count()) > 0, "the week has free slots shared with the partner");
  const start = await slot.getAttribute("data-start");
  await slot.click();

  const dialog = page.getByRole("dialog", { name: "Book a session" });
  await dialog.waitFor();
  const repeat = dialog.getByLabel("Repeat");
  const weekly = await repeat.locator("option").evaluateAll((opts) => opts.find((o) => o.value === "weekly")?.textContent ?? "");
  check(/^Weekly on /.test(weekly), `the repeat control offers weekly on the slot's day (got ${weekly})`);
  const choices = await repeat.locator("option").evaluateAll((opts) => opts.map((o) => o.value));
  check(["none", "weekly", "biweekly", "monthlyDate", "monthlyNth"].every((v) => choices.includes(v)) || choices.includes("monthlyLast"),
    `none, weekly, every 2 weeks and monthly choices are offered (got ${choices})`);
  await repeat.selectOption("weekly");
  await dialog.getByLabel("Number of sessions").fill("12");
  await dialog.getByRole("button", { name: "Check the dates" }).click();
  const summary = dialog.locator(".check-summary");
  await summary.waitFor();
  const dates = await dialog.locator("li.occurrence").count();
  check(dates === 12, `all 12 dates are checked before booking (got ${dates})`);
  const clashing = await dialog.locator("li.occurrence.clash").count();
  if (clashing) await dialog.getByLabel("Book them anyway").check();
  const bookButton = dialog.getByRole("button", { name: /^Book \d+ sessions$/ });
  const bookLabel = (await bookButton.textContent())?.trim();
  await bookButton.click();
  await page.getByText("Booked.").waitFor({ timeout: 90_000 });
  const booked = (await page.locator(".notice-success").first().textContent())?.trim() ?? "";
  check(/one series in your Outlook calendar/.test(booked), `the console says it is one series (got ${booked})`);

  await page.getByRole("link", { name: "See my sessions" }).click();
  await page.getByRole("heading", { name: "My sessions" }).waitFor();
  const series = page.locator("article.series").first();
  await series.waitFor();
  const seriesId = await series.getAttribute("data-series-id");
  const rule = (await series.locator(".series-rule").textContent())?.trim() ?? "";
  check(/Weekly on .*12 times/.test(rule), `the series shows its rule (got ${rule})`);
  const loose = await page.locator(`article.session[data-series-id="${seriesId}"]:not(article.series article.session)`).count();
  check(loose === 0, "its sessions are not listed one by one outside the series");
  await series.locator("summary").click();
  const inside = series.locator("article.session");
  await inside.first().waitFor();
  const shown = await inside.count();
  const ids = await inside.evaluateAll((cards) => cards.map((c) => c.dataset.seriesId));
  check(ids.every((id) => id === seriesId), "every session inside belongs to the series");
  check((await series.getByRole("button", { name: "Cancel all" }).count()) === 1, "the organizer may cancel all");
  check((await inside.first().getByRole("button", { name: /Cancel this and every later session/ }).count()) === 1,
    "each session offers cancel from here");
  await screenshot(page, "series.png");
  await close();
  result({ seriesId, start, rule, shown, clashing, bookLabel, keys: bodies.map((b) => b.key), body: bodies[0]?.body ?? null });
});

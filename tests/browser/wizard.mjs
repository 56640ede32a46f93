// The whole admin wizard on a seeded tenant: owner and vendor -> method -> admin consent
// round trip through the simulator -> access test with progress -> counts and the table of
// unreachable users -> Done -> integration page. Then pairs two people from that page.

import { check, main, openBrowser, result, screenshot, signIn } from "./lib.mjs";

const DOMAIN = process.env.DOMAIN ?? "contoso.test";
const OWNER = process.env.OWNER ?? `owner@${DOMAIN}`;
const MENTOR = process.env.MENTOR ?? `alice@${DOMAIN}`;
const MENTEE = process.env.MENTEE ?? `bob@${DOMAIN}`;

await main(async () => {
  const { page, close } = await openBrowser();
  await signIn(page, { domain: DOMAIN, upn: `admin@${DOMAIN}`, admin: true });

  await page.getByRole("heading", { name: "Set up the calendar integration" }).waitFor();
  await page.getByRole("heading", { name: "Step 1 of 4: Vendor and owner" }).waitFor();
  check(await page.getByLabel("Outlook 365 (Microsoft 365)").isChecked(), "Outlook 365 is the chosen vendor");
  await page.getByLabel("Integration owner email").fill(OWNER);
  await page.getByText("More options").click();
  await page.getByLabel("Mailboxes to sample in each access test").fill("500");
  await page.getByRole("button", { name: "Next" }).click();

  await page.getByRole("heading", { name: "Step 2 of 4: Method" }).waitFor();
  check(await page.evaluate(() => document.activeElement?.id === "wizard-step"), "focus moves to the new step's heading");
  const domainWide = page.getByRole("radio", { name: /Domain-wide/ });
  check(await domainWide.isChecked(), "domain-wide is preselected");
  check(await page.locator("label[for=method-domainWide]").getByText("Recommended").isVisible(), "domain-wide is marked recommended");
  for (const id of ["method-domainWide", "method-perUser", "method-serviceAccount"]) {
    const text = await page.locator(`#${id}-text`).textContent();
    check(text && text.length > 40, `${id} has a short explanation`);
  }
  await page.keyboard.press("Tab"); // keyboard reaches the options
  await page.getByRole("button", { name: "Next" }).click();

  await page.getByRole("heading", { name: "Step 3 of 4: Authorize" }).waitFor();
  await page.getByRole("button", { name: "Grant admin consent" }).click();
  // Microsoft's (the simulator's) consent page sends the browser back through the API's callback.
  await page.waitForURL((url) => url.hash === "#/admin" && !url.search, { timeout: 30_000 });
  await page.getByRole("heading", { name: "Step 4 of 4: Test and finish" }).waitFor();
  await page.getByRole("heading", { name: "Access test results" }).waitFor({ timeout: 90_000 });

  const number = async (id) => Number(await page.locator(`#${id}`).textContent());
  const counts = {
    sampled: await number("stat-sampled"),
    accessible: await number("stat-accessible"),
    inaccessible: await number("stat-inaccessible"),
  };
  const rows = await page.locator("#unreachable tbody tr").evaluateAll((trs) =>
    trs.map((tr) => ({
      user: tr.children[0].textContent,
      reason: tr.getAttribute("data-reason"),
      label: tr.children[1].textContent,
    })),
  );
  const hints = Object.fromEntries(
    await page.locator("[data-hint-reason]").evaluateAll((lis) =>
      lis.map((li) => [li.getAttribute("data-hint-reason"), li.querySelector(".remedy")?.textContent ?? ""]),
    ),
  );
  // PowerShell steps: one code block each, each with its own copy button.
  const commands = Object.fromEntries(
    await page.locator("[data-hint-reason]").evaluateAll((lis) =>
      lis.map((li) => [
        li.getAttribute("data-hint-reason"),
        [...li.querySelectorAll(".remedy .command")].map((c) => ({
          code: c.querySelector("pre code")?.textContent ?? "",
          copy: c.querySelector("button.copy")?.getAttribute("aria-label") ?? "",
        })),
      ]),
    ),
  );
  await screenshot(page, "wizard-result.png");

  await page.getByRole("button", { name: "Done" }).click();
  await page.getByRole("heading", { name: "Calendar integration" }).waitFor();
  const statusText = (await page.locator(".details dd").first().textContent())?.trim();
  check(/Connected/.test(statusText ?? ""), `integration page shows it connected (got ${statusText})`);
  for (const name of ["Retest", "Edit", "Disable", "Disconnect"]) {
    check(await page.getByRole("button", { name, exact: true }).isVisible(), `integration page offers ${name}`);
  }

  await page.getByLabel("Mentor's email").fill(MENTOR);
  await page.getByLabel("Mentee's email").fill(MENTEE);
  await page.getByRole("button", { name: "Pair them" }).click();
  await page.getByText(`Paired ${MENTOR} with ${MENTEE}.`).waitFor();

  await page.getByRole("link", { name: "Permissions and data usage" }).click();
  await page.getByRole("heading", { name: "Permissions and data usage" }).waitFor();
  check(await page.getByRole("rowheader", { name: "Calendars.ReadWrite" }).first().isVisible(), "permissions are listed");

  await close();
  result({ ...counts, rows, hints, commands, status: statusText });
});

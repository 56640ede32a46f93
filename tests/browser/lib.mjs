// Shared helpers of the browser scripts: launch Debian's Chromium through playwright-core,
// sign in with the console's local user picker, save screenshots, report a RESULT line.
// Each script is run by tests/browser/test_console.py with BASE_URL, CHROMIUM and
// SCREENSHOT_DIR set; a non-zero exit (any thrown error) fails that pytest test.

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const BASE_URL = required("BASE_URL");
const CHROMIUM = required("CHROMIUM");
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ?? "";
export const TIMEOUT = 30_000;
let lastPage = null;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

// The flags that keep Chromium quiet on a machine with no internet (see docs/web-console.md).
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A fresh browser profile (its own --user-data-dir) with one page; errors on the page fail the run. */
export async function openBrowser({ width = 1100, height = 900 } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "console-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width, height },
    locale: "en-GB",
    reducedMotion: "reduce",
  });
  context.setDefaultTimeout(TIMEOUT);
  const page = context.pages()[0] ?? (await context.newPage());
  lastPage = page;
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/status of (401|403|404|409|412|422|501)/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    if (problems.length) throw new Error(`the page reported errors:\n${problems.join("\n")}`);
  };
  return { context, page, close, problems };
}

/** The console's local sign-in: organisation, person, and the admin role checkbox. */
export async function signIn(page, { domain, upn, admin }) {
  await page.goto(`${BASE_URL}/#/signin`);
  const signOut = page.getByRole("button", { name: "Sign out" });
  if (await signOut.isVisible().catch(() => false)) await signOut.click();
  await page.getByLabel("Organisation").selectOption({ label: domain });
  await page.getByLabel("Person").selectOption(upn);
  await page.getByLabel("Sign in as an integration admin").setChecked(Boolean(admin));
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

/** Open a console route and wait until its page has finished rendering. */
export async function goTo(page, hash) {
  await page.goto(`${BASE_URL}/${hash}`);
  await page.locator(`main[data-route="${hash}"]:not([aria-busy])`).waitFor();
}

export async function signOut(page) {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
}

export async function screenshot(page, name) {
  if (!SCREENSHOT_DIR) return;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, name), fullPage: true });
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** The one line test_console.py parses. */
export function result(value) {
  console.log(`RESULT ${JSON.stringify(value)}`);
}

/** Run a script body; print the error and exit 1 on failure so pytest shows why. */
export async function main(body) {
  try {
    await body();
  } catch (error) {
    console.error(error?.stack ?? String(error));
    if (lastPage && !lastPage.isClosed()) {
      // What the page showed when it failed, for the pytest report (and a screenshot beside the others).
      const text = await lastPage.locator("body").innerText().catch(() => "");
      console.error(`--- page at ${lastPage.url()}\n${text.slice(0, 3000)}`);
      const name = `failure-${process.argv[1].split("/").pop().replace(".mjs", "")}.png`;
      await screenshot(lastPage, name).catch(() => {});
    }
    process.exit(1);
  }
}

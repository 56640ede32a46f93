// #/admin: the set-up wizard (vendor and owner -> method -> authorize -> access test -> Done)
// and, once set up, the integration page (status, last test, Retest, Edit, Disable/Enable,
// Disconnect) with a small form to pair people.

import { ApiError } from "../api";
import type { AccessTestReport, Integration, Method } from "../api";
import { browserUrl } from "../config";
import { badge, busy, button, type Child, field, focusOn, h, notice, replace } from "../dom";
import { type Ctx, errorText, METHODS, modal, pageHeading, REASONS, sleep, STATUS } from "../ui";

interface WizardState {
  step: 1 | 2 | 3 | 4;
  ownerEmail: string;
  method: Method;
  sampleSize?: number;
  consentError?: string;
  startTest?: boolean;
  /** Consent granted at Microsoft's page; the service is still proving it while Entra ID propagates it. */
  verifying?: boolean;
}

const STEPS = ["Vendor and owner", "Method", "Authorize", "Test and finish"];
const wizardKey = (tid: string) => `console.wizard.${tid}`;

function loadWizard(tid: string): WizardState | null {
  const raw = sessionStorage.getItem(wizardKey(tid));
  if (!raw) return null;
  try {
    return JSON.parse(raw) as WizardState;
  } catch {
    return null;
  }
}

function saveWizard(tid: string, state: WizardState | null): void {
  if (state) sessionStorage.setItem(wizardKey(tid), JSON.stringify(state));
  else sessionStorage.removeItem(wizardKey(tid));
}

/** Back from Microsoft's admin-consent page: the callback appended ?consent=... to the app URL. */
export function consentReturned(tid: string, outcome: string, code: string | null): void {
  const state = loadWizard(tid) ?? { step: 3, ownerEmail: "", method: "domainWide" };
  if (outcome === "granted") saveWizard(tid, { ...state, step: 4, consentError: undefined, startTest: false, verifying: false });
  else if (outcome === "verifying") saveWizard(tid, { ...state, step: 4, consentError: undefined, startTest: false, verifying: true });
  else saveWizard(tid, { ...state, step: 3, consentError: code || "consent_declined", verifying: false });
}

export async function renderAdmin(ctx: Ctx, main: HTMLElement): Promise<void> {
  if (!ctx.user.isAdmin) {
    replace(
      main,
      pageHeading("Calendar integration"),
      notice("warning", "Setting up the integration needs the Integration.Admin role. Sign in as an integration admin."),
    );
    return;
  }
  const integration = await ctx.api.get<Integration>("/integration");
  const wizard = loadWizard(ctx.user.tid);
  if (wizard) return renderWizard(ctx, main, integration, wizard);
  if (integration.status === "not_configured") {
    const fresh: WizardState = { step: 1, ownerEmail: ctx.user.upn, method: "domainWide" };
    saveWizard(ctx.user.tid, fresh);
    return renderWizard(ctx, main, integration, fresh);
  }
  renderIntegration(ctx, main, integration);
}

// -- the wizard ---------------------------------------------------------------------------

function renderWizard(ctx: Ctx, main: HTMLElement, integration: Integration, state: WizardState): void {
  const tid = ctx.user.tid;
  const go = (next: WizardState) => {
    saveWizard(tid, next);
    renderWizard(ctx, main, integration, next);
    focusOn(main.querySelector<HTMLElement>("#wizard-step"));
  };
  const progress = h(
    "ol",
    { class: "steps", "aria-label": "Set-up steps" },
    STEPS.map((label, i) =>
      h(
        "li",
        { class: i + 1 < state.step ? "done" : i + 1 === state.step ? "current" : "", "aria-current": i + 1 === state.step ? "step" : null },
        h("span", { class: "step-no" }, String(i + 1)),
        " ",
        label,
      ),
    ),
  );
  const heading = h("h2", { id: "wizard-step", tabindex: "-1" }, `Step ${state.step} of 4: ${STEPS[state.step - 1]}`);
  const body = h("section", { class: "card wizard", "aria-labelledby": "wizard-step" }, heading);
  replace(main, pageHeading("Set up the calendar integration"), progress, body);

  if (state.step === 1) stepVendor(ctx, body, integration, state, go);
  else if (state.step === 2) stepMethod(ctx, body, state, go);
  else if (state.step === 3) stepAuthorize(ctx, body, state, go);
  else stepTest(ctx, body, state, () => {
    saveWizard(tid, null);
    ctx.flash("success", "The calendar integration is set up.");
    ctx.refresh();
  }, (code) => go({ ...state, step: 3, verifying: false, consentError: code }));
}

/**
 * Consent came back as "verifying": poll the integration until the service has proven it (it
 * retries for up to 10 minutes while Microsoft Entra ID propagates a fresh consent). Resolves with
 * null once granted, or the error code when it gave up.
 */
async function waitForConsent(ctx: Ctx, area: HTMLElement, alive: () => boolean): Promise<string | null> {
  const live = h("p", { class: "live", role: "status", "aria-live": "polite" }, "Consent received. Microsoft is activating it for your organisation…");
  replace(area, h("div", { class: "progress-box" }, h("progress", { "aria-label": "Consent verification" }), live));
  const started = Date.now();
  for (;;) {
    if (!alive()) return null;
    const integration = await ctx.api.get<Integration>("/integration");
    const consent = integration.consent;
    if (consent?.status === "granted") return null;
    if (consent?.status !== "verifying") return consent?.errorCode || "consent_failed";
    const seconds = Math.round((Date.now() - started) / 1000);
    live.textContent = `Consent received. Microsoft is activating it for your organisation; this can take a few minutes (${seconds} s)…`;
    await sleep(2000);
  }
}

function stepVendor(
  ctx: Ctx,
  body: HTMLElement,
  integration: Integration,
  state: WizardState,
  go: (s: WizardState) => void,
): void {
  const owner = h("input", {
    type: "email",
    name: "ownerEmail",
    required: true,
    autocomplete: "email",
    value: state.ownerEmail || integration.ownerEmail || ctx.user.upn,
  });
  const sample = h("input", {
    type: "number",
    name: "sampleSize",
    min: "1",
    max: "500",
    inputmode: "numeric",
    value: String(state.sampleSize ?? integration.accessTestSampleSize ?? 25),
  });
  const error = h("div");
  const form = h(
    "form",
    { novalidate: true },
    h(
      "fieldset",
      null,
      h("legend", null, "Calendar vendor"),
      h(
        "div",
        { class: "choice" },
        h("input", { type: "radio", name: "vendor", id: "vendor-outlook365", value: "outlook365", checked: true }),
        h("label", { for: "vendor-outlook365" }, "Outlook 365 (Microsoft 365)"),
      ),
    ),
    field("Integration owner email", owner, "This person is emailed if calendars stop syncing or access is lost."),
    h(
      "details",
      { class: "more" },
      h("summary", null, "More options"),
      field("Mailboxes to sample in each access test", sample, "From 1 to 500. The test runs after consent and then daily."),
    ),
    error,
    h(
      "div",
      { class: "actions" },
      integration.status !== "not_configured"
        ? button("Cancel", () => {
            saveWizard(ctx.user.tid, null);
            ctx.refresh();
          })
        : null,
      h("button", { type: "submit", class: "primary" }, "Next"),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = owner.value.trim();
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(value)) {
      owner.setAttribute("aria-invalid", "true");
      replace(error, notice("error", "Enter the owner's email address, like owner@example.com."));
      owner.focus();
      return;
    }
    const size = Number(sample.value);
    if (!Number.isInteger(size) || size < 1 || size > 500) {
      sample.setAttribute("aria-invalid", "true");
      replace(error, notice("error", "The sample size is a whole number from 1 to 500."));
      sample.focus();
      return;
    }
    go({ ...state, step: 2, ownerEmail: value, sampleSize: size });
  });
  body.append(form);
}

function stepMethod(ctx: Ctx, body: HTMLElement, state: WizardState, go: (s: WizardState) => void): void {
  const error = h("div");
  const options = (Object.keys(METHODS) as Method[]).map((method) => {
    const id = `method-${method}`;
    return h(
      "div",
      { class: "choice choice-block" },
      h("input", {
        type: "radio",
        name: "method",
        id,
        value: method,
        checked: state.method === method,
        "aria-describedby": `${id}-text`,
      }),
      h(
        "label",
        { for: id },
        METHODS[method]!.label,
        method === "domainWide" ? [" ", badge("Recommended", "ok")] : null,
      ),
      h("p", { class: "hint", id: `${id}-text` }, METHODS[method]!.text),
    );
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Next");
  const form = h(
    "form",
    null,
    h("fieldset", null, h("legend", null, "How should the service reach calendars?"), options),
    error,
    h("div", { class: "actions" }, button("Back", () => go({ ...state, step: 1 })), submit),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const method = (new FormData(form).get("method") as Method | null) ?? "domainWide";
    void busy(submit, async () => {
      try {
        await ctx.api.call("PUT", "/integration", {
          vendor: "outlook365",
          method,
          ownerEmail: state.ownerEmail,
          enabled: true,
          accessTestSampleSize: state.sampleSize ?? 25,
        });
        go({ ...state, step: 3, method, consentError: undefined });
      } catch (e) {
        replace(error, notice("error", errorText(e)));
      }
    });
  });
  body.append(form);
}

function stepAuthorize(ctx: Ctx, body: HTMLElement, state: WizardState, go: (s: WizardState) => void): void {
  const error = h("div");
  if (state.consentError) {
    error.append(
      notice(
        "error",
        `Consent was not granted (${state.consentError}). Nothing was changed in Microsoft 365. You can try again.`,
      ),
    );
  }
  const back = button("Back", () => go({ ...state, step: 2 }));
  const review = h("p", null, h("a", { href: "#/admin/permissions" }, "Review the permissions and how data is used"));
  if (state.method === "domainWide") {
    const grant = button(
      "Grant admin consent",
      () =>
        void busy(grant, async () => {
          try {
            const { consentUrl } = await ctx.api.call<{ consentUrl: string }>("POST", "/integration/consent");
            saveWizard(ctx.user.tid, { ...state, consentError: undefined });
            location.assign(browserUrl(ctx.config, consentUrl));
          } catch (e) {
            replace(error, notice("error", errorText(e)));
          }
        }),
      { class: "primary" },
    );
    body.append(
      h(
        "p",
        null,
        "Microsoft asks you, as an administrator, to consent for your organisation. You come back here when it is done, and the service then tests which mailboxes it can reach.",
      ),
      review,
      error,
      h("div", { class: "actions" }, back, grant),
    );
    return;
  }
  const text =
    state.method === "perUser"
      ? "With the per-user method each person connects their own calendar from the Connection page. There is nothing to authorize for the whole organisation."
      : "Connect the scheduling mailbox from the Connection page while signed in as that mailbox. The access test checks the calendars it can reach.";
  body.append(
    h("p", null, text),
    review,
    error,
    h(
      "div",
      { class: "actions" },
      back,
      button("Run the access test", () => go({ ...state, step: 4, startTest: true }), { class: "primary" }),
    ),
  );
}

function stepTest(ctx: Ctx, body: HTMLElement, state: WizardState, done: () => void, refused: (code: string) => void): void {
  const area = h("div");
  const doneButton = button("Done", done, { class: "primary", disabled: true });
  const again = button("Run the test again", () => void run(true), { disabled: true });
  body.append(area, h("div", { class: "actions" }, again, doneButton));
  let alive = true;
  ctx.onLeave(() => {
    alive = false;
  });
  const run = async (fresh: boolean) => {
    doneButton.disabled = true;
    again.disabled = true;
    const report = await runAccessTest(ctx, area, fresh, () => alive);
    again.disabled = false;
    doneButton.disabled = report === null;
    if (report) focusOn(area.querySelector<HTMLElement>("h3"));
  };
  if (state.verifying) {
    void (async () => {
      try {
        const code = await waitForConsent(ctx, area, () => alive);
        if (!alive) return;
        if (code) refused(code);
        else {
          saveWizard(ctx.user.tid, { ...state, verifying: false });
          void run(false);
        }
      } catch (e) {
        replace(area, notice("error", errorText(e)));
      }
    })();
    return;
  }
  void run(Boolean(state.startTest));
}

/**
 * Start (or follow) an access test and show its progress, then its counts and the table of
 * unreachable users. Resolves with the finished report, or null when it failed.
 */
async function runAccessTest(
  ctx: Ctx,
  area: HTMLElement,
  start: boolean,
  alive: () => boolean,
): Promise<AccessTestReport | null> {
  const live = h("p", { class: "live", role: "status", "aria-live": "polite" }, "Starting the access test…");
  const bar = h("progress", { "aria-label": "Access test progress" });
  replace(area, h("div", { class: "progress-box" }, bar, live));
  try {
    let report: AccessTestReport | null = null;
    if (!start) {
      try {
        report = await ctx.api.get<AccessTestReport>("/integration/access-tests/latest");
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) throw e;
      }
    }
    if (start || report === null) {
      try {
        await ctx.api.call("POST", "/integration/access-tests");
      } catch (e) {
        // One is already running (another admin, the consent callback, the daily rerun): follow it.
        if (!(e instanceof ApiError && e.code === "access_test_running")) throw e;
      }
    }
    const started = Date.now();
    for (;;) {
      if (!alive()) return null;
      report = await ctx.api.get<AccessTestReport>("/integration/access-tests/latest");
      if (report.status !== "running") break;
      const seconds = Math.round((Date.now() - started) / 1000);
      live.textContent =
        report.sampled > 0
          ? `Testing mailboxes: ${report.accessible + report.inaccessible} of ${report.sampled} checked (${seconds} s)…`
          : `Testing which mailboxes the service can reach (${seconds} s)…`;
      await sleep(1000);
    }
    if (report.status === "failed") {
      replace(
        area,
        notice("error", `The access test could not finish${report.errorCode ? ` (${report.errorCode})` : ""}. Try again in a minute.`),
      );
      return null;
    }
    replace(area, reportView(report));
    return report;
  } catch (e) {
    replace(area, notice("error", errorText(e)));
    return null;
  }
}

function reportView(report: AccessTestReport): HTMLElement {
  const unreachable = report.users.filter((u) => u.reason !== "accessible");
  const counts = h(
    "ul",
    { class: "stats", "aria-label": "Access test results" },
    stat("Mailboxes tested", report.sampled, "stat-sampled"),
    stat("Reachable", report.accessible, "stat-accessible"),
    stat("Not reachable", report.inaccessible, "stat-inaccessible"),
  );
  const parts: Child[] = [
    h("h3", { tabindex: "-1" }, "Access test results"),
    h("p", { role: "status" }, `Finished: ${report.accessible} of ${report.sampled} mailboxes are reachable.`),
    counts,
  ];
  if (!unreachable.length) {
    parts.push(notice("success", "Every sampled mailbox is reachable."));
    return h("div", { class: "report" }, parts);
  }
  // One group per reason: the remediation hint once, then who it applies to.
  const groups = new Map<string, typeof unreachable>();
  for (const u of unreachable) groups.set(u.reason, [...(groups.get(u.reason) ?? []), u]);
  parts.push(
    h("h4", null, "What to do"),
    h(
      "ul",
      { class: "remedies" },
      [...groups.entries()].map(([reason, users]) =>
        h(
          "li",
          { "data-hint-reason": reason },
          h("strong", null, `${REASONS[reason] ?? reason} (${users.length})`),
          remedy(users.find((u) => u.hint)?.hint ?? "No automatic advice for this case."),
        ),
      ),
    ),
    h(
      "div",
      { class: "table-wrap", role: "region", "aria-labelledby": "unreachable-caption", tabindex: "0" },
      h(
        "table",
        { class: "table", id: "unreachable" },
        h("caption", { id: "unreachable-caption" }, `Unreachable users (${unreachable.length})`),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "User"), h("th", { scope: "col" }, "Reason"))),
        h(
          "tbody",
          null,
          [...groups.values()].flat().map((u) =>
            h("tr", { "data-reason": u.reason }, h("td", null, u.userPrincipalName || u.userId), h("td", null, REASONS[u.reason] ?? u.reason)),
          ),
        ),
      ),
    ),
  );
  return h("div", { class: "report" }, parts);
}

/**
 * A remediation hint: paragraphs (blank-line separated) and fenced ```powershell blocks, one
 * command each, shown as code with a copy button (the hint stays plain text: never HTML).
 */
export function remedy(hint: string): HTMLElement {
  const parts: Child[] = [];
  let step = 0;
  for (const block of hint.split(/\n{2,}/)) {
    const fenced = /^```([\w-]*)\n([\s\S]*?)\n?```$/.exec(block.trim());
    if (!fenced) {
      parts.push(h("p", null, block.trim()));
      continue;
    }
    step += 1;
    const command = fenced[2] ?? "";
    const status = h("span", { class: "copy-status", role: "status", "aria-live": "polite" });
    const copy = button("Copy", () => void copyText(command, status), { class: "copy", "aria-label": `Copy command ${step}` });
    parts.push(
      h(
        "div",
        { class: "command", "data-language": fenced[1] || "text" },
        // Scrolls sideways when long: focusable so keyboard users can scroll it too.
        h("pre", { tabindex: "0", "aria-label": `Command ${step}` }, h("code", null, command)),
        h("div", { class: "command-actions" }, copy, status),
      ),
    );
  }
  return h("div", { class: "remedy" }, parts);
}

async function copyText(text: string, status: HTMLElement): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = "Copied.";
  } catch {
    status.textContent = "Select the command and copy it (the browser did not allow copying).";
  }
}

function stat(label: string, value: number, id: string): HTMLElement {
  return h("li", { class: "stat" }, h("span", { class: "stat-value", id }, String(value)), h("span", { class: "stat-label" }, label));
}

// -- the integration page -------------------------------------------------------------------

function renderIntegration(ctx: Ctx, main: HTMLElement, integration: Integration): void {
  const status = STATUS[integration.status] ?? { label: integration.status, tone: "neutral" as const };
  const test = integration.lastAccessTest;
  const message = h("div");
  const testArea = h("div", { class: "test-area" });
  const rows: [string, Child][] = [
    ["Status", [badge(status.label, status.tone), integration.statusReason ? ` (${integration.statusReason.replace(/_/g, " ")})` : ""]],
    ["Vendor", "Outlook 365"],
    ["Method", integration.method ? METHODS[integration.method]?.label ?? integration.method : "Not chosen"],
    ["Integration owner", integration.ownerEmail ?? "Not set"],
    ["Enabled", integration.enabled ? "Yes" : "No"],
    ["Admin consent", integration.consent?.status ?? "none"],
    [
      "Last access test",
      test
        ? test.status === "running"
          ? "Running now"
          : `${test.accessible} of ${test.sampled} mailboxes reachable${test.finishedAt ? `, ${new Date(test.finishedAt).toLocaleString()}` : ""}`
        : "Not run yet",
    ],
  ];
  const details = h("dl", { class: "details" }, rows.map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));

  let alive = true;
  ctx.onLeave(() => {
    alive = false;
  });
  const retest = button("Retest", () =>
    void busy(retest, async () => {
      replace(message);
      await runAccessTest(ctx, testArea, true, () => alive);
    }),
  );
  const edit = button("Edit", () => {
    saveWizard(ctx.user.tid, {
      step: 1,
      ownerEmail: integration.ownerEmail ?? ctx.user.upn,
      method: integration.method ?? "domainWide",
    });
    ctx.refresh();
  });
  const toggle = button(integration.enabled ? "Disable" : "Enable", () =>
    void busy(toggle, async () => {
      try {
        await ctx.api.call("PUT", "/integration", {
          vendor: "outlook365",
          method: integration.method ?? "domainWide",
          ownerEmail: integration.ownerEmail ?? ctx.user.upn,
          enabled: !integration.enabled,
        });
        ctx.flash("success", integration.enabled ? "The integration is disabled." : "The integration is enabled.");
        ctx.refresh();
      } catch (e) {
        replace(message, notice("error", errorText(e)));
      }
    }),
  );
  const disconnect = button("Disconnect", () => confirmDisconnect(ctx, message), { class: "danger" });
  const actions =
    integration.status === "disconnected"
      ? [button("Connect again", () => {
          saveWizard(ctx.user.tid, { step: 1, ownerEmail: integration.ownerEmail ?? ctx.user.upn, method: integration.method ?? "domainWide" });
          ctx.refresh();
        }, { class: "primary" })]
      : [retest, edit, toggle, disconnect];

  replace(
    main,
    pageHeading("Calendar integration"),
    message,
    h("section", { class: "card", "aria-labelledby": "status-h" }, h("h2", { id: "status-h" }, "Status"), details, h("div", { class: "actions" }, actions)),
    testArea,
    pairingForm(ctx),
    h("p", null, h("a", { href: "#/admin/permissions" }, "Permissions and data usage")),
  );
}

function confirmDisconnect(ctx: Ctx, message: HTMLElement): void {
  modal("Disconnect the integration?", (close) => {
    const yes = button(
      "Disconnect",
      () =>
        void busy(yes, async () => {
          try {
            await ctx.api.call("DELETE", "/integration");
            close();
            ctx.flash("success", "The integration is disconnected. Its subscriptions and secrets were removed.");
            ctx.refresh();
          } catch (e) {
            close();
            replace(message, notice("error", errorText(e)));
          }
        }),
      { class: "danger" },
    );
    return [
      h("p", null, "The service stops reading and writing calendars for your organisation and forgets its credentials. Sessions already in Outlook stay there."),
      h("div", { class: "actions" }, button("Keep it", close), yes),
    ];
  });
}

function pairingForm(ctx: Ctx): HTMLElement {
  const mentor = h("input", { type: "email", name: "mentor", required: true, autocomplete: "off" });
  const mentee = h("input", { type: "email", name: "mentee", required: true, autocomplete: "off" });
  const message = h("div");
  const submit = h("button", { type: "submit" }, "Pair them");
  const form = h(
    "form",
    { class: "pair-form" },
    h(
      "fieldset",
      null,
      h("legend", null, "Pair two people"),
      h("p", { class: "hint" }, "Your product's server usually does this. Paired people can book sessions with each other."),
      field("Mentor's email", mentor),
      field("Mentee's email", mentee),
    ),
    message,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const id = `p-${crypto.getRandomValues(new Uint32Array(2)).join("").slice(0, 16)}`;
    void busy(submit, async () => {
      try {
        await ctx.api.call("PUT", `/pairings/${id}`, { mentor: mentor.value.trim(), mentee: mentee.value.trim(), active: true });
        replace(message, notice("success", `Paired ${mentor.value.trim()} with ${mentee.value.trim()}.`));
        form.reset();
      } catch (e) {
        replace(message, notice("error", errorText(e)));
      }
    });
  });
  return h("section", { class: "card", "aria-label": "Pairings" }, form);
}

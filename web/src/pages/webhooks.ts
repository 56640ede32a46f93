// #/admin/webhooks: the scheduling product's webhook endpoints (admins). Register an endpoint
// (its signing secret is shown once, with a copy button), choose the events, enable or
// disable it, rotate the secret, send a ping, read the delivery log, replay one delivery or
// everything since a time. The routes: /api/webhooks/endpoints (docs/product-integration.md).

import { badge, busy, button, type Child, field, h, notice, replace } from "../dom";
import { type Ctx, errorText, modal, pageHeading } from "../ui";

export interface WebhookEndpoint {
  id: string;
  url: string;
  events: string[];
  description?: string | null;
  enabled: boolean;
  disabledReason?: "by_request" | "gone" | "failing" | null;
  disabledAt?: string | null;
  failingSince?: string | null;
  lastSuccessAt?: string | null;
  previousSecretValidUntil?: string | null;
  createdAt: string;
  updatedAt: string;
}

interface Delivery {
  id: string;
  at: string;
  eventId: string;
  type: string;
  attempt: number;
  outcome: "delivered" | "failed" | "gave_up" | "gone";
  statusCode?: number | null;
  latencyMs?: number | null;
  error?: string | null;
}

const EVENT_TYPES: [string, string][] = [
  ["session.booked", "Session booked"],
  ["session.rescheduled", "Session moved"],
  ["session.cancelled", "Session cancelled"],
  ["session.failed", "Session failed"],
  ["session.response_changed", "RSVP changed"],
  ["series.booked", "Series booked"],
  ["series.rescheduled", "Series rescheduled"],
  ["series.cancelled", "Series cancelled"],
  ["series.failed", "Series failed"],
  ["integration.status_changed", "Integration status changed"],
  ["connection.needs_reconnect", "Connection needs reconnecting"],
  ["access_test.completed", "Access test finished"],
  ["availability_rules.changed", "Offered hours changed"],
];
const DISABLED: Record<string, string> = {
  by_request: "Disabled",
  gone: "Disabled: the endpoint answered 410 Gone",
  failing: "Disabled: failing for 24 hours",
};
const OUTCOME: Record<Delivery["outcome"], ["ok" | "warn" | "bad" | "neutral", string]> = {
  delivered: ["ok", "Delivered"],
  failed: ["warn", "Failed (retrying)"],
  gave_up: ["bad", "Given up"],
  gone: ["bad", "Gone (410)"],
};
const BASE = "/webhooks/endpoints";

function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "";
}

export async function renderWebhooks(ctx: Ctx, main: HTMLElement): Promise<void> {
  const message = h("div", { id: "webhooks-message" });
  const list = h("div", { id: "webhooks-list" });
  const log = h("section", { id: "webhook-log", "aria-labelledby": "webhook-log-title" });
  replace(
    main,
    pageHeading("Webhooks"),
    h("p", null, "Your scheduling product hears about every booking, move, cancellation and answer through these "
      + "endpoints: signed HTTPS POSTs following the Standard Webhooks specification, retried for at least 24 hours."),
    message,
    list,
    createForm(ctx, message, () => void load()),
    log,
  );

  const say = (kind: "error" | "info" | "success" | "warning", ...text: Child[]) => replace(message, notice(kind, ...text));

  const load = async (): Promise<void> => {
    let endpoints: WebhookEndpoint[];
    try {
      endpoints = await ctx.api.get<WebhookEndpoint[]>(BASE);
    } catch (e) {
      replace(list, notice("error", errorText(e)));
      return;
    }
    replace(list, endpoints.length ? table(endpoints) : h("p", { class: "hint" }, "No endpoints yet."));
  };

  const table = (endpoints: WebhookEndpoint[]): HTMLElement =>
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table", id: "webhook-endpoints" },
        h("caption", null, "Endpoints"),
        h("thead", null, h("tr", null, ["URL", "Events", "Status", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, endpoints.map(row)),
      ),
    );

  const row = (e: WebhookEndpoint): HTMLElement => {
    const status = e.enabled
      ? e.failingSince
        ? badge(`Failing since ${when(e.failingSince)}`, "warn")
        : badge("Enabled", "ok")
      : badge(DISABLED[e.disabledReason ?? "by_request"] ?? "Disabled", e.disabledReason === "by_request" ? "neutral" : "bad");
    const toggle = button(e.enabled ? "Disable" : "Enable", (ev) =>
      void busy(ev.currentTarget as HTMLButtonElement, async () => {
        try {
          await ctx.api.call("PATCH", `${BASE}/${e.id}`, { enabled: !e.enabled });
          say("success", e.enabled ? "Endpoint disabled." : "Endpoint enabled: deliveries that waited are being sent.");
          await load();
        } catch (err) {
          say("error", errorText(err));
        }
      }),
    );
    const ping = button("Send ping", (ev) =>
      void busy(ev.currentTarget as HTMLButtonElement, async () => {
        try {
          const queued = await ctx.api.call<{ eventId: string }>("POST", `${BASE}/${e.id}/ping`);
          say("info", `Ping ${queued.eventId} queued; its outcome shows in the delivery log.`);
          await showLog(e, true);
        } catch (err) {
          say("error", errorText(err));
        }
      }),
    );
    const rotate = button("Rotate secret", () => {
      modal("Rotate the signing secret?", (close) => [
        h("p", null, "A new secret is made and shown once. For 24 hours every delivery carries two signatures, "
          + "so your receiver can switch to the new secret without missing anything."),
        h(
          "div",
          { class: "actions" },
          button("Rotate", (ev) =>
            void busy(ev.currentTarget as HTMLButtonElement, async () => {
              try {
                const rotated = await ctx.api.call<{ secret: string; previousSecretValidUntil: string }>("POST", `${BASE}/${e.id}/rotate-secret`);
                close();
                replace(message, secretNotice(rotated.secret, `The old secret keeps working until ${when(rotated.previousSecretValidUntil)}.`));
                await load();
              } catch (err) {
                close();
                say("error", errorText(err));
              }
            }),
          { class: "primary" }),
          button("Keep the current secret", close),
        ),
      ]);
    });
    const logButton = button("Delivery log", () => void showLog(e, true));
    const remove = button("Delete", () => {
      modal("Delete this endpoint?", (close) => [
        h("p", null, `${e.url} will receive nothing more, and its delivery log is deleted.`),
        h(
          "div",
          { class: "actions" },
          button("Delete", (ev) =>
            void busy(ev.currentTarget as HTMLButtonElement, async () => {
              try {
                await ctx.api.call("DELETE", `${BASE}/${e.id}`);
                close();
                say("success", "Endpoint deleted.");
                replace(log);
                await load();
              } catch (err) {
                close();
                say("error", errorText(err));
              }
            }),
          { class: "danger" }),
          button("Keep it", close),
        ),
      ]);
    });
    const events = e.events.length ? e.events.join(", ") : "All events";
    return h(
      "tr",
      { "data-endpoint-id": e.id },
      h("td", null, h("code", { class: "endpoint-url" }, e.url), e.description ? h("div", { class: "hint" }, e.description) : null),
      h("td", { class: "endpoint-events" }, events),
      h("td", { class: "endpoint-status" }, status),
      h("td", null, h("div", { class: "row-actions" }, toggle, ping, logButton, rotate, remove)),
    );
  };

  const showLog = async (e: WebhookEndpoint, focus: boolean): Promise<void> => {
    const rows = h("tbody");
    const more = h("div");
    const sinceInput = h("input", { type: "datetime-local", id: "replay-since", name: "since" });
    const sinceButton = button("Replay since", (ev) =>
      void busy(ev.currentTarget as HTMLButtonElement, async () => {
        if (!sinceInput.value) {
          say("warning", "Choose the time to replay from.");
          return;
        }
        try {
          await ctx.api.call("POST", `${BASE}/${e.id}/replay`, { since: new Date(sinceInput.value).toISOString() });
          say("info", "Every event since then is being sent again, with its original webhook-id.");
        } catch (err) {
          say("error", errorText(err));
        }
      }),
    );
    const refresh = button("Refresh", () => void page(undefined, true));
    const title = h("h2", { id: "webhook-log-title", tabindex: "-1" }, `Delivery log: ${e.url}`);
    replace(
      log,
      title,
      h("p", { class: "hint" }, "Each attempt, newest first, kept 30 days. Payloads and secrets are never shown."),
      h("div", { class: "toolbar" }, refresh, field("Replay everything since", sinceInput), sinceButton),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table", id: "webhook-deliveries" },
          h("thead", null, h("tr", null, ["Time", "Event", "Result", "Status", "Latency", "Attempt", ""].map((c) => h("th", { scope: "col" }, c)))),
          rows,
        ),
      ),
      more,
    );
    if (focus) title.focus();
    const page = async (before: string | undefined, fresh: boolean): Promise<void> => {
      const query = new URLSearchParams({ limit: "25" });
      if (before) query.set("before", before);
      let found: { deliveries: Delivery[]; next?: string | null };
      try {
        found = await ctx.api.get(`${BASE}/${e.id}/deliveries?${query}`);
      } catch (err) {
        replace(more, notice("error", errorText(err)));
        return;
      }
      if (fresh) replace(rows);
      for (const d of found.deliveries) rows.append(deliveryRow(e, d));
      if (!rows.children.length) rows.append(h("tr", null, h("td", { colspan: "7", class: "hint" }, "No deliveries yet.")));
      replace(more, found.next ? button("Older deliveries", () => void page(found.next ?? undefined, false)) : null);
    };
    await page(undefined, true);
  };

  const deliveryRow = (e: WebhookEndpoint, d: Delivery): HTMLElement => {
    const [tone, label] = OUTCOME[d.outcome] ?? ["neutral", d.outcome];
    const replay = button("Replay", (ev) =>
      void busy(ev.currentTarget as HTMLButtonElement, async () => {
        try {
          await ctx.api.call("POST", `${BASE}/${e.id}/deliveries/${d.id}/replay`);
          say("info", `Event ${d.eventId} is being sent again (same webhook-id).`);
        } catch (err) {
          say("error", errorText(err));
        }
      }),
    );
    return h(
      "tr",
      { "data-delivery-id": d.id, "data-event-type": d.type, "data-outcome": d.outcome },
      h("td", null, when(d.at)),
      h("td", null, d.type, h("div", { class: "hint" }, h("code", null, d.eventId))),
      h("td", null, badge(label, tone)),
      h("td", { class: "delivery-status" }, d.statusCode != null ? String(d.statusCode) : (d.error ?? "")),
      h("td", null, d.latencyMs != null ? `${d.latencyMs} ms` : ""),
      h("td", null, String(d.attempt)),
      h("td", null, replay),
    );
  };

  await load();
}

function secretNotice(secret: string, extra?: string): HTMLElement {
  const input = h("input", { type: "text", readonly: true, value: secret, id: "webhook-secret", class: "secret", "aria-label": "Signing secret" });
  const copied = h("span", { role: "status", class: "hint" });
  const copy = button("Copy", () => {
    input.select();
    void navigator.clipboard?.writeText(secret).then(
      () => (copied.textContent = "Copied."),
      () => (copied.textContent = "Select the text and copy it."),
    );
  });
  return notice(
    "success",
    h("strong", null, "Signing secret (shown only now): "),
    h("div", { class: "secret-row" }, input, copy, copied),
    h("p", null, "Keep it in your product's secret store and verify every delivery with it. ", extra ?? ""),
  );
}

function createForm(ctx: Ctx, message: HTMLElement, reload: () => void): HTMLElement {
  const url = h("input", { type: "url", id: "webhook-url", name: "url", required: true, placeholder: "e.g. product.example.com/webhooks/calendar" });
  const description = h("input", { type: "text", id: "webhook-description", name: "description", maxlength: "500" });
  const boxes = EVENT_TYPES.map(([value, label]) => {
    const box = h("input", { type: "checkbox", name: "events", value, id: `event-${value}` });
    return h("label", { class: "check" }, box, ` ${label} `, h("code", { class: "hint" }, value));
  });
  const form = h(
    "form",
    { id: "webhook-create", class: "card" },
    h("h2", null, "Add an endpoint"),
    field("Endpoint URL (https)", url, "Public https only; the host must not resolve to a private address."),
    field("Description (optional)", description),
    h("fieldset", null, h("legend", null, "Events (none ticked: all of them)"), boxes),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Add endpoint")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const submit = form.querySelector<HTMLButtonElement>("button[type=submit]");
    void busy(submit, async () => {
      const events = [...form.querySelectorAll<HTMLInputElement>("input[name=events]:checked")].map((b) => b.value);
      try {
        const created = await ctx.api.call<WebhookEndpoint & { secret: string }>("POST", BASE, {
          url: url.value.trim(),
          events,
          ...(description.value.trim() ? { description: description.value.trim() } : {}),
        });
        form.reset();
        replace(message, secretNotice(created.secret));
        reload();
      } catch (err) {
        replace(message, notice("error", errorText(err)));
      }
    });
  });
  return form;
}

// #/admin/audit: the organisation's audit trail (admins). Newest first: each admin change (what
// changed, from what to what) and every request the product's server made (for whom, on which
// ids, with what answer). Ids and statuses only, never content. The route: GET
// /api/integration/audit (pages of 50; "Older entries" follows the `next` cursor).

import { badge, busy, button, h, notice, replace } from "../dom";
import { type Ctx, errorText, pageHeading } from "../ui";

export interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  onBehalfOf?: string | null;
  ids?: Record<string, string> | null;
  status?: number | null;
  code?: string | null;
  changes?: Record<string, unknown[]> | null;
}

interface AuditPage {
  entries: AuditEntry[];
  next?: string | null;
}

const APP = "app:";

function outcome(e: AuditEntry): HTMLElement | string {
  if (e.status == null) return "";
  const tone = e.status < 300 ? "ok" : e.status < 500 ? "warn" : "bad";
  return badge(e.code ? `${e.status} ${e.code}` : String(e.status), tone);
}

function details(e: AuditEntry): string {
  const ids = Object.entries(e.ids ?? {}).map(([k, v]) => `${k} ${v}`);
  const changes = Object.entries(e.changes ?? {}).map(([k, v]) => `${k}: ${JSON.stringify(v[0])} → ${JSON.stringify(v[1])}`);
  return [...ids, ...changes].join("; ");
}

export async function renderAudit(ctx: Ctx, main: HTMLElement): Promise<void> {
  const message = h("div", { id: "audit-message" });
  const rows = h("tbody");
  const more = h("div", { class: "actions" });
  replace(
    main,
    pageHeading("Audit trail"),
    h("p", null, "Who changed the integration, and every request your scheduling product's server made for your "
      + "users: when, for whom, on which session or pairing, and the answer it got. Ids only, never meeting content."),
    message,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table", id: "audit-entries" },
        h("caption", null, "Newest first"),
        h("thead", null, h("tr", null, ["When", "Who", "What", "For", "Details", "Answer"].map((c) => h("th", { scope: "col" }, c)))),
        rows,
      ),
    ),
    more,
  );

  const row = (e: AuditEntry): HTMLElement =>
    h(
      "tr",
      { "data-action": e.action, "data-actor": e.actor },
      h("td", null, new Date(e.at).toLocaleString()),
      h("td", null, e.actor.startsWith(APP) ? h("span", null, "App ", h("code", null, e.actor.slice(APP.length))) : h("code", null, e.actor)),
      h("td", { class: "audit-action" }, e.action),
      h("td", null, e.onBehalfOf ? h("code", null, e.onBehalfOf) : ""),
      h("td", { class: "audit-details" }, details(e)),
      h("td", { class: "audit-outcome" }, outcome(e)),
    );

  const load = async (before?: string): Promise<void> => {
    let page: AuditPage;
    try {
      const query = before ? `?before=${encodeURIComponent(before)}` : "";
      page = await ctx.api.get<AuditPage>(`/integration/audit${query}`);
    } catch (e) {
      replace(message, notice("error", errorText(e)));
      return;
    }
    if (!before && !page.entries.length) replace(message, notice("info", "Nothing recorded yet."));
    rows.append(...page.entries.map(row));
    const next = page.next;
    replace(
      more,
      next
        ? button("Older entries", (ev) => void busy(ev.currentTarget as HTMLButtonElement, () => load(next)))
        : null,
    );
  };
  await load();
}

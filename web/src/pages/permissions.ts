// #/admin/permissions: what the app asks Microsoft 365 for, why, and what it stores.

import type { Permissions } from "../api";
import { h, replace } from "../dom";
import { type Ctx, METHODS, pageHeading } from "../ui";

export async function renderPermissions(ctx: Ctx, main: HTMLElement): Promise<void> {
  const found = await ctx.api.get<Permissions>("/integration/permissions", { anonymous: true });
  const methods = [...new Set(found.permissions.map((p) => p.method ?? "domainWide"))];
  replace(
    main,
    pageHeading("Permissions and data usage"),
    h("p", null, "What the service asks Microsoft 365 for, depending on the connection method, and why."),
    methods.map((method) =>
      h(
        "section",
        { class: "card" },
        h("h2", null, METHODS[method]?.label ?? method),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "table" },
            h("caption", { class: "visually-hidden" }, `Permissions for the ${METHODS[method]?.label ?? method} method`),
            h(
              "thead",
              null,
              h("tr", null, h("th", { scope: "col" }, "Permission"), h("th", { scope: "col" }, "Type"), h("th", { scope: "col" }, "Access"), h("th", { scope: "col" }, "Why")),
            ),
            h(
              "tbody",
              null,
              found.permissions
                .filter((p) => (p.method ?? "domainWide") === method)
                .map((p) =>
                  h(
                    "tr",
                    null,
                    h("th", { scope: "row" }, h("code", null, p.name)),
                    h("td", null, p.type === "application" ? "Application" : "Delegated"),
                    h("td", null, p.access === "readWrite" ? "Read and write" : "Read"),
                    h("td", null, p.purpose),
                  ),
                ),
            ),
          ),
        ),
      ),
    ),
    h("section", { class: "card" }, h("h2", null, "Data usage"), h("p", null, found.dataUsage)),
    ctx.user.isAdmin ? h("p", null, h("a", { href: "#/admin" }, "Back to the integration")) : null,
  );
}

// #/connection: the caller's calendar connection (per-user and service-account methods).

import { ApiError } from "../api";
import type { Connection } from "../api";
import { browserUrl } from "../config";
import { badge, busy, button, h, notice, replace } from "../dom";
import { type Ctx, errorText, METHODS, pageHeading } from "../ui";

export async function renderConnection(ctx: Ctx, main: HTMLElement): Promise<void> {
  let connection: Connection;
  try {
    connection = await ctx.api.get<Connection>("/me/connection");
  } catch (e) {
    if (e instanceof ApiError && e.status === 501) {
      replace(main, pageHeading("Your calendar connection"), notice("info", "Per-user calendar connections are not available on this service yet."));
      return;
    }
    throw e;
  }
  const message = h("div");
  const connect = button(
    connection.needsReconnect ? "Reconnect my calendar" : "Connect my Microsoft 365 calendar",
    () =>
      void busy(connect, async () => {
        try {
          const { authorizeUrl } = await ctx.api.call<{ authorizeUrl: string }>("POST", "/me/connection");
          location.assign(browserUrl(ctx.config, authorizeUrl));
        } catch (e) {
          replace(message, notice("error", errorText(e)));
        }
      }),
    { class: "primary" },
  );
  const disconnect = button("Disconnect my calendar", () =>
    void busy(disconnect, async () => {
      try {
        await ctx.api.call("DELETE", "/me/connection");
        ctx.flash("success", "Your calendar is disconnected. The service forgot your sign-in.");
        ctx.refresh();
      } catch (e) {
        replace(message, notice("error", errorText(e)));
      }
    }),
  );
  const method = connection.method ?? null;
  const perUser = method === "perUser" || method === "serviceAccount";
  const state = connection.needsReconnect
    ? badge("Needs reconnecting", "warn")
    : connection.connected
      ? badge("Connected", "ok")
      : badge("Not connected", "neutral");
  replace(
    main,
    pageHeading("Your calendar connection"),
    message,
    h(
      "section",
      { class: "card" },
      h("dl", { class: "details" }, h("dt", null, "Status"), h("dd", null, state), h("dt", null, "Method"), h("dd", null, method ? METHODS[method]?.label ?? method : "Not set up")),
      connection.needsReconnect
        ? notice("warning", `Your organisation's calendar connection for you stopped working${connection.reason ? ` (${connection.reason})` : ""}. Reconnect to keep your sessions in sync.`)
        : null,
      method === "domainWide"
        ? h("p", null, "Your organisation connected everyone's calendar. There is nothing for you to do.")
        : null,
      !method ? h("p", null, "Your organisation has not set up the calendar integration yet.") : null,
      perUser ? h("div", { class: "actions" }, !connection.connected || connection.needsReconnect ? connect : null, connection.connected ? disconnect : null) : null,
    ),
  );
}

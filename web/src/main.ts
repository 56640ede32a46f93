// The console's shell: runtime config, sign-in, navigation and hash routing.

import "./styles.css";
import { Api, ApiError } from "./api";
import type { CalendarSettings, Connection } from "./api";
import { createAuth, type Auth, type SignedInUser } from "./auth";
import { loadConfig, type RuntimeConfig } from "./config";
import { button, focusOn, h, notice, replace } from "./dom";
import { consentReturned, renderAdmin } from "./pages/admin";
import { renderAudit } from "./pages/audit";
import { renderConnection } from "./pages/connection";
import { renderGroup } from "./pages/group";
import { renderDefaultOfferedHours, renderMyOfferedHours } from "./pages/offered_hours";
import { renderPermissions } from "./pages/permissions";
import { renderSessions } from "./pages/sessions";
import { renderSignIn } from "./pages/signin";
import { forgetSlotsView, renderSlots } from "./pages/slots";
import { renderWebhooks } from "./pages/webhooks";
import { browserTimeZone } from "./time";
import { type Ctx, errorText } from "./ui";

type Page = (ctx: Ctx, main: HTMLElement) => Promise<void>;

const ROUTES: Record<string, { title: string; page: Page; admin?: boolean }> = {
  "#/admin": { title: "Integration", page: renderAdmin, admin: true },
  "#/admin/permissions": { title: "Permissions", page: renderPermissions },
  "#/admin/webhooks": { title: "Webhooks", page: renderWebhooks, admin: true },
  "#/admin/audit": { title: "Audit trail", page: renderAudit, admin: true },
  "#/slots": { title: "Find a time", page: renderSlots },
  "#/group": { title: "Book a group", page: renderGroup },
  "#/sessions": { title: "My sessions", page: renderSessions },
  "#/offered-hours": { title: "My offered hours", page: renderMyOfferedHours },
  "#/admin/offered-hours": { title: "Default offered hours", page: renderDefaultOfferedHours, admin: true },
  "#/connection": { title: "Connection", page: renderConnection },
};
const NAV: [string, string, boolean][] = [
  ["#/admin", "Integration", true],
  ["#/admin/webhooks", "Webhooks", true],
  ["#/slots", "Find a time", false],
  ["#/group", "Book a group", false],
  ["#/sessions", "My sessions", false],
  ["#/offered-hours", "My offered hours", false],
  ["#/connection", "Connection", false],
  ["#/admin/offered-hours", "Default hours", true],
  ["#/admin/audit", "Audit trail", true],
  ["#/admin/permissions", "Permissions", false],
];

class Shell {
  private flashes: { kind: "error" | "info" | "success" | "warning"; text: string }[] = [];
  private leaving: (() => void)[] = [];
  private tz: Promise<string> | null = null;
  private reconnectChecked = false;
  private firstRender = true;
  private generation = 0;
  private signInNote: string | undefined;
  readonly header = h("header", { class: "top" });
  readonly banners = h("div", { class: "banners", id: "banners" });
  readonly main = h("main", { id: "main", tabindex: "-1" });

  constructor(
    private readonly config: RuntimeConfig,
    private readonly auth: Auth,
    private readonly api: Api,
  ) {
    api.onError((e) => this.apiFailed(e));
    window.addEventListener("hashchange", () => void this.route());
    document.getElementById("skip-link")?.addEventListener("click", (event) => {
      event.preventDefault();
      focusOn(this.main);
    });
  }

  mount(root: HTMLElement): void {
    replace(root, this.header, this.banners, this.main);
    root.removeAttribute("aria-busy");
  }

  flash(kind: "error" | "info" | "success" | "warning", text: string): void {
    this.flashes.push({ kind, text });
  }

  async route(): Promise<void> {
    const generation = ++this.generation;
    for (const fn of this.leaving.splice(0)) fn();
    const user = this.auth.user();
    if (!user) {
      this.renderHeader(null);
      replace(this.banners);
      const note = this.signInNote;
      this.signInNote = undefined;
      this.main.dataset.route = "#/signin";
      await renderSignIn(this.auth, this.main, (signedIn) => this.signedIn(signedIn), note);
      this.afterRender();
      return;
    }
    let hash = location.hash.split("?")[0] ?? "";
    if (!ROUTES[hash]) {
      hash = user.isAdmin ? "#/admin" : "#/slots";
      history.replaceState(null, "", `${location.pathname}${hash}`);
    }
    const route = ROUTES[hash]!;
    document.title = `${route.title} · Calendar integration`;
    this.renderHeader(user, hash);
    const flashes = this.flashes.splice(0).map((f) => notice(f.kind, f.text));
    // Each render builds a fresh view and shows it only if no newer navigation happened meanwhile,
    // so a slow page can never replace the page the person has moved on to.
    const view = h("div", { class: "view" });
    this.main.setAttribute("aria-busy", "true");
    try {
      await route.page(this.ctx(user, generation), view);
      if (flashes.length) view.prepend(...flashes);
    } catch (e) {
      if (generation !== this.generation) return;
      if (e instanceof ApiError && e.status === 401) return this.route();
      replace(view, h("h1", { tabindex: "-1" }, route.title), ...flashes, notice("error", errorText(e)));
    }
    if (generation !== this.generation) return;
    replace(this.main, view);
    this.main.dataset.route = hash;
    this.main.removeAttribute("aria-busy");
    this.afterRender();
    if (!this.reconnectChecked && !hash.startsWith("#/admin")) void this.checkConnection();
  }

  private afterRender(): void {
    if (!this.firstRender) focusOn(this.main.querySelector<HTMLElement>("h1"));
    this.firstRender = false;
  }

  private ctx(user: SignedInUser, generation: number): Ctx {
    return {
      config: this.config,
      auth: this.auth,
      api: this.api,
      user,
      flash: (kind, text) => this.flash(kind, text),
      onLeave: (fn) => {
        if (generation === this.generation) this.leaving.push(fn);
        else fn(); // the page was left before it finished rendering
      },
      refresh: () => void this.route(),
      timeZone: () => {
        this.tz ??= this.api
          .get<CalendarSettings>("/me/calendar-settings")
          .then((s) => s.timeZone || browserTimeZone())
          .catch(() => browserTimeZone());
        return this.tz;
      },
    };
  }

  private signedIn(user: SignedInUser): void {
    this.forgetUserData();
    const target = user.isAdmin ? "#/admin" : "#/slots";
    if (location.hash === target) void this.route();
    else location.hash = target;
  }

  private async signOut(): Promise<void> {
    this.forgetUserData();
    for (const key of Object.keys(sessionStorage)) if (key.startsWith("console.")) sessionStorage.removeItem(key);
    await this.auth.signOut();
    history.replaceState(null, "", `${location.pathname}#/signin`);
    await this.route();
  }

  /** Nothing cached for one person may be shown to the next one signing in on this tab. */
  private forgetUserData(): void {
    this.tz = null;
    this.reconnectChecked = false;
    this.flashes = [];
    forgetSlotsView();
  }

  private renderHeader(user: SignedInUser | null, active = ""): void {
    const brand = h("a", { class: "brand", href: user ? (user.isAdmin ? "#/admin" : "#/slots") : "#/signin" }, "Calendar integration");
    if (!user) {
      replace(this.header, brand);
      return;
    }
    const links = NAV.filter(([, , admin]) => !admin || user.isAdmin).map(([href, label]) =>
      h("li", null, h("a", { href, "aria-current": href === active ? "page" : null }, label)),
    );
    replace(
      this.header,
      brand,
      h("nav", { "aria-label": "Main" }, h("ul", null, links)),
      h(
        "div",
        { class: "who" },
        h("span", { class: "who-name", title: user.upn }, user.upn || user.name),
        user.isAdmin ? h("span", { class: "who-role" }, " (admin)") : null,
        " ",
        button("Sign out", () => void this.signOut(), { class: "link" }),
      ),
    );
  }

  private apiFailed(error: ApiError): void {
    if (error.status === 401) {
      this.auth.expired();
      this.signInNote = "Your sign-in has expired. Sign in again.";
    } else if (error.code === "reconnect_required") {
      this.showReconnect(error.message);
    }
  }

  private async checkConnection(): Promise<void> {
    this.reconnectChecked = true;
    try {
      const connection = await this.api.get<Connection>("/me/connection");
      if (connection.needsReconnect) this.showReconnect(connection.reason ?? undefined);
    } catch {
      // Not available (501) or not onboarded: the pages say so themselves.
    }
  }

  private showReconnect(reason?: string): void {
    replace(
      this.banners,
      notice(
        "warning",
        h("strong", null, "Your calendar connection needs renewing. "),
        reason ? `${reason} ` : "",
        h("a", { href: "#/connection" }, "Reconnect now"),
      ),
    );
  }
}

/** The consent and connection callbacks come back as ?consent=... / ?connection=... on the app URL. */
function handleReturn(auth: Auth, shell: Shell): void {
  const params = new URLSearchParams(location.search);
  const consent = params.get("consent");
  const connection = params.get("connection");
  if (!consent && !connection) return;
  const user = auth.user();
  let hash = location.hash;
  if (consent) {
    if (user) consentReturned(user.tid, consent, params.get("code"));
    hash = "#/admin";
  } else if (connection) {
    const ok = connection === "connected" || connection === "granted";
    shell.flash(ok ? "success" : "error", ok ? "Your calendar is connected." : `Your calendar could not be connected (${params.get("code") ?? connection}).`);
    hash = "#/connection";
  }
  history.replaceState(null, "", `${location.pathname}${hash}`);
}

async function boot(): Promise<void> {
  const root = document.getElementById("app")!;
  try {
    const config = await loadConfig();
    const auth = await createAuth(config);
    const api = new Api(config, auth);
    const shell = new Shell(config, auth, api);
    shell.mount(root);
    handleReturn(auth, shell);
    await shell.route();
  } catch (e) {
    root.removeAttribute("aria-busy");
    replace(root, h("main", { id: "main" }, h("h1", null, "The console cannot start"), notice("error", errorText(e))));
  }
}

void boot();

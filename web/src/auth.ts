// Who is signed in and how to get an access token for the API. Two implementations:
// "local" (a user picker whose tokens the local host mints through the simulator) and
// "entra" (MSAL.js against Entra ID, loaded on demand so local mode stays small).

import type { RuntimeConfig } from "./config";

export const ADMIN_ROLE = "Integration.Admin";

export interface SignedInUser {
  name: string;
  upn: string;
  oid: string;
  tid: string;
  roles: string[];
  isAdmin: boolean;
}

export interface Auth {
  readonly mode: "local" | "entra";
  /** The signed-in user, or null when the console must show sign-in. */
  user(): SignedInUser | null;
  /** A bearer token for the API (may redirect to sign in when it cannot get one silently). */
  token(): Promise<string>;
  signOut(): Promise<void>;
  /** The API answered 401: forget the session so the next render shows sign-in. */
  expired(): void;
}

/** Claims of a JWT, read only to label the UI (the API checks the token itself). */
export function claimsOf(token: string): Record<string, unknown> {
  const part = token.split(".")[1] ?? "";
  const padded = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  try {
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  } catch {
    return {};
  }
}

export function userFromToken(token: string): SignedInUser {
  const c = claimsOf(token);
  const roles = Array.isArray(c.roles) ? c.roles.map(String) : [];
  const upn = String(c.preferred_username ?? c.upn ?? c.email ?? "");
  return {
    name: String(c.name ?? upn),
    upn,
    oid: String(c.oid ?? ""),
    tid: String(c.tid ?? ""),
    roles,
    isAdmin: roles.includes(ADMIN_ROLE),
  };
}

const LOCAL_KEY = "console.local.session";

interface LocalSession {
  token: string;
  expiresAt: number;
}

/** Local mode: the token sits in sessionStorage (this tab only) and is dropped on sign-out or 401. */
export class LocalAuth implements Auth {
  readonly mode = "local" as const;

  user(): SignedInUser | null {
    const session = this.session();
    return session ? userFromToken(session.token) : null;
  }

  async token(): Promise<string> {
    const session = this.session();
    if (!session) throw new Error("Not signed in.");
    return session.token;
  }

  async signIn(user: string, admin: boolean): Promise<SignedInUser> {
    const response = await fetch("/_dev/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user, roles: admin ? [ADMIN_ROLE] : [] }),
    });
    const body = (await response.json().catch(() => ({}))) as { access_token?: string; error?: { message?: string } };
    if (!response.ok || !body.access_token) {
      throw new Error(body.error?.message ?? `Sign-in failed (HTTP ${response.status}).`);
    }
    const exp = Number(claimsOf(body.access_token).exp ?? 0) * 1000;
    sessionStorage.setItem(LOCAL_KEY, JSON.stringify({ token: body.access_token, expiresAt: exp }));
    return userFromToken(body.access_token);
  }

  async signOut(): Promise<void> {
    sessionStorage.removeItem(LOCAL_KEY);
  }

  expired(): void {
    sessionStorage.removeItem(LOCAL_KEY);
  }

  private session(): LocalSession | null {
    const raw = sessionStorage.getItem(LOCAL_KEY);
    if (!raw) return null;
    try {
      const session = JSON.parse(raw) as LocalSession;
      if (session.expiresAt && session.expiresAt < Date.now() + 30_000) {
        sessionStorage.removeItem(LOCAL_KEY);
        return null;
      }
      return session;
    } catch {
      sessionStorage.removeItem(LOCAL_KEY);
      return null;
    }
  }
}

export interface LocalDirectory {
  id: string;
  domain: string;
  users: { id: string; userPrincipalName: string; displayName: string; kind: string }[];
}

export async function localDirectory(): Promise<LocalDirectory[]> {
  const response = await fetch("/_dev/users", { cache: "no-store" });
  if (!response.ok) throw new Error(`The local simulator's user list is not available (HTTP ${response.status}).`);
  return (await response.json()) as LocalDirectory[];
}

export async function createAuth(config: RuntimeConfig): Promise<Auth> {
  if (config.mode === "local") return new LocalAuth();
  const { createEntraAuth } = await import("./auth-entra");
  return createEntraAuth(config);
}

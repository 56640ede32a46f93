// Deployed sign-in: MSAL.js (bundled from npm into its own chunk; no CDN at run time).
// Redirect flow with the API scope; tokens live in sessionStorage (this tab) and MSAL
// renews them silently.

import { InteractionRequiredAuthError, PublicClientApplication } from "@azure/msal-browser";
import type { AccountInfo } from "@azure/msal-browser";
import type { Auth, SignedInUser } from "./auth";
import { userFromToken } from "./auth";
import type { RuntimeConfig } from "./config";

class EntraAuth implements Auth {
  readonly mode = "entra" as const;
  private cachedUser: SignedInUser | null = null;

  constructor(
    private readonly app: PublicClientApplication,
    private readonly scopes: string[],
    private account: AccountInfo | null,
    token: string | null,
  ) {
    if (token) this.cachedUser = userFromToken(token);
  }

  user(): SignedInUser | null {
    return this.account ? this.cachedUser : null;
  }

  async signIn(): Promise<void> {
    await this.app.loginRedirect({ scopes: this.scopes, redirectStartPage: location.href });
  }

  async token(): Promise<string> {
    if (!this.account) {
      await this.signIn();
      throw new Error("Redirecting to sign in.");
    }
    try {
      const result = await this.app.acquireTokenSilent({ scopes: this.scopes, account: this.account });
      this.cachedUser = userFromToken(result.accessToken);
      return result.accessToken;
    } catch (error) {
      if (error instanceof InteractionRequiredAuthError) {
        await this.app.acquireTokenRedirect({ scopes: this.scopes, account: this.account });
        throw new Error("Redirecting to sign in.");
      }
      throw error;
    }
  }

  async signOut(): Promise<void> {
    const account = this.account;
    this.account = null;
    this.cachedUser = null;
    await this.app.logoutRedirect({ account, postLogoutRedirectUri: location.origin + location.pathname });
  }

  expired(): void {
    this.cachedUser = null;
  }
}

export async function createEntraAuth(config: RuntimeConfig): Promise<Auth & { signIn(): Promise<void> }> {
  const app = new PublicClientApplication({
    auth: { clientId: config.clientId, authority: config.authority, redirectUri: config.redirectUri },
    cache: { cacheLocation: "sessionStorage" },
  });
  await app.initialize();
  const result = await app.handleRedirectPromise();
  const account = result?.account ?? app.getAllAccounts()[0] ?? null;
  if (account) app.setActiveAccount(account);
  const scopes = [config.apiScope];
  let token: string | null = result?.accessToken ?? null;
  if (account && !token) {
    try {
      token = (await app.acquireTokenSilent({ scopes, account })).accessToken;
    } catch {
      token = null;
    }
  }
  return new EntraAuth(app, scopes, token ? account : null, token);
}

// The runtime config (config.json next to index.html): the API base URL and sign-in settings
// come from the deployment, not from a rebuild.

export interface RuntimeConfig {
  apiBaseUrl: string;
  mode: "local" | "entra";
  clientId: string;
  authority: string;
  apiScope: string;
  redirectUri: string;
  simulatorUrl?: string;
}

export async function loadConfig(): Promise<RuntimeConfig> {
  const response = await fetch("./config.json", { cache: "no-store", credentials: "omit" });
  if (!response.ok) {
    throw new Error(`config.json is missing (HTTP ${response.status}); the deployment writes it next to index.html.`);
  }
  const raw = (await response.json()) as Partial<RuntimeConfig>;
  if (raw.mode !== "local" && raw.mode !== "entra") throw new Error('config.json: mode must be "local" or "entra".');
  if (!raw.apiBaseUrl) throw new Error("config.json: apiBaseUrl is required.");
  if (raw.mode === "entra" && (!raw.clientId || !raw.authority || !raw.apiScope)) {
    throw new Error("config.json: clientId, authority and apiScope are required in entra mode.");
  }
  return {
    apiBaseUrl: raw.apiBaseUrl.replace(/\/+$/, ""),
    mode: raw.mode,
    clientId: raw.clientId ?? "",
    authority: raw.authority ?? "",
    apiScope: raw.apiScope ?? "",
    redirectUri: raw.redirectUri || `${location.origin}${location.pathname}`,
    simulatorUrl: raw.simulatorUrl,
  };
}

/**
 * Local mode only: the simulator's consent and sign-in pages go through the local host's
 * /_dev/sim proxy, because the browser does not trust the simulator's local CA.
 */
export function browserUrl(config: RuntimeConfig, url: string): string {
  const sim = config.simulatorUrl?.replace(/\/+$/, "");
  if (config.mode === "local" && sim && url.startsWith(`${sim}/`)) {
    return `/_dev/sim${url.slice(sim.length)}`;
  }
  return url;
}

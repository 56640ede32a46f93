// Writes web/dist/config.json for a deployed console from the azd environment (or the
// process environment): the API base URL and the Entra sign-in settings. Run after
// `npm run build:web` and before publishing web/dist (the azd `web` service's prepackage
// hook; docs/web-console.md). Nothing here is secret: a SPA's client id and scope are public.
//
//   API_BASE_URL=https://func-api-x.azurewebsites.net/api ENTRA_CLIENT_ID=<guid> \
//   WEB_URL=https://<site>.azurestaticapps.net node web/write-config.mjs
import { execFileSync } from "node:child_process";
import { writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function azdValues() {
  try {
    const out = execFileSync("azd", ["env", "get-values", "--output", "json"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return JSON.parse(out);
  } catch {
    return {};
  }
}

const env = { ...azdValues(), ...process.env };
const need = (name) => {
  const value = env[name];
  if (!value) {
    console.error(`write-config: ${name} is not set (run after \`azd provision\`, or export it).`);
    process.exit(1);
  }
  return value.replace(/\/+$/, "");
};

const clientId = need("ENTRA_CLIENT_ID");
const webUrl = need("WEB_URL");
const config = {
  apiBaseUrl: need("API_BASE_URL"),
  mode: "entra",
  clientId: env.WEB_CLIENT_ID || clientId,
  authority: env.WEB_AUTHORITY || "https://login.microsoftonline.com/organizations",
  apiScope: env.API_SCOPE || `api://${clientId}/access_as_user`,
  redirectUri: `${webUrl}/`,
};
const target = join(dirname(fileURLToPath(import.meta.url)), "dist", "config.json");
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, `${JSON.stringify(config, null, 2)}\n`);
console.log(`write-config: ${target} -> API ${config.apiBaseUrl}, sign-in ${config.authority}`);

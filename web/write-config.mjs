// Writes web/dist/config.json for a deployed console from the azd environment (or the
// process environment): the API base URL and the Entra sign-in settings. Run after
// `npm run build:web` and before publishing web/dist (the azd `web` service's prepackage
// hook; docs/web-console.md). Nothing here is secret: a SPA's client id and scope are public.
//
//   API_BASE_URL=https://func-api-x.azurewebsites.net/api ENTRA_CLIENT_ID=<guid> \
//   WEB_URL=https://<site>.azurestaticapps.net node web/write-config.mjs
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
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
const dist = join(dirname(fileURLToPath(import.meta.url)), "dist");
const target = join(dist, "config.json");
mkdirSync(dist, { recursive: true });
writeFileSync(target, `${JSON.stringify(config, null, 2)}\n`);
console.log(`write-config: ${target} -> API ${config.apiBaseUrl}, sign-in ${config.authority}`);

// The Content-Security-Policy of the deployed console (web/staticwebapp.config.json, copied to
// dist by the build) allows fetches to its own origin and Microsoft sign-in only; the API's
// origin is known now, from the same values as config.json, so it is added here (and the
// sign-in origin, should WEB_AUTHORITY point elsewhere). Without this the console cannot call
// the API: it fails closed.
const swaPath = join(dist, "staticwebapp.config.json");
if (!existsSync(swaPath)) {
  console.error("write-config: web/dist/staticwebapp.config.json is missing (run `npm run build:web` first).");
  process.exit(1);
}
const origin = (url) => {
  const parsed = new URL(url);
  if (parsed.protocol !== "https:") {
    console.error(`write-config: ${url} is not https; the deployed console only talks to https origins.`);
    process.exit(1);
  }
  return parsed.origin;
};
function withSources(policy, additions) {
  const directives = policy.split(";").map((d) => d.trim()).filter(Boolean).map((d) => d.split(/\s+/));
  for (const [name, sources] of Object.entries(additions)) {
    let directive = directives.find((d) => d[0] === name);
    if (!directive) {
      directive = [name];
      directives.push(directive);
    }
    for (const source of sources) if (!directive.includes(source)) directive.push(source);
  }
  return directives.map((d) => d.join(" ")).join("; ");
}
const swa = JSON.parse(readFileSync(swaPath, "utf8"));
const headers = swa.globalHeaders ?? {};
const policy = headers["Content-Security-Policy"];
if (!policy) {
  console.error("write-config: staticwebapp.config.json has no Content-Security-Policy to extend.");
  process.exit(1);
}
const signIn = origin(config.authority);
headers["Content-Security-Policy"] = withSources(policy, {
  "connect-src": [origin(config.apiBaseUrl), signIn],
  "frame-src": [signIn],
});
swa.globalHeaders = headers;
writeFileSync(swaPath, `${JSON.stringify(swa, null, 2)}\n`);
console.log(`write-config: ${swaPath} -> connect-src adds ${origin(config.apiBaseUrl)}`);

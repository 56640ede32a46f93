// npm run build:web: bundle web/src into web/dist (esbuild; no framework, no CDN at run time).
// MSAL is imported dynamically, so it lands in its own chunk that only "entra" mode loads.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const web = dirname(fileURLToPath(import.meta.url));
const dist = join(web, "dist");
const quiet = process.argv.includes("--quiet");

// Keep a config.json written by a deployment; drop everything else.
rmSync(join(dist, "assets"), { recursive: true, force: true });
mkdirSync(join(dist, "assets"), { recursive: true });

await build({
  entryPoints: [join(web, "src", "main.ts")],
  outdir: join(dist, "assets"),
  bundle: true,
  splitting: true,
  format: "esm",
  minify: true,
  target: ["es2022"],
  entryNames: "[name]",
  chunkNames: "chunk-[hash]",
  legalComments: "none",
  logLevel: "warning",
});
copyFileSync(join(web, "index.html"), join(dist, "index.html"));
copyFileSync(join(web, "staticwebapp.config.json"), join(dist, "staticwebapp.config.json"));

const rows = [];
for (const name of readdirSync(join(dist, "assets"))) {
  const bytes = readFileSync(join(dist, "assets", name));
  rows.push({ name, raw: statSync(join(dist, "assets", name)).size, gzip: gzipSync(bytes, { level: 9 }).length });
}
const initial = rows.filter((r) => r.name === "main.js" || r.name === "main.css");
const sum = (list, key) => list.reduce((n, r) => n + r[key], 0);
if (!quiet) {
  for (const r of rows) console.log(`  ${r.name.padEnd(24)} ${String(r.raw).padStart(8)} B  ${String(r.gzip).padStart(7)} B gzip`);
  console.log(`web console built: first load ${sum(initial, "raw")} B (${sum(initial, "gzip")} B gzip) + index.html`);
}

// Builds the customer SDK and the agent console into the Python package's static files.
// Run by `make` during set-up; the outputs are not committed.
//
// Beside them, sdk/integrity.json holds each bundle's Subresource Integrity hash (sha384), which
// `tandem sdk` checks against the files before printing a pinned <script> tag. No source maps:
// what is pinned is exactly what is served, and nothing else about the sources is published.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { patchRrweb } from "./rrweb-patches.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const staticDir = resolve(here, "../src/tandem/server/static");

// `node build.mjs --bench-plaintext OUTDIR` builds a copy that sends page content unencrypted, to
// measure what encryption costs (bench/). Production builds can never do that: the flag is a
// compile-time constant and the plaintext branch is removed from them.
const benchIndex = process.argv.indexOf("--bench-plaintext");
const benchDir = benchIndex >= 0 ? resolve(process.argv[benchIndex + 1]) : null;
const outDir = benchDir ?? staticDir;

// One version number for the whole product: the Python package's, read from its only source.
const init = await readFile(resolve(here, "../src/tandem/__init__.py"), "utf8");
const version = /^__version__ = "([^"]+)"$/m.exec(init)?.[1];
if (!version) throw new Error("no __version__ in src/tandem/__init__.py");

// rrweb is bundled with Tandem's patches to it (rrweb-patches.mjs says which, and why).
const common = {
  plugins: [patchRrweb],
  define: {
    __TANDEM_BENCH_PLAINTEXT__: benchDir ? "true" : "false",
    __TANDEM_VERSION__: JSON.stringify(version),
  },
  bundle: true,
  minify: true,
  sourcemap: false,
  target: "es2020",
  format: "iife",
  legalComments: "none",
  logLevel: "warning",
};

await mkdir(resolve(outDir, "sdk"), { recursive: true });
await mkdir(resolve(outDir, "console"), { recursive: true });
await Promise.all([
  build({ ...common, entryPoints: [resolve(here, "src/share/index.ts")], outfile: resolve(outDir, "sdk/tandem.js") }),
  build({ ...common, entryPoints: [resolve(here, "src/console/index.ts")], outfile: resolve(outDir, "console/console.js") }),
  copyFile(resolve(here, "node_modules/rrweb/dist/style.css"), resolve(outDir, "console/rrweb.css")),
]);
// Maps left by earlier builds would still be served (the console's folder is served whole).
await Promise.all(["sdk/tandem.js.map", "console/console.js.map"].map((map) => rm(resolve(outDir, map), { force: true })));

const BUNDLES = ["sdk/tandem.js", "console/console.js"];
const integrity = {};
for (const bundle of BUNDLES) {
  integrity[bundle] = `sha384-${createHash("sha384").update(await readFile(resolve(outDir, bundle))).digest("base64")}`;
}
await writeFile(resolve(outDir, "sdk/integrity.json"), `${JSON.stringify(integrity, null, 2)}\n`);

console.log(`built sdk/tandem.js and console/console.js (version ${version})${benchDir ? ` (plaintext benchmark build in ${benchDir})` : ""}`);

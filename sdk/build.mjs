// Builds the customer SDK and the agent console into the Python package's static files.
// Run by `make` during set-up; the outputs are not committed.
import { build } from "esbuild";
import { copyFile, mkdir, readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

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

const common = {
  define: {
    __TANDEM_BENCH_PLAINTEXT__: benchDir ? "true" : "false",
    __TANDEM_VERSION__: JSON.stringify(version),
  },
  bundle: true,
  minify: true,
  sourcemap: true,
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
console.log(`built sdk/tandem.js and console/console.js (version ${version})${benchDir ? ` (plaintext benchmark build in ${benchDir})` : ""}`);

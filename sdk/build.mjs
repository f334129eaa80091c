// Builds the customer SDK and the agent console into the Python package's static files.
// Run by `make` during set-up; the outputs are not committed.
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const staticDir = resolve(here, "../src/tandem/server/static");

const common = {
  bundle: true,
  minify: true,
  sourcemap: true,
  target: "es2020",
  format: "iife",
  legalComments: "none",
  logLevel: "warning",
};

await mkdir(resolve(staticDir, "sdk"), { recursive: true });
await mkdir(resolve(staticDir, "console"), { recursive: true });
await Promise.all([
  build({ ...common, entryPoints: [resolve(here, "src/share/index.ts")], outfile: resolve(staticDir, "sdk/tandem.js") }),
  build({ ...common, entryPoints: [resolve(here, "src/console/index.ts")], outfile: resolve(staticDir, "console/console.js") }),
  copyFile(resolve(here, "node_modules/rrweb/dist/style.css"), resolve(staticDir, "console/rrweb.css")),
]);
console.log("built sdk/tandem.js and console/console.js");

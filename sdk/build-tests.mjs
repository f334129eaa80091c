// Builds each test file (test/*.test.ts) into .test-build/ for `npm test`, with the same esbuild
// transform tsx applies, so that node:test runs plain JavaScript. Each file still runs in a
// process of its own, but without tsx's loader: that cost about 0.35 s of CPU per file (a loader
// thread and an on-the-fly transform of every module), most of the suite's CPU time on a 2-core
// machine. Packages stay external (node_modules, as the tests import them); source maps are
// inline so a failure points at the .ts line. .test-build/ sits beside test/, so a test's
// `new URL("../src/…", import.meta.url)` still names the source tree.
import { build } from "esbuild";
import { readdirSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(here, ".test-build");
rmSync(outdir, { recursive: true, force: true }); // no test a deleted .ts left behind
const tests = readdirSync(resolve(here, "test")).filter((name) => name.endsWith(".test.ts"));
await build({
  entryPoints: tests.map((name) => resolve(here, "test", name)),
  outdir,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  packages: "external",
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: "inline",
  logLevel: "warning",
});

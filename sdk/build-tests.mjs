// Builds the test files (test/*.test.ts) for `npm test` (run-tests.mjs) into .test-build/, with
// the same esbuild transform tsx applies, so that node:test runs plain JavaScript without a loader.
// The files are bundled into a few groups, one node process each, instead of one process per file:
// a process's start-up, node:test's own, and loading fast-check, pako, rrweb, happy-dom and the
// sources the files share cost about 0.25 s of CPU, which 36 processes paid 36 times (a third of
// the suite's CPU). The files that import ./dom.ts (happy-dom's interface objects installed as
// globals) run in a process of their own, apart from the code that must run without a DOM.
// Within a group the files share one copy of each module, in the order below (by name), and their
// top-level hooks apply to the whole group; failures still name the test and, through the source
// map, the .ts file and line. Packages stay external (node_modules, as the tests import them).
// .test-build/ sits beside test/, so a test's `new URL("../src/…", import.meta.url)` still names
// the source tree. Nothing is rebuilt while no input (test or source file, this script, the
// installed packages) is newer than the last build.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(here, ".test-build");
const stamp = resolve(outdir, "inputs.json");

/** The groups, each a bundle run in a process of its own: test file names by group name. */
function groups() {
  const names = readdirSync(resolve(here, "test")).filter((name) => name.endsWith(".test.ts")).sort();
  const dom = (name, seen = new Set()) => {
    if (name === "dom.ts") return true;
    if (seen.has(name)) return false;
    seen.add(name);
    const source = readFileSync(resolve(here, "test", name), "utf8");
    return [...source.matchAll(/(?:from|import) "\.\/([\w.-]+\.ts)"/g)].some(([, helper]) => dom(helper, seen));
  };
  return { dom: names.filter((name) => dom(name)), main: names.filter((name) => !dom(name)) };
}

/** True when the last build is still that of these groups and no input changed since. */
function upToDate(plan) {
  if (!existsSync(stamp)) return false;
  const built = statSync(stamp).mtimeMs;
  const last = JSON.parse(readFileSync(stamp, "utf8"));
  if (JSON.stringify(last.plan) !== JSON.stringify(plan)) return false;
  const inputs = [...last.inputs, "build-tests.mjs", "node_modules/.installed", "test"];
  return inputs.every((input) => existsSync(resolve(here, input)) && statSync(resolve(here, input)).mtimeMs <= built);
}

/** Builds what changed; returns the bundles to run, one per group. */
export async function buildTests() {
  const plan = groups();
  const bundles = Object.keys(plan).filter((group) => plan[group].length > 0).map((group) => resolve(outdir, `${group}.mjs`));
  if (upToDate(plan)) return bundles;
  const { build } = await import("esbuild");
  const started = new Date(); // the stamp's time: a file changed while building is built again
  rmSync(outdir, { recursive: true, force: true }); // no test a deleted .ts left behind
  mkdirSync(outdir);
  const result = await build({
    entryPoints: Object.keys(plan).filter((group) => plan[group].length > 0).map((group) => ({ in: `group:${group}`, out: group })),
    outdir,
    absWorkingDir: here,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    packages: "external",
    format: "esm",
    platform: "node",
    target: "node20",
    // A linked map without the sources' text: the smallest for node to read (--enable-source-maps).
    sourcemap: "linked",
    sourcesContent: false,
    metafile: true,
    logLevel: "warning",
    plugins: [{
      name: "groups",
      setup(b) {
        b.onResolve({ filter: /^group:/ }, (args) => ({ path: args.path.slice("group:".length), namespace: "group" }));
        b.onLoad({ filter: /.*/, namespace: "group" }, (args) => ({
          contents: plan[args.path].map((name) => `import "./${name}";`).join("\n"),
          resolveDir: resolve(here, "test"),
          loader: "js",
        }));
      },
    }],
  });
  const inputs = Object.keys(result.metafile.inputs).filter((input) => !input.startsWith("group:"));
  writeFileSync(stamp, JSON.stringify({ plan, inputs }));
  utimesSync(stamp, started, started);
  return bundles;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildTests();

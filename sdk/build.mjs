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

// Two fixes to rrweb 2.2.2's bundle (node_modules/rrweb/dist/rrweb.js), applied as it is
// bundled. The patterns are matched exactly: a different rrweb fails the build here (look at its
// bundle again) rather than silently bundling it unpatched.
//
// PostCSS: the bundle inlines PostCSS twice, for rrweb-snapshot (the replayer's rewriting of
// `:hover` rules and media queries) and for rrdom (used by nothing), each a CommonJS module run
// at the bundle's top level, and keeps both alive with bare reads of their exports
// (`import_postcss.default.stringify;` …, left over from its own ESM re-exports). So the SDK
// carried two copies it never calls (the recorder does not rewrite CSS) and the console one too
// many, each parsed, compiled and run on every page load. The bare reads, which do nothing, are
// dropped, and the module runs and the one binding marked pure (they only build PostCSS's own
// objects): tree-shaking keeps a copy only where it is used, the console's replayer, which runs
// it at load as before.
//
// Untainted prototypes: before trusting the page's DOM accessors, rrweb checks that they are
// native, and if not takes fresh ones from a hidden iframe it adds to the page and removes. Its
// list for Element checks `querySelector` and `querySelectorAll` as accessors, which they are
// not (they are methods), so the check always failed: every page the SDK records added and
// removed an iframe (a new document and script context) twice, once per copy of the helpers,
// about 10 ms each. Checked as methods (upstream's fix, rrweb-io/rrweb#1802), a page whose
// Element is native uses its own prototype; a page that patched any of the three still gets the
// iframe's.
//
// Children of an element in one insertion: the replayer rebuilds a full snapshot bottom-up
// (buildNodeWithSN), appending each child to its parent as it is built. Chromium's form
// association makes each insertion into a `<form>` cost in proportion to the controls already in
// it, so a form of 5,000 fields took over 30 s to rebuild in the agent's mirror on a 2-core
// machine (bench/RESULTS.md, "Large pages"), while the same children inserted at once, from a
// fragment, take milliseconds. An element's children (not a shadow root's, not the document's)
// are built into a fragment and appended to it at once; `afterAppend` is then called for each in
// order, each in place as before (the replayer's only collects iframes, dialogs and media, and
// attaches them after the whole rebuild).
//
// Added nodes at once: a live mutation's added nodes were applied one by one in the same way (the
// replayer's applyMutation builds each with skipChild and inserts it into its parent), so a page
// that adds thousands of fields to a form while shared kept the mirror behind for as long. The
// replayer now hands a mutation's adds to `tandemAddsAtOnce` (patches/rrweb-adds-at-once.js, which
// says which mutations it takes and how it keeps their order) before its own path, which still
// applies every mutation it declines.
const ADDS_AT_ONCE = await readFile(resolve(here, "patches/rrweb-adds-at-once.js"), "utf8");
const ELEMENT_ACCESSORS = '\tElement: [\n\t\t"shadowRoot",\n\t\t"querySelector",\n\t\t"querySelectorAll"\n\t],\n';
const ELEMENT_METHODS = '\tElement: [],\n\tMutationObserver: ["constructor"]\n';
const RRWEB_PATCHES = [
  // [what, pattern, how many, replacement]
  ["PostCSS bare reads", /^import_postcss(?:\$1)?\.default(?:\.[A-Za-z]+)?;\n/gm, 49, ""],
  ["PostCSS module runs", /^(var import_postcss(?:\$1)? = \/\* @__PURE__ \*\/ __toESM(?:\$1)?\()\(/gm, 2, "$1/* @__PURE__ */ ("],
  // the one use's binding: a property read, which esbuild must otherwise keep (it could throw)
  ["PostCSS binding", /^var postcss_default = import_postcss\$1\.default;$/gm, 1,
    "var postcss_default = /* @__PURE__ */ (() => import_postcss$1.default)();"],
  ["Element accessors to check", new RegExp(ELEMENT_ACCESSORS.replace(/[[\]]/g, "\\$&"), "g"), 3, '\tElement: ["shadowRoot"],\n'],
  ["Element methods to check", new RegExp(ELEMENT_METHODS.replace(/[[\]]/g, "\\$&"), "g"), 3,
    '\tElement: ["querySelector", "querySelectorAll"],\n\tMutationObserver: ["constructor"]\n'],
  ["Children of an element in one insertion", /^\t\t\} else node\.appendChild\(childNode\);\n\t\tif \(afterAppend\) afterAppend\(childNode, childN\.id\);\n\t\}\n\treturn node;\n\}\n/gm, 1,
    "\t\t} else if (n.type === NodeType$3.Element) {\n" +
    "\t\t\t(built ??= []).push([childNode, childN.id]);\n\t\t\t(fragment ??= doc.createDocumentFragment()).appendChild(childNode);\n" +
    "\t\t\tcontinue;\n\t\t} else node.appendChild(childNode);\n\t\tif (afterAppend) afterAppend(childNode, childN.id);\n\t}\n" +
    "\tif (fragment) node.appendChild(fragment);\n\tif (built && afterAppend) for (const [childNode, id] of built) afterAppend(childNode, id);\n" +
    "\treturn node;\n}\n"],
  ["Added nodes at once", /^\t\td\.adds\.forEach\(\(mutation\) => \{\n\t\t\tappendNode\(mutation\);\n\t\t\}\);\n/gm, 1,
    "\t\tif (this.usingVirtualDom || Object.keys(legacy_missingNodeMap).length || !tandemAddsAtOnce(d.adds, mirror, this.iframe.contentDocument, this.cache, (node, id) => {\n" +
    "\t\t\tapplyDialogToTopLevel(node);\n" +
    "\t\t\tfor (const plugin of this.config.plugins || []) if (plugin.onBuild) plugin.onBuild(node, { id, replayer: this });\n" +
    "\t\t})) d.adds.forEach((mutation) => {\n\t\t\tappendNode(mutation);\n\t\t});\n"],
  ["Added nodes at once (the function)", /^function isSerializedIframe\(n, mirror\) \{$/gm, 1,
    () => `${ADDS_AT_ONCE}function isSerializedIframe(n, mirror) {`],
  ["Children's fragment", /^\tmirror\.add\(node, n\);\n\tif \(\(n\.type === NodeType\$3\.Document \|\| n\.type === NodeType\$3\.Element\) && !skipChild\) for/gm, 1,
    "\tmirror.add(node, n);\n\tlet fragment = null, built = null;\n\tif ((n.type === NodeType$3.Document || n.type === NodeType$3.Element) && !skipChild) for"],
];
const patchRrweb = {
  name: "patch-rrweb",
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]rrweb[\\/]dist[\\/]rrweb\.js$/ }, async (args) => {
      let source = await readFile(args.path, "utf8");
      for (const [what, pattern, expected, replacement] of RRWEB_PATCHES) {
        const found = source.match(pattern)?.length ?? 0;
        if (found !== expected) throw new Error(`rrweb.js: ${found} of "${what}", expected ${expected} (a new rrweb? see build.mjs)`);
        source = source.replace(pattern, replacement);
      }
      return { contents: source, loader: "js" };
    });
  },
};

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

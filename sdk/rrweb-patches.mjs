// rrweb 2.2.2's bundle (node_modules/rrweb/dist/rrweb.js) as Tandem ships it: the patches below,
// applied by build.mjs as the bundles are built (`patchRrweb`, an esbuild plugin), and by the SDK's
// unit tests to run the replayer the console runs (`patchedRrwebSource`).
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

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
//
// A next sibling that never comes: rrweb's add loop puts back in its queue an added node whose
// next sibling (`nextId`) is not in the mirror, and goes round its queue again and again until
// that sibling is there or 500 ms have passed (then it drops what is left). A next sibling that is
// no node the mirror holds and none added in the mutation never comes: each such mutation, which
// a hostile page's SDK can send continuously, cost the agent's tab 500 ms (10 of them: 5.1 s;
// bench/RESULTS.md, "A next sibling that never comes"). rrweb's recorder names as next sibling
// only a node already in the page or one added in the same mutation (in an order of its own:
// earlier or later in the list), so the loop now waits only for a node added in the mutation, and
// only while its rounds place or drop something: at the first round that changes nothing (the
// next one would be the same), it waits for none. Such a node goes in at its parent's end, as
// one with no next sibling does (what a hostile page can add anyway); an honest page's order is
// kept wherever its next sibling comes. A node waits for its own next sibling (by id) and goes in
// as soon as that one does, not at the loop's next round: rrweb's loop placed one node of a chain
// each round (a hostile list of a chain in reverse of rrweb's order, each naming the one after
// it), going through what was left each time, so a chain of 1 000 took its 500 ms limit and lost
// the rest, each mutation. rrweb's recorder lists a node after its next sibling (and after its
// parent), so an honest page's nodes never wait (sdk/test/rrweb-honest-replay.test.ts).
//
// Resolve trees in one pass: the add loop's queue (nodes whose parent or next sibling was not there
// yet) is sorted into trees by rrweb's queueToResolveTrees, which puts a node before its next
// sibling by looking that sibling up in an array (`indexOf`) and inserting beside it (`splice`):
// quadratic in the queue. A hostile page's mutation of 100 000 nodes under a parent that never
// comes, half of them naming as next sibling one of the others, kept the agent's tab busy for
// seconds to over a minute (bench/RESULTS.md, "Resolve trees"), before the loop's 500 ms limit is
// even looked at. The same trees are now built with linked lists (each node knows its neighbours,
// so it goes in beside its next sibling at once), then turned into rrweb's arrays.
const RESOLVE_TREES = `function queueToResolveTrees(queue) {
\tconst queueNodeMap = {};
\tconst putIntoMap = (m, parent) => {
\t\tconst nodeInTree = {
\t\t\tvalue: m,
\t\t\tparent,
\t\t\tchildren: []
\t\t};
\t\tqueueNodeMap[m.node.id] = nodeInTree;
\t\treturn nodeInTree;
\t};
\tconst queueNodeTrees = [];
\tfor (const mutation of queue) {
\t\tconst { nextId, parentId } = mutation;
\t\tif (nextId && nextId in queueNodeMap) {
\t\t\tconst nextInTree = queueNodeMap[nextId];
\t\t\tif (nextInTree.parent) {
\t\t\t\tconst idx = nextInTree.parent.children.indexOf(nextInTree);
\t\t\t\tnextInTree.parent.children.splice(idx, 0, putIntoMap(mutation, nextInTree.parent));
\t\t\t} else {
\t\t\t\tconst idx = queueNodeTrees.indexOf(nextInTree);
\t\t\t\tqueueNodeTrees.splice(idx, 0, putIntoMap(mutation, null));
\t\t\t}
\t\t\tcontinue;
\t\t}
\t\tif (parentId in queueNodeMap) {
\t\t\tconst parentInTree = queueNodeMap[parentId];
\t\t\tparentInTree.children.push(putIntoMap(mutation, parentInTree));
\t\t\tcontinue;
\t\t}
\t\tqueueNodeTrees.push(putIntoMap(mutation, null));
\t}
\treturn queueNodeTrees;
}
`;
// The same trees: each list (the roots, a node's children) linked through its nodes (`before`,
// `after`), so that a node goes in before its next sibling at once; ids keyed as rrweb's object
// keys them (a string), in a Map (rrweb's object also answered to "constructor" and the like).
const TANDEM_RESOLVE_TREES = `function queueToResolveTrees(queue) {
\tconst queueNodeMap = new Map(), made = [], roots = { first: null, last: null };
\tconst putIntoMap = (m, parent) => {
\t\tconst nodeInTree = { value: m, parent, children: [] };
\t\tqueueNodeMap.set(String(m.node.id), nodeInTree);
\t\tmade.push(nodeInTree);
\t\treturn nodeInTree;
\t};
\tconst listOf = (parent) => parent ? parent.tandemKids ??= { first: null, last: null } : roots;
\tconst insert = (list, node, before) => {
\t\tconst after = before ? before.tandemBefore : list.last;
\t\tnode.tandemBefore = after;
\t\tnode.tandemAfter = before;
\t\tif (after) after.tandemAfter = node;
\t\telse list.first = node;
\t\tif (before) before.tandemBefore = node;
\t\telse list.last = node;
\t};
\tfor (const mutation of queue) {
\t\tconst { nextId, parentId } = mutation;
\t\tconst nextInTree = nextId ? queueNodeMap.get(String(nextId)) : void 0;
\t\tif (nextInTree) {
\t\t\tinsert(listOf(nextInTree.parent), putIntoMap(mutation, nextInTree.parent), nextInTree);
\t\t\tcontinue;
\t\t}
\t\tconst parentInTree = queueNodeMap.get(String(parentId));
\t\tif (parentInTree) {
\t\t\tinsert(listOf(parentInTree), putIntoMap(mutation, parentInTree), null);
\t\t\tcontinue;
\t\t}
\t\tinsert(roots, putIntoMap(mutation, null), null);
\t}
\tconst toArray = (list) => {
\t\tconst out = [];
\t\tfor (let node = list.first; node; node = node.tandemAfter) out.push(node);
\t\treturn out;
\t};
\tfor (const node of made) if (node.tandemKids) node.children = toArray(node.tandemKids);
\treturn toArray(roots);
}
`;

// An element's attributes read through Element's own prototype: the recorder's serializer read
// `n.attributes` on the element itself, so on a `<form>` a control named `attributes` (inside it,
// or joining it by `form="id"`) answers instead: one `<select name="attributes">` (a back
// office's product form, a many-to-many field so named) made it the select, whose options have
// no `name`, and the serializer threw on the form (before its block rule applies: it reads the
// attributes first), so the first snapshot never left and the agent's view stayed empty; two
// such controls made it a RadioNodeList whose live values were written on the form. rrweb's own
// untainted accessor now reads them (the form's real attributes); the SDK still sends such a
// form as an empty box (masking.ts, clobberedForms and blockShapedForm).
const ADDS_AT_ONCE = await readFile(resolve(here, "patches/rrweb-adds-at-once.js"), "utf8");
const ELEMENT_ACCESSORS = '\tElement: [\n\t\t"shadowRoot",\n\t\t"querySelector",\n\t\t"querySelectorAll"\n\t],\n';
const ELEMENT_METHODS = '\tElement: [],\n\tMutationObserver: ["constructor"]\n';
// Style texts kept for replay: the replayer rewrites a <style>'s text for replay (`:hover` rules,
// `-device-` media queries, with PostCSS) and keeps text and result in a cache it never empties,
// so a page that changed a large style text again and again grew the agent's tab without end (the
// mirror's budget counts the page as it is, a changed text replacing the old). The cache is
// emptied once it holds STYLE_CACHE_CHARS characters, texts and results (a large page's styles
// are a million or two); a text met again after that is rewritten again (only time is lost).
export const STYLE_CACHE_CHARS = 4 * 1024 * 1024;
const STYLE_CACHE_SET = "\tcache?.stylesWithHoverClass.set(cssText, result);\n";
// Tags in an XHTML page: an element's `tagName` is in upper case in an HTML document and as
// written (lower case) in an XML one (a page served as `application/xhtml+xml`), and the recorder
// compares it (and `nodeName`) with upper-case names in eight places. On such a page the text of
// an inline `<script>` went to the agent as written (an HTML page's becomes a placeholder: page
// state, keys and tokens a site writes into its scripts), typing into a field was never recorded
// (the mirror's field stayed empty), and a `<textarea>`'s or `<style>`'s changed text, a dialog's
// mode, a frame's and a style sheet link's recorded state were told as on no such element. Each
// reads the name in upper case (a string: a form's clobbered `tagName` stays what it was).
const upper = (read) => `(typeof ${read} === "string" ? ${read}.toUpperCase() : ${read})`;
const literal = (text) => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "g");
const XHTML_TAGS = [
  ["\tconst parentTagName = parent && parent.tagName;\n", `\tconst parentTagName = parent && ${upper("parent.tagName")};\n`],
  ["\t\tconst tagName = target && target.tagName;\n", `\t\tconst tagName = target && ${upper("target.tagName")};\n`],
  ["\t\t\t\tconst parentTag = parentNode.tagName;\n", `\t\t\t\tconst parentTag = ${upper("parentNode.tagName")};\n`],
  ['if (parent && parent.tagName === "TEXTAREA") this.genTextAreaValueMutation(parent);',
    `if (parent && ${upper("parent.tagName")} === "TEXTAREA") this.genTextAreaValueMutation(parent);`],
  ['} else if (attributeName === "open" && target.tagName === "DIALOG") {',
    `} else if (attributeName === "open" && ${upper("target.tagName")} === "DIALOG") {`],
  ['\t\t\t\tif (m.target.tagName === "TEXTAREA") {\n', `\t\t\t\tif (${upper("m.target.tagName")} === "TEXTAREA") {\n`],
  ['return Boolean(n.nodeName === "IFRAME" && mirror.getMeta(n));', `return Boolean(${upper("n.nodeName")} === "IFRAME" && mirror.getMeta(n));`],
  ['return Boolean(n.nodeName === "LINK" && n.nodeType === n.ELEMENT_NODE',
    `return Boolean(${upper("n.nodeName")} === "LINK" && n.nodeType === n.ELEMENT_NODE`],
].map(([found, replacement]) => ["Tags in an XHTML page", literal(found), 1, replacement]);
const RRWEB_PATCHES = [
  // [what, pattern, how many, replacement]
  // The `:hover` rewriting (pseudoClassPlugin) kept the rules it had rewritten in an array and
  // searched it for each rule: quadratic in a style text's rules, so a hostile page's <style> of
  // 160,000 empty rules (480 KB, well within the mirror's budget) kept the agent's tab busy 22 s
  // each time it changed the text (test/rrweb-style-cache.test.ts). A set answers at once.
  ["Rules rewritten for :hover", /^\t\tconst fixed = \[\];\n(\t\treturn \{ Rule: function\(rule\) \{\n)\t\t\tif \(fixed\.indexOf\(rule\) !== -1\) return;\n\t\t\tfixed\.push\(rule\);\n/gm, 1,
    "\t\tconst fixed = new Set();\n$1\t\t\tif (fixed.has(rule)) return;\n\t\t\tfixed.add(rule);\n"],
  ["Style texts kept for replay", new RegExp(STYLE_CACHE_SET.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "g"), 1,
    "\tif (cache) {\n\t\tconst kept = cache.stylesWithHoverClass;\n" +
    "\t\tkept.tandemChars = (kept.tandemChars || 0) + String(cssText).length + String(result).length;\n" +
    `\t\tif (kept.tandemChars > ${STYLE_CACHE_CHARS}) {\n\t\t\tkept.clear();\n` +
    "\t\t\tkept.tandemChars = String(cssText).length + String(result).length;\n\t\t}\n" +
    "\t\tkept.set(cssText, result);\n\t}\n"],
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
  ["Element attributes through the prototype", /^\tconst len = n\.attributes\.length;\n\tfor \(let i = 0; i < len; i\+\+\) \{\n\t\tconst attr = n\.attributes\[i\];\n/gm, 1,
    '\tconst tandemAttributes = getUntaintedAccessor$$2("Element", n, "attributes");\n\tconst len = tandemAttributes.length;\n' +
    "\tfor (let i = 0; i < len; i++) {\n\t\tconst attr = tandemAttributes[i];\n"],
  ["Added nodes at once", /^\t\td\.adds\.forEach\(\(mutation\) => \{\n\t\t\tappendNode\(mutation\);\n\t\t\}\);\n/gm, 1,
    "\t\tif (this.usingVirtualDom || Object.keys(legacy_missingNodeMap).length || !tandemAddsAtOnce(d.adds, mirror, this.iframe.contentDocument, this.cache, (node, id) => {\n" +
    "\t\t\tapplyDialogToTopLevel(node);\n" +
    "\t\t\tfor (const plugin of this.config.plugins || []) if (plugin.onBuild) plugin.onBuild(node, { id, replayer: this });\n" +
    "\t\t})) d.adds.forEach((mutation) => {\n\t\t\tappendNode(mutation);\n\t\t});\n"],
  ["Added nodes at once (the function)", /^function isSerializedIframe\(n, mirror\) \{$/gm, 1,
    () => `${ADDS_AT_ONCE}function isSerializedIframe(n, mirror) {`],
  ["Children's fragment", /^\tmirror\.add\(node, n\);\n\tif \(\(n\.type === NodeType\$3\.Document \|\| n\.type === NodeType\$3\.Element\) && !skipChild\) for/gm, 1,
    "\tmirror.add(node, n);\n\tlet fragment = null, built = null;\n\tif ((n.type === NodeType$3.Document || n.type === NodeType$3.Element) && !skipChild) for"],
  ["Next siblings waited for: those added in the mutation", /^\t\tconst legacy_queue = \[\];\n\t\tconst nextNotInDOM = \(mutation\) => \{\n/gm, 1,
    "\t\tconst legacy_queue = [];\n\t\tconst tandemAwaited = new Set();\n\t\tfor (const m of d.adds) if (m && m.node) tandemAwaited.add(m.node.id);\n" +
    "\t\tconst tandemWaiting = new Map(), tandemReady = [];\n\t\tlet tandemDraining = false;\n" +
    "\t\tconst tandemWait = (mutation) => {\n\t\t\tconst waiting = tandemWaiting.get(mutation.nextId);\n" +
    "\t\t\tif (waiting) waiting.push(mutation);\n\t\t\telse tandemWaiting.set(mutation.nextId, [mutation]);\n\t\t};\n" +
    "\t\tconst tandemWake = (id) => {\n\t\t\tconst waiting = tandemWaiting.get(id);\n\t\t\tif (!waiting) return;\n" +
    "\t\t\ttandemWaiting.delete(id);\n\t\t\tfor (const m of waiting) tandemReady.push(m);\n\t\t\tif (tandemDraining) return;\n" +
    "\t\t\ttandemDraining = true;\n\t\t\ttry {\n\t\t\t\tfor (let i = 0; i < tandemReady.length; i++) appendNode(tandemReady[i]);\n" +
    "\t\t\t} finally {\n\t\t\t\ttandemReady.length = 0;\n\t\t\t\ttandemDraining = false;\n\t\t\t}\n\t\t};\n" +
    "\t\tconst tandemFlush = () => {\n\t\t\tfor (const waiting of tandemWaiting.values()) for (const m of waiting) legacy_queue.push(m);\n" +
    "\t\t\ttandemWaiting.clear();\n\t\t};\n" +
    "\t\tconst nextNotInDOM = (mutation) => {\n"],
  ["Next siblings waited for: each by the one it names", /^\t\t\tif \(nextNotInDOM\(mutation\)\) return legacy_queue\.push\(mutation\);\n/gm, 1,
    "\t\t\tif (nextNotInDOM(mutation)) return tandemWait(mutation);\n"],
  ["Next siblings waited for: woken when it is placed", /^(\t\t\tafterAppend\(target, mutation\.node\.id\);\n)/gm, 1,
    "$1\t\t\ttandemWake(mutation.node.id);\n"],
  ["Next siblings waited for: the others to the loop", /^\t\tconst startTime = Date\.now\(\);\n\t\twhile \(legacy_queue\.length\) \{\n/gm, 1,
    "\t\ttandemFlush();\n\t\tconst startTime = Date.now();\n\t\twhile (legacy_queue.length) {\n"],
  ["Next siblings waited for: not the others", /^\t\t\tif \(mutation\.nextId !== null && mutation\.nextId !== void 0 && mutation\.nextId !== -1 && !next\) return true;\n/gm, 1,
    "\t\t\tif (mutation.nextId !== null && mutation.nextId !== void 0 && mutation.nextId !== -1 && !next) return tandemAwaited.has(mutation.nextId);\n"],
  ["Next siblings waited for: the loop's rounds", /^(\t\t\tconst resolveTrees = queueToResolveTrees\(legacy_queue\);\n)(\t\t\tlegacy_queue\.length = 0;\n(?:.*\n){6}\t\t\t\tappendNode\(mutation\);\n\t\t\t\}\);\n)(\t\t\}\n)/gm, 1,
    "$1\t\t\tconst tandemQueued = legacy_queue.length;\n$2\t\t\ttandemFlush();\n\t\t\tif (legacy_queue.length >= tandemQueued) tandemAwaited.clear();\n$3"],
  ["Resolve trees in one pass", new RegExp(RESOLVE_TREES.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "g"), 1, () => TANDEM_RESOLVE_TREES],
  // A node the mirror holds under an id is reused when a mutation adds the id again and the node's
  // recorded description matches; a text's is the text it was added with, not what it shows since
  // (a change of its text, a <style>'s text rewritten for replay), so a page that changed a text
  // and added its id again elsewhere with the old words moved the node, showing other words where
  // the event said its own (test/rrweb-text-reuse.test.ts). A text, comment or CDATA is reused
  // only when it reads as the event says; otherwise a new node is built, as for any other change.
  ["Texts reused only as they read", literal("\t\tif (isNodeMetaEqual(mirror.getMeta(nodeInMirror), n)) return mirror.getNode(n.id);\n"), 1,
    "\t\tif (isNodeMetaEqual(mirror.getMeta(nodeInMirror), n) && (n.type !== NodeType$3.Text && n.type !== NodeType$3.Comment &&\n" +
    "\t\t\tn.type !== NodeType$3.CDATA || nodeInMirror.textContent === n.textContent)) return nodeInMirror;\n"],
  ...XHTML_TAGS,
];
/** rrweb's bundle (`source`) with every patch applied; throws if one does not match as expected. */
export function patchedRrwebSource(source) {
  for (const [what, pattern, expected, replacement] of RRWEB_PATCHES) {
    const found = source.match(pattern)?.length ?? 0;
    if (found !== expected) throw new Error(`rrweb.js: ${found} of "${what}", expected ${expected} (a new rrweb? see rrweb-patches.mjs)`);
    source = source.replace(pattern, replacement);
  }
  return source;
}

/** The patched bundle of the installed rrweb. */
export async function patchedRrweb() {
  return patchedRrwebSource(await readFile(resolve(here, "node_modules/rrweb/dist/rrweb.js"), "utf8"));
}

/** The esbuild plugin that bundles rrweb patched. */
export const patchRrweb = {
  name: "patch-rrweb",
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]rrweb[\\/]dist[\\/]rrweb\.js$/ }, async (args) => ({
      contents: patchedRrwebSource(await readFile(args.path, "utf8")),
      loader: "js",
    }));
  },
};

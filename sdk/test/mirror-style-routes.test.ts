// Ways a hostile page's events could get CSS that fetches into the mirror's <style>s around the
// neutraliser (../src/console/assets.ts): each is applied here as the console applies it
// (neutralizeEvent, then rrweb's replayer as rrweb-patches.mjs patches it), and the CSS each
// <style> then holds (the text of its Text children, one after the other, as the browser reads
// it) must name no address. The mirror's own policy (MIRROR_CSP) would still stop the fetch: this
// is the layer before it.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, test } from "node:test";
import type { Replayer as ReplayerType } from "rrweb";
import { NodeType } from "@rrweb/types";
import { buildNodeWithSN, createCache, createMirror } from "rrweb-snapshot";
import { StyleParents, neutralizeEvent } from "../src/console/assets.ts";
import { playableEvents } from "../src/console/playback.ts";
import { MAX_MIRROR_DEPTH } from "../src/console/budget.ts";
import { document } from "./dom.ts";

type Add = { parentId: number; nextId: number | null; previousId?: number | null; node: Record<string, unknown> };
type Mutation = { removes: unknown[]; adds: Add[]; texts: { id: number; value: string }[]; attributes: unknown[] };
type ApplyMutation = (this: unknown, d: Mutation, isSync: boolean) => void;

const patches = await import(new URL("../rrweb-patches.mjs", import.meta.url).href) as { patchedRrweb(): Promise<string> };
const dir = mkdtempSync(join(tmpdir(), "tandem-rrweb-"));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, "rrweb.mjs"), await patches.patchedRrweb());
const patched = await import(pathToFileURL(join(dir, "rrweb.mjs")).href) as { Replayer: typeof ReplayerType };
const applyMutation = (patched.Replayer.prototype as unknown as { applyMutation: ApplyMutation }).applyMutation;

const SPY = "http://spy.invalid";

/** Whether CSS, read as the browser reads it, could name an address to fetch: its escapes
 * undone, any function that fetches or an @import (the neutraliser's `none` and `blocked-url(`
 * fetch nothing). Comments are left: they end a word, they never join two. */
function fetches(css: string): boolean {
  const plain = css.replace(/\\([0-9a-fA-F]{1,6})\s?/g, (_, hex: string) => String.fromCodePoint(Math.min(parseInt(hex, 16) || 0xfffd, 0x10ffff)))
    .replace(/\\([^\n0-9a-fA-F])/g, "$1");
  return /(?<![\w-])(url|src|image-set|image|cross-fade|element)\(|@import/i.test(plain);
}

const text = (id: number, textContent: string) => ({ type: NodeType.Text, id, textContent });
const element = (id: number, tagName: string, childNodes: unknown[] = []) => ({ type: NodeType.Element, id, tagName, attributes: {}, childNodes });

/** A page (div 1: <style> 3 holding text 4, <p> 5 holding text 6) built from its neutralised
 * snapshot, and its mutations applied as the console applies them. */
class Page {
  readonly mirror = createMirror();
  readonly styles = new StyleParents();
  readonly root: HTMLElement;
  readonly replayer: Record<string, unknown>;
  constructor(snapshotChildren: unknown[] = [element(3, "style", [text(4, "p{color:red}")]), element(5, "p", [text(6, "Hello")])]) {
    const snapshot = { type: 2, timestamp: 1, data: { node: element(1, "div", snapshotChildren), initialOffset: { top: 0, left: 0 } } };
    neutralizeEvent(snapshot, undefined, this.styles);
    this.root = buildNodeWithSN(snapshot.data.node as never, { doc: document, mirror: this.mirror, hackCss: true, cache: createCache() }) as HTMLElement;
    document.body.replaceChildren(this.root);
    this.replayer = Object.assign(Object.create(patched.Replayer.prototype), {
      config: { useVirtualDom: false, plugins: [] }, usingVirtualDom: false, mirror: this.mirror,
      iframe: { contentDocument: document }, legacy_missingNodeRetryMap: {}, newDocumentQueue: [], cache: createCache(),
      warn() {}, debug() {},
    });
  }
  mutate(d: Partial<Mutation>): void {
    const event = { type: 3, timestamp: 2, data: { source: 0, removes: [], adds: [], texts: [], attributes: [], ...d } };
    neutralizeEvent(event, undefined, this.styles);
    applyMutation.call(this.replayer, event.data as Mutation, false);
  }
  /** Each <style>'s CSS as the browser reads it. */
  css(): string[] {
    return [...this.root.querySelectorAll("style")].map((style) =>
      [...style.childNodes].filter((n) => n.nodeType === 3).map((n) => (n as Text).data).join(""));
  }
}

test("the oracle: it sees what fetches, escaped or not, and not what the neutraliser left", () => {
  for (const css of [`p{background:url(${SPY})}`, `p{background:\\75 rl(${SPY})}`, `p{background:u\\rl(${SPY})}`, `@import "${SPY}/a.css";`,
    `p{background:image-set("${SPY}" 1x)}`]) assert.ok(fetches(css), css);
  for (const css of ["p{background:none}", "p{background:blocked-url(x)}", "p{background:u/**/rl(x)}", "p{color:red}"]) assert.ok(!fetches(css), css);
});

test("a text rrweb's legacy path (a sibling id -1) holds aside and then puts into a <style> is neutralised as CSS", () => {
  // rrweb keeps a node added with previousId or nextId -1 aside, and inserts it beside the first
  // later node that names it as its sibling, in that node's parent, whatever its own parentId said.
  for (const sibling of ["previousId", "nextId"] as const) {
    const page = new Page();
    page.mutate({ adds: [{ parentId: 5, nextId: null, [sibling]: -1, node: text(10, `b{background:url(${SPY}/legacy)}`) }] });
    page.mutate({ adds: [{ parentId: 3, nextId: null, [sibling === "previousId" ? "nextId" : "previousId"]: 10, node: text(11, "i{color:blue}") }] });
    const css = page.css();
    assert.ok(css.some((sheet) => sheet.includes("b{background")), `the text went into the <style>: ${css}`);
    assert.ok(!css.some(fetches), `${sibling}: ${css}`);
  }
});

test("CSS split across a <style>'s texts (added, changed, in the snapshot) does not join into an address", () => {
  // Each half alone names nothing; the browser reads a <style>'s texts as one.
  const halves: [string, string][] = [
    ["p{background:u", `rl(${SPY}/split)}`],
    ["@imp", `ort "${SPY}/split.css";`],
    ["p{background:image-", `set("${SPY}/split.png" 1x)}`],
    ["p{background:\\", `75 rl(${SPY}/escaped)}`],
    ["p{background:ur", `\\6c(${SPY}/escaped2)}`],
  ];
  for (const [first, second] of halves) {
    // Added by a mutation, one after the other, to the snapshot's <style>.
    const added = new Page([element(3, "style", [])]);
    added.mutate({ adds: [{ parentId: 3, nextId: null, node: text(20, first) }] });
    added.mutate({ adds: [{ parentId: 3, nextId: null, node: text(21, second) }] });
    // Both in one mutation (rrweb's recorder lists a next sibling first).
    const together = new Page([element(3, "style", [])]);
    together.mutate({ adds: [{ parentId: 3, nextId: null, node: text(21, second) }, { parentId: 3, nextId: 21, node: text(20, first) }] });
    // Two harmless texts, then changed into the halves (a text mutation does not say where it is).
    const changed = new Page([element(3, "style", [text(4, "a{}"), text(7, "b{}")])]);
    changed.mutate({ texts: [{ id: 4, value: first }, { id: 7, value: second }] });
    // A new text after the snapshot's, changed into the second half.
    const later = new Page([element(3, "style", [text(4, first)])]);
    later.mutate({ adds: [{ parentId: 3, nextId: null, node: text(22, "b{}") }] });
    later.mutate({ texts: [{ id: 22, value: second }] });
    // In the snapshot itself.
    const snapshot = new Page([element(3, "style", [text(4, first), text(7, second)])]);
    // Added before the snapshot's first text (its next sibling).
    const before = new Page([element(3, "style", [text(4, second)])]);
    before.mutate({ adds: [{ parentId: 3, nextId: 4, node: text(23, first) }] });
    for (const [how, page] of Object.entries({ added, together, changed, later, snapshot, before })) {
      const [css] = page.css();
      assert.ok(css !== undefined && css.includes("spy.invalid"), `${how}: the second half is in: ${css}`);
      assert.ok(!fetches(css), `${how}: ${JSON.stringify(first)} + ${JSON.stringify(second)} -> ${css}`);
    }
  }
});

test("a recording's events are made ready in the order rrweb's player plays them: by their time", () => {
  // rrweb's Replayer sorts a recording's events by timestamp; the customer's SDK sets them.
  const snapshot = (timestamp: number, children: unknown[]) =>
    ({ type: 2, timestamp, data: { node: element(1, "div", children), initialOffset: { top: 0, left: 0 } } });
  const mutation = (timestamp: number, adds: Add[]) =>
    ({ type: 3, timestamp, data: { source: 0, removes: [], texts: [], attributes: [], adds } });
  // A text for the <style> of the page's first snapshot, listed before it (and a later page's
  // snapshot, with no <style>, listed between): played after the first snapshot, before the second.
  const sneaky = mutation(2, [{ parentId: 3, nextId: null, node: text(30, `p{background:url(${SPY}/late)}`) }]);
  const events = [sneaky, snapshot(1, [element(3, "style", [])]), snapshot(3, [element(5, "p")])];
  const played = playableEvents(structuredClone(events));
  assert.ok(played, "not played");
  assert.deepEqual(played.map((e) => (e as { timestamp: number }).timestamp), [1, 2, 3], "in the player's order");
  assert.ok(!JSON.stringify(played).includes(SPY), JSON.stringify(played));
  // A chain nested beyond what the mirror holds, listed before the snapshot it is played on (and
  // a later page's small snapshot after it): counted where it is played.
  const chain: Add[] = Array.from({ length: MAX_MIRROR_DEPTH + 10 }, (_, i) => ({ parentId: i ? 100 + i - 1 : 1, nextId: null, node: element(100 + i, "div") }));
  const deep = [mutation(2, chain), snapshot(1, [element(5, "p")]), snapshot(3, [element(5, "p")])];
  assert.equal(playableEvents(structuredClone(deep)), null, "a page too deep was played");
  // Events with no time of their own are not played (rrweb's sort would put them anywhere).
  const timeless = playableEvents([snapshot(1, []), { ...mutation(2, []), timestamp: "soon" }, mutation(3, [])]);
  assert.deepEqual(timeless?.map((e) => (e as { timestamp: unknown }).timestamp), [1, 3]);
});

test("an honest page's text changed to read like CSS shows as the page wrote it; a <style>'s text is still CSS", () => {
  // A help article about CSS, a Windows path in a label: page text, not CSS, whatever it reads like.
  const page = new Page([element(3, "style", [text(4, "p{color:red}")]), element(5, "p", [text(6, "Hello")]),
    element(7, "label", [text(8, "Folder")])]);
  page.mutate({ adds: [{ parentId: 5, nextId: null, node: text(9, "later") }] });
  const plain = ["see url(https://docs.example/a.png) in CSS", "C:\\Users\\me", "@import \"x.css\"; image-set(a.png 1x)"];
  page.mutate({ texts: [{ id: 6, value: plain[0] as string }, { id: 8, value: plain[1] as string }, { id: 9, value: plain[2] as string }] });
  assert.equal(page.mirror.getNode(6)?.textContent, plain[0]);
  assert.equal(page.mirror.getNode(8)?.textContent, plain[1]);
  assert.equal(page.mirror.getNode(9)?.textContent, plain[2]);
  // A text moved out of the <style> (removed and added again under the paragraph) gets no
  // separator, but its changes are still neutralised as CSS: the neutraliser cannot tell that
  // rrweb made the add that moved it (one naming a parent rrweb never had is dropped).
  page.mutate({ removes: [{ parentId: 3, id: 4 }], adds: [{ parentId: 5, nextId: null, node: text(4, "moved") }] });
  page.mutate({ texts: [{ id: 4, value: "C:\\Users\\you" }] });
  assert.equal(page.mirror.getNode(4)?.parentNode, page.mirror.getNode(5));
  assert.ok(!page.mirror.getNode(4)?.textContent?.startsWith("/**/"));
});

test("a text change that can reach a <style> is neutralised as CSS: its own text, one moved in, the element itself, an unknown id", () => {
  const attack = `p{background:url(${SPY}/change)}@import "${SPY}/c.css";`;
  // The <style>'s own text (snapshot) and one a mutation added to it.
  const own = new Page();
  own.mutate({ adds: [{ parentId: 3, nextId: null, node: text(10, "i{}") }] });
  own.mutate({ texts: [{ id: 4, value: attack }, { id: 10, value: attack }] });
  // A page text moved into the <style>, then changed.
  const moved = new Page();
  moved.mutate({ removes: [{ parentId: 5, id: 6 }], adds: [{ parentId: 3, nextId: null, node: text(6, "Hello") }] });
  moved.mutate({ texts: [{ id: 6, value: attack }] });
  // A text change naming the <style> element: rrweb's replayer sets its textContent.
  const element3 = new Page();
  element3.mutate({ texts: [{ id: 3, value: attack }] });
  // The <style>'s text named again under a parent rrweb never had (rrweb drops that add; the
  // text stays in the <style>), then changed.
  const dropped = new Page();
  dropped.mutate({ adds: [{ parentId: 999, nextId: null, node: text(4, "x") }] });
  dropped.mutate({ texts: [{ id: 4, value: attack }] });
  for (const [how, page] of Object.entries({ own, moved, element3, dropped })) {
    const css = page.css();
    assert.ok(css.some((sheet) => sheet.includes("p{background")), `${how}: the change is in the <style>: ${css}`);
    assert.ok(!css.some(fetches), `${how}: ${css}`);
  }
  // An id no event placed (a node the neutraliser never saw): taken as CSS.
  const unknown = neutralizeEvent({ type: 3, timestamp: 2, data: { source: 0, removes: [], adds: [], attributes: [], texts: [{ id: 77, value: attack }] } },
    undefined, new StyleParents());
  assert.ok(!fetches(unknown.data.texts[0]?.value ?? ""), JSON.stringify(unknown));
});

test("an SVG <style> under a prefixed name (x:style, which the browser makes a style element) holds CSS: its texts and their changes are neutralised", () => {
  // rrweb's rebuild makes an SVG element with createElementNS(svg, tagName): `x:style` is an
  // SVGStyleElement (local name `style`), whose text the browser applies as CSS.
  const attack = `p{background:url(${SPY}/svg)}@import "${SPY}/s.css";`;
  const svg = (id: number, tagName: string, childNodes: unknown[] = []) => ({ ...element(id, tagName, childNodes), isSVG: true });
  const snapshot = { type: 2, timestamp: 1, data: { node: element(1, "div", [svg(20, "svg", [svg(21, "x:style", [text(22, attack)])]),
    element(5, "p", [text(6, "Hello")])]), initialOffset: { top: 0, left: 0 } } };
  const styles = new StyleParents();
  neutralizeEvent(snapshot, undefined, styles);
  const own = (snapshot.data.node.childNodes[0] as { childNodes: { childNodes: { textContent: string }[] }[] }).childNodes[0]?.childNodes[0];
  assert.ok(!fetches(own?.textContent ?? ""), `the snapshot's text: ${own?.textContent}`);
  // A text added to it with no isStyle flag, a page text moved into it, its own text: each changed.
  const mutation = (d: Partial<Mutation>) => {
    const event = { type: 3, timestamp: 2, data: { source: 0, removes: [], adds: [], texts: [], attributes: [], ...d } };
    return neutralizeEvent(event, undefined, styles).data;
  };
  const added = mutation({ adds: [{ parentId: 21, nextId: null, node: text(23, attack) }] });
  assert.ok(!fetches(String(added.adds[0]?.node.textContent)), JSON.stringify(added));
  mutation({ removes: [{ parentId: 5, id: 6 }], adds: [{ parentId: 21, nextId: null, node: text(6, "Hello") }] });
  const changed = mutation({ texts: [{ id: 6, value: attack }, { id: 22, value: attack }, { id: 23, value: attack }, { id: 21, value: attack }] });
  for (const change of changed.texts) assert.ok(!fetches(change.value), JSON.stringify(change));
  // An SVG <style> added by a mutation under a prefixed name, a page text placed in it.
  mutation({ adds: [{ parentId: 20, nextId: null, node: svg(30, "svg:style") }, { parentId: 30, nextId: null, node: text(31, "x") }] });
  const later = mutation({ texts: [{ id: 31, value: attack }] });
  assert.ok(!fetches(later.texts[0]?.value ?? ""), JSON.stringify(later));
});

test("a page text placed in a <style> by an add that names it again without removing it, or under a <style> added later in the same mutation, is CSS when changed", () => {
  const attack = `p{background:url(${SPY}/again)}`;
  const again = new Page();
  again.mutate({ adds: [{ parentId: 3, nextId: null, node: text(6, "Hello") }] });
  again.mutate({ texts: [{ id: 6, value: attack }] });
  const later = new Page();
  later.mutate({ removes: [{ parentId: 5, id: 6 }], adds: [{ parentId: 40, nextId: null, node: text(6, "Hello") },
    { parentId: 1, nextId: null, node: element(40, "style") }] });
  later.mutate({ texts: [{ id: 6, value: attack }] });
  for (const [how, page] of Object.entries({ again, later })) {
    const css = page.css();
    assert.ok(css.some((sheet) => sheet.includes("p{background")), `${how}: the change is in a <style>: ${css}`);
    assert.ok(!css.some(fetches), `${how}: ${css}`);
  }
});

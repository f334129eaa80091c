// What ../src/console/assets.ts (StyleParents, "built") assumes of rrweb's replayer: a text a
// mutation adds under a node the replayer never built (a child the event nests in an earlier
// addition, which it builds without children: skipChild; an addition whose rootId it does not
// hold) stays where it was, in its <style>, and a later change of its text lands there: the
// neutraliser must take that change as CSS, not as the page's words.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, test } from "node:test";
import { Replayer as UnpatchedReplayer } from "rrweb";
import { NodeType } from "@rrweb/types";
import { createCache, createMirror } from "rrweb-snapshot";
import { document } from "./dom.ts";

type Mutation = { removes: unknown[]; adds: unknown[]; texts: unknown[]; attributes: unknown[] };
type ApplyMutation = (this: unknown, d: Mutation, isSync: boolean) => void;

const patches = await import(new URL("../rrweb-patches.mjs", import.meta.url).href) as { patchedRrweb(): Promise<string> };
const dir = mkdtempSync(join(tmpdir(), "tandem-rrweb-"));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, "rrweb.mjs"), await patches.patchedRrweb());
const patched = await import(pathToFileURL(join(dir, "rrweb.mjs")).href) as { Replayer: typeof UnpatchedReplayer };
const applyOf = (replayer: { prototype: unknown }) => (replayer.prototype as { applyMutation: ApplyMutation }).applyMutation;

/** div 1 > style 3 (text 4 "p{color:red}"), p 5; `parent` is added under p 5, then text 4 under
 * `parentId`, then text 4 changed: what the <style> reads after. */
function styleAfter(apply: ApplyMutation, parent: Record<string, unknown>, parentId: number): string {
  const mirror = createMirror();
  const root = document.createElement("div");
  const style = document.createElement("style");
  const css = document.createTextNode("p{color:red}");
  const p = document.createElement("p");
  style.append(css);
  root.append(style, p);
  document.body.replaceChildren(root);
  mirror.add(root, { type: NodeType.Element, tagName: "div", attributes: {}, childNodes: [], id: 1 } as never);
  mirror.add(style, { type: NodeType.Element, tagName: "style", attributes: {}, childNodes: [], id: 3 } as never);
  mirror.add(css, { type: NodeType.Text, textContent: "p{color:red}", id: 4 } as never);
  mirror.add(p, { type: NodeType.Element, tagName: "p", attributes: {}, childNodes: [], id: 5 } as never);
  const replayer = Object.assign(Object.create(UnpatchedReplayer.prototype), {
    config: { useVirtualDom: false, plugins: [] }, usingVirtualDom: false, mirror, iframe: { contentDocument: document },
    legacy_missingNodeRetryMap: {}, newDocumentQueue: [], cache: createCache(), warn() {}, debug() {},
  });
  apply.call(replayer, { removes: [], texts: [], attributes: [], adds: [{ parentId: 5, nextId: null, node: parent }] }, false);
  apply.call(replayer, {
    removes: [], texts: [], attributes: [],
    adds: [{ parentId, nextId: null, node: { type: NodeType.Text, textContent: "x", id: 4 } }],
  }, false);
  apply.call(replayer, { removes: [], adds: [], attributes: [], texts: [{ id: 4, value: "p{color:blue}" }] }, false);
  return String(style.textContent);
}

test("a text added under a node rrweb never built stays in its <style>, and its changes land there", () => {
  const span = { type: NodeType.Element, tagName: "span", attributes: {}, childNodes: [], id: 51 };
  const nested = { type: NodeType.Element, tagName: "div", attributes: {}, childNodes: [span], id: 50 };
  const rooted = { type: NodeType.Element, tagName: "div", attributes: {}, childNodes: [], id: 52, rootId: 999 };
  for (const Replayer of [UnpatchedReplayer, patched.Replayer]) {
    assert.equal(styleAfter(applyOf(Replayer), nested, 51), "p{color:blue}", "a child nested in an addition");
    assert.equal(styleAfter(applyOf(Replayer), rooted, 52), "p{color:blue}", "an addition whose root rrweb does not hold");
  }
  // Under one built alone, as rrweb's recorder sends it, the text is placed: the change lands there.
  const alone = { type: NodeType.Element, tagName: "div", attributes: {}, childNodes: [], id: 50 };
  assert.equal(styleAfter(applyOf(patched.Replayer), alone, 50), "p{color:red}");
});

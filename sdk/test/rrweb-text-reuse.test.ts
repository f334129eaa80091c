// rrweb's replayer reuses the node its mirror holds under an id when a mutation adds that id again
// and the node's recorded description matches (buildNodeWithSN: "duplicated nodes"). For a text,
// the description is the text it was added with, not the text it shows since: a hostile page
// that changed a text (or a <style>'s text, rewritten for replay) and then added the same id
// elsewhere with the old words moved the node, showing the other words where the event said
// its own. The replayer the console runs (../rrweb-patches.mjs, "Texts reused only as they read")
// reuses a text only when it reads as the event says.
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

/** A div (1) holding a paragraph (2) with a text (3) "Total: 10 EUR"; the page changes the text,
 * then adds id 3 again to the div with its first words. What the div's new text and the
 * paragraph show after. */
function replay(apply: ApplyMutation): { added: string; paragraph: string } {
  const mirror = createMirror();
  const root = document.createElement("div");
  const p = document.createElement("p");
  const text = document.createTextNode("Total: 10 EUR");
  p.append(text);
  root.append(p);
  document.body.replaceChildren(root);
  mirror.add(root, { type: NodeType.Element, tagName: "div", attributes: {}, childNodes: [], id: 1 } as never);
  mirror.add(p, { type: NodeType.Element, tagName: "p", attributes: {}, childNodes: [], id: 2 } as never);
  mirror.add(text, { type: NodeType.Text, textContent: "Total: 10 EUR", id: 3 } as never);
  const replayer = Object.assign(Object.create(UnpatchedReplayer.prototype), {
    config: { useVirtualDom: false, plugins: [] }, usingVirtualDom: false, mirror, iframe: { contentDocument: document },
    legacy_missingNodeRetryMap: {}, newDocumentQueue: [], cache: createCache(), warn() {}, debug() {},
  });
  apply.call(replayer, { removes: [], adds: [], texts: [{ id: 3, value: "Card ending 4242" }], attributes: [] }, false);
  apply.call(replayer, {
    removes: [], texts: [], attributes: [],
    adds: [{ parentId: 1, nextId: null, node: { type: NodeType.Text, textContent: "Total: 10 EUR", id: 3 } }],
  }, false);
  const added = root.lastChild as Node;
  return { added: added === p ? "(none)" : String(added.textContent), paragraph: String(p.textContent) };
}

test("a text added again under its id shows the words the event gives, not another node's", () => {
  // rrweb's own moved the changed node: the event's words are nowhere, the other's moved.
  assert.deepEqual(replay(applyOf(UnpatchedReplayer)), { added: "Card ending 4242", paragraph: "" });
  assert.deepEqual(replay(applyOf(patched.Replayer)), { added: "Total: 10 EUR", paragraph: "Card ending 4242" });
});

// rrweb's replayer keeps every <style> text it rewrote for replay (`adaptCssForReplay`: its
// `:hover` rules and media queries), text and result, in a cache it never empties. The mirror's
// budget (../src/console/budget.ts) counts the page as it is, where a changed text replaces the
// old; the cache kept the old ones too: a hostile page changing a large style text again and
// again grew the agent's tab without end. The replayer the console runs (../rrweb-patches.mjs,
// "Style texts kept for replay") empties it once it holds STYLE_CACHE_CHARS characters.
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

type Mutation = { removes: unknown[]; adds: unknown[]; texts: { id: number; value: string }[]; attributes: unknown[] };
type ApplyMutation = (this: unknown, d: Mutation, isSync: boolean) => void;

const patches = await import(new URL("../rrweb-patches.mjs", import.meta.url).href) as { patchedRrweb(): Promise<string>; STYLE_CACHE_CHARS: number };
const dir = mkdtempSync(join(tmpdir(), "tandem-rrweb-"));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, "rrweb.mjs"), await patches.patchedRrweb());
const patched = await import(pathToFileURL(join(dir, "rrweb.mjs")).href) as { Replayer: typeof UnpatchedReplayer };

/** The characters a replayer's cache holds after a page changed its <style>'s text `times` times,
 * each a distinct text of about `chars` characters. */
function keptAfterChanges(apply: ApplyMutation, times: number, chars: number): number {
  const mirror = createMirror();
  const style = document.createElement("style");
  const text = document.createTextNode("a{}");
  style.append(text);
  document.head.replaceChildren(style);
  mirror.add(style, { type: NodeType.Element, tagName: "style", attributes: {}, childNodes: [], id: 1 } as never);
  mirror.add(text, { type: NodeType.Text, textContent: "a{}", id: 2 } as never);
  const cache = createCache();
  const replayer = Object.assign(Object.create(UnpatchedReplayer.prototype), {
    config: { useVirtualDom: false, plugins: [] }, usingVirtualDom: false, mirror, iframe: { contentDocument: document },
    legacy_missingNodeRetryMap: {}, newDocumentQueue: [], cache, warn() {}, debug() {},
  });
  const filler = "x".repeat(chars); // in a comment: the rewriting reads it fast, the cache keeps it all
  for (let i = 0; i < times; i++) {
    const value = `/*${filler}*/p{color:red}/*${i}*/`;
    apply.call(replayer, { removes: [], adds: [], texts: [{ id: 2, value }], attributes: [] }, false);
  }
  let kept = 0;
  for (const [key, value] of cache.stylesWithHoverClass) kept += key.length + value.length;
  return kept;
}

test("the style texts the replayer keeps for replay stay within STYLE_CACHE_CHARS however often a page changes them", () => {
  const times = 6;
  const chars = Math.ceil(patches.STYLE_CACHE_CHARS / 4);
  const applyOf = (replayer: { prototype: unknown }) => (replayer.prototype as { applyMutation: ApplyMutation }).applyMutation;
  // rrweb's own keeps them all (text and result: about twice what was sent), so the test can fail.
  assert.ok(keptAfterChanges(applyOf(UnpatchedReplayer), times, chars) > times * chars);
  const kept = keptAfterChanges(applyOf(patched.Replayer), times, chars);
  assert.ok(kept > 0 && kept <= patches.STYLE_CACHE_CHARS + 2 * (chars + 16), `kept ${kept}`);
});

/** The elements Array.prototype.indexOf looked through (at most: each call counts its array's
 * length) while a page's <style> text of `rules` rules was rewritten for replay once. */
function indexOfWork(apply: ApplyMutation, rules: number): number {
  const mirror = createMirror();
  const style = document.createElement("style");
  const text = document.createTextNode("a{}");
  style.append(text);
  document.head.replaceChildren(style);
  mirror.add(style, { type: NodeType.Element, tagName: "style", attributes: {}, childNodes: [], id: 1 } as never);
  mirror.add(text, { type: NodeType.Text, textContent: "a{}", id: 2 } as never);
  const replayer = Object.assign(Object.create(UnpatchedReplayer.prototype), {
    config: { useVirtualDom: false, plugins: [] }, usingVirtualDom: false, mirror, iframe: { contentDocument: document },
    legacy_missingNodeRetryMap: {}, newDocumentQueue: [], cache: createCache(), warn() {}, debug() {},
  });
  const indexOf = Array.prototype.indexOf;
  let work = 0;
  Array.prototype.indexOf = function (this: unknown[], ...args: [unknown, number?]) {
    work += this.length;
    return indexOf.apply(this, args);
  };
  try {
    apply.call(replayer, { removes: [], adds: [], texts: [{ id: 2, value: "a:hover{}".repeat(rules) }], attributes: [] }, false);
  } finally {
    Array.prototype.indexOf = indexOf;
  }
  assert.equal(style.textContent?.split(".\\:hover").length, rules + 1, "every rule rewritten");
  return work;
}

test("rewriting a style text for replay looks at each of its rules a bounded number of times", () => {
  // rrweb's `:hover` rewriting kept the rules it had seen in an array and searched it for each
  // rule: a <style> of 160,000 empty rules (480 KB, within the mirror's budget) kept the agent's tab
  // busy 22 s per change of its text, four times that for twice the rules.
  const rules = 3_000;
  const applyOf = (replayer: { prototype: unknown }) => (replayer.prototype as { applyMutation: ApplyMutation }).applyMutation;
  assert.ok(indexOfWork(applyOf(UnpatchedReplayer), rules) > (rules * rules) / 4, "the unpatched replayer's work is quadratic");
  const work = indexOfWork(applyOf(patched.Replayer), rules);
  assert.ok(work < 50 * rules, `work ${work} for ${rules} rules`);
});

// The console's way of applying a live mutation's added nodes at once (../patches/
// rrweb-adds-at-once.js) against rrweb's own: random pages and random mutation sequences (as
// rrweb's recorder orders them, and shuffled, duplicated, cut loose, pointed at removed or
// foreign nodes: what a hostile page's SDK could send) are applied to two copies of a page, one
// by rrweb's `applyMutation` alone (its real code, on a stand-in for the replayer), the other as
// the console's replayer applies them (rrweb's removals, then the patch, then rrweb's own path for
// what the patch declines). The two pages, their mirrors (every id and what it names) and the
// nodes each told in place must be the same after every mutation.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import fc from "fast-check";
import { Replayer } from "rrweb";
import { NodeType } from "@rrweb/types";
import { buildNodeWithSN, createCache, createMirror } from "rrweb-snapshot";
import { document } from "./dom.ts";
import { rng } from "./rng.ts";

type Mirror = ReturnType<typeof createMirror>;
type Serialized = Record<string, unknown> & { id: number; type: number };
type Add = { parentId: number; nextId: number | null; previousId?: number | null; node: Serialized };
type Mutation = { removes: { parentId: number; id: number }[]; adds: Add[]; texts: unknown[]; attributes: unknown[] };
type AddsAtOnce = (adds: Add[], mirror: Mirror, doc: Document, cache: unknown, afterAppend: (node: Node, id: number) => void) => boolean;

const source = readFileSync(new URL("../patches/rrweb-adds-at-once.js", import.meta.url), "utf8");
const addsAtOnce = new Function("NodeType", "buildNodeWithSN", `${source}\nreturn tandemAddsAtOnce;`)(
  NodeType, buildNodeWithSN) as AddsAtOnce;
const applyMutation = (Replayer.prototype as unknown as { applyMutation: (d: Mutation, isSync: boolean) => void }).applyMutation;

/** Enough of a replayer for rrweb's `applyMutation` to run on a page in `root` (no virtual DOM:
 * live mode, and playback outside fast-forward, where the patch runs). */
let taken = 0;

class Side {
  readonly mirror = createMirror();
  readonly holder = document.createElement("section"); // the page's root has no sibling here
  readonly root = document.createElement("div");
  readonly told: number[] = [];
  readonly replayer: Record<string, unknown>;
  constructor() {
    this.holder.append(this.root);
    document.body.append(this.holder);
    this.mirror.add(this.root, { type: NodeType.Element, tagName: "div", attributes: {}, childNodes: [], id: 1 } as never);
    this.replayer = Object.assign(Object.create(Replayer.prototype), {
      config: { useVirtualDom: false, plugins: [{ onBuild: (_node: Node, { id }: { id: number }) => this.told.push(id) }] },
      usingVirtualDom: false, mirror: this.mirror, iframe: { contentDocument: document }, legacy_missingNodeRetryMap: {},
      newDocumentQueue: [], cache: createCache(), warn() {}, debug() {},
    });
  }
  /** rrweb's own path. */
  rrweb(d: Mutation): string {
    try {
      applyMutation.call(this.replayer, d, false);
      return "";
    } catch (error) {
      return String((error as Error).name ?? error);
    }
  }
  /** The console's: the replayer's applyMutation as rrweb-patches.mjs patches it (removes first). */
  console(d: Mutation): string {
    try {
      applyMutation.call(this.replayer, { ...d, adds: [], texts: [], attributes: [] }, false);
      const legacy = Object.keys(this.replayer.legacy_missingNodeRetryMap as object).length;
      const atOnce = !legacy && addsAtOnce(d.adds, this.mirror, document, this.replayer.cache, (_node, id) => this.told.push(id));
      if (atOnce) taken++;
      if (!atOnce) applyMutation.call(this.replayer, { ...d, removes: [] }, false);
      else applyMutation.call(this.replayer, { ...d, removes: [], adds: [] }, false);
      return "";
    } catch (error) {
      return String((error as Error).name ?? error);
    }
  }
  /** The page with each node's id, and the mirror's ids with what they name. */
  shape(): string {
    const out: string[] = [];
    const walk = (node: Node, depth: number) => {
      const id = this.mirror.getId(node);
      const what = node.nodeType === 1 ? `<${(node as Element).localName}${[...(node as Element).attributes].map((a) => ` ${a.name}="${a.value}"`).join("")}>`
        : `${node.nodeName} ${JSON.stringify(node.nodeValue)}`;
      out.push(`${" ".repeat(depth)}${id} ${what}`);
      for (const child of node.childNodes) walk(child, depth + 1);
    };
    walk(this.root, 0);
    const ids = this.mirror.getIds().sort((a, b) => a - b).map((id) => {
      const node = this.mirror.getNode(id);
      return `${id}:${node?.nodeName}:${node?.isConnected}`;
    });
    return `${out.join("\n")}\n${ids.join(" ")}`;
  }
}

const TAGS = ["div", "form", "input", "label", "select", "option", "p", "span", "textarea", "style", "b", "ul", "li", "dialog"];

/**
 * One mutation on the page `ref` shows (rrweb's side): some removals, then new nodes under
 * existing or new elements, at random places, emitted as rrweb's recorder does (each node after
 * its parent and its next sibling, naming that sibling), or, at random, spoiled.
 */
function mutation(r: ReturnType<typeof rng>, ref: Side, nextId: { value: number }): Mutation {
  const removes: { parentId: number; id: number }[] = [];
  const gone = (node: Node | null): boolean => {
    for (let n = node; n; n = n.parentNode) if (removes.some(({ id }) => ref.mirror.getNode(id) === n)) return true;
    return false;
  };
  for (let i = r.int(3) === 0 ? 1 + r.int(2) : 0; i > 0; i--) {
    const candidates = ref.mirror.getIds().filter((id) => id !== 1 && !gone(ref.mirror.getNode(id)));
    if (!candidates.length) break;
    const id = r.pick(candidates);
    removes.push({ parentId: ref.mirror.getId((ref.mirror.getNode(id) as Node).parentNode as Node), id });
  }
  const present = ref.mirror.getIds().filter((id) => !gone(ref.mirror.getNode(id)));
  const elements = present.filter((id) => ref.mirror.getNode(id)?.nodeType === 1);
  const all = present.filter((id) => id !== 1);
  // The new nodes, as a forest: each a tag or text, a parent (existing or new) and a place.
  type New = { node: Serialized; parentId: number; children: number[] };
  const made: New[] = [];
  const byId = new Map<number, New>();
  const kids = new Map<number, (number | string)[]>(); // parent → children in order (new ids, or "existing id")
  const count = 1 + r.int(r.int(4) === 0 ? 40 : 8);
  for (let i = 0; i < count; i++) {
    const id = nextId.value++;
    const newParents = made.filter((m) => m.node.type === NodeType.Element).map((m) => m.node.id);
    const parentId = newParents.length && r.int(2) ? r.pick(newParents) : r.pick(elements);
    const parentTag = byId.get(parentId)?.node.tagName ?? (ref.mirror.getMeta(ref.mirror.getNode(parentId) as Node) as { tagName?: string } | null)?.tagName;
    const asText = r.int(3) === 0 || parentTag === "textarea" || parentTag === "style";
    const tagName = r.int(40) === 0 ? "iframe" : r.pick(TAGS);
    const node: Serialized = asText
      ? parentTag === "style" ? { type: NodeType.Text, textContent: `.t${id}{margin:0}`, id, isStyle: true } : { type: NodeType.Text, textContent: `t${id}`, id }
      : { type: NodeType.Element, tagName, attributes: tagName === "input" ? { name: `f${id}`, value: `v${id}` } : { "data-n": `${id}` }, childNodes: [], id,
        ...(tagName === "dialog" && r.int(2) ? { attributes: { rr_open_mode: r.pick(["modal", "non-modal"]) } } : {}) };
    const entry = { node, parentId, children: [] };
    made.push(entry);
    byId.set(id, entry);
    let list = kids.get(parentId);
    if (!list) {
      const existing = ref.mirror.getNode(parentId);
      list = existing ? [...existing.childNodes].filter((c) => !gone(c)).map((c) => `${ref.mirror.getId(c)}`) : [];
      kids.set(parentId, list);
    }
    list.splice(r.int(list.length + 1), 0, id);
  }
  // Each new node's next sibling (new, existing, or none), as the recorder names it.
  const next = new Map<number, number | null>();
  for (const [, list] of kids) {
    list.forEach((child, i) => {
      if (typeof child === "number") {
        const after = list[i + 1];
        next.set(child, after === undefined ? null : typeof after === "number" ? after : Number(after));
      }
    });
  }
  // The recorder's order: a node after its parent and its next sibling (last children first).
  const emitted: Add[] = [];
  const done = new Set<number>();
  const emit = (m: New) => {
    if (done.has(m.node.id)) return;
    done.add(m.node.id);
    const parent = byId.get(m.parentId);
    if (parent) emit(parent);
    const sibling = next.get(m.node.id);
    if (sibling !== null && sibling !== undefined && byId.has(sibling)) emit(byId.get(sibling) as New);
    emitted.push({ parentId: m.parentId, nextId: sibling ?? null, node: m.node });
  };
  for (const m of [...made].reverse()) emit(m);
  // Spoiled, now and then: shuffled, a node twice, a next sibling elsewhere (an old node or a new
  // one, under another parent) or unknown, an old
  // recording's previousId, a parent that is the node itself, a parent removed
  // in the same mutation, a node already there. (A next
  // sibling that is the node itself keeps rrweb's path busy for 500 ms: too slow for a property.)
  const spoil = r.int(4) === 0 ? r.pick([0, 1, 2, 3, 4, 5, 6, 7, 8]) : -1;
  if (spoil === 0) for (let i = emitted.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [emitted[i], emitted[j]] = [emitted[j] as Add, emitted[i] as Add];
  }
  const victim = emitted[r.int(emitted.length)] as Add;
  if (spoil === 1) emitted.push(structuredClone(victim));
  if (spoil === 2) victim.nextId = r.pick(all.length ? all : [1]);
  if (spoil === 3) victim.nextId = -1;
  if (spoil === 4) victim.previousId = r.pick(all.length ? all : [1]);
  if (spoil === 5) victim.parentId = victim.node.id;
  if (spoil === 6 && removes.length) victim.parentId = (removes[0] as { id: number }).id; // added under what goes
  if (spoil === 7 && all.length) victim.node = { ...victim.node, id: r.pick(all) };
  const before = emitted.slice(0, emitted.indexOf(victim));
  if (spoil === 8 && before.length) victim.nextId = (r.pick(before) as Add).node.id; // any new one before it
  return { removes, adds: emitted, texts: [], attributes: [] };
}

test("random mutations make the same page, mirror and hooks by the patch as by rrweb's own path", (t) => {
  t.mock.method(console, "warn", () => {}); // rrweb's, on what it cannot apply
  t.mock.method(console, "error", (...args: unknown[]) => process.env.SEED && process.stderr.write(`${args.join(" ")}\n`));
  fc.assert(fc.property(fc.integer(), (seed) => {
    const r = rng(seed);
    const ref = new Side();
    const ours = new Side();
    try {
      const ids = { value: 2 };
      for (let step = 0; step < 6; step++) {
        const d = mutation(r, ref, ids);
        const a = ref.rrweb(structuredClone(d));
        const b = ours.console(structuredClone(d));
        assert.equal(b, a, `step ${step}: threw ${b} (rrweb: ${a})\n${JSON.stringify(d)}`);
        assert.equal(ours.shape(), ref.shape(), `step ${step}: ${JSON.stringify(d)}`);
        assert.deepEqual([...ours.told].sort(), [...ref.told].sort(), `step ${step}: hooks`);
      }
    } catch (error) {
      if (process.env.SEED) console.error("FAILED", seed, (error as Error).message);
      throw error;
    } finally {
      ref.holder.remove();
      ours.holder.remove();
    }
  }), { numRuns: 200, ...(process.env.SEED ? { seed: Number(process.env.SEED), path: process.env.FCPATH } : {}) });
  // The patch did a good part of the work (what it declines is compared too, but proves nothing of
  // it; a `nextId` of -1 leaves the rest of a sequence to rrweb, as in the replayer).
  console.log(`taken ${taken} of ${200 * 6}`);
  assert.ok(taken > 200 * 6 / 4, `the patch took only ${taken} of ${200 * 6} mutations`);
});

/** A hostile page's mutation, as the console receives it: many nodes at once, each an attack
 * that ./assets.ts takes apart before rrweb builds anything. */
function hostileMutation() {
  const spy = "https://spy.example";
  const nodes: [number, number, Serialized][] = [ // parent, id, node
    [1, 2, { type: NodeType.Element, tagName: "img", attributes: { src: `${spy}/i.png`, onerror: "alert(1)", ONLOAD: "alert(2)" }, childNodes: [], id: 2 }],
    [1, 3, { type: NodeType.Element, tagName: "a", attributes: { href: "java\tscript:alert(3)" }, childNodes: [], id: 3 }],
    [1, 4, { type: NodeType.Element, tagName: "script", attributes: { src: `${spy}/s.js` }, childNodes: [], id: 4 }],
    [4, 5, { type: NodeType.Text, textContent: "alert(4)", id: 5 }],
    [1, 6, { type: NodeType.Element, tagName: "meta", attributes: { "http-equiv": "refresh", content: `0;url=${spy}/r` }, childNodes: [], id: 6 }],
    [1, 7, { type: NodeType.Element, tagName: "META", attributes: { "HTTP-EQUIV": "Refresh", Content: `0;url=${spy}/R` }, childNodes: [], id: 7 }],
    [1, 8, { type: NodeType.Element, tagName: "base", attributes: { href: `${spy}/` }, childNodes: [], id: 8 }],
    [1, 9, { type: NodeType.Element, tagName: "form", attributes: { action: `${spy}/f`, onsubmit: "alert(5)" }, childNodes: [], id: 9 }],
    [9, 10, { type: NodeType.Element, tagName: "button", attributes: { formaction: "javascript:alert(6)" }, childNodes: [], id: 10 }],
    [1, 11, { type: NodeType.Element, tagName: "svg", attributes: {}, childNodes: [], id: 11, isSVG: true }],
    [11, 12, { type: NodeType.Element, tagName: "use", attributes: { href: `${spy}/u.svg#x`, "xlink:href": `${spy}/u.svg#y` }, childNodes: [], id: 12, isSVG: true }],
    [11, 13, { type: NodeType.Element, tagName: "animate", attributes: { attributeName: "href", values: `${spy}/a.png`, to: "javascript:alert(7)" }, childNodes: [], id: 13, isSVG: true }],
    [11, 14, { type: NodeType.Element, tagName: "image", attributes: { href: `${spy}/img.png` }, childNodes: [], id: 14, isSVG: true }],
    [1, 15, { type: NodeType.Element, tagName: "div", attributes: { style: `background:url(${spy}/b.png)`, srcdoc: "<img src=x>" }, childNodes: [], id: 15 }],
    [1, 16, { type: NodeType.Element, tagName: "link", attributes: { rel: "prefetch", href: `${spy}/p` }, childNodes: [], id: 16 }],
  ];
  // As the recorder orders them: parents first, each parent's children last first.
  const adds: Add[] = [];
  for (const parent of [1, 4, 9, 11]) {
    const kids = nodes.filter(([p]) => p === parent);
    for (let i = kids.length - 1; i >= 0; i--) {
      const [, id, node] = kids[i] as [number, number, Serialized];
      adds.push({ parentId: parent, nextId: kids[i + 1]?.[1] ?? null, node });
      void id;
    }
  }
  return { type: 3, timestamp: 1, data: { source: 0, removes: [], texts: [], attributes: [], adds } };
}

test("a hostile mutation's nodes go in as neutralised by the patch as by rrweb: no handler, script, address or refresh", async () => {
  const { neutralizeEvent } = await import("../src/console/assets.ts");
  const ref = new Side();
  const ours = new Side();
  try {
    const event = neutralizeEvent(hostileMutation());
    const d = event.data as unknown as Mutation;
    const before = taken;
    assert.equal(ref.rrweb(structuredClone(d)), "");
    assert.equal(ours.console(structuredClone(d)), "");
    assert.equal(taken, before + 1, "the patch took the mutation");
    assert.equal(ours.shape(), ref.shape());
    const html = ours.root.innerHTML;
    for (const attack of ["spy.example", "javascript:", "srcdoc", "onerror", "onload", "onsubmit", "<script"]) {
      assert.ok(!html.toLowerCase().includes(attack), `${attack} in ${html}`);
    }
    // A script is rrweb's inert <noscript>, its text only text; no attribute runs anything.
    for (const element of ours.root.querySelectorAll("*")) {
      for (const { value } of element.attributes) assert.ok(!value.includes("alert("), element.outerHTML);
    }
    assert.equal(ours.root.querySelector("noscript")?.textContent, "alert(4)");
    // The animation stays, with nothing to set its target to.
    assert.equal(ours.root.querySelector("animate")?.attributes.length, 1);
    // Two refreshes, whatever the case of their attributes: neither keeps its content.
    const metas = [...ours.root.querySelectorAll("meta")];
    assert.equal(metas.length, 2);
    for (const meta of metas) assert.equal(meta.getAttribute("content"), null, meta.outerHTML);
  } finally {
    ref.holder.remove();
    ours.holder.remove();
  }
});

/** Mutations whose added nodes name as next sibling one that never comes: itself, a cycle of
 * added nodes (and nodes leading into it), no node id at all; each beside a well-formed node. */
function stallingMutations(count: number): { type: number; timestamp: number; data: Record<string, unknown> }[] {
  const out = [];
  let id = 100;
  const el = (at: number) => ({ type: NodeType.Element, tagName: "b", attributes: {}, childNodes: [], id: at });
  for (let i = 0; i < count; i++) {
    const [a, b, c, d, e, ok] = [id, id + 1, id + 2, id + 3, id + 4, id + 5];
    id += 6;
    const adds = [
      [{ parentId: 1, nextId: a, node: el(a) }], // itself
      [{ parentId: 1, nextId: b, node: el(a) }, { parentId: 1, nextId: a, node: el(b) }], // a cycle of two
      [{ parentId: 1, nextId: b, node: el(c) }, { parentId: 1, nextId: d, node: el(b) }, { parentId: 1, nextId: e, node: el(d) },
        { parentId: 1, nextId: b, node: el(e) }], // into a cycle of three
      [{ parentId: 1, nextId: 0, node: el(a) }], // no node
      [{ parentId: 1, nextId: "x", node: el(a) }],
    ][i % 5] as Add[];
    out.push({ type: 3, timestamp: i, data: { source: 0, removes: [], texts: [], attributes: [], adds: [...adds, { parentId: 1, nextId: null, node: el(ok) }] } });
  }
  return out;
}

test("added nodes naming a next sibling that never comes are dropped before rrweb: it does not spin on them", async (t) => {
  const { neutralizeEvent } = await import("../src/console/assets.ts");
  const side = new Side();
  const timeouts: unknown[] = [];
  side.replayer.warn = (...args: unknown[]) => void (String(args[0]).includes("Timeout in the loop") && timeouts.push(String(args[0])));
  try {
    const events = stallingMutations(10);
    const started = performance.now();
    for (const event of events) assert.equal(side.console(neutralizeEvent(event).data as unknown as Mutation), "");
    t.diagnostic(`${events.length} mutations in ${Math.round(performance.now() - started)} ms (rrweb alone: 500 ms each)`);
    assert.deepEqual(timeouts, [], "rrweb's add loop ran into its 500 ms limit");
    // Each mutation's well-formed node is there, in order; none of the others.
    assert.deepEqual([...side.root.children].map((child) => side.mirror.getId(child)), events.map((_e, i) => 105 + 6 * i));
  } finally {
    side.holder.remove();
  }
});

test("added nodes in rrweb's own order, each naming the next one added or one already there, all stay", async () => {
  const { neutralizeEvent } = await import("../src/console/assets.ts");
  const el = (at: number) => ({ type: NodeType.Element, tagName: "i", attributes: {}, childNodes: [], id: at });
  const adds = [{ parentId: 1, nextId: null, node: el(10) }, { parentId: 1, nextId: 10, node: el(11) },
    { parentId: 1, nextId: 11, node: el(12) }, { parentId: 1, nextId: 2, node: el(13) }, { parentId: 12, nextId: -1, node: el(14) }];
  const event = neutralizeEvent({ type: 3, timestamp: 0, data: { source: 0, removes: [], texts: [], attributes: [], adds: structuredClone(adds) } });
  assert.deepEqual(event.data.adds, adds);
});

test("the mirror's budget counts the nodes rrweb's page holds when a page names nodes again or removes them from elsewhere", async () => {
  const { NodeCount } = await import("../src/console/budget.ts");
  const el = (at: number) => ({ type: NodeType.Element, tagName: "b", attributes: {}, childNodes: [], id: at });
  const add = (parentId: number, at: number) => ({ parentId, nextId: null, node: el(at) });
  // Added again as it was, rrweb moves the node with its children; changed, it builds a new one and
  // leaves the old one where it is. Either way, nothing it held left the page.
  for (const kind of ["added again", "added again, changed", "parent unknown", "parent not its own"]) {
    const side = new Side();
    const count = new NodeCount();
    const apply = (d: Partial<Mutation>) => {
      const mutation = { removes: [], adds: [], texts: [], attributes: [], ...d } as Mutation;
      count.apply({ type: 3, timestamp: 0, data: { source: 0, ...structuredClone(mutation) } });
      // rrweb catches the DOMException of a removeChild that fails, but happy-dom's is not the
      // global class: here it ends the mutation (one removal each, so nothing else is skipped).
      assert.ok(["", ...(kind === "parent not its own" ? ["DOMException"] : [])].includes(side.rrweb(mutation)));
    };
    try {
      count.apply({ type: 2, timestamp: 0, data: { node: el(1) } }); // the stand-in's root
      apply({ adds: [add(1, 2), add(1, 3)] });
      let id = 100;
      for (let round = 0; round < 3; round++) {
        const kids = Array.from({ length: 5 }, () => id++);
        apply({ adds: [add(2, 10), ...kids.map((kid) => add(10, kid))] });
        if (kind === "added again") apply({ adds: [add(3, 10)] });
        else if (kind === "added again, changed") apply({ adds: [{ ...add(3, 10), node: { ...el(10), attributes: { title: `${round}` } } }] });
        else for (const kid of kids) apply({ removes: [{ parentId: kind === "parent unknown" ? 99_999 : 3, id: kid }] });
      }
      const inPage = side.root.querySelectorAll("*").length + 1;
      assert.ok(inPage > 3 + 15, `${kind}: rrweb's page kept them (${inPage})`);
      // Never fewer (a node moved by being added again is counted at both places: one more each time).
      assert.ok(count.size >= inPage && count.size <= inPage + 6, `${kind}: ${count.size} counted, ${inPage} in the page`);
    } finally {
      side.holder.remove();
    }
  }
});

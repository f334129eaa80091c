// Honest pages replay as rrweb replays them: the console's changes to rrweb's replayer
// (../rrweb-patches.mjs) and to the events before it (../src/console/assets.ts) are for what a
// hostile page's SDK sends. A page changed at random (nodes added, moved, removed, texts changed,
// CSS added to its <style>s) is recorded by rrweb's own recorder; its mutations are applied by
// rrweb's replayer as published and as the console patches it (raw, and neutralised as the console
// neutralises them): the same page each time, but for the comment the neutraliser puts before a
// text added to a <style> (CSS_TEXT_SEPARATOR, which changes no CSS).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, test } from "node:test";
import { Replayer, record } from "rrweb";
import { buildNodeWithSN, createCache, createMirror } from "rrweb-snapshot";
import { CSS_TEXT_SEPARATOR, StyleParents, neutralizeEvent } from "../src/console/assets.ts";
import { document, window } from "./dom.ts";
import { rng } from "./rng.ts";

type ApplyMutation = (this: unknown, d: unknown, isSync: boolean) => void;
type Serialized = { type: number; id: number; tagName?: string; childNodes?: Serialized[] };
type Event = { type: number; data: { source?: number; node?: Serialized } & Record<string, unknown> };

const patches = await import(new URL("../rrweb-patches.mjs", import.meta.url).href) as { patchedRrweb(): Promise<string> };
const dir = mkdtempSync(join(tmpdir(), "tandem-rrweb-"));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, "rrweb.mjs"), await patches.patchedRrweb());
const patched = await import(pathToFileURL(join(dir, "rrweb.mjs")).href) as { Replayer: typeof Replayer };
const applyPatched = (patched.Replayer.prototype as unknown as { applyMutation: ApplyMutation }).applyMutation;
const applyRrweb = (Replayer.prototype as unknown as { applyMutation: ApplyMutation }).applyMutation;

// rrweb's recorder reads the page's globals.
const globals = globalThis as Record<string, unknown>;
globals.window ??= window;
globals.document ??= document;
globals.MutationObserver ??= (window as unknown as Record<string, unknown>).MutationObserver;
globals.requestAnimationFrame ??= (callback: () => void) => setTimeout(callback, 0);

const TAGS = ["div", "p", "span", "ul", "li", "b", "form", "input", "label", "section"];

/** Random changes to the page under `root`, in batches (each one mutation event or more). */
async function changeAtRandom(seed: number, root: HTMLElement, batches: number): Promise<void> {
  const r = rng(seed);
  let made = 0;
  // Texts that were in a <style> at some time (their changes are CSS to the console: it cannot
  // tell that rrweb made the move out); any other changes to read like CSS, shown as written.
  const wasCss = new WeakSet<Node>();
  for (let batch = 0; batch < batches; batch++) {
    for (let op = 1 + r.int(12); op > 0; op--) {
      for (const style of root.querySelectorAll("style")) for (const child of style.childNodes) wasCss.add(child);
      const elements = [root, ...root.querySelectorAll("*")].filter((el) => !["STYLE", "INPUT"].includes(el.tagName));
      const nodes = [...root.querySelectorAll("*")].flatMap((el) => [el, ...el.childNodes]).filter((n) => n !== root);
      const styles = [...root.querySelectorAll("style")];
      const parent = r.pick(elements);
      const before = parent.childNodes.length ? r.pick([...parent.childNodes, null]) : null;
      switch (r.int(7)) {
        case 0: case 1: {
          const el = document.createElement(r.pick(TAGS));
          el.setAttribute("data-n", String(made++));
          if (r.int(2)) el.append(document.createTextNode(`t${made}`));
          parent.insertBefore(el, before);
          break;
        }
        case 2: parent.insertBefore(document.createTextNode(`x${made++}`), before); break;
        case 3: { // a move: a node (and its subtree) elsewhere
          const node = r.pick(nodes.length ? nodes : [root]);
          if (node !== root && !node.contains(parent)) parent.insertBefore(node, before === node ? null : before);
          break;
        }
        case 4: if (nodes.length) r.pick(nodes).remove(); break;
        case 5: {
          const texts = nodes.filter((n) => n.nodeType === 3) as Text[];
          if (texts.length) {
            const changed = r.pick(texts);
            changed.data = wasCss.has(changed) ? `changed${made++}` : `changed${made++} url(u${made}) C:\\p${made}`;
          }
          break;
        }
        case 6: { // CSS: a new <style>, or a rule added to one as a text of its own (as CSS-in-JS does)
          if (!styles.length || r.int(3) === 0) {
            const style = document.createElement("style");
            style.textContent = `.s${made++}{color:red}`;
            parent.insertBefore(style, before);
          } else {
            r.pick(styles).append(document.createTextNode(`.s${made++}{margin:0}`));
          }
          break;
        }
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** A replay of `events` (a snapshot's <body>, then mutations) by `apply`. */
function replay(events: Event[], apply: ApplyMutation, neutralise: boolean): string {
  const mirror = createMirror();
  const styles = new StyleParents();
  const copy = structuredClone(events);
  const at = copy.findIndex((event) => event.type === 2);
  const full = copy[at] as Event;
  const rest = copy.slice(at + 1);
  if (neutralise) neutralizeEvent(full, undefined, styles);
  const stack = [full.data.node as Serialized];
  let body: Serialized | undefined;
  while (stack.length && !body) {
    const node = stack.pop() as Serialized;
    if (node.tagName === "body") body = node;
    stack.push(...(node.childNodes ?? []));
  }
  const holder = document.createElement("div");
  holder.append(buildNodeWithSN(body as never, { doc: document, mirror, hackCss: true, cache: createCache() }) as Node);
  const replayer = Object.assign(Object.create(Replayer.prototype), {
    config: { useVirtualDom: false, plugins: [] }, usingVirtualDom: false, mirror, iframe: { contentDocument: document },
    legacy_missingNodeRetryMap: {}, newDocumentQueue: [], cache: createCache(), warn() {}, debug() {},
  });
  for (const event of rest) {
    if (event.type !== 3 || event.data.source !== 0) continue;
    if (neutralise) neutralizeEvent(event, undefined, styles);
    apply.call(replayer, event.data, false);
  }
  const out: string[] = [];
  const walk = (node: Node, depth: number) => {
    const id = mirror.getId(node);
    const what = node.nodeType === 1 ? `<${(node as Element).localName}${[...(node as Element).attributes].map((a) => ` ${a.name}="${a.value}"`).join("")}>`
      : `${node.nodeName} ${JSON.stringify(node.nodeType === 3 && node.parentNode?.nodeName === "STYLE" ? (node.nodeValue ?? "").replace(/^\/\*\*\//, "") : node.nodeValue)}`;
    out.push(`${" ".repeat(depth)}${id} ${what}`);
    for (const child of node.childNodes) walk(child, depth + 1);
  };
  walk(holder.firstChild as Node, 0);
  return out.join("\n");
}

test("pages recorded by rrweb's recorder replay the same by the console's replayer as by rrweb's", async (t) => {
  t.mock.method(console, "warn", () => {});
  assert.equal(CSS_TEXT_SEPARATOR, "/**/", "the shapes below take it off as such");
  let mutations = 0;
  const began = performance.now();
  for (let seed = 1; seed <= 20; seed++) {
    document.body.innerHTML = '<div id="page"><p>Hello <b>there</b></p><style>p{color:blue}</style><ul><li>one</li><li>two</li></ul></div>';
    const events: Event[] = [];
    const stop = record({ emit: (event) => void events.push(event as unknown as Event) });
    await changeAtRandom(seed, document.getElementById("page") as HTMLElement, 6);
    stop?.();
    mutations += events.filter((e) => e.type === 3 && e.data.source === 0).length;
    const rrweb = replay(events, applyRrweb, false);
    assert.equal(replay(events, applyPatched, false), rrweb, `seed ${seed}: the patched replayer`);
    assert.equal(replay(events, applyPatched, true), rrweb, `seed ${seed}: the patched replayer, neutralised`);
    assert.ok(rrweb.includes("data-n"), `seed ${seed}: the page changed`);
  }
  t.diagnostic(`${mutations} recorded mutations compared in ${(performance.now() - began).toFixed(0)} ms`);
  assert.ok(mutations >= 80, `only ${mutations} mutations`);
});

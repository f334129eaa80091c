// A hostile customer page that makes the SDK send full snapshots of megabytes of CSS (or a huge
// DOM) again and again: each one rebuilds the agent's whole mirror and has rrweb's replayer
// rewrite all its styles with PostCSS (console/budget.ts, SnapshotGate). Honest pages' snapshots
// (the first page, pages opened quickly one after another, sharing resumed) must never wait.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  MAX_HELD_EVENTS, SNAPSHOT_NODES, SNAPSHOT_STYLE_CHARS, STYLE_WINDOW_MS, SnapshotGate, snapshotCost,
} from "../src/console/budget.ts";
import { playableEvents } from "../src/console/playback.ts";

const text = (id: number, textContent: string, isStyle?: unknown) => ({ type: 3, id, textContent, ...(isStyle ? { isStyle } : {}) });
const el = (id: number, tagName: string, childNodes: unknown[] = [], attributes: Record<string, unknown> = {}) =>
  ({ type: 2, id, tagName, attributes, childNodes });

/** A page's full snapshot: its `<style>` of `css` characters, `items` paragraphs; `n` told apart. */
function snapshot(n: number, css: number, items = 10, timestamp = 1) {
  const rules = `.p${n}{color:red}`;
  const style = el(3, "style", [text(4, rules.repeat(Math.ceil(css / rules.length)).slice(0, css))]);
  const ps = Array.from({ length: items }, (_, i) => el(100 + 2 * i, "p", [text(101 + 2 * i, `Item ${i}`)]));
  return { type: 2, timestamp, n, data: { node: { type: 0, id: 1, childNodes: [el(2, "html", [style, ...ps])] }, initialOffset: { top: 0, left: 0 } } };
}
/** A change on page `n` (after its snapshot). */
const change = (n: number, timestamp = 1) =>
  ({ type: 3, timestamp, n, data: { source: 0, texts: [{ id: 101, value: `page ${n}` }], attributes: [], adds: [], removes: [] } });

const MB = 1024 * 1024;

test("a full snapshot's cost is its nodes and the CSS rrweb rewrites: <style> texts, texts flagged as style, carried sheets", () => {
  const event = { type: 2, data: { node: { type: 0, id: 1, childNodes: [el(2, "html", [
    el(3, "style", [text(4, "a{}")]), el(5, "link", [], { rel: "stylesheet", _cssText: "b{color:red}" }),
    el(6, "p", [text(7, "not css"), text(8, "c{}", 1)]), el(9, "svg:style", [text(10, "d{}")]),
  ])] } } };
  assert.deepEqual(snapshotCost(event), { chars: 3 + 12 + 3 + 3, nodes: 10 });
});

test("an honest page's snapshots are never held: its first page, five pages opened within two seconds, sharing resumed", () => {
  const clock = { now: 0 };
  const gate = new SnapshotGate(() => clock.now);
  // A site of 300 KB of CSS and three thousand nodes.
  const pages = [0, 400, 800, 1200, 1600, 2000, 30_000].map((at, n) => ({ at, n }));
  for (const { at, n } of pages) {
    clock.now = at;
    const page = snapshot(n, 300_000, 1500);
    assert.deepEqual(gate.pass(page), [page], `page ${n} at ${at} ms shows at once`);
    const next = change(n);
    assert.deepEqual(gate.pass(next), [next]);
  }
  assert.equal(gate.takeHeld(), false);
  assert.equal(gate.behind, false);
});

test("a page sending full snapshots of megabytes of CSS over and over has at most SNAPSHOT_STYLE_CHARS a window built, its latest page shown, in order", () => {
  const clock = { now: 0 };
  const gate = new SnapshotGate(() => clock.now);
  const built: { n: number; type: number; at: number }[] = [];
  const give = (events: unknown[]) => {
    for (const e of events as { n: number; type: number }[]) built.push({ n: e.n, type: e.type, at: clock.now });
  };
  const css = 1.5 * MB;
  const seconds = 60;
  let last = -1;
  for (let n = 0; clock.now < seconds * 1000; n++, clock.now += 100) {
    give(gate.pass(snapshot(n, css)));
    give(gate.pass(change(n)));
    last = n;
    const due = gate.due;
    if (due !== null && due <= clock.now + 50) {
      clock.now = due;
      give(gate.release());
    }
  }
  const snapshots = built.filter((b) => b.type === 2);
  // The first page at once; then SNAPSHOT_STYLE_CHARS a window (plus one larger than what is left).
  const windows = seconds * 1000 / STYLE_WINDOW_MS;
  assert.ok(snapshots.length * css <= css + (windows + 1) * SNAPSHOT_STYLE_CHARS, `${snapshots.length} snapshots built`);
  assert.ok(snapshots.length >= windows / 2, `${snapshots.length} snapshots built: the page is still shown, now and then`);
  assert.equal(gate.takeHeld(), true, "said");
  // Never an older page after a newer one; each page's changes after it, none of another page's.
  for (let i = 1; i < snapshots.length; i++) assert.ok(snapshots[i]!.n > snapshots[i - 1]!.n);
  let shown = -1;
  for (const b of built) {
    if (b.type === 2) shown = b.n;
    else assert.equal(b.n, shown, "a change of the page it was made on");
  }
  // The latest page shows once the window allows.
  clock.now = gate.due ?? clock.now;
  give(gate.release());
  assert.equal(built.at(-1)?.n, last);
  assert.equal(gate.behind, false);
});

test("a page of a huge DOM sent afresh over and over is bounded by SNAPSHOT_NODES a window", () => {
  const clock = { now: 0 };
  const gate = new SnapshotGate(() => clock.now);
  const each = snapshotCost(snapshot(0, 10, 50_000)).nodes;
  let nodes = 0;
  for (let n = 0; n < 600; n++, clock.now += 100) {
    for (const e of [...gate.pass(snapshot(n, 10, 50_000)), ...gate.release()] as { type: number }[]) {
      if (e.type === 2) nodes += each;
    }
  }
  assert.ok(nodes <= each + 7 * SNAPSHOT_NODES, `${nodes} nodes built in a minute`);
  assert.ok(nodes >= 3 * SNAPSHOT_NODES, `${nodes} nodes built in a minute: the page still shows`);
});

test("what comes after a held snapshot waits with it; a newer snapshot replaces it and what followed it", () => {
  const clock = { now: 0 };
  const gate = new SnapshotGate(() => clock.now);
  const first = snapshot(0, 3 * MB);
  assert.deepEqual(gate.pass(first), [first], "nothing owed: a first page larger than the allowance shows");
  clock.now = 100;
  const second = snapshot(1, 300_000);
  assert.deepEqual(gate.pass(second), [], "held: the first page's CSS is owed");
  assert.equal(gate.behind, true);
  assert.deepEqual(gate.pass(change(1)), []);
  const third = snapshot(2, 300_000);
  const after = change(2);
  assert.deepEqual(gate.pass(third), []);
  assert.deepEqual(gate.pass(after), []);
  const due = gate.due as number;
  assert.ok(due > clock.now && due <= 100 + 2 * STYLE_WINDOW_MS, `due at ${due}`);
  clock.now = due - 1;
  assert.deepEqual(gate.release(), []);
  clock.now = due;
  assert.deepEqual(gate.release(), [third, after], "the latest page, with its changes: never the older one");
  assert.equal(gate.behind, false);
  assert.equal(gate.takeHeld(), true);
  assert.equal(gate.takeHeld(), false, "said once");
});

test("beyond MAX_HELD_EVENTS behind a held snapshot, it is dropped and the mirror waits for the page's next one", () => {
  const clock = { now: 0 };
  const gate = new SnapshotGate(() => clock.now);
  gate.pass(snapshot(0, 3 * MB));
  gate.pass(snapshot(1, 3 * MB));
  for (let i = 0; i < MAX_HELD_EVENTS + 5; i++) assert.deepEqual(gate.pass(change(1)), []);
  assert.equal(gate.due, null, "nothing held");
  assert.equal(gate.behind, true);
  clock.now += 10 * STYLE_WINDOW_MS;
  assert.deepEqual(gate.pass(change(1)), [], "a change of a page the mirror does not show");
  const next = snapshot(2, 100);
  assert.deepEqual(gate.pass(next), [next]);
  assert.equal(gate.behind, false);
});

test("a recording of full snapshots of megabytes of CSS over and over plays SNAPSHOT_STYLE_CHARS a window of its time, its latest page last", () => {
  const css = 1.5 * MB;
  const events: unknown[] = [];
  for (let n = 0; n < 600; n++) events.push(snapshot(n, css, 10, 1000 + n * 100), change(n, 1000 + n * 100 + 1));
  const notes = { stylesHeld: false, snapshotsHeld: false };
  const played = playableEvents(events, undefined, notes) as { type: number; n: number; timestamp: number }[];
  const snapshots = played.filter((e) => e.type === 2);
  const windows = 60_000 / STYLE_WINDOW_MS;
  assert.ok(snapshots.length * css <= css + (windows + 1) * SNAPSHOT_STYLE_CHARS, `${snapshots.length} snapshots played`);
  assert.equal(notes.snapshotsHeld, true);
  assert.equal(snapshots.at(-1)?.n, 599, "the recording's last page is shown");
  for (let i = 1; i < played.length; i++) assert.ok(played[i]!.timestamp >= played[i - 1]!.timestamp, "in order of time");
  let shown = -1;
  for (const e of played) {
    if (e.type === 2) shown = e.n;
    else assert.equal(e.n, shown, "a change of the page it was made on");
  }
});

test("an honest recording's pages all play at their own time", () => {
  const events: unknown[] = [];
  for (let n = 0; n < 6; n++) events.push(snapshot(n, 300_000, 1000, 1000 + n * 500), change(n, 1000 + n * 500 + 1));
  const times = events.map((e) => (e as { timestamp: number }).timestamp);
  const notes = { stylesHeld: false, snapshotsHeld: false };
  const played = playableEvents(events, undefined, notes) as { timestamp: number }[];
  assert.equal(played.length, events.length);
  assert.deepEqual(played.map((e) => e.timestamp), times);
  assert.equal(notes.snapshotsHeld, false);
});

test("a snapshot held in a recording is neutralised like any other when it plays (its CSS fetches nothing)", () => {
  const held = snapshot(1, 100, 10, 1100);
  const style = held.data.node.childNodes[0]!.childNodes[0] as { childNodes: { textContent: string }[] };
  style.childNodes[0]!.textContent = "p{background:url(https://x.example/a)}";
  const events = [snapshot(0, 3 * MB, 10, 1000), held, change(1, 1101)];
  const notes = { stylesHeld: false, snapshotsHeld: false };
  const played = playableEvents(events, undefined, notes) as { n: number; timestamp: number }[];
  assert.deepEqual(played.map((e) => e.n), [0, 1, 1]);
  assert.ok(played[1]!.timestamp > 1100, "later, when the allowance takes it");
  assert.equal(notes.snapshotsHeld, true);
  assert.ok(!JSON.stringify(played[1]).includes("x.example"));
});

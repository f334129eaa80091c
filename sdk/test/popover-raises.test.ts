// When the widget is raised over the page's popovers (share/popover-raises.ts): at `beforetoggle`,
// in a microtask (after the page's script shows the popover, before the frame is drawn), at most
// once for the popovers shown before that microtask, at most once for each popover shown (the
// `toggle` after it raises no more), within the raises' budget; at `toggle` only for a popover
// not raised over since it was shown.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PopoverRaises } from "../src/share/popover-raises.ts";

interface Popover {
  name: string;
  open: boolean;
  ours?: boolean;
}

/** The raises over stand-in popovers, with the browser's microtasks and frames run by hand. */
function setUp(budget = 32) {
  const microtasks: (() => void)[] = [];
  const frames: (() => void)[] = [];
  const raised: string[][] = [];
  let left = budget;
  let shownNow: Popover[] = [];
  const raises = new PopoverRaises<Popover>({
    popover: (target) => {
      const popover = target as unknown as Popover | null;
      return popover && !popover.ours ? popover : null;
    },
    shown: (popover) => popover.open,
    mayRaise: () => left-- > 0,
    raise: () => raised.push(shownNow.filter((p) => p.open).map((p) => p.name)),
    microtask: (run) => microtasks.push(run),
    beforeFrame: (run) => (frames.push(run), true),
  });
  const event = (popover: Popover, newState: string) => ({ target: popover, newState }) as unknown as Event;
  return {
    raised,
    /** The page's script shows `popover` (its `beforetoggle`, then shown). */
    show(popover: Popover): void {
      raises.beforeToggle(event(popover, "open"));
      popover.open = true;
      shownNow = [...shownNow.filter((p) => p !== popover), popover];
    },
    hide(popover: Popover): void {
      raises.beforeToggle(event(popover, "closed"));
      popover.open = false;
    },
    toggle(popover: Popover, newState = popover.open ? "open" : "closed"): void {
      raises.toggle(event(popover, newState));
    },
    beforeToggle(popover: Popover, newState: string): void {
      raises.beforeToggle(event(popover, newState));
    },
    runMicrotasks(): void {
      while (microtasks.length) microtasks.shift()?.();
    },
    runFrame(): void {
      for (const run of frames.splice(0)) run();
    },
  };
}

test("a popover the page shows gets the widget raised over it in a microtask, not before it is shown", () => {
  const page = setUp();
  const tip: Popover = { name: "tip", open: false };
  page.show(tip);
  assert.deepEqual(page.raised, []); // not yet: it would land under the popover
  page.runMicrotasks();
  assert.deepEqual(page.raised, [["tip"]]);
  // Its `toggle`, a task later: raised over already, no second raise.
  page.toggle(tip);
  page.runFrame();
  assert.equal(page.raised.length, 1);
});

test("the popovers shown before a microtask get one raise between them", () => {
  const page = setUp();
  const tips: Popover[] = [0, 1, 2].map((i) => ({ name: `tip ${i}`, open: false }));
  for (const tip of tips) page.show(tip);
  page.runMicrotasks();
  assert.deepEqual(page.raised, [["tip 0", "tip 1", "tip 2"]]);
  for (const tip of tips) page.toggle(tip);
  assert.equal(page.raised.length, 1);
});

test("a popover hidden calls for no raise, nor one cancelled before it was shown", () => {
  const page = setUp();
  const tip: Popover = { name: "tip", open: true };
  page.hide(tip);
  page.runMicrotasks();
  page.toggle(tip);
  page.runFrame();
  assert.deepEqual(page.raised, []);
  // Shown then hidden in the same script: nothing to raise over.
  page.show(tip);
  page.hide(tip);
  page.runMicrotasks();
  page.runFrame();
  assert.deepEqual(page.raised, []);
});

test("a popover shown again after a raise gets another: each show is raised over", () => {
  const page = setUp();
  const tip: Popover = { name: "tip", open: false };
  for (let frame = 0; frame < 5; frame++) {
    if (tip.open) page.hide(tip);
    page.show(tip);
    page.runMicrotasks();
  }
  assert.equal(page.raised.length, 5);
  page.toggle(tip); // the browser's toggles coalesced: one, after the last show
  assert.equal(page.raised.length, 5);
});

test("a popover the browser shows after the microtask ran is raised over before the next frame", () => {
  // A `popovertarget` button's: the browser dispatches `beforetoggle` from its own code, so the
  // microtask runs right after the listener, before the popover is shown.
  const page = setUp();
  const menu: Popover = { name: "menu", open: false };
  page.beforeToggle(menu, "open");
  page.runMicrotasks();
  assert.deepEqual(page.raised, []);
  menu.open = true;
  page.runFrame();
  assert.equal(page.raised.length, 1);
  page.toggle(menu);
  assert.equal(page.raised.length, 1);
});

test("without a frame callback, the `toggle` raises over a popover not raised over yet", () => {
  const page = setUp();
  const menu: Popover = { name: "menu", open: false };
  page.beforeToggle(menu, "open");
  page.runMicrotasks();
  menu.open = true;
  page.toggle(menu); // the frame callback not run (none to be had)
  assert.equal(page.raised.length, 1);
  page.runFrame(); // raised over already: not again
  assert.equal(page.raised.length, 1);
  // Its `beforetoggle` not heard at all (a page's listener stopped it): raised at `toggle`.
  const other: Popover = { name: "other", open: true };
  page.toggle(other);
  assert.equal(page.raised.length, 2);
});

test("the widget's own layer and what is no popover of the page's call for nothing", () => {
  const page = setUp();
  const own: Popover = { name: "widget", open: false, ours: true };
  page.show(own);
  page.runMicrotasks();
  page.toggle(own);
  page.runFrame();
  assert.deepEqual(page.raised, []);
});

test("a page showing a popover again after each raise gets no more raises than the budget", () => {
  const page = setUp(32);
  const tip: Popover = { name: "tip", open: false };
  for (let i = 0; i < 1000; i++) {
    if (tip.open) page.hide(tip);
    page.show(tip);
    page.runMicrotasks();
    page.toggle(tip);
    page.runFrame();
  }
  assert.equal(page.raised.length, 32);
});

test("many popovers heard before a microtask cost the raise a time in proportion, not squared", () => {
  // A hostile page dispatching forged `beforetoggle` events on 60 000 popovers of its own, half of
  // them shown, before one microtask: it spends one event each; the flush, matching each heard
  // one against those shown, spent about 30 000 × 30 000 comparisons (seconds of the tab's time).
  const page = setUp();
  const popovers: Popover[] = Array.from({ length: 60_000 }, (_, i) => ({ name: `p${i}`, open: i % 2 === 0 }));
  for (const popover of popovers) page.beforeToggle(popover, "open");
  const start = performance.now();
  page.runMicrotasks();
  page.runFrame();
  const spent = performance.now() - start;
  assert.equal(page.raised.length, 1);
  assert.ok(spent < 1000, `the flush took ${Math.round(spent)} ms`);
});

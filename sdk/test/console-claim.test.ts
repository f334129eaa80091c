// One console document at a time seals under a pairing's keys (console/claim.ts): the lock of the
// keys' handle, asked for with a bounded wait, with a fake lock port and timers the test fires.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CLAIM_WAIT_MS, claimSealing, sealingLock } from "../src/console/claim.ts";
import { FakeLocks, manualTimers } from "./locks.ts";

/** Whether `claim` settled yet, and how. */
async function settled(claim: Promise<boolean>): Promise<boolean | "pending"> {
  return Promise.race([claim, new Promise<"pending">((resolve) => setTimeout(() => resolve("pending"), 0))]);
}

test("the first document to ask for a handle's lock gets it at once, and keeps it while it lives", async () => {
  const locks = new FakeLocks();
  const timers = manualTimers();
  assert.equal(await claimSealing(locks.port("tab"), "h1", timers.after), true);
  assert.equal(locks.holder(sealingLock("h1")), "tab");
  assert.deepEqual(timers.pending, [], "its bound is cancelled once granted");
  timers.fire();
  assert.equal(locks.holder(sealingLock("h1")), "tab");
});

test("a duplicate of a living tab waits the bound, is refused, and its request is withdrawn", async () => {
  const locks = new FakeLocks();
  const timers = manualTimers();
  assert.equal(await claimSealing(locks.port("original"), "h1", timers.after), true);
  const duplicate = claimSealing(locks.port("duplicate"), "h1", timers.after);
  assert.equal(await settled(duplicate), "pending");
  assert.deepEqual(timers.pending, [CLAIM_WAIT_MS]);
  timers.fire();
  assert.equal(await duplicate, false);
  // The original goes later: the withdrawn request never gets the lock.
  locks.go("original");
  assert.equal(locks.holder(sealingLock("h1")), undefined);
});

test("a reload's new document gets the lock once the old document goes, within the bound", async () => {
  const locks = new FakeLocks();
  const timers = manualTimers();
  assert.equal(await claimSealing(locks.port("before"), "h1", timers.after), true);
  const after = claimSealing(locks.port("after"), "h1", timers.after);
  assert.equal(await settled(after), "pending");
  locks.go("before");
  assert.equal(await after, true);
  assert.equal(locks.holder(sealingLock("h1")), "after");
  assert.deepEqual(timers.pending, []);
});

test("each handle has its own lock: another session's tab is no duplicate", async () => {
  const locks = new FakeLocks();
  const timers = manualTimers();
  assert.equal(await claimSealing(locks.port("one"), "h1", timers.after), true);
  assert.equal(await claimSealing(locks.port("two"), "h2", timers.after), true);
});

test("of two duplicates waiting, only one gets the lock when the original goes", async () => {
  const locks = new FakeLocks();
  const timers = manualTimers();
  assert.equal(await claimSealing(locks.port("original"), "h1", timers.after), true);
  const first = claimSealing(locks.port("first"), "h1", timers.after);
  const second = claimSealing(locks.port("second"), "h1", timers.after);
  locks.go("original");
  assert.equal(await first, true);
  assert.equal(await settled(second), "pending");
  timers.fire();
  assert.equal(await second, false);
});

test("without Web Locks nothing can tell: the claim is granted (counters are still reserved apart)", async () => {
  assert.equal(await claimSealing(null, "h1", manualTimers().after), true);
});

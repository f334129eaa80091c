// The console's freshness check (console/freshness.ts): which echoes prove the agent's view is
// the customer's page now, and for how long. Pure: the live session's tests (console-rejoin)
// drive it through a console and a relay that freezes, holds back or replays.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CHALLENGE_EVERY_MS, MAX_OUTSTANDING, STALE_AFTER_MS, freshnessTimings, provenInThisEpoch, reduceFreshness, startFreshness,
  verdict,
} from "../src/console/freshness.ts";
import { ACTION_PROOF_MS, NONCE_PATTERN, PayloadDecoder, parseChallengeCommand } from "../src/shared/payload.ts";

const STALE = STALE_AFTER_MS;
const A = "AAAAAAAAAAAAAAAAAAAAAA";
const B = "BBBBBBBBBBBBBBBBBBBBBB";
const C = "CCCCCCCCCCCCCCCCCCCCCC";

test("the timings are 3 s between challenges and a bound of three intervals, 9 s", () => {
  assert.equal(CHALLENGE_EVERY_MS, 3000);
  assert.equal(STALE_AFTER_MS, 9000);
});

test("a view is checked, not live, until an echo of a challenge it sent; then live for the bound after that challenge left", () => {
  let f = startFreshness(1000);
  assert.deepEqual(verdict(f, 1000, STALE), { kind: "checking" });
  f = reduceFreshness(f, { type: "challenged", nonce: A, at: 2000 });
  assert.deepEqual(verdict(f, 5000, STALE), { kind: "checking" });
  f = reduceFreshness(f, { type: "echoed", nonce: A });
  assert.equal(f.provenAt, 2000); // when the challenge left, not when its echo came
  assert.deepEqual(verdict(f, 2000 + STALE, STALE), { kind: "live" });
  assert.deepEqual(verdict(f, 2001 + STALE, STALE), { kind: "stale", silentMs: 1 + STALE });
});

test("with no echo at all, the view is called stale once the bound has passed since it started", () => {
  let f = startFreshness(0);
  f = reduceFreshness(f, { type: "challenged", nonce: A, at: 0 });
  assert.deepEqual(verdict(f, STALE, STALE), { kind: "checking" });
  assert.deepEqual(verdict(f, STALE + 2500, STALE), { kind: "stale", silentMs: STALE + 2500 });
});

test("an echo counts once: the same nonce again (a replay) proves nothing more", () => {
  let f = reduceFreshness(startFreshness(0), { type: "challenged", nonce: A, at: 100 });
  f = reduceFreshness(f, { type: "echoed", nonce: A });
  const after = reduceFreshness(f, { type: "echoed", nonce: A });
  assert.equal(after, f); // the very same state: the caller knows it counted for nothing
});

test("an echo of a nonce this view never sent, or sent before it restarted (a rejoin), counts for nothing", () => {
  let f = reduceFreshness(startFreshness(0), { type: "challenged", nonce: A, at: 100 });
  assert.equal(reduceFreshness(f, { type: "echoed", nonce: B }), f);
  f = reduceFreshness(f, { type: "start", at: 5000 }); // rejoined: the old challenge is forgotten
  const restarted = f;
  assert.equal(reduceFreshness(f, { type: "echoed", nonce: A }), restarted);
  assert.deepEqual(verdict(f, 5001, STALE), { kind: "checking" });
});

test("an echo settles the older challenges too (they cannot prove more); a later one still counts", () => {
  let f = startFreshness(0);
  for (const [nonce, at] of [[A, 100], [B, 200], [C, 300]] as const) f = reduceFreshness(f, { type: "challenged", nonce, at });
  f = reduceFreshness(f, { type: "echoed", nonce: B });
  assert.equal(f.provenAt, 200);
  assert.equal(reduceFreshness(f, { type: "echoed", nonce: A }), f); // late, and older: nothing
  f = reduceFreshness(f, { type: "echoed", nonce: C });
  assert.equal(f.provenAt, 300);
  assert.deepEqual(f.outstanding, []);
});

test("only the latest challenges wait for their echo: an echo of a forgotten one counts for nothing", () => {
  let f = startFreshness(0);
  const nonces = Array.from({ length: MAX_OUTSTANDING + 2 }, (_, i) => String(i).padStart(22, "n"));
  nonces.forEach((nonce, i) => (f = reduceFreshness(f, { type: "challenged", nonce, at: i })));
  assert.equal(f.outstanding.length, MAX_OUTSTANDING);
  assert.equal(reduceFreshness(f, { type: "echoed", nonce: nonces[0] as string }), f);
  assert.equal(reduceFreshness(f, { type: "echoed", nonce: nonces.at(-1) as string }).provenAt, nonces.length - 1);
});

test("the timings can be made quicker (tests), never looser than the defaults", () => {
  assert.deepEqual(freshnessTimings(undefined), { challengeMs: CHALLENGE_EVERY_MS, staleMs: STALE_AFTER_MS });
  assert.deepEqual(freshnessTimings({ challengeMs: 500, staleMs: 2500 }), { challengeMs: 500, staleMs: 2500 });
  // Longer than the defaults, or not numbers: the defaults.
  assert.deepEqual(freshnessTimings({ challengeMs: 60_000, staleMs: 3_600_000 }), { challengeMs: CHALLENGE_EVERY_MS, staleMs: STALE_AFTER_MS });
  assert.deepEqual(freshnessTimings({ challengeMs: "1", staleMs: null }), { challengeMs: CHALLENGE_EVERY_MS, staleMs: STALE_AFTER_MS });
  // The bound stays at least two intervals (a healthy session is not called stale between echoes).
  assert.deepEqual(freshnessTimings({ challengeMs: 1000, staleMs: 10 }), { challengeMs: 1000, staleMs: 2000 });
  assert.deepEqual(freshnessTimings({ challengeMs: 0 }), { challengeMs: 100, staleMs: STALE_AFTER_MS });
});

test("a challenge and its echo carry a 16-byte base64url nonce and nothing else is taken", () => {
  assert.ok(NONCE_PATTERN.test(A));
  assert.deepEqual(parseChallengeCommand({ k: "challenge", nonce: A, more: "ignored" }), { k: "challenge", nonce: A });
  // The proof (the newest echo the console got): kept as a nonce, or null; anything else names none.
  assert.deepEqual(parseChallengeCommand({ k: "challenge", nonce: A, proof: B }), { k: "challenge", nonce: A, proof: B });
  for (const proof of [null, 7, "short", "x".repeat(5000)]) {
    assert.deepEqual(parseChallengeCommand({ k: "challenge", nonce: A, proof }), { k: "challenge", nonce: A, proof: null });
  }
  for (const nonce of [undefined, 7, "", "short", `${A}A`, "AAAAAAAAAAAAAAAAAAAA+/", "x".repeat(5000)]) {
    assert.equal(parseChallengeCommand({ k: "challenge", nonce }), null, String(nonce));
  }
  const decode = (value: unknown) => new PayloadDecoder().push(new TextEncoder().encode(JSON.stringify(value)));
  assert.deepEqual(decode({ k: "echo", nonce: A }), { k: "echo", nonce: A });
  assert.throws(() => decode({ k: "echo", nonce: "x".repeat(5000) }));
});

test("the nonce of the newest echoed challenge is what acting commands name as their proof", () => {
  let f = startFreshness(0);
  f = reduceFreshness(f, { type: "challenged", nonce: "n1", at: 100 });
  f = reduceFreshness(f, { type: "challenged", nonce: "n2", at: 200 });
  assert.equal(f.provenNonce, undefined);
  f = reduceFreshness(f, { type: "echoed", nonce: "n2" });
  assert.equal(f.provenNonce, "n2");
  assert.equal(reduceFreshness(f, { type: "echoed", nonce: "n1" }).provenNonce, "n2", "an older one's echo proves nothing");
  assert.equal(reduceFreshness(f, { type: "start", at: 300 }).provenNonce, undefined, "a rejoin forgets it");
});

test("a proof echoed before the customer's browser began a new epoch names nothing it keeps: the view is refreshing until the new epoch's echo", () => {
  let f = startFreshness(0);
  assert.equal(provenInThisEpoch(f), false, "nothing proven yet");
  f = reduceFreshness(f, { type: "challenged", nonce: A, at: 100 });
  f = reduceFreshness(f, { type: "echoed", nonce: A });
  assert.equal(provenInThisEpoch(f), true);
  assert.deepEqual(verdict(f, 200, STALE), { kind: "live" });
  // A supervisor came (a new key: a new epoch, first its `consented`): within the bound, but
  // the proof is of the epoch before, which the customer's browser no longer takes: not live
  // (nothing that acts goes), and not stale either: the customer's page is being refreshed.
  f = reduceFreshness(f, { type: "epoch" });
  assert.deepEqual(verdict(f, 200, STALE), { kind: "refreshing" });
  assert.equal(verdict(f, 100 + STALE + 1, STALE).kind, "stale", "past the bound it is stale, as ever");
  assert.equal(provenInThisEpoch(f), false);
  assert.equal(reduceFreshness(f, { type: "epoch" }), f, "a second start changes nothing more");
  f = reduceFreshness(f, { type: "challenged", nonce: B, at: 300 }); // sent at once by the console
  assert.equal(provenInThisEpoch(reduceFreshness(f, { type: "echoed", nonce: C })), false, "an echo it never sent");
  f = reduceFreshness(f, { type: "echoed", nonce: B });
  assert.equal(provenInThisEpoch(f), true);
  assert.equal(f.provenNonce, B);
  assert.deepEqual(verdict(f, 400, STALE), { kind: "live" });
  assert.equal(provenInThisEpoch(reduceFreshness(f, { type: "start", at: 400 })), false, "a rejoin forgets it");
});

test("after a new epoch the view is live again only once the mirror applied that epoch's full snapshot too (the old page's node ids name other nodes)", () => {
  let f = startFreshness(0);
  f = reduceFreshness(f, { type: "epoch" }); // the first epoch: nothing was shown before it
  f = reduceFreshness(f, { type: "challenged", nonce: A, at: 100 });
  f = reduceFreshness(f, { type: "echoed", nonce: A });
  assert.deepEqual(verdict(f, 200, STALE), { kind: "live" }, "an empty mirror holds no older page");
  f = reduceFreshness(f, { type: "shown", current: true });
  assert.deepEqual(verdict(f, 200, STALE), { kind: "live" });
  // The next epoch: its echo comes (after its snapshot, in order), but the mirror applies the
  // snapshot a frame later: until then it shows the page of the epoch before.
  f = reduceFreshness(f, { type: "epoch" });
  f = reduceFreshness(f, { type: "challenged", nonce: B, at: 300 });
  f = reduceFreshness(f, { type: "echoed", nonce: B });
  assert.equal(provenInThisEpoch(f), true);
  assert.deepEqual(verdict(f, 400, STALE), { kind: "refreshing" });
  // A snapshot of the epoch before, applied late, does not show this one.
  assert.deepEqual(verdict(reduceFreshness(f, { type: "shown", current: false }), 400, STALE), { kind: "refreshing" });
  f = reduceFreshness(f, { type: "shown", current: true });
  assert.deepEqual(verdict(f, 400, STALE), { kind: "live" });
  // An emptied mirror (a private page) shows no older page: the next epoch waits for its echo only.
  f = reduceFreshness(reduceFreshness(f, { type: "cleared" }), { type: "epoch" });
  f = reduceFreshness(f, { type: "challenged", nonce: C, at: 500 });
  f = reduceFreshness(f, { type: "echoed", nonce: C });
  assert.deepEqual(verdict(f, 600, STALE), { kind: "live" });
});

test("the customer's browser takes an acting command within the console's own bound of its proof", () => {
  assert.equal(ACTION_PROOF_MS, STALE_AFTER_MS);
});

// Whether the agent's console is still there (share/silence.ts), on a fake clock: its silence
// from the start of sharing warns, then ends, also when no challenge ever came; a challenge resets
// it; the time this page slept is not counted; the silence carried over to a new watch (a new
// page, the socket back) goes on from where it was. Which challenges count (only those that open
// in the agent's current channel, never a replay) is the session's (customer-session.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AGENT_QUIET_MS, AGENT_SILENT_MS, ASLEEP_MS, LOOK_EVERY_MS, PROOF_FRESH_MS, type Silence, type Verdict, heard, look, silentFor, startSilence,
} from "../src/share/silence.ts";

/** Look every LOOK_EVERY_MS from `from` to `to` (a page whose timers run on time); the verdicts. */
function lookUntil(state: Silence, from: number, to: number): { state: Silence; verdicts: Verdict[] } {
  const verdicts: Verdict[] = [];
  for (let now = from + LOOK_EVERY_MS; now <= to; now += LOOK_EVERY_MS) {
    const seen = look(state, now);
    state = seen.state;
    verdicts.push(seen.verdict);
  }
  return { state, verdicts };
}

const kinds = (verdicts: Verdict[]) => [...new Set(verdicts.map((verdict) => verdict.kind))];

test("the bound is three minutes, the warning at a minute and a half: a background console challenges once a minute", () => {
  assert.equal(AGENT_SILENT_MS, 180_000);
  assert.equal(AGENT_QUIET_MS, 90_000);
  assert.ok(AGENT_QUIET_MS > 60_000 && AGENT_SILENT_MS >= 3 * 60_000, "more than Chrome's one wake-up a minute");
});

test("silence after a first challenge warns at the warning bound, then ends at the bound", () => {
  let s = heard(startSilence(0), 5000);
  const before = lookUntil(s, 0, 5000 + AGENT_QUIET_MS - LOOK_EVERY_MS);
  assert.deepEqual(kinds(before.verdicts), ["fine"]);
  s = before.state;
  assert.deepEqual(look(s, 5000 + AGENT_QUIET_MS).verdict, { kind: "quiet", silentMs: AGENT_QUIET_MS });
  const warned = lookUntil(s, 5000 + AGENT_QUIET_MS - LOOK_EVERY_MS, 5000 + AGENT_SILENT_MS - LOOK_EVERY_MS);
  assert.deepEqual(kinds(warned.verdicts), ["quiet"]);
  assert.deepEqual(look(warned.state, 5000 + AGENT_SILENT_MS).verdict, { kind: "silent", silentMs: AGENT_SILENT_MS });
});

test("with no challenge ever (a relay that withholds them all, a console gone after the pairing), the watch warns, then ends", () => {
  const { state, verdicts } = lookUntil(startSilence(0), 0, AGENT_SILENT_MS - LOOK_EVERY_MS);
  assert.deepEqual(kinds(verdicts), ["fine", "quiet"]);
  assert.equal(verdicts.findIndex((verdict) => verdict.kind === "quiet"), AGENT_QUIET_MS / LOOK_EVERY_MS - 1);
  assert.deepEqual(look(state, AGENT_SILENT_MS).verdict, { kind: "silent", silentMs: AGENT_SILENT_MS });
});

test("a first challenge that is slow (within the bound) is not the end: heard, the silence starts afresh", () => {
  let s = lookUntil(startSilence(0), 0, AGENT_QUIET_MS + 10_000).state; // warned meanwhile
  s = heard(s, AGENT_QUIET_MS + 10_000); // a console of an older kind, with no proof: heard now
  const after = lookUntil(s, AGENT_QUIET_MS + 10_000, AGENT_QUIET_MS + 10_000 + AGENT_QUIET_MS - LOOK_EVERY_MS);
  assert.deepEqual(kinds(after.verdicts), ["fine"]);
  // With proofs: the first names no echo (resets nothing); the next names the echo of the first.
  let p = lookUntil(startSilence(0), 0, 100_000).state;
  p = heard(p, 100_000, null);
  assert.equal(look(p, 101_000).verdict.kind, "quiet");
  p = heard(p, 103_000, 100_500);
  assert.deepEqual(look(p, 104_000).verdict, { kind: "fine" });
});

test("the silence carried over to the next watch (a new page, the socket back) goes on from there", () => {
  // Sharing 100 s with no challenge, then the socket drops (or a new page starts).
  const first = lookUntil(startSilence(0), 0, 100_000).state;
  const carried = silentFor(first, 100_400);
  assert.equal(carried, 100_400, "the time since the last look counts too");
  // Down for 30 s ("Reconnecting…", nothing shared): not counted; the watch goes on from 100.4 s.
  const again = startSilence(130_400, carried);
  assert.equal(look(again, 131_400).verdict.kind, "quiet", "still warned, not reset");
  const ended = lookUntil(again, 130_400, 130_400 + AGENT_SILENT_MS - carried - LOOK_EVERY_MS);
  assert.ok(!ended.verdicts.some((verdict) => verdict.kind === "silent"));
  assert.equal(look(ended.state, 130_400 + AGENT_SILENT_MS - carried).verdict.kind, "silent");
  // However often it is restarted (forced resumes every 20 s), sharing time adds up to the bound.
  let silent = 0;
  let now = 0;
  let ends = 0;
  while (ends === 0 && now < 10 * AGENT_SILENT_MS) {
    const watch = startSilence(now, silent);
    const { state, verdicts } = lookUntil(watch, now, now + 20_000);
    if (verdicts.some((verdict) => verdict.kind === "silent")) ends = now;
    silent = silentFor(state, now + 20_000);
    now += 25_000; // 5 s to reconnect, not counted
  }
  assert.ok(ends > 0 && ends < AGENT_SILENT_MS * 25 / 20, "ended once the sharing time reached the bound");
  // What is not a duration (a record written by hand) carries nothing.
  for (const junk of [undefined, null, -5, Number.NaN, Infinity, "100000"]) {
    assert.equal(startSilence(1000, junk).heardAt, 1000);
  }
  // A gap since the last look that is a sleep (or a clock set) counts as one look, as look() counts it.
  assert.equal(silentFor(first, 100_000 + 3_600_000), 100_000 + LOOK_EVERY_MS);
});

test("each challenge starts the silence afresh, and takes the warning back", () => {
  let s = heard(startSilence(0), 0);
  for (let at = 0; at < 5 * AGENT_SILENT_MS; at += AGENT_SILENT_MS - LOOK_EVERY_MS) {
    const { state, verdicts } = lookUntil(s, at, at + AGENT_SILENT_MS - 2 * LOOK_EVERY_MS);
    assert.ok(!verdicts.some((verdict) => verdict.kind === "silent"));
    assert.equal(verdicts.at(-1)?.kind, "quiet");
    s = heard(state, at + AGENT_SILENT_MS - LOOK_EVERY_MS);
    assert.deepEqual(look(s, at + AGENT_SILENT_MS).verdict, { kind: "fine" });
  }
});

test("a throttled hidden page, looking once a minute, still ends within a minute past the bound", () => {
  let s = heard(startSilence(0), 0);
  const kinds: string[] = [];
  for (let now = 60_000; now <= 4 * 60_000; now += 60_000) {
    const seen = look(s, now);
    s = seen.state;
    kinds.push(seen.verdict.kind);
  }
  assert.deepEqual(kinds, ["fine", "quiet", "silent", "silent"]);
});

test("a page that slept (or whose clock was set forward or back) does not count the gap as silence", () => {
  let s = heard(startSilence(0), 0);
  s = lookUntil(s, 0, 60_000).state;
  // Asleep for an hour, or its clock set an hour on: silent one look longer, no more.
  const woke = look(s, 60_000 + 3_600_000);
  assert.deepEqual(woke.verdict, { kind: "fine" });
  assert.equal(60_000 + 3_600_000 - woke.state.heardAt, 60_000 + LOOK_EVERY_MS);
  // ...and the silence goes on counting from there: it ends at the bound of awake time.
  const after = lookUntil(woke.state, 3_660_000, 3_660_000 + AGENT_SILENT_MS - 62_000);
  assert.ok(!after.verdicts.some((verdict) => verdict.kind === "silent"));
  assert.equal(look(after.state, 3_660_000 + AGENT_SILENT_MS - 60_000).verdict.kind, "silent");
  // Its clock set back an hour: the silence does not stretch by an hour.
  const back = look(s, 60_000 - 3_600_000);
  assert.equal(back.state.lookedAt - back.state.heardAt, 60_000 + LOOK_EVERY_MS);
  // A gap up to ASLEEP_MS is time that passed (a throttled tab): it counts in full.
  assert.deepEqual(look(s, 60_000 + ASLEEP_MS).verdict, { kind: "quiet", silentMs: 60_000 + ASLEEP_MS });
});

test("a challenge naming an echo sent lately is heard now; one naming an older echo only as of that echo", () => {
  let s = heard(startSilence(0), 0, null); // names no echo: nothing new
  assert.equal(s.heardAt, 0);
  s = heard(s, 60_000, 1000); // the echo of the challenge before (a background console: a minute)
  assert.equal(s.heardAt, 60_000);
  // Held back by the relay: the echo it names is old; every one held after names no newer one.
  const held = heard(s, 200_000, 60_000);
  assert.equal(held.heardAt, 60_000);
  assert.equal(heard(held, 300_000, 60_000).heardAt, 60_000);
  const awake = { ...held, lookedAt: 60_000 + AGENT_SILENT_MS - LOOK_EVERY_MS }; // looked at all along
  assert.equal(look(awake, 60_000 + AGENT_SILENT_MS).verdict.kind, "silent");
  // So a relay that holds them gains at most PROOF_FRESH_MS past the bound.
  const late = heard(s, 60_000 + PROOF_FRESH_MS, 60_000);
  assert.equal(late.heardAt, 60_000 + PROOF_FRESH_MS);
  assert.equal(heard(late, 60_000 + PROOF_FRESH_MS + 1, 60_000).heardAt, 60_000 + PROOF_FRESH_MS, "never back in time");
});

test("a challenge naming no echo this page sent (none yet, an earlier page's) resets nothing", () => {
  const armed = startSilence(0);
  assert.equal(heard(armed, 100_000, null).heardAt, 0);
  // An older console names nothing at all (no proof): heard now.
  assert.equal(heard(armed, 100_000).heardAt, 100_000);
});

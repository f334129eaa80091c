// Whether the agent's console is still there (share/silence.ts), on a fake clock: its silence
// after a first challenge warns, then ends; no challenge ever changes nothing; a challenge resets
// it; the time this page slept is not counted. Which challenges count (only those that open in the
// agent's current channel, never a replay) is the session's (customer-session.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AGENT_QUIET_MS, AGENT_SILENT_MS, ASLEEP_MS, LOOK_EVERY_MS, PROOF_FRESH_MS, type Silence, type Verdict, heard, look, startSilence,
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
  let s = heard(startSilence(0, false), 5000);
  const before = lookUntil(s, 0, 5000 + AGENT_QUIET_MS - LOOK_EVERY_MS);
  assert.deepEqual(kinds(before.verdicts), ["fine"]);
  s = before.state;
  assert.deepEqual(look(s, 5000 + AGENT_QUIET_MS).verdict, { kind: "quiet", silentMs: AGENT_QUIET_MS });
  const warned = lookUntil(s, 5000 + AGENT_QUIET_MS - LOOK_EVERY_MS, 5000 + AGENT_SILENT_MS - LOOK_EVERY_MS);
  assert.deepEqual(kinds(warned.verdicts), ["quiet"]);
  assert.deepEqual(look(warned.state, 5000 + AGENT_SILENT_MS).verdict, { kind: "silent", silentMs: AGENT_SILENT_MS });
});

test("with no challenge ever (an older console), nothing is ever said or ended", () => {
  const { verdicts } = lookUntil(startSilence(0, false), 0, 10 * AGENT_SILENT_MS);
  assert.deepEqual(kinds(verdicts), ["fine"]);
});

test("each challenge starts the silence afresh, and takes the warning back", () => {
  let s = heard(startSilence(0, false), 0);
  for (let at = 0; at < 5 * AGENT_SILENT_MS; at += AGENT_SILENT_MS - LOOK_EVERY_MS) {
    const { state, verdicts } = lookUntil(s, at, at + AGENT_SILENT_MS - 2 * LOOK_EVERY_MS);
    assert.ok(!verdicts.some((verdict) => verdict.kind === "silent"));
    assert.equal(verdicts.at(-1)?.kind, "quiet");
    s = heard(state, at + AGENT_SILENT_MS - LOOK_EVERY_MS);
    assert.deepEqual(look(s, at + AGENT_SILENT_MS).verdict, { kind: "fine" });
  }
});

test("an earlier page's challenge arms the watch of the next page from its start", () => {
  const s = startSilence(1000, true);
  assert.deepEqual(look(lookUntil(s, 1000, AGENT_SILENT_MS).state, 1000 + AGENT_SILENT_MS).verdict, {
    kind: "silent", silentMs: AGENT_SILENT_MS,
  });
});

test("a throttled hidden page, looking once a minute, still ends within a minute past the bound", () => {
  let s = heard(startSilence(0, false), 0);
  const kinds: string[] = [];
  for (let now = 60_000; now <= 4 * 60_000; now += 60_000) {
    const seen = look(s, now);
    s = seen.state;
    kinds.push(seen.verdict.kind);
  }
  assert.deepEqual(kinds, ["fine", "quiet", "silent", "silent"]);
});

test("a page that slept (or whose clock was set forward or back) does not count the gap as silence", () => {
  let s = heard(startSilence(0, false), 0);
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
  let s = heard(startSilence(0, false), 0, null); // the first arms the watch, whatever it names
  assert.equal(s.armed, true);
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

test("a challenge naming no echo this page sent (none yet, an earlier page's) arms the watch but resets nothing", () => {
  const armed = heard(startSilence(0, true), 0);
  assert.equal(heard(armed, 100_000, null).heardAt, 0);
  // An older console names nothing at all (no proof): heard now.
  assert.equal(heard(armed, 100_000).heardAt, 100_000);
});

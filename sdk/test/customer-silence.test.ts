// Whether the agent's console is still there (share/silence.ts), on a fake clock: its silence
// after a first challenge warns, then ends; no challenge ever changes nothing; a challenge resets
// it; a page that slept gets one more look. Which challenges count (only those that open in the
// agent's current channel, never a replay) is the session's (customer-session.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AGENT_QUIET_MS, AGENT_SILENT_MS, ASLEEP_MS, LOOK_EVERY_MS, type Silence, type Verdict, heard, look, startSilence,
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

test("a challenge that comes late counts from when it came, never from before (time only moves on)", () => {
  let s = heard(startSilence(0, false), 50_000);
  s = heard(s, 10_000); // an earlier reading of the clock: no going back
  assert.equal(s.heardAt, 50_000);
});

test("an earlier page's challenge arms the watch of the next page from its start", () => {
  const s = startSilence(1000, true);
  assert.deepEqual(look(lookUntil(s, 1000, AGENT_SILENT_MS).state, 1000 + AGENT_SILENT_MS).verdict, {
    kind: "silent", silentMs: AGENT_SILENT_MS,
  });
});

test("a look after this page slept past the bound warns only; the next look ends it unless a challenge came between", () => {
  const s = heard(startSilence(0, false), 0);
  const late = look(s, AGENT_SILENT_MS + ASLEEP_MS);
  assert.equal(late.verdict.kind, "quiet", "what the socket received meanwhile is read first");
  assert.equal(look(late.state, AGENT_SILENT_MS + ASLEEP_MS + LOOK_EVERY_MS).verdict.kind, "silent");
  // Still throttled (a minute between looks): the next look ends it all the same.
  assert.equal(look(late.state, AGENT_SILENT_MS + ASLEEP_MS + 60_000).verdict.kind, "silent");
  // A challenge read between the two looks: fine.
  const read = heard(late.state, AGENT_SILENT_MS + ASLEEP_MS + 10);
  assert.equal(look(read, AGENT_SILENT_MS + ASLEEP_MS + LOOK_EVERY_MS).verdict.kind, "fine");
});

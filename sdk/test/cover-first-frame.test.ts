// Which report of the cover watch answers its question (share/first-frame.ts): only one finding
// Stop sharing shown, made after the question and at the first frame drawn after it (the time of
// that frame's mark), heard in either order; a later one says that frame's report was kept back
// (a page withholding the reports of its cover until it lifts it): `late`. Times are the reports'
// own (ms, the browser's clock of the page), so a slow browser is late by its frames, not by a
// bound in milliseconds.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type Question, type Verdict, ask, heardFrame, heardShown } from "../src/share/first-frame.ts";

/** The question, still asked after `verdict`. */
function waiting(verdict: Verdict): Question {
  assert.equal(verdict.kind, "wait");
  return (verdict as { question: Question }).question;
}

test("the report of the question's first frame answers it, heard before or after the frame's mark", () => {
  const asked = ask(1000, 990);
  assert.deepEqual(heardShown(waiting(heardFrame(asked, 1016)), 1016), { kind: "shown" });
  assert.deepEqual(heardFrame(waiting(heardShown(asked, 1016)), 1016), { kind: "shown" });
});

test("a slow browser's first frame, drawn seconds after the question, still answers it", () => {
  const asked = ask(1000, 990);
  assert.deepEqual(heardShown(waiting(heardFrame(asked, 4500)), 4500), { kind: "shown" });
  assert.deepEqual(heardFrame(waiting(heardShown(asked, 4500)), 4500), { kind: "shown" });
});

test("a report made frames after the first one is late, whichever is heard first", () => {
  // The page covered Stop sharing at the question, withheld the first frame's report (covered),
  // and lifted its cover at a later frame: the browser's report of that frame must not answer.
  const asked = ask(1000, 990);
  assert.deepEqual(heardShown(waiting(heardFrame(asked, 1016)), 1116), { kind: "late" });
  assert.deepEqual(heardFrame(waiting(heardShown(asked, 1116)), 1016), { kind: "late" });
});

test("nothing answers until the frame's mark is heard: a question whose mark is kept back stays asked", () => {
  let question = ask(1000, 990);
  for (const time of [1016, 1033, 1200]) question = waiting(heardShown(question, time));
  assert.equal(question.frame, null);
  assert.equal(question.shownAt, 1016);
});

test("reports and marks made before the question answer nothing and mark nothing", () => {
  const asked = ask(1000, 990);
  // Before the question on the browser's clock (a report a page's observer kept back).
  assert.deepEqual(waiting(heardShown(asked, 999)), asked);
  assert.deepEqual(waiting(heardFrame(asked, 999)), asked);
  // No later than the last report the widget was given (handed over again), clock or not.
  const noClock = ask(null, 990);
  assert.deepEqual(waiting(heardShown(noClock, 990)), noClock);
  assert.deepEqual(waiting(heardFrame(noClock, 985)), noClock);
  assert.deepEqual(heardShown(waiting(heardFrame(noClock, 991)), 991), { kind: "shown" });
});

test("only the first mark after the question counts: a later mark handed over does not move the frame", () => {
  const marked = waiting(heardFrame(ask(1000, 990), 1016));
  const again = waiting(heardFrame(marked, 1116));
  assert.equal(again.frame, 1016);
  assert.deepEqual(heardShown(again, 1116), { kind: "late" });
});

test("a time that is not a number answers nothing", () => {
  const asked = ask(1000, 990);
  assert.deepEqual(waiting(heardShown(asked, Number.NaN)), asked);
  assert.deepEqual(waiting(heardFrame(asked, Number.POSITIVE_INFINITY)), asked);
});

test("in any order, a question is answered exactly when a report after it was made no later than its first frame", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 10_000 }),
      fc.integer({ min: 1, max: 5000 }),
      fc.array(fc.integer({ min: -200, max: 5000 }), { maxLength: 6 }),
      fc.integer({ min: 0, max: 6 }),
      (askedAt, frameAfter, shownAfter, markAt) => {
        const frame = askedAt + frameAfter;
        const shown = shownAfter.map((delta) => askedAt + delta);
        const at = Math.min(markAt, shown.length);
        const heard: Array<["frame" | "shown", number]> = shown.map((time) => ["shown", time]);
        heard.splice(at, 0, ["frame", frame]);
        let question: Question = ask(askedAt, askedAt - 1);
        let verdict: Verdict | null = null;
        for (const [kind, time] of heard) {
          const told = kind === "frame" ? heardFrame(question, time) : heardShown(question, time);
          if (told.kind !== "wait") {
            verdict = told;
            break;
          }
          question = told.question;
        }
        // Heard in this order, the first report after the question decides once the mark is in.
        const before = shown.slice(0, at).filter((time) => time >= askedAt);
        const after = shown.slice(at).filter((time) => time >= askedAt);
        const decider = before.length ? Math.min(...before) : after[0];
        const expected = decider === undefined ? null : decider <= frame ? "shown" : "late";
        assert.equal(verdict?.kind ?? null, expected);
      },
    ),
  );
});

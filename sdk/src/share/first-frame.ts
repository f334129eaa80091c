/**
 * Which report of the cover watch answers its question (ui.ts, askShown(); docs/threat-model.md,
 * "A page script that ran first"): only one made at the first frame drawn after the question.
 *
 * The widget asks by observing Stop sharing afresh: the browser reports it at the next frame it
 * draws, covered or shown. A page's wrapper of the browser's observer that withholds every report
 * finding it covered leaves the question unanswered while its cover is up; when it lifts the
 * cover, the browser reports the change (Stop sharing shown), made frames after the question, and
 * that report answered it: what the page changed under its cover, a moment before, went to the
 * agent. So the frame the answer must come from is marked, with the browser's own frame
 * callbacks (ui.ts, markFrame(); realm.ts, browserFrame()): the first runs as the first frame
 * after the question is drawn, before its reports are made; the next one as the frame after it
 * is, after them: the browser's clock then is the mark. (A second observer's first report marked
 * it before: made with the page's IntersectionObserver, the page held it back and handed one of
 * its own observer's, made after it lifted its cover; that observer is made now only where the
 * fresh realm's frame callbacks are not the browser's own, or there is none.) A report finding Stop sharing shown answers if made after the question and
 * no later than the mark; one made later says that frame's report was kept back (a page
 * withholding the reports of its cover), and what was asked about goes nowhere: the question is
 * `late` (the widget drops it, as for a cover, and asks again). A slow browser draws its first
 * frame late, and runs the callbacks with it: late is frames, not milliseconds.
 *
 * Pure, on the browser's clock of reports (`time`, ms): ui.ts keeps the question and feeds it.
 */

/** One question of the cover watch. */
export interface Question {
  /** When it was asked, on the browser's own clock of the page (realm.ts, pageNow()); null where
   * that cannot be read. */
  readonly askedAt: number | null;
  /** The time of the latest report the widget was given when it was asked: an answer (and the
   * frame's mark) is made strictly later (a report handed over twice answers nothing). */
  readonly after: number;
  /** When the first frame drawn after it was (no report of a later frame was made before), once
   * its mark was heard. */
  readonly frame: number | null;
  /** The earliest report finding Stop sharing shown, heard before the frame's mark. */
  readonly shownAt: number | null;
}

/** What a report tells of the question: `wait` (still asked, as `question`), `shown` (answered:
 * Stop sharing shown at the first frame after it), `late` (that frame's report was kept back). */
export type Verdict = { kind: "wait"; question: Question } | { kind: "shown" } | { kind: "late" };

/** A question asked now (`askedAt`, null where the clock cannot be read), after every report made
 * up to `after`. */
export function ask(askedAt: number | null, after: number): Question {
  return { askedAt, after, frame: null, shownAt: null };
}

/** Whether a report made at `time` was made after `question` was asked. */
function madeAfter(question: Question, time: number): boolean {
  return Number.isFinite(time) && time > question.after && (question.askedAt === null || time >= question.askedAt);
}

function judge(frame: number, shownAt: number): Verdict {
  return shownAt <= frame ? { kind: "shown" } : { kind: "late" };
}

/** The frame's mark, at `time` (the browser's clock once the first frame after the question was
 * drawn, or the first report of an observer observing afresh with the question): only the first
 * one after the question counts. */
export function heardFrame(question: Question, time: number): Verdict {
  if (question.frame !== null || !madeAfter(question, time)) return { kind: "wait", question };
  if (question.shownAt !== null) return judge(time, question.shownAt);
  return { kind: "wait", question: { ...question, frame: time } };
}

/** A report finding Stop sharing shown, made at `time`. One made before the question answers
 * nothing (a page's observer kept it back from before its cover). */
export function heardShown(question: Question, time: number): Verdict {
  if (!madeAfter(question, time)) return { kind: "wait", question };
  if (question.frame !== null) return judge(question.frame, time);
  const shownAt = question.shownAt === null ? time : Math.min(question.shownAt, time);
  return { kind: "wait", question: { ...question, shownAt } };
}

/**
 * Training before live sessions (issue 16, item 5; docs/training.md).
 *
 * - `trainingPanel`: an agent's, supervisor's or auditor's own training. The organisation's
 *   privacy and security policy to acknowledge (the server refuses sessions and recordings until
 *   then), and, for agents and supervisors, the practice exercise: a simulated customer in a frame
 *   (the server's practice pages, /practice/, with the real SDK) started with a ticket bound to
 *   this agent. The agent works it from the console's real join form and mirror; `PracticeGuide`
 *   checks each step from what the live session really reports (joined, consented, control,
 *   the customer's browser refusing an action on the masked field, the private page pause, the
 *   end), never from a button the agent clicks. The server records the completion only if it saw
 *   its own part of the steps (tandem.training).
 * - `trainingAdmin`: the admin's page: the policy editor (each save a new version), the
 *   re-training interval, and who is trained, when, on which version.
 *
 * Text always goes in with textContent; strings come from messages/training.ts.
 */

import { registerOfficePage } from "./office.ts";
import type { MyTraining, Roster, TrainingStanding } from "../generated/rest.ts";
import { direction, pageLocale, translator } from "../shared/i18n.ts";
import { messages } from "./messages/training.ts";
import { relayFetch } from "./relay.ts";
import type { LiveEvent } from "./state.ts";

/** The console's language: `?lang=` in its address (as the office's pages), else the page's and the browser's. */
const locale = pageLocale(typeof location === "undefined" ? null : new URLSearchParams(location.search).get("lang"));
const t = translator(messages, locale);

type Step = "code" | "consent" | "masked" | "control" | "refused" | "paused" | "ended";
const STEPS: readonly Step[] = ["code", "consent", "masked", "control", "refused", "paused", "ended"];
const STEP_TEXT: Record<Step, Parameters<typeof t>[0]> = {
  code: "stepCode", consent: "stepConsent", masked: "stepMasked", control: "stepControl",
  refused: "stepRefused", paused: "stepPaused", ended: "stepEnded",
};
/** The steps only this console can check (inside the encrypted channel); the server checks the rest. */
const CONSOLE_CHECKED: readonly Step[] = ["masked", "refused"];
/** What the customer's browser says when the agent acts on a masked field (share/control.ts). */
const HIDDEN_REFUSAL = /hidden from you/i;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", className = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

async function detail(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { detail?: unknown };
    if (typeof body.detail === "string") return body.detail;
  } catch {
    // not problem JSON
  }
  return `${response.status} ${response.statusText}`;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await relayFetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw Object.assign(new Error(await detail(response)), { status: response.status });
  return (await response.json()) as T;
}

const day = (seconds: number | null) => (seconds === null ? t("never") : new Date(seconds * 1000).toLocaleDateString(locale));

function status(): [HTMLParagraphElement, (text: string, good?: boolean) => void] {
  const line = el("p", "", "status");
  line.setAttribute("role", "status");
  return [line, (text, good = false) => {
    line.textContent = text;
    line.className = `status ${good ? "good" : "bad"}`;
  }];
}

/** The practice exercise's checklist, ticked from what the live session reports. */
export class PracticeGuide {
  readonly done = new Set<Step>();
  private readonly items = new Map<Step, HTMLLIElement>();
  private finishing = false;
  /** Recorded or given up: the guide hears nothing more (a real session's events are not its). */
  private over = false;
  readonly root: HTMLElement;
  private readonly say: (text: string, good?: boolean) => void;
  private readonly frame: HTMLIFrameElement;
  private readonly quiz: HTMLFormElement;

  /** `finished`: the completion is recorded; `failed`: the session ended and nothing was (a step
   * missing, or the server refused). Each gets the words that say so; the guide is over. */
  constructor(
    page: string,
    private readonly finished: (recorded: string) => void,
    private readonly failed: (why: string) => void,
  ) {
    this.root = el("div", "", "practice");
    const list = el("ol", "", "practice-steps");
    list.id = "practice-steps";
    for (const step of STEPS) {
      const item = el("li", t(STEP_TEXT[step]));
      item.dataset.step = step;
      item.dataset.done = "false";
      const mark = el("span", ` (${t("pending")})`, "muted");
      item.append(mark);
      this.items.set(step, item);
      list.append(item);
    }
    this.quiz = this.maskedQuiz();
    const askPrivate = el("button", t("askPrivate"));
    askPrivate.type = "button";
    askPrivate.id = "practice-private";
    askPrivate.addEventListener("click", () => this.tellCustomer("open-private"));
    const askBack = el("button", t("askBack"));
    askBack.type = "button";
    askBack.addEventListener("click", () => this.tellCustomer("back"));
    this.frame = el("iframe", "", "practice-frame");
    this.frame.id = "practice-customer";
    this.frame.title = t("customerFrame");
    this.frame.src = page;
    const [line, say] = status();
    line.id = "practice-status";
    this.say = say;
    const actions = el("div", "", "row");
    actions.append(askPrivate, askBack);
    this.root.append(list, this.quiz, actions, line, this.frame);
  }

  private maskedQuiz(): HTMLFormElement {
    const form = el("form", "", "office-form");
    form.id = "practice-masked";
    const fieldset = el("fieldset");
    fieldset.append(el("legend", t("maskedQuestion")));
    for (const [value, label] of [["note", t("maskedNote")], ["card", t("maskedCard")]]) {
      const input = el("input");
      input.type = "radio";
      input.name = "masked";
      input.value = value;
      input.id = `practice-masked-${value}`;
      const text = el("label", label);
      text.htmlFor = input.id;
      fieldset.append(input, text);
    }
    const check = el("button", t("maskedCheck"));
    check.type = "submit";
    const answer = el("p", "", "status");
    answer.setAttribute("role", "status");
    form.append(fieldset, check, answer);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const chosen = (form.elements.namedItem("masked") as RadioNodeList).value;
      // Checked against the practice page (its card field is masked by the SDK's detectors), and
      // only once the customer's page is shown: the answer must come from looking at it.
      if (!this.done.has("consent")) return;
      const right = chosen === "card";
      answer.textContent = right ? t("maskedRight") : t("maskedWrong");
      answer.className = `status ${right ? "good" : "bad"}`;
      if (right) this.tick("masked");
    });
    return form;
  }

  private tellCustomer(what: "open-private" | "back"): void {
    this.frame.contentWindow?.postMessage({ practice: what }, location.origin);
  }

  private tick(step: Step): void {
    if (this.done.has(step)) return;
    this.done.add(step);
    const item = this.items.get(step);
    if (item) {
      item.dataset.done = "true";
      item.lastElementChild!.textContent = ` (${t("done")})`;
    }
  }

  /** The console's live events (index.ts passes each on). */
  live(event: LiveEvent): void {
    if (this.over) return;
    if (event.type === "joined") this.tick("code");
    if (event.type === "consented") this.tick("consent");
    if (event.type === "control" && event.on) this.tick("control");
    if (event.type === "ended" && this.done.has("code")) {
      this.tick("ended");
      void this.complete();
    }
  }

  /** What live.ts observes inside the encrypted channel. */
  observe(what: string, reason = ""): void {
    if (this.over) return;
    if (what === "action_refused" && HIDDEN_REFUSAL.test(reason) && this.done.has("control")) this.tick("refused");
    if (what === "paused" && this.done.has("consent")) this.tick("paused");
  }

  /** Ask the server to record the completion; it checks its own part of the steps. The session's
   * end reaches storage just after the console hears of it: a "not ended yet" is tried again. */
  private async complete(): Promise<void> {
    if (this.finishing) return;
    const missing = STEPS.filter((step) => !this.done.has(step));
    if (missing.length) {
      this.giveUp(t("failed", { reason: missing.map((s) => t(STEP_TEXT[s])).join(" ") }));
      return;
    }
    this.finishing = true;
    this.say(t("finishing"), true);
    for (let attempt = 0; ; attempt++) {
      try {
        const record = await call<{ completed_at: number; policy_version: number }>(
          "POST", "/api/training/complete", { steps: CONSOLE_CHECKED },
        );
        this.over = true;
        this.frame.remove();
        this.finished(t("trained", { date: day(record.completed_at), version: record.policy_version }));
        return;
      } catch (error) {
        const text = (error as Error).message;
        if (attempt < 10 && /not ended yet/.test(text)) {
          await new Promise((resolve) => setTimeout(resolve, 300));
          continue;
        }
        this.giveUp(t("failed", { reason: text }));
        return;
      }
    }
  }

  /** The practice session is over unrecorded: its controls (speaking to a customer whose session
   * ended) go, and the exercise can be started again. */
  private giveUp(why: string): void {
    this.over = true;
    this.frame.remove();
    this.failed(why);
  }
}

/**
 * The signed-in account's training, shown above its screen when something is due: the policy,
 * then (agents, supervisors) the practice exercise. Resolves to the practice guide while one
 * runs (index.ts feeds it the live session's events), else null. `ready` runs once the account
 * is trained (auditors: acknowledged).
 */
export async function trainingPanel(root: HTMLElement, ready: () => void, started: (guide: PracticeGuide) => void): Promise<boolean> {
  let mine: MyTraining;
  try {
    mine = await call<MyTraining>("GET", "/api/training");
  } catch {
    return false;
  }
  const panel = el("section", "", "card training");
  panel.id = "training";
  panel.dir = direction(locale);
  panel.setAttribute("aria-labelledby", "training-heading");
  const heading = el("h2", t("heading"));
  heading.id = "training-heading";
  panel.append(heading);
  const standing = mine.standing;
  if (standing.trained) return false;
  const [line, say] = status();
  line.id = "training-status";

  const practice = () => {
    const part = el("div");
    part.append(el("h3", t("practiceHeading")), el("p", t("practiceIntro"), "muted"), el("p", t("practiceDue", { days: standing.interval_days })));
    const start = el("button", t("start"), "primary");
    start.type = "button";
    start.id = "practice-start";
    start.addEventListener("click", () => {
      start.disabled = true;
      call<{ page: string }>("POST", "/api/training/practice")
        .then(({ page }) => {
          const guide = new PracticeGuide(page, (recorded) => {
            // Done: its steps, question and buttons (which spoke to a frame now gone) go; the
            // panel says so, with a button to close it (joining a session closes it too).
            panel.dataset.done = "true";
            const close = el("button", t("close"));
            close.type = "button";
            close.id = "training-close";
            close.addEventListener("click", () => {
              panel.remove();
              (document.getElementById("code") as HTMLInputElement | null)?.focus();
            });
            panel.replaceChildren(heading, line, close);
            say(recorded, true);
            ready();
          }, (why) => {
            guide.root.replaceWith(start);
            start.disabled = false;
            say(why);
            start.focus();
          });
          start.replaceWith(guide.root);
          started(guide);
        })
        .catch((error: Error) => {
          start.disabled = false;
          say(error.message);
        });
    });
    part.append(start);
    return part;
  };

  if (standing.needs_acknowledgement) {
    const part = el("div");
    part.append(el("h3", t("policyHeading", { version: mine.policy.version })), el("p", t("policyIntro"), "muted"));
    const text = el("pre", mine.policy.text, "policy-text");
    text.id = "policy-text";
    text.tabIndex = 0;
    const accept = el("button", t("acknowledge", { version: mine.policy.version }), "primary");
    accept.type = "button";
    accept.id = "policy-acknowledge";
    accept.addEventListener("click", () => {
      accept.disabled = true;
      call<TrainingStanding>("POST", "/api/training/acknowledge", { version: mine.policy.version })
        .then((now) => {
          say(t("acknowledged", { version: mine.policy.version }), true);
          part.replaceChildren(line);
          if (now.trained) ready();
          else if (now.needs_practice) panel.append(practice());
        })
        .catch((error: Error) => {
          accept.disabled = false;
          say(error.message);
        });
    });
    part.append(text, accept);
    panel.append(part, line);
  } else {
    panel.append(practice(), line);
  }
  root.prepend(panel);
  return true;
}

/** The admin's training page: the policy (each save a new version), the interval, who is trained.
 * `labelledBy`: the id of the heading that names it (the office page's own, office-title). */
export function trainingAdmin(root: HTMLElement, labelledBy = "office-title"): void {
  const panel = el("div", "", "training-admin");
  panel.setAttribute("role", "group");
  panel.setAttribute("aria-labelledby", labelledBy);
  panel.dir = direction(locale);
  const [line, say] = status();

  const policyForm = el("form", "", "office-form");
  const policyLabel = el("label", t("policyEditor"));
  const policyText = el("textarea");
  policyText.id = "training-policy";
  policyText.rows = 10;
  policyLabel.htmlFor = policyText.id;
  const publish = el("button", t("savePolicy"));
  publish.type = "submit";
  policyForm.append(policyLabel, policyText, publish);

  const intervalForm = el("form", "", "office-form");
  const intervalLabel = el("label", t("interval"));
  const interval = el("input");
  interval.id = "training-interval";
  interval.type = "number";
  interval.min = "1";
  interval.max = "3650";
  intervalLabel.htmlFor = interval.id;
  const saveInterval = el("button", t("saveInterval"));
  saveInterval.type = "submit";
  intervalForm.append(intervalLabel, interval, saveInterval);

  const rosterHeading = el("h3", t("rosterHeading"));
  const roster = el("div");
  roster.id = "training-roster";

  const showRoster = (data: Roster) => {
    interval.value = String(data.interval_days);
    const table = el("table", "", "grid");
    table.createCaption().textContent = t("rosterHeading");
    table.caption!.className = "visually-hidden";
    table.tabIndex = 0; // it scrolls sideways on a phone: reachable by keyboard (and named by its caption)
    const head = table.createTHead().insertRow();
    for (const name of ["colUser", "colRole", "colPolicy", "colTrained", "colDue", "colStatus"] as const) head.append(el("th", t(name)));
    const body = table.createTBody();
    for (const user of data.users) {
      const row = body.insertRow();
      const needsPractice = user.role === "agent" || user.role === "supervisor";
      const cells = [
        user.username, user.role,
        user.role === "admin" ? t("notNeeded") : user.acknowledged_version === null ? t("never") : `v${user.acknowledged_version}`,
        needsPractice ? (user.trained_at === null ? t("never") : `${day(user.trained_at)} (v${user.trained_on_version ?? "?"}, ${user.training_method ?? ""})`) : t("notNeeded"),
        needsPractice ? day(user.due_at) : t("notNeeded"),
        user.trained ? t("statusTrained") : t("statusUntrained"),
      ];
      for (const cell of cells) row.insertCell().textContent = cell;
    }
    roster.replaceChildren(table);
  };
  const load = () => {
    call<Roster>("GET", "/api/training/users").then(showRoster).catch((error: Error) => say(error.message));
    call<{ text: string }>("GET", "/api/training/policy").then((p) => { policyText.value = p.text; }).catch((error: Error) => say(error.message));
  };
  policyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    call<{ version: number }>("PUT", "/api/training/policy", { text: policyText.value })
      .then((p) => {
        say(t("saved", { version: p.version }), true);
        load();
      })
      .catch((error: Error) => say(error.message));
  });
  intervalForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const days = Number.parseInt(interval.value, 10);
    call<Roster>("PUT", "/api/training/interval", { days: Number.isFinite(days) ? days : null })
      .then((data) => {
        showRoster(data);
        say(t("intervalSaved", { days: data.interval_days }), true);
      })
      .catch((error: Error) => say(error.message));
  });
  panel.append(policyForm, intervalForm, line, rosterHeading, roster);
  root.append(panel);
  load();
}

/** The admin's Training page in the office's navigation (office.ts's registry), named from the
 * office's catalogue (nav.training) like the other pages. */
registerOfficePage({ id: "training", label: "nav.training", roles: ["admin"], order: 65, render: (root) => trainingAdmin(root) });

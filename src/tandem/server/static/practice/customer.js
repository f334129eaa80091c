// The scripted practice customer (docs/training.md). It runs in the agent's own browser, in a
// frame of the console, on the server's own practice pages, through the real SDK: it starts a
// practice session with the ticket the console got for this agent, reads out its code, answers
// the agent's requests (viewing the page and control: yes) and goes where the console's
// guide asks (the private page and back). No inline script: the pages' CSP allows none.
"use strict";

const TICKET_KEY = "tandem.practice.ticket";
// Where the SDK keeps this tab's session (sdk/src/share/ports.ts).
const SDK_SESSION_KEY = "tandem.session";
const says = (text) => {
  const line = document.getElementById("customer-says");
  if (line) line.textContent = `Customer: ${text}`;
};

function ticket() {
  const fromHash = location.hash.slice(1);
  if (fromHash) {
    // A new practice: a session an earlier one in this tab stored is over (the console removed
    // its frame as it ended, so the SDK kept it for a next page), and resuming it would only
    // fail. Run before the SDK looks for one (this script is deferred: before DOMContentLoaded).
    sessionStorage.removeItem(SDK_SESSION_KEY);
    sessionStorage.setItem(TICKET_KEY, fromHash);
    history.replaceState(null, "", location.pathname);
    return fromHash;
  }
  return null;
}

// The SDK's questions are dialogs in its own (open) shadow roots; the customer says yes to each,
// with the dialog's primary button (whatever the widget's language). Only viewing the page and
// control can be asked here: the server never asks to record or watch a practice session.
function* roots(root) {
  for (const node of root.querySelectorAll("*")) {
    if (node.shadowRoot) {
      yield node.shadowRoot;
      yield* roots(node.shadowRoot);
    }
  }
}
function answer() {
  for (const root of roots(document)) {
    for (const button of root.querySelectorAll('[role="dialog"] button.primary')) {
      button.click();
      says("Yes, go ahead.");
    }
  }
}
setInterval(answer, 400);

addEventListener("message", (event) => {
  if (event.origin !== location.origin || event.source !== parent) return;
  const what = event.data && event.data.practice;
  if (what === "open-private") location.assign("/practice/private-account.html");
  if (what === "back") location.assign("/practice/");
});

async function begin() {
  const fresh = ticket();
  if (!fresh) {
    if (document.body.dataset.page === "practice-private") says("I am on my account page now.");
    else says("Back on the checkout page.");
    return; // a later page: the SDK resumes the session itself
  }
  says("Hello, I need help with my order. One moment…");
  try {
    const code = await window.Tandem.start({ practice: fresh });
    says(`My code is ${code}.`);
    document.body.dataset.code = code;
  } catch (error) {
    says(`Something went wrong: ${error instanceof Error ? error.message : error}`);
  }
}
void begin();

/**
 * What the account's own forms in the console share (its password, its recovery codes): a button
 * in the header, beside "Sign out everywhere", and a panel that takes the place of the sections
 * shown until it is closed, with a form whose refusals it says in an alert.
 */

/** The header button `id` (made once, before "Sign out everywhere"), shown, acting `onclick`. */
export function headerButton(id: string, label: string, onclick: () => void): HTMLButtonElement {
  let button = document.getElementById(id) as HTMLButtonElement | null;
  if (!button) {
    button = Object.assign(document.createElement("button"), { id, type: "button", className: "ghost", textContent: label });
    document.getElementById("signout-all")?.before(button);
  }
  button.hidden = false;
  button.onclick = onclick;
  return button;
}

export interface AccountPanel {
  /** The panel, first in `<main>` once {@link AccountPanel.show} is called. */
  readonly panel: HTMLElement;
  readonly form: HTMLFormElement;
  /** Says `text` in the panel's alert. */
  fail(text: string): void;
  /** Hides the alert (a new attempt). */
  clear(): void;
  /** Removes the panel and shows again the sections it hid. */
  close(): void;
  /** Puts the panel first in `<main>`. */
  show(): void;
}

/**
 * A panel `id` (any earlier one removed) titled `title` with `intro`, hiding `<main>`'s shown
 * sections; null without a `<main>`. The caller adds its fields to `form`, then anything after
 * the alert, then calls `show()`.
 */
export function accountPanel(id: string, title: string, intro: string): AccountPanel | null {
  document.getElementById(id)?.remove();
  const main = document.querySelector("main");
  if (!main) return null;
  const shown = [...main.querySelectorAll<HTMLElement>(":scope > section")].filter((s) => !s.hidden);
  for (const section of shown) section.hidden = true;
  const panel = Object.assign(document.createElement("section"), { id, className: "card narrow" });
  const form = Object.assign(document.createElement("form"), { noValidate: true });
  const error = Object.assign(document.createElement("p"), { className: "error", hidden: true });
  error.setAttribute("role", "alert");
  panel.append(
    Object.assign(document.createElement("h1"), { textContent: title }),
    Object.assign(document.createElement("p"), { textContent: intro }),
    form,
    error,
  );
  return {
    panel,
    form,
    fail(text) {
      error.textContent = text;
      error.hidden = false;
    },
    clear() {
      error.hidden = true;
    },
    close() {
      panel.remove();
      for (const section of shown) section.hidden = false;
    },
    show() {
      main.prepend(panel);
    },
  };
}

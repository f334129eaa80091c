/**
 * What the agent's workspace header shows about the customer's page and device (issue 15): the
 * page's origin, its title as masking lets the agent see it, the kind of device and the viewport.
 * Sent inside the encrypted channel (payload `context`), only from pages that are shared: never
 * from a private page, whose title could say too much.
 */

import { agentMayTouch, MASK, maskTextContent } from "../shared/masking.ts";
import type { ContextPayload, DeviceKind } from "../shared/payload.ts";

const MAX_TITLE = 120;

/** The page's title as the agent may see it: null if the site's policy masks or hides it. */
export function visibleTitle(doc: Document = document): string | null {
  const el = doc.querySelector("title");
  const title = (doc.title ?? "").trim().replace(/\s+/g, " ");
  if (!title) return null;
  if (el && !agentMayTouch(el)) return null; // the policy masks or hides the head or the title
  const masked = maskTextContent(title, el);
  if (masked.includes(MASK)) return null; // a detector found something private in it
  return masked.slice(0, MAX_TITLE);
}

export function deviceKind(width: number, coarse: boolean): DeviceKind {
  if (coarse && width < 600) return "phone";
  if (width < 480) return "phone";
  if (coarse && width < 1100) return "tablet";
  return "desktop";
}

export function pageContext(): ContextPayload {
  const coarse = typeof matchMedia === "function" && matchMedia("(pointer: coarse)").matches;
  const w = Math.round(innerWidth);
  const h = Math.round(innerHeight);
  return { k: "context", origin: location.origin.slice(0, 200), title: visibleTitle(), device: deviceKind(w, coarse), viewport: { w, h } };
}

/** Send the context now and whenever it changes (checked every `intervalMs`); returns a stop. */
export function watchContext(
  send: (payload: ContextPayload) => void,
  every: (ms: number, run: () => void) => () => void,
  intervalMs = 1000,
): () => void {
  let last = "";
  const check = () => {
    const context = pageContext();
    const key = JSON.stringify(context);
    if (key === last) return;
    last = key;
    send(context);
  };
  check();
  return every(intervalMs, check);
}

/**
 * "Part of this page cannot be shown" (issue 14, item 12): masking failed closed somewhere on this
 * page (a shape it could not read, a form that breaks rrweb's serializer). That part is masked or
 * left out, never sent raw; both sides learn it once per page: the agent inside the encrypted
 * channel (`withheld`), the customer by a notice.
 */

import type { WithheldPayload } from "../shared/payload.ts";
import type { CustomerView } from "./ports.ts";

export const WITHHELD_NOTICE = "Part of this page cannot be shown to the agent.";

/** A reporter for one recording of one page: the first call tells both sides, later ones nothing. */
export function reportWithheld(ui: CustomerView, send: (payload: WithheldPayload) => void): () => void {
  let told = false;
  return () => {
    if (told) return;
    told = true;
    // Not now: masking runs inside rrweb's snapshot; the notice follows the events it fixed.
    queueMicrotask(() => {
      send({ k: "withheld" });
      ui.notifyKey("withheld"); // WITHHELD_NOTICE, in the customer's language
    });
  };
}

// The console around a live session (live.ts's LiveUi), for tests that drive LiveView without a
// DOM: it folds the reported events into a card (as the console's state does) and does nothing
// else unless told to.
import type { LiveUi } from "../src/console/live.ts";
import { type LiveCard, type LiveEvent, idleCard, reduceCard } from "../src/console/state.ts";

export function cardUi(room: { width: number; height: number }, more: Partial<LiveUi> = {}): LiveUi & { readonly card: LiveCard } {
  let card: LiveCard = idleCard;
  return {
    report: (event: LiveEvent) => void (card = reduceCard(card, event)),
    mirror: { replaceChildren: () => undefined, style: {} } as unknown as HTMLElement,
    signedIn: () => null,
    sessionExpired: () => undefined,
    closed: () => undefined,
    clearCode: () => undefined,
    selectCode: () => undefined,
    focusCode: () => undefined,
    focusTyping: () => undefined,
    typed: () => "",
    room: () => room,
    frame: () => undefined,
    ...more,
    get card() {
      return card;
    },
  };
}

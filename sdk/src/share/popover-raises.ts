// When the widget is raised again over the page's popovers (ui.ts, watchReach()): at each popover's
// `beforetoggle`, in a microtask, so that it lands after the page's popover is shown and before
// the frame that shows it is drawn. The `toggle` event, which the widget raised at before, fires
// in a later task: a page that shows its tooltips at every animation frame had each frame drawn
// with the tooltip over Stop sharing, the cover watch reported it covered at every frame, and
// sharing paused for an honest page (tests/e2e/test_widget_reach_attacks.py,
// `test_tooltips_shown_at_animation_frames_do_not_pause_sharing`). `toggle` stays as a fallback
// for a popover the widget did not raise over after it was shown (its `beforetoggle` not heard,
// or shown by the browser itself after the microtask ran, and no frame callback to be had).
// Kept within the raises' budget (ui.ts, RAISES_PER_LOOK): one raise for all the popovers shown
// before a microtask, at most one for each popover shown.

/** What the raises need of the widget and the browser (ui.ts; stand-ins in sdk/test/). */
export interface RaiseHooks<T extends object> {
  /** The page's popover an event is for (not the widget's own layer, not a `<details>`), or null. */
  popover(target: EventTarget | null): T | null;
  /** Whether `popover` is shown now (in the top layer). */
  shown(popover: T): boolean;
  /** Whether a raise is within the budget between two looks (counts it if so). */
  mayRaise(): boolean;
  /** Show the widget again on top of the top layer. */
  raise(): void;
  /** Run `run` in a microtask. */
  microtask(run: () => void): void;
  /** Run `run` before the next frame is drawn (the browser's own frame callbacks); false where
   * it cannot be set. */
  beforeFrame(run: () => void): boolean;
}

/** An event's `newState` ("open", "closed"), as the page's `ToggleEvent` says it. */
function newState(event: Event): unknown {
  return (event as Event & { newState?: unknown }).newState;
}

/** Raises the widget over the page's popovers as they are shown (beforeToggle(), toggle()). */
export class PopoverRaises<T extends object> {
  /** Heard shown at `beforetoggle`, the raise over them queued. */
  private waiting = new Set<T>();
  private queued = false;
  /** Shown, with the widget raised over them since (no raise at their `toggle`). */
  private under = new WeakSet<T>();

  constructor(private readonly hooks: RaiseHooks<T>) {}

  /** At a `beforetoggle` (capture, on the document and the watched shadow roots): a popover about
   * to be shown gets the widget raised over it in a microtask, after the page's script that shows
   * it has run (the browser shows it right after the event). */
  beforeToggle(event: Event): void {
    const popover = this.hooks.popover(event.target);
    if (!popover) return;
    this.under.delete(popover);
    // Hidden, it covers nothing: only a popover shown calls for a raise.
    if (newState(event) === "closed") {
      this.waiting.delete(popover);
      return;
    }
    this.waiting.add(popover);
    if (this.queued) return;
    this.queued = true;
    this.hooks.microtask(() => this.flush());
  }

  /** At a `toggle` (a later task): the fallback, for a popover shown that the widget was not
   * raised over since. */
  toggle(event: Event): void {
    const popover = this.hooks.popover(event.target);
    if (!popover) return;
    if (newState(event) === "closed") {
      this.under.delete(popover);
      return;
    }
    if (this.under.has(popover)) return;
    this.raiseOver([popover]);
  }

  private flush(): void {
    this.queued = false;
    const heard = [...this.waiting];
    this.waiting.clear();
    const shown = heard.filter((popover) => this.hooks.shown(popover));
    if (shown.length) this.raiseOver(shown);
    // Not shown yet: one the browser shows itself (a `popovertarget` button's) runs this
    // microtask between its `beforetoggle` and the show; or one the page cancelled. Before the
    // next frame is drawn it is shown, if at all; else at its `toggle`.
    // (A set: a page's forged `beforetoggle` events on thousands of its popovers before one
    // microtask cost each a look-up, not a search of those shown.)
    const raised = new Set(shown);
    const late = heard.filter((popover) => !raised.has(popover));
    if (!late.length) return;
    this.hooks.beforeFrame(() => {
      const now = late.filter((popover) => !this.under.has(popover) && this.hooks.shown(popover));
      if (now.length) this.raiseOver(now);
    });
  }

  private raiseOver(popovers: T[]): void {
    if (!this.hooks.mayRaise()) return;
    this.hooks.raise();
    for (const popover of popovers) this.under.add(popover);
  }
}

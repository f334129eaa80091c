/**
 * How much of a customer's page the mirror holds. The page is hostile content in the agent's
 * (and an auditor's) browser, and what it sends is not bounded by what it holds itself: a page
 * that rewrites the SDK's events (or a huge one) adds nodes to the mirror by the hundred thousand
 * in each payload, payload after payload, while its own document stays small, until the agent's
 * tab (the console and its same-origin mirror share one renderer) runs out of memory. The
 * mirror takes at most MAX_MIRROR_NODES nodes; beyond that it is dropped and the console says
 * so, and the customer's next page (a full snapshot that fits) shows again.
 *
 * The count is kept from the events (a full snapshot's nodes; a mutation's added nodes, less one
 * for each removal) and, since a removal takes a whole subtree, checked against the replayer's
 * own count of the nodes it holds whenever it passes the bound.
 */

import { FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT, MUTATION } from "../shared/rrweb-events.ts";

/** Nodes (elements, text, comments) the mirror holds at most: several times a large real page
 * (a long product list or a big table: tens of thousands), far from what fills a tab's memory. */
export const MAX_MIRROR_NODES = 250_000;

/** The serialized nodes in `root` and all below it (iteratively: a page may nest deeply). */
function nodesBelow(root: unknown): number {
  let count = 0;
  const stack: unknown[] = [root];
  while (stack.length) {
    const node = stack.pop() as { childNodes?: unknown } | null;
    if (!node || typeof node !== "object") continue;
    count++;
    if (Array.isArray(node.childNodes)) for (const child of node.childNodes) stack.push(child);
  }
  return count;
}

/** What one rrweb event does to the mirror's size. */
export function sizeOf(event: unknown): { snapshot: number } | { added: number; removed: number } | null {
  const e = event as { type?: unknown; data?: Record<string, unknown> } | null;
  if (!e || typeof e !== "object" || !e.data || typeof e.data !== "object") return null;
  if (e.type === FULL_SNAPSHOT) return { snapshot: nodesBelow(e.data.node) };
  if (e.type !== INCREMENTAL_SNAPSHOT || e.data.source !== MUTATION) return null;
  let added = 0;
  if (Array.isArray(e.data.adds)) for (const add of e.data.adds) added += nodesBelow((add as { node?: unknown } | null)?.node);
  const removed = Array.isArray(e.data.removes) ? e.data.removes.length : 0;
  return { added, removed };
}

export class MirrorBudget {
  private nodes = 0;

  /** `held`: how many nodes the replayer holds now (an exact count, costly: asked only when the
   * kept count passes the bound). */
  constructor(private readonly held: () => number, private readonly max = MAX_MIRROR_NODES) {}

  /** Whether the mirror may take `event`; false: with it, the page would be beyond the bound. */
  admit(event: unknown): boolean {
    const size = sizeOf(event);
    if (!size) return true;
    if ("snapshot" in size) {
      this.nodes = size.snapshot; // a full snapshot replaces the document
      return this.nodes <= this.max;
    }
    this.nodes = Math.max(0, this.nodes + size.added - size.removed);
    if (this.nodes <= this.max) return true;
    this.nodes = this.held() + size.added;
    return this.nodes <= this.max;
  }
}

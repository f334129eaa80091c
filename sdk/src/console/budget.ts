/**
 * How much of a customer's page the mirror holds. The page is hostile content in the agent's
 * (and an auditor's) browser, and what it sends is not bounded by what it holds itself: a page
 * that rewrites the SDK's events (or a huge one) adds nodes to the mirror by the hundred thousand
 * in each payload, payload after payload, while its own document stays small, until the agent's
 * tab (the console and its same-origin mirror share one renderer) runs out of memory. The
 * mirror takes at most MAX_MIRROR_NODES nodes: beyond, the live console drops it and says so
 * (the customer's next page, a full snapshot that fits, shows again), and the player does not
 * play the recording.
 *
 * The nodes are counted from the events as rrweb applies them: a full snapshot's tree replaces
 * the document, a mutation's removals take whole subtrees, its additions add theirs.
 */

import { FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT, MUTATION } from "../shared/rrweb-events.ts";

/** Nodes (elements, text, comments) the mirror holds at most: several times a large real page
 * (a long product list or a big table: tens of thousands), far from what fills a tab's memory. */
export const MAX_MIRROR_NODES = 250_000;

interface Serialized {
  id?: unknown;
  childNodes?: unknown;
}

/** The nodes a replayed page holds, by id, with their children: kept from its events. */
export class NodeCount {
  private readonly children = new Map<number, Set<number>>();
  private readonly parent = new Map<number, number>();

  get size(): number {
    return this.children.size;
  }

  /** Follow one rrweb event (any other than a snapshot or a mutation changes nothing). */
  apply(event: unknown): void {
    const e = event as { type?: unknown; data?: Record<string, unknown> } | null;
    if (!e || typeof e !== "object" || !e.data || typeof e.data !== "object") return;
    if (e.type === FULL_SNAPSHOT) {
      this.children.clear();
      this.parent.clear();
      this.add(e.data.node, null);
      return;
    }
    if (e.type !== INCREMENTAL_SNAPSHOT || e.data.source !== MUTATION) return;
    if (Array.isArray(e.data.removes)) {
      for (const removal of e.data.removes) {
        const id = (removal as { id?: unknown } | null)?.id;
        if (typeof id === "number") this.remove(id);
      }
    }
    if (Array.isArray(e.data.adds)) {
      for (const addition of e.data.adds) {
        const { node, parentId } = (addition ?? {}) as { node?: unknown; parentId?: unknown };
        this.add(node, typeof parentId === "number" ? parentId : null);
      }
    }
  }

  /** `root` and all below it (iteratively: a page may nest deeply); a node added again moves. */
  private add(root: unknown, parentId: number | null): void {
    const stack: [unknown, number | null][] = [[root, parentId]];
    while (stack.length) {
      const [node, under] = stack.pop() as [Serialized | null, number | null];
      if (!node || typeof node !== "object" || typeof node.id !== "number") continue;
      const id = node.id;
      if (this.children.has(id)) this.remove(id);
      this.children.set(id, new Set());
      if (under !== null) {
        this.parent.set(id, under);
        this.children.get(under)?.add(id);
      }
      if (Array.isArray(node.childNodes)) for (const child of node.childNodes) stack.push([child, id]);
    }
  }

  /** `id` and its whole subtree. */
  private remove(id: number): void {
    const under = this.parent.get(id);
    if (under !== undefined) this.children.get(under)?.delete(id);
    const stack = [id];
    while (stack.length) {
      const next = stack.pop() as number;
      const below = this.children.get(next);
      this.children.delete(next);
      this.parent.delete(next);
      if (below) for (const child of below) stack.push(child);
    }
  }
}

/** Whether the mirror may take each next event of a page. */
export class MirrorBudget {
  private readonly count = new NodeCount();

  constructor(private readonly max = MAX_MIRROR_NODES) {}

  /** False: with `event`, the page is beyond the bound (a full snapshot that fits starts afresh). */
  admit(event: unknown): boolean {
    this.count.apply(event);
    return this.count.size <= this.max;
  }
}

/**
 * Where a same-origin frame shows its document in the page around it: both ends of remote
 * control map a point through frames with it (the console from the mirror's viewport into the
 * frame the agent clicks in, ../console/live.ts; the customer's SDK from a frame's element out to
 * the page, to see whether Tandem's own UI covers it, ../share/control.ts).
 *
 * A CSS transform on a frame or on an element around it moves and scales what the frame shows:
 * `getBoundingClientRect` gives the frame's box as drawn, and the frame's own pixels are as many
 * page pixels as the box is wider than the frame's layout (`offsetWidth`). A transform that is
 * no upright scale or move (a rotation, a skew, a mirror image, a 3D one, a turn along a motion
 * path: `offset-path` with any `offset-rotate` but 0deg) makes the frame's
 * viewport no upright rectangle on the page: no point is mapped (null), and callers fail closed.
 */

/** A frame's viewport in the viewport of the document it is shown in, in that document's CSS
 * pixels: where it starts (within the frame's border and padding), and how many of those pixels
 * one of the frame's pixels spans across and down. */
export interface FrameView {
  left: number;
  top: number;
  scaleX: number;
  scaleY: number;
}

/** How many elements around a frame are looked at for a transform (a real page has far fewer). */
const MAX_ANCESTORS = 1000;

/** Where `frame` shows its document (see above), or null when a transform on it or around it
 * is not an upright scale or move, or when it cannot be read. */
export function frameView(frame: Element): FrameView | null {
  try {
    const win = frame.ownerDocument.defaultView;
    if (!win || !upright(frame, win)) return null;
    const box = frame.getBoundingClientRect();
    const laid = frame as HTMLElement;
    const scaleX = laid.offsetWidth > 0 ? box.width / laid.offsetWidth : 1;
    const scaleY = laid.offsetHeight > 0 ? box.height / laid.offsetHeight : 1;
    const style = win.getComputedStyle(frame);
    const padding = (side: "Left" | "Top"): number => parseFloat(style[`padding${side}`]) || 0;
    return {
      left: box.left + (frame.clientLeft + padding("Left")) * scaleX,
      top: box.top + (frame.clientTop + padding("Top")) * scaleY,
      scaleX,
      scaleY,
    };
  } catch {
    return null;
  }
}

/** Whether every transform on `el` and the elements around it in its document (through shadow
 * hosts) only scales (not to a mirror image) and moves. */
function upright(el: Element, win: Window): boolean {
  const Matrix = (win as unknown as { DOMMatrixReadOnly?: typeof DOMMatrixReadOnly }).DOMMatrixReadOnly;
  let node: Element | null = el;
  for (let depth = 0; node; depth++) {
    if (depth >= MAX_ANCESTORS) return false;
    const style = win.getComputedStyle(node);
    const transform = style.transform;
    if (transform && transform !== "none") {
      if (!Matrix) return false;
      const m = new Matrix(transform);
      if (!m.is2D || m.b !== 0 || m.c !== 0 || m.a < 0 || m.d < 0) return false;
    }
    const rotate = style.getPropertyValue("rotate");
    if (rotate && rotate !== "none") return false;
    const scale = style.getPropertyValue("scale");
    if (scale && scale.includes("-")) return false;
    // CSS Motion Path moves an element along `offset-path` and turns it with `offset-rotate`
    // (`auto` by default: along the path), which neither `transform` nor `rotate` tells.
    const path = style.getPropertyValue("offset-path");
    if (path && path !== "none" && style.getPropertyValue("offset-rotate").trim() !== "0deg") return false;
    const root = node.getRootNode() as { host?: { nodeType?: unknown } };
    node = node.parentElement ?? (root.host?.nodeType === 1 ? (root.host as Element) : null);
  }
  return true;
}

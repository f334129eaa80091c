/**
 * Where the console's relay (the Tandem server) is. The console learns it from its own page, never
 * from the server: `<meta name="tandem-relay" content="https://tandem.bank.example">` in its
 * index.html (`tandem console --copy-to` writes it). Absent, the relay is the page's own origin.
 */

export interface Relay {
  /** Prefix of every /api/ URL: "" for the page's own origin, else the relay's origin. */
  base: string;
  /** "include" when the relay is another origin (its cookie must travel), else "same-origin". */
  credentials: RequestCredentials;
  /** The agent socket's URL. */
  socket: string;
}

/** The relay named by the meta tag's `content` (null: no tag), seen from a page at `page`. */
export function relayFrom(content: string | null, page: { origin: string; protocol: string; host: string }): Relay {
  if (content === null || content.trim() === "") {
    const scheme = page.protocol === "https:" ? "wss:" : "ws:";
    return { base: "", credentials: "same-origin", socket: `${scheme}//${page.host}/ws/agent` };
  }
  let url: URL;
  try {
    url = new URL(content.trim());
  } catch {
    throw new Error(`tandem-relay is not a URL: ${content}`);
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || url.href !== `${url.origin}/`) {
    throw new Error(`tandem-relay must be an http(s) origin, not ${content}`);
  }
  const scheme = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = `${scheme}//${url.host}/ws/agent`;
  if (url.origin === page.origin) return { base: "", credentials: "same-origin", socket };
  return { base: url.origin, credentials: "include", socket };
}

let page: Relay | undefined;

/** This page's relay (read once). */
export function relay(): Relay {
  page ??= relayFrom(
    document.querySelector<HTMLMetaElement>('meta[name="tandem-relay"]')?.getAttribute("content") ?? null,
    location,
  );
  return page;
}

/** `fetch` of a relay path ("/api/…") with the relay's credentials mode. */
export function relayFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const { base, credentials } = relay();
  return fetch(base + path, { ...init, credentials });
}

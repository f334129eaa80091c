/**
 * The console's check of what the server answers over HTTP. The server is untrusted (a relay that
 * may be compromised): every JSON answer is parsed and checked against the schema generated from
 * the server's own msgspec definitions (REST_ANSWERS in src/generated/rest.ts) before any page
 * reads it, so a malformed or hostile answer becomes one clear error, never a crash deep in a view
 * or a value of the wrong type on the screen. The same check as for the wire messages
 * (src/shared/schema.ts).
 */

import { REST_ANSWERS } from "../generated/rest.ts";
import { conforms, type Schema } from "../shared/schema.ts";
import { plainLine } from "../shared/names.ts";

/** An answer that is not what the route answers: not JSON, or of the wrong shape. */
export class MalformedAnswer extends Error {
  override name = "MalformedAnswer";
}

interface Route {
  readonly method: string;
  readonly template: string;
  readonly pattern: RegExp;
  readonly schema: Schema;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const ROUTES: readonly Route[] = REST_ANSWERS.map(([method, template, schema]) => ({
  method,
  template,
  schema,
  pattern: new RegExp(`^${template.split("/").map((part) => (part.startsWith("{") ? "[^/]+" : escape(part))).join("/")}$`),
}));

/** The route that serves `method path` (the query string ignored), if it answers JSON. */
export function routeOf(method: string, path: string): Route | undefined {
  const bare = path.split(/[?#]/, 1)[0];
  return ROUTES.find((route) => route.method === method && route.pattern.test(bare));
}

/**
 * The JSON body of a successful `response` to `method path`, checked against the route's schema;
 * null for a route that answers nothing (204). Throws MalformedAnswer, with a message fit to show,
 * for anything else: no cast ever passes an unchecked answer on.
 */
export async function checkedAnswer<T>(response: Response, method: string, path: string): Promise<T> {
  const route = routeOf(method, path);
  const what = `${method} ${route?.template ?? path.split(/[?#]/, 1)[0]}`;
  if (route === undefined) {
    if (response.status === 204) return null as T;
    throw new MalformedAnswer(`The console does not know what ${what} answers, so it used nothing of the answer.`);
  }
  if (response.status === 204) throw new MalformedAnswer(`The server answered ${what} with nothing; the console expected data.`);
  let value: unknown;
  try {
    value = JSON.parse(await response.text());
  } catch {
    throw new MalformedAnswer(`The server's answer to ${what} is not JSON; the console used nothing of it.`);
  }
  if (!conforms(route.schema, value)) {
    throw new MalformedAnswer(`The server's answer to ${what} is malformed (not what this route answers); the console used nothing of it.`);
  }
  return value as T;
}

const MAX_DETAIL = 500;

/** The console's own words for a refusal, by HTTP status. */
const OWN_WORDS: Readonly<Record<number, string>> = {
  400: "The server refused this as not valid.",
  401: "The server did not accept the sign-in.",
  403: "The server refused this: the account may not do it.",
  404: "The server found nothing of that name.",
  409: "The server refused this: it conflicts with what is there now (someone may have changed it meanwhile). Reload and try again.",
  413: "The server refused this as too large.",
  421: "The server refused this address.",
  429: "Too many attempts. Wait a moment, then try again.",
  503: "The server is busy or cannot reach its storage. Try again in a moment.",
};

/**
 * What to show for a refused request: the console's own sentence for its status (a generic one
 * for another status; the wait `Retry-After` names, in digits only), then the `detail` of a
 * problem+json answer, when it is a string, quoted as the server's, as one plain line (invisible
 * characters shown, cut to a sensible length). The detail says what to fix ("a display name is
 * 1-100 printable characters...") of accounts the same server keeps; quoted, it never reads as
 * the console's own words. Never throws.
 */
export async function problemText(response: Response): Promise<string> {
  const { status } = response;
  const wait = response.headers.get("retry-after") ?? "";
  let own = OWN_WORDS[status] ?? (status >= 500 ? `The server failed to do this (${status}).` : `The server refused this (${status}).`);
  if (status === 429 && /^[0-9]{1,6}$/.test(wait)) own = `Too many attempts. Try again in ${Number(wait)} s.`;
  try {
    const body: unknown = JSON.parse(await response.text());
    if (typeof body !== "object" || body === null || Array.isArray(body)) return own;
    const detail: unknown = (body as { detail?: unknown }).detail;
    const said = typeof detail === "string" ? plainLine(detail, MAX_DETAIL) : "";
    return said ? `${own} The server says: “${said}”` : own;
  } catch {
    return own;
  }
}

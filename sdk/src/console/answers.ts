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

/** What to show for a refused request: the `detail` of a problem+json answer when it is a
 * string (cut to a sensible length), else a generic line. Never throws. */
export async function problemText(response: Response): Promise<string> {
  const generic = `Request failed (${response.status}).`;
  try {
    const body: unknown = JSON.parse(await response.text());
    if (typeof body !== "object" || body === null || Array.isArray(body)) return generic;
    const detail: unknown = (body as { detail?: unknown }).detail;
    if (typeof detail !== "string" || !detail.trim()) return generic;
    return detail.length > MAX_DETAIL ? `${detail.slice(0, MAX_DETAIL)}…` : detail;
  } catch {
    return generic;
  }
}

/**
 * Page patterns (`pages.allow`, `pages.deny`, docs/privacy.md): `*` matches any run of characters
 * (`/` too), every other character matches itself. Each part of a pattern (origin and path, a
 * query value, a hash route) is such a glob (./pages.ts). Matched in time linear in the pattern plus the
 * subject: a pattern was once turned into a regular expression (`*` → `.*`) and a 19-character
 * one took about 2 s per check, every 300 ms, in every customer's tab (issue 14, item 8).
 *
 * A pattern is its literal segments between stars. With no star it must equal the subject;
 * otherwise the first segment is a prefix, the last a suffix, and the ones between occur in
 * order in what is left: taking each at its leftmost occurrence never loses a match, and each
 * is found with Knuth-Morris-Pratt, so every subject character is looked at a bounded number of
 * times.
 */

/** Knuth-Morris-Pratt failure table of `needle`. */
function failureTable(needle: string): Int32Array {
  const table = new Int32Array(needle.length);
  let k = 0;
  for (let i = 1; i < needle.length; i++) {
    while (k > 0 && needle[i] !== needle[k]) k = table[k - 1];
    if (needle[i] === needle[k]) k++;
    table[i] = k;
  }
  return table;
}

/** The index just past the leftmost occurrence of `needle` in `hay[from, to)`, or -1. */
function findEnd(hay: string, needle: string, from: number, to: number): number {
  if (needle.length === 0) return from;
  const table = failureTable(needle);
  let k = 0;
  for (let i = from; i < to; i++) {
    while (k > 0 && hay[i] !== needle[k]) k = table[k - 1];
    if (hay[i] === needle[k]) k++;
    if (k === needle.length) return i + 1;
  }
  return -1;
}

/** Whether `subject` matches the glob `pattern` (only `*` is special). Linear time. */
export function globMatches(pattern: string, subject: string): boolean {
  const segments = pattern.split("*");
  if (segments.length === 1) return pattern === subject;
  const first = segments[0];
  const last = segments[segments.length - 1];
  if (first.length + last.length > subject.length) return false;
  if (!subject.startsWith(first) || !subject.endsWith(last)) return false;
  let position = first.length;
  const end = subject.length - last.length;
  for (let i = 1; i < segments.length - 1; i++) {
    const found = findEnd(subject, segments[i], position, end);
    if (found < 0) return false;
    position = found;
  }
  return true;
}

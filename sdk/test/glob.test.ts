// Page patterns are matched in linear time (issue 14, item 8): a 19-character deny pattern that
// became a backtracking regular expression took seconds per check in every customer's tab.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { globMatches } from "../src/shared/glob.ts";
import { pageIsPrivate, validatePolicy } from "../src/shared/policy.ts";

/** The obvious definition, by dynamic programming over (pattern, subject) prefixes. */
function reference(pattern: string, subject: string): boolean {
  let row = new Array<boolean>(subject.length + 1).fill(false);
  row[0] = true;
  for (const p of pattern) {
    const next = new Array<boolean>(subject.length + 1).fill(false);
    if (p === "*") {
      next[0] = row[0];
      for (let j = 1; j <= subject.length; j++) next[j] = row[j] || next[j - 1];
    } else {
      for (let j = 1; j <= subject.length; j++) next[j] = row[j - 1] && subject[j - 1] === p;
    }
    row = next;
  }
  return row[subject.length];
}

// A small alphabet makes matches and near-misses (overlaps, repeats) common.
const text = (max: number) => fc.string({ unit: fc.constantFrom("a", "b", "/", "."), maxLength: max });
const pattern = fc.string({ unit: fc.constantFrom("a", "b", "/", ".", "*"), maxLength: 12 });

test("the glob matcher agrees with the reference on any pattern and subject", () => {
  fc.assert(fc.property(pattern, text(24), (p, s) => globMatches(p, s) === reference(p, s)), { numRuns: 20_000 });
});

test("subjects built to match a pattern match it", () => {
  fc.assert(
    fc.property(fc.array(text(5), { minLength: 1, maxLength: 6 }), fc.array(text(5), { maxLength: 6 }), (parts, fillers) => {
      const p = parts.join("*");
      const s = parts.map((part, i) => (i ? (fillers[i] ?? "") : "") + part).join("");
      return globMatches(p, s) && reference(p, s);
    }),
  );
});

test("the 19-character pathological pattern is checked in milliseconds", () => {
  const policy = validatePolicy({ version: 1, pages: { deny: ["/*a*a*a*a*a*a*a*a*a"] } });
  assert.equal("/*a*a*a*a*a*a*a*a*a".length, 19);
  // The old regular expression took about 3 s on this 42-character path, 15 s at 52.
  const url = new URL(`https://shop.example/${"a".repeat(40)}b`);
  // CPU time, not wall time: the work done, however busy the machine is with other processes.
  const cpuMs = (work: () => void): number => {
    const before = process.cpuUsage();
    work();
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1000;
  };
  let ms = cpuMs(() => assert.equal(pageIsPrivate(url, [policy]), false));
  assert.ok(ms < 50, `${ms} ms of CPU`);
  // And on a long address with the longest pattern allowed (500 characters, 250 stars).
  const longest = validatePolicy({ version: 1, pages: { deny: [`/${"*a".repeat(249)}b`] } });
  const long = new URL(`https://shop.example/${"a".repeat(8000)}`);
  ms = cpuMs(() => assert.equal(pageIsPrivate(long, [longest]), false));
  assert.ok(ms < 200, `${ms} ms of CPU`);
  assert.equal(pageIsPrivate(new URL(`https://shop.example/${"a".repeat(9)}`), [policy]), true);
});

test("query and route conditions are checked in time linear in the address too", () => {
  const cpuMs = (work: () => void): number => {
    const before = process.cpuUsage();
    work();
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1000;
  };
  // Eight conditions (the most), each a pathological glob, on the same parameter, repeated in a
  // long query and in the route's; as deny and as allow (which reads every value of the name).
  const value = `${"*a".repeat(12)}b`;
  const query = new Array(8).fill(`p=${value}`).join("&");
  const pattern = `/x?${query}#/y?${query}`;
  assert.ok(pattern.length <= 500);
  const policy = validatePolicy({ version: 1, pages: { deny: [pattern, `/x?${query}`], allow: [pattern] } });
  const params = new Array(400).fill(`p=${"a".repeat(20)}`).join("&");
  const url = new URL(`https://shop.example/x?${params}#/y?${params}`);
  const ms = cpuMs(() => assert.equal(pageIsPrivate(url, [policy]), true, "not allowed"));
  assert.ok(ms < 300, `${ms} ms of CPU`);
  const denied = new URL(`https://shop.example/x?${params}&p=${"a".repeat(30)}b#/y`);
  assert.equal(pageIsPrivate(denied, [validatePolicy({ version: 1, pages: { deny: [`/x?${query}`] } })]), true);
});

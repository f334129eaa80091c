import assert from "node:assert/strict";
import { test } from "node:test";
import { Bucket } from "../src/share/bucket.ts";

test("a bucket allows a burst of its rate, then one action per refilled token", () => {
  let now = 1000;
  const bucket = new Bucket(5, () => now);
  assert.deepEqual(Array.from({ length: 6 }, () => bucket.take()), [true, true, true, true, true, false]);
  now += 199; // just short of one token (200 ms at 5 a second)
  assert.equal(bucket.take(), false);
  now += 2;
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
  now += 60_000; // a long pause refills it to its size, no more
  assert.equal(Array.from({ length: 7 }, () => bucket.take()).filter(Boolean).length, 5);
});

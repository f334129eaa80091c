// Waiting in the SDK's tests for what the code under test reaches asynchronously (crypto, the
// key store, sealing), by looking at the condition, never by the clock alone.
import assert from "node:assert/strict";

/** How long `until` waits at most (ms). */
export const UNTIL_MS = 30_000;

/** Wait for `condition` (it may be async), looking every few ms. The bound only ends a test that
 * would wait for ever: generous for a loaded machine, never a measure of speed (200 looks, about
 * a second, failed at high load). */
export async function until(condition: () => boolean | Promise<boolean>, what = "condition not reached"): Promise<void> {
  const deadline = Date.now() + UNTIL_MS;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

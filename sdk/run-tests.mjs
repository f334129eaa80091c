// `npm test`: builds the test files (build-tests.mjs), then runs each group's bundle in a node
// process of its own, side by side, with node:test's reporter (spec on a terminal, TAP otherwise,
// as `node --test` chooses). Fails when a test (or a bundle) fails, and when no test ran at all.
// The processes run with source maps, so a failure's location and stack name the .ts file and
// line (each bundle holds many test files).
import { availableParallelism } from "node:os";
import { run } from "node:test";
import { spec, tap } from "node:test/reporters";
import { buildTests } from "./build-tests.mjs";

const bundles = await buildTests();
if (bundles.length === 0) {
  console.error("run-tests: no test file (test/*.test.ts)");
  process.exit(1);
}
process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --enable-source-maps`.trim();
let ran = 0; // tests, as node:test counts them (not suites, nor a bundle that registered none)
let failed = 0;
const stream = run({ files: bundles, concurrency: Math.min(bundles.length, availableParallelism()) });
const counted = (test) => test.details?.type !== "suite" && !bundles.includes(test.name);
stream.on("test:pass", (test) => void (counted(test) && ran++));
stream.on("test:fail", (test) => void (failed++, counted(test) && ran++));
const reporter = process.stdout.isTTY ? new spec() : tap;
for await (const chunk of stream.compose(reporter)) process.stdout.write(chunk);
if (ran === 0) console.error("run-tests: no test ran");
if (failed > 0 || ran === 0) process.exitCode = 1;

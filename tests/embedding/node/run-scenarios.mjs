#!/usr/bin/env node
// Runs scenario files against the capt-status policy component in Node.js, through jco, with
// the semantics of `capt-host test` (docs/scenarios.md): one line per scenario (`ok` or
// `FAIL`), the failures of a failed one, then `N passed, M failed`. Exits 1 if any failed.
//
//   node run-scenarios.mjs [--module FILE] [--patch-stream FILE] [--log-level LEVEL] [-v] PATH...
//   node run-scenarios.mjs [--module FILE] --bench N [--bench-scenario FILE] [--bench-request FILE]
//
// See docs/embedding.md.

import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { canonical } from './lib/json.mjs';
import { LEVELS, WasmPolicy } from './lib/policy.mjs';
import { EmptySuite, loadScenario, runScenario, scenarioFiles, streamLine } from './lib/scenario.mjs';
import { display } from './lib/world.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DEFAULT_MODULE = resolve(REPO, 'target/wasm32-unknown-unknown/guest/capt_status.wasm');
const DEFAULT_BENCH_SCENARIO = resolve(
  REPO,
  'policies/capt-status/scenarios/happy-path/from-nothing-to-both-ready-with-the-cluster-updated.yaml',
);

const USAGE = `usage: run-scenarios.mjs [options] PATH...
       run-scenarios.mjs [options] --bench N [--bench-scenario FILE]

Runs scenario files (or directories, searched recursively for .yaml/.yml) against a capt:policy
component loaded with jco, like \`capt-host test\`.

options:
  --module FILE          the policy component (default: ${DEFAULT_MODULE})
  --patch-stream FILE    write one JSON line per final reconcile response (docs/embedding.md)
  --log-level LEVEL      policy log records at or above LEVEL go to stderr: ${LEVELS.join(', ')}
                         (default: $CAPT_POLICY_LOG or warn)
  -v, --verbose          also print what every reconcile produced
  --bench N              time N reconcile calls of one realistic request and print the median
  --bench-scenario FILE  the scenario the benchmark request comes from (default: the happy path)
  --bench-request FILE   also write the benchmark request as JSON (for other hosts' benchmarks)
  -h, --help             this help`;

function usage(message) {
  process.stderr.write(`error: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function indent(text, by) {
  const pad = ' '.repeat(by);
  return text
    .split('\n')
    .map((line) => `${pad}${line}`)
    .join('\n');
}

async function main() {
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        module: { type: 'string' },
        'patch-stream': { type: 'string' },
        'log-level': { type: 'string' },
        verbose: { type: 'boolean', short: 'v' },
        bench: { type: 'string' },
        'bench-scenario': { type: 'string' },
        'bench-request': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    usage(e.message);
  }
  const { values, positionals } = args;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const logLevel = values['log-level'] ?? process.env.CAPT_POLICY_LOG ?? 'warn';
  if (!LEVELS.includes(logLevel)) usage(`unknown log level ${logLevel}`);
  const modulePath = values.module ?? DEFAULT_MODULE;

  let policy;
  try {
    policy = await WasmPolicy.load(readFileSync(modulePath), { logLevel });
  } catch (e) {
    process.stderr.write(`error: could not load the policy ${modulePath}: ${e.message}\n`);
    return 2;
  }

  if (values.bench !== undefined) {
    const n = Number(values.bench);
    if (!Number.isInteger(n) || n < 1) usage('--bench takes a positive number of calls');
    return bench(policy, n, values['bench-scenario'] ?? DEFAULT_BENCH_SCENARIO, values['bench-request']);
  }
  if (positionals.length === 0) usage('give at least one scenario file or directory');
  return test(policy, positionals, values['patch-stream'], values.verbose ?? false);
}

function test(policy, paths, patchStream, verbose) {
  let files;
  try {
    files = scenarioFiles(paths);
  } catch (e) {
    process.stderr.write(`error: ${e.message}\n`);
    return e instanceof EmptySuite ? 1 : 2;
  }
  const stream = patchStream === undefined ? null : openSync(patchStream, 'w');
  const out = [];
  const flush = () => {
    if (out.length > 0) process.stdout.write(`${out.join('\n')}\n`);
    out.length = 0;
  };
  let passed = 0;
  let failed = 0;
  for (const { path, relative } of files) {
    let scenario;
    try {
      scenario = loadScenario(path);
    } catch (e) {
      failed += 1;
      out.push(`FAIL ${path}: (not a valid scenario)`);
      out.push(indent(`${path} is not a valid scenario\ncaused by: ${e.message}`, 4));
      flush();
      continue;
    }
    const outcome = runScenario(scenario, policy);
    if (outcome.failures.length === 0) {
      passed += 1;
      out.push(`ok   ${path}: ${outcome.name}`);
    } else {
      failed += 1;
      out.push(`FAIL ${path}: ${outcome.name}`);
      for (const failure of outcome.failures) {
        const place = failure.step === 0 ? 'setup' : `step ${failure.step}`;
        out.push(indent(`${place}: ${failure.message}`, 4));
      }
    }
    if (verbose) {
      for (const record of outcome.records) {
        out.push(`    step ${record.step}: reconcile ${display(record.trigger)}`);
        out.push(indent(record.result.error === undefined ? canonical(record.result.ok) : `error: ${record.result.error}`, 6));
      }
    }
    if (stream !== null) {
      for (const record of outcome.records) writeSync(stream, `${streamLine(relative, record)}\n`);
    }
    flush();
  }
  if (stream !== null) closeSync(stream);
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed === 0 ? 0 : 1;
}

/** Times `n` calls of the largest request (by manifest bytes) that the scenario's reconciles
 * send in a final round: the same input in every host. */
function bench(policy, n, scenarioPath, requestFile) {
  const scenario = loadScenario(scenarioPath);
  let largest = null;
  let largestBytes = -1;
  const observing = {
    metadata: policy.metadata,
    reconcile: (request) => {
      const response = policy.reconcile(request);
      const bytes = request.objects.reduce((sum, o) => sum + Buffer.byteLength(o.manifest), 0);
      if (response.requirements.length === 0 && bytes > largestBytes) {
        largest = structuredClone(request);
        largestBytes = bytes;
      }
      return response;
    },
  };
  runScenario(scenario, observing);
  if (largest === null) {
    process.stderr.write(`error: no reconcile of ${scenarioPath} completed\n`);
    return 2;
  }
  if (requestFile !== undefined) writeFileSync(requestFile, `${requestJson(largest)}\n`);
  const time = (call) => {
    for (let i = 0; i < Math.min(50, n); i++) call(); // warm-up
    const samples = [];
    for (let i = 0; i < n; i++) {
      const start = process.hrtime.bigint();
      call();
      samples.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    samples.sort((a, b) => a - b);
    const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
    const median = samples.length % 2 === 1
      ? samples[(samples.length - 1) / 2]
      : (samples[samples.length / 2 - 1] + samples[samples.length / 2]) / 2;
    return { median, p90: at(0.9), min: samples[0], max: samples.at(-1) };
  };
  const fresh = time(() => policy.reconcile(largest));
  const instance = policy.instance();
  const reused = time(() => instance.reconcile(largest));
  const fmt = (s) => `median ${s.median.toFixed(3)} ms, p90 ${s.p90.toFixed(3)} ms, min ${s.min.toFixed(3)} ms, max ${s.max.toFixed(3)} ms`;
  process.stdout.write(
    `bench: node ${process.versions.node}, jco ${jcoVersion()}; request: ${display(largest.trigger)} ` +
      `with ${largest.objects.length} objects (${largestBytes} bytes of manifests), ${largest.missing.length} missing\n` +
      `bench: reconcile, fresh instance per call (as the runner does), n=${n}: ${fmt(fresh)}\n` +
      `bench: reconcile, one reused instance, n=${n}: ${fmt(reused)}\n`,
  );
  return 0;
}

/** A request as JSON: `{trigger, nowEpochMillis, objects: [{ref, manifest}], missing, settings}`
 * (references `{apiVersion, kind, namespace, name}`; manifests and settings as JSON text). */
function requestJson(request) {
  const ref = (r) => ({ apiVersion: r.apiVersion, kind: r.kind, namespace: r.namespace ?? null, name: r.name });
  return canonical({
    trigger: ref(request.trigger),
    nowEpochMillis: request.nowEpochMillis,
    objects: request.objects.map((o) => ({ ref: ref(o.ref), manifest: o.manifest })),
    missing: request.missing.map(ref),
    settings: request.settings,
  });
}

function jcoVersion() {
  const require = createRequire(import.meta.url);
  const main = require.resolve('@bytecodealliance/jco');
  const manifest = resolve(dirname(main), '..', 'package.json');
  return JSON.parse(readFileSync(manifest, 'utf8')).version;
}

process.exitCode = await main();

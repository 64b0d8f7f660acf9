// Scenario files (docs/scenarios.md; host/core/src/scenario/): reading them with the Rust host's
// exact rules, running them over an in-memory World, and checking their expectations.

import { readdirSync, readFileSync, statSync } from 'node:fs';

import { isAlias, isMap, isScalar, isSeq, parseAllDocuments } from 'yaml';

import { canonical, getKey, isObject, mismatches } from './json.mjs';
import { MAX_ROUNDS, mergeSettings, reconcile as reconcileRounds } from './rounds.mjs';
import { epochMillis, formatMillis, parseDuration, parseTime } from './time.mjs';
import { World, display, groupOf } from './world.mjs';

export { MAX_ROUNDS };

// ---- finding files --------------------------------------------------------------------------

/** The components of a path as Rust's `Path::components` sees them: `/` separated, empty and
 * interior `.` components dropped (a leading `.` and a leading root are kept). */
function components(path) {
  const parts = path.split('/').filter((c, i) => c !== '' && (c !== '.' || i === 0));
  return path.startsWith('/') ? ['/', ...parts] : parts;
}

/** Rust's `Path` order: component by component, each compared by bytes. */
function comparePaths(a, b) {
  const x = components(a);
  const y = components(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return Buffer.compare(Buffer.from(x[i]), Buffer.from(y[i]));
  }
  return x.length - y.length;
}

function join(dir, name) {
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;
}

/** `file` relative to the first directory argument it is under, `/`-separated; a file given
 * directly is named by its file name (as `capt-host test` names it in its patch stream). */
function relativeName(roots, file) {
  const parts = components(file);
  for (const root of roots) {
    const prefix = components(root);
    if (prefix.length <= parts.length && prefix.every((c, i) => c === parts[i])) {
      return parts.slice(prefix.length).join('/');
    }
  }
  return parts.at(-1) ?? file;
}

/** A folder without scenario files: a failed suite (exit 1), as in the Rust host. */
export class EmptySuite extends Error {}

/**
 * The scenario files under `paths`: files as given, directories searched recursively for
 * `.yaml`/`.yml`; sorted like the Rust host sorts them, without duplicates. Each comes with its
 * `relative` name: the `file` of the patch stream.
 */
export function scenarioFiles(paths) {
  const found = new Set();
  const roots = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const isDir = entry.isDirectory() || (entry.isSymbolicLink() && statSync(path).isDirectory());
      if (isDir) walk(path);
      else if (/\.ya?ml$/.test(entry.name)) found.add(path);
    }
  };
  for (const path of paths) {
    if (statSync(path).isDirectory()) {
      roots.push(path);
      const before = found.size;
      walk(path);
      if (found.size === before) throw new EmptySuite(`${path} holds no scenario files (.yaml or .yml)`);
    } else {
      found.add(path);
    }
  }
  return [...found].sort(comparePaths).map((path) => ({ path, relative: relativeName(roots, path) }));
}

// ---- reading a scenario: serde_yaml_ng's rules, node by node ---------------------------------

export class ScenarioError extends Error {}

const fail = (where, message) => {
  throw new ScenarioError(where ? `${where}: ${message}` : message);
};

/** The text of a scalar as written (plain) or decoded (quoted, block). */
function scalarText(node) {
  return node.type === 'PLAIN' ? (node.source ?? String(node.value ?? '')) : String(node.value ?? '');
}

const isPlain = (node) => isScalar(node) && node.type === 'PLAIN';

function isNullText(text) {
  return text === '' || text === '~' || text === 'null' || text === 'Null' || text === 'NULL';
}

/** A plain scalar that reads as null (`~`, `null`, empty). */
function isNullNode(node) {
  return node == null || (isPlain(node) && isNullText(scalarText(node)));
}

const DIGITS_BUT_NOT_NUMBER = /^[-+]?0[0-9]+$/;
/** What Rust's `f64::from_str` accepts as a finite number. */
const RUST_FLOAT = /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/;

/** An integer as serde_yaml_ng reads a plain scalar (`12`, `+1`, `0x1F`, `-0o7`, `0b11`), or
 * undefined. Leading zeros (`0123`) make a string. */
function parseInt_(text) {
  const m = /^([-+]?)0([xob])(.*)$/.exec(text);
  if (m) {
    const digits = { x: /^[0-9a-fA-F]+$/, o: /^[0-7]+$/, b: /^[01]+$/ }[m[2]];
    if (digits.test(m[3])) {
      const value = BigInt(`0${m[2]}${m[3]}`);
      return m[1] === '-' ? -value : value;
    }
  }
  if (DIGITS_BUT_NOT_NUMBER.test(text) || !/^[-+]?[0-9]+$/.test(text)) return undefined;
  return BigInt(text);
}

/** A float as serde_yaml_ng reads a plain scalar (its `parse_f64`), or undefined. */
function parseFloat_(text) {
  let unpositive = text;
  if (text.startsWith('+')) {
    unpositive = text.slice(1);
    if (/^[-+]/.test(unpositive)) return undefined;
  }
  if (/^\.(inf|Inf|INF)$/.test(unpositive)) return Infinity;
  if (/^-\.(inf|Inf|INF)$/.test(text)) return -Infinity;
  if (/^\.(nan|NaN|NAN)$/.test(text)) return NaN;
  if (RUST_FLOAT.test(unpositive)) {
    const value = Number(unpositive);
    if (Number.isFinite(value)) return value;
  }
  return undefined;
}

/** A plain scalar resolved the way serde_yaml_ng resolves it into a `serde_json::Value`
 * (where infinities and NaN become null). */
function resolvePlain(text) {
  if (isNullText(text)) return null;
  if (text === 'true' || text === 'True' || text === 'TRUE') return true;
  if (text === 'false' || text === 'False' || text === 'FALSE') return false;
  const int = parseInt_(text);
  if (int !== undefined) return Number(int);
  if (!DIGITS_BUT_NOT_NUMBER.test(text)) {
    const float = parseFloat_(text);
    if (float !== undefined) return Number.isFinite(float) ? float : null;
  }
  return text;
}

/** Resolves aliases to the node they name. */
function deref(node, doc) {
  let current = node;
  for (let i = 0; isAlias(current) && i < 1000; i++) current = current.resolve(doc);
  return current;
}

/** A node as a JSON value (what `serde_json::Value` gets from serde_yaml_ng). */
function toValue(node, doc, where) {
  node = deref(node, doc);
  if (node == null) return null;
  if (isScalar(node)) return node.type === 'PLAIN' ? resolvePlain(scalarText(node)) : scalarText(node);
  if (isSeq(node)) return node.items.map((item, i) => toValue(item, doc, `${where}[${i}]`));
  if (isMap(node)) {
    const out = {};
    for (const pair of node.items) {
      const key = deref(pair.key, doc);
      if (!isScalar(key)) fail(where, 'invalid type: a mapping key must be a string');
      const name = scalarText(key);
      if (Object.hasOwn(out, name)) fail(where, `duplicate entry with key "${name}"`);
      Object.defineProperty(out, name, {
        value: toValue(pair.value, doc, `${where}.${name}`),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return fail(where, 'unsupported YAML node');
}

/** The entries of a mapping node that must be the struct `what` with `fields`; null-like or
 * non-mapping nodes, unknown and duplicate fields are errors. */
function struct(node, doc, where, what, fields) {
  node = deref(node, doc);
  if (!isMap(node)) {
    const got = isNullNode(node) ? 'unit value' : isSeq(node) ? 'sequence' : `"${scalarText(node)}"`;
    fail(where, `invalid type: ${got}, expected struct ${what}`);
  }
  const out = new Map();
  for (const pair of node.items) {
    const key = deref(pair.key, doc);
    const name = isScalar(key) ? scalarText(key) : undefined;
    if (name === undefined || !fields.includes(name)) {
      fail(where, `unknown field \`${name}\`, expected one of ${fields.map((f) => `\`${f}\``).join(', ')}`);
    }
    if (out.has(name)) fail(where, `duplicate field \`${name}\``);
    out.set(name, deref(pair.value, doc));
  }
  return out;
}

/** A `String` field: any scalar, as written. */
function string(node, where) {
  if (!isScalar(node ?? null) && node != null) fail(where, 'invalid type, expected a string');
  return node == null ? '' : scalarText(node);
}

/** An `Option<String>` field: null-like plain scalars are None. */
function optionalString(node, where) {
  return isNullNode(node) ? null : string(node, where);
}

/** A `Vec<_>` field: a sequence (null is an error). */
function sequence(node, where) {
  if (!isSeq(node)) fail(where, `invalid type: ${isNullNode(node) ? 'unit value' : 'not a sequence'}, expected a sequence`);
  return node.items;
}

/** An `Option<usize>` field. */
function optionalCount(node, where) {
  if (isNullNode(node)) return null;
  const int = isPlain(node) ? parseInt_(scalarText(node)) : undefined;
  if (int === undefined || int < 0n) fail(where, `invalid type: ${canonical(scalarText(node))}, expected usize`);
  return Number(int);
}

/** A selector given as a JSON value (in `reconcile`: serde_json's strict rules). */
function selectorFromValue(value, where) {
  if (!isObject(value)) fail(where, `invalid type: ${canonical(value)}, expected struct Selector`);
  for (const key of Object.keys(value)) {
    if (!['apiVersion', 'kind', 'namespace', 'name'].includes(key)) fail(where, `unknown field \`${key}\``);
  }
  const required = (key) => {
    const v = getKey(value, key);
    if (v === undefined) fail(where, `missing field \`${key}\``);
    if (typeof v !== 'string') fail(where, `invalid type: ${canonical(v)}, expected a string`);
    return v;
  };
  const optional = (key) => {
    const v = getKey(value, key) ?? null;
    if (v !== null && typeof v !== 'string') fail(where, `invalid type: ${canonical(v)}, expected a string`);
    return v;
  };
  return { apiVersion: optional('apiVersion'), kind: required('kind'), namespace: optional('namespace'), name: required('name') };
}

/** A selector given directly in YAML (`delete`, `absent`). */
function selectorFromNode(node, doc, where) {
  const fields = struct(node, doc, where, 'Selector', ['apiVersion', 'kind', 'namespace', 'name']);
  for (const key of ['kind', 'name']) if (!fields.has(key)) fail(where, `missing field \`${key}\``);
  return {
    apiVersion: optionalString(fields.get('apiVersion'), where),
    kind: string(fields.get('kind'), where),
    namespace: optionalString(fields.get('namespace'), where),
    name: string(fields.get('name'), where),
  };
}

/** `requeueAfter`: `none`, a duration, or `{min, max}` (serde's untagged enum over the
 * resolved value: numbers are neither). */
function requeue(node, doc, where) {
  const value = toValue(node, doc, where);
  if (typeof value === 'string') {
    if (value === 'none') return { kind: 'never' };
    return { kind: 'exactly', nanos: parseDuration(value) };
  }
  if (isObject(value)) {
    const bound = (key) => {
      const v = getKey(value, key) ?? null;
      if (v === null) return null;
      if (typeof v !== 'string') fail(where, 'data did not match any variant of untagged enum Raw');
      return parseDuration(v);
    };
    return { kind: 'between', min: bound('min'), max: bound('max') };
  }
  return fail(where, 'data did not match any variant of untagged enum Raw');
}

function parseExpect(node, doc, where) {
  const f = struct(node, doc, where, 'Expect', ['objects', 'absent', 'requeueAfter', 'events', 'patches', 'error']);
  const values = (key) =>
    f.has(key) ? sequence(f.get(key), `${where}.${key}`).map((n, i) => toValue(n, doc, `${where}.${key}[${i}]`)) : [];
  return {
    objects: values('objects'),
    absent: f.has('absent')
      ? sequence(f.get('absent'), `${where}.absent`).map((n, i) => selectorFromNode(n, doc, `${where}.absent[${i}]`))
      : [],
    requeueAfter: f.has('requeueAfter') ? requeue(f.get('requeueAfter'), doc, `${where}.requeueAfter`) : null,
    events: f.has('events') && !isNullNode(f.get('events')) ? values('events') : null,
    patches: f.has('patches') ? optionalCount(f.get('patches'), `${where}.patches`) : null,
    error: f.has('error') ? optionalString(f.get('error'), `${where}.error`) : null,
  };
}

function parseStep(node, doc, where) {
  const f = struct(node, doc, where, 'Step', ['at', 'after', 'apply', 'delete', 'reconcile', 'expect']);
  const wrap = (what, fn) => {
    try {
      return fn();
    } catch (e) {
      return e instanceof ScenarioError ? fail('', e.message) : fail(where, `${what}${e.message}`);
    }
  };
  let reconcile = null;
  if (f.has('reconcile')) {
    const value = toValue(f.get('reconcile'), doc, where);
    const list = Array.isArray(value) ? value : [value];
    reconcile = wrap('invalid `reconcile`: ', () => list.map((v) => selectorFromValue(v, '')));
  }
  return {
    at: f.has('at') ? wrap('', () => parseTime(string(f.get('at'), where))) : null,
    after: f.has('after') ? wrap('', () => parseDuration(string(f.get('after'), where))) : null,
    apply: f.has('apply')
      ? sequence(f.get('apply'), `${where}.apply`).map((n, i) => toValue(n, doc, `${where}.apply[${i}]`))
      : [],
    delete: f.has('delete')
      ? sequence(f.get('delete'), `${where}.delete`).map((n, i) => selectorFromNode(n, doc, `${where}.delete[${i}]`))
      : [],
    reconcile,
    expect: f.has('expect')
      ? parseExpect(f.get('expect'), doc, `${where}.expect`)
      : { objects: [], absent: [], requeueAfter: null, events: null, patches: null, error: null },
  };
}

/** Reads and parses one scenario file; throws a ScenarioError saying what is wrong. */
export function loadScenario(path) {
  const text = readFileSync(path, 'utf8');
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false });
  if (!Array.isArray(docs)) fail('', 'not a YAML stream');
  if (docs.length !== 1) {
    fail('', docs.length === 0 ? 'EOF while parsing a value' : 'deserializing from YAML containing more than one document is not supported');
  }
  const [doc] = docs;
  if (doc.errors.length > 0) fail('', doc.errors[0].message);
  const f = struct(doc.contents, doc, '', 'Scenario', ['name', 'settings', 'objects', 'steps']);
  if (!f.has('name')) fail('', 'missing field `name`');
  if (!f.has('steps')) fail('', 'missing field `steps`');
  return {
    name: string(f.get('name'), 'name'),
    settings: f.has('settings') ? toValue(f.get('settings'), doc, 'settings') : null,
    objects: f.has('objects') ? sequence(f.get('objects'), 'objects').map((n, i) => toValue(n, doc, `objects[${i}]`)) : [],
    steps: sequence(f.get('steps'), 'steps').map((n, i) => parseStep(n, doc, `steps[${i}]`)),
  };
}

// ---- running a scenario ---------------------------------------------------------------------

/** `Kind/namespace/name` or `Kind/name`. */
function displaySelector(s) {
  return s.namespace == null ? `${s.kind}/${s.name}` : `${s.kind}/${s.namespace}/${s.name}`;
}

/** The one object `selector` names (null if none); throws a string if it names several. */
export function locate(world, selector) {
  const group = selector.apiVersion == null ? null : groupOf(selector.apiVersion);
  const found = world
    .objects()
    .map(([ref]) => ref)
    .filter(
      (r) =>
        r.kind === selector.kind &&
        r.name === selector.name &&
        (selector.namespace == null || r.namespace === selector.namespace) &&
        (group === null || groupOf(r.apiVersion) === group),
    );
  if (found.length === 0) return null;
  if (found.length === 1) return found[0];
  throw `${displaySelector(selector)} is ambiguous (it matches ${found
    .map((r) => `${r.apiVersion} ${display(r)}`)
    .join(', ')}); give apiVersion and namespace`;
}

/** `{apiVersion, kind, namespace?, name}`: a reference as scenario expectations see it. */
function referenceView(r) {
  const view = { apiVersion: r.apiVersion, kind: r.kind };
  if (r.namespace != null) view.namespace = r.namespace;
  view.name = r.name;
  return view;
}

function eventView(e) {
  return {
    regarding: referenceView(e.regarding),
    type: e.eventType === 'warning' ? 'Warning' : 'Normal',
    reason: e.reason,
    message: e.message,
  };
}

function patchView(p) {
  let mergePatch;
  try {
    mergePatch = JSON.parse(p.mergePatch);
  } catch {
    mergePatch = p.mergePatch;
  }
  const view = { target: referenceView(p.target), subresource: p.subresource };
  if (p.resourceVersion != null) view.resourceVersion = p.resourceVersion;
  view.mergePatch = mergePatch;
  return view;
}

function requeueAccepts(expected, millis) {
  const actual = millis === null ? null : BigInt(millis) * 1_000_000n;
  switch (expected.kind) {
    case 'never':
      return actual === null;
    case 'exactly':
      return actual !== null && actual === expected.nanos;
    default:
      return (
        actual !== null &&
        (expected.min === null || actual >= expected.min) &&
        (expected.max === null || actual <= expected.max)
      );
  }
}

function formatNanos(nanos) {
  if (nanos === null) return '-';
  const millis = nanos / 1_000_000n;
  return formatMillis(millis > 0xffffffffffffffffn ? 0xffffffffffffffffn : millis);
}

function requeueText(expected) {
  if (expected.kind === 'never') return 'none';
  if (expected.kind === 'exactly') return formatNanos(expected.nanos);
  return `between ${formatNanos(expected.min)} and ${formatNanos(expected.max)}`;
}

/**
 * Runs `scenario` against `policy` (`{metadata, reconcile(request)}`). Stops after the first
 * step with a failure. Returns `{name, failures: [{step, message}], records: [{step, trigger,
 * result: {ok: response} | {error: message}}]}` (`step` 1-based; 0 = setup).
 */
export function runScenario(scenario, policy) {
  const outcome = { name: scenario.name, failures: [], records: [] };
  const world = new World();
  const setupFailure = (message) => outcome.failures.push({ step: 0, message });

  let settings;
  try {
    settings = mergeSettings(policy.metadata.defaultSettings, scenario.settings);
  } catch (e) {
    setupFailure(e.message);
    return outcome;
  }
  const first = scenario.steps[0];
  if (first === undefined) {
    setupFailure('the scenario has no steps');
    return outcome;
  }
  if (first.at === null) {
    setupFailure('the first step needs `at` (an RFC 3339 time)');
    return outcome;
  }
  let now = first.at;
  for (const [i, manifest] of scenario.objects.entries()) {
    try {
      world.apply(manifest, now);
    } catch (e) {
      setupFailure(`objects[${i}]: ${e.message}`);
      return outcome;
    }
  }
  for (const [index, step] of scenario.steps.entries()) {
    const number = index + 1;
    if (step.at !== null && step.after !== null) {
      outcome.failures.push({ step: number, message: 'give `at` or `after`, not both' });
      break;
    }
    if (step.at !== null) now = step.at;
    else if (step.after !== null) now += step.after;
    const failures = runStep(outcome, world, number, step, now, policy, settings);
    if (failures.length > 0) {
      outcome.failures.push(...failures);
      if (number < scenario.steps.length) {
        outcome.failures.push({ step: number, message: `steps ${number + 1}.. skipped` });
      }
      break;
    }
  }
  return outcome;
}

/**
 * Checks that the reconcile of `trigger` whose patches `world` just took settled it, as the Rust
 * host does (runner.rs `settled`): called again at the same time, the policy writes nothing
 * more. The second call runs on a copy of the world and changes no record. Returns the failure
 * message, or null.
 */
function settled(policy, world, trigger, now, settings) {
  let again;
  try {
    again = reconcileRounds(
      (request) => policy.reconcile(request),
      (ref) => world.get(ref),
      trigger,
      now,
      settings,
    );
  } catch (e) {
    return `reconciling ${display(trigger)} again right after its own patches failed: ${e.message}`;
  }
  const after = world.copy();
  let error = null;
  try {
    after.applyResponse(again.patches);
  } catch (e) {
    error = e;
  }
  for (const patch of again.patches) {
    if (!equalJson(world.get(patch.target), after.get(patch.target))) {
      return (
        `not settled: reconciled again right after its own patches, ${display(trigger)} writes ` +
        `${display(patch.target)} again (a response must settle its trigger: see \`reconcile\` in policy.wit)`
      );
    }
  }
  return error === null
    ? null
    : `reconciling ${display(trigger)} again right after its own patches: ${error.message}`;
}

/** Equal JSON values (absent equals absent). */
function equalJson(a, b) {
  return canonical(a) === canonical(b);
}

function runStep(outcome, world, number, step, now, policy, settings) {
  const fail = (message) => [{ step: number, message }];
  for (const manifest of step.apply) {
    try {
      world.apply(manifest, now);
    } catch (e) {
      return fail(`apply: ${e.message}`);
    }
  }
  for (const selector of step.delete) {
    let ref;
    try {
      ref = locate(world, selector);
    } catch (e) {
      return fail(`delete: ${e}`);
    }
    if (ref === null) return fail(`delete: ${displaySelector(selector)} does not exist`);
    world.delete(ref);
  }
  let triggers;
  try {
    triggers = triggersOf(world, step, policy);
  } catch (e) {
    return fail(`reconcile: ${e}`);
  }

  const failures = [];
  const firstRecord = outcome.records.length;
  for (const trigger of triggers) {
    let result;
    try {
      const response = reconcileRounds(
        (request) => policy.reconcile(request),
        (ref) => world.get(ref),
        trigger,
        epochMillis(now),
        settings,
      );
      result = { ok: response };
      let applied = true;
      try {
        world.applyResponse(response.patches);
      } catch (e) {
        applied = false;
        failures.push({
          step: number,
          message: `applying the patches of the reconcile of ${display(trigger)}: ${e.message}`,
        });
      }
      if (applied && response.patches.length > 0) {
        const unsettled = settled(policy, world, trigger, epochMillis(now), settings);
        if (unsettled !== null) failures.push({ step: number, message: unsettled });
      }
    } catch (e) {
      result = { error: e.message };
      if (step.expect.error === null) {
        failures.push({ step: number, message: `the reconcile of ${display(trigger)} failed: ${e.message}` });
      }
    }
    outcome.records.push({ step: number, trigger, result });
  }
  const records = outcome.records.slice(firstRecord);
  for (const message of check(world, step.expect, records)) failures.push({ step: number, message });
  return failures;
}

/** The step's triggers: those it names, or every object of every trigger kind. */
function triggersOf(world, step, policy) {
  if (step.reconcile !== null) {
    return step.reconcile.map((s) => {
      const ref = locate(world, s);
      if (ref === null) throw `${displaySelector(s)} does not exist`;
      return ref;
    });
  }
  const refs = world.objects().map(([ref]) => ref);
  return policy.metadata.triggers.flatMap((kind) => {
    const group = groupOf(kind.apiVersion);
    return refs.filter((r) => r.kind === kind.kind && groupOf(r.apiVersion) === group);
  });
}

/** Checks a step's expectations; returns the failure messages. */
function check(world, expect, records) {
  const failures = [];
  for (const expected of expect.objects) {
    const text = (v) => (typeof v === 'string' ? v : null);
    const metadata = isObject(expected) && isObject(expected.metadata) ? expected.metadata : {};
    const kind = isObject(expected) ? text(expected.kind) : null;
    const name = text(metadata.name);
    if (kind === null) {
      failures.push('expect.objects: an expected object needs `kind`');
      continue;
    }
    if (name === null) {
      failures.push('expect.objects: an expected object needs `metadata.name`');
      continue;
    }
    const selector = { apiVersion: text(expected.apiVersion), kind, namespace: text(metadata.namespace), name };
    let ref;
    try {
      ref = locate(world, selector);
    } catch (e) {
      failures.push(`expect.objects: ${e}`);
      continue;
    }
    if (ref === null) {
      failures.push(`expected object ${displaySelector(selector)} does not exist`);
      continue;
    }
    const found = mismatches(expected, world.get(ref) ?? null);
    if (found.length > 0) {
      failures.push(`object ${displaySelector(selector)} does not match:\n  ${found.join('\n  ')}`);
    }
  }
  for (const selector of expect.absent) {
    try {
      const ref = locate(world, selector);
      if (ref !== null) failures.push(`${display(ref)} exists, but should be absent`);
    } catch (e) {
      failures.push(`expect.absent: ${e}`);
    }
  }
  if (expect.requeueAfter !== null) {
    const last = records.at(-1);
    if (last === undefined) failures.push('expect.requeueAfter: no reconcile ran in this step');
    else if (last.result.error !== undefined) failures.push('expect.requeueAfter: the last reconcile failed');
    else if (!requeueAccepts(expect.requeueAfter, last.result.ok.requeueAfterMillis)) {
      const got = last.result.ok.requeueAfterMillis;
      failures.push(
        `expected requeueAfter ${requeueText(expect.requeueAfter)}, got ${got === null ? 'none' : formatMillis(got)}`,
      );
    }
  }
  const responses = records.filter((r) => r.result.ok !== undefined).map((r) => r.result.ok);
  if (expect.events !== null) {
    const actual = responses.flatMap((r) => r.events).map(eventView);
    const found = mismatches(expect.events, actual);
    if (found.length > 0) failures.push(`events do not match:\n  ${found.join('\n  ')}`);
  }
  if (expect.patches !== null) {
    const patches = responses.flatMap((r) => r.patches).map(patchView);
    if (patches.length !== expect.patches) {
      failures.push(`expected ${expect.patches} patches, got ${patches.length}:\n${canonical(patches)}`);
    }
  }
  if (expect.error !== null) {
    const errors = records.filter((r) => r.result.error !== undefined).map((r) => r.result.error);
    if (!errors.some((e) => e.includes(expect.error))) {
      const got = errors.length === 0 ? 'every reconcile succeeded' : `got: ${errors.join('; ')}`;
      failures.push(`expected a reconcile error containing ${JSON.stringify(expect.error)}; ${got}`);
    }
  }
  return failures;
}

// ---- the patch stream -----------------------------------------------------------------------

function streamRef(r) {
  return { apiVersion: r.apiVersion, kind: r.kind, namespace: r.namespace ?? null, name: r.name };
}

/** The patch-stream line (docs/embedding.md) of one record of the scenario at `file`. */
export function streamLine(file, record) {
  const ok = record.result.ok;
  const line = {
    file,
    step: record.step - 1,
    trigger: streamRef(record.trigger),
    patches: (ok?.patches ?? []).map((p) => {
      let mergePatch;
      try {
        mergePatch = JSON.parse(p.mergePatch);
      } catch {
        mergePatch = p.mergePatch;
      }
      return {
        target: streamRef(p.target),
        subresource: p.subresource,
        mergePatch,
        resourceVersion: p.resourceVersion ?? null,
      };
    }),
    events: (ok?.events ?? []).map((e) => ({
      regarding: streamRef(e.regarding),
      type: e.eventType === 'warning' ? 'Warning' : 'Normal',
      reason: e.reason,
      message: e.message,
    })),
    requeueAfterMillis: ok?.requeueAfterMillis ?? null,
    error: record.result.error ?? null,
  };
  return canonical(line);
}

// Loads a capt:policy component in Node.js with jco, the way a JavaScript user would embed it:
// `jco transpile` turns the component into an ES module plus core wasm modules; the module's
// `instantiate(getCoreModule, imports)` takes our implementation of the one import,
// `capt:policy/log`, and returns the `capt:policy/reconciler` exports.
//
// Like the Rust host, every call runs in a fresh instance (core modules are compiled once), so
// no state survives a call, and a trap never poisons the next call.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { componentWit, transpile } from '@bytecodealliance/jco';

const CONTRACT_VERSION = '0.1.0';
const LOG_IMPORT = 'capt:policy/log';
const RECONCILER_EXPORT = 'capt:policy/reconciler';

/** Log levels of `capt:policy/log`, lowest first. */
export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/** Limits mirrored from the Rust host's defaults (host/runtime/src/engine.rs). */
export const LIMITS = {
  responseBytes: 4 << 20,
  logMessageBytes: 4 << 10,
  logRecords: 256,
};

/** Why a call failed, with the Rust host's wording (host/core/src/policy.rs). `rejected` carries
 * the contract's `error` variant. */
export class PolicyError extends Error {
  constructor(kind, message, detail) {
    super(message);
    this.kind = kind;
    this.detail = detail;
  }
}

const ERROR_PREFIX = {
  'invalid-input': 'invalid input',
  'unsupported-kind': 'unsupported kind',
  internal: 'internal error',
};

/** A loaded policy: `metadata` (read once) and `reconcile(request)`, one round. */
export class WasmPolicy {
  /**
   * Transpiles and compiles the component `bytes`.
   * @param {Uint8Array} bytes the component
   * @param {{logLevel?: string, log?: (level: string, message: string) => void}} options
   *   records at or above `logLevel` (default `warn`) go to `log` (default: stderr)
   */
  static async load(bytes, options = {}) {
    checkWorld(await componentWit(bytes));
    const { files } = await transpile(bytes, {
      name: 'policy',
      instantiation: 'sync',
      noTypescript: true,
      quiet: true,
    });
    // The generated ES module must be imported from a file: write it to a temporary directory,
    // import it, and remove the directory again (the module stays loaded).
    const dir = mkdtempSync(join(tmpdir(), 'capt-policy-jco-'));
    let generated;
    try {
      for (const [name, content] of Object.entries(files)) {
        if (name.endsWith('.js')) writeFileSync(join(dir, name), content);
      }
      generated = await import(pathToFileURL(join(dir, 'policy.js')).href);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const modules = new Map();
    for (const [name, content] of Object.entries(files)) {
      if (name.endsWith('.wasm')) modules.set(name, new WebAssembly.Module(content));
    }
    const policy = new WasmPolicy(generated.instantiate, modules, options);
    policy.metadata = policy.#call((reconciler, state) => {
      try {
        return reconciler.metadata();
      } catch (e) {
        throw classify(e, state, 'metadata');
      }
    });
    return policy;
  }

  constructor(instantiate, modules, options) {
    this.instantiate = instantiate;
    this.modules = modules;
    this.threshold = LEVELS.indexOf(options.logLevel ?? 'warn');
    if (this.threshold < 0) throw new Error(`unknown log level ${options.logLevel}`);
    this.sink = options.log ?? ((level, message) => process.stderr.write(`policy ${level}: ${message}\n`));
  }

  /** Calls `reconcile` once (one round), in a fresh instance, with a request in the model of
   * this host: `{trigger, nowEpochMillis: bigint, objects: [{ref, manifest}], missing,
   * settings}` (object references `{apiVersion, kind, namespace: string|null, name}`). Returns
   * the response `{patches, events, requeueAfterMillis: bigint|null, requirements}` or throws
   * a PolicyError. */
  reconcile(request) {
    return this.#call((reconciler, state) => this.#reconcileIn(reconciler, state, request));
  }

  /** One instance for many calls (for benchmarks: the runner never reuses an instance). */
  instance() {
    const state = { left: LIMITS.logRecords, lastError: null };
    const reconciler = this.#instantiate(state);
    return {
      reconcile: (request) => {
        state.left = LIMITS.logRecords;
        return this.#reconcileIn(reconciler, state, request);
      },
    };
  }

  #reconcileIn(reconciler, state, request) {
    let response;
    try {
      response = reconciler.reconcile(requestToWit(request));
    } catch (e) {
      const variant = e?.payload;
      if (variant && typeof variant.tag === 'string' && Object.hasOwn(ERROR_PREFIX, variant.tag)) {
        throw new PolicyError(
          'rejected',
          `the policy rejected the request: ${ERROR_PREFIX[variant.tag]}: ${variant.val}`,
          variant,
        );
      }
      throw classify(e, state, 'reconcile');
    }
    const result = responseFromWit(response);
    const size = responseTextBytes(result);
    if (size > LIMITS.responseBytes) {
      throw new PolicyError(
        'response_too_large',
        `the policy's response is too large (${size} bytes of text; limit: ${LIMITS.responseBytes})`,
      );
    }
    return result;
  }

  /** `f(reconciler, state)` on a fresh instance with a fresh log budget. */
  #call(f) {
    const state = { left: LIMITS.logRecords, lastError: null };
    return f(this.#instantiate(state), state);
  }

  #instantiate(state) {
    const log = (level, message) => this.#log(state, level, message);
    const imports = { 'capt:policy/log': { log }, 'capt:policy/log@0.1.0': { log } };
    try {
      const root = this.instantiate((name) => this.modules.get(name), imports);
      return root['capt:policy/reconciler@0.1.0'] ?? root.reconciler;
    } catch (e) {
      throw new PolicyError('instantiate', `the policy could not be instantiated: ${e.message}`);
    }
  }

  #log(state, level, message) {
    if (state.left === 0) return;
    state.left -= 1;
    const text = truncateUtf8(message, LIMITS.logMessageBytes);
    if (level === 'error') state.lastError = text;
    if (LEVELS.indexOf(level) >= this.threshold) this.sink(level, text);
    if (state.left === 0 && LEVELS.indexOf('warn') >= this.threshold) {
      this.sink('warn', 'log budget of this call spent; further records dropped');
    }
  }
}

/** Sorts a failure of a call the way the Rust host does: a trap (with the guest's last
 * error-level log, its panic message), or a value the bindings could not read. */
function classify(e, state, what) {
  if (e instanceof PolicyError) return e;
  if (e instanceof WebAssembly.RuntimeError || e instanceof RangeError) {
    const logged = state.lastError === null ? '' : ` after logging: ${state.lastError}`;
    return new PolicyError('trap', `the policy trapped${logged}: ${e.message}`);
  }
  return new PolicyError('malformed', `the policy returned a malformed value from ${what}: ${e.message}`);
}

/** `name` is `interface@x.y.z` with the contract's major version (and minor, while it is 0). */
function compatible(name, iface) {
  const m = /^([^@]+)@(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(name);
  if (!m || m[1] !== iface) return false;
  const [major, minor] = [Number(m[2]), Number(m[3])];
  const [ourMajor, ourMinor] = CONTRACT_VERSION.split('.').map(Number);
  return major === ourMajor && (major !== 0 || minor === ourMinor);
}

/** Checks the component's imports and exports (read from its WIT: jco's own import list drops
 * versions) against the contract, like capt-host. */
function checkWorld(wit) {
  const items = (kind) =>
    [...String(wit).matchAll(new RegExp(`^\\s*${kind}\\s+([^;\\s{]+)`, 'gm'))].map((m) => m[1]);
  const imports = items('import');
  const exports = items('export');
  for (const name of imports) {
    if (!compatible(name, LOG_IMPORT)) {
      throw new Error(`the component imports \`${name}\`, but a policy may import only \`${LOG_IMPORT}@0.1.x\``);
    }
  }
  const reconciler = exports.find((name) => name.split('@')[0] === RECONCILER_EXPORT);
  if (reconciler === undefined) {
    throw new Error(`the component does not export \`${RECONCILER_EXPORT}\` (its exports: ${exports.join(', ') || 'none'})`);
  }
  if (!compatible(reconciler, RECONCILER_EXPORT)) {
    throw new Error(`the component exports \`${reconciler}\`, but this host runs \`${RECONCILER_EXPORT}@0.1.x\``);
  }
}

/** `text` cut to at most `max` UTF-8 bytes, at a character boundary. */
function truncateUtf8(text, max) {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return text;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end).toString('utf8');
}

// ---- conversions between this host's model and jco's representation of the WIT types ------
// jco: records are objects with camelCase fields, `option<T>` is T | undefined, enums are their
// case names as strings, `s64`/`u64` are BigInts, `result` errors are thrown as ComponentError
// whose `payload` is the variant `{tag, val}`.

function refToWit(ref) {
  const wit = { apiVersion: ref.apiVersion, kind: ref.kind, name: ref.name };
  if (ref.namespace != null) wit.namespace = ref.namespace;
  return wit;
}

function refFromWit(ref) {
  return { apiVersion: ref.apiVersion, kind: ref.kind, namespace: ref.namespace ?? null, name: ref.name };
}

function requestToWit(request) {
  return {
    trigger: refToWit(request.trigger),
    nowEpochMillis: BigInt(request.nowEpochMillis),
    objects: request.objects.map((o) => ({ ref: refToWit(o.ref), manifest: o.manifest })),
    missing: request.missing.map(refToWit),
    settings: request.settings,
  };
}

function responseFromWit(response) {
  return {
    patches: response.patches.map((p) => ({
      target: refFromWit(p.target),
      subresource: p.subresource,
      mergePatch: p.mergePatch,
      resourceVersion: p.resourceVersion ?? null,
    })),
    events: response.events.map((e) => ({
      regarding: refFromWit(e.regarding),
      eventType: e.eventType,
      reason: e.reason,
      message: e.message,
    })),
    requeueAfterMillis: response.requeueAfterMillis ?? null,
    requirements: response.requirements.map(refFromWit),
  };
}

/** Bytes of text a response carries (the Rust host's `response_text_bytes`). */
function responseTextBytes(response) {
  const len = (s) => Buffer.byteLength(s ?? '', 'utf8');
  const ref = (r) => len(r.apiVersion) + len(r.kind) + len(r.name) + len(r.namespace);
  let total = 0;
  for (const p of response.patches) total += ref(p.target) + len(p.mergePatch) + len(p.resourceVersion);
  for (const e of response.events) total += ref(e.regarding) + len(e.reason) + len(e.message);
  for (const r of response.requirements) total += ref(r);
  return total;
}

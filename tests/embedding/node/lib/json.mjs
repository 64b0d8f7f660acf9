// JSON values as the Rust host (serde_json without `preserve_order`) treats them: RFC 7396
// merge, structural equality, canonical text with keys in code-point order, and the partial
// matcher of scenario expectations (host/core/src/scenario/matching.rs).
//
// Limitation of JavaScript: every JSON number is an IEEE double, so `1` and `1.0` are the same
// value here (serde_json keeps them apart in equality, not in matching). The capt-status
// scenarios and policy use integers only.

/** True for a JSON object (not an array, not null). */
export function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Sets `key` as an own property, even `__proto__`. */
export function setKey(object, key, value) {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Own property lookup: `undefined` when absent (never an inherited member). */
export function getKey(object, key) {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

/** A deep copy of a JSON value. */
export function clone(value) {
  return structuredClone(value);
}

/** RFC 7396 JSON merge patch of `patch` into `target`, in place when `target` is an object;
 * returns the merged value (json_patch::merge). */
export function merge(target, patch) {
  if (!isObject(patch)) return clone(patch);
  const doc = isObject(target) ? target : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete doc[key];
    } else {
      setKey(doc, key, merge(getKey(doc, key) ?? null, value));
    }
  }
  return doc;
}

/** Structural equality of two JSON values (key order ignored). */
export function equal(a, b) {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => equal(x, b[i]));
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    return keys.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]));
  }
  return false;
}

const SURROGATE = /[\ud800-\udfff]/;

/** Orders strings by Unicode code point (= UTF-8 byte order, Rust's `String` order). */
export function compareStrings(a, b) {
  if (a === b) return 0;
  if (!SURROGATE.test(a) && !SURROGATE.test(b)) return a < b ? -1 : 1;
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** Compact JSON text with object keys in code-point order: what serde_json's
 * `Value::to_string()` prints for the same value (integers; see the limitation above). */
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort(compareStrings);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value ?? null);
}

// ---- partial matching (matching.rs) ---------------------------------------------------------

/** Every way `actual` (undefined = absent) fails to match `expected`; empty when it matches.
 * Maps match as subsets, lists element-to-distinct-element in any order, `null` = absent (and
 * so is a map of nothing but `null`s). */
export function mismatches(expected, actual) {
  const out = [];
  collect(out, '', expected, actual);
  return out;
}

/** True when `actual` matches `expected`. */
export function matches(expected, actual) {
  return mismatches(expected, actual).length === 0;
}

/** True when an absent value matches `expected`: `null`, or a non-empty map whose values all
 * match an absent value (`status: {ready: null}` matches an object without a status). */
function absentMatches(expected) {
  if (expected === null) return true;
  return isObject(expected) && Object.keys(expected).length > 0 && Object.values(expected).every(absentMatches);
}

function collect(out, path, expected, actual) {
  const at = path === '' ? '.' : path;
  if (expected === null) {
    if (actual !== undefined && actual !== null) {
      out.push(`at ${at}: expected no value, got ${short(actual)}`);
    }
    return;
  }
  if (actual === undefined) {
    if (!absentMatches(expected)) out.push(`at ${at}: missing, expected ${short(expected)}`);
    return;
  }
  if (isObject(expected) && isObject(actual)) {
    for (const [key, value] of Object.entries(expected)) {
      collect(out, `${path}.${key}`, value, getKey(actual, key));
    }
    return;
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    const assignment = assign(expected, actual);
    expected.forEach((element, i) => {
      if (assignment[i] !== null) return;
      const candidates = actual.filter((a) => matches(element, a)).length;
      out.push(
        candidates === 0
          ? `at ${at}: no element matches expected element [${i}] ${short(element)}`
          : `at ${at}: expected element [${i}] ${short(element)} only matches elements already matched by others`,
      );
    });
    return;
  }
  if (scalarEqual(expected, actual)) return;
  out.push(`at ${at}: expected ${short(expected)}, got ${short(actual)}`);
}

function scalarEqual(expected, actual) {
  if (isObject(expected) || Array.isArray(expected)) return false;
  return expected === actual;
}

/** For each expected element, the distinct actual element it is matched to (or null): a
 * maximum bipartite matching by augmenting paths, as in matching.rs. */
function assign(expected, actual) {
  const fits = expected.map((e) => actual.map((a) => matches(e, a)));
  const owner = new Array(actual.length).fill(null);
  const augment = (e, visited) => {
    for (let a = 0; a < actual.length; a++) {
      if (fits[e][a] && !visited[a]) {
        visited[a] = true;
        if (owner[a] === null || augment(owner[a], visited)) {
          owner[a] = e;
          return true;
        }
      }
    }
    return false;
  };
  for (let e = 0; e < expected.length; e++) augment(e, new Array(actual.length).fill(false));
  const assignment = new Array(expected.length).fill(null);
  owner.forEach((e, a) => {
    if (e !== null) assignment[e] = a;
  });
  return assignment;
}

/** A value on one line, cut to 120 characters. */
export function short(value) {
  const text = canonical(value);
  const chars = [...text];
  return chars.length <= 120 ? text : `${chars.slice(0, 120).join('')}...`;
}

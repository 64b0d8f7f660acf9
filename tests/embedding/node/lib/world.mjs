// An in-memory API server with the write rules of the Rust host's `World` (host/core/src/world.rs):
// - writes are JSON merge patches (RFC 7396);
// - a status patch changes only `status`; a main patch never changes `status`;
// - a change to anything but `metadata` and `status` bumps `metadata.generation`;
// - every write that changes something takes the next value of one global resourceVersion
//   counter; a write that changes nothing keeps the version;
// - a stale resourceVersion precondition is a conflict; patches of one response on one object
//   are chained (each conditioned on the version its predecessor produced);
// - server-managed metadata cannot be written; creating fills whichever is missing.
// Objects are keyed by (API group, kind, namespace, name): versions of a group are one object.

import { canonical, clone, compareStrings, equal, isObject, merge } from './json.mjs';
import { formatTime } from './time.mjs';

const SERVER_MANAGED = ['uid', 'creationTimestamp', 'resourceVersion', 'generation', 'name', 'namespace'];

/** The API group of an apiVersion (`""` for the core group `v1`). */
export function groupOf(apiVersion) {
  const i = apiVersion.lastIndexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

/** `Kind/namespace/name`, or `Kind/name` when cluster-scoped. */
export function display(ref) {
  return ref.namespace == null ? `${ref.kind}/${ref.name}` : `${ref.kind}/${ref.namespace}/${ref.name}`;
}

/** True when both references name the same object (versions of one group are one object). */
export function sameObject(a, b) {
  return (
    a.kind === b.kind &&
    a.name === b.name &&
    (a.namespace ?? null) === (b.namespace ?? null) &&
    groupOf(a.apiVersion) === groupOf(b.apiVersion)
  );
}

export class WorldError extends Error {}

/** The identity inside a manifest; throws a WorldError if it has none. */
export function objectRefOf(manifest) {
  if (!isObject(manifest)) {
    throw new WorldError(`invalid manifest: not a mapping: ${canonical(manifest)}`);
  }
  const metadata = isObject(manifest.metadata) ? manifest.metadata : {};
  const field = (value, path) => {
    if (typeof value !== 'string' || value === '') {
      throw new WorldError(`invalid manifest: \`${path}\` is missing or not a string`);
    }
    return value;
  };
  return {
    apiVersion: field(manifest.apiVersion, 'apiVersion'),
    kind: field(manifest.kind, 'kind'),
    namespace: typeof metadata.namespace === 'string' ? metadata.namespace : null,
    name: field(metadata.name, 'metadata.name'),
  };
}

function keyOf(ref) {
  return JSON.stringify([groupOf(ref.apiVersion), ref.kind, ref.namespace ?? null, ref.name]);
}

/** Rust's derived order of `Key { group, kind, namespace: Option<String>, name }`. */
function compareKeys(a, b) {
  const [ga, ka, na, ma] = JSON.parse(a);
  const [gb, kb, nb, mb] = JSON.parse(b);
  return (
    compareStrings(ga, gb) ||
    compareStrings(ka, kb) ||
    (na === nb ? 0 : na === null ? -1 : nb === null ? 1 : compareStrings(na, nb)) ||
    compareStrings(ma, mb)
  );
}

function resourceVersion(manifest) {
  const v = isObject(manifest.metadata) ? manifest.metadata.resourceVersion : undefined;
  return typeof v === 'string' ? v : '';
}

function metadataOf(manifest) {
  if (!isObject(manifest.metadata)) manifest.metadata = {};
  return manifest.metadata;
}

function withoutMetadataAndStatus(manifest) {
  const { metadata: _m, status: _s, ...rest } = manifest;
  return rest;
}

/** `target` with its `status` replaced by `source`'s (removed if `source` has none). */
function withStatusOf(target, source) {
  if (Object.hasOwn(source, 'status')) target.status = clone(source.status);
  else delete target.status;
  return target;
}

export class World {
  constructor() {
    /** @type {Map<string, object>} key -> manifest */
    this.store = new Map();
    this.resourceVersion = 0n;
    this.uids = 0n;
  }

  /** Creates the object, or merges `manifest` into the existing one (status included).
   * `now` is BigInt nanoseconds (for `creationTimestamp`). Returns the object's reference. */
  apply(manifest, now) {
    const ref = objectRefOf(manifest);
    const key = keyOf(ref);
    const old = this.store.get(key);
    if (old !== undefined) {
      this.#commit(key, merge(clone(old), manifest));
    } else {
      this.#create(key, clone(manifest), now);
    }
    return ref;
  }

  /** An independent copy: writes to either leave the other alone. */
  copy() {
    const copy = new World();
    for (const [key, manifest] of this.store) copy.store.set(key, clone(manifest));
    copy.resourceVersion = this.resourceVersion;
    copy.uids = this.uids;
    return copy;
  }

  /** Deletes the object; false if it did not exist. */
  delete(ref) {
    return this.store.delete(keyOf(ref));
  }

  /** The object's manifest, or undefined. */
  get(ref) {
    return this.store.get(keyOf(ref));
  }

  /** Every object as `[reference (stored apiVersion), manifest]`, in key order. */
  objects() {
    return [...this.store.keys()].sort(compareKeys).map((key) => {
      const manifest = this.store.get(key);
      const [, kind, namespace, name] = JSON.parse(key);
      const apiVersion = typeof manifest.apiVersion === 'string' ? manifest.apiVersion : '';
      return [{ apiVersion, kind, namespace, name }, manifest];
    });
  }

  /** Applies one patch `{target, subresource, mergePatch, resourceVersion}` if the object is at
   * `precondition` (when not null). Returns the resourceVersion after the patch. */
  patch(patch, precondition) {
    const target = patch.target;
    const key = keyOf(target);
    let mergePatch;
    try {
      mergePatch = JSON.parse(patch.mergePatch);
    } catch (e) {
      throw new WorldError(`invalid merge patch for ${display(target)}: ${e.message}`);
    }
    if (!isObject(mergePatch)) {
      throw new WorldError(`invalid merge patch for ${display(target)}: not a JSON object`);
    }
    const old = this.store.get(key);
    if (old === undefined) throw new WorldError(`${display(target)} not found`);
    const actual = resourceVersion(old);
    if (precondition != null && precondition !== actual) {
      throw new WorldError(
        `conflict: the patch of ${display(target)} requires resourceVersion ${precondition}, but the object is at ${actual}`,
      );
    }
    const merged = merge(clone(old), mergePatch);
    const next =
      patch.subresource === 'status' ? withStatusOf(clone(old), merged) : withStatusOf(merged, old);
    return this.#commit(key, next);
  }

  /** Applies the patches of one response in order, chaining preconditions on one object.
   * Stops at the first failure (earlier patches stay applied). */
  applyResponse(patches) {
    const produced = new Map();
    for (const patch of patches) {
      const key = keyOf(patch.target);
      const precondition =
        patch.resourceVersion == null ? null : (produced.get(key) ?? patch.resourceVersion);
      produced.set(key, this.patch(patch, precondition));
    }
  }

  #create(key, manifest, now) {
    const given = isObject(manifest.metadata) ? manifest.metadata.resourceVersion : undefined;
    if (typeof given === 'string' && /^\+?\d+$/.test(given)) {
      const value = BigInt(given);
      if (value <= 0xffffffffffffffffn && value > this.resourceVersion) this.resourceVersion = value;
    }
    this.uids += 1n;
    const uid = `00000000-0000-0000-0000-${this.uids.toString(16).padStart(12, '0')}`;
    this.resourceVersion += 1n;
    const metadata = metadataOf(manifest);
    const defaults = [
      ['uid', uid],
      ['resourceVersion', this.resourceVersion.toString()],
      ['generation', 1],
      ['creationTimestamp', formatTime(now)],
    ];
    for (const [field, value] of defaults) {
      if (!Object.hasOwn(metadata, field)) metadata[field] = value;
    }
    this.store.set(key, manifest);
  }

  #commit(key, next) {
    const old = this.store.get(key);
    const oldMetadata = isObject(old.metadata) ? old.metadata : {};
    const metadata = metadataOf(next);
    for (const field of SERVER_MANAGED) {
      if (Object.hasOwn(oldMetadata, field)) metadata[field] = clone(oldMetadata[field]);
      else delete metadata[field];
    }
    if (equal(next, old)) return resourceVersion(old);
    if (!equal(withoutMetadataAndStatus(next), withoutMetadataAndStatus(old))) {
      const generation = oldMetadata.generation;
      const current = Number.isInteger(generation) ? generation : 0;
      metadata.generation = current + 1;
    }
    this.resourceVersion += 1n;
    const version = this.resourceVersion.toString();
    metadata.resourceVersion = version;
    this.store.set(key, next);
    return version;
  }
}

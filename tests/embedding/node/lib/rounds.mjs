// The requirement-round protocol of `reconciler.reconcile` (policy.wit; host/core/src/rounds.rs).

import { canonical, isObject, merge } from './json.mjs';
import { display, sameObject } from './world.mjs';

/** The most calls one reconcile may take. */
export const MAX_ROUNDS = 8;

/** Why a reconcile (all its rounds) failed; `message` is the Rust host's error chain. */
export class RoundError extends Error {}

/**
 * Reconciles `trigger`: calls the policy with the trigger alone, then, while the response lists
 * requirements, fetches each one from `source` (`ref -> manifest object | undefined`) into
 * `objects` or `missing` and calls again, at most MAX_ROUNDS times.
 * @param {(request: object) => object} call the policy's reconcile, one round
 * @param {(request: object) => void} [onRequest] sees every request sent (for benchmarks)
 * @returns the final response (no requirements left)
 */
export function reconcile(call, source, trigger, nowEpochMillis, settings, onRequest) {
  const fetch = (ref) => {
    const manifest = source(ref);
    return manifest === undefined ? undefined : canonical(manifest);
  };
  const manifest = fetch(trigger);
  if (manifest === undefined) throw new RoundError(`the trigger ${display(trigger)} does not exist`);
  const request = {
    trigger,
    nowEpochMillis,
    objects: [{ ref: trigger, manifest }],
    missing: [],
    settings,
  };
  for (let round = 1; ; round++) {
    onRequest?.(request);
    let response;
    try {
      response = call(request);
    } catch (e) {
      throw new RoundError(`the policy failed in round ${round}: ${e.message}`, { cause: e });
    }
    if (response.requirements.length === 0) return response;
    if (round === MAX_ROUNDS) {
      const pending = response.requirements.map(display).join(', ');
      throw new RoundError(`the policy still requires ${pending} after ${MAX_ROUNDS} rounds`);
    }
    for (const ref of response.requirements) {
      const known = [...request.objects.map((o) => o.ref), ...request.missing].some((r) => sameObject(r, ref));
      if (known) continue;
      const found = fetch(ref);
      if (found === undefined) request.missing.push(ref);
      else request.objects.push({ ref, manifest: found });
    }
  }
}

/** The policy's default settings merged (RFC 7396) with `overrides`, as JSON text. */
export function mergeSettings(defaultSettings, overrides) {
  let settings;
  try {
    settings = JSON.parse(defaultSettings);
  } catch (e) {
    throw new RoundError(`invalid settings: the policy's default settings: ${e.message}`);
  }
  if (!isObject(settings)) {
    throw new RoundError("invalid settings: the policy's default settings are not a JSON object");
  }
  if (overrides !== undefined && overrides !== null) {
    if (!isObject(overrides)) {
      throw new RoundError(`invalid settings: the overrides are not an object: ${canonical(overrides)}`);
    }
    settings = merge(settings, overrides);
  }
  return canonical(settings);
}

//! Applying a policy response's patches, in order, each a JSON merge patch carrying the
//! resourceVersion precondition the contract asks for.
//!
//! For each patch:
//! 1. The object as this response knows it (the manifest handed to the policy, or what the
//!    previous patch of this response on the same object returned) is patched locally; when
//!    the patch changes nothing there (only `status` counts for a status patch, everything but
//!    `status` for a main patch), it is skipped: no request.
//! 2. Otherwise the precondition is the guest's `resource-version`, or, when an earlier patch
//!    of this response wrote the same object, the version that patch returned (chaining). It
//!    goes into `metadata.resourceVersion` of the body, where the API server checks it.
//! 3. A status patch of an object another field manager keeps overwriting is held, not sent
//!    ([`Contention`](super::contention::Contention)); the trigger looks again after the
//!    back-off.
//! 4. The leader gate is checked, and the patch is sent to the status subresource or the
//!    object (a status patch of a kind without the subresource goes to the object).
//! 5. While the request is in flight, the [`Dispatcher`](super::dispatch::Dispatcher) holds
//!    the object's changes; the version it produced is the trigger's own write, whose watch
//!    event (its echo) does not reconcile the trigger again.
//!
//! The first failure stops the response: a 409 Conflict is [`ReconcileError::Conflict`] (the
//! trigger is reconciled again from fresh data, never overwritten blindly); anything else is
//! [`ReconcileError::Write`].

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use capt_policy::{Patch, Subresource};
use kube::ResourceExt as _;
use kube::api::{Patch as KubePatch, PatchParams};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::{Map, Value};

use super::contention::{self, Verdict};
use super::error::{ReconcileError, Refusal};
use super::gather::Observed;
use super::kinds::ObjectKey;
use super::reconcile::Context;

/// What applying a response did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Patches sent (and accepted).
    pub(crate) writes: usize,
    /// Objects with a patch that was not applied (the failed one and the ones after it).
    pub(crate) unapplied: HashSet<ObjectKey>,
    /// The failure that stopped the response, if any.
    pub(crate) error: Option<ReconcileError>,
    /// When status writes were held because their objects are contested: when to look again.
    pub(crate) retry_in: Option<Duration>,
}

/// What became of one patch.
enum Outcome {
    /// Sent and accepted.
    Written,
    /// Not sent: it changes nothing.
    Unchanged,
    /// Not sent: its object's status is contested
    /// ([`Contention`](super::contention::Contention)); look again after this.
    Held(Duration),
}

/// An object as this response last saw it.
struct Known {
    manifest: Value,
    /// The version a previous patch of this response produced; `None` before any.
    written_version: Option<String>,
}

/// Applies `patches` of `trigger`'s reconcile in order (checked by [`super::output::check`]);
/// `observed` holds the objects the policy was given.
pub(crate) async fn apply(
    ctx: &Context,
    trigger: &ObjectKey,
    patches: &[Patch],
    observed: &HashMap<ObjectKey, Observed>,
) -> Applied {
    let mut applied = Applied::default();
    let mut known: HashMap<ObjectKey, Known> = HashMap::new();
    for (position, patch) in patches.iter().enumerate() {
        match apply_one(ctx, trigger, patch, observed, &mut known).await {
            Ok(Outcome::Written) => applied.writes += 1,
            Ok(Outcome::Unchanged) => {}
            Ok(Outcome::Held(retry_in)) => {
                applied.unapplied.insert(ObjectKey::of(&patch.target));
                applied.retry_in = Some(applied.retry_in.map_or(retry_in, |r| r.min(retry_in)));
            }
            Err(error) => {
                applied.unapplied = patches[position..]
                    .iter()
                    .map(|p| ObjectKey::of(&p.target))
                    .collect();
                applied.error = Some(error);
                break;
            }
        }
    }
    applied
}

/// Applies one patch.
async fn apply_one(
    ctx: &Context,
    trigger: &ObjectKey,
    patch: &Patch,
    observed: &HashMap<ObjectKey, Observed>,
    known: &mut HashMap<ObjectKey, Known>,
) -> Result<Outcome, ReconcileError> {
    let target = &patch.target;
    let key = ObjectKey::of(target);
    let info = ctx
        .cache
        .kinds()
        .get(&key.kind)
        .ok_or_else(|| ReconcileError::RefusedPatch {
            target: target.clone(),
            reason: Refusal::KindNotRead,
        })?
        .clone();
    let merge_patch = match serde_json::from_str(&patch.merge_patch) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Err(invalid(patch, "not a JSON object".into())),
        Err(e) => return Err(invalid(patch, e.to_string())),
    };
    let to_status = patch.subresource == Subresource::Status && info.status_subresource;
    let parsed;
    let base = match known.get(&key) {
        Some(known) => Some(&known.manifest),
        None => {
            parsed = observed
                .get(&key)
                .and_then(|o| serde_json::from_str(&o.manifest).ok());
            parsed.as_ref()
        }
    };
    if let Some(base) = base
        && !changes(base, &merge_patch, to_status, info.status_subresource)
    {
        ctx.metrics.apply.skipped.inc();
        tracing::debug!(target = %target, subresource = label(to_status), "patch skipped: it changes nothing");
        return Ok(Outcome::Unchanged);
    }
    let status_patch = patch.subresource == Subresource::Status;
    if status_patch
        && let Some(base) = base
        && let Verdict::Hold { retry_in, report } = ctx.contention.check(&key, base, Instant::now())
    {
        if let Some(fields) = report {
            contention::report(ctx, &info, target, &fields).await;
        }
        tracing::debug!(target = %target, ?retry_in, "status write held: the object is contested");
        return Ok(Outcome::Held(retry_in));
    }
    let precondition = match (&patch.resource_version, known.get(&key)) {
        (None, _) => None,
        (
            Some(_),
            Some(Known {
                written_version: Some(version),
                ..
            }),
        ) => Some(version.clone()),
        (Some(version), _) => Some(version.clone()),
    };
    let body = with_precondition(merge_patch, precondition);

    if !ctx.gate.is_open() {
        return Err(ReconcileError::NotLeader);
    }
    let api = info.api(&ctx.client, key.namespace.as_deref());
    let params = PatchParams {
        field_manager: Some(ctx.field_manager.clone()),
        ..PatchParams::default()
    };
    let write = ctx.dispatcher.writing(key.clone(), trigger.clone());
    let result = if to_status {
        api.patch_status(&key.name, &params, &KubePatch::Merge(&body))
            .await
    } else {
        api.patch(&key.name, &params, &KubePatch::Merge(&body))
            .await
    };
    match result {
        Ok(written) => {
            ctx.metrics
                .apply
                .patches
                .get_or_create(&SubresourceLabels {
                    subresource: label(to_status),
                })
                .inc();
            tracing::debug!(
                target = %target,
                subresource = label(to_status),
                resource_version = written.resource_version().as_deref().unwrap_or(""),
                "patched"
            );
            write.finish(written.resource_version());
            let manifest = serde_json::from_str(&written.manifest()).unwrap_or(Value::Null);
            if status_patch {
                let cache = &ctx.cache;
                ctx.contention
                    .wrote(&key, &body, &manifest, |k| cache.version(k).is_some());
            }
            known.insert(
                key,
                Known {
                    written_version: written.resource_version(),
                    manifest,
                },
            );
            Ok(Outcome::Written)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            ctx.metrics.apply.conflicts.inc();
            Err(ReconcileError::Conflict {
                target: target.clone(),
            })
        }
        Err(source) => Err(ReconcileError::Write {
            target: target.clone(),
            source,
        }),
    }
}

fn invalid(patch: &Patch, reason: String) -> ReconcileError {
    ReconcileError::InvalidPatch {
        target: patch.target.clone(),
        reason,
    }
}

fn label(to_status: bool) -> &'static str {
    if to_status { "status" } else { "main" }
}

/// True when `patch` changes what the API server would store from `base`: `status` for a
/// status patch; everything else for a main patch (when the kind has a status subresource,
/// the server keeps `status` out of main writes).
fn changes(
    base: &Value,
    patch: &Map<String, Value>,
    to_status: bool,
    status_subresource: bool,
) -> bool {
    let mut patched = base.clone();
    json_patch::merge(&mut patched, &Value::Object(patch.clone()));
    if to_status {
        return patched.get("status") != base.get("status");
    }
    if status_subresource {
        let without_status = |value: &Value| {
            let mut value = value.clone();
            if let Value::Object(fields) = &mut value {
                fields.remove("status");
            }
            value
        };
        return without_status(&patched) != without_status(base);
    }
    patched != *base
}

/// `patch` with `metadata.resourceVersion` set to `version` (when there is one).
fn with_precondition(mut patch: Map<String, Value>, version: Option<String>) -> Value {
    if let Some(version) = version {
        let metadata = patch
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        if let Value::Object(metadata) = metadata {
            metadata.insert("resourceVersion".into(), Value::String(version));
        }
    }
    Value::Object(patch)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubresourceLabels {
    subresource: &'static str,
}

/// Metrics of the writes.
#[derive(Debug)]
pub(crate) struct ApplyMetrics {
    patches: Family<SubresourceLabels, Counter>,
    conflicts: Counter,
    skipped: Counter,
}

impl ApplyMetrics {
    /// Registers `patches_total`, `patch_conflicts_total` and `writes_skipped_total`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            patches: Family::default(),
            conflicts: Counter::default(),
            skipped: Counter::default(),
        };
        registry.register(
            "patches",
            "Patches the API server accepted, by subresource (status or main)",
            metrics.patches.clone(),
        );
        registry.register(
            "patch_conflicts",
            "Patches refused with 409 Conflict (the object changed since it was read)",
            metrics.conflicts.clone(),
        );
        registry.register(
            "writes_skipped",
            "Patches not sent because they change nothing",
            metrics.skipped.clone(),
        );
        metrics
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(fields) => fields,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_status_patch_counts_only_status_changes() {
        let base = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"ready": true}});
        let same = object(json!({"status": {"ready": true}, "spec": {"x": 2}}));
        assert!(!changes(&base, &same, true, true));
        let different = object(json!({"status": {"ready": false}}));
        assert!(changes(&base, &different, true, true));
        // Removing an absent key changes nothing.
        let remove_absent = object(json!({"status": {"failureReason": null}}));
        assert!(!changes(&base, &remove_absent, true, true));
    }

    #[test]
    fn a_main_patch_ignores_status_only_when_the_kind_has_the_subresource() {
        let base = json!({"spec": {"x": 1}, "status": {"ready": true}});
        let status_only = object(json!({"status": {"ready": false}}));
        assert!(!changes(&base, &status_only, false, true));
        assert!(changes(&base, &status_only, false, false));
        let spec = object(json!({"spec": {"x": 2}}));
        assert!(changes(&base, &spec, false, true));
    }

    #[test]
    fn the_precondition_goes_into_the_metadata_of_the_body() {
        let patch = object(json!({"metadata": {"labels": {"a": "b"}}, "status": {"x": 1}}));
        assert_eq!(
            with_precondition(patch.clone(), Some("7".into())),
            json!({"metadata": {"labels": {"a": "b"}, "resourceVersion": "7"}, "status": {"x": 1}})
        );
        assert_eq!(with_precondition(patch.clone(), None), Value::Object(patch));
    }
}

//! Propagation to the Cluster API Cluster (spec §7, policy README "Propagation").
//!
//! Each side writes only its own fields; a failure is copied while set and cleared once the
//! object has none, but only a failure that is the object's own (equal to what its status
//! records): one the sibling wrote is neither overwritten nor cleared, so the two providers
//! never fight over it.

use serde_json::{Map, Value, json};

use crate::context::{Ctx, Subject};
use crate::contract::{ObjectRef, Patch, Subresource};
use crate::draft::{Draft, Failure};
use crate::endpoint::Endpoint;
use crate::inputs::{Fields, Halt};
use crate::merge;
use crate::time::format_timestamp;

/// Which provider of the Cluster is writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The CAPTCluster: `infrastructureReady`, failure domains.
    Infrastructure,
    /// The CAPTControlPlane: `controlPlaneReady`, `ControlPlaneInitialized`.
    ControlPlane,
}

/// The patches on the Cluster that make it reflect `draft` (the object's new status).
pub fn patches(
    ctx: &Ctx<'_>,
    side: Side,
    subject: Subject<'_>,
    draft: &Draft,
) -> Result<Vec<Patch>, Halt> {
    let cluster = subject.cluster;
    let mut out = Vec::new();
    let resource_version = cluster.resource_version()?;

    // spec.controlPlaneEndpoint, only when the Cluster has none.
    if let Some(endpoint) = &draft.endpoint
        && Endpoint::from_spec(cluster.object("spec.controlPlaneEndpoint")?).is_none()
    {
        let body = json!({"spec": {"controlPlaneEndpoint": endpoint.to_spec()}});
        out.push(patch(
            cluster.owner,
            Subresource::Main,
            body,
            &resource_version,
        ));
    }

    let empty = Map::new();
    let old = cluster.object("status")?.unwrap_or(&empty);
    let mut status = old.clone();
    let ready = draft.flag("ready");
    match side {
        Side::Infrastructure => {
            status.insert("infrastructureReady".into(), ready.into());
            if let Some(domains) = draft
                .status
                .get("failureDomains")
                .filter(|d| d.as_object().is_some_and(|m| !m.is_empty()))
            {
                status.insert("failureDomains".into(), domains.clone());
            }
        }
        Side::ControlPlane => {
            status.insert("controlPlaneReady".into(), ready.into());
            if draft.flag("initialized") {
                mark_initialized(&mut status, ctx);
            }
        }
    }
    propagate_failure(draft, &mut status);
    if let Some(diff) = merge::diff_objects(old, &status) {
        out.push(patch(
            cluster.owner,
            Subresource::Status,
            json!({"status": diff}),
            &resource_version,
        ));
    }
    Ok(out)
}

fn patch(
    target: &ObjectRef,
    subresource: Subresource,
    body: Value,
    resource_version: &Option<String>,
) -> Patch {
    Patch {
        target: target.clone(),
        subresource,
        merge_patch: body.to_string(),
        resource_version: resource_version.clone(),
    }
}

/// Copies this object's failure to the Cluster, or clears it once the object has none; only
/// when the Cluster has no failure or has this object's own (equal to its status before or
/// after this reconcile). A failure someone else wrote (the sibling provider) is left alone.
fn propagate_failure(draft: &Draft, status: &mut Map<String, Value>) {
    let current = (
        status
            .get("failureReason")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty()),
        status
            .get("failureMessage")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let mine = draft.failure();
    let is_current = |f: &Failure| current == (Some(f.reason.as_str()), f.message.as_str());
    let owned = current.0.is_none()
        || mine.as_ref().is_some_and(is_current)
        || draft.observed_failure().as_ref().is_some_and(is_current);
    if !owned {
        return;
    }
    match mine {
        Some(f) => {
            status.insert("failureReason".into(), f.reason.into());
            status.insert("failureMessage".into(), f.message.into());
        }
        None => {
            status.remove("failureReason");
            status.remove("failureMessage");
        }
    }
}

/// Reads a `corev1.ObjectReference` field of `fields` (namespace defaults to the holder's).
pub fn object_ref(
    fields: Fields<'_>,
    path: &str,
) -> Result<Option<ObjectRef>, crate::contract::Error> {
    let (Some(kind), Some(name)) = (
        fields.non_empty(&format!("{path}.kind"))?,
        fields.non_empty(&format!("{path}.name"))?,
    ) else {
        return Ok(None);
    };
    let api_version = fields
        .non_empty(&format!("{path}.apiVersion"))?
        .unwrap_or_default();
    let namespace = fields
        .non_empty(&format!("{path}.namespace"))?
        .or(fields.owner.namespace.as_deref());
    Ok(Some(ObjectRef::new(api_version, kind, namespace, name)))
}

/// Sets the Cluster API v1beta1 condition `ControlPlaneInitialized=True`, keeping the others.
fn mark_initialized(status: &mut Map<String, Value>, ctx: &Ctx<'_>) {
    const TYPE: &str = "ControlPlaneInitialized";
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    let entry =
        json!({"type": TYPE, "status": "True", "lastTransitionTime": format_timestamp(ctx.now)});
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(TYPE))
    {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => {}
        Some(c) => *c = entry,
        None => list.push(entry),
    }
}

//! CAPTCluster: the VPC, its ID and failure domains, and the control-plane endpoint
//! (spec §1.1, §5, §6; policy README "CAPTCluster").

use serde_json::{Map, Value, json};

use crate::conditions::Status;
use crate::context::{Ctx, Subject};
use crate::contract::{Error, ObjectRef};
use crate::draft::{Draft, READY};
use crate::endpoint::Endpoint;
use crate::inputs::{Fields, Halt};
use crate::lifecycle::Provider;
use crate::outcome::{Class, Deadlines, Outcome};
use crate::propagation::Side;
use crate::workspace::{self, Observed, WTS, secret_value};

const VPC_READY: &str = "VPCReady";
const VPC_CREATING: &str = "VPCCreating";

/// The CAPTCluster provider.
pub struct CaptCluster;

impl Provider for CaptCluster {
    const FAILED: &'static str = "VPCFailed";
    const PROGRESS: &'static str = VPC_CREATING;
    const MILESTONE: &'static str = VPC_READY;
    const SIDE: Side = Side::Infrastructure;

    fn apply_ref(me: Fields<'_>) -> Result<ObjectRef, Error> {
        workspace::apply_ref(me, "-vpc")
    }

    fn evaluate(
        ctx: &Ctx<'_>,
        subject: Subject<'_>,
        draft: &mut Draft,
        deadlines: &mut Deadlines,
    ) -> Result<Outcome, Halt> {
        let me = subject.me;
        draft.endpoint = Endpoint::from_spec(me.object("spec.controlPlaneEndpoint")?).or(
            Endpoint::from_spec(subject.cluster.object("spec.controlPlaneEndpoint")?),
        );
        if let Some(endpoint) = &draft.endpoint {
            draft.set("endpoint", endpoint.display());
        }
        let template = me.object("spec.vpcTemplateRef")?;
        let existing = me.non_empty("spec.existingVpcId")?;
        let vpc = match (template, existing) {
            (Some(_), Some(_)) => {
                return Ok(Outcome::terminal(
                    "InvalidVPCConfig",
                    "cannot specify both vpcTemplateRef and existingVpcId",
                ));
            }
            (None, None) => {
                return Ok(Outcome::terminal(
                    "InvalidVPCConfig",
                    "must specify either vpcTemplateRef or existingVpcId",
                ));
            }
            (None, Some(id)) => {
                draft.set("vpcId", id);
                let message = format!("Using existing VPC {id}");
                draft
                    .conditions
                    .set(VPC_READY, Status::True, "ExistingVPCUsed", &message);
                draft
                    .conditions
                    .set(VPC_CREATING, Status::False, "ExistingVPCUsed", &message);
                ("ExistingVPCUsed", id.to_owned())
            }
            (Some(_), None) => match provision(ctx, me, draft, deadlines)? {
                Ok(id) => ("VPCCreated", id),
                Err(blocked) => return Ok(blocked),
            },
        };
        let (reason, id) = vpc;
        let Some(endpoint) = draft.endpoint.as_ref().map(Endpoint::display) else {
            return Ok(Outcome::blocked(
                "WaitingForControlPlaneEndpoint",
                format!(
                    "VPC {id} is ready; waiting for a control plane endpoint on the CAPTCluster or its Cluster"
                ),
                Class::Wait,
            ));
        };
        draft.set_in("initialization", "provisioned", true);
        Ok(Outcome::Ready {
            reason: reason.to_owned(),
            message: format!("VPC {id} is ready and the control plane endpoint is {endpoint}"),
        })
    }

    /// A terminal failure turns `VPCReady` False with its reason, even after the VPC was
    /// ready: never `VPCReady=True` beside `VPCFailed=True`.
    fn finish(draft: &mut Draft, outcome: &Outcome) {
        if outcome.is_terminal() {
            let (reason, message) = outcome.reason_and_message();
            draft
                .conditions
                .set(VPC_READY, Status::False, reason, message);
        }
    }

    fn summarize(_: &mut Draft) {}
}

/// Follows the VPC's Terraform workspace. `Ok(id)` once the VPC ID is known; otherwise the
/// blocked outcome, with `VPCReady` and `VPCCreating` set accordingly.
fn provision(
    ctx: &Ctx<'_>,
    me: Fields<'_>,
    draft: &mut Draft,
    deadlines: &mut Deadlines,
) -> Result<Result<String, Outcome>, Halt> {
    let observed = Observed::read(ctx.inputs, CaptCluster::apply_ref(me)?)?;
    record_workspace(draft, &observed)?;
    let settings = ctx.settings;

    let applying = ("VPCCreating", "VPC is being created");
    let applied_at = observed.applied_at();
    let blocked = match observed.blocked(draft, applying)? {
        Some(blocked) => blocked,
        None => {
            if let Some(id) = vpc_id(ctx, &observed)? {
                vpc_created(draft, &observed, &id)?;
                return Ok(Ok(id));
            }
            Outcome::blocked(
                "WaitingForVPCID",
                "Workspace applied; waiting for vpc_id in its outputs or connection secret",
                Class::Wait,
            )
        }
    };
    let blocked = match draft.str("vpcId").map(str::to_owned) {
        // The VPC exists already: no deadlines any more; only errors and missing objects block.
        Some(id) if !observed.progress.blocks_after_creation() => return Ok(Ok(id)),
        Some(_) => blocked.into_transient(draft.conditions.since(READY, Status::False)),
        None => {
            let (reason, message) = blocked.reason_and_message();
            draft
                .conditions
                .set(VPC_CREATING, Status::True, reason, message);
            let started = draft.conditions.since(VPC_CREATING, Status::True);
            let timeout = settings.vpc_ready_timeout.millis();
            deadlines.add("VPCReadyTimeout", started, timeout, "VPC was not ready");
            if observed.progress.before_synced() {
                deadlines.add(
                    "WorkspaceReadyTimeout",
                    started,
                    settings.workspace_ready_timeout.millis(),
                    "the VPC Workspace was not created and synced",
                );
            }
            if let Some(at) = applied_at {
                deadlines.add(
                    "SecretTimeout",
                    at.max(started),
                    settings.secret_timeout.millis(),
                    "the VPC ID was not available",
                );
            }
            blocked
        }
    };
    let (reason, message) = blocked.reason_and_message();
    draft
        .conditions
        .set(VPC_READY, Status::False, reason, message);
    Ok(Err(blocked))
}

/// The VPC ID from the Workspace outputs, else from the connection secret (asked for only then).
fn vpc_id(ctx: &Ctx<'_>, observed: &Observed<'_>) -> Result<Option<String>, Halt> {
    if let Some(id) = observed.output("vpc_id")? {
        return Ok(Some(id.to_owned()));
    }
    let Some(secret_ref) = observed.connection_secret()? else {
        return Ok(None);
    };
    match ctx.inputs.get(&secret_ref)? {
        Some(secret) => Ok(secret_value(secret, "vpc_id")?),
        None => Ok(None),
    }
}

/// Records a created VPC: ID, conditions, failure domains, applied revision.
fn vpc_created(draft: &mut Draft, observed: &Observed<'_>, id: &str) -> Result<(), Error> {
    draft.set("vpcId", id);
    let message = format!("VPC {id} has been created");
    draft
        .conditions
        .set(VPC_READY, Status::True, "VPCCreated", &message);
    draft
        .conditions
        .set(VPC_CREATING, Status::False, "VPCCreated", &message);
    if let Some(domains) = failure_domains(observed)? {
        draft.set("failureDomains", domains);
    }
    if let Some(revision) = observed.revision()? {
        draft.set_in(WTS, "lastAppliedRevision", revision);
    }
    Ok(())
}

/// `workspaceTemplateStatus` and `vpcWorkspaceName` from what was observed.
fn record_workspace(draft: &mut Draft, observed: &Observed<'_>) -> Result<(), Error> {
    observed.record(draft);
    if let Some(name) = observed.workspace_name {
        draft.set_in(WTS, "workspaceName", name);
        draft.set("vpcWorkspaceName", name);
    }
    if let Some(time) = observed.last_applied_time()? {
        draft.set_in(WTS, "lastAppliedTime", time);
    }
    Ok(())
}

/// One failure domain per zone of the `availability_zones` output (a list or a comma-separated
/// string), all eligible for control-plane machines.
fn failure_domains(observed: &Observed<'_>) -> Result<Option<Value>, Error> {
    let Some(outputs) = observed.outputs()? else {
        return Ok(None);
    };
    let zones: Vec<&str> = match outputs.get("availability_zones") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(text)) => text.split(',').collect(),
        _ => return Ok(None),
    };
    // Inserted one by one: collecting into the map would sort the entries first, a sort
    // routine of its own in the component for no gain (later duplicates win either way).
    let mut domains = Map::new();
    for zone in zones.into_iter().map(str::trim).filter(|z| !z.is_empty()) {
        domains.insert(zone.to_owned(), json!({"controlPlane": true}));
    }
    Ok((!domains.is_empty()).then_some(Value::Object(domains)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::fixtures::*;

    const T0: &str = "2026-01-01T00:00:00Z";

    fn world() -> World {
        World::new(vec![cluster("demo"), capt_cluster("demo")])
    }

    fn vpc_applied(w: &mut World, outputs: serde_json::Value) {
        let mut wta = apply("demo-vpc", "demo-vpc");
        wta["status"]["applied"] = json!(true);
        wta["status"]["lastAppliedTime"] = json!("2026-01-01T00:05:00Z");
        w.put(wta);
        w.put(workspace("demo-vpc", Some("True"), Some("True"), outputs));
    }

    #[test]
    fn without_an_owner_only_ready_is_written() {
        let mut cc = capt_cluster("demo");
        cc["metadata"]["ownerReferences"] = json!([]);
        let mut w = World::new(vec![cc]);
        let r = w.reconcile("CAPTCluster", "demo", T0).unwrap();
        assert_eq!(r.requeue_after_millis, None);
        let cc = w.get("CAPTCluster", "demo");
        assert_eq!(state(cc, "Ready"), is("False", "WaitingForOwnerCluster"));
        assert_eq!(cc["status"]["conditions"].as_array().unwrap().len(), 1);
        assert_eq!(cc["status"]["ready"], false);
        assert_eq!(r.patches.len(), 1);
    }

    #[test]
    fn a_missing_cluster_is_a_visible_wait_with_a_poll() {
        let mut w = World::new(vec![capt_cluster("demo")]);
        let r = w.reconcile("CAPTCluster", "demo", T0).unwrap();
        assert_eq!(
            state(w.get("CAPTCluster", "demo"), "Ready"),
            is("False", "ClusterNotFound")
        );
        assert_eq!(r.requeue_after_millis, Some(10_000));
        assert_eq!(r.events[0].event_type, crate::contract::EventType::Warning);
    }

    #[test]
    fn the_vpc_becomes_ready_with_id_domains_and_endpoint_and_then_nothing_changes() {
        let mut w = world();
        w.put(json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "metadata": {"name": "demo", "namespace": NS},
            "spec": {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443}}}));
        vpc_applied(
            &mut w,
            json!({"vpc_id": "vpc-123", "availability_zones": ["a1", "a2"]}),
        );
        let r = w
            .reconcile("CAPTCluster", "demo", "2026-01-01T00:06:00Z")
            .unwrap();
        let cc = w.get("CAPTCluster", "demo");
        assert_eq!(state(cc, "VPCReady"), is("True", "VPCCreated"));
        assert_eq!(state(cc, "VPCCreating"), is("False", "VPCCreated"));
        assert_eq!(state(cc, "VPCFailed"), is("False", "NoFailure"));
        assert_eq!(state(cc, "Ready"), is("True", "VPCCreated"));
        assert_eq!(cc["status"]["vpcId"], "vpc-123");
        assert_eq!(cc["status"]["endpoint"], "10.0.0.1:6443");
        assert_eq!(cc["status"]["ready"], true);
        assert_eq!(cc["status"]["initialization"]["provisioned"], true);
        assert_eq!(cc["status"]["failureDomains"]["a2"]["controlPlane"], true);
        assert_eq!(cc["status"]["workspaceTemplateStatus"]["state"], "Applied");
        assert_eq!(r.requeue_after_millis, None);
        let c = w.get("Cluster", "demo");
        assert_eq!(c["status"]["infrastructureReady"], true);
        assert_eq!(c["status"]["failureDomains"]["a1"]["controlPlane"], true);
        let again = w
            .reconcile("CAPTCluster", "demo", "2026-01-01T00:07:00Z")
            .unwrap();
        assert!(again.patches.is_empty(), "{:#?}", again.patches);
        assert!(again.events.is_empty());
    }

    #[test]
    fn the_vpc_id_can_come_from_the_connection_secret() {
        let mut w = world();
        vpc_applied(&mut w, json!({}));
        w.put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo-vpc-connection", "namespace": NS},
            "data": {"vpc_id": "dnBjLTQ1Ng=="}}));
        w.reconcile("CAPTCluster", "demo", "2026-01-01T00:06:00Z")
            .unwrap();
        let cc = w.get("CAPTCluster", "demo");
        assert_eq!(cc["status"]["vpcId"], "vpc-456");
        assert_eq!(
            state(cc, "Ready"),
            is("False", "WaitingForControlPlaneEndpoint")
        );
    }

    #[test]
    fn vpc_ready_timeout_fires_at_fifteen_minutes_and_not_before() {
        let mut w = world();
        put_applying(&mut w, "demo-vpc", "demo-vpc");
        let r = w.reconcile("CAPTCluster", "demo", T0).unwrap();
        assert_eq!(
            state(w.get("CAPTCluster", "demo"), "Ready"),
            is("False", "VPCCreating")
        );
        assert_eq!(r.requeue_after_millis, Some(10_000));
        let r = w
            .reconcile("CAPTCluster", "demo", "2026-01-01T00:14:59Z")
            .unwrap();
        assert_eq!(r.requeue_after_millis, Some(1_000));
        assert_eq!(
            state(w.get("CAPTCluster", "demo"), "VPCFailed"),
            is("False", "NoFailure")
        );
        let r = w
            .reconcile("CAPTCluster", "demo", "2026-01-01T00:15:00Z")
            .unwrap();
        let cc = w.get("CAPTCluster", "demo");
        assert_eq!(cc["status"]["failureReason"], "VPCReadyTimeout");
        assert_eq!(state(cc, "VPCFailed"), is("True", "VPCReadyTimeout"));
        assert_eq!(state(cc, "VPCReady"), is("False", "VPCReadyTimeout"));
        assert_eq!(state(cc, "VPCCreating"), is("False", "VPCReadyTimeout"));
        assert_eq!(r.requeue_after_millis, None);
        assert_eq!(r.events[0].reason, "VPCReadyTimeout");
        assert_eq!(
            w.get("Cluster", "demo")["status"]["failureReason"],
            "VPCReadyTimeout"
        );
    }

    #[test]
    fn a_terminal_failure_stays_until_the_spec_changes() {
        let mut w = world();
        w.reconcile("CAPTCluster", "demo", T0).unwrap();
        w.reconcile("CAPTCluster", "demo", "2026-01-01T00:10:00Z")
            .unwrap();
        assert_eq!(
            w.get("CAPTCluster", "demo")["status"]["failureReason"],
            "WorkspaceReadyTimeout"
        );
        vpc_applied(&mut w, json!({"vpc_id": "vpc-123"}));
        let r = w
            .reconcile("CAPTCluster", "demo", "2026-01-01T00:20:00Z")
            .unwrap();
        assert!(r.patches.is_empty(), "terminal must stay: {:#?}", r.patches);
        w.put(
            json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster",
            "metadata": {"name": "demo", "namespace": NS}, "spec": {"region": "us-east-1"}}),
        );
        w.reconcile("CAPTCluster", "demo", "2026-01-01T00:21:00Z")
            .unwrap();
        let cc = w.get("CAPTCluster", "demo");
        assert_eq!(cc["status"]["failureReason"], json!(null));
        assert_eq!(state(cc, "VPCFailed"), is("False", "Recovered"));
        assert_eq!(state(cc, "VPCReady"), is("True", "VPCCreated"));
        assert_eq!(cc["status"]["observedGeneration"], 2);
    }

    #[test]
    fn an_unchanged_retry_annotation_does_not_recover_but_a_new_value_does() {
        let mut w = world();
        let annotate = |w: &mut World, v: &str| {
            w.put(json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster",
                "metadata": {"name": "demo", "namespace": NS, "annotations": {"capt.appthrust.io/retry": v}}}))
        };
        annotate(&mut w, "1");
        w.reconcile("CAPTCluster", "demo", T0).unwrap();
        w.reconcile("CAPTCluster", "demo", "2026-01-01T00:10:00Z")
            .unwrap();
        assert_eq!(w.get("CAPTCluster", "demo")["status"]["lastRetry"], "1");
        assert!(w.get("CAPTCluster", "demo")["status"]["failureReason"].is_string());
        annotate(&mut w, "2");
        w.reconcile("CAPTCluster", "demo", "2026-01-01T00:11:00Z")
            .unwrap();
        let cc = w.get("CAPTCluster", "demo");
        assert_eq!(cc["status"]["lastRetry"], "2");
        assert_eq!(cc["status"]["failureReason"], json!(null));
        assert_eq!(
            state(cc, "Ready"),
            is("False", "WaitingForWorkspaceTemplateApply")
        );
        assert_eq!(
            condition(cc, "VPCCreating")["lastTransitionTime"],
            "2026-01-01T00:11:00Z"
        );
    }

    #[test]
    fn invalid_vpc_config_is_terminal_and_consistent() {
        let mut cc = capt_cluster("demo");
        cc["spec"]["existingVpcId"] = json!("vpc-1");
        let mut w = World::new(vec![cluster("demo"), cc]);
        w.reconcile("CAPTCluster", "demo", T0).unwrap();
        let cc = w.get("CAPTCluster", "demo");
        assert_eq!(cc["status"]["failureReason"], "InvalidVPCConfig");
        assert_eq!(state(cc, "VPCReady"), is("False", "InvalidVPCConfig"));
        assert_eq!(state(cc, "VPCFailed"), is("True", "InvalidVPCConfig"));
    }

    #[test]
    fn paused_changes_only_the_ready_reason() {
        let mut w = world();
        w.reconcile("CAPTCluster", "demo", T0).unwrap();
        let before = w.get("CAPTCluster", "demo").clone();
        w.put(json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "metadata": {"name": "demo", "namespace": NS}, "spec": {"paused": true}}));
        let r = w
            .reconcile("CAPTCluster", "demo", "2026-01-01T00:20:00Z")
            .unwrap();
        assert_eq!(r.requeue_after_millis, None);
        assert_eq!(r.patches.len(), 1);
        let cc = w.get("CAPTCluster", "demo");
        assert_eq!(state(cc, "Ready"), is("False", "Paused"));
        assert_eq!(
            cc["status"]["conditions"][1],
            before["status"]["conditions"][1]
        );
        assert_eq!(cc["status"]["failureReason"], json!(null));
    }
}

//! CAPTControlPlane: the EKS control plane, its endpoint, phase and initialization
//! (spec §1.2, §5; policy README "CAPTControlPlane").

use serde_json::{Map, Value, json};

use crate::conditions::Status;
use crate::context::{Ctx, Subject};
use crate::contract::{Error, ObjectRef};
use crate::draft::{Draft, READY};
use crate::endpoint::Endpoint;
use crate::inputs::{Fields, Halt};
use crate::kinds;
use crate::lifecycle::Provider;
use crate::outcome::{Class, Deadlines, Outcome};
use crate::propagation::{Side, object_ref};
use crate::workspace::{self, Observed, Progress, WTS, secret_value};

const CREATING: &str = "Creating";
const INITIALIZED: &str = "Initialized";
const ENDPOINT_KEY: &str = "cluster_endpoint";
const INVALID_ENDPOINT: &str = "InvalidEndpoint";
const MINUTE: u64 = 60_000;
/// The longest timeout override, in minutes (one week).
const MAX_TIMEOUT_MINUTES: u64 = 10_080;

/// The CAPTControlPlane provider.
pub struct CaptControlPlane;

impl Provider for CaptControlPlane {
    const FAILED: &'static str = "Failed";
    const PROGRESS: &'static str = CREATING;
    const MILESTONE: &'static str = INITIALIZED;
    const SIDE: Side = Side::ControlPlane;

    fn apply_ref(me: Fields<'_>) -> Result<ObjectRef, Error> {
        workspace::apply_ref(me, "-eks-controlplane-apply")
    }

    fn evaluate(
        ctx: &Ctx<'_>,
        subject: Subject<'_>,
        draft: &mut Draft,
        deadlines: &mut Deadlines,
    ) -> Result<Outcome, Halt> {
        let me = subject.me;
        let timeouts = match Timeouts::of(ctx, me) {
            Ok(timeouts) => timeouts,
            Err(why) => return Ok(Outcome::terminal("InvalidControlPlaneConfig", why)),
        };
        let initialized = is_initialized(draft);
        draft.endpoint = Endpoint::from_spec(me.object("spec.controlPlaneEndpoint")?);
        if !initialized
            && let Some(waiting) = wait_for_vpc(ctx, subject, draft, deadlines, &timeouts)?
        {
            return Ok(waiting);
        }

        let observed = Observed::read(ctx.inputs, Self::apply_ref(me)?)?;
        record_workspace(draft, &observed)?;
        let applying = ("ControlPlaneCreating", "Control plane is being created");
        let applied_at = observed.applied_at();
        let blocked = match observed.blocked(draft, applying)? {
            Some(blocked) => blocked,
            None => match endpoint(ctx, &observed)? {
                Some(Ok(endpoint)) => return Ok(ready(draft, &observed, endpoint)?),
                Some(Err(why)) => {
                    if let Some(revision) = observed.revision()? {
                        draft.set_in(WTS, "lastFailedRevision", revision);
                    }
                    Outcome::blocked(
                        INVALID_ENDPOINT,
                        why,
                        Class::Transient {
                            since: applied_at.flatten(),
                        },
                    )
                }
                None => Outcome::blocked(
                    "WaitingForEndpoint",
                    "Workspace applied; waiting for cluster_endpoint in its outputs or connection secret",
                    Class::Wait,
                ),
            },
        };
        if initialized {
            // Created once: no deadlines any more; only errors (a workspace error, an endpoint
            // that does not parse) and missing objects block.
            let invalid_endpoint = blocked.reason_and_message().0 == INVALID_ENDPOINT;
            if !observed.progress.blocks_after_creation()
                && !invalid_endpoint
                && let Some(endpoint) = draft.endpoint.clone()
            {
                return Ok(ready(draft, &observed, endpoint)?);
            }
            let since = draft.conditions.since(READY, Status::False);
            return Ok(blocked.into_transient(since));
        }

        let (reason, message) = blocked.reason_and_message();
        draft
            .conditions
            .set(CREATING, Status::True, reason, message);
        let started = draft.conditions.since(CREATING, Status::True);
        deadlines.add(
            "ControlPlaneTimeout",
            started,
            timeouts.control_plane,
            "the control plane was not ready",
        );
        if observed.progress.before_synced() {
            deadlines.add(
                "WorkspaceReadyTimeout",
                started,
                ctx.settings.workspace_ready_timeout.millis(),
                "the control plane Workspace was not created and synced",
            );
        }
        if let Some(at) = applied_at {
            deadlines.add(
                "SecretTimeout",
                at.max(started),
                ctx.settings.secret_timeout.millis(),
                "the control plane endpoint was not available",
            );
        }
        Ok(blocked)
    }

    fn finish(draft: &mut Draft, outcome: &Outcome) {
        if is_initialized(draft) {
            draft.set_in("initialization", "controlPlaneInitialized", true);
            draft.conditions.set(
                INITIALIZED,
                Status::True,
                "ControlPlaneInitialized",
                "The control plane has been initialized",
            );
            if !outcome.is_terminal() {
                draft.conditions.set(
                    CREATING,
                    Status::False,
                    "ControlPlaneReady",
                    "The control plane has been created",
                );
            }
        } else {
            let (reason, message) = outcome.reason_and_message();
            draft
                .conditions
                .set(INITIALIZED, Status::False, reason, message);
        }
    }

    /// `phase` agrees with the conditions (`Failed` while a terminal failure is recorded,
    /// `Ready` while `Ready=True`, else `Creating`); `initialized` is one-way.
    fn summarize(draft: &mut Draft) {
        let phase = if draft.failure().is_some() {
            "Failed"
        } else if draft.conditions.is(READY, Status::True) {
            "Ready"
        } else {
            "Creating"
        };
        draft.set("phase", phase);
        let initialized = is_initialized(draft);
        draft.set("initialized", initialized);
    }
}

/// Initialization is one-way: once recorded it stays.
fn is_initialized(draft: &Draft) -> bool {
    draft.flag("initialized") || draft.conditions.is(INITIALIZED, Status::True)
}

/// The per-object timeouts: `spec.controlPlaneConfig.timeouts` (minutes) over the settings.
struct Timeouts {
    control_plane: u64,
    vpc_ready: u64,
}

impl Timeouts {
    /// The timeouts, or why an override is invalid: each is a whole number of minutes in
    /// 1..=10080, anything else (another number, another type) is rejected.
    fn of(ctx: &Ctx<'_>, me: Fields<'_>) -> Result<Self, String> {
        let minutes = |key: &str| -> Result<Option<u64>, String> {
            let value = me
                .value
                .pointer(&format!("/spec/controlPlaneConfig/timeouts/{key}"));
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(m @ 1..=MAX_TIMEOUT_MINUTES) => Ok(Some(m * MINUTE)),
                    _ => Err(format!(
                        "spec.controlPlaneConfig.timeouts.{key} must be a whole number of minutes \
                         from 1 to {MAX_TIMEOUT_MINUTES}"
                    )),
                },
            }
        };
        Ok(Self {
            control_plane: minutes("controlPlaneTimeout")?
                .unwrap_or(ctx.settings.control_plane_timeout.millis()),
            vpc_ready: minutes("vpcReadyTimeout")?
                .unwrap_or(ctx.settings.vpc_ready_timeout.millis()),
        })
    }
}

/// The VPC gate: the Cluster's `infrastructureRef` CAPTCluster must have `VPCReady=True`
/// (not `ready`, which may wait for this control plane's endpoint). No gate for other kinds.
fn wait_for_vpc(
    ctx: &Ctx<'_>,
    subject: Subject<'_>,
    draft: &mut Draft,
    deadlines: &mut Deadlines,
    timeouts: &Timeouts,
) -> Result<Option<Outcome>, Halt> {
    let infra_ref = object_ref(subject.cluster, "spec.infrastructureRef")?;
    let waiting = match &infra_ref {
        None => Some(format!(
            "Waiting for Cluster {} to reference its infrastructure",
            subject.cluster.owner.name
        )),
        Some(r) if r.kind != kinds::CAPT_CLUSTER => None,
        Some(r) => match ctx.inputs.get(r)? {
            None => Some(format!("Waiting for {r} to be created")),
            Some(infra) => {
                let vpc_ready = infra.array("status.conditions")?.iter().any(|c| {
                    c.get("type") == Some(&json!("VPCReady"))
                        && c.get("status") == Some(&json!("True"))
                });
                (!vpc_ready).then(|| format!("Waiting for the VPC of {r} to be ready"))
            }
        },
    };
    let Some(message) = waiting else {
        return Ok(None);
    };
    draft
        .conditions
        .set(CREATING, Status::False, "WaitingForVPC", &message);
    let started = draft.conditions.since(CREATING, Status::False);
    deadlines.add(
        "VPCReadyTimeout",
        started,
        timeouts.vpc_ready,
        "the infrastructure's VPC was not ready",
    );
    Ok(Some(Outcome::blocked(
        "WaitingForVPC",
        message,
        Class::Wait,
    )))
}

/// The endpoint from the `cluster_endpoint` output, else the connection secret (asked for only
/// then): `None` when neither has it, `Some(Err)` when it does not parse or is not a string.
fn endpoint(
    ctx: &Ctx<'_>,
    observed: &Observed<'_>,
) -> Result<Option<Result<Endpoint, String>>, Halt> {
    let text = match observed.output_value(ENDPOINT_KEY)? {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
        Some(other) if !other.is_string() => {
            return Ok(Some(Err(format!(
                "{ENDPOINT_KEY} {other} is not a valid endpoint: not a string"
            ))));
        }
        _ => match observed.connection_secret()? {
            Some(secret_ref) => match ctx.inputs.get(&secret_ref)? {
                Some(secret) => secret_value(secret, ENDPOINT_KEY)?,
                None => None,
            },
            None => None,
        },
    };
    Ok(text.map(|t| Endpoint::parse(&t)))
}

/// The control plane is up: endpoint written to the spec and status, initialized.
fn ready(draft: &mut Draft, observed: &Observed<'_>, endpoint: Endpoint) -> Result<Outcome, Error> {
    if draft.endpoint.as_ref() != Some(&endpoint) {
        draft.spec_patch = Some(json!({"controlPlaneEndpoint": endpoint.to_spec()}));
        draft.expect_generation_bump();
    }
    if let Some(revision) = observed.revision()?
        && matches!(observed.progress, Progress::Applied { .. })
    {
        draft.set_in(WTS, "lastAppliedRevision", revision);
    }
    let display = endpoint.display();
    draft.set("endpoint", display.as_str());
    draft.set("initialized", true);
    draft.endpoint = Some(endpoint);
    Ok(Outcome::Ready {
        reason: "ControlPlaneReady".to_owned(),
        message: format!("Control plane is ready at {display}"),
    })
}

/// `workspaceTemplateStatus` from what was observed, including the non-sensitive outputs.
fn record_workspace(draft: &mut Draft, observed: &Observed<'_>) -> Result<(), Error> {
    observed.record(draft);
    if let Some(outputs) = observed.outputs()?.filter(|o| !o.is_empty()) {
        // Inserted one by one, not collected: see `captcluster::failure_domains`.
        let mut copy = Map::new();
        for (key, value) in outputs {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            copy.insert(key.clone(), Value::String(text));
        }
        draft.set_in(WTS, "outputs", copy);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::fixtures::*;

    const T0: &str = "2026-01-01T00:00:00Z";

    fn vpc_ready_world() -> World {
        let mut cc = capt_cluster("demo");
        cc["status"] = json!({"conditions": [{"type": "VPCReady", "status": "True", "reason": "VPCCreated", "message": "m", "lastTransitionTime": T0}]});
        World::new(vec![cluster("demo"), cc, control_plane("demo")])
    }

    fn eks_applied(w: &mut World, endpoint: &str) {
        let mut wta = apply("demo-eks-controlplane-apply", "demo-eks-controlplane");
        wta["status"]["applied"] = json!(true);
        w.put(wta);
        w.put(workspace(
            "demo-eks-controlplane",
            Some("True"),
            Some("True"),
            json!({"cluster_endpoint": endpoint, "version": 131}),
        ));
    }

    #[test]
    fn the_control_plane_waits_for_the_vpc_not_for_the_infrastructure_ready() {
        let mut w = World::new(vec![
            cluster("demo"),
            capt_cluster("demo"),
            control_plane("demo"),
        ]);
        let r = w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        let cp = w.get("CAPTControlPlane", "demo");
        assert_eq!(state(cp, "Ready"), is("False", "WaitingForVPC"));
        assert_eq!(state(cp, "Creating"), is("False", "WaitingForVPC"));
        assert_eq!(cp["status"]["phase"], "Creating");
        assert_eq!(cp["status"]["initialized"], false);
        assert_eq!(r.requeue_after_millis, Some(10_000));
        let r = w
            .reconcile("CAPTControlPlane", "demo", "2026-01-01T00:15:00Z")
            .unwrap();
        assert_eq!(
            w.get("CAPTControlPlane", "demo")["status"]["failureReason"],
            "VPCReadyTimeout"
        );
        assert_eq!(
            w.get("CAPTControlPlane", "demo")["status"]["phase"],
            "Failed"
        );
        assert_eq!(r.requeue_after_millis, None);
    }

    #[test]
    fn an_applied_workspace_makes_the_control_plane_ready_and_updates_the_cluster() {
        let mut w = vpc_ready_world();
        w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        assert_eq!(
            state(w.get("CAPTControlPlane", "demo"), "Creating"),
            is("True", "WaitingForWorkspaceTemplateApply")
        );
        eks_applied(&mut w, "https://ABC.eks.amazonaws.com");
        let r = w
            .reconcile("CAPTControlPlane", "demo", "2026-01-01T00:20:00Z")
            .unwrap();
        assert_eq!(
            r.patches.len(),
            4,
            "spec, status, Cluster spec, Cluster status: {:#?}",
            r.patches
        );
        let cp = w.get("CAPTControlPlane", "demo");
        assert_eq!(
            cp["spec"]["controlPlaneEndpoint"],
            json!({"host": "ABC.eks.amazonaws.com", "port": 443})
        );
        assert_eq!(cp["status"]["endpoint"], "ABC.eks.amazonaws.com:443");
        assert_eq!(cp["status"]["phase"], "Ready");
        assert_eq!(cp["status"]["ready"], true);
        assert_eq!(cp["status"]["initialized"], true);
        assert_eq!(
            cp["status"]["observedGeneration"],
            cp["metadata"]["generation"]
        );
        assert_eq!(
            cp["status"]["workspaceTemplateStatus"]["outputs"]["version"],
            "131"
        );
        assert_eq!(
            state(cp, "Initialized"),
            is("True", "ControlPlaneInitialized")
        );
        assert_eq!(state(cp, "Creating"), is("False", "ControlPlaneReady"));
        let c = w.get("Cluster", "demo");
        assert_eq!(
            c["spec"]["controlPlaneEndpoint"]["host"],
            "ABC.eks.amazonaws.com"
        );
        assert_eq!(c["status"]["controlPlaneReady"], true);
        assert_eq!(state(c, "ControlPlaneInitialized").0, "True");
        let again = w
            .reconcile("CAPTControlPlane", "demo", "2026-01-01T00:21:00Z")
            .unwrap();
        assert!(again.patches.is_empty(), "{:#?}", again.patches);
    }

    #[test]
    fn a_workspace_error_after_initialization_is_transient_and_keeps_what_is_known() {
        let mut w = vpc_ready_world();
        eks_applied(&mut w, "10.0.0.1:6443");
        w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        let mut ws = workspace(
            "demo-eks-controlplane",
            Some("False"),
            Some("True"),
            json!({}),
        );
        ws["status"]["conditions"][0]["message"] = json!("terraform apply failed");
        ws["status"]["conditions"][0]["lastTransitionTime"] = json!("2026-01-01T00:01:00Z");
        w.put(ws);
        let r = w
            .reconcile("CAPTControlPlane", "demo", "2026-01-01T00:01:30Z")
            .unwrap();
        let cp = w.get("CAPTControlPlane", "demo");
        assert_eq!(state(cp, "Ready"), is("False", "WorkspaceError"));
        assert_eq!(condition(cp, "Ready")["message"], "terraform apply failed");
        assert_eq!(cp["status"]["initialized"], true);
        assert_eq!(cp["status"]["endpoint"], "10.0.0.1:6443");
        assert_eq!(cp["status"]["failureReason"], json!(null));
        assert_eq!(cp["status"]["phase"], "Creating");
        assert_eq!(
            cp["status"]["workspaceTemplateStatus"]["lastFailureMessage"],
            "terraform apply failed"
        );
        assert_eq!(r.requeue_after_millis, Some(30_000));
        assert_eq!(r.events[0].event_type, crate::contract::EventType::Warning);
    }

    #[test]
    fn after_initialization_a_missing_apply_is_transient_and_a_reapply_is_not() {
        let mut w = vpc_ready_world();
        eks_applied(&mut w, "10.0.0.1:6443");
        w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        let mut reapplying = workspace(
            "demo-eks-controlplane",
            Some("True"),
            Some("False"),
            json!({}),
        );
        reapplying["metadata"]["generation"] = json!(2);
        w.put(reapplying);
        let r = w
            .reconcile("CAPTControlPlane", "demo", "2026-01-01T00:01:00Z")
            .unwrap();
        assert_eq!(
            state(w.get("CAPTControlPlane", "demo"), "Ready"),
            is("True", "ControlPlaneReady")
        );
        let cp = w.get("CAPTControlPlane", "demo");
        assert_eq!(cp["status"]["ready"], true);
        assert_eq!(cp["status"]["workspaceTemplateStatus"]["state"], "Applying");
        assert!(r.events.is_empty());
        w.objects.retain(|o| o["kind"] != "WorkspaceTemplateApply");
        let r = w
            .reconcile("CAPTControlPlane", "demo", "2026-01-01T00:02:00Z")
            .unwrap();
        let cp = w.get("CAPTControlPlane", "demo");
        assert_eq!(
            state(cp, "Ready"),
            is("False", "WaitingForWorkspaceTemplateApply")
        );
        assert_eq!(cp["status"]["initialized"], true);
        assert_eq!(cp["status"]["endpoint"], "10.0.0.1:6443");
        assert_eq!(cp["status"]["failureReason"], json!(null));
        assert_eq!(r.requeue_after_millis, Some(5_000));
        let r = w
            .reconcile("CAPTControlPlane", "demo", "2026-01-01T00:03:00Z")
            .unwrap();
        assert_eq!(
            r.requeue_after_millis,
            Some(60_000),
            "the back-off grows with the error's age"
        );
    }

    #[test]
    fn per_object_timeouts_override_the_settings() {
        let mut w = vpc_ready_world();
        w.put(json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane", "metadata": {"name": "demo", "namespace": NS},
            "spec": {"controlPlaneConfig": {"region": "ap-northeast-1", "timeouts": {"controlPlaneTimeout": 2}}}}));
        w.put(apply(
            "demo-eks-controlplane-apply",
            "demo-eks-controlplane",
        ));
        w.put(workspace(
            "demo-eks-controlplane",
            Some("True"),
            None,
            json!({}),
        ));
        let r = w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        assert_eq!(
            state(w.get("CAPTControlPlane", "demo"), "Ready"),
            is("False", "ControlPlaneCreating")
        );
        assert_eq!(r.requeue_after_millis, Some(10_000));
        w.reconcile("CAPTControlPlane", "demo", "2026-01-01T00:02:00Z")
            .unwrap();
        assert_eq!(
            w.get("CAPTControlPlane", "demo")["status"]["failureReason"],
            "ControlPlaneTimeout"
        );
    }

    #[test]
    fn an_unparsable_endpoint_is_transient() {
        let mut w = vpc_ready_world();
        eks_applied(&mut w, "https://bad host");
        let r = w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        let cp = w.get("CAPTControlPlane", "demo");
        assert_eq!(state(cp, "Ready"), is("False", "InvalidEndpoint"));
        assert_eq!(cp["status"]["failureReason"], json!(null));
        assert!(r.requeue_after_millis.is_some());
    }

    #[test]
    fn only_its_own_failure_is_written_to_and_cleared_from_the_cluster() {
        let mut w = vpc_ready_world();
        w.put(json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "metadata": {"name": "demo", "namespace": NS},
            "status": {"failureReason": "SecretTimeout", "failureMessage": "vpc"}}));
        eks_applied(&mut w, "10.0.0.1");
        w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        assert_eq!(
            w.get("Cluster", "demo")["status"]["failureReason"],
            "SecretTimeout",
            "a failure the control plane did not write stays"
        );
        w.put(json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "metadata": {"name": "demo", "namespace": NS},
            "status": {"failureReason": null, "failureMessage": null}}));
        w.put(json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane", "metadata": {"name": "demo", "namespace": NS},
            "spec": {"controlPlaneConfig": {"timeouts": {"controlPlaneTimeout": 0}}}}));
        w.reconcile("CAPTControlPlane", "demo", "2026-01-01T00:01:00Z")
            .unwrap();
        let c = w.get("Cluster", "demo");
        assert_eq!(c["status"]["failureReason"], "InvalidControlPlaneConfig");
        w.put(json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane", "metadata": {"name": "demo", "namespace": NS},
            "spec": {"controlPlaneConfig": {"timeouts": {"controlPlaneTimeout": 60}}}}));
        w.reconcile("CAPTControlPlane", "demo", "2026-01-01T00:02:00Z")
            .unwrap();
        assert_eq!(
            w.get("Cluster", "demo")["status"]["failureReason"],
            json!(null),
            "its own failure is cleared once it has none"
        );
    }

    #[test]
    fn propagation_none_leaves_the_cluster_alone() {
        let mut w = vpc_ready_world();
        w.settings = json!({"clusterPropagation": "none"});
        eks_applied(&mut w, "10.0.0.1");
        let r = w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        assert!(
            r.patches
                .iter()
                .all(|p| p.target.kind == "CAPTControlPlane")
        );
    }

    #[test]
    fn timeout_overrides_outside_one_minute_to_one_week_are_invalid_control_plane_config() {
        for bad in [
            json!(0),
            json!(10_081),
            json!(-5),
            json!(1.5),
            json!("15"),
            json!(576_460_752_303_423_489_u64),
        ] {
            let mut cp = control_plane("demo");
            cp["spec"]["controlPlaneConfig"] = json!({"timeouts": {"vpcReadyTimeout": bad}});
            let mut w = World::new(vec![cluster("demo"), capt_cluster("demo"), cp]);
            let r = w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
            let cp = w.get("CAPTControlPlane", "demo");
            assert_eq!(
                cp["status"]["failureReason"], "InvalidControlPlaneConfig",
                "{bad}"
            );
            assert_eq!(cp["status"]["phase"], "Failed");
            assert!(
                cp["status"]["failureMessage"]
                    .as_str()
                    .unwrap()
                    .contains("timeouts.vpcReadyTimeout")
            );
            assert_eq!(r.requeue_after_millis, None);
        }
        let mut cp = control_plane("demo");
        cp["spec"]["controlPlaneConfig"] = json!({"timeouts": {"vpcReadyTimeout": 10_080}});
        let mut w = World::new(vec![cluster("demo"), capt_cluster("demo"), cp]);
        w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        assert_eq!(
            state(w.get("CAPTControlPlane", "demo"), "Ready"),
            is("False", "WaitingForVPC")
        );
    }

    #[test]
    fn an_unparsable_or_non_string_endpoint_after_initialization_keeps_the_last_one() {
        let mut w = vpc_ready_world();
        eks_applied(&mut w, "10.0.0.1:6443");
        w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        for bad in [
            json!("https://10.0.0.1:0"),
            json!(6443),
            json!({"host": "h"}),
        ] {
            let mut ws = w.get("Workspace", "demo-eks-controlplane").clone();
            ws["status"]["atProvider"]["outputs"]["cluster_endpoint"] = bad.clone();
            w.put(ws);
            let r = w
                .reconcile("CAPTControlPlane", "demo", "2026-01-01T00:01:00Z")
                .unwrap();
            let cp = w.get("CAPTControlPlane", "demo");
            assert_eq!(state(cp, "Ready"), is("False", "InvalidEndpoint"), "{bad}");
            assert_eq!(cp["status"]["initialized"], true);
            assert_eq!(cp["status"]["ready"], false);
            assert_eq!(cp["status"]["endpoint"], "10.0.0.1:6443");
            assert_eq!(cp["spec"]["controlPlaneEndpoint"]["port"], 6443);
            assert!(
                cp["status"]["workspaceTemplateStatus"]["lastFailureMessage"]
                    .as_str()
                    .unwrap()
                    .starts_with("cluster_endpoint")
            );
            assert!(r.requeue_after_millis.is_some());
        }
    }
}

//! CAPTCluster: the VPC, its ID and failure domains, and the control-plane endpoint
//! (spec §1.1, §5, §6; policy README "CAPTCluster").

use serde_json::{Map, Value, json};

use crate::conditions::Status;
use crate::contract::{Error, ObjectRef};
use crate::draft::Draft;
use crate::endpoint::Endpoint;
use crate::inputs::{Fields, Halt};
use crate::kinds;
use crate::lifecycle::{Ctx, Provider, Subject};
use crate::outcome::{Class, Deadlines, Outcome};
use crate::propagation::Side;
use crate::workspace::{Observed, Progress, secret_value};

const VPC_READY: &str = "VPCReady";
const VPC_CREATING: &str = "VPCCreating";
const WTS: &str = "workspaceTemplateStatus";

/// The CAPTCluster provider.
pub struct CaptCluster;

impl Provider for CaptCluster {
    const FAILED: &'static str = "VPCFailed";
    const PROGRESS: &'static str = VPC_CREATING;
    const SIDE: Side = Side::Infrastructure;

    fn apply_ref(me: Fields<'_>) -> Result<ObjectRef, Error> {
        let name = match me.non_empty("spec.workspaceTemplateApplyName")? {
            Some(name) => name.to_owned(),
            None => format!("{}-vpc", me.owner.name),
        };
        Ok(kinds::workspace_template_apply(
            me.owner.namespace.as_deref(),
            &name,
        ))
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

    fn finish(draft: &mut Draft, outcome: &Outcome) {
        if outcome.is_terminal() && !draft.conditions.is(VPC_READY, Status::True) {
            let (reason, message) = outcome.reason_and_message();
            draft
                .conditions
                .set(VPC_READY, Status::False, reason, message);
        }
    }
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

    let mut applied_at = None;
    let blocked = match &observed.progress {
        Progress::NoApply => Outcome::blocked(
            "WaitingForWorkspaceTemplateApply",
            format!(
                "Waiting for WorkspaceTemplateApply {} to be created",
                observed.apply_ref
            ),
            Class::Wait,
        ),
        Progress::NoWorkspaceName | Progress::NoWorkspace | Progress::NotSynced => {
            Outcome::blocked(
                "WaitingForWorkspace",
                match observed.workspace_name {
                    Some(name) => format!("Waiting for Workspace {name} to exist and be synced"),
                    None => format!("Waiting for {} to name its Workspace", observed.apply_ref),
                },
                Class::Wait,
            )
        }
        Progress::Failing { message, since } => {
            if let Some(revision) = observed.revision()? {
                draft.set_in(WTS, "lastFailedRevision", revision);
            }
            draft.set_in(WTS, "lastFailureMessage", message.as_str());
            Outcome::blocked(
                "WorkspaceError",
                message.as_str(),
                Class::Transient { since: *since },
            )
        }
        Progress::Applying => Outcome::blocked("VPCCreating", "VPC is being created", Class::Wait),
        Progress::Applied { at } => {
            if let Some(id) = vpc_id(ctx, &observed)? {
                vpc_created(draft, &observed, &id)?;
                return Ok(Ok(id));
            }
            applied_at = Some(*at);
            Outcome::blocked(
                "WaitingForVPCID",
                "Workspace applied; waiting for vpc_id in its outputs or connection secret",
                Class::Wait,
            )
        }
    };
    let (reason, message) = blocked.reason_and_message();
    match draft.str("vpcId").map(str::to_owned) {
        // The VPC exists already: only a workspace error blocks it, and without a deadline.
        Some(id) if !matches!(observed.progress, Progress::Failing { .. }) => return Ok(Ok(id)),
        Some(_) => {}
        None => {
            draft
                .conditions
                .set(VPC_CREATING, Status::True, reason, message);
            let started = draft.conditions.since(VPC_CREATING, Status::True);
            deadlines.add(
                "VPCReadyTimeout",
                started,
                settings.vpc_ready_timeout.millis(),
                "VPC was not ready",
            );
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
        }
    }
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
    draft.set_in(
        WTS,
        "ready",
        matches!(observed.progress, Progress::Applied { .. }),
    );
    draft.set_in(WTS, "state", observed.progress.state());
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
    let domains: Map<String, Value> = zones
        .into_iter()
        .map(str::trim)
        .filter(|z| !z.is_empty())
        .map(|z| (z.to_owned(), json!({"controlPlane": true})))
        .collect();
    Ok((!domains.is_empty()).then_some(Value::Object(domains)))
}

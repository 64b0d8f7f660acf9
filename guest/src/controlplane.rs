//! CAPTControlPlane: the EKS control plane, its endpoint, phase and initialization
//! (spec §1.2, §5; policy README "CAPTControlPlane").

use serde_json::{Map, Value, json};

use crate::conditions::Status;
use crate::contract::{Error, ObjectRef};
use crate::draft::{Draft, READY};
use crate::endpoint::Endpoint;
use crate::inputs::{Fields, Halt};
use crate::kinds;
use crate::lifecycle::{Ctx, Provider, Subject};
use crate::outcome::{Class, Deadlines, Outcome};
use crate::propagation::{Side, object_ref};
use crate::workspace::{Observed, Progress, secret_value};

const CREATING: &str = "Creating";
const INITIALIZED: &str = "Initialized";
const WTS: &str = "workspaceTemplateStatus";
const ENDPOINT_KEY: &str = "cluster_endpoint";
const MINUTE: u64 = 60_000;

/// The CAPTControlPlane provider.
pub struct CaptControlPlane;

impl Provider for CaptControlPlane {
    const FAILED: &'static str = "Failed";
    const PROGRESS: &'static str = CREATING;
    const SIDE: Side = Side::ControlPlane;

    fn apply_ref(me: Fields<'_>) -> Result<ObjectRef, Error> {
        let name = match me.non_empty("spec.workspaceTemplateApplyName")? {
            Some(name) => name.to_owned(),
            None => format!("{}-eks-controlplane-apply", me.owner.name),
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
        let initialized = is_initialized(draft);
        draft.endpoint = Endpoint::from_spec(me.object("spec.controlPlaneEndpoint")?);
        if !initialized && let Some(waiting) = wait_for_vpc(ctx, subject, draft, deadlines)? {
            return Ok(waiting);
        }

        let observed = Observed::read(ctx.inputs, Self::apply_ref(me)?)?;
        record_workspace(draft, &observed)?;
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
                        Some(name) => {
                            format!("Waiting for Workspace {name} to exist and be synced")
                        }
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
            Progress::Applying => Outcome::blocked(
                "ControlPlaneCreating",
                "Control plane is being created",
                Class::Wait,
            ),
            Progress::Applied { at } => {
                applied_at = Some(*at);
                match endpoint(ctx, &observed)? {
                    Some(Ok(endpoint)) => return Ok(ready(draft, &observed, endpoint)?),
                    Some(Err(why)) => {
                        Outcome::blocked("InvalidEndpoint", why, Class::Transient { since: *at })
                    }
                    None => Outcome::blocked(
                        "WaitingForEndpoint",
                        "Workspace applied; waiting for cluster_endpoint in its outputs or connection secret",
                        Class::Wait,
                    ),
                }
            }
        };
        if initialized {
            // Created once: only a workspace error takes readiness away, and without deadlines.
            if !matches!(observed.progress, Progress::Failing { .. })
                && let Some(endpoint) = draft.endpoint.clone()
            {
                return Ok(ready(draft, &observed, endpoint)?);
            }
            return Ok(blocked);
        }

        let (reason, message) = blocked.reason_and_message();
        draft
            .conditions
            .set(CREATING, Status::True, reason, message);
        let started = draft.conditions.since(CREATING, Status::True);
        let timeouts = Timeouts::of(ctx, me)?;
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
        if initialized {
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
    fn of(ctx: &Ctx<'_>, me: Fields<'_>) -> Result<Self, Error> {
        let minutes = |key: &str| -> Result<Option<u64>, Error> {
            let path = format!("spec.controlPlaneConfig.timeouts.{key}");
            match me.int(&path)? {
                None => Ok(None),
                Some(m) if m >= 1 => Ok(Some(m as u64 * MINUTE)),
                Some(_) => Err(Error::InvalidInput(format!(
                    "{}: {path} must be at least 1 (minutes)",
                    me.owner
                ))),
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
    let timeout = Timeouts::of(ctx, subject.me)?.vpc_ready;
    deadlines.add(
        "VPCReadyTimeout",
        started,
        timeout,
        "the infrastructure's VPC was not ready",
    );
    Ok(Some(Outcome::blocked(
        "WaitingForVPC",
        message,
        Class::Wait,
    )))
}

/// The endpoint from the `cluster_endpoint` output, else the connection secret (asked for only
/// then): `None` when neither has it, `Some(Err)` when it does not parse.
fn endpoint(
    ctx: &Ctx<'_>,
    observed: &Observed<'_>,
) -> Result<Option<Result<Endpoint, String>>, Halt> {
    let text = match observed.output(ENDPOINT_KEY)? {
        Some(text) => Some(text.to_owned()),
        None => match observed.connection_secret()? {
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
    draft.set_in(
        WTS,
        "ready",
        matches!(observed.progress, Progress::Applied { .. }),
    );
    draft.set_in(WTS, "state", observed.progress.state());
    if let Some(outputs) = observed.outputs()?.filter(|o| !o.is_empty()) {
        let outputs: Map<String, Value> = outputs
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), Value::String(text))
            })
            .collect();
        draft.set_in(WTS, "outputs", outputs);
    }
    Ok(())
}

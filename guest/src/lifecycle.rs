//! The reconcile steps both kinds share (policy README, "Order of evaluation"): pause, owner
//! Cluster, terminal failures and their recovery, the Ready summary, the fields every status
//! write carries, propagation, events and the requeue. What differs per kind is behind
//! [`Provider`].

use crate::conditions::Status;
use crate::context::{Ctx, Subject};
use crate::contract::{Error, ObjectRef, Patch, Response};
use crate::draft::{Draft, Failure, READY};
use crate::events::{self, Before};
use crate::inputs::{Fields, Halt};
use crate::kinds;
use crate::message::bounded;
use crate::outcome::{Class, Deadlines, Outcome};
use crate::propagation::{self, Side};
use crate::settings::ClusterPropagation;
use crate::workspace::WTS;

/// The annotation that pauses reconciliation (Cluster API).
pub const PAUSED_ANNOTATION: &str = "cluster.x-k8s.io/paused";
/// The annotation whose new value retries a terminal failure.
pub const RETRY_ANNOTATION: &str = "capt.appthrust.io/retry";
/// The terminal failure that may recover only once the object is ready again.
const CONTROL_PLANE_TIMEOUT: &str = "ControlPlaneTimeout";

/// What differs between CAPTCluster and CAPTControlPlane.
pub trait Provider {
    /// The condition that is True while a terminal failure is recorded.
    const FAILED: &'static str;
    /// The condition that is True while provisioning runs (the provisioning clock).
    const PROGRESS: &'static str;
    /// The condition whose change to True is progress worth a Normal event of its own.
    const MILESTONE: &'static str;
    /// Which side of the Cluster this provider is.
    const SIDE: Side;

    /// The WorkspaceTemplateApply this object uses.
    fn apply_ref(me: Fields<'_>) -> Result<ObjectRef, Error>;

    /// Computes the live state into `draft` (ignoring any recorded failure) and registers the
    /// deadlines of the current wait.
    fn evaluate(
        ctx: &Ctx<'_>,
        subject: Subject<'_>,
        draft: &mut Draft,
        deadlines: &mut Deadlines,
    ) -> Result<Outcome, Halt>;

    /// Kind-specific conditions that follow from the evaluated outcome (Initialized, ...).
    fn finish(draft: &mut Draft, outcome: &Outcome);

    /// Kind-specific fields every status write carries, on every path (phase, `initialized`).
    fn summarize(draft: &mut Draft);
}

/// Reconciles the trigger object `me` of provider kind `P`.
pub fn reconcile<P: Provider>(ctx: &Ctx<'_>, me: Fields<'_>) -> Result<Response, Halt> {
    reconcile_kind(ctx, me, &Kind::of::<P>())
}

/// A [`Provider`] as values: the shared steps take this instead of a type parameter, so the
/// component holds one copy of them rather than one per kind.
struct Kind {
    failed: &'static str,
    progress: &'static str,
    milestone: &'static str,
    side: Side,
    apply_ref: fn(Fields<'_>) -> Result<ObjectRef, Error>,
    evaluate: fn(&Ctx<'_>, Subject<'_>, &mut Draft, &mut Deadlines) -> Result<Outcome, Halt>,
    finish: fn(&mut Draft, &Outcome),
    summarize: fn(&mut Draft),
}

impl Kind {
    fn of<P: Provider>() -> Self {
        Self {
            failed: P::FAILED,
            progress: P::PROGRESS,
            milestone: P::MILESTONE,
            side: P::SIDE,
            apply_ref: P::apply_ref,
            evaluate: P::evaluate,
            finish: P::finish,
            summarize: P::summarize,
        }
    }
}

/// How a reconcile ends, besides the draft: what the response carries.
#[derive(Default)]
struct Ending {
    /// The Ready reason is an error (transient or terminal): its event is a Warning.
    warning: bool,
    /// A terminal failure was recorded again after a recovery in this reconcile: its Warning
    /// is emitted again even though the Ready reason did not change.
    again: bool,
    /// Patches on the Cluster.
    propagation: Vec<Patch>,
    /// When to be called again.
    requeue: Option<u64>,
}

fn reconcile_kind(ctx: &Ctx<'_>, me: Fields<'_>, kind: &Kind) -> Result<Response, Halt> {
    let mut draft = Draft::new(me, ctx.now)?;
    let before = Before::of(&draft, kind.milestone);
    let resource_version = me.resource_version()?;
    let done = |mut draft: Draft, ending: Ending| {
        summarize(kind, &mut draft);
        respond(kind, draft, me.owner, before, resource_version, ending)
    };

    if me.annotation(PAUSED_ANNOTATION)?.is_some() {
        let why = format!(
            "Reconciliation is paused by the {PAUSED_ANNOTATION} annotation on {}",
            me.owner
        );
        return Ok(done(paused(draft, &why), Ending::default()));
    }
    let Some(cluster_ref) = owner_cluster(me)? else {
        draft.conditions.set(
            READY,
            Status::False,
            "WaitingForOwnerCluster",
            "Waiting for a Cluster API Cluster to set an owner reference",
        );
        return Ok(done(draft, Ending::default()));
    };
    ctx.inputs
        .require(&[cluster_ref.clone(), (kind.apply_ref)(me)?])?;
    let Some(cluster) = ctx.inputs.find(&cluster_ref) else {
        draft.conditions.set(
            READY,
            Status::False,
            "ClusterNotFound",
            &format!("Owner {cluster_ref} does not exist"),
        );
        let ending = Ending {
            warning: true,
            requeue: Some(ctx.settings.poll_interval.millis()),
            ..Ending::default()
        };
        return Ok(done(draft, ending));
    };
    if let Some(why) = cluster_pause(cluster)? {
        return Ok(done(paused(draft, &why), Ending::default()));
    }

    let subject = Subject { me, cluster };
    let decision = evaluate_with_failures(ctx, kind, subject, &mut draft)?;
    apply_outcome(kind, &mut draft, &decision.outcome);
    (kind.finish)(&mut draft, &decision.outcome);
    summarize(kind, &mut draft);
    let propagation = match ctx.settings.cluster_propagation {
        ClusterPropagation::Direct => propagation::patches(ctx, kind.side, subject, &draft)?,
        ClusterPropagation::None => Vec::new(),
    };
    let ending = Ending {
        warning: decision.outcome.is_error(),
        again: decision.recovered && decision.outcome.is_terminal(),
        propagation,
        requeue: decision.requeue,
    };
    Ok(done(draft, ending))
}

/// What the Cluster's pause says, if it pauses this object: its `spec.paused` or annotation.
fn cluster_pause(cluster: Fields<'_>) -> Result<Option<String>, Error> {
    Ok(if cluster.bool("spec.paused")? == Some(true) {
        Some(format!(
            "Reconciliation is paused by spec.paused of {}",
            cluster.owner
        ))
    } else if cluster.annotation(PAUSED_ANNOTATION)?.is_some() {
        Some(format!(
            "Reconciliation is paused by the {PAUSED_ANNOTATION} annotation on {}",
            cluster.owner
        ))
    } else {
        None
    })
}

/// The outcome of the evaluation, its requeue, and whether a terminal failure was cleared.
struct Decision {
    outcome: Outcome,
    requeue: Option<u64>,
    recovered: bool,
}

/// Decides the outcome, honouring a recorded terminal failure and its recovery (README,
/// "Errors"), and the requeue that goes with it.
fn evaluate_with_failures(
    ctx: &Ctx<'_>,
    kind: &Kind,
    subject: Subject<'_>,
    draft: &mut Draft,
) -> Result<Decision, Halt> {
    let me = subject.me;
    // An empty value is not a retry request; a value is new when it differs from the last one.
    let retry = me.annotation(RETRY_ANNOTATION)?.filter(|r| !r.is_empty());
    let retried = retry.is_some_and(|r| Some(r) != draft.str("lastRetry"));
    if let Some(value) = retry {
        draft.set("lastRetry", value);
    }
    let observed_generation = draft
        .status
        .get("observedGeneration")
        .and_then(|g| g.as_i64());
    let edited = observed_generation.is_some_and(|g| g != draft.generation);

    let Some(failure) = draft.failure() else {
        let floor = draft.conditions.since(kind.failed, Status::False);
        return Ok(run(ctx, kind, subject, draft, floor)?.decision(false));
    };
    if retried || edited {
        let why = if edited {
            "the spec was edited"
        } else {
            "the retry annotation changed"
        };
        recover(kind, draft, &failure, why);
        return Ok(run(ctx, kind, subject, draft, Some(ctx.now))?.decision(true));
    }
    if ctx.settings.auto_recover_reasons.contains(&failure.reason) {
        let mut trial = draft.clone();
        recover(kind, &mut trial, &failure, "its cause is gone");
        let attempt = run(ctx, kind, subject, &mut trial, Some(ctx.now))?;
        if attempt.cause_is_gone(&failure.reason) {
            *draft = trial;
            return Ok(attempt.decision(true));
        }
    }
    Ok(Decision {
        outcome: Outcome::terminal(&failure.reason, failure.message),
        requeue: None,
        recovered: false,
    })
}

/// One evaluation of the live state.
struct Run {
    outcome: Outcome,
    requeue: Option<u64>,
    deadlines: Deadlines,
}

impl Run {
    fn decision(self, recovered: bool) -> Decision {
        Decision {
            outcome: self.outcome,
            requeue: self.requeue,
            recovered,
        }
    }

    /// Whether what the wait of the terminal failure `reason` waited for has happened, with
    /// the clocks restarted (README, "autoRecoverReasons"): the control plane is ready for
    /// `ControlPlaneTimeout`; for the others, the state is not terminal and no longer waits
    /// under that deadline.
    fn cause_is_gone(&self, reason: &str) -> bool {
        if reason == CONTROL_PLANE_TIMEOUT {
            return matches!(self.outcome, Outcome::Ready { .. });
        }
        !self.outcome.is_terminal() && !self.deadlines.has(reason)
    }
}

/// Evaluates the live state, its clocks starting no earlier than `floor`; a passed deadline
/// turns it terminal.
fn run(
    ctx: &Ctx<'_>,
    kind: &Kind,
    subject: Subject<'_>,
    draft: &mut Draft,
    floor: Option<crate::time::Millis>,
) -> Result<Run, Halt> {
    let mut deadlines = Deadlines::new(floor, ctx.now);
    let mut outcome = (kind.evaluate)(ctx, subject, draft, &mut deadlines)?;
    if let (
        Outcome::Blocked {
            class: Class::Wait | Class::Transient { .. },
            ..
        },
        Some(fired),
    ) = (&outcome, deadlines.fired())
    {
        outcome = fired;
    }
    let requeue = deadlines.requeue(&outcome, ctx.settings);
    Ok(Run {
        outcome,
        requeue,
        deadlines,
    })
}

fn recover(kind: &Kind, draft: &mut Draft, failure: &Failure, why: &str) {
    draft.remove("failureReason");
    draft.remove("failureMessage");
    draft.conditions.set(
        kind.failed,
        Status::False,
        "Recovered",
        &format!("Recovered from {} because {why}", failure.reason),
    );
}

/// Writes the outcome into the shared fields: Ready, failure fields, the failure condition,
/// the record of a transient error.
fn apply_outcome(kind: &Kind, draft: &mut Draft, outcome: &Outcome) {
    let (reason, message) = outcome.reason_and_message();
    let message = bounded(message);
    match outcome {
        Outcome::Ready { .. } => draft.conditions.set(READY, Status::True, reason, &message),
        Outcome::Blocked { class, .. } => {
            draft.conditions.set(READY, Status::False, reason, &message);
            match class {
                Class::Terminal => {
                    draft.set("failureReason", reason);
                    draft.set("failureMessage", message.as_ref());
                    draft
                        .conditions
                        .set(kind.failed, Status::True, reason, &message);
                    draft
                        .conditions
                        .set(kind.progress, Status::False, reason, &message);
                }
                Class::Transient { .. } => {
                    draft.set_in(WTS, "lastFailureMessage", message.as_ref());
                }
                Class::Wait => {}
            }
        }
    }
    if !outcome.is_terminal() {
        match draft.conditions.get(kind.failed) {
            Some(c) if c.status == Status::False => {
                let (reason, message) = (c.reason.clone(), c.message.clone());
                draft
                    .conditions
                    .set(kind.failed, Status::False, &reason, &message);
            }
            _ => draft.conditions.set(
                kind.failed,
                Status::False,
                "NoFailure",
                "No terminal failure is recorded",
            ),
        }
    }
    draft.set("observedGeneration", draft.generation);
}

/// The fields every status write carries (README, "Invariants"): `ready` agrees with the Ready
/// condition, then the kind's own (phase, `initialized`).
fn summarize(kind: &Kind, draft: &mut Draft) {
    let ready = draft.conditions.is(READY, Status::True);
    draft.set("ready", ready);
    (kind.summarize)(draft);
}

/// Paused: only the Ready condition's reason and message change (README, "Paused").
fn paused<'a>(mut draft: Draft<'a>, why: &str) -> Draft<'a> {
    draft
        .conditions
        .set_reason(READY, Status::False, "Paused", why);
    draft
}

/// The owner reference to a Cluster API Cluster, if any (`controller` not required).
fn owner_cluster(me: Fields<'_>) -> Result<Option<ObjectRef>, Error> {
    for owner in me.array("metadata.ownerReferences")? {
        let owner = Fields::new(me.owner, owner);
        let api_version = owner.str("apiVersion")?.unwrap_or_default();
        if owner.str("kind")? == Some(kinds::CLUSTER)
            && crate::contract::group_of(api_version) == kinds::CLUSTER_API_GROUP
            && let Some(name) = owner.non_empty("name")?
        {
            return Ok(Some(kinds::cluster(me.owner.namespace.as_deref(), name)));
        }
    }
    Ok(None)
}

/// Assembles the response: own patches, then propagation; the events of the transitions.
fn respond(
    kind: &Kind,
    draft: Draft,
    regarding: &ObjectRef,
    before: Before,
    resource_version: Option<String>,
    ending: Ending,
) -> Response {
    let events = events::transitions(
        &draft,
        regarding,
        &before,
        kind.milestone,
        ending.warning,
        ending.again,
    );
    let mut patches = draft.patches(regarding, resource_version);
    patches.extend(ending.propagation);
    Response {
        patches,
        events,
        requeue_after_millis: ending.requeue,
        requirements: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::contract::EventType;
    use crate::fixtures::*;

    const T0: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn every_path_writes_ready_initialized_and_phase() {
        let mut cp = control_plane("demo");
        cp["metadata"]["ownerReferences"] = json!([]);
        let mut w = World::new(vec![cp]);
        w.reconcile("CAPTControlPlane", "demo", T0).unwrap();
        let status = &w.get("CAPTControlPlane", "demo")["status"];
        assert_eq!(
            (&status["ready"], &status["initialized"], &status["phase"]),
            (&json!(false), &json!(false), &json!("Creating"))
        );
        let mut w = World::new(vec![control_plane("demo")]);
        w.put(json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane",
            "metadata": {"name": "demo", "namespace": NS},
            "status": {"ready": true, "initialized": true, "phase": "Ready", "conditions": [
                {"type": "Ready", "status": "True", "reason": "ControlPlaneReady", "message": "m", "lastTransitionTime": T0}]}}));
        let r = w
            .reconcile("CAPTControlPlane", "demo", "2026-01-01T00:01:00Z")
            .unwrap();
        let cp = w.get("CAPTControlPlane", "demo");
        assert_eq!(state(cp, "Ready"), is("False", "ClusterNotFound"));
        assert_eq!(cp["status"]["phase"], "Creating");
        assert_eq!(cp["status"]["ready"], false);
        assert_eq!(cp["status"]["initialized"], true);
        assert_eq!(r.events[0].event_type, EventType::Warning);
    }

    #[test]
    fn an_empty_retry_annotation_is_no_retry() {
        let mut w = World::new(vec![cluster("demo"), capt_cluster("demo")]);
        w.reconcile("CAPTCluster", "demo", T0).unwrap();
        w.reconcile("CAPTCluster", "demo", "2026-01-01T00:10:00Z")
            .unwrap();
        w.put(json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster",
            "metadata": {"name": "demo", "namespace": NS, "annotations": {"capt.appthrust.io/retry": ""}}}));
        let r = w
            .reconcile("CAPTCluster", "demo", "2026-01-01T00:11:00Z")
            .unwrap();
        assert!(r.patches.is_empty(), "{:#?}", r.patches);
        assert_eq!(
            w.get("CAPTCluster", "demo")["status"]["failureReason"],
            "WorkspaceReadyTimeout"
        );
    }

    #[test]
    fn auto_recovery_waits_for_the_cause_and_restarts_the_clocks() {
        let mut w = World::new(vec![cluster("demo"), capt_cluster("demo")]);
        w.settings = json!({"autoRecoverReasons": ["WorkspaceReadyTimeout"]});
        w.reconcile("CAPTCluster", "demo", T0).unwrap();
        w.reconcile("CAPTCluster", "demo", "2026-01-01T00:10:00Z")
            .unwrap();
        let r = w
            .reconcile("CAPTCluster", "demo", "2026-01-01T00:11:00Z")
            .unwrap();
        assert!(r.patches.is_empty(), "the Workspace is still missing");
        put_applying(&mut w, "demo-vpc", "demo-vpc");
        let r = w
            .reconcile("CAPTCluster", "demo", "2026-01-01T00:12:00Z")
            .unwrap();
        let cc = w.get("CAPTCluster", "demo");
        assert_eq!(cc["status"]["failureReason"], json!(null));
        assert_eq!(state(cc, "VPCFailed"), is("False", "Recovered"));
        assert_eq!(
            condition(cc, "VPCCreating")["lastTransitionTime"],
            "2026-01-01T00:12:00Z"
        );
        assert_eq!(r.requeue_after_millis, Some(10_000));
    }
}

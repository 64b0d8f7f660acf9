//! The reconcile steps both kinds share (policy README, "Order of evaluation"): pause, owner
//! Cluster, terminal failures and their recovery, the Ready summary, propagation, events and
//! the requeue. What differs per kind is behind [`Provider`].

use crate::conditions::Status;
use crate::contract::{Error, Event, EventType, ObjectRef, Response};
use crate::draft::{Draft, Failure, READY};
use crate::inputs::{Fields, Halt, Inputs};
use crate::kinds;
use crate::outcome::{Class, Clocks, Deadlines, Outcome};
use crate::propagation::{self, Side};
use crate::settings::{ClusterPropagation, Settings};
use crate::time::Millis;

/// The annotation that pauses reconciliation (Cluster API).
pub const PAUSED_ANNOTATION: &str = "cluster.x-k8s.io/paused";
/// The annotation whose new value retries a terminal failure.
pub const RETRY_ANNOTATION: &str = "capt.appthrust.io/retry";

/// What one reconcile sees.
pub struct Ctx<'a> {
    /// The request's objects.
    pub inputs: &'a Inputs,
    /// The effective settings.
    pub settings: &'a Settings,
    /// The request's `now`.
    pub now: Millis,
}

/// The trigger object and its owner Cluster, once both are known.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    /// The trigger object.
    pub me: Fields<'a>,
    /// Its owner Cluster.
    pub cluster: Fields<'a>,
}

/// What differs between CAPTCluster and CAPTControlPlane.
pub trait Provider {
    /// The condition that is True while a terminal failure is recorded.
    const FAILED: &'static str;
    /// The condition that is True while provisioning runs (the provisioning clock).
    const PROGRESS: &'static str;
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

    /// Kind-specific fields that follow from the final outcome (phase, Initialized, ...).
    fn finish(draft: &mut Draft, outcome: &Outcome);
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
    side: Side,
    apply_ref: fn(Fields<'_>) -> Result<ObjectRef, Error>,
    evaluate: fn(&Ctx<'_>, Subject<'_>, &mut Draft, &mut Deadlines) -> Result<Outcome, Halt>,
    finish: fn(&mut Draft, &Outcome),
}

impl Kind {
    fn of<P: Provider>() -> Self {
        Self {
            failed: P::FAILED,
            progress: P::PROGRESS,
            side: P::SIDE,
            apply_ref: P::apply_ref,
            evaluate: P::evaluate,
            finish: P::finish,
        }
    }
}

fn reconcile_kind(ctx: &Ctx<'_>, me: Fields<'_>, kind: &Kind) -> Result<Response, Halt> {
    let mut draft = Draft::new(me, ctx.now)?;
    let before = draft.ready_state();
    let resource_version = me.resource_version()?;

    if me.annotation(PAUSED_ANNOTATION)?.is_some() {
        return Ok(paused(draft, me, before, resource_version));
    }
    let Some(cluster_ref) = owner_cluster(me)? else {
        draft.conditions.set(
            READY,
            Status::False,
            "WaitingForOwnerCluster",
            "Waiting for a Cluster API Cluster to set an owner reference",
        );
        draft.set("ready", false);
        return Ok(response(
            draft,
            me,
            before,
            resource_version,
            Vec::new(),
            None,
        ));
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
        draft.set("ready", false);
        let poll = Some(ctx.settings.poll_interval.millis());
        return Ok(response(
            draft,
            me,
            before,
            resource_version,
            Vec::new(),
            poll,
        ));
    };
    if cluster.bool("spec.paused")? == Some(true)
        || cluster.annotation(PAUSED_ANNOTATION)?.is_some()
    {
        return Ok(paused(draft, me, before, resource_version));
    }

    let subject = Subject { me, cluster };
    let (outcome, requeue) = evaluate_with_failures(ctx, kind, subject, &mut draft)?;
    apply_outcome(kind, &mut draft, &outcome);
    (kind.finish)(&mut draft, &outcome);

    let propagation = match ctx.settings.cluster_propagation {
        ClusterPropagation::Direct => propagation::patches(ctx, kind.side, subject, &draft)?,
        ClusterPropagation::None => Vec::new(),
    };
    Ok(response(
        draft,
        me,
        before,
        resource_version,
        propagation,
        requeue,
    ))
}

/// Decides the outcome, honouring a recorded terminal failure and its recovery (README,
/// "Errors"), and the requeue that goes with it.
fn evaluate_with_failures(
    ctx: &Ctx<'_>,
    kind: &Kind,
    subject: Subject<'_>,
    draft: &mut Draft,
) -> Result<(Outcome, Option<u64>), Halt> {
    let me = subject.me;
    let retry = me.annotation(RETRY_ANNOTATION)?;
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
        return run(ctx, kind, subject, draft, Clocks::Running { floor });
    };
    if retried || edited {
        let why = if edited {
            "the spec was edited"
        } else {
            "the retry annotation changed"
        };
        recover(kind, draft, &failure, why);
        return run(
            ctx,
            kind,
            subject,
            draft,
            Clocks::Running {
                floor: Some(ctx.now),
            },
        );
    }
    if ctx.settings.auto_recover_reasons.contains(&failure.reason) {
        let mut trial = draft.clone();
        let (outcome, requeue) = run(ctx, kind, subject, &mut trial, Clocks::Expired)?;
        if !outcome.is_terminal() {
            *draft = trial;
            recover(kind, draft, &failure, "its cause is gone");
            return Ok((outcome, requeue));
        }
    }
    Ok((Outcome::terminal(&failure.reason, failure.message), None))
}

/// Evaluates the live state; a passed deadline turns it terminal.
fn run(
    ctx: &Ctx<'_>,
    kind: &Kind,
    subject: Subject<'_>,
    draft: &mut Draft,
    clocks: Clocks,
) -> Result<(Outcome, Option<u64>), Halt> {
    let mut deadlines = Deadlines::new(clocks, ctx.now);
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
    Ok((outcome, requeue))
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

/// Writes the outcome into the shared fields: Ready, `ready`, failure fields and conditions.
fn apply_outcome(kind: &Kind, draft: &mut Draft, outcome: &Outcome) {
    let (reason, message) = outcome.reason_and_message();
    match outcome {
        Outcome::Ready { .. } => {
            draft.conditions.set(READY, Status::True, reason, message);
            draft.set("ready", true);
        }
        Outcome::Blocked { class, .. } => {
            draft.conditions.set(READY, Status::False, reason, message);
            draft.set("ready", false);
            if *class == Class::Terminal {
                draft.set("failureReason", reason);
                draft.set("failureMessage", message);
                draft
                    .conditions
                    .set(kind.failed, Status::True, reason, message);
                draft
                    .conditions
                    .set(kind.progress, Status::False, reason, message);
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

/// Paused: only the Ready condition's reason changes (README, "Order of evaluation").
fn paused(
    mut draft: Draft,
    me: Fields<'_>,
    before: Option<(Status, String)>,
    rv: Option<String>,
) -> Response {
    draft.conditions.set_reason(
        READY,
        Status::False,
        "Paused",
        "Reconciliation is paused (cluster.x-k8s.io/paused or Cluster spec.paused)",
    );
    response(draft, me, before, rv, Vec::new(), None)
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

/// Assembles the response: own patches, then propagation; an event if Ready changed.
fn response(
    draft: Draft,
    me: Fields<'_>,
    before: Option<(Status, String)>,
    resource_version: Option<String>,
    propagation: Vec<crate::contract::Patch>,
    requeue: Option<u64>,
) -> Response {
    let events = ready_event(&draft, me.owner, before).into_iter().collect();
    let mut patches = draft.patches(me.owner, resource_version);
    patches.extend(propagation);
    Response {
        patches,
        events,
        requeue_after_millis: requeue,
        requirements: Vec::new(),
    }
}

/// The event for a change of the Ready condition's status or reason (README, "Events").
fn ready_event(
    draft: &Draft,
    regarding: &ObjectRef,
    before: Option<(Status, String)>,
) -> Option<Event> {
    let ready = draft.conditions.get(READY)?;
    if before
        .as_ref()
        .is_some_and(|(s, r)| *s == ready.status && *r == ready.reason)
    {
        return None;
    }
    let warning = ready.status != Status::True && is_error_reason(draft, &ready.reason);
    Some(Event {
        regarding: regarding.clone(),
        event_type: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: ready.reason.clone(),
        message: ready.message.clone(),
    })
}

/// Reasons that are errors (transient or terminal), as opposed to waits.
fn is_error_reason(draft: &Draft, reason: &str) -> bool {
    draft.failure().is_some_and(|f| f.reason == reason)
        || matches!(
            reason,
            "WorkspaceError" | "InvalidEndpoint" | "ClusterNotFound"
        )
}

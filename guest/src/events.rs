//! The events of one reconcile (policy README, "Events"): one for each change of the `Ready`
//! condition's status or reason (a Warning when the new reason is an error), one Normal event
//! when the kind's milestone (`VPCReady`, `Initialized`) becomes True, and the Warning of a
//! terminal failure recorded again after a spec edit.

use crate::conditions::Status;
use crate::contract::{Event, EventType, ObjectRef};
use crate::draft::{Draft, READY};

/// What the conditions said before the reconcile.
pub struct Before {
    ready: Option<(Status, String)>,
    milestone: bool,
}

impl Before {
    /// The observed `Ready` status and reason, and whether `milestone` was True.
    pub fn of(draft: &Draft, milestone: &str) -> Self {
        Self {
            ready: draft
                .conditions
                .get(READY)
                .map(|c| (c.status, c.reason.clone())),
            milestone: draft.conditions.is(milestone, Status::True),
        }
    }
}

/// The events for what changed since `before`. `warning`: the Ready reason is an error;
/// `again`: emit the Ready event even when its reason is unchanged.
pub fn transitions(
    draft: &Draft,
    regarding: &ObjectRef,
    before: &Before,
    milestone: &str,
    warning: bool,
    again: bool,
) -> Vec<Event> {
    let mut events = Vec::new();
    let Some(ready) = draft.conditions.get(READY) else {
        return events;
    };
    let changed = again
        || before
            .ready
            .as_ref()
            .is_none_or(|(s, r)| *s != ready.status || *r != ready.reason);
    let event = |event_type, reason: &str, message: &str| Event {
        regarding: regarding.clone(),
        event_type,
        reason: reason.to_owned(),
        message: message.to_owned(),
    };
    if !before.milestone
        && let Some(reached) = draft
            .conditions
            .get(milestone)
            .filter(|c| c.status == Status::True)
        && !(changed && reached.reason == ready.reason)
    {
        events.push(event(EventType::Normal, &reached.reason, &reached.message));
    }
    if changed {
        let event_type = if warning && ready.status != Status::True {
            EventType::Warning
        } else {
            EventType::Normal
        };
        events.push(event(event_type, &ready.reason, &ready.message));
    }
    events
}

//! Checking a policy's response before anything of it is written.
//!
//! A policy may patch only what it was given: the trigger or an object sent to it in this
//! reconcile, of a kind among the `reads` of its metadata, conditioned on the resourceVersion
//! the object was sent with (`wit/policy.wit`, record `patch`). A module, or whoever writes the
//! objects it reads, therefore cannot make the operator write an object it never showed the
//! policy, nor overwrite a version the policy never saw. One patch that breaks the rule fails
//! the whole reconcile with [`ReconcileError::RefusedPatch`]: nothing of the response is
//! written, no event recorded. Each refusal is counted (`patches_refused_total{reason}`).

use std::collections::HashMap;

use capt_policy::{KindRef, Patch, group_of};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::error::{ReconcileError, Refusal};
use super::gather::Observed;
use super::kinds::ObjectKey;

/// Checks every patch of a response; the first one refused, if any.
pub(crate) fn check<'p>(
    patches: &'p [Patch],
    reads: &[KindRef],
    observed: &HashMap<ObjectKey, Observed>,
    metrics: &OutputMetrics,
) -> Result<(), Refused<'p>> {
    for patch in patches {
        if let Err(reason) = check_one(patch, reads, observed) {
            metrics
                .refused
                .get_or_create(&ReasonLabels {
                    reason: reason.label(),
                })
                .inc();
            return Err(Refused { patch, reason });
        }
    }
    Ok(())
}

/// A refused patch of a response, and why: [`ReconcileError::RefusedPatch`] once the
/// reconcile fails with it.
#[derive(Debug)]
pub(crate) struct Refused<'p> {
    patch: &'p Patch,
    reason: Refusal,
}

impl From<Refused<'_>> for ReconcileError {
    fn from(refused: Refused<'_>) -> Self {
        Self::RefusedPatch {
            target: refused.patch.target.clone(),
            reason: refused.reason,
        }
    }
}

fn check_one(
    patch: &Patch,
    reads: &[KindRef],
    observed: &HashMap<ObjectKey, Observed>,
) -> Result<(), Refusal> {
    let target = &patch.target;
    let read = reads
        .iter()
        .any(|kind| kind.kind == target.kind && group_of(&kind.api_version) == target.group());
    if !read {
        return Err(Refusal::KindNotRead);
    }
    // The trigger is always among the objects sent.
    let sent = observed
        .get(&ObjectKey::of(target))
        .ok_or(Refusal::NotSent)?;
    let patched = patch
        .resource_version
        .as_deref()
        .ok_or(Refusal::NoResourceVersion)?;
    if sent.resource_version.as_deref() != Some(patched) {
        return Err(Refusal::OtherResourceVersion {
            patched: patched.to_owned(),
            sent: sent.resource_version.clone().unwrap_or_default(),
        });
    }
    Ok(())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Metrics of the checks.
#[derive(Debug)]
pub(crate) struct OutputMetrics {
    refused: Family<ReasonLabels, Counter>,
}

impl OutputMetrics {
    /// Registers `patches_refused_total`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let refused = Family::default();
        registry.register(
            "patches_refused",
            "Policy responses refused, nothing of them written, by the reason of their first \
             refused patch (kind_not_read, not_sent, no_resource_version, other_resource_version)",
            refused.clone(),
        );
        Self { refused }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use capt_policy::{ObjectRef, Subresource};

    use super::*;

    fn thing(name: &str) -> ObjectRef {
        ObjectRef::new("example.com/v1", "Thing", Some("ns"), name)
    }

    fn patch(target: ObjectRef, version: Option<&str>) -> Patch {
        Patch {
            target,
            subresource: Subresource::Status,
            merge_patch: r#"{"status":{}}"#.into(),
            resource_version: version.map(Into::into),
        }
    }

    fn setup() -> (Vec<KindRef>, HashMap<ObjectKey, Observed>, OutputMetrics) {
        let reads = vec![KindRef {
            // Another version of the same group names the same kind.
            api_version: "example.com/v2".into(),
            kind: "Thing".into(),
            namespaced: true,
        }];
        let observed = HashMap::from([(
            ObjectKey::of(&thing("sent")),
            Observed {
                manifest: Arc::from("{}"),
                resource_version: Some("7".into()),
            },
        )]);
        let metrics = OutputMetrics::register(&mut Registry::default());
        (reads, observed, metrics)
    }

    fn refusal(patches: &[Patch]) -> Option<Refusal> {
        let (reads, observed, metrics) = setup();
        check(patches, &reads, &observed, &metrics)
            .err()
            .map(|refused| refused.reason)
    }

    #[test]
    fn a_patch_of_a_sent_object_at_its_version_passes() {
        assert_eq!(refusal(&[patch(thing("sent"), Some("7"))]), None);
    }

    #[test]
    fn patches_of_objects_not_given_or_without_their_version_are_refused() {
        assert_eq!(
            refusal(&[patch(thing("other"), Some("7"))]),
            Some(Refusal::NotSent)
        );
        assert_eq!(
            refusal(&[patch(thing("sent"), None)]),
            Some(Refusal::NoResourceVersion)
        );
        assert_eq!(
            refusal(&[patch(thing("sent"), Some("6"))]),
            Some(Refusal::OtherResourceVersion {
                patched: "6".into(),
                sent: "7".into()
            })
        );
        let secret = ObjectRef::new("v1", "Secret", Some("ns"), "sent");
        assert_eq!(
            refusal(&[patch(secret, Some("7"))]),
            Some(Refusal::KindNotRead)
        );
    }

    #[test]
    fn one_refused_patch_refuses_the_response_and_is_counted() {
        let (reads, observed, metrics) = setup();
        let patches = [
            patch(thing("sent"), Some("7")),
            patch(thing("other"), Some("1")),
        ];
        let error = check(&patches, &reads, &observed, &metrics).expect_err("refused");
        let error = ReconcileError::from(error);
        assert_eq!(
            error.to_string(),
            "refused the policy's patch of Thing/ns/other: the object was not sent to the \
             policy in this reconcile"
        );
        let count = metrics
            .refused
            .get_or_create(&ReasonLabels { reason: "not_sent" })
            .get();
        assert_eq!(count, 1);
    }
}

//! The requirement round protocol (`reconciler.reconcile` in `policy.wit`), over any
//! [`ObjectSource`].
//!
//! The first round sends the trigger alone, or with the objects the host already knows are
//! needed ([`reconcile_knowing`]). While a response lists `requirements`, the host fetches each
//! one, adds the ones that exist to `objects` and the others to `missing`, and calls again, at
//! most [`MAX_ROUNDS`] times. Only the final response is returned.

use capt_policy::{ObjectRef, ObservedObject, Request, Response};
use serde_json::Value;

use crate::policy::{BoxError, Policy, PolicyError};

/// The most calls one reconcile may take. A policy that reads a chain of owners needs one
/// round per link; 8 covers any realistic chain.
pub const MAX_ROUNDS: usize = 8;

/// Where the host gets objects from: the in-memory [`crate::world::World`], a Kubernetes
/// cache...
pub trait ObjectSource {
    /// Returns the object's complete manifest as JSON text, or `None` when it does not exist.
    /// Versions of one API group name the same object.
    fn get(&self, reference: &ObjectRef) -> Result<Option<String>, BoxError>;
}

/// Why a reconcile (all its rounds) failed.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// The trigger object does not exist: nothing to reconcile. Terminal (it was deleted).
    #[error("the trigger {0} does not exist")]
    TriggerMissing(ObjectRef),
    /// The policy failed; see [`PolicyError::is_transient`].
    #[error("the policy failed in round {round}")]
    Policy {
        /// The round (1-based) that failed.
        round: usize,
        /// What failed.
        #[source]
        source: PolicyError,
    },
    /// The policy still had requirements after [`MAX_ROUNDS`] rounds: a policy defect.
    /// Terminal.
    #[error(
        "the policy still requires {} after {MAX_ROUNDS} rounds",
        list(.pending)
    )]
    TooManyRounds {
        /// What the last response still required.
        pending: Vec<ObjectRef>,
    },
    /// The object source failed. Transient.
    #[error("could not fetch {reference}")]
    Source {
        /// The object being fetched.
        reference: ObjectRef,
        /// The source's error.
        #[source]
        source: BoxError,
    },
    /// The settings are not a JSON object, or not valid JSON.
    #[error("invalid settings: {0}")]
    Settings(String),
}

impl RoundError {
    /// True when reconciling again unchanged may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Policy { source, .. } => source.is_transient(),
            Self::Source { .. } => true,
            Self::TriggerMissing(_) | Self::TooManyRounds { .. } | Self::Settings(_) => false,
        }
    }
}

/// Reconciles `trigger` at `now_epoch_millis` with `settings` (JSON text; see
/// [`merge_settings`]), fetching what the policy requires from `source`, round after round.
pub fn reconcile(
    policy: &dyn Policy,
    source: &dyn ObjectSource,
    trigger: &ObjectRef,
    now_epoch_millis: i64,
    settings: &str,
) -> Result<Response, RoundError> {
    reconcile_knowing(policy, source, trigger, &[], now_epoch_millis, settings)
}

/// [`reconcile`], with the objects of `known` fetched for the first round already (the
/// contract's "anything it already knows is needed"): an operator passes what the trigger's
/// previous reconcile read, so that a reconcile whose needs did not change takes one call.
/// Objects the policy does not need are only extra work; it ignores them. Known objects that
/// do not exist are left out rather than listed as missing (the policy asks for them again if
/// it still needs them), so an object a trigger stopped needing is dropped once it is gone.
pub fn reconcile_knowing(
    policy: &dyn Policy,
    source: &dyn ObjectSource,
    trigger: &ObjectRef,
    known: &[ObjectRef],
    now_epoch_millis: i64,
    settings: &str,
) -> Result<Response, RoundError> {
    // Policy log records are attached to the reconcile they belong to.
    let _span = tracing::info_span!("reconcile", trigger = %trigger, now_epoch_millis).entered();
    let fetch = |reference: &ObjectRef| {
        source.get(reference).map_err(|source| RoundError::Source {
            reference: reference.clone(),
            source,
        })
    };
    let manifest = fetch(trigger)?.ok_or_else(|| RoundError::TriggerMissing(trigger.clone()))?;
    let mut request = Request {
        trigger: trigger.clone(),
        now_epoch_millis,
        objects: vec![ObservedObject {
            reference: trigger.clone(),
            manifest,
        }],
        missing: vec![],
        settings: settings.to_owned(),
    };
    let add = |request: &mut Request, reference: ObjectRef, required: bool| {
        let present = request
            .objects
            .iter()
            .map(|o| &o.reference)
            .chain(&request.missing)
            .any(|r| r.same_object(&reference));
        if !present {
            match fetch(&reference)? {
                Some(manifest) => request.objects.push(ObservedObject {
                    reference,
                    manifest,
                }),
                None if required => request.missing.push(reference),
                None => {}
            }
        }
        Ok(())
    };
    for reference in known {
        add(&mut request, reference.clone(), false)?;
    }
    let mut round = 0;
    loop {
        round += 1;
        let response = policy
            .reconcile(&request)
            .map_err(|source| RoundError::Policy { round, source })?;
        if response.requirements.is_empty() {
            return Ok(response);
        }
        if round == MAX_ROUNDS {
            return Err(RoundError::TooManyRounds {
                pending: response.requirements,
            });
        }
        for reference in response.requirements {
            add(&mut request, reference, true)?;
        }
    }
}

/// The settings a policy runs with: its `default_settings` merged (RFC 7396) with
/// `overrides`, as JSON text. Both must be JSON objects.
pub fn merge_settings(
    default_settings: &str,
    overrides: Option<&Value>,
) -> Result<String, RoundError> {
    let mut settings: Value = serde_json::from_str(default_settings)
        .map_err(|e| RoundError::Settings(format!("the policy's default settings: {e}")))?;
    if !settings.is_object() {
        return Err(RoundError::Settings(
            "the policy's default settings are not a JSON object".into(),
        ));
    }
    if let Some(overrides) = overrides {
        if !overrides.is_object() {
            return Err(RoundError::Settings(format!(
                "the overrides are not an object: {overrides}"
            )));
        }
        json_patch::merge(&mut settings, overrides);
    }
    Ok(settings.to_string())
}

fn list(refs: &[ObjectRef]) -> String {
    refs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use capt_policy::{Error, Metadata};
    use serde_json::json;

    use super::*;

    /// A policy that requires `chain[i + 1]` once it has seen `chain[i]`, and records requests.
    struct ChainPolicy {
        metadata: Metadata,
        chain: Vec<ObjectRef>,
        requests: RefCell<Vec<Request>>,
    }

    impl ChainPolicy {
        fn new(chain: Vec<ObjectRef>) -> Self {
            Self {
                metadata: Metadata {
                    name: "chain".into(),
                    version: "0.0.0".into(),
                    triggers: vec![],
                    reads: vec![],
                    default_settings: "{}".into(),
                },
                chain,
                requests: RefCell::default(),
            }
        }
    }

    impl Policy for ChainPolicy {
        fn metadata(&self) -> &Metadata {
            &self.metadata
        }

        fn reconcile(&self, request: &Request) -> Result<Response, PolicyError> {
            self.requests.borrow_mut().push(request.clone());
            let seen = |r: &ObjectRef| {
                request.objects.iter().any(|o| o.reference.same_object(r))
                    || request.missing.iter().any(|m| m.same_object(r))
            };
            let next = self.chain.iter().find(|r| !seen(r)).cloned();
            if request.missing.iter().any(|m| m.name == "fail") {
                return Err(PolicyError::Rejected(Error::InvalidInput("fail".into())));
            }
            Ok(Response {
                requirements: next.into_iter().collect(),
                ..Response::default()
            })
        }
    }

    struct Objects(BTreeMap<String, String>);

    impl ObjectSource for Objects {
        fn get(&self, reference: &ObjectRef) -> Result<Option<String>, BoxError> {
            Ok(self.0.get(&reference.name).cloned())
        }
    }

    fn object(name: &str) -> ObjectRef {
        ObjectRef::new("example.com/v1", "Thing", Some("ns"), name)
    }

    fn source(names: &[&str]) -> Objects {
        Objects(
            names
                .iter()
                .map(|n| (n.to_string(), json!({"metadata": {"name": n}}).to_string()))
                .collect(),
        )
    }

    #[test]
    fn requirements_are_fetched_into_objects_or_missing_until_none_remain() {
        let policy = ChainPolicy::new(vec![object("a"), object("b"), object("c")]);
        let response = reconcile(&policy, &source(&["a", "c"]), &object("a"), 7, "{}").unwrap();
        assert!(response.requirements.is_empty());
        let requests = policy.requests.borrow();
        assert_eq!(requests.len(), 3, "trigger alone, then b, then c");
        let last = requests.last().unwrap();
        let names: Vec<_> = last
            .objects
            .iter()
            .map(|o| o.reference.name.as_str())
            .collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(last.missing, [object("b")]);
        assert_eq!(last.now_epoch_millis, 7);
    }

    #[test]
    fn known_objects_are_in_the_first_round_and_save_the_rounds_they_answer() {
        let policy = ChainPolicy::new(vec![object("a"), object("b"), object("c")]);
        let known = [object("b"), object("c"), object("a"), object("x")];
        let response = reconcile_knowing(
            &policy,
            &source(&["a", "c", "x"]),
            &object("a"),
            &known,
            7,
            "{}",
        )
        .unwrap();
        assert!(response.requirements.is_empty());
        let requests = policy.requests.borrow();
        assert_eq!(requests.len(), 2, "everything known, then b");
        let names: Vec<_> = requests[0]
            .objects
            .iter()
            .map(|o| o.reference.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["a", "c", "x"],
            "the trigger once, then the known objects"
        );
        assert!(
            requests[0].missing.is_empty(),
            "a known object that is gone is left out"
        );
        assert_eq!(requests[1].missing, [object("b")], "until it is required");
    }

    #[test]
    fn a_policy_that_keeps_requiring_fails_after_the_bound() {
        let chain = (0..=MAX_ROUNDS).map(|i| object(&i.to_string())).collect();
        let policy = ChainPolicy::new(chain);
        let err = reconcile(&policy, &source(&["0"]), &object("0"), 0, "{}").unwrap_err();
        assert!(matches!(err, RoundError::TooManyRounds { .. }), "{err}");
        assert_eq!(policy.requests.borrow().len(), MAX_ROUNDS);
        assert!(!err.is_transient());
    }

    #[test]
    fn a_missing_trigger_is_not_reconciled() {
        let policy = ChainPolicy::new(vec![]);
        let err = reconcile(&policy, &source(&[]), &object("a"), 0, "{}").unwrap_err();
        assert!(matches!(err, RoundError::TriggerMissing(_)));
        assert!(policy.requests.borrow().is_empty());
    }

    #[test]
    fn policy_errors_name_the_round() {
        let policy = ChainPolicy::new(vec![object("a"), object("fail")]);
        let err = reconcile(&policy, &source(&["a"]), &object("a"), 0, "{}").unwrap_err();
        assert!(matches!(err, RoundError::Policy { round: 2, .. }), "{err}");
    }

    #[test]
    fn settings_overrides_are_merged_into_the_defaults() {
        let merged = merge_settings(
            r#"{"a": 1, "nested": {"b": 2, "c": 3}}"#,
            Some(&json!({"nested": {"c": null, "d": 4}})),
        )
        .unwrap();
        let merged: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(merged, json!({"a": 1, "nested": {"b": 2, "d": 4}}));
        assert!(merge_settings("[]", None).is_err());
        assert!(merge_settings("{}", Some(&json!(3))).is_err());
    }
}

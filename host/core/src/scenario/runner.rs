//! Runs a [`Scenario`] against a [`Policy`] over an in-memory [`World`].

use capt_policy::{Event, ObjectRef, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::format::{Expect, Scenario, Selector, Step};
use super::matching;
use crate::policy::Policy;
use crate::rounds;
use crate::view;
use crate::world::World;

/// What running a scenario found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario's name.
    pub name: String,
    /// Failed expectations and setup errors; empty when the scenario passed.
    pub failures: Vec<Failure>,
    /// Every reconcile, in order: the patch stream the parity tests compare.
    pub records: Vec<Record>,
}

impl Outcome {
    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One failed expectation (or a step that could not run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The step (1-based); 0 for the scenario's setup.
    pub step: usize,
    /// What went wrong.
    pub message: String,
    /// A unified diff, expected vs actual YAML, when there is something to compare.
    pub diff: Option<String>,
}

/// One reconcile of a step and what it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The step (1-based).
    pub step: usize,
    /// The trigger reconciled.
    pub trigger: ObjectRef,
    /// The final response, or the error's message (with its causes).
    pub result: Result<Response, String>,
}

/// Runs `scenario` against `policy`. Stops after the first step with a failure (later steps
/// would only report its consequences).
pub fn run(scenario: &Scenario, policy: &dyn Policy) -> Outcome {
    let mut run = Run {
        outcome: Outcome {
            name: scenario.name.clone(),
            failures: vec![],
            records: vec![],
        },
        world: World::new(),
    };
    if let Err(failure) = run.all(scenario, policy) {
        run.outcome.failures.push(failure);
    }
    run.outcome
}

struct Run {
    outcome: Outcome,
    world: World,
}

impl Run {
    /// Runs every step; an `Err` is a failure that stops the scenario before its expectations.
    fn all(&mut self, scenario: &Scenario, policy: &dyn Policy) -> Result<(), Failure> {
        let setup = |message: String| Failure {
            step: 0,
            message,
            diff: None,
        };
        let settings = rounds::merge_settings(
            &policy.metadata().default_settings,
            scenario.settings.as_ref(),
        )
        .map_err(|e| setup(e.to_string()))?;
        let first = scenario
            .steps
            .first()
            .ok_or_else(|| setup("the scenario has no steps".into()))?;
        let mut now = first
            .at
            .ok_or_else(|| setup("the first step needs `at` (an RFC 3339 time)".into()))?;
        for (i, manifest) in scenario.objects.iter().enumerate() {
            self.world
                .apply(manifest.clone(), now)
                .map_err(|e| setup(format!("objects[{i}]: {e}")))?;
        }
        for (index, step) in scenario.steps.iter().enumerate() {
            let number = index + 1;
            now = match (step.at, step.after) {
                (Some(_), Some(_)) => {
                    return Err(Failure {
                        step: number,
                        message: "give `at` or `after`, not both".into(),
                        diff: None,
                    });
                }
                (Some(at), None) => at,
                (None, Some(after)) => now + after,
                (None, None) => now,
            };
            let failures = self.step(number, step, now, policy, &settings);
            let failed = !failures.is_empty();
            self.outcome.failures.extend(failures);
            if failed {
                if number < scenario.steps.len() {
                    self.outcome.failures.push(Failure {
                        step: number,
                        message: format!("steps {}.. skipped", number + 1),
                        diff: None,
                    });
                }
                break;
            }
        }
        Ok(())
    }

    /// Runs one step and checks its expectations.
    fn step(
        &mut self,
        number: usize,
        step: &Step,
        now: DateTime<Utc>,
        policy: &dyn Policy,
        settings: &str,
    ) -> Vec<Failure> {
        let fail = |message: String| Failure {
            step: number,
            message,
            diff: None,
        };
        for manifest in &step.apply {
            if let Err(e) = self.world.apply(manifest.clone(), now) {
                return vec![fail(format!("apply: {e}"))];
            }
        }
        for selector in &step.delete {
            match locate(&self.world, selector) {
                Ok(Some(reference)) => {
                    self.world.delete(&reference);
                }
                Ok(None) => return vec![fail(format!("delete: {selector} does not exist"))],
                Err(e) => return vec![fail(format!("delete: {e}"))],
            }
        }
        let triggers = match self.triggers(step, policy) {
            Ok(triggers) => triggers,
            Err(e) => return vec![fail(format!("reconcile: {e}"))],
        };

        let mut failures = vec![];
        let first_record = self.outcome.records.len();
        for trigger in triggers {
            let result = rounds::reconcile(
                policy,
                &self.world,
                &trigger,
                now.timestamp_millis(),
                settings,
            )
            .map_err(|e| crate::error_chain(&e));
            if let Ok(response) = &result {
                match self.world.apply_response(&response.patches) {
                    Err(e) => failures.push(fail(format!(
                        "applying the patches of the reconcile of {trigger}: {e}"
                    ))),
                    Ok(()) if !response.patches.is_empty() => {
                        let now = now.timestamp_millis();
                        if let Err((message, diff)) =
                            settled(policy, &self.world, &trigger, now, settings)
                        {
                            failures.push(Failure {
                                step: number,
                                message,
                                diff,
                            });
                        }
                    }
                    Ok(()) => {}
                }
            }
            if let (Err(message), None) = (&result, &step.expect.error) {
                failures.push(fail(format!(
                    "the reconcile of {trigger} failed: {message}"
                )));
            }
            self.outcome.records.push(Record {
                step: number,
                trigger,
                result,
            });
        }
        let records = &self.outcome.records[first_record..];
        failures.extend(check(&self.world, &step.expect, records).into_iter().map(
            |(message, diff)| Failure {
                step: number,
                message,
                diff,
            },
        ));
        failures
    }

    /// The step's triggers: those it names, or every object of every trigger kind.
    fn triggers(&self, step: &Step, policy: &dyn Policy) -> Result<Vec<ObjectRef>, String> {
        match &step.reconcile {
            Some(selectors) => selectors
                .iter()
                .map(|s| locate(&self.world, s)?.ok_or_else(|| format!("{s} does not exist")))
                .collect(),
            None => Ok(policy
                .metadata()
                .triggers
                .iter()
                .flat_map(|kind| {
                    let group = capt_policy::group_of(&kind.api_version);
                    self.world
                        .objects()
                        .map(|(reference, _)| reference)
                        .filter(move |r| r.kind == kind.kind && r.group() == group)
                })
                .collect()),
        }
    }
}

/// Checks that the reconcile of `trigger` whose patches `world` just took settled it: called
/// again at the same time, the policy writes nothing more. Operators rely on it: they do not
/// re-run a trigger for the changes its own writes cause (see `reconcile` in `policy.wit`).
fn settled(
    policy: &dyn Policy,
    world: &World,
    trigger: &ObjectRef,
    now: i64,
    settings: &str,
) -> Result<(), (String, Option<String>)> {
    let again = rounds::reconcile(policy, world, trigger, now, settings).map_err(|e| {
        let e = crate::error_chain(&e);
        (
            format!("reconciling {trigger} again right after its own patches failed: {e}"),
            None,
        )
    })?;
    let mut after = world.clone();
    let applied = after.apply_response(&again.patches);
    for patch in &again.patches {
        let (before, now) = (world.get(&patch.target), after.get(&patch.target));
        if before != now {
            let message = format!(
                "not settled: reconciled again right after its own patches, {trigger} writes {} \
                 again (a response must settle its trigger: see `reconcile` in policy.wit)",
                patch.target
            );
            let diff = matching::diff(before.unwrap_or(&Value::Null), now.unwrap_or(&Value::Null));
            return Err((message, Some(diff)));
        }
    }
    applied.map_err(|e| {
        (
            format!("reconciling {trigger} again right after its own patches: {e}"),
            None,
        )
    })
}

/// Checks a step's expectations; each failure is a message and maybe a diff.
fn check(world: &World, expect: &Expect, records: &[Record]) -> Vec<(String, Option<String>)> {
    let mut failures = vec![];
    for expected in &expect.objects {
        let selector = match selector_of(expected) {
            Ok(selector) => selector,
            Err(e) => {
                failures.push((format!("expect.objects: {e}"), None));
                continue;
            }
        };
        let actual = match locate(world, &selector) {
            Ok(Some(reference)) => world.get(&reference).cloned().unwrap_or_default(),
            Ok(None) => {
                failures.push((format!("expected object {selector} does not exist"), None));
                continue;
            }
            Err(e) => {
                failures.push((format!("expect.objects: {e}"), None));
                continue;
            }
        };
        let mismatches = matching::mismatches(expected, Some(&actual));
        if !mismatches.is_empty() {
            failures.push((
                format!(
                    "object {selector} does not match:\n  {}",
                    mismatches.join("\n  ")
                ),
                Some(matching::diff(
                    expected,
                    &matching::prune(&actual, expected),
                )),
            ));
        }
    }
    for selector in &expect.absent {
        match locate(world, selector) {
            Ok(None) => {}
            Ok(Some(reference)) => {
                failures.push((format!("{reference} exists, but should be absent"), None))
            }
            Err(e) => failures.push((format!("expect.absent: {e}"), None)),
        }
    }
    if let Some(requeue) = &expect.requeue_after {
        match records.last().map(|r| &r.result) {
            None => failures.push((
                "expect.requeueAfter: no reconcile ran in this step".into(),
                None,
            )),
            Some(Err(_)) => failures.push((
                "expect.requeueAfter: the last reconcile failed".into(),
                None,
            )),
            Some(Ok(response)) if requeue.accepts(response.requeue_after_millis) => {}
            Some(Ok(response)) => failures.push((
                format!(
                    "expected requeueAfter {requeue}, got {}",
                    response
                        .requeue_after_millis
                        .map_or("none".into(), capt_policy::duration::format_millis)
                ),
                None,
            )),
        }
    }
    let responses = || records.iter().filter_map(|r| r.result.as_ref().ok());
    if let Some(expected) = &expect.events {
        let events: Vec<&Event> = responses().flat_map(|r| &r.events).collect();
        let actual = Value::Array(
            events
                .into_iter()
                .map(|e| view::to_json(&view::event(e)))
                .collect(),
        );
        let expected = Value::Array(expected.clone());
        let mismatches = matching::mismatches(&expected, Some(&actual));
        if !mismatches.is_empty() {
            failures.push((
                format!("events do not match:\n  {}", mismatches.join("\n  ")),
                Some(matching::diff(
                    &expected,
                    &matching::prune(&actual, &expected),
                )),
            ));
        }
    }
    if let Some(expected) = expect.patches {
        let patches: Vec<_> = responses()
            .flat_map(|r| &r.patches)
            .map(view::patch)
            .collect();
        if patches.len() != expected {
            failures.push((
                format!(
                    "expected {expected} patches, got {}:\n{}",
                    patches.len(),
                    view::to_yaml(&patches)
                ),
                None,
            ));
        }
    }
    if let Some(expected) = &expect.error {
        let errors: Vec<&String> = records
            .iter()
            .filter_map(|r| r.result.as_ref().err())
            .collect();
        if !errors.iter().any(|e| e.contains(expected.as_str())) {
            let got = if errors.is_empty() {
                "every reconcile succeeded".to_owned()
            } else {
                format!(
                    "got: {}",
                    errors
                        .iter()
                        .map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            failures.push((
                format!("expected a reconcile error containing {expected:?}; {got}"),
                None,
            ));
        }
    }
    failures
}

/// The selector an expected (partial) manifest names.
fn selector_of(manifest: &Value) -> Result<Selector, String> {
    let text = |value: &Value| value.as_str().map(str::to_owned);
    Ok(Selector {
        api_version: text(&manifest["apiVersion"]),
        kind: text(&manifest["kind"]).ok_or("an expected object needs `kind`")?,
        namespace: text(&manifest["metadata"]["namespace"]),
        name: text(&manifest["metadata"]["name"])
            .ok_or("an expected object needs `metadata.name`")?,
    })
}

/// The one object `selector` names: `Ok(None)` if none, an error if several.
pub fn locate(world: &World, selector: &Selector) -> Result<Option<ObjectRef>, String> {
    let group = selector.api_version.as_deref().map(capt_policy::group_of);
    let found: Vec<ObjectRef> = world
        .objects()
        .map(|(reference, _)| reference)
        .filter(|r| {
            r.kind == selector.kind
                && r.name == selector.name
                && selector
                    .namespace
                    .as_ref()
                    .is_none_or(|ns| r.namespace.as_ref() == Some(ns))
                && group.is_none_or(|g| r.group() == g)
        })
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        many => Err(format!(
            "{selector} is ambiguous (it matches {}); give apiVersion and namespace",
            many.iter()
                .map(|r| format!("{} {r}", r.api_version))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use capt_policy::{Error, EventType, KindRef, Metadata, Patch, Request, Subresource};
    use serde_json::json;

    use super::*;
    use crate::policy::PolicyError;

    /// Mirrors `spec.size` into `status.size` (with an event), requires the object named by
    /// `spec.owner`, fails when `spec.fail` is set, records the version it read when
    /// `spec.restless` is set, and requeues after 10 s.
    struct Mirror(Metadata);

    impl Mirror {
        fn new() -> Self {
            Self(Metadata {
                name: "mirror".into(),
                version: "0.0.0".into(),
                triggers: vec![KindRef {
                    api_version: "example.com/v1".into(),
                    kind: "Thing".into(),
                    namespaced: true,
                }],
                reads: vec![],
                default_settings: r#"{"factor": 1}"#.into(),
            })
        }
    }

    impl Policy for Mirror {
        fn metadata(&self) -> &Metadata {
            &self.0
        }

        fn reconcile(&self, request: &Request) -> Result<Response, PolicyError> {
            let manifest: Value = serde_json::from_str(&request.objects[0].manifest).unwrap();
            let settings: Value = serde_json::from_str(&request.settings).unwrap();
            if manifest["spec"]["fail"] == json!(true) {
                return Err(PolicyError::Rejected(Error::InvalidInput(
                    "fail requested".into(),
                )));
            }
            if let Some(owner) = manifest["spec"]["owner"].as_str() {
                let owner = ObjectRef::new("example.com/v1", "Owner", Some("ns"), owner);
                let seen = request.objects.iter().any(|o| o.reference == owner)
                    || request.missing.contains(&owner);
                if !seen {
                    return Ok(Response {
                        requirements: vec![owner],
                        ..Response::default()
                    });
                }
            }
            let size = manifest["spec"]["size"].as_i64().unwrap_or(0)
                * settings["factor"].as_i64().unwrap();
            let mut desired = json!({"size": size, "ownerMissing": !request.missing.is_empty()});
            if manifest["spec"]["restless"] == json!(true) {
                // Never settles: each write changes the version it records.
                desired["observedVersion"] = manifest["metadata"]["resourceVersion"].clone();
            }
            let mut response = Response {
                requeue_after_millis: Some(10_000),
                ..Response::default()
            };
            if manifest["status"] != desired {
                response.patches.push(Patch {
                    target: request.trigger.clone(),
                    subresource: Subresource::Status,
                    merge_patch: json!({"status": desired}).to_string(),
                    // `spec.stale` simulates a policy computing from an outdated read.
                    resource_version: if manifest["spec"]["stale"] == json!(true) {
                        Some("999".into())
                    } else {
                        manifest["metadata"]["resourceVersion"]
                            .as_str()
                            .map(str::to_owned)
                    },
                });
                response.events.push(Event {
                    regarding: request.trigger.clone(),
                    event_type: EventType::Normal,
                    reason: "Resized".into(),
                    message: format!("size is now {size}"),
                });
            }
            Ok(response)
        }
    }

    fn scenario(yaml: &str) -> Scenario {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const OBJECTS: &str = r#"
objects:
  - {apiVersion: example.com/v1, kind: Thing, metadata: {namespace: ns, name: a}, spec: {size: 2}}
"#;

    fn run_yaml(steps: &str) -> Outcome {
        run(
            &scenario(&format!("name: t\n{OBJECTS}{steps}")),
            &Mirror::new(),
        )
    }

    fn messages(outcome: &Outcome) -> Vec<&str> {
        outcome
            .failures
            .iter()
            .map(|f| f.message.as_str())
            .collect()
    }

    #[test]
    fn a_passing_scenario_records_every_reconcile() {
        let outcome = run_yaml(
            r#"
steps:
  - at: "2026-01-01T00:00:00Z"
    expect:
      objects: [{apiVersion: example.com/v1, kind: Thing, metadata: {name: a, generation: 1}, status: {size: 2}}]
      events: [{type: Normal, reason: Resized}]
      patches: 1
      requeueAfter: 10s
  - after: 1m
    reconcile: {kind: Thing, namespace: ns, name: a}
    expect: {patches: 0, events: [], requeueAfter: {min: 5s, max: 1m}}
"#,
        );
        assert!(outcome.passed(), "{:#?}", outcome.failures);
        assert_eq!(outcome.records.len(), 2);
        assert_eq!(outcome.records[1].step, 2);
    }

    #[test]
    fn a_failed_expectation_has_a_message_and_a_diff_and_stops_the_scenario() {
        let outcome = run_yaml(
            r#"
steps:
  - at: "2026-01-01T00:00:00Z"
    expect:
      objects: [{kind: Thing, metadata: {name: a}, status: {size: 3}}]
      requeueAfter: none
  - {}
"#,
        );
        assert_eq!(
            messages(&outcome),
            [
                "object Thing/a does not match:\n  at .status.size: expected 3, got 2",
                "expected requeueAfter none, got 10s",
                "steps 2.. skipped",
            ]
        );
        let diff = outcome.failures[0].diff.as_deref().unwrap();
        assert!(diff.contains("-  size: 3\n+  size: 2"), "{diff}");
        assert_eq!(outcome.records.len(), 1, "step 2 did not run");
    }

    #[test]
    fn user_applies_bump_generation_and_settings_override_defaults() {
        let outcome = run(
            &scenario(&format!(
                r#"
name: t
settings: {{factor: 10}}
{OBJECTS}
steps:
  - at: "2026-01-01T00:00:00Z"
    apply: [{{apiVersion: example.com/v1, kind: Thing, metadata: {{namespace: ns, name: a, annotations: {{x: y}}}}, spec: {{size: 3}}}}]
    expect:
      objects: [{{kind: Thing, metadata: {{name: a, generation: 2, annotations: {{x: y}}}}, status: {{size: 30}}}}]
"#
            )),
            &Mirror::new(),
        );
        assert!(outcome.passed(), "{:#?}", outcome.failures);
    }

    #[test]
    fn requirements_are_served_from_the_world() {
        let outcome = run_yaml(
            r#"
steps:
  - at: "2026-01-01T00:00:00Z"
    apply: [{apiVersion: example.com/v1, kind: Thing, metadata: {namespace: ns, name: a}, spec: {owner: o}}]
    expect: {objects: [{kind: Thing, metadata: {name: a}, status: {ownerMissing: true}}]}
  - apply: [{apiVersion: example.com/v1, kind: Owner, metadata: {namespace: ns, name: o}}]
    expect: {objects: [{kind: Thing, metadata: {name: a}, status: {ownerMissing: false}}]}
"#,
        );
        assert!(outcome.passed(), "{:#?}", outcome.failures);
    }

    #[test]
    fn reconcile_errors_fail_unless_expected() {
        let failing = r#"
steps:
  - at: "2026-01-01T00:00:00Z"
    apply: [{apiVersion: example.com/v1, kind: Thing, metadata: {namespace: ns, name: a}, spec: {fail: true}}]
"#;
        let outcome = run_yaml(failing);
        assert_eq!(
            messages(&outcome),
            [
                "the reconcile of Thing/ns/a failed: the policy failed in round 1: the policy rejected the request: invalid input: fail requested"
            ]
        );
        let outcome = run_yaml(&format!("{failing}    expect: {{error: fail requested}}\n"));
        assert!(outcome.passed(), "{:#?}", outcome.failures);
        let outcome = run_yaml(&format!("{failing}    expect: {{error: other}}\n"));
        assert_eq!(
            messages(&outcome),
            [
                "expected a reconcile error containing \"other\"; got: the policy failed in round 1: the policy rejected the request: invalid input: fail requested"
            ]
        );
        let outcome = run_yaml("steps:\n  - {at: \"2026-01-01T00:00:00Z\", expect: {error: x}}\n");
        assert_eq!(
            messages(&outcome),
            [r#"expected a reconcile error containing "x"; every reconcile succeeded"#]
        );
    }

    #[test]
    fn a_response_that_does_not_settle_its_trigger_is_a_failure() {
        let outcome = run_yaml(
            r#"
steps:
  - at: "2026-01-01T00:00:00Z"
    apply: [{apiVersion: example.com/v1, kind: Thing, metadata: {namespace: ns, name: a}, spec: {restless: true}}]
"#,
        );
        assert_eq!(
            messages(&outcome),
            [
                "not settled: reconciled again right after its own patches, Thing/ns/a writes \
                 Thing/ns/a again (a response must settle its trigger: see `reconcile` in policy.wit)"
            ]
        );
        let diff = outcome.failures[0].diff.as_deref().unwrap();
        assert!(diff.contains("-  observedVersion: '2'"), "{diff}");
        assert!(diff.contains("+  observedVersion: '3'"), "{diff}");
    }

    #[test]
    fn a_conflict_while_applying_patches_is_a_failure() {
        let outcome = run_yaml(
            r#"
steps:
  - at: "2026-01-01T00:00:00Z"
    apply: [{apiVersion: example.com/v1, kind: Thing, metadata: {namespace: ns, name: a}, spec: {stale: true}}]
"#,
        );
        assert_eq!(
            messages(&outcome),
            [
                "applying the patches of the reconcile of Thing/ns/a: conflict: the patch of Thing/ns/a \
              requires resourceVersion 999, but the object is at 2"
            ]
        );
    }

    #[test]
    fn deletes_absent_and_empty_reconcile_lists() {
        let outcome = run_yaml(
            r#"
steps:
  - at: "2026-01-01T00:00:00Z"
    delete: [{kind: Thing, name: a}]
    reconcile: []
    expect: {absent: [{kind: Thing, namespace: ns, name: a}], patches: 0}
  - delete: [{kind: Thing, name: a}]
"#,
        );
        assert_eq!(messages(&outcome), ["delete: Thing/a does not exist"]);
        assert_eq!(outcome.failures[0].step, 2);
        assert!(outcome.records.is_empty());
    }

    #[test]
    fn setup_mistakes_are_failures_not_panics() {
        let outcome = run_yaml("steps:\n  - after: 1m\n");
        assert_eq!(
            messages(&outcome),
            ["the first step needs `at` (an RFC 3339 time)"]
        );
        let outcome = run(
            &scenario("name: t\nobjects: [{kind: X}]\nsteps: [{at: \"2026-01-01T00:00:00Z\"}]"),
            &Mirror::new(),
        );
        assert_eq!(
            messages(&outcome),
            ["objects[0]: invalid manifest: `apiVersion` is missing or not a string"]
        );
        let outcome = run_yaml(
            "steps:\n  - {at: \"2026-01-01T00:00:00Z\", reconcile: {kind: Thing, name: nope}}\n",
        );
        assert_eq!(messages(&outcome), ["reconcile: Thing/nope does not exist"]);
    }

    #[test]
    fn ambiguous_selectors_are_reported() {
        let outcome = run_yaml(
            r#"
steps:
  - at: "2026-01-01T00:00:00Z"
    apply: [{apiVersion: example.com/v1, kind: Thing, metadata: {namespace: other, name: a}, spec: {size: 1}}]
    expect: {objects: [{kind: Thing, metadata: {name: a}}]}
"#,
        );
        assert_eq!(
            messages(&outcome),
            [
                "expect.objects: Thing/a is ambiguous (it matches example.com/v1 Thing/ns/a, example.com/v1 Thing/other/a); give apiVersion and namespace"
            ]
        );
    }
}

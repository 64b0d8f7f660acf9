//! Property tests of the embedded policy through its wasm component ("fuzzing"): the initial
//! world of a scenario of its suite, mutated (`guest/src/mutation.rs`, shared with the guest's
//! native property tests), with mutated settings and any `now`, reconciled by the host's
//! requirement rounds. The component never traps and always answers or rejects the input as
//! `invalid-input`; an answer's patches apply, and settle the trigger (reconciled again at the
//! same `now`, the policy's patches change nothing; see `reconcile` in `wit/policy.wit`).
//!
//! Fewer cases than the native run (a call through wasm costs more): 16 unless
//! `PROPTEST_CASES` says otherwise.

use std::path::Path;

use capt_host_core::rounds::{self, RoundError};
use capt_host_core::scenario::{self, Scenario};
use capt_host_core::world::{World, object_ref_of};
use capt_host_core::{Policy, PolicyError};
use capt_host_runtime::{Engine, Limits, WasmPolicy};
use capt_policy::{Error, ObjectRef};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestRunner;
use serde_json::Value;

use crate::embedded::DEFAULT_POLICY;

#[path = "../../../../guest/src/mutation.rs"]
mod mutation;

/// The scenarios of the embedded policy's suite that start with a trigger object and a time.
fn scenarios() -> Vec<Scenario> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/capt-status/scenarios");
    scenario::files(&[dir])
        .expect("the suite")
        .iter()
        .map(|file| scenario::load(file).expect("a scenario"))
        .filter(|scenario| scenario.steps.first().is_some_and(|step| step.at.is_some()))
        .filter(|scenario| scenario.objects.iter().any(is_trigger))
        .collect()
}

fn is_trigger(manifest: &Value) -> bool {
    matches!(
        manifest["kind"].as_str(),
        Some("CAPTCluster" | "CAPTControlPlane")
    )
}

/// The world's objects, without the resourceVersions every write bumps (even one that changes
/// nothing).
fn snapshot(world: &World) -> Vec<Value> {
    world
        .objects()
        .map(|(_, manifest)| {
            let mut manifest = manifest.clone();
            if let Some(metadata) = manifest["metadata"].as_object_mut() {
                metadata.remove("resourceVersion");
            }
            manifest
        })
        .collect()
}

/// One case: reconciles `trigger` in `world`; an answer is applied, and must settle.
fn check(
    policy: &dyn Policy,
    world: &mut World,
    trigger: &ObjectRef,
    now: i64,
    settings: &str,
) -> Result<(), TestCaseError> {
    match rounds::reconcile(policy, world, trigger, now, settings) {
        Ok(response) => {
            prop_assert!(
                world.apply_response(&response.patches).is_ok(),
                "the patches do not apply: {response:?}"
            );
            let written = snapshot(world);
            let again = rounds::reconcile(policy, world, trigger, now, settings);
            let again =
                again.map_err(|e| TestCaseError::fail(format!("the second call: {e:?}")))?;
            prop_assert!(world.apply_response(&again.patches).is_ok());
            prop_assert_eq!(
                snapshot(world),
                written,
                "the answer did not settle its trigger"
            );
            Ok(())
        }
        Err(RoundError::Policy {
            source: PolicyError::Rejected(Error::InvalidInput(_)),
            ..
        }) => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!(
            "neither an answer nor invalid-input: {other:?}"
        ))),
    }
}

#[test]
fn the_component_answers_or_rejects_mutated_worlds_and_an_answer_settles() {
    let engine = Engine::new(Limits::default()).expect("an engine");
    let policy = WasmPolicy::load(&engine, DEFAULT_POLICY).expect("the embedded policy");
    let defaults = &policy.metadata().default_settings;
    let scenarios = scenarios();
    assert!(scenarios.len() > 10, "only {} scenarios", scenarios.len());

    let mut config = mutation::config(16);
    config.source_file = Some(file!());
    let case = (
        any::<Index>(),
        any::<Index>(),
        mutation::mutations(4),
        mutation::mutations(2),
        prop_oneof![4 => -3_600_000i64..3 * 3_600_000, 1 => any::<i64>()],
    );
    TestRunner::new(config)
        .run(
            &case,
            |(scenario, trigger, object_mutations, settings_mutations, offset)| {
                let scenario = &scenarios[scenario.index(scenarios.len())];
                let start = scenario.steps[0].at.expect("a start time");
                let mut objects = scenario.objects.clone();
                mutation::apply(&mut objects, &object_mutations);
                let mut world = World::new();
                for manifest in objects {
                    world
                        .apply(manifest, start)
                        .expect("the identity is never mutated");
                }
                let triggers: Vec<ObjectRef> = scenario
                    .objects
                    .iter()
                    .filter(|manifest| is_trigger(manifest))
                    .map(|manifest| object_ref_of(manifest).expect("an identity"))
                    .collect();
                let trigger = &triggers[trigger.index(triggers.len())];
                let merged = rounds::merge_settings(defaults, scenario.settings.as_ref())
                    .expect("the scenario's settings");
                let mut settings = [serde_json::from_str(&merged).expect("settings")];
                mutation::apply(&mut settings, &settings_mutations);
                let now = start.timestamp_millis().saturating_add(offset);
                check(&policy, &mut world, trigger, now, &settings[0].to_string())
            },
        )
        .unwrap_or_else(|failure| panic!("{failure}"));
}

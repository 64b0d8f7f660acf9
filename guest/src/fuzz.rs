//! Property tests of [`crate::reconcile`] on mutated manifests and settings ("fuzzing"), run
//! natively: a reconcile never panics; it answers, or rejects its input as `invalid-input`; and
//! an answer settles its trigger (reconciled again at the same time with its patches applied,
//! the policy has nothing more to change; see `reconcile` in `wit/policy.wit`).
//!
//! The same mutations run through the wasm component in `host/cli/tests/all/fuzz.rs`.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::contract::{Error, ObservedObject, Request};
use crate::fixtures::*;
use crate::mutation;

const T0: &str = "2026-01-01T00:00:00Z";
/// `T0` in milliseconds.
const T0_MILLIS: i64 = 1_767_225_600_000;

/// Worlds to mutate: a new cluster, and one whose VPC and control plane are applied and whose
/// objects carry the status the policy wrote.
fn worlds() -> Vec<Vec<Value>> {
    let new = vec![cluster("demo"), capt_cluster("demo"), control_plane("demo")];
    let mut ready = World::new(new.clone());
    let mut vpc = apply("demo-vpc", "demo-vpc");
    vpc["status"]["applied"] = json!(true);
    vpc["status"]["lastAppliedTime"] = json!(T0);
    ready.put(vpc);
    ready.put(workspace(
        "demo-vpc",
        Some("True"),
        Some("True"),
        json!({"vpc_id": "vpc-123", "private_subnets": ["a", "b"]}),
    ));
    ready.put(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "demo-vpc-connection", "namespace": NS},
        "data": {"vpc_id": "dnBjLTQ1Ng=="}}));
    let mut eks = apply("demo-eks-controlplane-apply", "demo-eks-controlplane");
    eks["status"]["applied"] = json!(true);
    ready.put(eks);
    ready.put(workspace(
        "demo-eks-controlplane",
        Some("True"),
        Some("True"),
        json!({"cluster_endpoint": "https://10.0.0.1:6443", "version": 131}),
    ));
    for now in ["2026-01-01T00:06:00Z", "2026-01-01T00:07:00Z"] {
        for kind in ["CAPTCluster", "CAPTControlPlane"] {
            ready
                .reconcile(kind, "demo", now)
                .expect("the world reconciles");
        }
    }
    vec![new, ready.objects]
}

/// The time of a reconcile: near the worlds' timestamps, or any instant at all.
fn now() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => T0_MILLIS - 3_600_000..T0_MILLIS + 3 * 3_600_000,
        1 => any::<i64>(),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1]),
    ]
}

/// The objects, without the resourceVersions the fixture's writes bump even when a patch
/// changes nothing.
fn without_versions(objects: &[Value]) -> Vec<Value> {
    let mut objects = objects.to_vec();
    for object in &mut objects {
        if let Some(metadata) = object["metadata"].as_object_mut() {
            metadata.remove("resourceVersion");
        }
    }
    objects
}

proptest! {
    #![proptest_config(mutation::config(64))]

    #[test]
    fn a_mutated_reconcile_answers_or_rejects_and_an_answer_settles(
        world in prop::sample::select(worlds()),
        trigger in prop::sample::select(vec!["CAPTCluster", "CAPTControlPlane"]),
        object_mutations in mutation::mutations(4),
        settings_mutations in mutation::mutations(2),
        now in now(),
    ) {
        let mut objects = world;
        mutation::apply(&mut objects, &object_mutations);
        let mut settings = [serde_json::from_str(&crate::Settings::defaults_json()).unwrap()];
        mutation::apply(&mut settings, &settings_mutations);
        let [settings] = settings;
        let mut world = World::new(objects);
        world.settings = settings;
        match world.reconcile_at(trigger, "demo", now) {
            Ok(_) => {
                let written = without_versions(&world.objects);
                let again = world.reconcile_at(trigger, "demo", now);
                prop_assert!(again.is_ok(), "the second reconcile failed: {again:?}");
                prop_assert_eq!(
                    without_versions(&world.objects),
                    written,
                    "the response did not settle its trigger"
                );
            }
            Err(Error::InvalidInput(_)) => {}
            Err(other) => {
                return Err(TestCaseError::fail(format!(
                    "neither an answer nor invalid-input: {other:?}"
                )));
            }
        }
    }
}

/// A trigger nested far deeper than the policy parses: `invalid-input`, never a trap (a stack
/// overflow, in wasm) or a panic. (Its manifest is built as text: a `Value` that deep would
/// overflow the test's stack when cloned or dropped.)
#[test]
fn a_trigger_nested_10_000_levels_deep_is_invalid_input() {
    let deep = format!("{}0{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut trigger = capt_cluster("demo");
    trigger["spec"]["deep"] = json!("DEEP");
    let manifest = trigger.to_string().replace(r#""DEEP""#, &deep);
    let request = Request {
        trigger: reference(&trigger),
        now_epoch_millis: T0_MILLIS,
        objects: vec![ObservedObject {
            reference: reference(&trigger),
            manifest,
        }],
        missing: Vec::new(),
        settings: "{}".into(),
    };
    match crate::reconcile(&request) {
        Err(Error::InvalidInput(message)) => {
            assert!(message.contains("recursion limit"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

/// Nesting deeper than the policy parses in each object it reads, and in the settings:
/// `invalid-input` when the reconcile reads it, never a panic.
#[test]
fn objects_nested_deeper_than_the_policy_parses_are_invalid_input() {
    let deep = mutation::deep(500);
    let [_, ready] = <[_; 2]>::try_from(worlds()).unwrap();
    let mut rejected = 0;
    for index in 0..ready.len() {
        let mut objects = ready.clone();
        objects[index]["spec"]["deep"] = deep.clone();
        let name = objects[index]["metadata"]["name"].clone();
        for trigger in ["CAPTCluster", "CAPTControlPlane"] {
            let mut world = World::new(objects.clone());
            match world.reconcile_at(trigger, "demo", T0_MILLIS) {
                Err(Error::InvalidInput(message)) => {
                    assert!(
                        message.contains("recursion limit"),
                        "{trigger} with {name} deep: {message}"
                    );
                    rejected += 1;
                }
                // Only the objects a reconcile reads can fail it.
                Ok(_) => {}
                Err(other) => panic!("{trigger} with {name} deep: {other:?}"),
            }
        }
    }
    assert!(rejected >= ready.len(), "only {rejected} rejections");
    let mut world = World::new(ready);
    world.settings = json!({"pollInterval": deep});
    assert!(matches!(
        world.reconcile_at("CAPTCluster", "demo", T0_MILLIS),
        Err(Error::InvalidInput(_))
    ));
}

/// A value of the wrong type in every field of every object the policy reads (each in turn):
/// an answer or `invalid-input`, never a panic.
#[test]
fn a_wrong_type_in_any_field_is_an_answer_or_invalid_input() {
    let [_, ready] = <[_; 2]>::try_from(worlds()).unwrap();
    let wrong = [
        json!(null),
        json!(7),
        json!("x"),
        json!([]),
        json!({}),
        json!(true),
    ];
    let mut tried = 0;
    for index in 0..ready.len() {
        for path in mutation::paths(&ready[index]) {
            for value in &wrong {
                let mut objects = ready.clone();
                *objects[index].pointer_mut(&path).unwrap() = value.clone();
                for trigger in ["CAPTCluster", "CAPTControlPlane"] {
                    let mut world = World::new(objects.clone());
                    let result = world.reconcile_at(trigger, "demo", T0_MILLIS + 600_000);
                    assert!(
                        matches!(result, Ok(_) | Err(Error::InvalidInput(_))),
                        "{trigger}, {path} = {value} in object {index}: {result:?}"
                    );
                    tried += 1;
                }
            }
        }
    }
    assert!(tried > 500, "only {tried} reconciles");
}

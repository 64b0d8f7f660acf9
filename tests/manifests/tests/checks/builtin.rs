//! Objects of built-in kinds (the CRDs themselves, and everything `deploy/` creates) are checked
//! against the Kubernetes API types: each must deserialize into its `k8s-openapi` type and
//! serialize back to exactly what the file says. A misspelled or misplaced field is dropped by
//! that round trip, as the API server would drop it, and fails here.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::support;
use crate::{deploy, schema};

/// What the round trip through `T` loses or changes, one line per path.
fn round_trip<T: DeserializeOwned + Serialize>(object: &Value) -> Vec<String> {
    let typed: T = match serde_json::from_value(object.clone()) {
        Ok(typed) => typed,
        Err(e) => return vec![format!("does not deserialize: {e}")],
    };
    let back = serde_json::to_value(&typed).expect("serializes");
    let mut out = Vec::new();
    differences(object, &back, "", &mut out);
    out
}

fn differences(written: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (written, kept) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    Some(kept) => differences(value, kept, &here, out),
                    None => out.push(format!("{here} is dropped (unknown field)")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) => out.push(format!("{path}: {a} becomes {b}")),
    }
}

/// The round trip of one object through the type of its kind; `None` for kinds not covered.
fn check(object: &Value) -> Option<Vec<String>> {
    let kind = support::str_at(object, "kind")?;
    Some(match kind {
        "CustomResourceDefinition" => round_trip::<CustomResourceDefinition>(object),
        "Namespace" => round_trip::<Namespace>(object),
        "ServiceAccount" => round_trip::<ServiceAccount>(object),
        "ClusterRole" => round_trip::<ClusterRole>(object),
        "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(object),
        "Role" => round_trip::<Role>(object),
        "RoleBinding" => round_trip::<RoleBinding>(object),
        "Deployment" => round_trip::<Deployment>(object),
        "Service" => round_trip::<Service>(object),
        "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(object),
        _ => return None,
    })
}

#[test]
fn every_crd_is_a_valid_custom_resource_definition_without_unknown_fields() {
    for crd in schema::crds() {
        let problems = check(&crd.manifest).expect("a CRD");
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            crd.file(),
            problems.join("\n  ")
        );
    }
}

#[test]
fn every_object_deploy_creates_is_valid_for_its_kubernetes_type_without_unknown_fields() {
    let mut objects = deploy::deployed_objects();
    assert!(objects.len() >= 9, "{} objects", objects.len());
    let crds = deploy::installed_crd_objects();
    assert_eq!(crds.len(), 4, "deploy/crds");
    objects.extend(crds);
    for object in &objects {
        let problems = check(object).unwrap_or_else(|| {
            panic!(
                "{} is not a kind this test knows",
                support::describe(object)
            )
        });
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            support::describe(object),
            problems.join("\n  ")
        );
    }
}

#[test]
fn the_round_trip_catches_a_misspelled_field() {
    let mut deployment = deploy::deployed_objects()
        .into_iter()
        .find(|o| support::str_at(o, "kind") == Some("Deployment"))
        .expect("a Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] =
        Value::Bool(true);
    let problems = check(&deployment).expect("a Deployment");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("readOnlyRootFileSystem is dropped"),
        "{problems:?}"
    );
}

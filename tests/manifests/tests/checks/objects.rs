//! Every sample object and every object of every scenario validates against its CRD.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::schema::{self, Mode, Outcome};
use crate::support;

const SAMPLES: &str = "policies/capt-status/samples";
const SCENARIOS: &str = "policies/capt-status/scenarios";

/// Validates one object; returns its problems prefixed with `context`, and whether a CRD
/// applied.
fn check(object: &Value, mode: Mode, context: &str, problems: &mut Vec<String>) -> bool {
    match schema::validate(object, mode) {
        Outcome::NoCrd => false,
        Outcome::Checked(found) => {
            problems.extend(
                found
                    .into_iter()
                    .map(|p| format!("{context}: {}: {p}", support::describe(object))),
            );
            true
        }
    }
}

fn fail_on(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} schema violation(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn every_sample_object_validates_against_its_crd() {
    let mut problems = Vec::new();
    let mut kinds = BTreeMap::<String, usize>::new();
    for path in support::yaml_files(&support::path(SAMPLES)) {
        if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        for object in support::documents(&path) {
            let checked = check(&object, Mode::Full, &support::show(&path), &mut problems);
            assert!(
                checked,
                "{}: {} has no CRD here",
                support::show(&path),
                support::describe(&object)
            );
            *kinds
                .entry(support::str_at(&object, "kind").unwrap_or("?").to_owned())
                .or_default() += 1;
        }
    }
    fail_on(&problems);
    let expected: BTreeMap<String, usize> = [
        ("CAPTCluster", 1),
        ("CAPTControlPlane", 1),
        ("Cluster", 1),
        ("WorkspaceTemplate", 2),
        ("WorkspaceTemplateApply", 2),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(kinds, expected, "the samples are one full cluster");
}

#[test]
fn the_samples_form_one_cluster_named_as_the_policy_expects() {
    let mut by_kind = BTreeMap::<(String, String), Value>::new();
    for path in support::yaml_files(&support::path(SAMPLES)) {
        if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            continue;
        }
        for object in support::documents(&path) {
            assert_eq!(
                support::str_at(&object, "metadata.namespace"),
                Some("default"),
                "{}",
                support::describe(&object)
            );
            let key = (
                support::str_at(&object, "kind")
                    .unwrap_or_default()
                    .to_owned(),
                support::str_at(&object, "metadata.name")
                    .unwrap_or_default()
                    .to_owned(),
            );
            by_kind.insert(key, object);
        }
    }
    let get = |kind: &str, name: &str| -> &Value {
        by_kind
            .get(&(kind.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("no sample {kind} {name}"))
    };
    let n = "demo-cluster";
    let cluster = get("Cluster", n);
    assert_eq!(
        support::at(cluster, "spec.infrastructureRef"),
        Some(
            &json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster", "name": n, "namespace": "default"})
        )
    );
    assert_eq!(
        support::at(cluster, "spec.controlPlaneRef"),
        Some(
            &json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane", "name": n, "namespace": "default"})
        )
    );
    for kind in ["CAPTCluster", "CAPTControlPlane"] {
        let object = get(kind, n);
        let owners = support::at(object, "metadata.ownerReferences")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{kind} {n} has no owner references"));
        assert!(
            owners.iter().any(|o| o["kind"] == "Cluster"
                && o["name"] == n
                && o["apiVersion"] == "cluster.x-k8s.io/v1beta1"
                && o["uid"].is_string()),
            "{kind} {n} must be owned by the Cluster {n}"
        );
    }
    let vpc_template =
        support::str_at(get("CAPTCluster", n), "spec.vpcTemplateRef.name").expect("vpcTemplateRef");
    let cp_template = support::str_at(get("CAPTControlPlane", n), "spec.workspaceTemplateRef.name")
        .expect("workspaceTemplateRef");
    get("WorkspaceTemplate", vpc_template);
    get("WorkspaceTemplate", cp_template);
    for (apply, template) in [
        (format!("{n}-vpc"), vpc_template),
        (format!("{n}-eks-controlplane-apply"), cp_template),
    ] {
        let wta = get("WorkspaceTemplateApply", &apply);
        assert_eq!(
            support::str_at(wta, "spec.templateRef.name"),
            Some(template),
            "{apply}"
        );
        assert!(
            support::str_at(wta, "spec.writeConnectionSecretToRef.name").is_some(),
            "{apply} names its connection secret"
        );
    }
}

/// A scenario's world: full objects by (group, kind, namespace, name), changed as the runner
/// changes it (`apply` creates or JSON-merges, `delete` removes).
#[derive(Default)]
struct World {
    objects: BTreeMap<(String, String, String, String), Value>,
}

impl World {
    fn key(object: &Value) -> (String, String, String, String) {
        let api_version = support::str_at(object, "apiVersion").unwrap_or_default();
        let (group, _) = schema::split_api_version(api_version);
        let field = |p: &str| support::str_at(object, p).unwrap_or_default().to_owned();
        (
            group.to_owned(),
            field("kind"),
            field("metadata.namespace"),
            field("metadata.name"),
        )
    }

    /// Creates or merges; returns the resulting object.
    fn apply(&mut self, manifest: &Value) -> Value {
        let entry = self
            .objects
            .entry(Self::key(manifest))
            .or_insert(Value::Null);
        if entry.is_null() {
            *entry = manifest.clone();
        } else {
            merge(entry, manifest);
        }
        entry.clone()
    }

    fn delete(&mut self, selector: &Value) {
        let field = |p: &str| support::str_at(selector, p).unwrap_or_default().to_owned();
        let (kind, namespace, name) = (field("kind"), field("namespace"), field("name"));
        self.objects.retain(|(_, k, ns, n), _| {
            !(*k == kind && *n == name && (namespace.is_empty() || *ns == namespace))
        });
    }
}

/// RFC 7396 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(changes) => {
            if !target.is_object() {
                *target = json!({});
            }
            let map = target.as_object_mut().expect("an object");
            for (key, value) in changes {
                if value.is_null() {
                    map.remove(key);
                } else {
                    merge(map.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Validates every object of one scenario file; returns how many objects a CRD applied to.
fn check_scenario(path: &Path, problems: &mut Vec<String>) -> usize {
    let scenario = support::document(path);
    let file = support::show(path);
    let mut world = World::default();
    let mut checked = 0;
    for (i, object) in scenario
        .get("objects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let created = world.apply(object);
        checked += usize::from(check(
            &created,
            Mode::Full,
            &format!("{file} objects[{i}]"),
            problems,
        ));
    }
    let steps = scenario
        .get("steps")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (s, step) in steps.iter().enumerate() {
        for (i, manifest) in step
            .get("apply")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            // The manifest as written must be valid on its own as a partial object, and the
            // object it leaves behind must be complete.
            let context = format!("{file} steps[{s}].apply[{i}]");
            checked += usize::from(check(manifest, Mode::Partial, &context, problems));
            let result = world.apply(manifest);
            check(
                &result,
                Mode::Full,
                &format!("{context} (result)"),
                problems,
            );
        }
        for selector in step
            .get("delete")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            world.delete(selector);
        }
        for (i, expected) in support::at(step, "expect.objects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            checked += usize::from(check(
                expected,
                Mode::Partial,
                &format!("{file} steps[{s}].expect.objects[{i}]"),
                problems,
            ));
        }
    }
    checked
}

#[test]
fn every_scenario_object_apply_and_expected_object_validates_against_its_crd() {
    let files = support::yaml_files(&support::path(SCENARIOS));
    assert!(
        files.len() > 50,
        "only {} scenario files found",
        files.len()
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in &files {
        checked += check_scenario(path, &mut problems);
    }
    fail_on(&problems);
    assert!(
        checked > 500,
        "only {checked} scenario objects had a CRD to check against"
    );
}

// The validator itself: what the API server would prune or reject must fail here.

fn problems(object: &Value, mode: Mode) -> Vec<String> {
    match schema::validate(object, mode) {
        Outcome::Checked(problems) => problems,
        Outcome::NoCrd => panic!("no CRD for {}", support::describe(object)),
    }
}

fn capt_cluster(status: Value) -> Value {
    json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTCluster",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": {"region": "ap-northeast-1", "vpcTemplateRef": {"name": "vpc-template"}},
        "status": status
    })
}

#[test]
fn a_complete_captcluster_status_as_the_policy_writes_it_is_valid() {
    let object = capt_cluster(json!({
        "ready": true,
        "vpcId": "vpc-1",
        "vpcWorkspaceName": "demo-vpc",
        "endpoint": "10.0.0.1:6443",
        "observedGeneration": 2,
        "lastRetry": "1",
        "initialization": {"provisioned": true},
        "failureDomains": {"ap-northeast-1a": {"controlPlane": true}},
        "workspaceTemplateStatus": {"ready": true, "state": "Applied", "workspaceName": "demo-vpc",
            "lastAppliedTime": "2026-01-01T00:00:00Z", "lastAppliedRevision": "1",
            "lastFailedRevision": "1", "lastFailureMessage": "boom"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "VPCCreated", "message": "VPC vpc-1 has been created",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 2}]
    }));
    assert_eq!(problems(&object, Mode::Full), Vec::<String>::new());
}

#[test]
fn a_field_the_api_server_would_prune_is_an_error() {
    let object = capt_cluster(json!({"ready": true, "vpcID": "vpc-1"}));
    let found = problems(&object, Mode::Full);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("/status") && found[0].contains("vpcID"),
        "{found:?}"
    );
    let nested = capt_cluster(json!({"workspaceTemplateStatus": {"outputs": {"a": "b"}}}));
    assert_eq!(problems(&nested, Mode::Partial).len(), 1);
    let meta = json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster",
        "metadata": {"name": "demo", "labelz": {}}, "spec": {"region": "x"}});
    assert_eq!(problems(&meta, Mode::Full).len(), 1);
}

#[test]
fn preserve_unknown_fields_keeps_unknown_fields_but_checks_declared_ones() {
    let workspace = |status: Value| {
        json!({"apiVersion": "tf.upbound.io/v1beta1", "kind": "Workspace", "metadata": {"name": "demo-vpc"},
            "spec": {"forProvider": {"module": "x", "source": "Inline", "anything": {"at": ["all"]}}},
            "status": status})
    };
    let free = workspace(
        json!({"atProvider": {"outputs": {"vpc_id": "vpc-1", "azs": ["a", "b"], "n": 3}}}),
    );
    assert_eq!(problems(&free, Mode::Full), Vec::<String>::new());
    let pruned = workspace(json!({"atProvider": {"output": {}}}));
    assert_eq!(problems(&pruned, Mode::Full).len(), 1);
}

#[test]
fn types_formats_enums_patterns_and_required_fields_are_checked() {
    let wrong = [
        json!({"ready": "true"}),
        json!({"observedGeneration": "2"}),
        json!({"workspaceTemplateStatus": {"lastAppliedTime": "yesterday"}}),
        json!({"conditions": [{"type": "Ready", "status": "Maybe", "reason": "X", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
        json!({"conditions": [{"type": "Ready", "status": "True", "reason": "not a reason", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
        json!({"conditions": [{"type": "Ready", "status": "True", "reason": "X", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
    ];
    for status in wrong {
        assert_eq!(
            problems(&capt_cluster(status.clone()), Mode::Full).len(),
            1,
            "{status}"
        );
    }
    let port = json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane",
        "metadata": {"name": "demo"}, "spec": {"version": "1.31", "workspaceTemplateRef": {"name": "t"},
        "controlPlaneEndpoint": {"host": "h", "port": 4_294_967_296_u64}}});
    assert_eq!(
        problems(&port, Mode::Full).len(),
        1,
        "port must be an int32"
    );
    let phase = json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane",
        "metadata": {"name": "demo"}, "status": {"phase": "Provisioning"}});
    assert_eq!(problems(&phase, Mode::Partial).len(), 1, "phase is an enum");
    let no_version = json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane",
        "metadata": {"name": "demo"}, "spec": {"workspaceTemplateRef": {"name": "t"}}});
    assert_eq!(
        problems(&no_version, Mode::Full).len(),
        1,
        "spec.version is required"
    );
    assert_eq!(problems(&no_version, Mode::Partial).len(), 0);
}

#[test]
fn a_partial_manifest_ignores_required_fields_and_treats_null_as_absent() {
    let partial = capt_cluster(json!({
        "failureReason": null,
        "conditions": [{"type": "Ready", "status": "False", "reason": "WaitingForVPCID"}]
    }));
    assert_eq!(problems(&partial, Mode::Partial), Vec::<String>::new());
    assert_eq!(
        problems(&partial, Mode::Full).len(),
        3,
        "null and two missing fields"
    );
}

#[test]
fn a_cluster_scoped_object_must_not_have_a_namespace() {
    let workspace = json!({"apiVersion": "tf.upbound.io/v1beta1", "kind": "Workspace",
        "metadata": {"name": "demo-vpc", "namespace": "default"}});
    assert_eq!(problems(&workspace, Mode::Partial).len(), 1);
}

#[test]
fn an_unknown_version_of_a_known_kind_is_an_error() {
    let object = json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "CAPTCluster",
        "metadata": {"name": "demo"}});
    assert_eq!(problems(&object, Mode::Partial).len(), 1);
}

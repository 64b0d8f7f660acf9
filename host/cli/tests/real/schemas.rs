//! The policy's writes against the real CRDs: every patch of every scenario of the policy's
//! suite is accepted; a 100 KB Terraform error and a Cluster nested 9,950 levels deep in
//! `spec.topology.variables` leave the operator ready and reconciling everything else.

use std::time::Duration;

use capt_host_core::scenario::{self, Scenario};
use capt_host_runtime::{Engine, Limits, WasmPolicy};

use crate::embedded::DEFAULT_POLICY;
use capt_policy::Subresource;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube_harness::KubeServer;
use serde_json::{Value, json};

use crate::common::{PATIENCE, config, holds_within, server, start};
use crate::world;

/// Replays `scenario` on `server`: its objects, then per step its deletes, applies and the
/// patches the policy emitted in that step (without their `resourceVersion` precondition:
/// versions differ between the scenario runner and the server). Returns every refusal.
async fn replay(server: &KubeServer, scenario: &Scenario, policy: &WasmPolicy) -> Vec<String> {
    let outcome = scenario::run(scenario, policy);
    let mut refusals = Vec::new();
    let mut refused = |what: String, e: kube::Error| refusals.push(format!("{what}: {e}"));
    for object in &scenario.objects {
        if let Err(e) = world::apply(server, object).await {
            refused(format!("object {}", name_of(object)), e);
        }
    }
    let manifests = world::manifests(scenario);
    for (index, step) in scenario.steps.iter().enumerate() {
        let number = index + 1;
        for selector in &step.delete {
            let Some(manifest) = manifests
                .iter()
                .find(|m| m["kind"] == selector.kind && m["metadata"]["name"] == selector.name)
            else {
                continue;
            };
            let api = server.api_for(manifest).await.expect("a served kind");
            let _ = api.delete(&selector.name, &DeleteParams::default()).await;
        }
        for manifest in &step.apply {
            if let Err(e) = world::apply(server, manifest).await {
                refused(format!("step {number}: apply {}", name_of(manifest)), e);
            }
        }
        let patches = outcome
            .records
            .iter()
            .filter(|r| r.step == number)
            .filter_map(|r| r.result.as_ref().ok())
            .flat_map(|response| response.patches.iter());
        for patch in patches {
            let target = json!({
                "apiVersion": patch.target.api_version,
                "kind": patch.target.kind,
                "metadata": {"name": patch.target.name, "namespace": patch.target.namespace},
            });
            let api = server.api_for(&target).await.expect("a served kind");
            let body: Value = serde_json::from_str(&patch.merge_patch).expect("a JSON patch");
            let params = PatchParams::default();
            let result = match patch.subresource {
                Subresource::Status => {
                    api.patch_status(&patch.target.name, &params, &Patch::Merge(&body))
                        .await
                }
                Subresource::Main => {
                    api.patch(&patch.target.name, &params, &Patch::Merge(&body))
                        .await
                }
            };
            if let Err(e) = result {
                let what = format!(
                    "step {number}: the policy's {:?} patch of {} {} ({})",
                    patch.subresource, patch.target.kind, patch.target.name, patch.merge_patch
                );
                refused(what, e);
            }
        }
    }
    world::clear(server, scenario).await;
    refusals
}

fn name_of(manifest: &Value) -> String {
    format!("{} {}", manifest["kind"], manifest["metadata"]["name"])
}

#[tokio::test]
async fn every_patch_of_every_scenario_is_accepted_by_the_real_crds() {
    let server = server().await;
    let engine = Engine::new(Limits::default()).expect("the engine starts");
    let policy = WasmPolicy::load(&engine, DEFAULT_POLICY).expect("the default policy loads");
    let files = scenario::files(&[world::suite()]).expect("the scenario suite");
    assert!(
        files.len() > 50,
        "the whole suite is replayed: {}",
        files.len()
    );
    let mut refusals = Vec::new();
    let mut patches = 0;
    for file in &files {
        let scenario = world::load(file);
        patches += scenario::run(&scenario, &policy)
            .records
            .iter()
            .filter_map(|r| r.result.as_ref().ok())
            .map(|r| r.patches.len())
            .sum::<usize>();
        for refusal in replay(&server, &scenario, &policy).await {
            refusals.push(format!("{}: {refusal}", file.display()));
        }
    }
    assert!(
        patches > 100,
        "the replay covers the policy's patches: {patches}"
    );
    assert!(
        refusals.is_empty(),
        "{} refusals:\n{}",
        refusals.len(),
        refusals.join("\n")
    );
}

/// `scenario`'s objects and applies with every name `demo` renamed `name`.
fn renamed(scenario: &Scenario, name: &str) -> Vec<Value> {
    world::manifests(scenario)
        .into_iter()
        .map(|m| {
            let text = serde_json::to_string(&m)
                .expect("JSON")
                .replace("demo", name);
            serde_json::from_str(&text).expect("JSON")
        })
        .collect()
}

/// Runs the operator on `server`, which holds an odd object, with the demo world added, and
/// checks that the demo world converges and the operator stays ready.
async fn demo_converges_next_to_the_odd_object(server: KubeServer) {
    let demo = world::demo();
    world::build(&server, &demo).await;
    let operator = start(server.client(), config("schemas"), PATIENCE)
        .await
        .expect("the operator's caches sync");
    let expected = world::final_expectations(&demo);
    let converged = holds_within(PATIENCE, || world::converged(&server, &expected)).await;
    assert!(converged, "the demo world converges next to the odd object");
    assert!(
        tokio::time::timeout(Duration::from_secs(1), operator.ready())
            .await
            .is_ok(),
        "the operator stays ready"
    );
    let _ = operator.shutdown().await;
}

#[tokio::test]
async fn a_100_kb_terraform_error_leaves_the_other_objects_reconciled() {
    let scenario = world::load(
        &world::suite()
            .join("controlplane/workspace-error-is-transient-and-copies-the-message.yaml"),
    );
    let mut big = renamed(&scenario, "big");
    let message = "Error: creating EKS Cluster: ".to_owned() + &"x".repeat(100 * 1024);
    for manifest in &mut big {
        if manifest["kind"] == "Workspace" {
            for condition in manifest["status"]["conditions"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                if condition.get("message").is_some() {
                    condition["message"] = Value::from(message.clone());
                }
            }
        }
    }
    let server = server().await;
    for manifest in &big {
        world::apply(&server, manifest)
            .await
            .unwrap_or_else(|e| panic!("the real server accepts {}: {e}", name_of(manifest)));
    }
    demo_converges_next_to_the_odd_object(server).await;
}

/// The real server accepts a Cluster nested almost as deep as it reads back (Go's JSON decoder
/// stops at 10,000 levels, the object's `managedFields` included: a Cluster written with
/// 9,992 levels in its value is stored, and every read of it then answers 500 "exceeded max
/// depth"), here 9,950 levels in a free-form field. kube-client parses list and watch answers
/// with serde_json, which refuses more than 128 levels of a tree, so the operator keeps cached
/// objects as raw text (`CachedObject`), which it reads without that limit. The Cluster is
/// cached, and every other object is reconciled.
#[tokio::test]
async fn a_cluster_nested_9950_levels_deep_leaves_the_other_objects_reconciled() {
    // Written as text: a `serde_json::Value` this deep overflows the stack when it is
    // serialized or dropped.
    let depth = 10_000 - 50; // room for the levels around the value, also in managedFields
    let value = format!(
        "{}\"bottom\"{}",
        r#"{"nested":"#.repeat(depth),
        "}".repeat(depth)
    );
    let deep = format!(
        r#"{{"apiVersion":"cluster.x-k8s.io/v1beta1","kind":"Cluster",
            "metadata":{{"name":"deep","namespace":"default"}},
            "spec":{{"topology":{{"class":"deep-class","version":"v1.31.0",
                                  "variables":[{{"name":"deep","value":{value}}}]}}}}}}"#
    );
    let server = server().await;
    // Posted as text and the answer not parsed: serde_json parses at most 128 levels.
    let request = http::Request::post("/apis/cluster.x-k8s.io/v1beta1/namespaces/default/clusters")
        .header("Content-Type", "application/json")
        .body(deep.into_bytes())
        .expect("a request");
    server
        .client()
        .request_text(request)
        .await
        .expect("the real server accepts a Cluster nested 9,950 levels deep");
    demo_converges_next_to_the_odd_object(server).await;
}

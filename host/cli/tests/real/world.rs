//! Scenario worlds on the real server: the objects of a scenario of the policy's suite, and
//! the writes its steps make as the other actors (CAPT's controllers, Crossplane, users),
//! applied through the API as those actors would.

use std::path::{Path, PathBuf};

use capt_host_core::scenario::{self, Scenario};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube_harness::{KubeServer, crds};
use serde_json::{Value, json};

/// The policy's scenario suite.
pub fn suite() -> PathBuf {
    crds::repository().join("policies/capt-status/scenarios")
}

/// The demo world: the happy-path scenario, from nothing to both objects Ready.
pub fn demo() -> Scenario {
    load(&suite().join("happy-path/from-nothing-to-both-ready-with-the-cluster-updated.yaml"))
}

/// Reads one scenario file.
pub fn load(path: &Path) -> Scenario {
    scenario::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The scenario's objects and every step's `apply`, in order.
pub fn manifests(scenario: &Scenario) -> Vec<Value> {
    let mut all = scenario.objects.clone();
    for step in &scenario.steps {
        all.extend(step.apply.iter().cloned());
    }
    all
}

/// The objects the last step with expectations expects (partial manifests).
pub fn final_expectations(scenario: &Scenario) -> Vec<Value> {
    scenario
        .steps
        .iter()
        .rev()
        .find(|s| !s.expect.objects.is_empty())
        .map(|s| s.expect.objects.clone())
        .unwrap_or_default()
}

/// Creates `manifest`, or merges it into the existing object (status through the status
/// subresource, as a controller writes it). Server-owned metadata (`uid`, `resourceVersion`,
/// `generation`, `creationTimestamp`) is left to the server.
pub async fn apply(server: &KubeServer, manifest: &Value) -> Result<(), kube::Error> {
    let api = server.api_for(manifest).await.expect("a served kind");
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
    let mut body = manifest.clone();
    if let Some(metadata) = body["metadata"].as_object_mut() {
        for key in ["uid", "resourceVersion", "generation", "creationTimestamp"] {
            metadata.remove(key);
        }
    }
    let status = body.as_object_mut().and_then(|o| o.remove("status"));
    if api.get_opt(name).await?.is_none() {
        let object = serde_json::from_value(body).expect("a Kubernetes object");
        api.create(&PostParams::default(), &object).await?;
    } else {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    }
    // Kinds without a status subresource (Secret) have no status here; a Workspace has one.
    if let Some(status) = status {
        let patch = json!({ "status": status });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// Applies every manifest of `scenario` (see [`manifests`]), panicking on a refusal.
pub async fn build(server: &KubeServer, scenario: &Scenario) {
    for manifest in manifests(scenario) {
        apply(server, &manifest)
            .await
            .unwrap_or_else(|e| panic!("{}: applying {manifest}: {e}", scenario.name));
    }
}

/// Deletes every object `scenario` creates (no garbage collector runs here).
pub async fn clear(server: &KubeServer, scenario: &Scenario) {
    for manifest in manifests(scenario) {
        let api = server.api_for(&manifest).await.expect("a served kind");
        let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
}

/// The current form of the object `expected` names, if it exists.
pub async fn current(server: &KubeServer, expected: &Value) -> Option<Value> {
    let api = server.api_for(expected).await.expect("a served kind");
    let name = expected["metadata"]["name"].as_str().unwrap_or_default();
    let object = api.get_opt(name).await.ok().flatten()?;
    Some(serde_json::to_value(object).expect("JSON"))
}

/// True when every object of `expected` matches the server's (partially, as scenarios do).
pub async fn converged(server: &KubeServer, expected: &[Value]) -> bool {
    for object in expected {
        let actual = current(server, object).await;
        if !scenario::matching::matches(object, actual.as_ref()) {
            return false;
        }
    }
    true
}

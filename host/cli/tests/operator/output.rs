//! The policy's output is checked before anything of it is written: a response patching an
//! object the policy was not given, or without the resourceVersion it was given, is refused
//! whole (not even its valid patches or its events are written), counted, and reported as a
//! failed reconcile.
//!
//! On the test double only (not parameterised by backend): its request log proves nothing was sent.

use capt_policy::{Error, Event, EventType, ObjectRef, Patch, Request, Response, Subresource};
use inproc_apiserver::{ApiServer, Verb};
use serde_json::json;

use crate::common::{Capt, config, create, eventually, metric, native, sent, server, start_with};

/// The CAPTCluster every refused response tries to write besides its trigger.
const VICTIM: &str = "victim";

/// A status patch of `target` at `version`.
fn status(target: &ObjectRef, version: Option<String>) -> Patch {
    Patch {
        target: target.clone(),
        subresource: Subresource::Status,
        merge_patch: json!({"status": {"ready": true}}).to_string(),
        resource_version: version,
    }
}

/// A valid patch of the trigger and an event on it, then `bad`; nothing for the victim itself.
fn respond(request: &Request, bad: fn(&Request, &ObjectRef) -> Patch) -> Response {
    let trigger = &request.trigger;
    if trigger.name == VICTIM {
        return Response::default();
    }
    let version = sent(request, trigger)
        .and_then(|m| m["metadata"]["resourceVersion"].as_str().map(str::to_owned));
    Response {
        patches: vec![status(trigger, version), bad(request, trigger)],
        events: vec![Event {
            regarding: trigger.clone(),
            event_type: EventType::Normal,
            reason: "Touched".into(),
            message: "a refused response records nothing".into(),
        }],
        ..Response::default()
    }
}

/// Patches the victim, which it was never sent (it guesses a version).
fn patches_an_object_not_sent(request: &Request) -> Result<Response, Error> {
    Ok(respond(request, |_, trigger| {
        let victim = ObjectRef {
            name: VICTIM.into(),
            ..trigger.clone()
        };
        status(&victim, Some("1".into()))
    }))
}

/// Patches its trigger a second time, unconditionally.
fn patches_without_a_resource_version(request: &Request) -> Result<Response, Error> {
    Ok(respond(request, |_, trigger| status(trigger, None)))
}

/// Runs an operator with `reconcile` on a trigger and a victim: the response is refused for
/// `reason` with a `PatchRefused` Warning, and nothing at all is written.
async fn refused(reconcile: fn(&Request) -> Result<Response, Error>, reason: &str) {
    let server = server().await;
    let capt = Capt::new(&server);
    for name in ["trigger", VICTIM] {
        let manifest = json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
            "kind": "CAPTCluster",
            "metadata": {"name": name},
            "spec": {"region": "ap-northeast-1"},
        });
        create(&capt.capt_clusters, manifest).await;
    }
    let (operator, _) = start_with(&server, config("output"), native(reconcile)).await;
    let warnings = || async {
        capt.events_about("CAPTCluster", "trigger")
            .await
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("PatchRefused"))
            .collect::<Vec<_>>()
    };
    eventually("a PatchRefused Warning on the trigger", || async {
        !warnings().await.is_empty()
    })
    .await;
    let refusals = || {
        metric(
            &operator.metrics(),
            "capt_host_patches_refused_total",
            &[("reason", reason)],
        )
    };
    eventually("the refusal to be counted", || async { refusals() >= 1.0 }).await;
    let errors = metric(
        &operator.metrics(),
        "capt_host_reconcile_errors_total",
        &[("kind", "CAPTCluster"), ("error", "refused_patch")],
    );
    assert!(errors >= 1.0, "a failed reconcile: {errors}");
    let note = warnings().await[0].note.clone().unwrap_or_default();
    assert!(note.contains("refused the policy's patch"), "{note}");
    assert_nothing_written(&server, &capt).await;
    operator.shutdown().await.expect("a clean shutdown");
}

async fn assert_nothing_written(server: &ApiServer, capt: &Capt) {
    let requests = server.requests();
    assert_eq!(
        requests.count(Verb::Patch, "captclusters"),
        0,
        "no patch was sent, not even the valid one"
    );
    for name in ["trigger", VICTIM] {
        let object = capt
            .capt_cluster(name)
            .await
            .expect("the CAPTCluster exists");
        assert_eq!(object.get("status"), None, "{name} is untouched: {object}");
    }
    let touched = capt
        .events_about("CAPTCluster", "trigger")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Touched"))
        .count();
    assert_eq!(touched, 0, "the refused response's event is not recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_of_an_object_not_sent_to_the_policy_is_refused_and_nothing_is_written() {
    refused(patches_an_object_not_sent, "not_sent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_without_a_resource_version_is_refused_and_nothing_is_written() {
    refused(patches_without_a_resource_version, "no_resource_version").await;
}

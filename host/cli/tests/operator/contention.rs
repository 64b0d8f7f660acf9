//! A second writer of the status this operator writes (another field manager, e.g. CAPT's own
//! controllers) is noticed: after a few overwrites in a row, one `SecondWriter` Warning event,
//! one count in `capt_host_contested_objects_total`, and no more writes of that object for the
//! back-off, however often the other writer changes it.
//!
//! On the test double only (not parameterised by backend): its request log counts the status
//! patches.

use std::time::Duration;

use capt_policy::{Error, Patch, Request, Response, Subresource};
use inproc_apiserver::Verb;
use kube::api::{Patch as KubePatch, PatchParams};
use serde_json::{Value, json};

use crate::common::{Capt, config, create, eventually, metric, native, sent, server, start_with};

/// Keeps `status.ready` true.
fn keeps_ready(request: &Request) -> Result<Response, Error> {
    let trigger = &request.trigger;
    let manifest = sent(request, trigger).unwrap_or_default();
    if manifest["status"]["ready"] == json!(true) {
        return Ok(Response::default());
    }
    let version = manifest["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned);
    Ok(Response {
        patches: vec![Patch {
            target: trigger.clone(),
            subresource: Subresource::Status,
            merge_patch: json!({"status": {"ready": true}}).to_string(),
            resource_version: version,
        }],
        ..Response::default()
    })
}

/// The other controller (field manager `capt-controller`) sets ready=false, the `n`-th time.
async fn overwrite(capt: &Capt, n: u32) {
    let params = PatchParams {
        field_manager: Some("capt-controller".into()),
        ..PatchParams::default()
    };
    let patch = json!({"status": {"ready": false, "overwrite": n}});
    capt.capt_clusters
        .patch_status("fought", &params, &KubePatch::Merge(&patch))
        .await
        .expect("the other controller writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_is_reported_once_and_not_fought() {
    let server = server().await;
    let capt = Capt::new(&server);
    let manifest = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTCluster",
        "metadata": {"name": "fought"},
        "spec": {"region": "ap-northeast-1"},
    });
    create(&capt.capt_clusters, manifest).await;
    let mut config = config("contention");
    config.contested_backoff = Duration::from_secs(3600);
    let (operator, mut reconciles) = start_with(&server, config, native(keeps_ready)).await;
    let ready = || async {
        capt.capt_cluster("fought")
            .await
            .map(|c| c["status"]["ready"].clone())
            .unwrap_or(Value::Null)
    };
    eventually("the operator to make it ready", || async {
        ready().await == json!(true)
    })
    .await;

    // The other controller sets ready=false; the operator sets it back, twice.
    for n in 1..=2 {
        overwrite(&capt, n).await;
        eventually("the operator to write ready again", || async {
            ready().await == json!(true)
        })
        .await;
    }

    // The third overwrite in a row: reported once, and left alone.
    overwrite(&capt, 3).await;
    let second_writer = || async {
        capt.events_about("CAPTCluster", "fought")
            .await
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter(|e| e.reason.as_deref() == Some("SecondWriter"))
            .collect::<Vec<_>>()
    };
    eventually("a SecondWriter Warning", || async {
        !second_writer().await.is_empty()
    })
    .await;
    let status_patches = || {
        server
            .requests()
            .count_subresource(Verb::Patch, "captclusters", Some("status"))
    };
    let before = status_patches();
    for n in 4..=6 {
        reconciles.until_quiet(Duration::from_millis(200)).await;
        overwrite(&capt, n).await;
        reconciles
            .settle(&["CAPTCluster/fought"], Duration::from_millis(300))
            .await;
        assert_eq!(ready().await, json!(false), "the operator does not fight");
    }
    assert_eq!(
        status_patches() - before,
        3,
        "only the other controller's writes during the back-off"
    );
    let events = second_writer().await;
    assert_eq!(events.len(), 1, "reported once: {events:?}");
    let note = events[0].note.clone().unwrap_or_default();
    assert!(
        note.contains(".status.ready"),
        "the note names the field: {note}"
    );
    let contested = metric(
        &operator.metrics(),
        "capt_host_contested_objects_total",
        &[],
    );
    assert_eq!(contested, 1.0);
    operator.shutdown().await.expect("a clean shutdown");
}

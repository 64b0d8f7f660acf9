//! Faults: injected conflicts and server errors, a concurrent writer, dropped watches and
//! expired watch history. The operator still converges, and never loses another writer's
//! update.
//!
//! On the test double only (not parameterised by backend): it injects 409/500 answers, drops
//! watches and expires watch history.

use std::time::Duration;

use inproc_apiserver::{RequestFilter, Verb};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::common::{Capt, condition_of, config, eventually, metric, server, start, trace};

/// Merges `patch` into `name` (its status with `status`), retrying refused writes: the
/// "someone else" writing while the operator works.
async fn write(api: &Api<DynamicObject>, name: &str, status: bool, patch: &Value) {
    eventually(&format!("a write to {name}"), || async {
        let params = PatchParams::default();
        let result = if status {
            api.patch_status(name, &params, &Patch::Merge(patch)).await
        } else {
            api.patch(name, &params, &Patch::Merge(patch)).await
        };
        result.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_server_errors_delay_convergence_but_lose_no_concurrent_write() {
    trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let (operator, _) = start(&server, config("faults")).await;
    let faults = server.faults();
    // Only the operator writes CAPTControlPlanes: these faults all hit it.
    let patches = RequestFilter::any()
        .verb(Verb::Patch)
        .resource("captcontrolplanes");
    faults.conflict_next_writes_matching(2, patches.clone());
    faults.fail_next_requests_matching(2, 500, patches);
    faults.fail_next_requests_matching(2, 503, RequestFilter::any().verb(Verb::Watch));
    faults.set_latency(Duration::from_millis(5));

    capt.create("demo").await;
    // Someone else labels the CAPTCluster and writes a status field of its own, again and
    // again, while the operator writes the same objects from what it read.
    let writer = {
        let api = capt.capt_clusters.clone();
        let clusters = capt.clusters.clone();
        tokio::spawn(async move {
            for round in 0..15 {
                let value = format!("round-{round}");
                write(
                    &api,
                    "demo",
                    false,
                    &json!({"metadata": {"labels": {"writer": value}}}),
                )
                .await;
                write(
                    &api,
                    "demo",
                    true,
                    &json!({"status": {"externalNote": value}}),
                )
                .await;
                write(
                    &clusters,
                    "demo",
                    true,
                    &json!({"status": {"externalNote": value}}),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    capt.provision_vpc("demo").await;
    capt.provision_control_plane("demo").await;
    writer.await.expect("the writer finishes");
    eventually("every object to converge", || capt.converged("demo")).await;

    let capt_cluster = capt.capt_cluster("demo").await.unwrap();
    assert_eq!(capt_cluster["metadata"]["labels"]["writer"], "round-14");
    assert_eq!(capt_cluster["status"]["externalNote"], "round-14");
    assert_eq!(capt_cluster["status"]["vpcId"], "vpc-demo");
    let cluster = capt.cluster("demo").await.unwrap();
    assert_eq!(cluster["status"]["externalNote"], "round-14");
    assert_eq!(cluster["status"]["controlPlaneReady"], true);

    let metrics = operator.metrics();
    let conflicts = metric(&metrics, "capt_host_patch_conflicts_total", &[]);
    let failed_writes = metric(
        &metrics,
        "capt_host_reconcile_errors_total",
        &[("error", "write")],
    );
    eprintln!("faults: {conflicts} conflicts, {failed_writes} failed writes, all retried");
    assert!(
        conflicts >= 2.0,
        "the injected conflicts were met: {conflicts}"
    );
    assert!(
        failed_writes >= 2.0,
        "the injected errors were met: {failed_writes}"
    );
    operator.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watches_and_expired_watch_history_are_recovered() {
    trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let (operator, _) = start(&server, config("watches")).await;
    let faults = server.faults();

    capt.create("demo").await;
    eventually("the CAPTCluster to wait for its Workspace", || async {
        capt.capt_cluster("demo")
            .await
            .and_then(|c| condition_of(&c, "Ready"))
            .as_deref()
            == Some("False/WaitingForWorkspace")
    })
    .await;

    // Watches end: the watchers resume from their last resourceVersion.
    assert!(faults.drop_watches() > 0, "the operator watches");
    capt.provision_vpc("demo").await;
    eventually("the VPC to be ready", || async {
        capt.capt_cluster("demo")
            .await
            .and_then(|c| condition_of(&c, "VPCReady"))
            .as_deref()
            == Some("True/VPCCreated")
    })
    .await;

    // The history expires: the watchers get 410 and list again.
    faults.expire_watch_history();
    capt.provision_control_plane("demo").await;
    eventually("every object to converge", || capt.converged("demo")).await;

    // The Workspace is deleted while the Workspace watch is down, and its history expires:
    // the re-list finds it gone, and the CAPTCluster that read it is reconciled.
    faults.fail_next_requests_matching(
        2,
        500,
        RequestFilter::any()
            .verb(Verb::Watch)
            .resource("workspaces"),
    );
    faults.drop_watches();
    capt.workspaces
        .delete("demo-vpc", &DeleteParams::default())
        .await
        .expect("the Workspace is deleted");
    faults.expire_watch_history();
    eventually(
        "the CAPTCluster to notice its Workspace is gone",
        || async {
            capt.capt_cluster("demo")
                .await
                .is_some_and(|c| c["status"]["ready"] == false)
        },
    )
    .await;

    // It comes back: everything converges again.
    capt.provision_vpc("demo").await;
    eventually("every object to converge again", || capt.converged("demo")).await;
    operator.shutdown().await.expect("a clean shutdown");
}

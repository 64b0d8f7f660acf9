//! Fault injection observed through the client, and request counters.

use std::time::{Duration, Instant};

use inproc_apiserver::{RequestFilter, Verb};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use serde_json::json;

use crate::common::{TestResult, api_status, server, widget, widget_server};

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn injected_conflicts_hit_matching_writes() -> TestResult {
    let (server, widgets) = widget_server().await;
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    server.faults().conflict_next_writes_matching(
        1,
        RequestFilter::any()
            .verb(Verb::Patch)
            .resource("widgets.example.test")
            .subresource(Some("status")),
    );
    // A main-resource patch and a read are not affected.
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await?;
    widgets.get("w").await?;
    let status = api_status(
        widgets
            .patch_status(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"ready": true}})),
            )
            .await,
    );
    assert!(status.is_conflict());
    assert_eq!(status.code, 409);
    // The fault is used up.
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await?;

    server.faults().conflict_next_writes(2);
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    assert_eq!(
        api_status(cms.create(&PostParams::default(), &cm("a")).await).code,
        409
    );
    assert_eq!(
        api_status(cms.create(&PostParams::default(), &cm("a")).await).code,
        409
    );
    cms.create(&PostParams::default(), &cm("a")).await?;
    Ok(())
}

#[tokio::test]
async fn injected_failures_and_retried_unavailability() -> TestResult {
    let server = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    cms.create(&PostParams::default(), &cm("a")).await?;

    server.faults().fail_next_requests(1);
    let status = api_status(cms.get("a").await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (500, "InternalError")
    );
    cms.get("a").await?;

    // 503 with Retry-After is retried by kube::Client itself: the call succeeds, and the
    // server saw both attempts.
    server.reset_requests();
    server
        .faults()
        .fail_next_requests_matching(1, 503, RequestFilter::any().verb(Verb::List));
    assert_eq!(cms.list(&Default::default()).await?.items.len(), 1);
    assert_eq!(server.requests().count(Verb::List, "configmaps"), 2);

    server.faults().fail_next_requests(3);
    server.faults().clear();
    cms.get("a").await?;
    Ok(())
}

#[tokio::test]
async fn injected_latency_delays_requests() -> TestResult {
    let server = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let latency = Duration::from_millis(150);
    server.faults().set_latency(latency);
    let started = Instant::now();
    cms.create(&PostParams::default(), &cm("a")).await?;
    // A lower bound only: the server sleeps at least this long before handling.
    assert!(started.elapsed() >= latency);
    server.faults().set_latency(Duration::ZERO);
    cms.get("a").await?;
    Ok(())
}

#[tokio::test]
async fn request_counters_by_verb_resource_and_subresource() -> TestResult {
    let (server, widgets) = widget_server().await;
    server.reset_requests();
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    widgets.get("w").await?;
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await?;
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await?;
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await?;
    let stats = server.requests();
    assert_eq!(stats.count(Verb::Create, "widgets"), 1);
    assert_eq!(stats.count(Verb::Get, "widgets"), 1);
    assert_eq!(stats.count(Verb::Patch, "widgets"), 3);
    assert_eq!(
        stats.count_subresource(Verb::Patch, "widgets", Some("status")),
        2
    );
    assert_eq!(stats.count_subresource(Verb::Patch, "widgets", None), 1);
    assert_eq!(stats.writes(), 4);
    assert_eq!(stats.writes_to("widgets.example.test"), 4);
    assert_eq!(stats.writes_to("configmaps"), 0);
    Ok(())
}

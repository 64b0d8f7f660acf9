//! Kinds registered from Rust, and server shutdown.

use std::time::Duration;

use futures::StreamExt;
use inproc_apiserver::{ResourceKind, ServerConfig};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchParams};
use kube::discovery::Discovery;
use serde_json::json;

use crate::common::{TestResult, Widget, server, server_with, widget, within};

#[tokio::test]
async fn kinds_registered_from_rust_are_served() -> TestResult {
    let server = server().await;
    server.register(
        ResourceKind::of::<Widget>(true)
            .with_status()
            .with_short_names(["wd"]),
    )?;
    let widgets: Api<Widget> = Api::namespaced(server.client(), "default");
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let patched = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}, "spec": {"size": 9}})),
        )
        .await?;
    assert_eq!(patched.spec.size, 1);
    assert_eq!(patched.status.map(|s| s.ready), Some(true));
    let discovery = Discovery::new(server.client()).run().await?;
    assert!(discovery.has_group("example.test"));

    // Also from the configuration, and invalid kinds are refused.
    let configured = server_with(ServerConfig::default().with_kind(ResourceKind::cluster(
        "example.test",
        "v1",
        "Gadget",
        "gadgets",
    )))
    .await;
    let gadgets = configured
        .client()
        .list_api_group_resources("example.test/v1")
        .await?;
    assert_eq!(gadgets.resources[0].name, "gadgets");
    assert!(!gadgets.resources[0].namespaced);
    assert!(
        server
            .register(ResourceKind::cluster(
                "example.test",
                "v1",
                "Bad",
                "Bad/Plural"
            ))
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_ends_watches_and_stops_serving() -> TestResult {
    let server = server_with(
        ServerConfig::default()
            .with_namespaces(["default", "extra"])
            .with_default_watch_timeout(Duration::from_secs(60)),
    )
    .await;
    let client = server.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "extra");
    api.list(&Default::default()).await?;
    let events = api.watch(&WatchParams::default(), "0").await?;
    within("shutdown", server.shutdown()).await;
    let rest: Vec<_> = within("the watch to end", events.collect()).await;
    assert!(rest.iter().all(|e| e.is_ok()), "{rest:?}");
    assert!(api.list(&Default::default()).await.is_err());
    Ok(())
}

#[tokio::test]
async fn kubeconfig_points_at_the_server() -> TestResult {
    let server = server().await;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&server.kubeconfig_yaml())?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config)?;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    assert!(api.list(&Default::default()).await?.items.is_empty());
    Ok(())
}

//! Discovery through `kube::discovery` and dynamic APIs built from it.

use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::{self, Discovery, Scope, verbs};

use crate::common::{TestResult, api_status, widget_server};

#[tokio::test]
async fn discovery_finds_builtins_and_crd_kinds() -> TestResult {
    let (server, _) = widget_server().await;
    let client = server.client();
    let version = client.apiserver_version().await?;
    assert_eq!(version.major, "1");

    let discovery = Discovery::new(client.clone()).run().await?;
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for expected in [
        "",
        "events.k8s.io",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
        "example.test",
    ] {
        assert!(
            groups.iter().any(|g| g == expected),
            "{expected} in {groups:?}"
        );
    }

    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.test", "v1", "Widget"))
        .expect("Widget is discovered");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.supports_operation(verbs::WATCH));
    assert!(caps.supports_operation(verbs::PATCH));
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status"),
        "status subresource in {:?}",
        caps.subresources
    );

    let (lease, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease"))
        .expect("Lease is discovered");
    assert_eq!(lease.plural, "leases");
    assert_eq!(caps.scope, Scope::Namespaced);
    let (_, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
        .expect("Namespace is discovered");
    assert_eq!(caps.scope, Scope::Cluster);
    Ok(())
}

#[tokio::test]
async fn aggregated_discovery_and_pinned_kinds() -> TestResult {
    let (server, _) = widget_server().await;
    let client = server.client();
    let discovery = Discovery::new(client.clone()).run_aggregated().await?;
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("example.test", "v1", "Widget"))
            .is_some()
    );
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
            .is_some()
    );
    let (ar, caps) = discovery::pinned_kind(
        &client,
        &GroupVersionKind::gvk("example.test", "v1", "Widget"),
    )
    .await?;
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, Scope::Namespaced);
    Ok(())
}

#[tokio::test]
async fn dynamic_objects_through_discovered_api_resources() -> TestResult {
    let (server, _) = widget_server().await;
    let client = server.client();
    let (ar, _) = discovery::pinned_kind(
        &client,
        &GroupVersionKind::gvk("example.test", "v1", "Widget"),
    )
    .await?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut obj = DynamicObject::new("dyn", &ar);
    obj.data = serde_json::json!({"spec": {"size": 3}});
    let created = api.create(&PostParams::default(), &obj).await?;
    assert_eq!(created.data["spec"]["size"], 3);
    let fetched = api.get("dyn").await?;
    assert_eq!(fetched.metadata.uid, created.metadata.uid);
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    assert_eq!(all.list(&Default::default()).await?.items.len(), 1);

    let mut missing = ar.clone();
    missing.plural = "gizmos".into();
    let gizmos: Api<DynamicObject> = Api::namespaced_with(client, "default", &missing);
    let status = api_status(gizmos.get("x").await);
    assert_eq!(status.code, 404);
    Ok(())
}

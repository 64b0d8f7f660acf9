//! CRUD semantics on a CRD-defined kind and on built-ins.

use std::collections::BTreeMap;

use inproc_apiserver::Verb;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::common::{TestResult, Widget, WidgetStatus, api_status, server, widget, widget_server};

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

#[tokio::test]
async fn crud_on_a_kind_registered_by_posting_its_crd() -> TestResult {
    let (server, widgets) = widget_server().await;
    let created = widgets
        .create(&PostParams::default(), &widget("w1", 1))
        .await?;
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1: u64 = created.resource_version().unwrap().parse()?;

    let got = widgets.get("w1").await?;
    assert_eq!(got.spec.size, 1);
    assert_eq!(widgets.list(&Default::default()).await?.items.len(), 1);

    let mut replaced = got.clone();
    replaced.spec.size = 2;
    let replaced = widgets
        .replace("w1", &PostParams::default(), &replaced)
        .await?;
    assert_eq!(replaced.spec.size, 2);
    let rv2: u64 = replaced.resource_version().unwrap().parse()?;
    assert!(rv2 > rv1);

    let patched = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "red"}})),
        )
        .await?;
    assert_eq!(patched.spec.color.as_deref(), Some("red"));
    assert_eq!(patched.spec.size, 2);

    let patched = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(json!([
                {"op": "replace", "path": "/spec/size", "value": 7}
            ]))?),
        )
        .await?;
    assert_eq!(patched.spec.size, 7);

    let applied = widgets
        .patch(
            "w2",
            &PatchParams::apply("tests").force(),
            &Patch::Apply(json!({
                "apiVersion": "example.test/v1",
                "kind": "Widget",
                "spec": {"size": 9}
            })),
        )
        .await?;
    assert_eq!(applied.spec.size, 9);
    assert_eq!(
        server
            .store()
            .get::<Widget>(Some("default"), "w2")
            .map(|w| w.spec.size),
        Some(9)
    );

    let deleted = widgets.delete("w1", &DeleteParams::default()).await?;
    assert!(deleted.is_right(), "deleted at once: a Status is returned");
    assert_eq!(api_status(widgets.get("w1").await).code, 404);
    assert!(
        server
            .store()
            .get::<Widget>(Some("default"), "w1")
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn status_subresource_is_isolated_both_ways() -> TestResult {
    let (_server, widgets) = widget_server().await;
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;

    // Writes to the main resource never change status.
    let patched = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}, "status": {"ready": true}})),
        )
        .await?;
    assert_eq!(patched.spec.size, 2);
    assert_eq!(patched.status, None);

    // Writes to /status only change status.
    let patched = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 100}, "status": {"ready": true}})),
        )
        .await?;
    assert_eq!(patched.spec.size, 2);
    assert_eq!(
        patched.status,
        Some(WidgetStatus {
            ready: true,
            message: None
        })
    );
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "status writes keep generation"
    );

    let mut replace = widgets.get_status("w").await?;
    replace.spec.size = 50;
    replace.status = Some(WidgetStatus {
        ready: false,
        message: Some("m".into()),
    });
    let replaced = widgets
        .replace_status("w", &PostParams::default(), &replace)
        .await?;
    assert_eq!(replaced.spec.size, 2);
    assert_eq!(
        replaced.status.as_ref().and_then(|s| s.message.as_deref()),
        Some("m")
    );

    // A replace of the main resource keeps the stored status.
    let mut main = replaced.clone();
    main.status = None;
    main.spec.size = 3;
    let main = widgets.replace("w", &PostParams::default(), &main).await?;
    assert_eq!(main.spec.size, 3);
    assert_eq!(main.status.as_ref().map(|s| s.ready), Some(false));
    Ok(())
}

#[tokio::test]
async fn stale_resource_version_conflicts_on_patch_and_replace() -> TestResult {
    let (_server, widgets) = widget_server().await;
    let original = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await?;

    let mut stale = original.clone();
    stale.spec.size = 5;
    let status = api_status(widgets.replace("w", &PostParams::default(), &stale).await);
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert!(status.is_conflict());

    let status = api_status(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": {"resourceVersion": original.resource_version()},
                    "spec": {"size": 6}
                })),
            )
            .await,
    );
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");

    let status = api_status(
        widgets
            .patch_status(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": {"resourceVersion": original.resource_version()},
                    "status": {"ready": true}
                })),
            )
            .await,
    );
    assert_eq!(status.code, 409);

    // With the current resourceVersion the write goes through.
    let current = widgets.get("w").await?;
    let mut fresh = current.clone();
    fresh.spec.size = 8;
    assert_eq!(
        widgets
            .replace("w", &PostParams::default(), &fresh)
            .await?
            .spec
            .size,
        8
    );
    Ok(())
}

#[tokio::test]
async fn generation_bumps_only_on_spec_changes() -> TestResult {
    let (_server, widgets) = widget_server().await;
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let labelled = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}}})),
        )
        .await?;
    assert_eq!(labelled.metadata.generation, Some(1));
    let status = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await?;
    assert_eq!(status.metadata.generation, Some(1));
    let spec = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await?;
    assert_eq!(spec.metadata.generation, Some(2));
    Ok(())
}

#[tokio::test]
async fn noop_patch_does_not_bump_resource_version() -> TestResult {
    let (server, widgets) = widget_server().await;
    let created = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let global = server.resource_version();
    let same = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 1}})),
        )
        .await?;
    assert_eq!(same.resource_version(), created.resource_version());
    let same = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": null})),
        )
        .await?;
    assert_eq!(same.resource_version(), created.resource_version());
    let same = widgets.replace("w", &PostParams::default(), &same).await?;
    assert_eq!(same.resource_version(), created.resource_version());
    assert_eq!(server.resource_version(), global, "no write happened");
    Ok(())
}

#[tokio::test]
async fn errors_come_with_status_bodies() -> TestResult {
    let server = server().await;
    let client = server.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let status = api_status(cms.get("missing").await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert!(status.message.contains("configmaps \"missing\" not found"));

    cms.create(&PostParams::default(), &cm("a")).await?;
    let status = api_status(cms.create(&PostParams::default(), &cm("a")).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    let status = api_status(
        cms.create(&PostParams::default(), &ConfigMap::default())
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));

    let status = api_status(cms.create(&PostParams::default(), &cm("Not_Valid")).await);
    assert_eq!(status.code, 422);
    let mut bad_label = cm("b");
    bad_label.metadata.labels = Some(BTreeMap::from([("k".to_string(), "no spaces".to_string())]));
    let status = api_status(cms.create(&PostParams::default(), &bad_label).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));

    let in_missing_ns: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let status = api_status(in_missing_ns.create(&PostParams::default(), &cm("a")).await);
    assert_eq!(status.code, 404);

    let request = axum::http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(b"{not json".to_vec())?;
    let status = api_status(client.request::<serde_json::Value>(request).await);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));

    let request = axum::http::Request::patch("/api/v1/namespaces/default/configmaps/a")
        .header("content-type", "application/merge-patch+json")
        .body(b"[oops".to_vec())?;
    let status = api_status(client.request::<serde_json::Value>(request).await);
    assert_eq!(status.code, 400);

    let request = axum::http::Request::patch("/api/v1/namespaces/default/configmaps/a")
        .header("content-type", "text/plain")
        .body(b"{}".to_vec())?;
    let status = api_status(client.request::<serde_json::Value>(request).await);
    assert_eq!(status.code, 415);

    // Strategic merge patches work on built-ins and are refused for custom resources.
    let patched = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"k2": "v2"}})),
        )
        .await?;
    assert_eq!(patched.data.as_ref().map(|d| d.len()), Some(2));
    Ok(())
}

#[tokio::test]
async fn strategic_merge_patch_is_refused_for_custom_resources() -> TestResult {
    let (_server, widgets) = widget_server().await;
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let status = api_status(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 2}})),
            )
            .await,
    );
    assert_eq!(status.code, 415);
    Ok(())
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() -> TestResult {
    let (server, widgets) = widget_server().await;
    let mut w = widget("w", 1);
    w.metadata.finalizers = Some(vec!["example.test/cleanup".into()]);
    widgets.create(&PostParams::default(), &w).await?;

    let pending = widgets.delete("w", &DeleteParams::default()).await?;
    let pending = pending
        .left()
        .expect("deletion is pending: the object is returned");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(
        widgets
            .get("w")
            .await?
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let status = api_status(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": ["example.test/cleanup", "new"]}})),
            )
            .await,
    );
    assert_eq!(status.code, 422, "no new finalizers while deleting");

    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": "example.test/cleanup"},
                {"op": "remove", "path": "/metadata/finalizers"}
            ]))?),
        )
        .await?;
    assert_eq!(api_status(widgets.get("w").await).code, 404);
    assert!(server.store().get::<Widget>(Some("default"), "w").is_none());
    Ok(())
}

#[tokio::test]
async fn dry_run_does_not_persist() -> TestResult {
    let (server, widgets) = widget_server().await;
    let rv = server.resource_version();
    let dry = widgets
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &widget("w", 1),
        )
        .await?;
    assert_eq!(dry.spec.size, 1);
    assert_eq!(api_status(widgets.get("w").await).code, 404);
    assert_eq!(server.resource_version(), rv);

    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let dry = widgets
        .patch(
            "w",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec": {"size": 5}})),
        )
        .await?;
    assert_eq!(dry.spec.size, 5);
    assert_eq!(widgets.get("w").await?.spec.size, 1);
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    widgets.delete("w", &dp).await?;
    assert!(widgets.get("w").await.is_ok());
    Ok(())
}

#[tokio::test]
async fn delete_preconditions_and_collections() -> TestResult {
    let server = server().await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let a = cms.create(&PostParams::default(), &cm("a")).await?;
    let status = api_status(
        cms.delete(
            "a",
            &DeleteParams::default().preconditions(kube::api::Preconditions {
                resource_version: Some("1".into()),
                uid: None,
            }),
        )
        .await,
    );
    assert_eq!(status.code, 409);
    cms.delete(
        "a",
        &DeleteParams::default().preconditions(kube::api::Preconditions {
            resource_version: a.resource_version(),
            uid: a.uid(),
        }),
    )
    .await?;

    for name in ["b", "c", "d"] {
        let mut c = cm(name);
        c.metadata.labels = Some(BTreeMap::from([(
            "drop".to_string(),
            (name != "d").to_string(),
        )]));
        cms.create(&PostParams::default(), &c).await?;
    }
    let deleted = cms
        .delete_collection(
            &DeleteParams::default(),
            &kube::api::ListParams::default().labels("drop=true"),
        )
        .await?;
    let names: Vec<String> = deleted
        .left()
        .expect("a list of deleted objects")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, vec!["b", "c"]);
    let left: Vec<String> = cms
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, vec!["d"]);
    assert_eq!(
        server
            .requests()
            .count(Verb::DeleteCollection, "configmaps"),
        1
    );
    Ok(())
}

#[tokio::test]
async fn builtin_behaviour_secrets_namespaces_and_garbage_collection() -> TestResult {
    let server = server().await;
    let client = server.client();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("s".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("user".to_string(), "admin".to_string())])),
        ..Default::default()
    };
    let created = secrets.create(&PostParams::default(), &secret).await?;
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(created.string_data.is_none());
    assert_eq!(
        created
            .data
            .and_then(|d| d.get("user").map(|v| v.0.clone())),
        Some(b"admin".to_vec())
    );

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("team".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let ns = namespaces.create(&PostParams::default(), &ns).await?;
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    let team: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let owner = team.create(&PostParams::default(), &cm("owner")).await?;
    let mut dependent = cm("dependent");
    dependent.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    team.create(&PostParams::default(), &dependent).await?;

    team.delete("owner", &DeleteParams::default()).await?;
    assert_eq!(
        api_status(team.get("dependent").await).code,
        404,
        "garbage collected"
    );

    team.create(&PostParams::default(), &cm("content")).await?;
    namespaces.delete("team", &DeleteParams::default()).await?;
    assert_eq!(api_status(namespaces.get("team").await).code, 404);
    assert_eq!(api_status(team.get("content").await).code, 404);
    Ok(())
}

#[tokio::test]
async fn server_side_apply_conflicts_between_field_managers() -> TestResult {
    let (_server, widgets) = widget_server().await;
    let config = |size: i32| {
        json!({
            "apiVersion": "example.test/v1",
            "kind": "Widget",
            "spec": {"size": size}
        })
    };
    widgets
        .patch("w", &PatchParams::apply("first"), &Patch::Apply(config(1)))
        .await?;
    // Applying the same value shares the field; changing it conflicts.
    widgets
        .patch("w", &PatchParams::apply("second"), &Patch::Apply(config(1)))
        .await?;
    let status = api_status(
        widgets
            .patch("w", &PatchParams::apply("second"), &Patch::Apply(config(2)))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("conflict with \"first\""),
        "{}",
        status.message
    );
    assert_eq!(
        status.details.as_ref().map(|d| d.causes[0].field.as_str()),
        Some(".spec.size")
    );
    // Forcing takes the field over.
    let forced = widgets
        .patch(
            "w",
            &PatchParams::apply("second").force(),
            &Patch::Apply(config(2)),
        )
        .await?;
    assert_eq!(forced.spec.size, 2);
    let status = api_status(
        widgets
            .patch("w", &PatchParams::apply("first"), &Patch::Apply(config(3)))
            .await,
    );
    assert_eq!(status.code, 409);
    Ok(())
}

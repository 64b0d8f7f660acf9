//! A `kube::runtime::Controller` reconciling against the server.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use inproc_apiserver::{RequestFilter, Verb};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::watcher;
use serde_json::json;

use crate::common::{TestResult, Widget, widget, widget_server, within};

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(obj: Arc<Widget>, api: Arc<Api<Widget>>) -> Result<Action, ReconcileError> {
    let message = format!("size {}", obj.spec.size);
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"ready": true, "message": message}})),
    )
    .await?;
    Ok(Action::await_change())
}

fn error_policy(_obj: Arc<Widget>, _err: &ReconcileError, _api: Arc<Api<Widget>>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

#[tokio::test]
async fn controller_reconciles_and_retries_after_conflicts() -> TestResult {
    let (server, widgets) = widget_server().await;
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(widgets.clone()))
        .for_each(|_| async {});
    let driver = tokio::spawn(controller);

    // The first status write conflicts; the controller's error policy retries it.
    server
        .faults()
        .conflict_next_writes_matching(1, RequestFilter::any().verb(Verb::Patch));
    widgets
        .create(&PostParams::default(), &widget("w", 3))
        .await?;
    let ready = |server: &inproc_apiserver::ApiServer, expected: &str| {
        server
            .store()
            .get::<Widget>(Some("default"), "w")
            .and_then(|w| w.status)
            .is_some_and(|s| s.ready && s.message.as_deref() == Some(expected))
    };
    within("reconciled", async {
        while !ready(&server, "size 3") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await?;
    within("reconciled after a spec change", async {
        while !ready(&server, "size 4") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        server
            .requests()
            .count_subresource(Verb::Patch, "widgets", Some("status"))
            >= 3
    );
    driver.abort();
    Ok(())
}

#[tokio::test]
async fn finalizer_helper_adds_and_removes_its_finalizer() -> TestResult {
    let (server, widgets) = widget_server().await;
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let name = "example.test/cleanup";
    let run = |obj: Widget| {
        let widgets = widgets.clone();
        async move {
            finalizer(&widgets, name, Arc::new(obj), |event| async move {
                Ok::<_, std::io::Error>(match event {
                    FinalizerEvent::Apply(_) => Action::requeue(Duration::from_secs(60)),
                    FinalizerEvent::Cleanup(_) => Action::await_change(),
                })
            })
            .await
        }
    };
    // First pass: the helper adds its finalizer (a JSON patch testing for a missing list).
    run(widgets.get("w").await?).await?;
    assert_eq!(widgets.get("w").await?.finalizers(), [name]);
    // Second pass: the reconciliation itself.
    assert_eq!(
        run(widgets.get("w").await?).await?,
        Action::requeue(Duration::from_secs(60))
    );
    // Deletion waits for the cleanup, which removes the finalizer.
    let pending = widgets.delete("w", &DeleteParams::default()).await?;
    assert!(pending.is_left());
    run(widgets.get("w").await?).await?;
    assert!(server.store().get::<Widget>(Some("default"), "w").is_none());
    Ok(())
}

//! Re-triggering by dependency: a change of an object reconciles exactly the triggers whose
//! last reconcile read it (found or missing), and the trigger-kind owners it names; the echo of
//! a trigger's own write does not reconcile that trigger again.

use std::collections::BTreeSet;
use std::time::Duration;

use capt_host_operator::ReconcileResult;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::common::{Backend, Capt, config, create, name, start, trace};

/// How long without a reconcile counts as "settled".
const QUIET: Duration = Duration::from_millis(1500);

/// Puts a new label on `name`: a change no policy output depends on.
async fn touch(api: &Api<DynamicObject>, name: &str, value: &str) {
    let patch = json!({"metadata": {"labels": {"touched": value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("labelling {name} failed: {e}"));
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

crate::on_both_backends!(a_change_retriggers_exactly_the_triggers_that_read_the_object);

async fn a_change_retriggers_exactly_the_triggers_that_read_the_object(backend: Backend) {
    trace();
    let server = backend.start().await;
    let capt = Capt::new(&server);
    let (operator, mut reconciles) = start(&server, config("retrigger")).await;
    capt.converge("a").await;
    capt.converge("b").await;
    reconciles.until_quiet(QUIET).await;

    // a's VPC Workspace was read by the CAPTCluster a only.
    touch(&capt.workspaces, "a-vpc", "1").await;
    let reconciled = reconciles.settle(&["CAPTCluster/a"], QUIET).await;
    assert_eq!(reconciled, set(&["CAPTCluster/a"]));

    // a's control-plane Workspace: the CAPTControlPlane a only.
    touch(&capt.workspaces, "a-eks-controlplane", "1").await;
    let reconciled = reconciles.settle(&["CAPTControlPlane/a"], QUIET).await;
    assert_eq!(reconciled, set(&["CAPTControlPlane/a"]));

    // The Cluster b is read by both of b's triggers, and by nothing of a.
    touch(&capt.clusters, "b", "1").await;
    let both = ["CAPTCluster/b", "CAPTControlPlane/b"];
    let reconciled = reconciles.settle(&both, QUIET).await;
    assert_eq!(reconciled, set(&both));

    // An object owned by a trigger re-triggers its owner, even one that never read it.
    let owner = capt
        .capt_clusters
        .get("b")
        .await
        .expect("the CAPTCluster b");
    create(
        &capt.applies,
        json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
            "kind": "WorkspaceTemplateApply",
            "metadata": {"name": "b-extra", "ownerReferences": [{
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster",
                "name": "b", "uid": owner.metadata.uid,
            }]},
            "spec": {"templateRef": {"name": "vpc-template", "namespace": "default"}},
        }),
    )
    .await;
    let reconciled = reconciles.settle(&["CAPTCluster/b"], QUIET).await;
    assert_eq!(reconciled, set(&["CAPTCluster/b"]));

    // A deleted dependency re-triggers its reader (here the CAPTCluster a, whose VPC Workspace
    // went missing: a transient error, which changes what the control plane reads too).
    capt.workspaces
        .delete("a-vpc", &DeleteParams::default())
        .await
        .expect("the Workspace is deleted");
    let reconciled = reconciles.settle(&["CAPTCluster/a"], QUIET).await;
    assert!(
        reconciled.iter().all(|t| t.ends_with("/a")),
        "only a's triggers depend on a's Workspace: {reconciled:?}"
    );
    let capt_cluster = capt.capt_cluster("a").await.unwrap();
    assert_eq!(capt_cluster["status"]["ready"], false, "{capt_cluster}");

    operator.shutdown().await.expect("a clean shutdown");
}

crate::on_both_backends!(a_trigger_is_not_reconciled_again_for_its_own_write);

async fn a_trigger_is_not_reconciled_again_for_its_own_write(backend: Backend) {
    trace();
    let server = backend.start().await;
    let capt = Capt::new(&server);
    let (operator, mut reconciles) = start(&server, config("echo")).await;
    capt.converge("a").await;
    reconciles.until_quiet(QUIET).await;

    // Somebody else resets the CAPTCluster's `ready`: one reconcile writes it back, and the
    // watch event of that write (its echo) does not start a second one.
    let reset = json!({"status": {"ready": false}});
    capt.capt_clusters
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&reset))
        .await
        .expect("the status is reset");
    let records = reconciles.settle_records(&["CAPTCluster/a"], QUIET).await;
    let own: Vec<_> = records
        .iter()
        .filter(|r| name(r) == "CAPTCluster/a")
        .map(|r| (r.result, r.writes))
        .collect();
    assert_eq!(
        own,
        [(ReconcileResult::Changed, 1)],
        "every reconcile: {records:?}"
    );
    assert_eq!(
        capt.capt_cluster("a").await.unwrap()["status"]["ready"],
        true
    );

    operator.shutdown().await.expect("a clean shutdown");
}

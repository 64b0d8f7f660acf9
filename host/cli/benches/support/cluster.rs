//! The CAPT world the operator benchmarks run against: the CRDs in an in-process API server
//! and N clusters created through its API, shaped like the happy-path scenario's objects once
//! Crossplane has finished.

use std::path::Path;

use capt_host::manifests;
use futures::{StreamExt as _, TryStreamExt as _};
use inproc_apiserver::StoreReader;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};

/// The CRDs the operator needs, as the operator tests install them.
const CRDS: [&str; 6] = [
    "crds/infrastructure.cluster.x-k8s.io_captclusters.yaml",
    "crds/controlplane.cluster.x-k8s.io_captcontrolplanes.yaml",
    "crds/infrastructure.cluster.x-k8s.io_workspacetemplates.yaml",
    "crds/infrastructure.cluster.x-k8s.io_workspacetemplateapplies.yaml",
    "crds/test-only/cluster.x-k8s.io_clusters.yaml",
    "crds/test-only/tf.upbound.io_workspaces.yaml",
];

/// Requests in flight while the harness creates the clusters.
const POPULATE_CONCURRENCY: usize = 32;

/// Installs the CRDs of [`CRDS`] (from policies/capt-status) and waits until they are served.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/capt-status");
    let mut crds = Vec::new();
    for file in CRDS {
        let text = std::fs::read_to_string(dir.join(file))?;
        crds.extend(manifests::parse(&text)?);
    }
    manifests::create(client, &crds).await?;
    Ok(())
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The APIs the harness creates objects with.
struct Apis {
    clusters: Api<DynamicObject>,
    capt_clusters: Api<DynamicObject>,
    control_planes: Api<DynamicObject>,
    applies: Api<DynamicObject>,
    workspaces: Api<DynamicObject>,
    secrets: Api<Secret>,
}

/// Creates `clusters` clusters, [`POPULATE_CONCURRENCY`] at a time.
pub async fn populate(client: &Client, clusters: usize) -> anyhow::Result<()> {
    let namespaced = |r: &ApiResource| Api::namespaced_with(client.clone(), "default", r);
    let apis = Apis {
        clusters: namespaced(&resource(
            "cluster.x-k8s.io",
            "v1beta1",
            "Cluster",
            "clusters",
        )),
        capt_clusters: namespaced(&resource(
            "infrastructure.cluster.x-k8s.io",
            "v1beta1",
            "CAPTCluster",
            "captclusters",
        )),
        control_planes: namespaced(&resource(
            "controlplane.cluster.x-k8s.io",
            "v1beta1",
            "CAPTControlPlane",
            "captcontrolplanes",
        )),
        applies: namespaced(&resource(
            "infrastructure.cluster.x-k8s.io",
            "v1beta1",
            "WorkspaceTemplateApply",
            "workspacetemplateapplies",
        )),
        workspaces: Api::all_with(
            client.clone(),
            &resource("tf.upbound.io", "v1beta1", "Workspace", "workspaces"),
        ),
        secrets: Api::namespaced(client.clone(), "default"),
    };
    futures::stream::iter(0..clusters)
        .map(|i| create_cluster(&apis, i))
        .buffer_unordered(POPULATE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

async fn create(api: &Api<DynamicObject>, manifest: Value) -> anyhow::Result<DynamicObject> {
    let object: DynamicObject = serde_json::from_value(manifest)?;
    Ok(api.create(&PostParams::default(), &object).await?)
}

async fn patch_status(api: &Api<DynamicObject>, name: &str, status: Value) -> anyhow::Result<()> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(())
}

fn condition(kind: &str, status: &str, reason: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason,
           "lastTransitionTime": "2026-01-01T00:05:00Z"})
}

/// One cluster, shaped like the happy-path scenario's objects once Crossplane has finished.
async fn create_cluster(apis: &Apis, i: usize) -> anyhow::Result<()> {
    let name = format!("c{i:05}");
    let cluster = create(&apis.clusters, json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]},
                               "services": {"cidrBlocks": ["10.96.0.0/12"]}},
            "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                                  "kind": "CAPTCluster", "name": name, "namespace": "default"},
            "controlPlaneRef": {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
                                "kind": "CAPTControlPlane", "name": name, "namespace": "default"},
        },
    }))
    .await?;
    let owner = json!([{"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
                        "name": name, "uid": cluster.uid(), "controller": true}]);
    create(
        &apis.capt_clusters,
        json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
            "kind": "CAPTCluster",
            "metadata": {"name": name, "ownerReferences": owner},
            "spec": {"region": "ap-northeast-1",
                     "vpcTemplateRef": {"name": "vpc-template", "namespace": "default"}},
        }),
    )
    .await?;
    create(&apis.control_planes, json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTControlPlane",
        "metadata": {"name": name, "ownerReferences": owner},
        "spec": {
            "version": "1.31",
            "workspaceTemplateRef": {"name": "eks-controlplane-template", "namespace": "default"},
            "controlPlaneConfig": {"region": "ap-northeast-1",
                                   "endpointAccess": {"public": true, "private": true}},
            "additionalTags": {"Environment": "dev", "ManagedBy": "capt"},
        },
    }))
    .await?;
    let vpc = format!("{name}-vpc");
    let eks = format!("{name}-eks-controlplane");
    let eks_secret = format!("{name}-eks-connection");
    for (apply, workspace, template, secret, waits, outputs) in [
        (
            vpc.clone(),
            vpc.clone(),
            "vpc-template",
            format!("{name}-vpc-connection"),
            json!([]),
            json!({"vpc_id": format!("vpc-{name}"),
                   "availability_zones": ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]}),
        ),
        (
            format!("{eks}-apply"),
            eks.clone(),
            "eks-controlplane-template",
            eks_secret.clone(),
            json!([{"name": vpc}]),
            json!({"cluster_name": name, "cluster_version": "1.31"}),
        ),
    ] {
        create(
            &apis.applies,
            json!({
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                "kind": "WorkspaceTemplateApply",
                "metadata": {"name": apply},
                "spec": {
                    "templateRef": {"name": template, "namespace": "default"},
                    "variables": {"cluster_name": name, "kubernetes_version": "1.31"},
                    "writeConnectionSecretToRef": {"name": secret, "namespace": "default"},
                    "waitForWorkspaces": waits,
                },
            }),
        )
        .await?;
        patch_status(
            &apis.applies,
            &apply,
            json!({
                "workspaceName": workspace,
                "applied": true,
                "lastAppliedTime": "2026-01-01T00:05:00Z",
                "conditions": [condition("Synced", "True", "ReconcileSuccess"),
                               condition("Ready", "True", "Available")],
            }),
        )
        .await?;
        create(
            &apis.workspaces,
            json!({
                "apiVersion": "tf.upbound.io/v1beta1",
                "kind": "Workspace",
                "metadata": {"name": workspace},
                "spec": {
                    "forProvider": {"source": "Inline", "module": "# module"},
                    "writeConnectionSecretToRef": {"name": secret, "namespace": "default"},
                },
            }),
        )
        .await?;
        patch_status(
            &apis.workspaces,
            &workspace,
            json!({
                "conditions": [condition("Synced", "True", "ReconcileSuccess"),
                               condition("Ready", "True", "Available")],
                "atProvider": {"outputs": outputs},
            }),
        )
        .await?;
    }
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": eks_secret},
        "type": "connection.crossplane.io/v1alpha1",
        "stringData": {
            "cluster_endpoint": format!("https://{name}.gr7.ap-northeast-1.eks.amazonaws.com"),
            "kubeconfig": "kubeconfig-data",
        },
    }))?;
    apis.secrets.create(&PostParams::default(), &secret).await?;
    Ok(())
}

/// Clusters whose CAPTCluster and CAPTControlPlane are ready and whose Cluster says so.
pub fn count_converged(store: &StoreReader) -> usize {
    let ready = |api_version: &str, plural: &str, pointers: &[&str]| {
        store
            .list_dynamic(api_version, plural, Some("default"))
            .into_iter()
            .filter(|o| {
                pointers
                    .iter()
                    .all(|p| o.pointer(p) == Some(&Value::Bool(true)))
            })
            .filter_map(|o| o.pointer("/metadata/name")?.as_str().map(str::to_owned))
            .collect::<std::collections::HashSet<_>>()
    };
    let capt_clusters = ready(
        "infrastructure.cluster.x-k8s.io/v1beta1",
        "captclusters",
        &["/status/ready"],
    );
    let control_planes = ready(
        "controlplane.cluster.x-k8s.io/v1beta1",
        "captcontrolplanes",
        &["/status/ready"],
    );
    ready(
        "cluster.x-k8s.io/v1beta1",
        "clusters",
        &["/status/infrastructureReady", "/status/controlPlaneReady"],
    )
    .iter()
    .filter(|n| capt_clusters.contains(*n) && control_planes.contains(*n))
    .count()
}

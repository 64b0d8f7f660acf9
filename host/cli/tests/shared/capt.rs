//! CAPT objects for the operator and swap tests (each test binary includes this file with
//! `#[path]`): the in-process API server's CAPT objects, the test's part of Crossplane, and
//! their readers. The including binary provides `crate::eventually`.
//!
//! Each binary uses a subset, hence `allow(dead_code)` where it is included.

use chrono::{SecondsFormat, Utc};
use inproc_apiserver::{ApiServer, StoreReader};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt as _;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::eventually;

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The CAPT objects of the `default` namespace, and the test's part of Crossplane. Writes go
/// through the API; reads come from the server's store, so they do not count as requests.
pub struct Capt {
    store: StoreReader,
    pub clusters: Api<DynamicObject>,
    pub capt_clusters: Api<DynamicObject>,
    pub control_planes: Api<DynamicObject>,
    pub applies: Api<DynamicObject>,
    pub workspaces: Api<DynamicObject>,
    pub secrets: Api<Secret>,
}

impl Capt {
    /// The APIs, through `server`'s client.
    pub fn new(server: &ApiServer) -> Self {
        let client = server.client();
        let namespaced = |r: &ApiResource| Api::namespaced_with(client.clone(), "default", r);
        Self {
            store: server.store(),
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
            secrets: Api::namespaced(client, "default"),
        }
    }

    /// Creates the Cluster `name`, its CAPTCluster and CAPTControlPlane (owned by it, with
    /// the CAPTCluster's spec given by `capt_cluster_spec`) and the two WorkspaceTemplateApplies
    /// CAPT's controllers would create.
    pub async fn create_with(&self, name: &str, capt_cluster_spec: Value) {
        let cluster = json!({
            "apiVersion": "cluster.x-k8s.io/v1beta1",
            "kind": "Cluster",
            "metadata": {"name": name},
            "spec": {
                "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                                      "kind": "CAPTCluster", "name": name, "namespace": "default"},
                "controlPlaneRef": {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
                                    "kind": "CAPTControlPlane", "name": name, "namespace": "default"},
            },
        });
        let cluster = create(&self.clusters, cluster).await;
        let owner = json!([{"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
                            "name": name, "uid": cluster.uid(), "controller": true}]);
        create(
            &self.capt_clusters,
            json!({
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                "kind": "CAPTCluster",
                "metadata": {"name": name, "ownerReferences": owner},
                "spec": capt_cluster_spec,
            }),
        )
        .await;
        create(&self.control_planes, json!({
            "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
            "kind": "CAPTControlPlane",
            "metadata": {"name": name, "ownerReferences": owner},
            "spec": {
                "version": "1.31",
                "workspaceTemplateRef": {"name": "eks-controlplane-template", "namespace": "default"},
                "controlPlaneConfig": {"region": "ap-northeast-1"},
            },
        }))
        .await;
        for (apply, template, secret) in [
            (
                format!("{name}-vpc"),
                "vpc-template",
                format!("{name}-vpc-connection"),
            ),
            (
                format!("{name}-eks-controlplane-apply"),
                "eks-controlplane-template",
                format!("{name}-eks-connection"),
            ),
        ] {
            create(
                &self.applies,
                json!({
                    "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                    "kind": "WorkspaceTemplateApply",
                    "metadata": {"name": apply},
                    "spec": {
                        "templateRef": {"name": template, "namespace": "default"},
                        "variables": {"cluster_name": name},
                        "writeConnectionSecretToRef": {"name": secret, "namespace": "default"},
                    },
                }),
            )
            .await;
        }
    }

    /// [`Capt::create_with`] a valid CAPTCluster (a VPC from a template).
    pub async fn create(&self, name: &str) {
        self.create_with(
            name,
            json!({"region": "ap-northeast-1",
                   "vpcTemplateRef": {"name": "vpc-template", "namespace": "default"}}),
        )
        .await;
    }

    /// Crossplane creates the Workspace `workspace` of the apply `apply`, and syncs it.
    pub async fn workspace_synced(&self, apply: &str, workspace: &str) {
        patch_status(&self.applies, apply, json!({"workspaceName": workspace})).await;
        let manifest = json!({
            "apiVersion": "tf.upbound.io/v1beta1",
            "kind": "Workspace",
            "metadata": {"name": workspace},
            "spec": {"forProvider": {"source": "Inline", "module": "# test"}},
        });
        create(&self.workspaces, manifest).await;
        patch_status(
            &self.workspaces,
            workspace,
            json!({"conditions": [
                condition("Synced", "True", "ReconcileSuccess"),
                condition("Ready", "False", "Creating"),
            ]}),
        )
        .await;
    }

    /// Terraform finished the Workspace with `outputs`; the apply is applied.
    pub async fn workspace_ready(&self, apply: &str, workspace: &str, outputs: Value) {
        patch_status(
            &self.workspaces,
            workspace,
            json!({
                "conditions": [
                    condition("Synced", "True", "ReconcileSuccess"),
                    condition("Ready", "True", "Available"),
                ],
                "atProvider": {"outputs": outputs},
            }),
        )
        .await;
        patch_status(
            &self.applies,
            apply,
            json!({"applied": true, "lastAppliedTime": now()}),
        )
        .await;
    }

    /// The VPC of cluster `name`: Workspace synced, then ready with a VPC ID and three zones.
    pub async fn provision_vpc(&self, name: &str) {
        let (apply, workspace) = (format!("{name}-vpc"), format!("{name}-vpc"));
        self.workspace_synced(&apply, &workspace).await;
        self.workspace_ready(
            &apply,
            &workspace,
            json!({
                "vpc_id": format!("vpc-{name}"),
                "availability_zones": ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"],
            }),
        )
        .await;
    }

    /// The EKS control plane of cluster `name`: Workspace synced, the connection Secret written
    /// (the endpoint is only there), then the Workspace ready.
    pub async fn provision_control_plane(&self, name: &str) {
        let (apply, workspace) = (
            format!("{name}-eks-controlplane-apply"),
            format!("{name}-eks-controlplane"),
        );
        self.workspace_synced(&apply, &workspace).await;
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-eks-connection")},
            "stringData": {"cluster_endpoint": endpoint_url(name)},
        }))
        .expect("a Secret");
        self.secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("the Secret is created");
        self.workspace_ready(&apply, &workspace, json!({"cluster_name": name}))
            .await;
    }

    /// Everything of cluster `name`, from creation to both objects Ready.
    pub async fn converge(&self, name: &str) {
        self.create(name).await;
        self.provision_vpc(name).await;
        self.provision_control_plane(name).await;
        eventually(&format!("{name} to converge"), || self.converged(name)).await;
    }

    /// True when the CAPTCluster, the CAPTControlPlane and the Cluster `name` are all ready.
    pub async fn converged(&self, name: &str) -> bool {
        let is_true = |object: Option<Value>, path: &str| {
            object.is_some_and(|o| o.pointer(path) == Some(&Value::Bool(true)))
        };
        is_true(self.capt_cluster(name), "/status/ready")
            && is_true(self.control_plane(name), "/status/ready")
            && is_true(self.cluster(name), "/status/controlPlaneReady")
            && is_true(self.cluster(name), "/status/infrastructureReady")
    }

    /// The Cluster `name`, as stored.
    pub fn cluster(&self, name: &str) -> Option<Value> {
        self.store.get_dynamic(
            "cluster.x-k8s.io/v1beta1",
            "clusters",
            Some("default"),
            name,
        )
    }

    /// The CAPTCluster `name`, as stored.
    pub fn capt_cluster(&self, name: &str) -> Option<Value> {
        self.store.get_dynamic(
            "infrastructure.cluster.x-k8s.io/v1beta1",
            "captclusters",
            Some("default"),
            name,
        )
    }

    /// The CAPTControlPlane `name`, as stored.
    pub fn control_plane(&self, name: &str) -> Option<Value> {
        self.store.get_dynamic(
            "controlplane.cluster.x-k8s.io/v1beta1",
            "captcontrolplanes",
            Some("default"),
            name,
        )
    }

    /// The events about the object `name` of `kind`.
    pub fn events_about(&self, kind: &str, name: &str) -> Vec<Event> {
        self.store
            .list::<Event>(Some("default"))
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)
                })
            })
            .collect()
    }
}

/// The condition `kind` of `object`'s status, as `Status/Reason`.
pub fn condition_of(object: &Value, kind: &str) -> Option<String> {
    let conditions = object.pointer("/status/conditions")?.as_array()?;
    let condition = conditions.iter().find(|c| c["type"] == kind)?;
    Some(format!(
        "{}/{}",
        condition["status"].as_str()?,
        condition["reason"].as_str().unwrap_or_default()
    ))
}

/// The control-plane endpoint URL of cluster `name`.
pub fn endpoint_url(name: &str) -> String {
    format!(
        "https://{}.gr7.ap-northeast-1.eks.amazonaws.com",
        name.to_uppercase()
    )
}

/// Creates `manifest` with `api`.
pub async fn create(api: &Api<DynamicObject>, manifest: Value) -> DynamicObject {
    let object: DynamicObject = serde_json::from_value(manifest).expect("a manifest");
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {} failed: {e}", object.name_any()))
}

/// Merges `status` into the status of `name`.
pub async fn patch_status(api: &Api<DynamicObject>, name: &str, status: Value) {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await
    .unwrap_or_else(|e| panic!("patching the status of {name} failed: {e}"));
}

/// A condition of `kind` with `status` and `reason`, changed now.
fn condition(kind: &str, status: &str, reason: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "lastTransitionTime": now()})
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

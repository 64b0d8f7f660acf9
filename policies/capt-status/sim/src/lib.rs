//! # capt-status-sim: the simulated CAPT world
//!
//! What the capt-status policy's world looks like outside the policy, once, for the demo, the
//! tests and the benchmarks: the CRDs (CAPT's, and test-only stand-ins for Cluster API's
//! Cluster and Crossplane's Workspace), the samples, builders of the objects CAPT's controllers
//! and Crossplane create ([`objects`]), a [`Capt`] that creates and provisions clusters through
//! any API server, and a [`crossplane::Crossplane`] that moves Terraform workspaces along by
//! itself.
//!
//! It talks to an API server through a plain [`kube::Client`]; which server (the in-process
//! test double, a real one) is the caller's business.

pub mod crossplane;
pub mod objects;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};

/// The CRDs the policy needs: CAPT's, and the test-only Cluster and Workspace.
pub const CRDS: [&str; 6] = [
    include_str!("../../crds/infrastructure.cluster.x-k8s.io_captclusters.yaml"),
    include_str!("../../crds/controlplane.cluster.x-k8s.io_captcontrolplanes.yaml"),
    include_str!("../../crds/infrastructure.cluster.x-k8s.io_workspacetemplates.yaml"),
    include_str!("../../crds/infrastructure.cluster.x-k8s.io_workspacetemplateapplies.yaml"),
    include_str!("../../crds/test-only/cluster.x-k8s.io_clusters.yaml"),
    include_str!("../../crds/test-only/tf.upbound.io_workspaces.yaml"),
];

/// The samples (`policies/capt-status/samples`), in the order they are created.
pub mod samples {
    /// The Cluster: the owner of the CAPTCluster and the CAPTControlPlane.
    pub const CLUSTER: &str = include_str!("../../samples/cluster.yaml");
    /// The WorkspaceTemplates of the VPC and the EKS control plane.
    pub const TEMPLATES: [&str; 2] = [
        include_str!("../../samples/workspacetemplate-vpc.yaml"),
        include_str!("../../samples/workspacetemplate-eks-controlplane.yaml"),
    ];
    /// The CAPTCluster and the CAPTControlPlane (owned by the Cluster).
    pub const OWNED: [&str; 2] = [
        include_str!("../../samples/captcluster.yaml"),
        include_str!("../../samples/captcontrolplane.yaml"),
    ];
    /// The WorkspaceTemplateApplies CAPT's controllers would create.
    pub const APPLIES: [&str; 2] = [
        include_str!("../../samples/demo/workspacetemplateapply-vpc.yaml"),
        include_str!("../../samples/demo/workspacetemplateapply-eks-controlplane.yaml"),
    ];
}

/// What can go wrong talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A request failed.
    #[error("{what} failed: {source}")]
    Api {
        /// What was asked.
        what: String,
        /// Why it failed.
        #[source]
        source: kube::Error,
    },
    /// A built object is not of its kind's shape.
    #[error("building {what} failed")]
    Build {
        /// What was built.
        what: String,
        /// Why it failed.
        #[source]
        source: serde_json::Error,
    },
}

/// The kinds of the simulated world, as the API server serves them.
pub mod kinds {
    use kube::api::ApiResource;

    fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: format!("{group}/{version}"),
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    /// Cluster API's `Cluster`.
    pub fn cluster() -> ApiResource {
        resource("cluster.x-k8s.io", "v1beta1", "Cluster", "clusters")
    }

    /// `CAPTCluster`.
    pub fn capt_cluster() -> ApiResource {
        resource(
            "infrastructure.cluster.x-k8s.io",
            "v1beta1",
            "CAPTCluster",
            "captclusters",
        )
    }

    /// `CAPTControlPlane`.
    pub fn control_plane() -> ApiResource {
        resource(
            "controlplane.cluster.x-k8s.io",
            "v1beta1",
            "CAPTControlPlane",
            "captcontrolplanes",
        )
    }

    /// `WorkspaceTemplateApply`.
    pub fn apply() -> ApiResource {
        resource(
            "infrastructure.cluster.x-k8s.io",
            "v1beta1",
            "WorkspaceTemplateApply",
            "workspacetemplateapplies",
        )
    }

    /// Crossplane's `Workspace` (cluster-scoped).
    pub fn workspace() -> ApiResource {
        resource("tf.upbound.io", "v1beta1", "Workspace", "workspaces")
    }
}

/// The CAPT objects of one namespace, created and moved along through the API, as CAPT's
/// controllers and Crossplane would.
pub struct Capt {
    /// Cluster API's Clusters.
    pub clusters: Api<DynamicObject>,
    /// CAPTClusters.
    pub capt_clusters: Api<DynamicObject>,
    /// CAPTControlPlanes.
    pub control_planes: Api<DynamicObject>,
    /// WorkspaceTemplateApplies.
    pub applies: Api<DynamicObject>,
    /// Crossplane's Workspaces (cluster-scoped).
    pub workspaces: Api<DynamicObject>,
    /// Secrets (the workspaces' connection secrets).
    pub secrets: Api<k8s_openapi::api::core::v1::Secret>,
    namespace: String,
}

impl Capt {
    /// The APIs of `namespace`, through `client`.
    pub fn new(client: &Client, namespace: &str) -> Self {
        let namespaced = |r: &ApiResource| Api::namespaced_with(client.clone(), namespace, r);
        Self {
            clusters: namespaced(&kinds::cluster()),
            capt_clusters: namespaced(&kinds::capt_cluster()),
            control_planes: namespaced(&kinds::control_plane()),
            applies: namespaced(&kinds::apply()),
            workspaces: Api::all_with(client.clone(), &kinds::workspace()),
            secrets: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_owned(),
        }
    }

    /// Creates the Cluster `name`, its CAPTCluster (with `capt_cluster_spec`) and
    /// CAPTControlPlane (both owned by it), and the two WorkspaceTemplateApplies CAPT's
    /// controllers would create.
    pub async fn create_with(&self, name: &str, capt_cluster_spec: Value) -> Result<(), SimError> {
        let ns = &self.namespace;
        let cluster = create(&self.clusters, objects::cluster(name, ns)).await?;
        let owner = objects::owner(name, &cluster.uid().unwrap_or_default());
        create(
            &self.capt_clusters,
            objects::capt_cluster(name, &owner, capt_cluster_spec),
        )
        .await?;
        create(
            &self.control_planes,
            objects::control_plane(name, ns, &owner),
        )
        .await?;
        for apply in objects::applies(name, ns) {
            create(&self.applies, apply.manifest).await?;
        }
        Ok(())
    }

    /// [`Capt::create_with`] a valid CAPTCluster (a VPC from a template).
    pub async fn create(&self, name: &str) -> Result<(), SimError> {
        self.create_with(name, objects::capt_cluster_spec(&self.namespace))
            .await
    }

    /// Crossplane creates the Workspace `workspace` of the apply `apply`, and syncs it.
    pub async fn workspace_synced(&self, apply: &str, workspace: &str) -> Result<(), SimError> {
        patch_status(&self.applies, apply, json!({"workspaceName": workspace})).await?;
        create(&self.workspaces, objects::workspace(workspace, None)).await?;
        patch_status(&self.workspaces, workspace, objects::workspace_synced()).await
    }

    /// Terraform finished the Workspace with `outputs`; the apply is applied.
    pub async fn workspace_ready(
        &self,
        apply: &str,
        workspace: &str,
        outputs: Value,
    ) -> Result<(), SimError> {
        patch_status(
            &self.workspaces,
            workspace,
            objects::workspace_ready(outputs),
        )
        .await?;
        patch_status(&self.applies, apply, objects::applied(&objects::now())).await
    }

    /// The VPC of cluster `name`: Workspace synced, then ready with a VPC ID and three zones.
    pub async fn provision_vpc(&self, name: &str) -> Result<(), SimError> {
        let (apply, workspace) = (objects::vpc_apply(name), objects::vpc_workspace(name));
        self.workspace_synced(&apply, &workspace).await?;
        self.workspace_ready(&apply, &workspace, objects::vpc_outputs(name))
            .await
    }

    /// The EKS control plane of cluster `name`: Workspace synced, the connection Secret written
    /// (the endpoint is only there), then the Workspace ready.
    pub async fn provision_control_plane(&self, name: &str) -> Result<(), SimError> {
        let (apply, workspace) = (objects::eks_apply(name), objects::eks_workspace(name));
        self.workspace_synced(&apply, &workspace).await?;
        self.create_secret(objects::eks_secret(name)).await?;
        self.workspace_ready(&apply, &workspace, objects::eks_outputs(name))
            .await
    }

    /// Everything of cluster `name` at once, as it is once Crossplane has finished: the objects
    /// of [`Capt::create`], both Workspaces Ready with their outputs, the applies applied, the
    /// connection Secret written. Only the policy's status is missing.
    pub async fn create_finished(&self, name: &str) -> Result<(), SimError> {
        let time = objects::FINISHED_AT;
        self.create(name).await?;
        for apply in objects::applies(name, &self.namespace) {
            patch_status(
                &self.applies,
                &apply.name,
                objects::finished_apply(&apply.workspace, time),
            )
            .await?;
            create(
                &self.workspaces,
                objects::workspace(&apply.workspace, Some((&apply.secret, &self.namespace))),
            )
            .await?;
            patch_status(
                &self.workspaces,
                &apply.workspace,
                objects::finished_workspace(apply.outputs, time),
            )
            .await?;
        }
        self.create_secret(objects::eks_secret(name)).await
    }

    async fn create_secret(&self, manifest: Value) -> Result<(), SimError> {
        let secret = serde_json::from_value(manifest).map_err(|source| SimError::Build {
            what: "a connection Secret".into(),
            source,
        })?;
        self.secrets
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|source| SimError::Api {
                what: "creating a connection Secret".into(),
                source,
            })?;
        Ok(())
    }
}

/// True when the CAPTCluster and the CAPTControlPlane of a cluster are ready and its Cluster
/// says so (each object as stored; `None`: missing).
pub fn converged(
    cluster: Option<&Value>,
    capt_cluster: Option<&Value>,
    control_plane: Option<&Value>,
) -> bool {
    let is_true = |object: Option<&Value>, path: &str| {
        object.is_some_and(|o| o.pointer(path) == Some(&Value::Bool(true)))
    };
    is_true(capt_cluster, "/status/ready")
        && is_true(control_plane, "/status/ready")
        && is_true(cluster, "/status/controlPlaneReady")
        && is_true(cluster, "/status/infrastructureReady")
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

/// Creates `manifest` with `api`.
pub async fn create(api: &Api<DynamicObject>, manifest: Value) -> Result<DynamicObject, SimError> {
    let object: DynamicObject =
        serde_json::from_value(manifest).map_err(|source| SimError::Build {
            what: "an object".into(),
            source,
        })?;
    api.create(&PostParams::default(), &object)
        .await
        .map_err(|source| SimError::Api {
            what: format!("creating {}", object.name_any()),
            source,
        })
}

/// Merges `status` into the status of `name`.
pub async fn patch_status(
    api: &Api<DynamicObject>,
    name: &str,
    status: Value,
) -> Result<(), SimError> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await
    .map_err(|source| SimError::Api {
        what: format!("patching the status of {name}"),
        source,
    })?;
    Ok(())
}

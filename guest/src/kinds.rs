//! The kinds this policy knows, and references to their objects.

use crate::contract::{KindRef, ObjectRef};

/// `infrastructure.cluster.x-k8s.io/v1beta1`: CAPTCluster, WorkspaceTemplateApply.
pub const INFRASTRUCTURE_V1BETA1: &str = "infrastructure.cluster.x-k8s.io/v1beta1";
/// `controlplane.cluster.x-k8s.io/v1beta1`: CAPTControlPlane.
pub const CONTROLPLANE_V1BETA1: &str = "controlplane.cluster.x-k8s.io/v1beta1";
/// The Cluster API group.
pub const CLUSTER_API_GROUP: &str = "cluster.x-k8s.io";
/// `cluster.x-k8s.io/v1beta1`: Cluster.
pub const CLUSTER_API_V1BETA1: &str = "cluster.x-k8s.io/v1beta1";
/// `tf.upbound.io/v1beta1`: Crossplane provider-terraform Workspace.
pub const TERRAFORM_V1BETA1: &str = "tf.upbound.io/v1beta1";

/// Kind name of the infrastructure cluster.
pub const CAPT_CLUSTER: &str = "CAPTCluster";
/// Kind name of the control plane.
pub const CAPT_CONTROL_PLANE: &str = "CAPTControlPlane";
/// Kind name of the Cluster API cluster.
pub const CLUSTER: &str = "Cluster";
/// Kind name of the applied template.
pub const WORKSPACE_TEMPLATE_APPLY: &str = "WorkspaceTemplateApply";
/// Kind name of the Terraform workspace.
pub const WORKSPACE: &str = "Workspace";
/// Kind name of a Secret.
pub const SECRET: &str = "Secret";

fn kind(api_version: &str, kind: &str, namespaced: bool) -> KindRef {
    KindRef {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        namespaced,
    }
}

/// The kinds whose objects trigger a reconcile.
pub fn triggers() -> Vec<KindRef> {
    vec![
        kind(INFRASTRUCTURE_V1BETA1, CAPT_CLUSTER, true),
        kind(CONTROLPLANE_V1BETA1, CAPT_CONTROL_PLANE, true),
    ]
}

/// The kinds the policy may ask for or patch.
pub fn reads() -> Vec<KindRef> {
    vec![
        kind(CLUSTER_API_V1BETA1, CLUSTER, true),
        kind(INFRASTRUCTURE_V1BETA1, CAPT_CLUSTER, true),
        kind(CONTROLPLANE_V1BETA1, CAPT_CONTROL_PLANE, true),
        kind(INFRASTRUCTURE_V1BETA1, WORKSPACE_TEMPLATE_APPLY, true),
        kind(TERRAFORM_V1BETA1, WORKSPACE, false),
        kind("v1", SECRET, true),
    ]
}

/// A Cluster API Cluster.
pub fn cluster(namespace: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef::new(CLUSTER_API_V1BETA1, CLUSTER, namespace, name)
}

/// A WorkspaceTemplateApply.
pub fn workspace_template_apply(namespace: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef::new(
        INFRASTRUCTURE_V1BETA1,
        WORKSPACE_TEMPLATE_APPLY,
        namespace,
        name,
    )
}

/// A (cluster-scoped) Workspace.
pub fn workspace(name: &str) -> ObjectRef {
    ObjectRef::new(TERRAFORM_V1BETA1, WORKSPACE, None, name)
}

/// A Secret.
pub fn secret(namespace: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef::new("v1", SECRET, namespace, name)
}

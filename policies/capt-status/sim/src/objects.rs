//! Builders of the simulated world's objects (JSON manifests and status patches), shaped like
//! the happy-path scenario's: a Cluster `name` owning the CAPTCluster and CAPTControlPlane
//! `name`, the WorkspaceTemplateApplies `name-vpc` and `name-eks-controlplane-apply`, their
//! Workspaces `name-vpc` and `name-eks-controlplane`, and the connection Secrets
//! `name-vpc-connection` and `name-eks-connection`.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

/// The time every condition of [`finished_apply`] and [`finished_workspace`] changed.
pub const FINISHED_AT: &str = "2026-01-01T00:05:00Z";

/// The availability zones of every simulated VPC.
const ZONES: [&str; 3] = ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"];

/// Now, as Kubernetes writes times (RFC 3339, seconds).
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A condition of `kind` with `status` and `reason`, changed at `time`.
pub fn condition_at(kind: &str, status: &str, reason: &str, time: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "lastTransitionTime": time})
}

/// A condition of `kind` with `status` and `reason`, changed now.
pub fn condition(kind: &str, status: &str, reason: &str) -> Value {
    condition_at(kind, status, reason, &now())
}

/// The Cluster `name` of `namespace`, referring to its CAPTCluster and CAPTControlPlane.
pub fn cluster(name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "clusterNetwork": {"pods": {"cidrBlocks": ["192.168.0.0/16"]},
                               "services": {"cidrBlocks": ["10.96.0.0/12"]}},
            "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                                  "kind": "CAPTCluster", "name": name, "namespace": namespace},
            "controlPlaneRef": {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
                                "kind": "CAPTControlPlane", "name": name, "namespace": namespace},
        },
    })
}

/// The owner references naming the Cluster `name` (of `uid`) as controller.
pub fn owner(name: &str, uid: &str) -> Value {
    json!([{"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
            "name": name, "uid": uid, "controller": true}])
}

/// A valid CAPTCluster spec: a VPC from the template of `namespace`.
pub fn capt_cluster_spec(namespace: &str) -> Value {
    json!({"region": "ap-northeast-1",
           "vpcTemplateRef": {"name": "vpc-template", "namespace": namespace}})
}

/// The CAPTCluster `name`, owned by `owner`, with `spec`.
pub fn capt_cluster(name: &str, owner: &Value, spec: Value) -> Value {
    json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTCluster",
        "metadata": {"name": name, "ownerReferences": owner},
        "spec": spec,
    })
}

/// The CAPTControlPlane `name`, owned by `owner`.
pub fn control_plane(name: &str, namespace: &str, owner: &Value) -> Value {
    json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTControlPlane",
        "metadata": {"name": name, "ownerReferences": owner},
        "spec": {
            "version": "1.31",
            "workspaceTemplateRef": {"name": "eks-controlplane-template", "namespace": namespace},
            "controlPlaneConfig": {"region": "ap-northeast-1",
                                   "endpointAccess": {"public": true, "private": true}},
            "additionalTags": {"Environment": "dev", "ManagedBy": "capt"},
        },
    })
}

/// The WorkspaceTemplateApply of cluster `name`'s VPC.
pub fn vpc_apply(name: &str) -> String {
    format!("{name}-vpc")
}

/// The Workspace of cluster `name`'s VPC.
pub fn vpc_workspace(name: &str) -> String {
    format!("{name}-vpc")
}

/// The WorkspaceTemplateApply of cluster `name`'s EKS control plane.
pub fn eks_apply(name: &str) -> String {
    format!("{name}-eks-controlplane-apply")
}

/// The Workspace of cluster `name`'s EKS control plane.
pub fn eks_workspace(name: &str) -> String {
    format!("{name}-eks-controlplane")
}

/// One of the two WorkspaceTemplateApplies of a cluster, and what Terraform makes of it.
#[derive(Debug, Clone)]
pub struct Apply {
    /// Its name.
    pub name: String,
    /// The name of its Workspace.
    pub workspace: String,
    /// The name of its connection Secret.
    pub secret: String,
    /// Its manifest.
    pub manifest: Value,
    /// The outputs of its Workspace once ready.
    pub outputs: Value,
}

/// The WorkspaceTemplateApplies of cluster `name` (the VPC's, then the control plane's, which
/// waits for the VPC's Workspace).
pub fn applies(name: &str, namespace: &str) -> [Apply; 2] {
    let apply = |apply: String, workspace, secret: String, template: &str, waits, outputs| {
        let manifest = json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
            "kind": "WorkspaceTemplateApply",
            "metadata": {"name": apply},
            "spec": {
                "templateRef": {"name": template, "namespace": namespace},
                "variables": {"cluster_name": name, "kubernetes_version": "1.31"},
                "writeConnectionSecretToRef": {"name": secret, "namespace": namespace},
                "waitForWorkspaces": waits,
            },
        });
        Apply {
            name: apply,
            workspace,
            secret,
            manifest,
            outputs,
        }
    };
    [
        apply(
            vpc_apply(name),
            vpc_workspace(name),
            format!("{name}-vpc-connection"),
            "vpc-template",
            json!([]),
            vpc_outputs(name),
        ),
        apply(
            eks_apply(name),
            eks_workspace(name),
            format!("{name}-eks-connection"),
            "eks-controlplane-template",
            json!([{"name": vpc_workspace(name)}]),
            eks_outputs(name),
        ),
    ]
}

/// The Workspace `name`, writing its connection Secret to `secret` (name, namespace) if any.
pub fn workspace(name: &str, secret: Option<(&str, &str)>) -> Value {
    let mut spec = json!({"forProvider": {"source": "Inline", "module": "# module"}});
    if let Some((secret, namespace)) = secret {
        spec["writeConnectionSecretToRef"] = json!({"name": secret, "namespace": namespace});
    }
    json!({
        "apiVersion": "tf.upbound.io/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// A Workspace's status while Terraform runs.
pub fn workspace_synced() -> Value {
    json!({"conditions": [
        condition("Synced", "True", "ReconcileSuccess"),
        condition("Ready", "False", "Creating"),
    ]})
}

/// A Workspace's status once Terraform finished with `outputs`.
pub fn workspace_ready(outputs: Value) -> Value {
    json!({
        "conditions": [
            condition("Synced", "True", "ReconcileSuccess"),
            condition("Ready", "True", "Available"),
        ],
        "atProvider": {"outputs": outputs},
    })
}

/// [`workspace_ready`], every condition changed at `time`.
pub fn finished_workspace(outputs: Value, time: &str) -> Value {
    json!({
        "conditions": [condition_at("Synced", "True", "ReconcileSuccess", time),
                       condition_at("Ready", "True", "Available", time)],
        "atProvider": {"outputs": outputs},
    })
}

/// An apply's status once applied at `time`.
pub fn applied(time: &str) -> Value {
    json!({"applied": true, "lastAppliedTime": time})
}

/// An apply's whole status once its Workspace `workspace` is applied at `time`.
pub fn finished_apply(workspace: &str, time: &str) -> Value {
    json!({
        "workspaceName": workspace,
        "applied": true,
        "lastAppliedTime": time,
        "conditions": [condition_at("Synced", "True", "ReconcileSuccess", time),
                       condition_at("Ready", "True", "Available", time)],
    })
}

/// The outputs of cluster `name`'s VPC Workspace: a VPC ID and three zones.
pub fn vpc_outputs(name: &str) -> Value {
    json!({"vpc_id": format!("vpc-{name}"), "availability_zones": ZONES})
}

/// The outputs of cluster `name`'s EKS control-plane Workspace (the endpoint is only in the
/// connection Secret).
pub fn eks_outputs(name: &str) -> Value {
    json!({"cluster_name": name, "cluster_version": "1.31"})
}

/// The control-plane endpoint URL of cluster `name`.
pub fn endpoint_url(name: &str) -> String {
    format!(
        "https://{}.gr7.ap-northeast-1.eks.amazonaws.com",
        name.to_uppercase()
    )
}

/// The connection Secret of cluster `name`'s EKS control plane, with its endpoint.
pub fn eks_secret(name: &str) -> Value {
    json!({
        "metadata": {"name": format!("{name}-eks-connection")},
        "type": "connection.crossplane.io/v1alpha1",
        "stringData": {"cluster_endpoint": endpoint_url(name), "kubeconfig": "kubeconfig-data"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_applies_name_their_workspaces_and_secrets_as_capt_does() {
        let [vpc, eks] = applies("c1", "default");
        assert_eq!(
            (
                vpc.name.as_str(),
                vpc.workspace.as_str(),
                vpc.secret.as_str()
            ),
            ("c1-vpc", "c1-vpc", "c1-vpc-connection")
        );
        assert_eq!(
            (
                eks.name.as_str(),
                eks.workspace.as_str(),
                eks.secret.as_str()
            ),
            (
                "c1-eks-controlplane-apply",
                "c1-eks-controlplane",
                "c1-eks-connection"
            )
        );
        assert_eq!(
            eks.manifest["spec"]["waitForWorkspaces"][0]["name"],
            "c1-vpc"
        );
    }
}

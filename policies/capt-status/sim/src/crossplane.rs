//! A simulated Crossplane provider-terraform (the demo's). Unlike the operator, it knows
//! CAPT's and Crossplane's object shapes.
//!
//! Every step it moves each WorkspaceTemplateApply one stage along, the way CAPT's controller
//! and provider-terraform would, in seconds instead of minutes:
//! 1. once the Workspaces named in `spec.waitForWorkspaces` are Ready, it creates the
//!    Workspace (the apply's name without `-apply`) and sets `status.workspaceName`;
//! 2. the Workspace becomes `Synced` (Terraform is running);
//! 3. the Workspace becomes `Ready` with its outputs (VPC: `vpc_id`, `availability_zones`;
//!    EKS: `cluster_endpoint`), the connection Secret is written, and the apply is `applied`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};

use crate::SimError;
use crate::objects::{condition, now};

/// The simulated Crossplane.
pub struct Crossplane {
    applies: Api<DynamicObject>,
    workspaces: Api<DynamicObject>,
    workspace_resource: ApiResource,
    client: Client,
}

impl Crossplane {
    /// A simulation over the WorkspaceTemplateApplies of `namespace`.
    pub async fn new(client: &Client, namespace: &str) -> Result<Self, SimError> {
        let resource = |group, version, kind| {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            async move {
                kube::discovery::pinned_kind(client, &gvk)
                    .await
                    .map(|(resource, _)| resource)
                    .map_err(|source| SimError::Api {
                        what: format!("discovering {kind}"),
                        source,
                    })
            }
        };
        let apply = resource(
            "infrastructure.cluster.x-k8s.io",
            "v1beta1",
            "WorkspaceTemplateApply",
        )
        .await?;
        let workspace = resource("tf.upbound.io", "v1beta1", "Workspace").await?;
        Ok(Self {
            applies: Api::namespaced_with(client.clone(), namespace, &apply),
            workspaces: Api::all_with(client.clone(), &workspace),
            workspace_resource: workspace,
            client: client.clone(),
        })
    }

    /// Moves every apply one stage along each `step`, forever (abort the task to stop it),
    /// telling `say` what it did.
    pub async fn run(self, step: Duration, say: impl Fn(&str)) {
        loop {
            tokio::time::sleep(step).await;
            if let Err(error) = self.step(&say).await {
                say(&format!("crossplane: {error} (retrying)"));
            }
        }
    }

    async fn step(&self, say: &impl Fn(&str)) -> Result<(), SimError> {
        let applies = self
            .applies
            .list(&Default::default())
            .await
            .map_err(api("listing the WorkspaceTemplateApplies"))?;
        for apply in applies {
            let name = apply.name_any();
            let workspace_name = name.strip_suffix("-apply").unwrap_or(&name).to_owned();
            let Some(workspace) = self
                .workspaces
                .get_opt(&workspace_name)
                .await
                .map_err(api("reading a Workspace"))?
            else {
                if self.dependencies_ready(&apply).await? {
                    self.create_workspace(&apply, &workspace_name).await?;
                    say(&format!(
                        "crossplane: created Workspace {workspace_name} for WorkspaceTemplateApply {name}"
                    ));
                }
                continue;
            };
            if !has_condition(&workspace, "Synced") {
                self.set_workspace_status(
                    &workspace_name,
                    json!({"conditions": [
                        condition("Synced", "True", "ReconcileSuccess"),
                        condition("Ready", "False", "Creating"),
                    ]}),
                )
                .await?;
                say(&format!(
                    "crossplane: Workspace {workspace_name} Synced (terraform apply running)"
                ));
            } else if !has_condition(&workspace, "Ready") {
                self.finish(&apply, &workspace_name).await?;
                say(&format!(
                    "crossplane: Workspace {workspace_name} Ready with outputs; connection Secret written; {name} applied"
                ));
            }
        }
        Ok(())
    }

    /// True when every Workspace in `spec.waitForWorkspaces` is Ready.
    async fn dependencies_ready(&self, apply: &DynamicObject) -> Result<bool, SimError> {
        let names = apply.data["spec"]["waitForWorkspaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w["name"].as_str());
        for name in names {
            match self
                .workspaces
                .get_opt(name)
                .await
                .map_err(api("reading a Workspace"))?
            {
                Some(workspace) if has_condition(&workspace, "Ready") => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    async fn create_workspace(&self, apply: &DynamicObject, name: &str) -> Result<(), SimError> {
        let template = apply.data["spec"]["templateRef"]["name"]
            .as_str()
            .unwrap_or_default();
        let mut workspace = DynamicObject::new(name, &self.workspace_resource).data(json!({
            "spec": {
                "forProvider": {"source": "Inline", "module": format!("# from WorkspaceTemplate {template}")},
                "writeConnectionSecretToRef": apply.data["spec"]["writeConnectionSecretToRef"],
            }
        }));
        workspace.metadata.labels = apply.metadata.labels.clone();
        self.workspaces
            .create(&PostParams::default(), &workspace)
            .await
            .map_err(api("creating a Workspace"))?;
        self.set_apply_status(&apply.name_any(), json!({"workspaceName": name}))
            .await
    }

    /// Terraform finished: outputs, the connection Secret, the apply's applied status.
    async fn finish(&self, apply: &DynamicObject, workspace_name: &str) -> Result<(), SimError> {
        let spec = &apply.data["spec"];
        let cluster = spec["variables"]["cluster_name"].as_str().unwrap_or("demo");
        let (outputs, secret_data) = match spec["templateRef"]["name"].as_str() {
            Some(template) if template.contains("vpc") => vpc_outputs(),
            _ => eks_outputs(cluster),
        };
        if let (Some(secret), Some(namespace)) = (
            spec["writeConnectionSecretToRef"]["name"].as_str(),
            spec["writeConnectionSecretToRef"]["namespace"].as_str(),
        ) {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            let manifest: Secret = serde_json::from_value(json!({
                "metadata": {"name": secret},
                "type": "connection.crossplane.io/v1alpha1",
                "stringData": secret_data,
            }))
            .map_err(|source| SimError::Build {
                what: "a connection Secret".into(),
                source,
            })?;
            secrets
                .create(&PostParams::default(), &manifest)
                .await
                .map_err(api("creating a connection Secret"))?;
        }
        self.set_workspace_status(
            workspace_name,
            json!({
                "conditions": [
                    condition("Synced", "True", "ReconcileSuccess"),
                    condition("Ready", "True", "Available"),
                ],
                "atProvider": {"outputs": outputs},
            }),
        )
        .await?;
        let now = now();
        self.set_apply_status(
            &apply.name_any(),
            json!({
                "applied": true,
                "lastAppliedTime": now,
                "conditions": [
                    condition("Synced", "True", "ReconcileSuccess"),
                    condition("Ready", "True", "Available"),
                ],
            }),
        )
        .await
    }

    async fn set_workspace_status(&self, name: &str, status: Value) -> Result<(), SimError> {
        let patch = json!({"status": status});
        self.workspaces
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api("patching a Workspace's status"))?;
        Ok(())
    }

    async fn set_apply_status(&self, name: &str, status: Value) -> Result<(), SimError> {
        let patch = json!({"status": status});
        self.applies
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api("patching a WorkspaceTemplateApply's status"))?;
        Ok(())
    }
}

/// The VPC workspace's outputs and connection secret.
fn vpc_outputs() -> (Value, Value) {
    let vpc_id = "vpc-0a1b2c3d4e5f67890";
    let outputs = json!({
        "vpc_id": vpc_id,
        "availability_zones": ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"],
        "private_subnet_ids": ["subnet-0aa1", "subnet-0bb2", "subnet-0cc3"],
    });
    let vpc_config = json!({"vpc_id": vpc_id, "private_subnet_ids": outputs["private_subnet_ids"]});
    (
        outputs,
        json!({"vpc_id": vpc_id, "vpc_config": vpc_config.to_string()}),
    )
}

/// The EKS control-plane workspace's outputs and connection secret.
fn eks_outputs(cluster: &str) -> (Value, Value) {
    let endpoint = "https://ABCDEF1234567890.gr7.ap-northeast-1.eks.amazonaws.com";
    let outputs = json!({"cluster_name": cluster, "cluster_endpoint": endpoint});
    let secret = json!({
        "cluster_endpoint": endpoint,
        "cluster_certificate_authority_data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
    });
    (outputs, secret)
}

/// The error of a failed request doing `what`.
fn api(what: &'static str) -> impl Fn(kube::Error) -> SimError {
    move |source| SimError::Api {
        what: what.into(),
        source,
    }
}

/// True when the Workspace's condition `kind` is `True`.
fn has_condition(workspace: &DynamicObject, kind: &str) -> bool {
    workspace.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

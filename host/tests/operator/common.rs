//! Shared by the operator tests: the in-process API server with the CAPT CRDs, the embedded
//! policy (compiled once), operators with test timings, CAPT objects, the test's part of
//! Crossplane, and polling, metrics and HTTP helpers.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use capt_host::operator::{
    ActivePolicy, LeaderElection, Operator, OperatorConfig, PolicySlot, Reconciled, RetryPolicy,
};
use capt_host::{DEFAULT_POLICY, Engine, Limits, Policy, WasmPolicy, manifests};
use chrono::{SecondsFormat, Utc};
use inproc_apiserver::{ApiServer, StoreReader};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::broadcast;

/// How long any wait may take before the test fails (never a timing assertion: only a guard
/// against hanging, generous for a loaded 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The CRDs the operator and the tests need.
const CRDS: [&str; 6] = [
    include_str!(
        "../../../policies/capt-status/crds/infrastructure.cluster.x-k8s.io_captclusters.yaml"
    ),
    include_str!(
        "../../../policies/capt-status/crds/controlplane.cluster.x-k8s.io_captcontrolplanes.yaml"
    ),
    include_str!(
        "../../../policies/capt-status/crds/infrastructure.cluster.x-k8s.io_workspacetemplates.yaml"
    ),
    include_str!(
        "../../../policies/capt-status/crds/infrastructure.cluster.x-k8s.io_workspacetemplateapplies.yaml"
    ),
    include_str!("../../../policies/capt-status/crds/test-only/cluster.x-k8s.io_clusters.yaml"),
    include_str!("../../../policies/capt-status/crds/test-only/tf.upbound.io_workspaces.yaml"),
];

/// A fresh API server with the CRDs installed.
pub async fn server() -> ApiServer {
    let server = ApiServer::start().await.expect("the API server starts");
    let mut crds = Vec::new();
    for text in CRDS {
        crds.extend(manifests::parse(text).expect("the CRD files are YAML"));
    }
    manifests::create(&server.client(), &crds)
        .await
        .expect("the CRDs are installed");
    server
}

/// The embedded policy, compiled once for every test of this binary. Its `pollInterval` is an
/// hour, so the tests converge only if the operator re-triggers on changes.
pub fn policy() -> PolicySlot {
    static COMPILED: OnceLock<Arc<WasmPolicy>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        // Several operators run at once in this binary: room for all their calls.
        let limits = Limits {
            concurrent_calls: 64,
            ..Limits::default()
        };
        let engine = Engine::new(limits).expect("the engine starts");
        Arc::new(WasmPolicy::load(&engine, DEFAULT_POLICY).expect("the default policy loads"))
    });
    let settings = json!({"pollInterval": "1h"});
    let policy: Arc<dyn Policy + Send + Sync> = compiled.clone();
    let active = ActivePolicy::new(policy, compiled.sha256(), Some(&settings))
        .expect("the settings are valid");
    PolicySlot::new(active)
}

/// An operator configuration with short retries, named `identity`.
pub fn config(identity: &str) -> OperatorConfig {
    let mut config = OperatorConfig::new("capt-status", identity);
    config.retry = RetryPolicy {
        min: Duration::from_millis(50),
        max: Duration::from_secs(1),
    };
    config
}

/// `config` with leader election on the Lease `capt-status` in `default`, held for
/// `lease_seconds` and renewed a third of it before it expires.
pub fn elected(identity: &str, lease_seconds: u64) -> OperatorConfig {
    let mut config = config(identity);
    let mut election = LeaderElection::new("capt-status", "default");
    election.lease_duration = Duration::from_secs(lease_seconds);
    election.renew_grace = Duration::from_secs(lease_seconds.div_ceil(3));
    config.leader_election = Some(election);
    config
}

/// Starts an operator on `server` and waits until its caches are synced; with the reports
/// of all its reconciles (collected from before the first one).
pub async fn start(server: &ApiServer, config: OperatorConfig) -> (Operator, Reconciles) {
    let client =
        Client::try_from(server.kube_config().expect("a client configuration")).expect("a client");
    let operator = Operator::start(client, config, policy())
        .await
        .expect("the operator starts");
    let reconciles = Reconciles::of(&operator);
    within("the caches to sync", operator.ready()).await;
    (operator, reconciles)
}

/// Awaits `future`, failing the test after [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {PATIENCE:?} waiting for {what}"))
}

/// Polls `condition` every 100 ms until it holds, failing the test after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// The sum of the samples of `name` whose labels include every `labels` pair.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, series_labels) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// A plain HTTP/1.1 GET: the status code and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Collects the reconciles an operator reports.
pub struct Reconciles(broadcast::Receiver<Reconciled>);

impl Reconciles {
    /// Starts collecting from `operator`.
    pub fn of(operator: &Operator) -> Self {
        Self(operator.reconciles())
    }

    /// Waits until no reconcile finished for `quiet`, then returns the triggers reconciled
    /// since the last call, as `Kind/name`.
    pub async fn until_quiet(&mut self, quiet: Duration) -> BTreeSet<String> {
        self.settle(&[], quiet).await
    }

    /// Waits until every trigger of `expected` (`Kind/name`) was reconciled, then until no
    /// reconcile finished for `quiet`; returns every trigger reconciled since the last call.
    pub async fn settle(&mut self, expected: &[&str], quiet: Duration) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        within(&format!("reconciles of {expected:?}"), async {
            loop {
                let waiting = expected.iter().any(|e| !seen.contains(*e));
                let next = if waiting {
                    Ok(self.0.recv().await)
                } else {
                    tokio::time::timeout(quiet, self.0.recv()).await
                };
                match next {
                    Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return,
                    Ok(Ok(done)) => {
                        seen.insert(format!("{}/{}", done.trigger.kind, done.trigger.name));
                    }
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                }
            }
        })
        .await;
        seen
    }
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

/// Logs to the test output (RUST_LOG), once.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

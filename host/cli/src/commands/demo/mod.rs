//! `capt-host demo`: the operator at work on the CAPT samples, with nothing installed.
//!
//! It starts the in-process API server (`inproc-apiserver`), installs the CAPT CRDs and the
//! test-only Cluster and Workspace CRDs, starts the operator with the embedded policy (the
//! real `kube::Client` over HTTP), creates the samples (owner references set to the real
//! Cluster uid) and lets the simulated Crossplane of `capt-status-sim` move the Terraform
//! workspaces along. It prints `kubectl get`-style tables ([`table`]) of the CAPTClusters and
//! CAPTControlPlanes each time they change, until both are Ready.
//!
//! Everything CAPT-specific of `capt-host` lives here, in `capt-status-sim` and in the policy
//! files it embeds; the operator itself stays generic. Built with the `demo` feature only (on
//! by default, off in the operator image).

mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::embedded::{self, DEFAULT_POLICY};
use anyhow::{Context as _, bail};
use capt_host_operator::{Operator, OperatorConfig, RetryPolicy, manifests};
use capt_host_runtime::{Engine, Limits};
use capt_host_swap::{PolicyStatus, SwapConfig, Swapper};
use chrono::Utc;
use clap::Args;
use inproc_apiserver::ApiServer;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use self::table::Table;
use capt_status_sim::CRDS;
use capt_status_sim::crossplane::Crossplane;
use capt_status_sim::samples::{APPLIES, CLUSTER, OWNED, TEMPLATES};

/// The plurals of the two kinds whose tables are printed.
const SHOWN: [&str; 2] = ["captclusters", "captcontrolplanes"];

/// How often the tables are read.
const POLL: Duration = Duration::from_millis(200);

/// Runs the operator on the CAPT samples against an in-process API server, with a simulated
/// Crossplane, and prints the CAPTCluster and CAPTControlPlane tables each time they change,
/// until both are Ready (exit 0) or the timeout passes (exit 2).
#[derive(Debug, Args)]
pub struct Demo {
    /// Give up after this long, e.g. 60s or 2m.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = capt_policy::duration::parse)]
    timeout: Duration,
    /// How long the simulated Crossplane takes for each stage of a workspace.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = capt_policy::duration::parse)]
    step: Duration,
    /// Once both are Ready, hot-swap the policy to this module (a `capt:policy` component), as
    /// a ConfigMap update would in a cluster: it is checked, canaried and promoted, or rejected
    /// with the reason, and the objects are reconciled again under the module that serves.
    #[arg(long, value_name = "FILE")]
    swap_to: Option<PathBuf>,
}

/// Prints lines prefixed with the time since the demo started.
#[derive(Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// Prints `message` at the current time.
    pub fn say(&self, message: &str) {
        println!("[{:>5.1}s] {message}", self.0.elapsed().as_secs_f64());
    }
}

impl Demo {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            timeout,
            step,
            swap_to,
        } = self;
        let candidate = match &swap_to {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("could not read the module {}", path.display()))?,
            ),
            None => None,
        };
        let runtime =
            tokio::runtime::Runtime::new().context("could not start the async runtime")?;
        runtime.block_on(async move {
            let clock = Clock(Instant::now());
            let server = ApiServer::start()
                .await
                .context("could not start the API server")?;
            let result = tokio::time::timeout(timeout, demo(&server, step, clock, candidate)).await;
            server.shutdown().await;
            match result {
                Ok(result) => result.map(|()| ExitCode::SUCCESS),
                Err(_) => bail!(
                    "the CAPTCluster and CAPTControlPlane were not both Ready within {}",
                    capt_policy::duration::format_millis(
                        timeout.as_millis().try_into().unwrap_or(u64::MAX)
                    )
                ),
            }
        })
    }
}

async fn demo(
    server: &ApiServer,
    step: Duration,
    clock: Clock,
    candidate: Option<Vec<u8>>,
) -> anyhow::Result<()> {
    let client = server.client();
    // The policy runs from a watched file, as from a mounted ConfigMap in a cluster.
    let module_dir = ModuleDir::create()?;
    let module_path = module_dir.0.join("policy.wasm");
    std::fs::write(&module_path, DEFAULT_POLICY).context("could not write the module")?;
    let mut swap_config = SwapConfig::new(&module_path);
    swap_config.canary = embedded::canary();
    let swapper = Swapper::load(&Engine::new(Limits::default())?, swap_config)?;
    let policy = swapper.slot().current();
    clock.say(&format!(
        "in-process API server at {}; policy {} {} (from {})",
        server.url(),
        policy.metadata().name,
        policy.version(),
        module_path.display()
    ));

    let crds = parse_all(&CRDS)?;
    manifests::create(&client, &crds).await?;
    clock.say(&format!(
        "installed {} CustomResourceDefinitions",
        crds.len()
    ));

    let mut config = OperatorConfig::new(policy.metadata().name.clone(), "demo");
    config.retry = RetryPolicy {
        min: Duration::from_millis(200),
        max: Duration::from_secs(5),
    };
    let mut operator = Operator::builder(client.clone(), config, swapper.slot().clone());
    let status = swapper.attach(&mut operator);
    let operator = operator.start().await?;
    operator.ready().await;
    clock.say("operator started (caches synced)");

    let cluster = manifests::create(&client, &parse_all(&[CLUSTER])?).await?;
    let uid = cluster
        .first()
        .and_then(|c| c.metadata.uid.clone())
        .context("the Cluster has no uid")?;
    manifests::create(&client, &parse_all(&TEMPLATES)?).await?;
    let mut owned = parse_all(&OWNED)?;
    for manifest in &mut owned {
        set_owner_uid(manifest, &uid);
    }
    manifests::create(&client, &owned).await?;
    manifests::create(&client, &parse_all(&APPLIES)?).await?;
    clock.say(&format!(
        "created Cluster default/demo-cluster (uid {uid}), its CAPTCluster and CAPTControlPlane \
         (owner references set), 2 WorkspaceTemplates and 2 WorkspaceTemplateApplies"
    ));

    let crossplane = Crossplane::new(&client, "default").await?;
    let crossplane = tokio::spawn(crossplane.run(step, move |message| clock.say(message)));
    let mut result = watch_tables(&client, &crds, clock).await;
    crossplane.abort();
    if let (Ok(()), Some(candidate)) = (&result, candidate) {
        result = swap(&status, &module_path, &candidate, &client, &crds, clock).await;
    }
    let metrics = operator.metrics();
    operator.shutdown().await?;
    result?;
    let cluster: Api<DynamicObject> =
        Api::default_namespaced_with(client, &resource_of(crd(&crds, "clusters")?)?);
    let cluster = serde_json::to_value(cluster.get("demo-cluster").await?)?;
    let field = |path: &str| {
        cluster
            .pointer(path)
            .map_or("<none>".into(), ToString::to_string)
    };
    clock.say(&format!(
        "Cluster demo-cluster: infrastructureReady={}, controlPlaneReady={}, \
         controlPlaneEndpoint={}, conditions={}",
        field("/status/infrastructureReady"),
        field("/status/controlPlaneReady"),
        field("/spec/controlPlaneEndpoint"),
        field("/status/conditions"),
    ));
    let conflicts = sum_metric(&metrics, "capt_host_patch_conflicts_total");
    clock.say(&format!(
        "both Ready: {} reconciles, {} patches sent, {} skipped as no-ops, {conflicts} conflicts",
        sum_metric(&metrics, "capt_host_reconciles_total"),
        sum_metric(&metrics, "capt_host_patches_total"),
        sum_metric(&metrics, "capt_host_writes_skipped_total"),
    ));
    if conflicts > 0 {
        clock.say(CONFLICTS_EXPLAINED);
    }
    Ok(())
}

/// What the summary's conflicts are, shown when there were some.
const CONFLICTS_EXPLAINED: &str = "a conflict is a write refused with 409 because the object \
     changed after the operator read it (another writer, or its own previous write not yet seen \
     by its watch): every write carries the resourceVersion it was computed from, so nothing was \
     overwritten; the operator reconciled the fresh object again";

/// Writes `candidate` over the watched module file, waits until it serves or is rejected, and
/// shows the Ready messages of the objects once they were reconciled again.
async fn swap(
    status: &PolicyStatus,
    module_path: &std::path::Path,
    candidate: &[u8],
    client: &Client,
    crds: &[Value],
    clock: Clock,
) -> anyhow::Result<()> {
    let digest = format!("{:x}", Sha256::digest(candidate));
    let before = status.report();
    // Replaced by a rename, so the watcher never reads half a file.
    let staged = module_path.with_extension("wasm.new");
    std::fs::write(&staged, candidate).context("could not write the new module")?;
    std::fs::rename(&staged, module_path).context("could not replace the module")?;
    clock.say(&format!(
        "swap: wrote a new module ({} bytes, sha256 {}) over {}",
        candidate.len(),
        &digest[..12],
        module_path.display()
    ));
    let report = loop {
        let report = status.report();
        let rejected = report
            .last_rejected
            .as_ref()
            .is_some_and(|r| r.digest.as_deref() == Some(digest.as_str()));
        if report.active.digest == digest
            || rejected
            || report.active.digest != before.active.digest
        {
            break report;
        }
        tokio::time::sleep(POLL).await;
    };
    if report.active.digest != digest {
        let why = report.last_rejected.map_or_else(
            || "unknown".into(),
            |r| format!("{}: {}", r.reason, r.message),
        );
        clock.say(&format!(
            "swap: rejected ({why}); {} keeps serving",
            report.active.label
        ));
        return Ok(());
    }
    clock.say(&format!(
        "swap: promoted {} {} after the contract check and the canary; every object is \
         reconciled again under it",
        report.active.name, report.active.label
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    for plural in SHOWN {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "default", &resource_of(crd(crds, plural)?)?);
        for object in api.list(&Default::default()).await?.items {
            let object = serde_json::to_value(&object)?;
            let ready = object
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .map_or("<none>".into(), |c| {
                    format!("{}: {}", c["reason"], c["message"])
                });
            clock.say(&format!(
                "{plural}/{}: Ready {ready}",
                object["metadata"]["name"].as_str().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// Prints the tables each time a cell (other than an age) changes, until every shown object
/// is Ready.
async fn watch_tables(client: &Client, crds: &[Value], clock: Clock) -> anyhow::Result<()> {
    let mut shown = Vec::new();
    for plural in SHOWN {
        let crd = crd(crds, plural)?;
        let table =
            Table::of_crd(crd).with_context(|| format!("the {plural} CRD serves no version"))?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "default", &resource_of(crd)?);
        shown.push((table, api));
    }
    let mut last = Vec::new();
    loop {
        let mut objects = Vec::new();
        for (_, api) in &shown {
            let list = api.list(&Default::default()).await?;
            objects.push(
                list.items
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        let fingerprint: Vec<_> = shown
            .iter()
            .zip(&objects)
            .map(|((table, _), objects)| table.fingerprint(objects))
            .collect();
        if fingerprint != last {
            clock.say("kubectl get captclusters,captcontrolplanes");
            let now = Utc::now();
            let tables: Vec<String> = shown
                .iter()
                .zip(&objects)
                .map(|((table, _), objects)| table.render(objects, now))
                .collect();
            println!("{}", tables.join("\n"));
            last = fingerprint;
        }
        let ready = objects.iter().flatten().count() == SHOWN.len()
            && objects
                .iter()
                .flatten()
                .all(|o| o.pointer("/status/ready") == Some(&Value::Bool(true)));
        if ready {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A private directory for the demo's module file, removed when the demo ends.
struct ModuleDir(PathBuf);

impl ModuleDir {
    fn create() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("capt-host-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for ModuleDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse_all(texts: &[&str]) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    for text in texts {
        all.extend(manifests::parse(text)?);
    }
    Ok(all)
}

/// Gives the owner references to a Cluster the Cluster's real uid (the samples carry a
/// placeholder).
fn set_owner_uid(manifest: &mut Value, uid: &str) {
    if let Some(Value::Array(owners)) = manifest.pointer_mut("/metadata/ownerReferences") {
        for owner in owners.iter_mut().filter(|o| o["kind"] == "Cluster") {
            owner["uid"] = Value::String(uid.to_owned());
        }
    }
}

/// The CRD of `plural` among `crds`.
fn crd<'a>(crds: &'a [Value], plural: &str) -> anyhow::Result<&'a Value> {
    crds.iter()
        .find(|c| c.pointer("/spec/names/plural").and_then(Value::as_str) == Some(plural))
        .with_context(|| format!("no CRD for {plural}"))
}

/// The API resource a CRD's first served version defines.
fn resource_of(crd: &Value) -> anyhow::Result<ApiResource> {
    let text = |path: &str| {
        crd.pointer(path)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("the CRD has no {path}"))
    };
    let group = text("/spec/group")?;
    let version = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|versions| versions.iter().find(|v| v["served"] == true))
        .and_then(|v| v["name"].as_str())
        .context("the CRD serves no version")?
        .to_owned();
    Ok(ApiResource {
        api_version: format!("{group}/{version}"),
        group,
        version,
        kind: text("/spec/names/kind")?,
        plural: text("/spec/names/plural")?,
    })
}

/// The sum of every sample of a counter in OpenMetrics text.
fn sum_metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

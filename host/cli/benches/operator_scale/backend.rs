//! The API server a run measures against: the in-process test double (`inproc-apiserver`, the
//! default) or the real kube-apiserver and etcd (`kube-harness`, built from the pinned Go
//! modules), behind the few operations the benchmark needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use inproc_apiserver::{ApiServer, ServerConfig};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube_harness::{KubeServer, crds};
use serde_json::Value;

use crate::cluster::{count_converged, count_converged_among, install_crds};

/// Which API server a run uses (`--api-server double|real`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The in-process test double.
    Double,
    /// kube-apiserver and etcd.
    Real,
}

impl Kind {
    /// Parses the option's value.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "double" => Ok(Self::Double),
            "real" => Ok(Self::Real),
            other => anyhow::bail!("--api-server: `double` or `real`, not `{other}`"),
        }
    }

    /// The name the results file and table use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Double => "double",
            Self::Real => "real",
        }
    }
}

/// The API requests of an interval, as the benchmark reports them.
#[derive(Debug, Default)]
pub struct Requests {
    /// Creates, updates, patches and deletes.
    pub writes: u64,
    /// Gets, lists and watches.
    pub reads: u64,
    /// Writes by `verb resource[/subresource]`.
    pub writes_by_resource: BTreeMap<String, u64>,
}

/// A running API server with the CAPT world's CRDs.
pub enum Backend {
    /// The in-process test double, serving on a fixed local port.
    Double(ApiServer),
    /// kube-apiserver and etcd; the request counters are read from kube-apiserver's own
    /// `apiserver_request_total`, as they were when [`Backend::reset_requests`] ran.
    Real {
        /// The server (both processes stop when it is dropped).
        server: KubeServer,
        /// `apiserver_request_total` at the last reset, by series.
        baseline: BTreeMap<String, f64>,
    },
}

impl Backend {
    /// Starts a server of `kind` and installs the CRDs the operator needs.
    pub async fn start(kind: Kind, port: u16) -> anyhow::Result<Self> {
        match kind {
            Kind::Double => {
                let config = ServerConfig {
                    port,
                    // Room for the population's and the convergence's changes, so that a
                    // watch that reconnects resumes instead of re-listing (a real API server
                    // keeps minutes of them).
                    history_capacity: 400_000,
                    ..ServerConfig::default()
                };
                let server = ApiServer::start_with(config).await?;
                install_crds(&server.client()).await?;
                Ok(Self::Double(server))
            }
            Kind::Real => {
                let server = KubeServer::start().await?;
                // The CRDs as the projects publish them (Cluster API's Cluster), not the
                // simulated world's copies: the operator's writes meet the real schemas.
                server.install(&crds::all()?).await?;
                Ok(Self::Real {
                    server,
                    baseline: BTreeMap::new(),
                })
            }
        }
    }

    /// A client with every right (the harness's own requests).
    pub fn client(&self) -> Client {
        match self {
            Self::Double(server) => server.client(),
            Self::Real { server, .. } => server.client(),
        }
    }

    /// Writes a kubeconfig for the operator (the administrator's, so that neither RBAC nor
    /// API Priority and Fairness limits what is measured) into `scratch`; its path.
    pub fn kubeconfig(&self, scratch: &Path) -> anyhow::Result<PathBuf> {
        match self {
            Self::Double(server) => {
                std::fs::write(scratch, server.kubeconfig_yaml())
                    .with_context(|| format!("writing {}", scratch.display()))?;
                Ok(scratch.to_owned())
            }
            Self::Real { server, .. } => Ok(server.kubeconfig_file()?),
        }
    }

    /// Clusters whose CAPTCluster and CAPTControlPlane are ready and whose Cluster says so.
    pub async fn count_converged(&self) -> anyhow::Result<usize> {
        Ok(match self {
            Self::Double(server) => count_converged(&server.store()),
            Self::Real { server, .. } => {
                let client = server.client();
                count_converged_among(
                    list(&client, &capt_status_sim::kinds::cluster()).await?,
                    list(&client, &capt_status_sim::kinds::capt_cluster()).await?,
                    list(&client, &capt_status_sim::kinds::control_plane()).await?,
                )
            }
        })
    }

    /// Starts counting requests from zero.
    pub async fn reset_requests(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Double(server) => server.reset_requests(),
            Self::Real { server, baseline } => {
                *baseline = request_totals(&server.client()).await?;
            }
        }
        Ok(())
    }

    /// The requests since the last [`Backend::reset_requests`], every client's but the
    /// harness's own reads on the double (on the real server the harness's polling lists are
    /// among the reads).
    pub async fn requests(&self) -> anyhow::Result<Requests> {
        let mut requests = Requests::default();
        match self {
            Self::Double(server) => {
                let counted = server.requests();
                requests.writes = counted.writes();
                requests.reads = counted.total() - counted.writes();
                for (key, count) in counted.entries() {
                    if key.verb.is_write() {
                        let sub = key.subresource.as_deref().map(|s| format!("/{s}"));
                        let name = format!(
                            "{} {}{}",
                            key.verb.as_str(),
                            key.resource,
                            sub.unwrap_or_default()
                        );
                        *requests.writes_by_resource.entry(name).or_default() += count;
                    }
                }
            }
            Self::Real { server, baseline } => {
                for (series, total) in request_totals(&server.client()).await? {
                    let count = (total - baseline.get(&series).copied().unwrap_or(0.0)) as u64;
                    if count == 0 {
                        continue;
                    }
                    let (verb, resource) = series.split_once(' ').unwrap_or((&series, ""));
                    match write_verb(verb) {
                        Some(verb) => {
                            requests.writes += count;
                            *requests
                                .writes_by_resource
                                .entry(format!("{verb} {resource}"))
                                .or_default() += count;
                        }
                        None => requests.reads += count,
                    }
                }
            }
        }
        Ok(requests)
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        match self {
            Self::Double(server) => server.shutdown().await,
            Self::Real { server, .. } => drop(server),
        }
    }
}

/// The double's name of kube-apiserver's `apiserver_request_total{verb}` when it changes
/// something; `None` for reads.
fn write_verb(verb: &str) -> Option<&'static str> {
    match verb {
        "POST" => Some("create"),
        "PUT" => Some("update"),
        "PATCH" => Some("patch"),
        "DELETE" | "DELETECOLLECTION" => Some("delete"),
        "APPLY" => Some("apply"),
        _ => None,
    }
}

/// Every object of `kind` in `default`, as JSON.
async fn list(client: &Client, kind: &ApiResource) -> anyhow::Result<Vec<Value>> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", kind);
    let objects = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing {}", kind.plural))?;
    objects
        .items
        .into_iter()
        .map(|o| Ok(serde_json::to_value(o)?))
        .collect()
}

/// kube-apiserver's `apiserver_request_total`, summed by `VERB resource[/subresource]`.
async fn request_totals(client: &Client) -> anyhow::Result<BTreeMap<String, f64>> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .context("building the /metrics request")?;
    let text = client
        .request_text(request)
        .await
        .context("reading kube-apiserver's /metrics")?;
    Ok(parse_request_totals(&text))
}

/// [`request_totals`] of a Prometheus text exposition.
fn parse_request_totals(text: &str) -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key == name).then(|| value.trim_matches('"'))
            })
        };
        let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else {
            continue;
        };
        let series = match label("subresource").filter(|s| !s.is_empty()) {
            Some(sub) => format!("{verb} {resource}/{sub}"),
            None => format!("{verb} {resource}"),
        };
        *totals.entry(series).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    totals
}

//! The CAPT world the operator benchmarks run against: the CRDs in an in-process API server
//! and N clusters created through its API, as the simulated CAPT world (`capt-status-sim`)
//! builds them once Crossplane has finished.

use std::collections::HashMap;

use capt_host_operator::manifests;
use futures::{StreamExt as _, TryStreamExt as _};
use inproc_apiserver::StoreReader;
use kube::Client;
use serde_json::Value;

/// Requests in flight while the harness creates the clusters.
const POPULATE_CONCURRENCY: usize = 32;

/// Installs the simulated world's CRDs and waits until they are served.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let mut crds = Vec::new();
    for text in capt_status_sim::CRDS {
        crds.extend(manifests::parse(text)?);
    }
    manifests::create(client, &crds).await?;
    Ok(())
}

/// Creates `clusters` clusters, [`POPULATE_CONCURRENCY`] at a time.
pub async fn populate(client: &Client, clusters: usize) -> anyhow::Result<()> {
    let capt = capt_status_sim::Capt::new(client, "default");
    futures::stream::iter(0..clusters)
        .map(|i| {
            let capt = &capt;
            async move { capt.create_finished(&format!("c{i:05}")).await }
        })
        .buffer_unordered(POPULATE_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(())
}

/// Clusters whose CAPTCluster and CAPTControlPlane are ready and whose Cluster says so, in
/// the test double's store.
pub fn count_converged(store: &StoreReader) -> usize {
    let stored = |kind: kube::api::ApiResource| {
        store.list_dynamic(&kind.api_version, &kind.plural, Some("default"))
    };
    count_converged_among(
        stored(capt_status_sim::kinds::cluster()),
        stored(capt_status_sim::kinds::capt_cluster()),
        stored(capt_status_sim::kinds::control_plane()),
    )
}

/// Clusters (matched by name across the three lists) whose three objects are converged
/// ([`capt_status_sim::converged`]).
pub fn count_converged_among(
    clusters: Vec<Value>,
    capt_clusters: Vec<Value>,
    control_planes: Vec<Value>,
) -> usize {
    let by_name = |objects: Vec<Value>| {
        objects
            .into_iter()
            .filter_map(|o| Some((o.pointer("/metadata/name")?.as_str()?.to_owned(), o)))
            .collect::<HashMap<_, _>>()
    };
    let (capt_clusters, control_planes) = (by_name(capt_clusters), by_name(control_planes));
    by_name(clusters)
        .iter()
        .filter(|(name, cluster)| {
            capt_status_sim::converged(
                Some(cluster),
                capt_clusters.get(*name),
                control_planes.get(*name),
            )
        })
        .count()
}

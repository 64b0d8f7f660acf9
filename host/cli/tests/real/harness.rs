//! The harness itself: a real server with the CRDs, authentication and authorization on, and
//! no process left behind once it is dropped.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ListParams};
use kube_harness::KubeServer;

use crate::common::{holds_within, server};

fn port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

fn listening(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

#[tokio::test]
async fn starts_with_the_crds_and_stops_both_processes_on_drop() {
    let server = server().await;
    let version = server.client().apiserver_version().await.expect("/version");
    assert_eq!(version.major, "1", "{version:?}");
    for group_version in [
        "infrastructure.cluster.x-k8s.io/v1beta1",
        "controlplane.cluster.x-k8s.io/v1beta1",
        "tf.upbound.io/v1beta1",
    ] {
        server
            .client()
            .list_api_group_resources(group_version)
            .await
            .unwrap_or_else(|e| panic!("{group_version} is served: {e}"));
    }
    // The real Cluster API Cluster CRD serves both versions.
    let clusters = server
        .client()
        .list_api_group_resources("cluster.x-k8s.io/v1beta2")
        .await
        .expect("Cluster API v1beta2 is served");
    assert!(clusters.resources.iter().any(|r| r.name == "clusters"));

    let api_port = port(server.url());
    let etcd_port = port(server.etcd_url());
    assert!(listening(api_port) && listening(etcd_port));
    drop(server);
    assert!(
        holds_within(Duration::from_secs(10), || async {
            !listening(api_port) && !listening(etcd_port)
        })
        .await,
        "kube-apiserver and etcd stop when the harness is dropped"
    );
}

#[tokio::test]
async fn refuses_unknown_tokens_and_users_without_grants() {
    let server = KubeServer::start()
        .await
        .expect("the real API server starts");
    let stranger = Client::try_from(
        server
            .config_for_token("not-a-token")
            .await
            .expect("a configuration"),
    )
    .expect("a client");
    let denied = Api::<ConfigMap>::default_namespaced(stranger)
        .list(&ListParams::default())
        .await
        .expect_err("an unknown token is refused");
    assert!(
        matches!(denied, kube::Error::Api(ref s) if s.code == 401),
        "{denied:?}"
    );

    let nobody = server
        .service_account_client("default", "nobody")
        .await
        .expect("a service-account client");
    let forbidden = Api::<ConfigMap>::default_namespaced(nobody)
        .list(&ListParams::default())
        .await
        .expect_err("a ServiceAccount without grants is refused");
    assert!(
        matches!(forbidden, kube::Error::Api(ref s) if s.code == 403),
        "{forbidden:?}"
    );
}

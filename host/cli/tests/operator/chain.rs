//! The full chain, from a new Cluster to both CAPT objects and the Cluster ready.

use inproc_apiserver::Verb;
use serde_json::json;

use crate::common::{
    Backend, Capt, condition_of, config, endpoint_url, eventually, http_get, metric, start,
};

/// The kinds the operator watches: it never GETs them one by one.
const CACHED: [&str; 5] = [
    "captclusters",
    "captcontrolplanes",
    "clusters",
    "workspacetemplateapplies",
    "workspaces",
];

crate::on_both_backends!(the_full_chain_converges_on_every_object_including_the_cluster);

async fn the_full_chain_converges_on_every_object_including_the_cluster(backend: Backend) {
    crate::common::trace();
    let server = backend.start().await;
    let capt = Capt::new(&server);
    let mut config = config("chain");
    config.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    config.probe_addr = Some("127.0.0.1:0".parse().unwrap());
    let (operator, _) = start(&server, config).await;
    if let Some(double) = server.in_process() {
        double.reset_requests();
    }

    capt.create("demo").await;
    eventually("the CAPTCluster to wait for its Workspace", || async {
        capt.capt_cluster("demo")
            .await
            .and_then(|c| condition_of(&c, "Ready"))
            .as_deref()
            == Some("False/WaitingForWorkspace")
    })
    .await;
    capt.provision_vpc("demo").await;
    // The VPC is ready, but the endpoint only the control plane provides is not known yet.
    eventually("the VPC to be ready", || async {
        capt.capt_cluster("demo")
            .await
            .and_then(|c| condition_of(&c, "Ready"))
            .as_deref()
            == Some("False/WaitingForControlPlaneEndpoint")
    })
    .await;
    capt.provision_control_plane("demo").await;
    eventually("every object to converge", || capt.converged("demo")).await;

    let host = endpoint_url("demo")
        .trim_start_matches("https://")
        .to_owned();
    let endpoint = json!({"host": host, "port": 443});
    let zones = json!({
        "ap-northeast-1a": {"controlPlane": true},
        "ap-northeast-1c": {"controlPlane": true},
        "ap-northeast-1d": {"controlPlane": true},
    });

    let capt_cluster = capt.capt_cluster("demo").await.unwrap();
    let status = &capt_cluster["status"];
    assert_eq!(status["ready"], true);
    assert_eq!(status["vpcId"], "vpc-demo");
    assert_eq!(status["endpoint"], format!("{host}:443"));
    assert_eq!(status["initialization"]["provisioned"], true);
    assert_eq!(
        condition_of(&capt_cluster, "Ready").as_deref(),
        Some("True/VPCCreated")
    );
    assert_eq!(
        condition_of(&capt_cluster, "VPCReady").as_deref(),
        Some("True/VPCCreated")
    );
    assert_eq!(
        condition_of(&capt_cluster, "VPCCreating").as_deref(),
        Some("False/VPCCreated")
    );

    let control_plane = capt.control_plane("demo").await.unwrap();
    let status = &control_plane["status"];
    assert_eq!(control_plane["spec"]["controlPlaneEndpoint"], endpoint);
    assert_eq!(status["ready"], true);
    assert_eq!(status["initialized"], true);
    assert_eq!(status["phase"], "Ready");
    assert_eq!(status["endpoint"], format!("{host}:443"));
    assert_eq!(status["initialization"]["controlPlaneInitialized"], true);
    assert_eq!(
        condition_of(&control_plane, "Ready").as_deref(),
        Some("True/ControlPlaneReady")
    );

    let cluster = capt.cluster("demo").await.unwrap();
    let status = &cluster["status"];
    assert_eq!(cluster["spec"]["controlPlaneEndpoint"], endpoint);
    assert_eq!(status["infrastructureReady"], true);
    assert_eq!(status["controlPlaneReady"], true);
    assert_eq!(status["failureDomains"], zones);
    assert_eq!(
        condition_of(&cluster, "ControlPlaneInitialized")
            .as_deref()
            .map(|c| &c[..4]),
        Some("True")
    );

    // One Normal event per Ready transition, reported by this replica. Events are recorded
    // after the status write that converged the object: wait for them.
    let ready_events = [
        ("CAPTCluster", "VPCCreated"),
        ("CAPTControlPlane", "ControlPlaneReady"),
    ];
    eventually("the Ready events", || async {
        for (kind, reason) in ready_events {
            let events = capt.events_about(kind, "demo").await;
            if !events.iter().any(|e| e.reason.as_deref() == Some(reason)) {
                return false;
            }
        }
        true
    })
    .await;
    for (kind, reason) in ready_events {
        let events = capt.events_about(kind, "demo").await;
        let event = events
            .iter()
            .find(|e| e.reason.as_deref() == Some(reason))
            .unwrap_or_else(|| panic!("no {reason} event on the {kind}: {events:?}"));
        assert_eq!(event.type_.as_deref(), Some("Normal"));
        assert_eq!(event.reporting_controller.as_deref(), Some("capt-status"));
        assert_eq!(event.reporting_instance.as_deref(), Some("chain"));
    }

    // The request log only the test double keeps.
    if let Some(double) = server.in_process() {
        requests_per_kind(double, &operator);
    }

    // The HTTP endpoints.
    let probes = operator.probe_addr().expect("a probe address");
    assert_eq!(http_get(probes, "/healthz").await, (200, "ok".to_owned()));
    assert_eq!(http_get(probes, "/readyz").await, (200, "ok".to_owned()));
    assert_eq!(
        http_get(probes, "/metrics").await.0,
        404,
        "metrics have their own port"
    );
    let addr = operator.metrics_addr().expect("a metrics address");
    assert_eq!(
        http_get(addr, "/healthz").await.0,
        404,
        "probes have their own port"
    );
    let (code, text) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metric(
            &text,
            "capt_host_reconciles_total",
            &[("kind", "CAPTCluster")]
        ) >= 1.0
    );
    assert!(
        metric(
            &text,
            "capt_host_patches_total",
            &[("subresource", "status")]
        ) >= 1.0
    );
    let controller = [("controller", "captcluster")];
    assert!(
        metric(
            &text,
            "controller_runtime_reconcile_total",
            &[("controller", "captcluster"), ("result", "requeue_after")]
        ) > 0.0,
        "the policy requeues a cluster it watches"
    );
    assert!(metric(&text, "workqueue_adds_total", &controller) > 0.0);
    assert_eq!(metric(&text, "workqueue_depth", &controller), 0.0);
    assert!(
        metric(
            &text,
            "controller_runtime_reconcile_time_seconds_count",
            &controller
        ) > 0.0
    );
    assert!(
        metric(
            &text,
            "rest_client_requests_total",
            &[("code", "200"), ("method", "GET")]
        ) > 0.0
    );
    assert!(metric(&text, "process_cpu_seconds_total", &[]) > 0.0);
    assert!(text.contains("capt_host_guest_call_duration_seconds_count"));

    operator.shutdown().await.expect("a clean shutdown");
}

/// What the test double's request log shows of the chain: cached kinds are never read one by
/// one, Secrets only by GET, and a bounded number of patches.
fn requests_per_kind(
    server: &inproc_apiserver::ApiServer,
    operator: &capt_host_operator::Operator,
) {
    // Cached kinds are read from the cache; the Secret (not watched) with GETs only.
    let requests = server.requests();
    for plural in CACHED {
        assert_eq!(requests.count(Verb::Get, plural), 0, "GETs of {plural}");
    }
    assert!(
        requests.count(Verb::Get, "secrets") > 0,
        "the endpoint comes from the Secret"
    );
    assert_eq!(
        requests.count(Verb::List, "secrets"),
        0,
        "Secrets are never listed"
    );
    assert_eq!(
        requests.count(Verb::Watch, "secrets"),
        0,
        "Secrets are never watched"
    );

    // Writes per converged object: the operator patches the CAPTCluster, the CAPTControlPlane
    // and the Cluster (the test only creates them).
    let patches: u64 = ["captclusters", "captcontrolplanes", "clusters"]
        .iter()
        .map(|plural| requests.count(Verb::Patch, plural))
        .sum();
    let events = requests.writes_to("events");
    let metrics = operator.metrics();
    let conflicts = metric(&metrics, "capt_host_patch_conflicts_total", &[]);
    eprintln!(
        "full chain: {patches} patch requests for 3 objects ({:.1} per object; {conflicts} \
         refused as conflicts), {events} event writes, {} reconciles",
        patches as f64 / 3.0,
        metric(&metrics, "capt_host_reconciles_total", &[]),
    );
    // The policy moves the objects through 9 distinct status states in this chain (CAPTCluster:
    // waiting for the apply, the workspace, VPC creating, waiting for the endpoint, ready;
    // CAPTControlPlane: waiting for the VPC, for the apply, creating, ready, plus its spec);
    // with the Cluster's propagation, about 20 writes are needed. Stale reads may add
    // refused attempts, never unbounded ones.
    assert!(patches <= 40, "{patches} patch requests");
}

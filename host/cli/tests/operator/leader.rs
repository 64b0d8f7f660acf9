//! Leader election: only the Lease holder writes; a standby is ready but silent, and takes
//! over when the leader stops; a leader that loses the Lease stops writing and ends.
//!
//! The takeover runs on both backends; the lost Lease on the test double only, as its request
//! log proves nothing is written after the loss.

use capt_host_operator::OperatorError;
use chrono::{SecondsFormat, Utc};
use inproc_apiserver::Verb;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::common::{
    Backend, Capt, TestServer, condition_of, elected, eventually, metric, server, start, trace,
    within,
};

/// The operator's patches to the objects it writes, as the server counted them.
fn operator_patches(server: &inproc_apiserver::ApiServer) -> u64 {
    let requests = server.requests();
    ["captclusters", "captcontrolplanes", "clusters"]
        .iter()
        .map(|plural| requests.count(Verb::Patch, plural))
        .sum()
}

/// The holder of the operator's Lease, read as the administrator.
async fn holder(server: &impl TestServer) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(server.client(), &server.operator_namespace());
    leases
        .get_opt("capt-status")
        .await
        .expect("a read")?
        .spec?
        .holder_identity
}

crate::on_both_backends!(only_the_leader_writes_and_a_standby_takes_over_after_a_graceful_shutdown);

async fn only_the_leader_writes_and_a_standby_takes_over_after_a_graceful_shutdown(
    backend: Backend,
) {
    trace();
    let server = backend.start().await;
    let capt = Capt::new(&server);
    let namespace = server.operator_namespace();
    // A Lease long enough that a loaded machine never loses it by accident.
    let (a, _) = start(&server, elected("replica-a", 6, &namespace)).await;
    let (b, _) = start(&server, elected("replica-b", 6, &namespace)).await;
    eventually("a replica to lead", || async {
        a.is_leader() || b.is_leader()
    })
    .await;
    let (leader, standby, leader_id, standby_id) = if a.is_leader() {
        (a, b, "replica-a", "replica-b")
    } else {
        (b, a, "replica-b", "replica-a")
    };
    assert!(!standby.is_leader(), "one leader at a time");
    assert!(standby.is_ready(), "a standby is ready");
    assert_eq!(holder(&server).await.as_deref(), Some(leader_id));

    capt.create("demo").await;
    capt.provision_vpc("demo").await;
    eventually("the VPC to be ready", || async {
        capt.capt_cluster("demo")
            .await
            .and_then(|c| condition_of(&c, "VPCReady"))
            .as_deref()
            == Some("True/VPCCreated")
    })
    .await;
    let standby_metrics = standby.metrics();
    assert_eq!(
        metric(&standby_metrics, "capt_host_patches_total", &[]),
        0.0
    );
    assert_eq!(
        metric(&standby_metrics, "capt_host_reconciles_total", &[]),
        0.0
    );
    assert_eq!(metric(&standby_metrics, "capt_host_events_total", &[]), 0.0);
    assert_eq!(
        metric(&standby_metrics, "leader_election_master_status", &[]),
        0.0
    );
    assert!(metric(&leader.metrics(), "capt_host_patches_total", &[]) > 0.0);
    assert_eq!(
        metric(&leader.metrics(), "leader_election_master_status", &[]),
        1.0
    );
    let events = capt.events_about("CAPTCluster", "demo").await;
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| e.reporting_instance.as_deref() == Some(leader_id)),
        "every event comes from the leader: {events:?}"
    );

    // The leader stops gracefully, releasing the Lease: the standby takes over and converges
    // what changes next.
    leader.shutdown().await.expect("a clean shutdown");
    eventually("the standby to lead", || async { standby.is_leader() }).await;
    assert_eq!(holder(&server).await.as_deref(), Some(standby_id));
    capt.provision_control_plane("demo").await;
    eventually("every object to converge", || capt.converged("demo")).await;
    assert!(metric(&standby.metrics(), "capt_host_patches_total", &[]) > 0.0);
    let events = capt.events_about("CAPTControlPlane", "demo").await;
    let ready = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("ControlPlaneReady"))
        .expect("a ControlPlaneReady event");
    assert_eq!(ready.reporting_instance.as_deref(), Some(standby_id));
    standby.shutdown().await.expect("a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_the_lease_stops_writing_and_ends() {
    trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let (operator, _) = start(&server, elected("replica", 3, "default")).await;
    eventually("the replica to lead", || async { operator.is_leader() }).await;
    capt.create("demo").await;
    eventually("the CAPTCluster to wait for its Workspace", || async {
        capt.capt_cluster("demo")
            .await
            .and_then(|c| condition_of(&c, "Ready"))
            .as_deref()
            == Some("False/WaitingForWorkspace")
    })
    .await;

    // Someone else holds the Lease now.
    let leases: Api<Lease> = Api::namespaced(server.client(), "default");
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let steal = json!({"spec": {"holderIdentity": "intruder", "acquireTime": now, "renewTime": now,
                                "leaseDurationSeconds": 30}});
    leases
        .patch(
            "capt-status",
            &PatchParams::default(),
            &Patch::Merge(&steal),
        )
        .await
        .expect("the Lease is taken");
    eventually("the replica to notice it lost the Lease", || async {
        !operator.is_leader()
    })
    .await;

    // It ends, as controller-runtime exits, and writes nothing once it does not lead.
    server.reset_requests();
    capt.provision_vpc("demo").await;
    let ended = within("the operator to end", operator.shutdown()).await;
    assert!(
        matches!(ended, Err(OperatorError::LeadershipLost)),
        "{ended:?}"
    );
    assert_eq!(
        operator_patches(&server),
        0,
        "patches after the Lease was lost"
    );
    assert_eq!(server.requests().writes_to("events"), 0);
    assert_eq!(holder(&server).await.as_deref(), Some("intruder"));
}

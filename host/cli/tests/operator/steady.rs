//! Steady state: once everything converged, the operator writes nothing.

use std::time::Duration;

use inproc_apiserver::Verb;

use crate::common::{Capt, config, server, start, trace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_converged_nothing_is_written_even_by_a_restarted_operator() {
    trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let (operator, mut reconciles) = start(&server, config("steady-1")).await;
    capt.converge("demo").await;
    // Let the reconciles the last writes triggered finish.
    reconciles.until_quiet(Duration::from_secs(1)).await;

    server.reset_requests();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.requests().writes(),
        0,
        "writes while nothing changed"
    );
    assert!(
        reconciles
            .until_quiet(Duration::from_millis(200))
            .await
            .is_empty(),
        "nothing changed and the policy asked for no requeue: no reconcile"
    );

    // A new operator reconciles every trigger once, and finds nothing to write.
    operator.shutdown().await.expect("a clean shutdown");
    server.reset_requests();
    let (operator, mut reconciles) = start(&server, config("steady-2")).await;
    let both = ["CAPTCluster/demo", "CAPTControlPlane/demo"];
    let reconciled = reconciles.settle(&both, Duration::from_secs(1)).await;
    assert_eq!(
        reconciled.into_iter().collect::<Vec<_>>(),
        both,
        "the new operator reconciles both triggers, once each is enough"
    );
    let requests = server.requests();
    assert_eq!(requests.writes(), 0, "writes after a restart: {requests:?}");
    assert_eq!(requests.count(Verb::Patch, "clusters"), 0);
    operator.shutdown().await.expect("a clean shutdown");
}

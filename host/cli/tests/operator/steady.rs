//! Steady state: once everything converged, the operator writes nothing.

use std::time::Duration;

use capt_host_operator::Operator;
use inproc_apiserver::Verb;

use crate::common::{Backend, Capt, config, metric, start, trace};

/// The write requests (POST, PUT, PATCH, DELETE) `operator` has sent, from its REST client's
/// metrics (the same on both backends).
fn writes(operator: &Operator) -> f64 {
    let metrics = operator.metrics();
    ["POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .map(|method| {
            metric(
                &metrics,
                "rest_client_requests_total",
                &[("method", method)],
            )
        })
        .sum()
}

crate::on_both_backends!(once_converged_nothing_is_written_even_by_a_restarted_operator);

async fn once_converged_nothing_is_written_even_by_a_restarted_operator(backend: Backend) {
    trace();
    let server = backend.start().await;
    let capt = Capt::new(&server);
    let (operator, mut reconciles) = start(&server, config("steady-1")).await;
    capt.converge("demo").await;
    // Let the reconciles the last writes triggered finish.
    reconciles.until_quiet(Duration::from_secs(1)).await;

    let before = writes(&operator);
    assert!(before > 0.0, "the operator wrote the converged statuses");
    if let Some(double) = server.in_process() {
        double.reset_requests();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(writes(&operator), before, "writes while nothing changed");
    if let Some(double) = server.in_process() {
        assert_eq!(double.requests().writes(), 0, "writes by anyone");
    }
    assert!(
        reconciles
            .until_quiet(Duration::from_millis(200))
            .await
            .is_empty(),
        "nothing changed and the policy asked for no requeue: no reconcile"
    );

    // A new operator reconciles every trigger once, and finds nothing to write.
    operator.shutdown().await.expect("a clean shutdown");
    if let Some(double) = server.in_process() {
        double.reset_requests();
    }
    let (operator, mut reconciles) = start(&server, config("steady-2")).await;
    let both = ["CAPTCluster/demo", "CAPTControlPlane/demo"];
    let reconciled = reconciles.settle(&both, Duration::from_secs(1)).await;
    assert_eq!(
        reconciled.into_iter().collect::<Vec<_>>(),
        both,
        "the new operator reconciles both triggers, once each is enough"
    );
    assert_eq!(writes(&operator), 0.0, "writes after a restart");
    if let Some(double) = server.in_process() {
        let requests = double.requests();
        assert_eq!(requests.writes(), 0, "writes after a restart: {requests:?}");
        assert_eq!(requests.count(Verb::Patch, "clusters"), 0);
    }
    operator.shutdown().await.expect("a clean shutdown");
}

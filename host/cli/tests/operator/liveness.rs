//! Liveness: `/healthz`, on the probe port, fails while a reconcile is stuck (its write
//! hangs) and passes again once it moves.
//!
//! On the test double only (not parameterised by backend): it hangs a request.

use std::time::Duration;

use inproc_apiserver::{RequestFilter, Verb};

use crate::common::{Capt, config, eventually, http_get, server, start, trace};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_while_a_reconcile_is_stuck_and_recovers_when_it_moves() {
    trace();
    let server = server().await;
    let capt = Capt::new(&server);
    let mut config = config("liveness");
    config.probe_addr = Some("127.0.0.1:0".parse().unwrap());
    config.reconcile_stall_timeout = Duration::from_millis(500);
    // The write hangs far longer than the stall timeout.
    config.api.timeout = Duration::from_secs(600);
    let (operator, _) = start(&server, config).await;
    let probes = operator.probe_addr().expect("a probe address");
    assert_eq!(http_get(probes, "/healthz").await.0, 200);

    server.faults().hang_requests_matching(
        RequestFilter::any()
            .verb(Verb::Patch)
            .user_agent("(liveness)"),
    );
    capt.create("demo").await;
    eventually("/healthz to fail", || async {
        http_get(probes, "/healthz").await.0 == 503
    })
    .await;
    let (_, why) = http_get(probes, "/healthz").await;
    assert!(why.contains("demo"), "{why}");

    server.faults().release_hangs();
    eventually("/healthz to pass again", || async {
        http_get(probes, "/healthz").await.0 == 200
    })
    .await;
    operator.shutdown().await.expect("a clean shutdown");
}

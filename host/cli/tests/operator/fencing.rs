//! Fencing, with two `capt-host run` processes against the in-process API server: when the
//! leader's Lease renewals hang or fail, it stops writing before the standby takes the Lease
//! (the server's request log shows no instant at which both wrote), the standby takes over,
//! and the old leader exits non-zero. And a SIGTERM with a write hanging still drains within
//! its deadline, releases the Lease and exits.
//!
//! On the test double only (not parameterised by backend): it hangs and fails requests.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Instant;

use inproc_apiserver::{ApiServer, Faults, LoggedRequest, RequestFilter, Verb};
use k8s_openapi::api::coordination::v1::Lease;
use tokio::process::{Child, Command};

use crate::common::{Capt, eventually, server, within};

/// A `capt-host run` process electing on the Lease `capt-status` in `default`, with short
/// timings (lease 4 s, renew deadline 3 s, retry period 500 ms), no HTTP endpoints, and its
/// identity in its User-Agent.
struct Replica {
    identity: &'static str,
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn spawn(server: &ApiServer, identity: &'static str, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "capt-host-fencing-{}-{}",
            std::process::id(),
            server.addr().port()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, server.kubeconfig_yaml()).expect("the kubeconfig");
        let log = dir.join(format!("{identity}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_capt-host"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--identity", identity, "--leader-elect"])
            .args(["--leader-election-id", "capt-status"])
            .args(["--leader-election-namespace", "default"])
            .args(["--leader-elect-lease-duration", "4s"])
            .args(["--leader-elect-renew-deadline", "3s"])
            .args(["--leader-elect-retry-period", "500ms"])
            .args(["--metrics-bind-address", "0"])
            .args(["--health-probe-bind-address", "0"])
            .args(extra)
            .env("RUST_LOG", "capt_host_operator=info")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("the log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("capt-host run starts");
        Self {
            identity,
            child,
            log,
        }
    }

    /// Whether `request` came from this replica.
    fn sent(&self, request: &LoggedRequest) -> bool {
        request
            .user_agent
            .ends_with(&format!("({})", self.identity))
    }

    /// Waits for the process to exit.
    async fn exited(&mut self) -> ExitStatus {
        let log = self.log.display().to_string();
        within(
            &format!("{} to exit (log: {log})", self.identity),
            self.child.wait(),
        )
        .await
        .expect("the process status")
    }
}

fn holder(server: &ApiServer) -> Option<String> {
    server
        .store()
        .get::<Lease>(Some("default"), "capt-status")?
        .spec?
        .holder_identity
}

/// Writes to anything but the Lease that the server accepted.
fn object_writes<'a>(
    log: &'a [LoggedRequest],
    replica: &'a Replica,
) -> impl Iterator<Item = &'a LoggedRequest> {
    log.iter()
        .filter(|r| r.wrote() && !r.key.is_resource("leases") && replica.sent(r))
}

/// Starts `a` (the leader) and `b` (a standby), lets `a` write, breaks `a`'s Lease requests
/// with `fault`, and checks that `b` takes over without a single instant at which both wrote.
async fn takeover(fault: impl FnOnce(&Faults, RequestFilter)) {
    let server = server().await;
    let capt = Capt::new(&server);
    let mut a = Replica::spawn(&server, "replica-a", &[]);
    eventually("replica-a to lead", || async {
        holder(&server).as_deref() == Some("replica-a")
    })
    .await;
    let b = Replica::spawn(&server, "replica-b", &[]);
    eventually("replica-b to see the Lease", || async {
        server
            .request_log()
            .iter()
            .any(|r| b.sent(r) && r.key.is_resource("leases"))
    })
    .await;
    capt.create("demo").await;
    eventually("replica-a to write", || async {
        object_writes(&server.request_log(), &a).next().is_some()
    })
    .await;

    fault(
        &server.faults(),
        RequestFilter::any()
            .resource("leases")
            .user_agent("(replica-a)"),
    );
    // Inputs change while the leader cannot renew: it may write until its renew deadline.
    capt.provision_vpc("demo").await;
    eventually("replica-b to take the Lease", || async {
        holder(&server).as_deref() == Some("replica-b")
    })
    .await;
    let status = a.exited().await;
    assert!(
        !status.success(),
        "a leader that lost the Lease exits non-zero: {status}"
    );
    // The new leader converges what changes next.
    capt.provision_control_plane("demo").await;
    eventually("every object to converge", || capt.converged("demo")).await;

    let log = server.request_log();
    let last_of_a = object_writes(&log, &a)
        .filter_map(|r| r.answered.map(|(at, _)| at))
        .max()
        .expect("replica-a wrote");
    let first_of_b: Instant = object_writes(&log, &b)
        .map(|r| r.received)
        .min()
        .expect("replica-b wrote");
    assert!(
        last_of_a < first_of_b,
        "replica-a wrote until {:?} after replica-b's first write",
        last_of_a - first_of_b
    );
    // No write of replica-a was still on its way (received, unanswered) either.
    assert!(
        log.iter()
            .filter(|r| a.sent(r) && r.key.verb.is_write() && !r.key.is_resource("leases"))
            .all(|r| r.answered.is_some()),
        "a write of replica-a was left in flight"
    );
    server.faults().clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renewals_hang_stops_writing_before_the_standby_takes_over() {
    crate::common::trace();
    takeover(|faults, leases| faults.hang_requests_matching(leases)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renewals_fail_stops_writing_before_the_standby_takes_over() {
    crate::common::trace();
    takeover(|faults, leases| faults.fail_next_requests_matching(u32::MAX, 500, leases)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_hung_write_drains_within_its_deadline_releases_the_lease_and_exits() {
    crate::common::trace();
    let server = server().await;
    let capt = Capt::new(&server);
    // Requests may hang far longer than the drain may take.
    let mut a = Replica::spawn(
        &server,
        "replica-a",
        &[
            "--graceful-shutdown-timeout",
            "1s",
            "--kube-api-timeout",
            "10m",
        ],
    );
    eventually("replica-a to lead", || async {
        holder(&server).as_deref() == Some("replica-a")
    })
    .await;
    server.faults().hang_requests_matching(
        RequestFilter::any()
            .verb(Verb::Patch)
            .user_agent("(replica-a)"),
    );
    capt.create("demo").await;
    eventually("a patch of replica-a to hang", || async {
        server
            .request_log()
            .iter()
            .any(|r| a.sent(r) && r.key.verb == Verb::Patch && r.answered.is_none())
    })
    .await;

    let pid = a.child.id().expect("the process runs");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = a.exited().await;
    assert!(status.success(), "a drained shutdown exits 0: {status}");
    assert_eq!(holder(&server), None, "the Lease is released");
    server.faults().clear();
}

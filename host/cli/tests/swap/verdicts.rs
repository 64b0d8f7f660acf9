//! Verdicts recorded in the cluster (`capt_host_swap::ConfigMapVerdicts`): what one replica
//! judged of a module, every replica follows, at start and on each swap; the first verdict is
//! never overwritten; without access to the ConfigMap each replica judges on its own.

use std::sync::Arc;
use std::time::Duration;

use capt_host_swap::{Canary, ConfigMapVerdicts, Fallback, SwapConfig, Verdicts};
use inproc_apiserver::{ApiServer, RequestFilter, Verb};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::embedded::DEFAULT_POLICY;
use crate::support::{
    Files, PATIENCE, SETTINGS, Swapping, TempDir, digest, eventually, fixtures, policy_until,
    server, start, v1, v2,
};

/// The ConfigMap's name and namespace in these tests.
const NAME: &str = "capt-status-policy-verdicts";
const NAMESPACE: &str = "default";

/// `files`' configuration, with the embedded fallback and the verdicts of `server` judged by
/// `identity`.
fn config(server: &ApiServer, files: &Files, identity: &str) -> SwapConfig {
    let mut config = files.config();
    config.fallback = Some(Fallback {
        bytes: DEFAULT_POLICY,
        label: "embedded default".into(),
    });
    let store = ConfigMapVerdicts::new(
        server.client(),
        NAMESPACE,
        NAME,
        tokio::runtime::Handle::current(),
        Duration::from_secs(10),
    );
    config.verdicts = Some(Verdicts::new(Arc::new(store), identity));
    config
}

/// The entry name of `module` with the test settings.
fn key(module: &[u8]) -> String {
    format!("{}.{}", digest(module), digest(SETTINGS.as_bytes()))
}

/// The recorded entries, parsed (a value that is no JSON as a string).
async fn entries(server: &ApiServer) -> serde_json::Map<String, Value> {
    let api: Api<ConfigMap> = Api::namespaced(server.client(), NAMESPACE);
    let Some(map) = api.get_opt(NAME).await.expect("the ConfigMap reads") else {
        return Default::default();
    };
    map.data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let value = serde_json::from_str(&v).unwrap_or(Value::String(v));
            (k, value)
        })
        .collect()
}

/// Waits until the entry of `module` is recorded; returns it.
async fn entry(server: &ApiServer, module: &[u8]) -> Value {
    let key = key(module);
    eventually(&format!("the verdict {key} to be recorded"), || async {
        entries(server).await.contains_key(&key)
    })
    .await;
    entries(server).await[&key].clone()
}

async fn stop(operator: Swapping) {
    operator.shutdown().await.expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_recorded_by_one_replica_is_followed_by_the_next_and_an_acceptance_is_recorded()
{
    crate::support::trace();
    let server = server().await;
    let wrong = fixtures::bytes(fixtures::WRONG);
    let files_a = Files::new("verdicts-a", &wrong);
    let (a, _) = start(&server, "replica-a", config(&server, &files_a, "replica-a")).await;
    let report = policy_until(&a, "replica-a's canary failure", |r, _| r.rejections >= 1).await;
    assert_eq!(report["fallback"]["reason"], "canary_failed", "{report:#}");
    let recorded = entry(&server, &wrong).await;
    assert_eq!(recorded["verdict"], "rejected", "{recorded:#}");
    assert_eq!(recorded["reason"], "canary_failed", "{recorded:#}");
    assert_eq!(recorded["judgedBy"], "replica-a", "{recorded:#}");
    assert!(recorded["message"].as_str().unwrap().contains("canary"));

    // Replica B has no canary: judging alone, it would serve the module.
    let files_b = Files::new("verdicts-b", &wrong);
    let mut config_b = config(&server, &files_b, "replica-b");
    config_b.canary = Canary::Off;
    let (b, _) = start(&server, "replica-b", config_b).await;
    let report = b.policy();
    assert_eq!(report.active.digest, digest(&v1()), "the fallback serves");
    let fallback = report.fallback.as_ref().expect("the fallback is reported");
    assert_eq!(fallback.reason, "recorded_rejection");
    assert!(
        fallback.message.contains("rejected by a recorded verdict"),
        "{}",
        fallback.message
    );
    let verdict = fallback.verdict.as_ref().expect("the recorded verdict");
    assert_eq!(verdict.judged_by, "replica-a");
    assert_eq!(verdict.reason.as_deref(), Some("canary_failed"));
    let json = policy_until(&b, "the rejection on /policy", |r, _| r.rejections >= 1).await;
    assert_eq!(json["last_rejected"]["verdict"]["judgedBy"], "replica-a");
    assert_eq!(json["last_rejected"]["reason"], "recorded_rejection");
    assert_eq!(entry(&server, &wrong).await, recorded, "never overwritten");

    // B judges v2 (a hot swap) and records its acceptance.
    files_b.replace(&v2());
    policy_until(&b, "v2 on replica-b", |r, _| {
        r.active.digest == digest(&v2())
    })
    .await;
    let accepted = entry(&server, &v2()).await;
    assert_eq!(accepted["verdict"], "accepted", "{accepted:#}");
    assert_eq!(accepted["judgedBy"], "replica-b", "{accepted:#}");
    assert!(accepted.get("reason").is_none(), "{accepted:#}");
    assert_eq!(entries(&server).await.len(), 2);
    stop(a).await;
    stop(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_acceptance_is_reused_without_the_canary() {
    crate::support::trace();
    let server = server().await;
    // The first write conflicts: the replica reads again and writes.
    server
        .faults()
        .conflict_next_writes_matching(1, RequestFilter::any().resource("configmaps"));
    let files_a = Files::new("verdicts-accept-a", &v2());
    let (a, _) = start(&server, "replica-a", config(&server, &files_a, "replica-a")).await;
    assert_eq!(a.policy().active.digest, digest(&v2()));
    let recorded = entry(&server, &v2()).await;
    assert_eq!(recorded["verdict"], "accepted", "{recorded:#}");
    assert_eq!(recorded["judgedBy"], "replica-a", "{recorded:#}");

    // Replica B's canary suite is unusable: judging alone, it would reject every module.
    let empty = TempDir::new("verdicts-no-scenarios");
    let files_b = Files::new("verdicts-accept-b", &v2());
    let mut config_b = config(&server, &files_b, "replica-b");
    config_b.canary = Canary::Dir(empty.path().to_owned());
    let (b, _) = start(&server, "replica-b", config_b).await;
    let report = b.policy();
    assert_eq!(
        report.active.digest,
        digest(&v2()),
        "the recorded acceptance"
    );
    assert!(report.fallback.is_none(), "{:?}", report.fallback);
    assert_eq!(entry(&server, &v2()).await, recorded, "never overwritten");
    stop(a).await;
    stop(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_recorded_first_stands_on_a_hot_swap_and_other_entries_are_kept() {
    crate::support::trace();
    let server = server().await;
    let earlier = json!({
        "verdict": "rejected",
        "reason": "compile_time",
        "message": "the compile took too long",
        "judgedBy": "replica-z",
        "at": "2026-12-01T00:00:00.000Z",
    });
    let api: Api<ConfigMap> = Api::namespaced(server.client(), NAMESPACE);
    let map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": NAME},
        "data": {
            key(&v2()): earlier.to_string(),
            "unrelated": "kept as it is",
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &map)
        .await
        .expect("the ConfigMap is created");
    let files = Files::new("verdicts-first", &v1());
    let (operator, _) = start(&server, "replica-a", config(&server, &files, "replica-a")).await;
    assert_eq!(operator.policy().active.digest, digest(&v1()));

    // v2 passes its canary, but the recorded rejection stands.
    files.replace(&v2());
    let json = policy_until(&operator, "the recorded rejection of v2", |r, _| {
        r.rejections >= 1
    })
    .await;
    assert_eq!(json["active"]["digest"], digest(&v1()), "{json:#}");
    assert_eq!(json["last_rejected"]["reason"], "recorded_rejection");
    assert_eq!(json["last_rejected"]["digest"], digest(&v2()));
    assert_eq!(json["last_rejected"]["verdict"]["reason"], "compile_time");
    assert_eq!(json["last_rejected"]["verdict"]["judgedBy"], "replica-z");
    let entries = entries(&server).await;
    assert_eq!(entries[&key(&v2())], earlier);
    assert_eq!(entries["unrelated"], "kept as it is");
    // v1's acceptance, judged at start.
    assert_eq!(entries[&key(&v1())]["verdict"], "accepted");
    stop(operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_access_to_the_config_map_a_replica_judges_on_its_own() {
    crate::support::trace();
    let server = server().await;
    server.faults().fail_next_requests_matching(
        1000,
        403,
        RequestFilter::any().resource("configmaps"),
    );
    let wrong = fixtures::bytes(fixtures::WRONG);
    let files = Files::new("verdicts-forbidden", &wrong);
    let (operator, _) = start(&server, "replica-a", config(&server, &files, "replica-a")).await;
    let report = operator.policy();
    assert_eq!(report.active.digest, digest(&v1()));
    let fallback = report.fallback.as_ref().expect("the fallback is reported");
    assert_eq!(fallback.reason, "canary_failed", "judged here");
    assert!(fallback.verdict.is_none());
    // It asked (and was refused): the lookup and the write.
    let requests = server.requests();
    assert!(requests.count(Verb::Get, "configmaps") >= 1);
    // A hot swap is judged here too.
    files.replace(&v2());
    policy_until(&operator, "v2", |r, _| r.active.digest == digest(&v2())).await;
    server.faults().clear();
    assert!(entries(&server).await.is_empty(), "nothing was recorded");
    stop(operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capt_host_run_records_its_verdict_in_the_config_map_of_the_lease_namespace() {
    crate::support::trace();
    let server = server().await;
    let wrong = fixtures::bytes(fixtures::WRONG);
    let files = Files::new("verdicts-run", &wrong);
    let kubeconfig = files.dir.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig_yaml()).expect("the kubeconfig");
    let log = files.dir.join("run.log");
    let mut run = tokio::process::Command::new(env!("CARGO_BIN_EXE_capt-host"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--module")
        .arg(files.module())
        .arg("--settings")
        .arg(files.settings())
        .args(["--identity", "replica-run"])
        .args(["--leader-election-namespace", NAMESPACE])
        .args([
            "--metrics-bind-address",
            "0",
            "--health-probe-bind-address",
            "0",
        ])
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .env_remove("CAPT_POLICY_VERDICTS_CONFIGMAP")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("the log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("capt-host run starts");
    // The default name: the one deploy/'s Role grants.
    let key = key(&wrong);
    let recorded = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(found) = entries(&server).await.get(&key) {
                return found.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no verdict recorded; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert_eq!(recorded["verdict"], "rejected", "{recorded:#}");
    assert_eq!(recorded["reason"], "canary_failed", "{recorded:#}");
    assert_eq!(recorded["judgedBy"], "replica-run", "{recorded:#}");
    assert!(
        run.try_wait().expect("the process is there").is_none(),
        "it serves the embedded policy; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    run.kill().await.expect("the process is stopped");
}

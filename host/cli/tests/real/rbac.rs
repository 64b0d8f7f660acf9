//! The operator under `deploy/`'s RBAC: it authenticates as the ServiceAccount the
//! kustomization binds, with exactly the roles read from its files. With them the demo world
//! converges (statuses, the Cluster, events, leader election) and the replicas' policy
//! verdicts are recorded; without any one rule it does not; reads outside the grants are
//! refused; a scrape of its secured metrics by the metrics reader needs the review rules (and
//! the reader role's). Secrets are readable only where the secret reader
//! is bound with a RoleBinding (deploy/README.md, "Secrets"): here in the demo's namespace,
//! `default`, and nowhere else.

use std::time::Duration;

use capt_host_operator::LeaderElection;
use capt_host_swap::{ConfigMapVerdicts, Recorded, Verdict, VerdictKey, VerdictStore as _};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};
use kube_harness::KubeServer;
use kube_harness::rbac::Grants;

use crate::common::{PATIENCE, config, holds_within, server, start};
use crate::grants::{bind_secret_reader, grant, service_account};
use crate::{metrics, world};

/// How long a run without one rule is given to converge anyway (it never should; the full
/// grants converge in about a second).
const WITHOUT_RULE_PATIENCE: Duration = Duration::from_secs(15);

/// The namespace of the demo world, where the secret reader is bound.
const WORLD_NAMESPACE: &str = "default";

/// The ConfigMap of the policy verdicts (`--policy-verdicts-configmap`'s default, the one
/// deploy/'s Role names).
const VERDICTS: &str = "capt-status-policy-verdicts";

/// Runs the operator as the ServiceAccount on the demo world: whether the world converged
/// and the operator's events were recorded within `patience`.
async fn operator_converges(server: &KubeServer, grants: &Grants, patience: Duration) -> bool {
    let demo = world::demo();
    let events: Api<Event> = Api::default_namespaced(server.client());
    let _ = events
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    world::build(server, &demo).await;
    let client = service_account(server, grants).await;
    let mut config = config("rbac");
    config.leader_election = Some(LeaderElection::new("capt-status", &grants.namespace));
    let converged = match start(client, config, patience).await {
        None => false,
        Some(operator) => {
            let expected = world::final_expectations(&demo);
            let converged = holds_within(patience, || async {
                let recorded = events.list(&ListParams::default()).await.is_ok_and(|list| {
                    list.items
                        .iter()
                        .any(|e| e.reason.as_deref() == Some("ControlPlaneReady"))
                });
                recorded && world::converged(server, &expected).await
            })
            .await;
            let _ = operator.shutdown().await;
            converged
        }
    };
    world::clear(server, &demo).await;
    let leases: Api<Lease> = Api::namespaced(server.client(), &grants.namespace);
    let _ = leases.delete("capt-status", &DeleteParams::default()).await;
    converged
}

/// Whether the ServiceAccount of `grants` can use the policy verdicts as `capt-host run` does:
/// look one up, record a first (creating the ConfigMap) and a second (updating it), read the
/// first back. The ConfigMap is deleted afterwards.
async fn verdicts_recorded(server: &KubeServer, grants: &Grants) -> bool {
    let client = service_account(server, grants).await;
    let namespace = grants.namespace.clone();
    let runtime = tokio::runtime::Handle::current();
    // On a blocking thread, as the swaps use it.
    let recorded = tokio::task::spawn_blocking(move || {
        let store = ConfigMapVerdicts::new(
            client,
            &namespace,
            VERDICTS,
            runtime,
            Duration::from_secs(10),
        );
        let key = |module: &str| VerdictKey {
            module: module.repeat(64),
            settings: String::new(),
        };
        let verdict = Verdict::new("rbac", Ok(()));
        matches!(store.lookup(&key("a")), Ok(None))
            && matches!(store.record(&key("a"), &verdict), Ok(Recorded::Recorded))
            && matches!(store.record(&key("b"), &verdict), Ok(Recorded::Recorded))
            && matches!(store.lookup(&key("a")), Ok(Some(found)) if found.judged_by == "rbac")
    })
    .await
    .expect("the verdicts task ends");
    let maps: Api<ConfigMap> = Api::namespaced(server.client(), &grants.namespace);
    let _ = maps.delete(VERDICTS, &DeleteParams::default()).await;
    recorded
}

#[tokio::test]
async fn the_operator_needs_every_rule_of_deploy_and_reads_nothing_else() {
    let server = server().await;
    let grants = Grants::from_deploy().expect("deploy/ is readable");
    assert!(
        !grants.service_account().is_empty(),
        "deploy/ has a ServiceAccount"
    );
    let rules = grants.rules();
    assert!(rules.len() >= 5, "deploy/ grants rules: {rules:?}");

    grant(&server, &grants).await;
    let client = service_account(&server, &grants).await;
    let refused = |result: Result<_, kube::Error>| matches!(result, Err(kube::Error::Api(ref s)) if s.code == 403);
    // deploy/ alone grants no Secret anywhere.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), WORLD_NAMESPACE);
    assert!(refused(secrets.get("any").await.map(drop)));

    bind_secret_reader(&server, &grants, WORLD_NAMESPACE).await;
    assert!(
        operator_converges(&server, &grants, PATIENCE).await,
        "the operator converges the demo world with deploy/'s grants"
    );
    assert!(
        verdicts_recorded(&server, &grants).await,
        "the policy verdicts are recorded with deploy/'s grants"
    );
    assert!(
        metrics::scraped(&server, &grants).await,
        "the metrics reader scrapes the operator with deploy/'s grants"
    );
    // The verdicts' Role names one ConfigMap: no other is readable.
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), &grants.namespace);
    assert!(refused(other.get("capt-status-policy").await.map(drop)));
    // Bound in the world's namespace: `get` there (the Secret does not exist: 404, not 403),
    // never `list`, and nothing in other namespaces.
    assert!(!refused(secrets.get("any").await.map(drop)));
    assert!(refused(
        secrets.list(&ListParams::default()).await.map(drop)
    ));
    let elsewhere: Api<Secret> = Api::namespaced(client.clone(), "kube-public");
    assert!(refused(elsewhere.get("any").await.map(drop)));
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    assert!(refused(
        config_maps.list(&ListParams::default()).await.map(drop)
    ));
    let pods: Api<Pod> = Api::all(client.clone());
    assert!(refused(pods.list(&ListParams::default()).await.map(drop)));
    let leases: Api<Lease> = Api::default_namespaced(client);
    assert!(refused(leases.list(&ListParams::default()).await.map(drop)));

    let mut unneeded = Vec::new();
    for rule in rules {
        let narrower = grants.without(rule);
        grant(&server, &narrower).await;
        if verdicts_recorded(&server, &narrower).await
            && metrics::scraped(&server, &narrower).await
            && operator_converges(&server, &narrower, WITHOUT_RULE_PATIENCE).await
        {
            unneeded.push(grants.rule(rule).to_string());
        }
    }
    assert!(
        unneeded.is_empty(),
        "the operator converges without these rules of deploy/:\n{}",
        unneeded.join("\n")
    );
}

//! `deploy/` (kustomize), the `Dockerfile` and `.dockerignore`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::schema;
use crate::support;

const DEPLOY: &str = "deploy";
/// The CRDs' own kustomization, outside the operator's.
const CRDS: &str = "deploy/crds";
const NAMESPACE: &str = "capt-system";
const SERVICE_ACCOUNT: &str = "capt-status";
const POLICY_DIR: &str = "/etc/capt/policy";

/// The ClusterRole's grants, one `(apiGroup, resource, verbs)` per line. A change here must be
/// deliberate and explained in deploy/README.md.
const CLUSTER_ROLE: &[(&str, &str, &[&str])] = &[
    // The trigger kinds and what they depend on: watched.
    (
        "infrastructure.cluster.x-k8s.io",
        "captclusters",
        &["get", "list", "watch"],
    ),
    (
        "controlplane.cluster.x-k8s.io",
        "captcontrolplanes",
        &["get", "list", "watch", "patch"],
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "workspacetemplateapplies",
        &["get", "list", "watch"],
    ),
    ("tf.upbound.io", "workspaces", &["get", "list", "watch"]),
    (
        "cluster.x-k8s.io",
        "clusters",
        &["get", "list", "watch", "patch"],
    ),
    // Status patches (and the CAPTControlPlane's and Cluster's spec.controlPlaneEndpoint above).
    (
        "infrastructure.cluster.x-k8s.io",
        "captclusters/status",
        &["patch"],
    ),
    (
        "controlplane.cluster.x-k8s.io",
        "captcontrolplanes/status",
        &["patch"],
    ),
    ("cluster.x-k8s.io", "clusters/status", &["patch"]),
    // No Secrets: see SECRET_READER_ROLE.
    // Events.
    ("events.k8s.io", "events", &["create", "patch"]),
];

/// The ClusterRole that reads connection Secrets, bound by the operator's users with a
/// RoleBinding per namespace (deploy/README.md, "Secrets"), never cluster-wide by deploy/.
const SECRET_READER_ROLE: &[(&str, &str, &[&str])] = &[("", "secrets", &["get"])];

/// The leader-election Role's grants, in capt-system only.
const LEADER_ELECTION_ROLE: &[(&str, &str, &[&str])] = &[(
    "coordination.k8s.io",
    "leases",
    &["get", "create", "update", "patch"],
)];

/// The ConfigMap the replicas record policy verdicts in (`--policy-verdicts-configmap`'s
/// default).
const VERDICTS_CONFIGMAP: &str = "capt-status-policy-verdicts";

/// The policy-verdicts Role's grants, in capt-system only: `(group, resource, name, verbs)`.
/// `create` cannot name its object.
const POLICY_VERDICTS_ROLE: &[(&str, &str, &str, &[&str])] = &[
    ("", "configmaps", VERDICTS_CONFIGMAP, &["get", "update"]),
    ("", "configmaps", "", &["create"]),
];

/// The container's arguments: the flags `capt-host run` implements.
const ARGS: &[&str] = &[
    "run",
    "--module=/etc/capt/policy/policy.wasm",
    "--settings=/etc/capt/policy/settings.yaml",
    "--metrics-bind-address=:8443",
    "--health-probe-bind-address=:8081",
    "--leader-elect",
    "--leader-election-id=capt-status",
    "--log-format=json",
];

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The files and directories a kustomization refers to (resources, components, patch files).
fn references(kustomization: &Path) -> Vec<PathBuf> {
    let k = support::document(kustomization);
    let dir = kustomization.parent().expect("a directory");
    let mut out: Vec<PathBuf> = ["resources", "components", "crds", "patchesStrategicMerge"]
        .iter()
        .flat_map(|key| strings(k.get(*key)))
        .map(|r| dir.join(r))
        .collect();
    for patch in k
        .get("patches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(path) = patch.get("path").and_then(Value::as_str) {
            out.push(dir.join(path));
        }
    }
    out
}

/// The files a kustomization's generators read (`configMapGenerator` and `secretGenerator`
/// `files`, with any `key=` prefix dropped): inputs, not objects.
fn generator_files(kustomization: &Path) -> Vec<PathBuf> {
    let k = support::document(kustomization);
    let dir = kustomization.parent().expect("a directory");
    ["configMapGenerator", "secretGenerator"]
        .iter()
        .filter_map(|key| k.get(*key).and_then(Value::as_array))
        .flatten()
        .flat_map(|generator| strings(generator.get("files")))
        .map(|file| dir.join(file.rsplit_once('=').map_or(file.as_str(), |(_, f)| f)))
        .collect()
}

/// Every generator input of every kustomization under `dir`.
fn generator_inputs(dir: &str) -> BTreeSet<PathBuf> {
    support::yaml_files(&support::path(dir))
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "kustomization.yaml"))
        .flat_map(|k| generator_files(k))
        .filter_map(|p| p.canonicalize().ok())
        .collect()
}

/// Every file a kustomization includes, following directory references (bases), in order.
fn included_files(kustomization: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for reference in references(kustomization) {
        if reference.is_dir() {
            out.extend(included_files(&reference.join("kustomization.yaml")));
        } else {
            out.push(reference);
        }
    }
    out
}

/// Every object `kubectl apply -k <dir>` creates, as written in the files.
fn objects_of(dir: &str) -> Vec<Value> {
    included_files(&support::path(dir).join("kustomization.yaml"))
        .iter()
        .flat_map(|f| support::documents(f))
        .collect()
}

/// Every object `kubectl apply -k deploy` (the operator) creates.
pub fn deployed_objects() -> Vec<Value> {
    objects_of(DEPLOY)
}

/// Every object `kubectl apply -k deploy/crds` creates: the four CAPT CRDs.
pub fn installed_crd_objects() -> Vec<Value> {
    objects_of(CRDS)
}

fn object(kind: &str, name: &str) -> Value {
    let found: Vec<Value> = deployed_objects()
        .into_iter()
        .filter(|o| {
            support::str_at(o, "kind") == Some(kind)
                && support::str_at(o, "metadata.name") == Some(name)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "deploy/ must have exactly one {kind} {name}"
    );
    found.into_iter().next().expect("one")
}

/// The grants of an RBAC rule list, as `(group, resource, verb, resource name)` tuples (the
/// name empty when the rule names none: every object of the resource).
fn grants(role: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role.get("rules").and_then(Value::as_array).expect("rules") {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "nonResourceURLs is not used: {rule}"
        );
        let names = match strings(rule.get("resourceNames")) {
            names if names.is_empty() => vec![String::new()],
            names => names,
        };
        let (groups, resources, verbs) = (
            strings(rule.get("apiGroups")),
            strings(rule.get("resources")),
            strings(rule.get("verbs")),
        );
        for group in &groups {
            for resource in &resources {
                for verb in &verbs {
                    for name in &names {
                        for part in [group, resource, verb, name] {
                            assert!(!part.contains('*'), "no wildcards: {rule}");
                        }
                        assert!(
                            out.insert((
                                group.clone(),
                                resource.clone(),
                                verb.clone(),
                                name.clone()
                            )),
                            "{group}/{resource} {verb} {name} is granted twice"
                        );
                    }
                }
            }
        }
    }
    out
}

/// The grants of a table of `(group, resource, verbs)`, on every object of the resource.
fn table(rules: &[(&str, &str, &[&str])]) -> BTreeSet<(String, String, String, String)> {
    named_table(
        &rules
            .iter()
            .map(|(group, resource, verbs)| (*group, *resource, "", *verbs))
            .collect::<Vec<_>>(),
    )
}

/// The grants of a table of `(group, resource, resource name, verbs)` (an empty name: every
/// object).
fn named_table(
    rules: &[(&str, &str, &str, &[&str])],
) -> BTreeSet<(String, String, String, String)> {
    rules
        .iter()
        .flat_map(|(group, resource, name, verbs)| {
            verbs.iter().map(move |verb| {
                (
                    (*group).to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                    (*name).to_owned(),
                )
            })
        })
        .collect()
}

/// Checks that the Role `name` in capt-system grants exactly `expected` and that a RoleBinding
/// of the same name binds it to the operator's ServiceAccount.
fn role_bound_to_the_operator(name: &str, expected: &BTreeSet<(String, String, String, String)>) {
    let role = object("Role", name);
    assert_eq!(
        support::str_at(&role, "metadata.namespace"),
        Some(NAMESPACE)
    );
    assert_eq!(&grants(&role), expected, "{name}");
    let binding = object("RoleBinding", name);
    assert_eq!(
        support::str_at(&binding, "metadata.namespace"),
        Some(NAMESPACE)
    );
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}])
    );
}

fn container() -> Value {
    let deployment = object("Deployment", "capt-status");
    let containers = support::at(&deployment, "spec.template.spec.containers")
        .and_then(Value::as_array)
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    containers[0].clone()
}

#[test]
fn every_yaml_file_in_deploy_parses() {
    let files = support::yaml_files(&support::path(DEPLOY));
    assert!(files.len() >= 8, "{files:?}");
    let inputs = generator_inputs(DEPLOY);
    for file in files
        .iter()
        .filter(|f| !inputs.contains(&f.canonicalize().expect("exists")))
    {
        for document in support::documents(file) {
            assert!(
                document.get("apiVersion").is_some() && document.get("kind").is_some(),
                "{}: every document has apiVersion and kind",
                support::show(file)
            );
        }
    }
}

#[test]
fn every_file_a_kustomization_lists_exists() {
    let mut kustomizations = Vec::new();
    for dir in [DEPLOY, schema::CRDS, "policies/capt-status/samples"] {
        kustomizations.extend(
            support::yaml_files(&support::path(dir))
                .into_iter()
                .filter(|p| p.file_name().is_some_and(|n| n == "kustomization.yaml")),
        );
    }
    assert!(kustomizations.len() >= 4, "{kustomizations:?}");
    for kustomization in kustomizations {
        let k = support::document(&kustomization);
        assert_eq!(
            support::str_at(&k, "kind"),
            Some("Kustomization"),
            "{}",
            support::show(&kustomization)
        );
        for reference in references(&kustomization) {
            let ok = if reference.is_dir() {
                reference.join("kustomization.yaml").is_file()
            } else {
                reference.is_file()
            };
            assert!(
                ok,
                "{} lists {}, which does not exist",
                support::show(&kustomization),
                reference.display()
            );
        }
    }
}

#[test]
fn every_yaml_file_in_deploy_and_the_samples_is_listed_in_a_kustomization() {
    for dir in [DEPLOY, "policies/capt-status/samples"] {
        let all = support::yaml_files(&support::path(dir));
        let listed: BTreeSet<PathBuf> = all
            .iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "kustomization.yaml"))
            .flat_map(|k| references(k).into_iter().chain(generator_files(k)))
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        for file in all
            .iter()
            .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        {
            assert!(
                listed.contains(&file.canonicalize().expect("exists")),
                "{} is in no kustomization.yaml",
                support::show(file)
            );
        }
    }
}

#[test]
fn the_four_capt_crds_have_a_kustomization_of_their_own_without_the_test_only_ones() {
    let included: BTreeSet<PathBuf> =
        included_files(&support::path(CRDS).join("kustomization.yaml"))
            .iter()
            .map(|p| p.canonicalize().expect("exists"))
            .collect();
    let installed: BTreeSet<PathBuf> = schema::installed_crds()
        .map(|c| c.path.canonicalize().expect("exists"))
        .collect();
    assert_eq!(installed.len(), 4);
    assert_eq!(
        included, installed,
        "{CRDS} installs exactly the four CAPT CRDs"
    );
    let test_only = support::path(schema::TEST_ONLY_CRDS)
        .canonicalize()
        .expect("exists");
    for file in &included {
        assert!(
            !file.starts_with(&test_only),
            "{CRDS} must not install the test-only CRD {}",
            file.display()
        );
    }
}

#[test]
fn deleting_the_operator_deletes_no_crd_and_so_no_capt_object() {
    // `kubectl delete -k deploy` deletes what `deployed_objects` lists; a CRD among them would
    // take every CAPTCluster and CAPTControlPlane of the cluster with it.
    let crds: Vec<String> = deployed_objects()
        .iter()
        .filter(|o| support::str_at(o, "kind") == Some("CustomResourceDefinition"))
        .filter_map(|o| support::str_at(o, "metadata.name").map(str::to_owned))
        .collect();
    assert!(crds.is_empty(), "deploy/ includes CRDs: {crds:?}");
    let crds_dir = support::path(CRDS).canonicalize().expect("exists");
    for file in included_files(&support::path(DEPLOY).join("kustomization.yaml")) {
        assert!(
            !file.canonicalize().expect("exists").starts_with(&crds_dir),
            "deploy/ includes {}",
            file.display()
        );
    }
}

#[test]
fn every_namespaced_object_of_deploy_is_in_capt_system() {
    let kustomization = support::document(&support::path(DEPLOY).join("kustomization.yaml"));
    assert_eq!(
        support::str_at(&kustomization, "namespace"),
        Some(NAMESPACE)
    );
    let cluster_scoped = [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    let objects = deployed_objects();
    assert!(objects.iter().any(|o| {
        support::str_at(o, "kind") == Some("Namespace")
            && support::str_at(o, "metadata.name") == Some(NAMESPACE)
    }));
    for object in objects {
        let kind = support::str_at(&object, "kind").unwrap_or_default();
        let namespace = support::str_at(&object, "metadata.namespace");
        if cluster_scoped.contains(&kind) {
            assert_eq!(namespace, None, "{}", support::describe(&object));
        } else {
            assert_eq!(namespace, Some(NAMESPACE), "{}", support::describe(&object));
        }
    }
}

#[test]
fn the_cluster_role_grants_exactly_the_rules_of_the_table() {
    let role = object("ClusterRole", "capt-status");
    assert_eq!(grants(&role), table(CLUSTER_ROLE));
    let binding = object("ClusterRoleBinding", "capt-status");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "capt-status"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}])
    );
}

#[test]
fn secrets_are_granted_only_by_the_secret_reader_role_which_deploy_binds_nowhere() {
    let role = object("ClusterRole", "capt-status-secret-reader");
    assert_eq!(grants(&role), table(SECRET_READER_ROLE));
    let objects = deployed_objects();
    for object in &objects {
        let kind = support::str_at(object, "kind").unwrap_or_default();
        let name = support::str_at(object, "metadata.name").unwrap_or_default();
        // The metrics reader grants only non-resource URLs (checked on its own).
        if matches!(kind, "ClusterRole" | "Role")
            && !matches!(
                name,
                "capt-status-secret-reader" | "capt-status-metrics-reader"
            )
        {
            assert!(
                !grants(object)
                    .iter()
                    .any(|(_, resource, _, _)| resource == "secrets"),
                "only capt-status-secret-reader grants secrets: {}",
                support::describe(object)
            );
        }
        if matches!(kind, "ClusterRoleBinding" | "RoleBinding") {
            assert_ne!(
                support::str_at(object, "roleRef.name"),
                Some("capt-status-secret-reader"),
                "deploy/ binds the secret reader nowhere (README.md, \"Secrets\"): {}",
                support::describe(object)
            );
        }
    }
}

#[test]
fn the_leader_election_role_grants_only_leases_in_capt_system() {
    role_bound_to_the_operator("capt-status-leader-election", &table(LEADER_ELECTION_ROLE));
    object("ServiceAccount", SERVICE_ACCOUNT);
}

#[test]
fn the_policy_verdicts_role_grants_only_the_verdicts_config_map_in_capt_system() {
    role_bound_to_the_operator(
        "capt-status-policy-verdicts",
        &named_table(POLICY_VERDICTS_ROLE),
    );
    // The container keeps the default name the Role grants.
    let args = strings(container().get("args"));
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--policy-verdicts-configmap")),
        "{args:?}"
    );
}

#[test]
fn the_operator_may_review_metrics_requests_and_the_metrics_reader_is_bound_nowhere() {
    let auth = object("ClusterRole", "capt-status-metrics-auth");
    assert_eq!(
        grants(&auth),
        table(&[
            ("authentication.k8s.io", "tokenreviews", &["create"]),
            ("authorization.k8s.io", "subjectaccessreviews", &["create"]),
        ])
    );
    let binding = object("ClusterRoleBinding", "capt-status-metrics-auth");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "capt-status-metrics-auth"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}])
    );
    let reader = object("ClusterRole", "capt-status-metrics-reader");
    assert_eq!(
        reader["rules"],
        json!([{"nonResourceURLs": ["/metrics", "/policy"], "verbs": ["get"]}])
    );
    // For Prometheus' ServiceAccount, bound by users.
    assert!(
        deployed_objects().iter().all(|o| !o["kind"]
            .as_str()
            .is_some_and(|k| k.ends_with("Binding"))
            || o["roleRef"]["name"] != "capt-status-metrics-reader"),
        "deploy/ binds capt-status-metrics-reader"
    );
    // The container serves the metrics securely (the default).
    let args = strings(container().get("args"));
    assert!(
        !args.iter().any(|a| a.starts_with("--metrics-secure")),
        "{args:?}"
    );
}

#[test]
fn the_deployment_runs_two_replicas_with_leader_election_under_its_service_account() {
    let deployment = object("Deployment", "capt-status");
    assert_eq!(support::at(&deployment, "spec.replicas"), Some(&json!(2)));
    assert_eq!(
        support::str_at(&deployment, "spec.template.spec.serviceAccountName"),
        Some(SERVICE_ACCOUNT)
    );
    let selector = support::at(&deployment, "spec.selector.matchLabels")
        .and_then(Value::as_object)
        .expect("a selector");
    let labels = support::at(&deployment, "spec.template.metadata.labels")
        .and_then(Value::as_object)
        .expect("pod labels");
    for (key, value) in selector {
        assert_eq!(
            labels.get(key),
            Some(value),
            "the selector selects the pods"
        );
    }
    let container = container();
    assert_eq!(strings(container.get("command")), ["capt-host"]);
    assert_eq!(strings(container.get("args")), ARGS);
    let env = container.get("env").and_then(Value::as_array).expect("env");
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = env
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not set"));
        assert_eq!(
            support::str_at(var, "valueFrom.fieldRef.fieldPath"),
            Some(field),
            "{name} comes from the downward API"
        );
    }
}

#[test]
fn the_probes_have_their_own_port_apart_from_the_metrics() {
    let container = container();
    let ports = container
        .get("ports")
        .and_then(Value::as_array)
        .expect("ports");
    let port = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no port {name}"))
    };
    assert_eq!(port("metrics"), 8443, "--metrics-bind-address");
    assert_eq!(port("health"), 8081, "--health-probe-bind-address");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = container
            .get(probe)
            .and_then(|p| p.get("httpGet"))
            .unwrap_or_else(|| panic!("no {probe}"));
        assert_eq!(get["path"], json!(path), "{probe}");
        assert_eq!(get["port"], json!("health"), "{probe} on the probe port");
    }
    let deployment = object("Deployment", "capt-status");
    let grace = support::at(
        &deployment,
        "spec.template.spec.terminationGracePeriodSeconds",
    )
    .and_then(Value::as_u64)
    .expect("a termination grace period");
    assert!(
        grace > 60,
        "room for the drain (30s) and the Lease release (30s): {grace}"
    );
}

#[test]
fn the_deployment_runs_as_non_root_with_a_read_only_root_and_no_capabilities() {
    let deployment = object("Deployment", "capt-status");
    let pod = support::at(&deployment, "spec.template.spec.securityContext")
        .expect("pod securityContext");
    assert_eq!(pod["runAsNonRoot"], json!(true));
    assert_eq!(pod["runAsUser"], json!(65532));
    assert_eq!(pod["seccompProfile"], json!({"type": "RuntimeDefault"}));
    let container = container();
    let security = container
        .get("securityContext")
        .expect("container securityContext");
    assert_eq!(security["runAsNonRoot"], json!(true));
    assert_eq!(security["runAsUser"], json!(65532));
    assert_eq!(security["readOnlyRootFilesystem"], json!(true));
    assert_eq!(security["allowPrivilegeEscalation"], json!(false));
    assert_eq!(security["capabilities"], json!({"drop": ["ALL"]}));
    assert_eq!(
        security["seccompProfile"],
        json!({"type": "RuntimeDefault"})
    );
    assert!(
        security
            .get("privileged")
            .is_none_or(|p| p == &json!(false))
    );
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                support::at(&container, &format!("resources.{kind}.{resource}")).is_some(),
                "resources.{kind}.{resource} is set"
            );
        }
    }
}

#[test]
fn the_metrics_service_selects_the_pods_on_the_metrics_port() {
    let service = object("Service", "capt-status-metrics");
    assert_eq!(
        support::at(&service, "spec.ports"),
        Some(
            &json!([{"name": "metrics", "port": 8443, "targetPort": "metrics", "protocol": "TCP"}])
        )
    );
    let deployment = object("Deployment", "capt-status");
    let labels = support::at(&deployment, "spec.template.metadata.labels").expect("labels");
    for (key, value) in support::at(&service, "spec.selector")
        .and_then(Value::as_object)
        .expect("a selector")
    {
        assert_eq!(labels.get(key), Some(value), "the Service selects the pods");
    }
}

#[test]
fn the_policy_and_settings_are_mounted_from_the_capt_status_policy_config_map() {
    let deployment = object("Deployment", "capt-status");
    let volumes = support::at(&deployment, "spec.template.spec.volumes")
        .and_then(Value::as_array)
        .expect("volumes");
    let policy = volumes
        .iter()
        .find(|v| support::str_at(v, "configMap.name") == Some("capt-status-policy"))
        .expect("a volume of the ConfigMap capt-status-policy");
    assert!(
        support::at(policy, "configMap.items").is_none(),
        "every key (policy.wasm, settings.yaml) is mounted"
    );
    assert_eq!(
        support::at(policy, "configMap.optional"),
        Some(&json!(true)),
        "optional: pods start without the ConfigMap (the embedded policy serves until it exists)"
    );
    let container = container();
    let mount = container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == policy["name"])
        .expect("the policy volume is mounted")
        .clone();
    assert_eq!(mount["mountPath"], json!(POLICY_DIR));
    assert_eq!(mount["readOnly"], json!(true));
    assert!(
        mount.get("subPath").is_none(),
        "no subPath: an updated ConfigMap must reach the pod"
    );
    for arg in ARGS
        .iter()
        .filter(|a| a.starts_with("--module=") || a.starts_with("--settings="))
    {
        assert!(arg.contains(POLICY_DIR), "{arg}");
    }
}

/// `rust-toolchain.toml`'s `channel`.
fn toolchain_channel() -> String {
    support::read(&support::path("rust-toolchain.toml"))
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "channel").then(|| value.trim().trim_matches('"').to_owned())
        })
        .expect("a channel in rust-toolchain.toml")
}

/// The Dockerfile's instructions (continuation lines joined, comments dropped).
fn dockerfile() -> Vec<String> {
    let text = support::read(&support::path("Dockerfile"));
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

#[test]
fn the_dockerfile_builds_with_the_pinned_toolchain_and_runs_as_the_deployment_user() {
    let instructions = dockerfile();
    let channel = toolchain_channel();
    let stages: Vec<&String> = instructions
        .iter()
        .filter(|i| i.starts_with("FROM "))
        .collect();
    assert_eq!(
        stages.len(),
        4,
        "chef, planner, builder and runtime stages: {stages:?}"
    );
    let args: String = instructions
        .iter()
        .filter(|i| i.starts_with("ARG "))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        stages[0].contains(&format!("rust:{channel}"))
            || (stages[0].contains("rust:${RUST_VERSION}")
                && args.contains(&format!("RUST_VERSION={channel}"))),
        "the first stage is the official rust {channel} image: {}",
        stages[0]
    );
    let all = instructions.join("\n");
    for needle in [
        "rustup target add wasm32-unknown-unknown",
        "cargo install cargo-chef --locked",
        "cargo chef prepare --recipe-path recipe.json",
        "cargo build --profile dist -p capt-host --locked",
        "/usr/local/bin/capt-host",
    ] {
        assert!(all.contains(needle), "the Dockerfile has {needle:?}");
    }
    assert!(
        !all.contains("/etc/capt/policy"),
        "the policy is built into the binary, not copied where the ConfigMap's volume would hide it"
    );
    // The dependencies are compiled before the sources are copied, with the same profile and
    // features as the binary: their layer survives a change of the sources.
    let builder: Vec<&String> = instructions
        .iter()
        .skip_while(|i| *i != stages[2])
        .take_while(|i| *i != stages[3])
        .collect();
    let position = |needle: &str| {
        builder
            .iter()
            .position(|i| i.contains(needle))
            .unwrap_or_else(|| panic!("the builder stage has {needle:?}: {builder:?}"))
    };
    assert!(position("cargo chef cook") < position("COPY . ."));
    assert!(position("COPY . .") < position("cargo build"));
    let cook = builder[position("cargo chef cook")];
    for flag in [
        "--profile dist",
        "-p capt-host",
        "--no-default-features",
        "--locked",
    ] {
        assert!(cook.contains(flag), "cargo chef cook uses {flag}: {cook}");
    }
    let runtime: Vec<&String> = instructions
        .iter()
        .skip_while(|i| *i != stages[3])
        .collect();
    assert!(runtime[0].contains("nonroot"), "a non-root runtime image");
    for expected in [
        "USER 65532:65532",
        r#"ENTRYPOINT ["capt-host"]"#,
        r#"CMD ["run"]"#,
    ] {
        assert!(
            runtime.iter().any(|i| *i == expected),
            "the runtime stage has {expected}"
        );
    }
    let dockerignore = support::read(&support::path(".dockerignore"));
    for entry in ["target", ".git", "node_modules", ".venv"] {
        assert!(
            dockerignore
                .lines()
                .any(|l| l.trim().trim_start_matches("**/").trim_end_matches('/') == entry),
            ".dockerignore has {entry}"
        );
    }
}

/// The `key: value` lines of a YAML file that are commented out (`# key: value`), as a mapping.
fn commented_out_mapping(text: &str) -> Value {
    let uncommented: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.split_once(": ")
                .is_some_and(|(key, _)| !key.is_empty() && !key.contains(' '))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    serde_yaml_ng::from_str(&uncommented).expect("the commented-out lines are YAML")
}

#[test]
fn the_policy_kustomization_generates_the_mounted_config_map_with_the_policy_defaults() {
    let kustomization = support::document(&support::path("deploy/policy/kustomization.yaml"));
    assert_eq!(
        support::str_at(&kustomization, "namespace"),
        Some(NAMESPACE)
    );
    assert_eq!(
        support::at(&kustomization, "generatorOptions.disableNameSuffixHash"),
        Some(&json!(true)),
        "the Deployment mounts the ConfigMap by its exact name"
    );
    let generators = kustomization["configMapGenerator"]
        .as_array()
        .expect("a configMapGenerator");
    assert_eq!(generators.len(), 1);
    assert_eq!(generators[0]["name"], json!("capt-status-policy"));
    assert_eq!(
        strings(generators[0].get("files")),
        ["settings.yaml"],
        "the settings; a module only once the user adds one"
    );
    assert!(
        !objects_of(DEPLOY).iter().any(|o| o["kind"] == "ConfigMap"),
        "the operator's kustomization creates no policy ConfigMap: applying it never undoes a swap"
    );

    // The settings file overrides nothing, and lists every default, commented out.
    let text = support::read(&support::path("deploy/policy/settings.yaml"));
    let settings: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    assert_eq!(settings, json!({}), "every setting is commented out");
    let defaults: Value = serde_yaml_ng::from_str(&support::read(&support::path(
        "policies/capt-status/settings.yaml",
    )))
    .expect("the policy's default settings");
    assert_eq!(commented_out_mapping(&text), defaults);
}

#[test]
fn commented_out_mapping_reads_only_commented_key_value_lines() {
    let text = "# A comment: with a colon\n{}\n# a: 1\n# b: [x]\nc: 3\n";
    assert_eq!(commented_out_mapping(text), json!({"a": 1, "b": ["x"]}));
}

#[test]
fn the_license_file_is_the_apache_2_0_license_that_cargo_toml_and_the_image_declare() {
    let cargo = support::read(&support::path("Cargo.toml"));
    assert!(
        cargo
            .lines()
            .any(|l| l.trim() == r#"license = "Apache-2.0""#),
        "Cargo.toml declares Apache-2.0"
    );
    assert!(
        dockerfile()
            .iter()
            .any(|i| i.contains(r#"org.opencontainers.image.licenses="Apache-2.0""#)),
        "the image declares Apache-2.0"
    );
    let license = support::read(&support::path("LICENSE"));
    for needle in [
        "Apache License",
        "Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "END OF TERMS AND CONDITIONS",
    ] {
        assert!(license.contains(needle), "LICENSE has {needle:?}");
    }
}

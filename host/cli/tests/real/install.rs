//! Installing as users do, with the pinned release's `kubectl` against the real server: the CRDs
//! and the operator are two kustomizations, so deleting the operator keeps the CRDs and every
//! CAPT object; `deploy/policy` generates the ConfigMap the Deployment mounts; the release's
//! `install.yaml` (deploy/release.sh) applies in one step with the image asked for.

use std::path::Path;
use std::process::{Command, Output};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube_harness::{KubeServer, binaries, crds};
use serde_json::json;

use crate::common::{PATIENCE, trace, within};

/// The four CRDs `deploy/crds` installs.
const CAPT_CRDS: [&str; 4] = [
    "captclusters.infrastructure.cluster.x-k8s.io",
    "captcontrolplanes.controlplane.cluster.x-k8s.io",
    "workspacetemplates.infrastructure.cluster.x-k8s.io",
    "workspacetemplateapplies.infrastructure.cluster.x-k8s.io",
];

/// Runs `command` in the repository, failing the test with its output unless it succeeds.
fn run(mut command: Command) -> Output {
    let shown = format!("{command:?}");
    let output = command
        .current_dir(crds::repository())
        .output()
        .unwrap_or_else(|e| panic!("{shown} starts: {e}"));
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `kubectl ARGS` against `server`, which must succeed.
fn kubectl(server: &KubeServer, args: &[&str]) -> Output {
    let mut command = server.kubectl().expect("kubectl is built");
    command.args(args);
    run(command)
}

/// A fresh real server without any CRD.
async fn bare_server() -> KubeServer {
    trace();
    KubeServer::start()
        .await
        .expect("the real API server starts")
}

/// Waits until the CAPT CRDs are established.
fn wait_for_crds(server: &KubeServer) {
    let timeout = format!("--timeout={}s", PATIENCE.as_secs());
    let mut args = vec!["wait", "--for=condition=Established", timeout.as_str()];
    let names: Vec<String> = CAPT_CRDS.iter().map(|n| format!("crd/{n}")).collect();
    args.extend(names.iter().map(String::as_str));
    kubectl(server, &args);
}

/// The names of the CRDs the server has.
async fn crd_names(server: &KubeServer) -> Vec<String> {
    let api: Api<CustomResourceDefinition> = Api::all(server.client());
    let mut names: Vec<String> = api
        .list(&Default::default())
        .await
        .expect("CRDs are listed")
        .items
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn deleting_the_operator_keeps_the_crds_and_every_capt_object() {
    let server = bare_server().await;
    kubectl(&server, &["apply", "--server-side", "-k", "deploy/crds"]);
    wait_for_crds(&server);
    kubectl(&server, &["apply", "-k", "deploy"]);
    let deployments: Api<Deployment> = Api::namespaced(server.client(), "capt-system");
    within("the Deployment", deployments.get("capt-status"))
        .await
        .expect("`kubectl apply -k deploy` creates the Deployment");

    // A user's cluster: one CAPTCluster.
    let resource = ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "infrastructure.cluster.x-k8s.io",
        "v1beta1",
        "CAPTCluster",
    ));
    let clusters: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &resource);
    let cluster: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTCluster",
        "metadata": {"name": "kept", "namespace": "default"},
        "spec": {
            "region": "eu-west-1",
            "vpcTemplateRef": {"name": "vpc-template", "namespace": "default"},
        },
    }))
    .expect("a CAPTCluster");
    clusters
        .create(&Default::default(), &cluster)
        .await
        .expect("the CAPTCluster is created");

    // No namespace controller runs here, so capt-system would stay Terminating: do not wait.
    kubectl(&server, &["delete", "-k", "deploy", "--wait=false"]);
    let left = crd_names(&server).await;
    for crd in CAPT_CRDS {
        assert!(
            left.iter().any(|n| n == crd),
            "{crd} survives `kubectl delete -k deploy`: {left:?}"
        );
    }
    assert!(
        clusters.get_opt("kept").await.expect("a read").is_some(),
        "the CAPTCluster survives `kubectl delete -k deploy`"
    );
    assert!(
        deployments
            .get_opt("capt-status")
            .await
            .expect("a read")
            .is_none_or(|d| d.metadata.deletion_timestamp.is_some()),
        "the operator itself is deleted"
    );
}

#[tokio::test]
async fn deploy_policy_generates_the_config_map_the_deployment_mounts() {
    let server = bare_server().await;
    // In the documented order: the operator (its namespace), then its policy.
    kubectl(&server, &["apply", "-k", "deploy"]);
    kubectl(&server, &["apply", "--server-side", "-k", "deploy/policy"]);
    let config_maps: Api<ConfigMap> = Api::namespaced(server.client(), "capt-system");
    let generated = config_maps
        .get("capt-status-policy")
        .await
        .expect("`kubectl apply -k deploy/policy` creates capt-status-policy, unsuffixed");
    let settings = std::fs::read_to_string(crds::repository().join("deploy/policy/settings.yaml"))
        .expect("deploy/policy/settings.yaml");
    assert_eq!(
        generated
            .data
            .as_ref()
            .and_then(|d| d.get("settings.yaml"))
            .map(String::as_str),
        Some(settings.as_str()),
        "the ConfigMap carries the settings file byte for byte"
    );

    // The Deployment mounts that ConfigMap, optionally: no pod waits for it.
    let rendered = kubectl(&server, &["kustomize", "deploy"]);
    let objects: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_slice(&rendered.stdout)
        .map(|document| serde::Deserialize::deserialize(document).expect("a YAML document"))
        .collect();
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("deploy has the Deployment");
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == "capt-status-policy"
                && v["configMap"]["optional"] == true),
        "an optional volume of capt-status-policy: {volumes:?}"
    );
}

#[tokio::test]
async fn the_release_install_yaml_installs_crds_and_operator_with_the_image_asked_for() {
    let server = bare_server().await;
    // Into the server's folder, removed with it.
    let out = server.dir().join("release");
    let image = "registry.example/capt-status:v9.8.7";
    let mut release = Command::new("bash");
    release
        .arg("deploy/release.sh")
        .args(["--manifests-only", "--image", image])
        .arg(&out)
        .env("KUBECTL", binaries::kubectl().expect("kubectl is built"));
    run(release);
    let install = out.join("install.yaml");
    assert!(
        checksummed(&out, "install.yaml"),
        "SHA256SUMS lists install.yaml"
    );

    let file = install.display().to_string();
    kubectl(&server, &["apply", "--server-side", "-f", &file]);
    wait_for_crds(&server);
    let deployment = Api::<Deployment>::namespaced(server.client(), "capt-system")
        .get("capt-status")
        .await
        .expect("install.yaml creates the Deployment");
    let deployment = serde_json::to_value(deployment).expect("JSON");
    let images: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["image"].as_str())
        .collect();
    assert_eq!(images, [image]);
}

/// Whether `dir/SHA256SUMS` lists `file`.
fn checksummed(dir: &Path, file: &str) -> bool {
    std::fs::read_to_string(dir.join("SHA256SUMS"))
        .is_ok_and(|sums| sums.lines().any(|l| l.ends_with(&format!("  {file}"))))
}

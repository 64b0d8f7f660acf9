//! deploy/'s RBAC on the real server (shared by the test binaries that run the operator
//! there): the objects of the kustomization, read from its files, and the secret reader bound
//! per namespace as deploy/README.md ("Secrets") tells users to.

use kube::Client;
use kube::api::DeleteParams;
use kube_harness::KubeServer;
use kube_harness::rbac::Grants;
use serde_json::json;

/// The ClusterRole of deploy/ that reads Secrets, bound by users per namespace.
pub const SECRET_READER: &str = "capt-status-secret-reader";

/// Replaces the grants on `server` with `grants`.
pub async fn grant(server: &KubeServer, grants: &Grants) {
    for object in &grants.objects {
        let api = server.api_for(object).await.expect("a served kind");
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if object["kind"] != "Namespace" && object["kind"] != "ServiceAccount" {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
        if api.get_opt(name).await.expect("a read").is_none() {
            server.create(object).await.expect("the grant is created");
        }
    }
}

/// Binds the secret reader to the ServiceAccount of `grants` in `namespace`.
pub async fn bind_secret_reader(server: &KubeServer, grants: &Grants, namespace: &str) {
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": SECRET_READER, "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": SECRET_READER,
        },
        "subjects": [{
            "kind": "ServiceAccount",
            "name": grants.service_account(),
            "namespace": grants.namespace,
        }],
    });
    let api = server.api_for(&binding).await.expect("a served kind");
    if api.get_opt(SECRET_READER).await.expect("a read").is_none() {
        server
            .create(&binding)
            .await
            .expect("the binding is created");
    }
}

/// A client authenticated as the ServiceAccount of `grants`.
pub async fn service_account(server: &KubeServer, grants: &Grants) -> Client {
    server
        .service_account_client(&grants.namespace, grants.service_account())
        .await
        .expect("a service-account client")
}

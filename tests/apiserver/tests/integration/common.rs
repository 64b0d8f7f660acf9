//! Shared helpers: server start, the `Widget` test kind and its CRD, time limits.

use std::future::Future;
use std::time::Duration;

use inproc_apiserver::{ApiServer, ServerConfig};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResource;
use kube::api::{Api, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The result type of the tests.
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The Widget CRD, as a user would apply it.
pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.test
spec:
  group: example.test
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
      subresources:
        status: {}
"#;

/// A namespaced test kind with a status subresource.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "example.test",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd"
)]
pub struct WidgetSpec {
    /// Some size.
    pub size: i32,
    /// An optional color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// The Widget status.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct WidgetStatus {
    /// Whether the widget is ready.
    pub ready: bool,
    /// A message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Installs a test tracing subscriber once (RUST_LOG controls it).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A server with the default configuration.
pub async fn server() -> ApiServer {
    server_with(ServerConfig::default()).await
}

/// A server with `config`.
pub async fn server_with(config: ServerConfig) -> ApiServer {
    init_tracing();
    ApiServer::start_with(config)
        .await
        .expect("the in-process API server starts")
}

/// Creates the Widget CRD through the client and waits until it is established.
pub async fn install_widget_crd(server: &ApiServer) -> Api<Widget> {
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let crd: CustomResourceDefinition =
        serde_yaml_ng::from_str(WIDGET_CRD).expect("the CRD YAML parses");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("the CRD is created");
    within(
        "CRD established",
        await_condition(
            crds,
            "widgets.example.test",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("the CRD watch works");
    Api::namespaced(server.client(), "default")
}

/// A server with the Widget CRD installed, and the Widget API in `default`.
pub async fn widget_server() -> (ApiServer, Api<Widget>) {
    let server = server().await;
    let widgets = install_widget_crd(&server).await;
    (server, widgets)
}

/// A Widget named `name` with `size`.
pub fn widget(name: &str, size: i32) -> Widget {
    Widget::new(name, WidgetSpec { size, color: None })
}

/// Awaits `fut` for at most 10 seconds (only to avoid hanging; no timing is asserted).
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for: {what}"),
    }
}

/// The `kube::Error::Api` status of a failed call.
pub fn api_status<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

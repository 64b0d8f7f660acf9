//! One script of requests run against the real server and the in-process test double
//! (`inproc-apiserver`); the answers are compared on status code, kind, and every field a
//! client reads. Deliberate differences are listed in `tests/apiserver/README.md` and left
//! out of the script: schema validation, garbage collection (no controller manager runs beside
//! the real server here), and 410 Expired (the real server's watch cache serves every version
//! it holds, even one etcd has compacted).

use futures::StreamExt as _;
use inproc_apiserver::ApiServer;
use kube::Client;
use kube::core::WatchEvent;
use kube_harness::crds;
use serde_json::{Value, json};

use crate::common::{server, within};

/// What a client reads of one answer.
type Observation = (String, Value);

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const CAPTCLUSTERS: &str =
    "/apis/infrastructure.cluster.x-k8s.io/v1beta1/namespaces/default/captclusters";

/// The fields a client reads of an object, a list, or a `Status`.
fn read(answer: Result<Value, kube::Error>) -> Value {
    let object = match answer {
        Err(kube::Error::Api(status)) => {
            return json!({"code": status.code, "reason": status.reason,
                "details": status.details.map(|d| json!({"name": d.name, "kind": d.kind}))});
        }
        Err(e) => return json!({"transport error": e.to_string()}),
        Ok(object) => object,
    };
    if let Some(items) = object["items"].as_array() {
        let names: Vec<&Value> = items.iter().map(|i| &i["metadata"]["name"]).collect();
        return json!({"code": 200, "kind": object["kind"], "items": names,
            "resourceVersion set": object["metadata"]["resourceVersion"].is_string()});
    }
    let metadata = &object["metadata"];
    json!({
        "code": 200,
        "kind": object["kind"],
        "apiVersion": object["apiVersion"],
        "name": metadata["name"],
        "namespace": metadata["namespace"],
        "labels": metadata["labels"],
        "uid set": metadata["uid"].is_string(),
        "resourceVersion set": metadata["resourceVersion"].is_string(),
        "generation": if object["kind"] == "ConfigMap" { Value::Null } else { metadata["generation"].clone() },
        "data": object["data"],
        "spec": object["spec"],
        "status": object["status"],
    })
}

async fn call(client: &Client, method: &str, path: &str, body: Option<Value>) -> Value {
    let content_type = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
        .expect("a request");
    read(client.request::<Value>(request).await)
}

/// The events of a watch on `query` until it ends (`timeoutSeconds` in the query), as
/// `TYPE name`; periodic bookmarks (which only carry a resourceVersion) are left out, the
/// bookmark that ends a streaming list's initial events is kept.
async fn watch(client: &Client, query: &str) -> Value {
    let request = http::Request::get(format!("{CONFIGMAPS}?watch=true&{query}"))
        .body(Vec::new())
        .expect("a request");
    let stream = match client.request_events::<Value>(request).await {
        Ok(stream) => stream,
        Err(e) => return read(Err(e)),
    };
    let events: Vec<String> = within("the watch to end", stream.collect::<Vec<_>>())
        .await
        .into_iter()
        .filter_map(|event| match event {
            Ok(WatchEvent::Added(o)) => Some(format!("ADDED {}", o["metadata"]["name"])),
            Ok(WatchEvent::Modified(o)) => Some(format!("MODIFIED {}", o["metadata"]["name"])),
            Ok(WatchEvent::Deleted(o)) => Some(format!("DELETED {}", o["metadata"]["name"])),
            Ok(WatchEvent::Bookmark(b)) => b
                .metadata
                .annotations
                .get("k8s.io/initial-events-end")
                .map(|end| format!("BOOKMARK initial-events-end={end}")),
            Ok(WatchEvent::Error(s)) => Some(format!("ERROR {} {}", s.code, s.reason)),
            Err(e) => Some(format!("stream error {e}")),
        })
        .collect();
    json!(events)
}

/// One request of the script: its name, method, path and body.
type Request = (&'static str, &'static str, String, Option<Value>);

/// Runs `requests`, recording each answer under its name in `seen`.
async fn run(client: &Client, requests: Vec<Request>, seen: &mut Vec<Observation>) {
    for (name, method, path, body) in requests {
        seen.push((name.to_owned(), call(client, method, &path, body).await));
    }
}

/// The `metadata.resourceVersion` of the object at `path`.
async fn resource_version(client: &Client, path: &str) -> String {
    let request = http::Request::get(path)
        .body(Vec::new())
        .expect("a request");
    let object: Value = client.request(request).await.expect("the object exists");
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The script: every answer, under its step's name.
async fn script(client: &Client) -> Vec<Observation> {
    let mut seen = Vec::new();
    let cm = |name: &str, app: &str| {
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": app}}, "data": {"k": "v"}}))
    };
    let a = format!("{CONFIGMAPS}/cm-a");
    let list = |query: &str| format!("{CONFIGMAPS}?{query}");
    #[rustfmt::skip]
    run(client, vec![
        ("create", "POST", CONFIGMAPS.into(), cm("cm-a", "x")),
        ("create again: 409 AlreadyExists", "POST", CONFIGMAPS.into(), cm("cm-a", "x")),
        ("invalid name: 422 Invalid", "POST", CONFIGMAPS.into(), cm("Not_A_Name", "x")),
        ("get", "GET", a.clone(), None),
        ("get missing: 404 NotFound", "GET", format!("{CONFIGMAPS}/nope"), None),
        ("create another", "POST", CONFIGMAPS.into(), cm("cm-b", "y")),
        ("list by label", "GET", list("labelSelector=app%3Dx"), None),
        ("list by set label", "GET", list("labelSelector=app+in+%28x%2Cy%29"), None),
        ("list by field", "GET", list("fieldSelector=metadata.name%3Dcm-b"), None),
        ("bad selector: 400", "GET", list("labelSelector=%3D%3D"), None),
    ], &mut seen).await;

    let first = resource_version(client, &a).await;
    let patch =
        |data: &str| Some(json!({"metadata": {"resourceVersion": first}, "data": {"k": data}}));
    let capt = json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster",
        "metadata": {"name": "c"}, "status": {"ready": true},
        "spec": {"region": "r", "vpcTemplateRef": {"name": "t", "namespace": "default"}}});
    #[rustfmt::skip]
    run(client, vec![
        ("merge patch, current resourceVersion", "PATCH", a.clone(), patch("w")),
        ("merge patch, stale resourceVersion: 409 Conflict", "PATCH", a.clone(), patch("z")),
        ("patch missing: 404", "PATCH", format!("{CONFIGMAPS}/nope"), patch("z")),
        ("create a custom resource (status dropped)", "POST", CAPTCLUSTERS.into(), Some(capt)),
    ], &mut seen).await;

    let c = format!("{CAPTCLUSTERS}/c");
    let rv = resource_version(client, &c).await;
    let status = Some(json!({"metadata": {"resourceVersion": rv},
        "status": {"ready": false, "vpcId": "vpc-1"}}));
    let spec = Some(json!({"spec": {"region": "s"}, "status": {"ready": true}}));
    #[rustfmt::skip]
    run(client, vec![
        ("status patch, current resourceVersion", "PATCH", format!("{c}/status"), status.clone()),
        ("status patch, stale resourceVersion: 409", "PATCH", format!("{c}/status"), status.clone()),
        ("main patch keeps status, bumps generation", "PATCH", c.clone(), spec),
        ("status of a missing object: 404", "PATCH", format!("{CAPTCLUSTERS}/nope/status"), status),
    ], &mut seen).await;

    let from = format!("resourceVersion={first}&allowWatchBookmarks=true&timeoutSeconds=2");
    seen.push((
        "watch from a resourceVersion".into(),
        watch(client, &from).await,
    ));
    let streaming = "sendInitialEvents=true&resourceVersionMatch=NotOlderThan\
        &allowWatchBookmarks=true&labelSelector=app%3Dx&timeoutSeconds=2";
    seen.push(("streaming list".into(), watch(client, streaming).await));
    #[rustfmt::skip]
    run(client, vec![
        ("delete", "DELETE", format!("{CONFIGMAPS}/cm-b"), None),
        ("delete missing: 404", "DELETE", format!("{CONFIGMAPS}/cm-b"), None),
    ], &mut seen).await;
    seen
}

#[tokio::test]
async fn the_test_double_answers_the_script_like_the_real_server() {
    let real = server().await;
    let double = ApiServer::start().await.expect("the double starts");
    let definitions = crds::capt().expect("the CAPT CRDs");
    capt_host_operator::manifests::create(&double.client(), &definitions)
        .await
        .expect("the double takes the CRDs");

    let expected = script(&real.client()).await;
    let actual = script(&double.client()).await;
    assert_eq!(expected.len(), actual.len());
    let differences: Vec<String> = expected
        .iter()
        .zip(&actual)
        .filter(|(r, d)| r != d)
        .map(|((step, real), (_, double))| format!("{step}:\n  real:   {real}\n  double: {double}"))
        .collect();
    assert!(
        differences.is_empty(),
        "the double differs from the real server:\n{}",
        differences.join("\n")
    );
}

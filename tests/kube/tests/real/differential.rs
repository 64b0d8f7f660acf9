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

fn rv(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The script. Each step's answer is recorded under its name.
async fn script(client: &Client) -> Vec<Observation> {
    let client = client.clone();
    let raw = |path: String| {
        let client = client.clone();
        async move {
            let request = http::Request::get(path)
                .body(Vec::new())
                .expect("a request");
            client.request::<Value>(request).await.unwrap_or_default()
        }
    };
    let mut seen = Vec::new();
    let mut note = |name: &str, value: Value| seen.push((name.to_owned(), value));
    let cm = |name: &str, app: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": app}}, "data": {"k": "v"}})
    };

    note(
        "create",
        call(&client, "POST", CONFIGMAPS, Some(cm("cm-a", "x"))).await,
    );
    let created = raw(format!("{CONFIGMAPS}/cm-a")).await;
    let first_rv = rv(&created);
    note(
        "create again: 409 AlreadyExists",
        call(&client, "POST", CONFIGMAPS, Some(cm("cm-a", "x"))).await,
    );
    note(
        "invalid name: 422 Invalid",
        call(&client, "POST", CONFIGMAPS, Some(cm("Not_A_Name", "x"))).await,
    );
    note(
        "get",
        call(&client, "GET", &format!("{CONFIGMAPS}/cm-a"), None).await,
    );
    note(
        "get missing: 404 NotFound",
        call(&client, "GET", &format!("{CONFIGMAPS}/nope"), None).await,
    );
    note(
        "create another",
        call(&client, "POST", CONFIGMAPS, Some(cm("cm-b", "y"))).await,
    );
    note(
        "list by label",
        call(
            &client,
            "GET",
            &format!("{CONFIGMAPS}?labelSelector=app%3Dx"),
            None,
        )
        .await,
    );
    note(
        "list by set label",
        call(
            &client,
            "GET",
            &format!("{CONFIGMAPS}?labelSelector=app+in+%28x%2Cy%29"),
            None,
        )
        .await,
    );
    note(
        "list by field",
        call(
            &client,
            "GET",
            &format!("{CONFIGMAPS}?fieldSelector=metadata.name%3Dcm-b"),
            None,
        )
        .await,
    );
    note(
        "bad selector: 400",
        call(
            &client,
            "GET",
            &format!("{CONFIGMAPS}?labelSelector=%3D%3D"),
            None,
        )
        .await,
    );
    let patch =
        |data: &str, rv: &str| json!({"metadata": {"resourceVersion": rv}, "data": {"k": data}});
    note(
        "merge patch, current resourceVersion",
        call(
            &client,
            "PATCH",
            &format!("{CONFIGMAPS}/cm-a"),
            Some(patch("w", &first_rv)),
        )
        .await,
    );
    note(
        "merge patch, stale resourceVersion: 409 Conflict",
        call(
            &client,
            "PATCH",
            &format!("{CONFIGMAPS}/cm-a"),
            Some(patch("z", &first_rv)),
        )
        .await,
    );
    note(
        "patch missing: 404",
        call(
            &client,
            "PATCH",
            &format!("{CONFIGMAPS}/nope"),
            Some(patch("z", &first_rv)),
        )
        .await,
    );

    let capt = json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster",
        "metadata": {"name": "c"}, "spec": {"region": "r", "vpcTemplateRef": {"name": "t", "namespace": "default"}},
        "status": {"ready": true}});
    note(
        "create a custom resource (status dropped)",
        call(&client, "POST", CAPTCLUSTERS, Some(capt)).await,
    );
    let object = raw(format!("{CAPTCLUSTERS}/c")).await;
    let capt_rv = rv(&object);
    let status = |rv: &str| json!({"metadata": {"resourceVersion": rv}, "status": {"ready": false, "vpcId": "vpc-1"}});
    note(
        "status patch, current resourceVersion",
        call(
            &client,
            "PATCH",
            &format!("{CAPTCLUSTERS}/c/status"),
            Some(status(&capt_rv)),
        )
        .await,
    );
    note(
        "status patch, stale resourceVersion: 409",
        call(
            &client,
            "PATCH",
            &format!("{CAPTCLUSTERS}/c/status"),
            Some(status(&capt_rv)),
        )
        .await,
    );
    note(
        "main patch keeps status, bumps generation",
        call(
            &client,
            "PATCH",
            &format!("{CAPTCLUSTERS}/c"),
            Some(json!({"spec": {"region": "s"}, "status": {"ready": true}})),
        )
        .await,
    );
    note(
        "status of a missing object: 404",
        call(
            &client,
            "PATCH",
            &format!("{CAPTCLUSTERS}/nope/status"),
            Some(status(&capt_rv)),
        )
        .await,
    );

    note(
        "watch from a resourceVersion",
        watch(
            &client,
            &format!("resourceVersion={first_rv}&allowWatchBookmarks=true&timeoutSeconds=2"),
        )
        .await,
    );
    note("streaming list", watch(&client, "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=app%3Dx&timeoutSeconds=2").await);
    note(
        "delete",
        call(&client, "DELETE", &format!("{CONFIGMAPS}/cm-b"), None).await,
    );
    note(
        "delete missing: 404",
        call(&client, "DELETE", &format!("{CONFIGMAPS}/cm-b"), None).await,
    );
    seen
}

#[tokio::test]
async fn the_test_double_answers_the_script_like_the_real_server() {
    let real = server().await;
    let double = ApiServer::start().await.expect("the double starts");
    let definitions = crds::capt().expect("the CAPT CRDs");
    capt_host::manifests::create(&double.client(), &definitions)
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

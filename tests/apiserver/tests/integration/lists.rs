//! Lists: label and field selectors, namespaces, cluster scope, pagination.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::core::ObjectMeta;

use crate::common::{TestResult, api_status, server};

async fn seed(client: &kube::Client) -> TestResult {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("other".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let items = [
        ("default", "web-1", Some("web"), Some("prod")),
        ("default", "web-2", Some("web"), Some("dev")),
        ("default", "db-1", Some("db"), Some("prod")),
        ("default", "plain", None, None),
        ("other", "web-3", Some("web"), Some("prod")),
    ];
    for (ns, name, app, env) in items {
        let mut labels = BTreeMap::new();
        if let Some(app) = app {
            labels.insert("app".to_string(), app.to_string());
        }
        if let Some(env) = env {
            labels.insert("env".to_string(), env.to_string());
        }
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        api.create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some(labels),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}

async fn names(api: &Api<ConfigMap>, lp: &ListParams) -> Vec<String> {
    let mut names: Vec<String> = api
        .list(lp)
        .await
        .expect("list works")
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn label_selectors() -> TestResult {
    let server = server().await;
    let client = server.client();
    seed(&client).await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let lp = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(&api, &lp("app=web")).await, ["web-1", "web-2"]);
    assert_eq!(names(&api, &lp("app==web,env=prod")).await, ["web-1"]);
    assert_eq!(names(&api, &lp("app!=web")).await, ["db-1", "plain"]);
    assert_eq!(
        names(&api, &lp("env in (prod,dev)")).await,
        ["db-1", "web-1", "web-2"]
    );
    assert_eq!(
        names(&api, &lp("env notin (prod)")).await,
        ["plain", "web-2"]
    );
    assert_eq!(names(&api, &lp("app")).await, ["db-1", "web-1", "web-2"]);
    assert_eq!(names(&api, &lp("!app")).await, ["plain"]);
    let status = api_status(api.list(&lp("app in ()")).await);
    assert_eq!(status.code, 400);

    let all: Api<ConfigMap> = Api::all(client.clone());
    assert_eq!(
        names(&all, &lp("app=web")).await,
        ["web-1", "web-2", "web-3"]
    );
    Ok(())
}

#[tokio::test]
async fn field_selectors_and_scopes() -> TestResult {
    let server = server().await;
    let client = server.client();
    seed(&client).await?;
    let all: Api<ConfigMap> = Api::all(client.clone());
    let lp = |s: &str| ListParams::default().fields(s);
    assert_eq!(names(&all, &lp("metadata.name=web-3")).await, ["web-3"]);
    assert_eq!(
        names(&all, &lp("metadata.namespace=other")).await,
        ["web-3"]
    );
    assert_eq!(
        names(&all, &lp("metadata.namespace!=other,metadata.name!=plain")).await,
        ["db-1", "web-1", "web-2"]
    );
    assert_eq!(
        names(&all, &lp("metadata.namespace==default").labels("env=prod")).await,
        ["db-1", "web-1"]
    );

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns_names: Vec<String> = namespaces
        .list(&ListParams::default().fields("metadata.name!=kube-public"))
        .await?
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert!(ns_names.contains(&"other".to_string()));
    assert!(ns_names.contains(&"default".to_string()));
    assert!(!ns_names.contains(&"kube-public".to_string()));
    Ok(())
}

#[tokio::test]
async fn pagination_with_limit_and_continue() -> TestResult {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for i in 0..7 {
        api.create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some(format!("cm-{i}")),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    }
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(3);
    let mut pages = 0;
    let mut list_rv = None;
    loop {
        let page = api.list(&lp).await?;
        pages += 1;
        assert!(page.items.len() <= 3);
        let rv = page.metadata.resource_version.clone();
        assert!(
            list_rv.is_none() || list_rv == rv,
            "pages share the list resourceVersion"
        );
        list_rv = rv;
        seen.extend(page.items.iter().map(|c| c.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => {
                assert!(page.metadata.remaining_item_count.unwrap_or(0) > 0);
                lp = lp.continue_token(&token);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());

    // A continue token from before the history window is 410 Gone.
    let first = api.list(&ListParams::default().limit(2)).await?;
    let token = first.metadata.continue_.expect("more pages");
    server.faults().expire_watch_history();
    let status = api_status(
        api.list(&ListParams::default().limit(2).continue_token(&token))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    Ok(())
}

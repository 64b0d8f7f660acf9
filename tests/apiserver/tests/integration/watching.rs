//! Watches through `kube::runtime`: watcher, reflector, metadata_watcher, plus raw watch
//! semantics (bookmarks, 410, timeouts).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use inproc_apiserver::ServerConfig;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use crate::common::{TestResult, server, server_with, widget, widget_server, within};

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A short description of a watcher event: ("init"|"init-apply"|"init-done"|"apply"|"delete", name).
fn describe<K: kube::Resource>(ev: &watcher::Event<K>) -> (&'static str, String) {
    match ev {
        watcher::Event::Init => ("init", String::new()),
        watcher::Event::InitApply(o) => ("init-apply", o.name_any()),
        watcher::Event::InitDone => ("init-done", String::new()),
        watcher::Event::Apply(o) => ("apply", o.name_any()),
        watcher::Event::Delete(o) => ("delete", o.name_any()),
    }
}

/// Pulls events (skipping errors) until `pred` matches one.
async fn until<K, S>(
    stream: &mut S,
    what: &str,
    pred: impl Fn(&watcher::Event<K>) -> bool,
) -> watcher::Event<K>
where
    K: kube::Resource,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin,
{
    within(what, async {
        loop {
            match stream.next().await {
                Some(Ok(ev)) if pred(&ev) => return ev,
                Some(_) => {}
                None => panic!("watcher stream ended while waiting for {what}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn watcher_sees_create_update_delete() -> TestResult {
    let (_server, widgets) = widget_server().await;
    widgets
        .create(&PostParams::default(), &widget("before", 1))
        .await?;
    let mut stream = watcher(widgets.clone(), watcher::Config::default()).boxed();
    let ev = until(&mut stream, "initial object", |e| {
        describe(e).0 == "init-apply"
    })
    .await;
    assert_eq!(describe(&ev).1, "before");
    until(&mut stream, "init done", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;

    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await?;
    let ev = until(&mut stream, "create", |e| {
        describe(e) == ("apply", "w".into())
    })
    .await;
    let watcher::Event::Apply(created) = ev else {
        unreachable!()
    };
    assert_eq!(created.spec.size, 1);

    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await?;
    let ev = until(&mut stream, "update", |e| {
        describe(e) == ("apply", "w".into())
    })
    .await;
    let watcher::Event::Apply(updated) = ev else {
        unreachable!()
    };
    assert_eq!(updated.spec.size, 2);
    assert_eq!(updated.metadata.generation, Some(2));

    widgets.delete("w", &DeleteParams::default()).await?;
    until(&mut stream, "delete", |e| {
        describe(e) == ("delete", "w".into())
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn watcher_recovers_from_dropped_watches() -> TestResult {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    until(&mut stream, "init done", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;
    // The watch is open once an event arrives through it.
    api.create(&PostParams::default(), &cm("sentinel", &[]))
        .await?;
    until(&mut stream, "sentinel", |e| {
        describe(e) == ("apply", "sentinel".into())
    })
    .await;

    assert_eq!(server.faults().drop_watches(), 1);
    // Written while no watch is open: replayed from the history on re-watch.
    api.create(&PostParams::default(), &cm("during-gap", &[]))
        .await?;
    until(&mut stream, "event across the gap", |e| {
        describe(e) == ("apply", "during-gap".into())
    })
    .await;

    server.faults().drop_watches();
    api.create(&PostParams::default(), &cm("after-gap", &[]))
        .await?;
    until(&mut stream, "event after the second gap", |e| {
        describe(e) == ("apply", "after-gap".into())
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn watcher_relists_after_410_gone() -> TestResult {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &cm("existing", &[]))
        .await?;
    let stream = watcher(api.clone(), watcher::Config::default());
    let mut stream = std::pin::pin!(stream);
    within("init done", async {
        while !matches!(stream.next().await, Some(Ok(watcher::Event::InitDone))) {}
    })
    .await;
    // The watch is open once an event arrives through it.
    api.create(&PostParams::default(), &cm("sentinel", &[]))
        .await?;
    within("sentinel", async {
        loop {
            if let Some(Ok(watcher::Event::Apply(o))) = stream.next().await
                && o.name_any() == "sentinel"
            {
                break;
            }
        }
    })
    .await;
    assert_eq!(server.open_watches(), 1);

    server.faults().expire_watch_history();
    let err = within("the 410 error", async {
        loop {
            if let Some(Err(err)) = stream.next().await {
                return err;
            }
        }
    })
    .await;
    match err {
        watcher::Error::WatchError(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 watch error, got {other:?}"),
    }
    // The watcher starts over: a fresh list.
    let mut relisted = Vec::new();
    within("re-list", async {
        loop {
            match stream.next().await {
                Some(Ok(watcher::Event::InitApply(o))) => relisted.push(o.name_any()),
                Some(Ok(watcher::Event::InitDone)) => break,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(relisted, ["existing", "sentinel"]);
    api.create(&PostParams::default(), &cm("after", &[]))
        .await?;
    within("event after the re-list", async {
        loop {
            if let Some(Ok(watcher::Event::Apply(o))) = stream.next().await
                && o.name_any() == "after"
            {
                break;
            }
        }
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn reflector_store_converges_through_faults() -> TestResult {
    let server = server_with(ServerConfig::default().with_history_capacity(8)).await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().page_size(2)).default_backoff(),
    );
    let driver = tokio::spawn(stream.for_each(|_| async {}));
    within("store ready", reader.wait_until_ready()).await?;

    for i in 0..6 {
        api.create(
            &PostParams::default(),
            &cm(&format!("c{i}"), &[("i", &i.to_string())]),
        )
        .await?;
    }
    server.faults().drop_watches();
    for i in 0..3 {
        api.patch(
            &format!("c{i}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "changed"}})),
        )
        .await?;
    }
    server.faults().expire_watch_history();
    api.delete("c4", &DeleteParams::default()).await?;
    // More changes than the history keeps, to exercise a too-old resourceVersion too.
    for i in 6..20 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), &[]))
            .await?;
    }
    api.delete("c5", &DeleteParams::default()).await?;

    let expected = |server: &inproc_apiserver::ApiServer| {
        let mut v: Vec<(String, String)> = server
            .store()
            .list::<ConfigMap>(Some("default"))
            .iter()
            .map(|c| (c.name_any(), c.resource_version().unwrap_or_default()))
            .collect();
        v.sort();
        v
    };
    within("the reflector converges", async {
        loop {
            let mut actual: Vec<(String, String)> = reader
                .state()
                .iter()
                .map(|c| (c.name_any(), c.resource_version().unwrap_or_default()))
                .collect();
            actual.sort();
            if actual == expected(&server) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(reader.state().len(), 18);
    driver.abort();
    Ok(())
}

#[tokio::test]
async fn metadata_watcher_and_metadata_reads() -> TestResult {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &cm("m1", &[("a", "b")]))
        .await?;
    let meta = api.get_metadata("m1").await?;
    assert_eq!(
        meta.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("a"))
            .map(String::as_str),
        Some("b")
    );
    let list = api.list_metadata(&Default::default()).await?;
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].name_any(), "m1");

    // The deprecated `metadata_watcher` and its replacement, a watcher on
    // `Api<PartialObjectMeta<K>>`, both send metadata-only requests.
    #[allow(deprecated)]
    let mut stream =
        kube::runtime::metadata_watcher(api.clone(), watcher::Config::default()).boxed();
    let ev = until(&mut stream, "initial metadata", |e| {
        describe(e).0 == "init-apply"
    })
    .await;
    assert_eq!(describe(&ev).1, "m1");
    until(&mut stream, "init done", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;
    api.create(&PostParams::default(), &cm("m2", &[])).await?;
    let ev = until(&mut stream, "metadata of a new object", |e| {
        describe(e).0 == "apply"
    })
    .await;
    assert_eq!(describe(&ev).1, "m2");

    let meta_api: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(server.client(), "default");
    let mut stream = watcher(meta_api, watcher::Config::default()).boxed();
    until(&mut stream, "init done", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;
    api.create(&PostParams::default(), &cm("m3", &[("x", "y")]))
        .await?;
    let ev = until(&mut stream, "metadata of m3", |e| {
        describe(e) == ("apply", "m3".into())
    })
    .await;
    let watcher::Event::Apply(meta) = ev else {
        unreachable!()
    };
    assert_eq!(meta.labels().get("x").map(String::as_str), Some("y"));
    Ok(())
}

#[tokio::test]
async fn streaming_list_watcher() -> TestResult {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &cm("s1", &[])).await?;
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let ev = until(&mut stream, "initial object", |e| {
        describe(e).0 == "init-apply"
    })
    .await;
    assert_eq!(describe(&ev).1, "s1");
    until(&mut stream, "init done", |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;
    api.create(&PostParams::default(), &cm("s2", &[])).await?;
    until(&mut stream, "new object", |e| {
        describe(e) == ("apply", "s2".into())
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn raw_watch_bookmarks_timeouts_selectors_and_gone() -> TestResult {
    let server =
        server_with(ServerConfig::default().with_bookmark_interval(Duration::from_millis(50)))
            .await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let created = api
        .create(&PostParams::default(), &cm("a", &[("app", "web")]))
        .await?;
    let rv = created.resource_version().unwrap();

    // Bookmarks arrive when allowed.
    let wp = WatchParams::default().timeout(5);
    assert!(wp.bookmarks, "bookmarks are requested by default");
    let mut events = api.watch(&wp, &rv).await?.boxed();
    let bookmark = within("a bookmark", async {
        loop {
            if let Some(Ok(WatchEvent::Bookmark(bm))) = events.next().await {
                return bm;
            }
        }
    })
    .await;
    assert!(bookmark.metadata.resource_version.parse::<u64>()? >= rv.parse::<u64>()?);
    drop(events);

    // Objects leaving a label selection are seen as deleted.
    let wp = WatchParams::default().labels("app=web").timeout(5);
    let mut events = api.watch(&wp, &rv).await?.boxed();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await?;
    let ev = within("selector exit", events.try_next()).await?;
    assert!(
        matches!(ev, Some(WatchEvent::Deleted(ref o)) if o.name_any() == "a"),
        "{ev:?}"
    );
    drop(events);

    // The server ends the watch at timeoutSeconds.
    let wp = WatchParams::default().timeout(1);
    let events = api
        .watch(&wp, &server.resource_version().to_string())
        .await?;
    let rest: Vec<_> = within("the watch to time out", events.collect()).await;
    assert!(
        rest.iter()
            .all(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))),
        "only bookmarks on an idle watch: {rest:?}"
    );

    // A resourceVersion older than the history is a 410 ERROR event.
    server.faults().expire_watch_history();
    let mut events = api.watch(&WatchParams::default(), &rv).await?.boxed();
    let ev = within("the 410 event", events.next()).await;
    match ev {
        Some(Ok(WatchEvent::Error(status))) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn watch_without_resource_version_sends_current_state() -> TestResult {
    let server = server().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &cm("x", &[])).await?;
    let mut events = api
        .watch(&WatchParams::default().timeout(5), "0")
        .await?
        .boxed();
    let ev = within("synthetic added", events.try_next()).await?;
    assert!(
        matches!(ev, Some(WatchEvent::Added(ref o)) if o.name_any() == "x"),
        "{ev:?}"
    );
    Ok(())
}

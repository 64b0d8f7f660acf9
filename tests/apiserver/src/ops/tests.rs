//! The operations, on a fresh state per test.

use super::*;

fn state() -> State {
    let widget = ResourceKind::namespaced("example.com", "v1", "Widget", "widgets").with_status();
    State::new(vec![widget], 1000, &["default".to_string()], true).unwrap()
}

/// A merge patch of the object `name` of `default`, by the default manager.
fn merge(
    s: &mut State,
    kind: &ResourceKind,
    name: &str,
    body: &[u8],
) -> Result<(Value, bool), ApiError> {
    let part = Part::Object;
    s.patch(
        kind,
        "default",
        name,
        PatchType::Merge,
        body,
        part,
        &Write::default(),
    )
}

fn widget(state: &State) -> ResourceKind {
    state
        .registry
        .find("example.com", "v1", "widgets")
        .unwrap()
        .clone()
}

fn kind(state: &State, group: &str, plural: &str) -> ResourceKind {
    let version = "v1";
    state.registry.find(group, version, plural).unwrap().clone()
}

#[test]
fn create_sets_metadata_and_drops_status() {
    let mut s = state();
    let w = widget(&s);
    let obj = s
        .create(
            &w,
            "default",
            json!({"metadata": {"name": "a", "uid": "x"}, "spec": {"n": 1}, "status": {"ok": true}}), &Write::default())
        .unwrap();
    assert_eq!(obj["apiVersion"], "example.com/v1");
    assert_eq!(obj["kind"], "Widget");
    assert_eq!(obj["metadata"]["generation"], 1);
    assert_eq!(obj["metadata"]["namespace"], "default");
    assert_ne!(obj["metadata"]["uid"], "x");
    assert!(obj.get("status").is_none());
    let err = s
        .create(
            &w,
            "default",
            json!({"metadata": {"name": "a"}}),
            &Write::default(),
        )
        .unwrap_err();
    assert_eq!(err.reason, Reason::AlreadyExists);
    let err = s
        .create(&w, "default", json!({"metadata": {}}), &Write::default())
        .unwrap_err();
    assert_eq!(err.code, 422);
    let err = s
        .create(
            &w,
            "missing",
            json!({"metadata": {"name": "b"}}),
            &Write::default(),
        )
        .unwrap_err();
    assert_eq!(err.code, 404);
    let gen_named = s
        .create(
            &w,
            "default",
            json!({"metadata": {"generateName": "w-"}}),
            &Write::default(),
        )
        .unwrap();
    assert!(
        gen_named["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("w-")
    );
}

#[test]
fn invalid_labels_are_rejected() {
    let mut s = state();
    let cm = kind(&s, "", "configmaps");
    let err = s
        .create(
            &cm,
            "default",
            json!({"metadata": {"name": "a", "labels": {"k": "bad value"}}}),
            &Write::default(),
        )
        .unwrap_err();
    assert_eq!(err.code, 422);
    let err = s
        .create(
            &cm,
            "default",
            json!({"metadata": {"name": "a", "labels": {"-k": "v"}}}),
            &Write::default(),
        )
        .unwrap_err();
    assert_eq!(err.code, 422);
    s.create(
        &cm,
        "default",
        json!({"metadata": {"name": "a", "labels": {"example.com/k": ""}}}),
        &Write::default(),
    )
    .unwrap();
    let err = merge(&mut s, &cm, "a", br#"{"metadata":{"labels":{"k":5}}}"#).unwrap_err();
    assert_eq!(err.code, 422);
}

#[test]
fn dry_run_create_does_not_persist() {
    let mut s = state();
    let w = widget(&s);
    let rv = s.store.current_rv();
    s.create(
        &w,
        "default",
        json!({"metadata": {"name": "a"}}),
        &Write::dry(),
    )
    .unwrap();
    assert_eq!(s.store.current_rv(), rv);
    assert!(s.get(&w, "default", "a").is_err());
}

#[test]
fn status_isolation_and_generation() {
    let mut s = state();
    let w = widget(&s);
    s.create(
        &w,
        "default",
        json!({"metadata": {"name": "a"}, "spec": {"n": 1}}),
        &Write::default(),
    )
    .unwrap();
    let (obj, _) = merge(&mut s, &w, "a", br#"{"status": {"ok": true}}"#).unwrap();
    assert!(obj.get("status").is_none());
    let (obj, _) = s
        .patch(
            &w,
            "default",
            "a",
            PatchType::Merge,
            br#"{"status": {"ok": true}, "spec": {"n": 5}}"#,
            Part::Status,
            &Write::default(),
        )
        .unwrap();
    assert_eq!(obj["status"]["ok"], true);
    assert_eq!(obj["spec"]["n"], 1);
    assert_eq!(obj["metadata"]["generation"], 1);
    let (obj, _) = merge(&mut s, &w, "a", br#"{"spec": {"n": 2}}"#).unwrap();
    assert_eq!(obj["metadata"]["generation"], 2);
    assert_eq!(obj["status"]["ok"], true);
    let (obj, _) = merge(&mut s, &w, "a", br#"{"metadata": {"labels": {"a": "b"}}}"#).unwrap();
    assert_eq!(obj["metadata"]["generation"], 2);
}

#[test]
fn noop_patch_keeps_resource_version() {
    let mut s = state();
    let w = widget(&s);
    let created = s
        .create(
            &w,
            "default",
            json!({"metadata": {"name": "a"}, "spec": {"n": 1}}),
            &Write::default(),
        )
        .unwrap();
    let (obj, _) = merge(&mut s, &w, "a", br#"{"spec": {"n": 1}}"#).unwrap();
    assert_eq!(
        obj["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
}

#[test]
fn custom_resources_require_a_resource_version_on_update() {
    let mut s = state();
    let w = widget(&s);
    s.create(
        &w,
        "default",
        json!({"metadata": {"name": "a"}}),
        &Write::default(),
    )
    .unwrap();
    let body = json!({"metadata": {"name": "a"}, "spec": {"n": 2}});
    let err = s
        .update(&w, "default", "a", body, Part::Object, &Write::default())
        .unwrap_err();
    assert_eq!(err.code, 422);
    let cm = kind(&s, "", "configmaps");
    s.create(
        &cm,
        "default",
        json!({"metadata": {"name": "c"}}),
        &Write::default(),
    )
    .unwrap();
    let body = json!({"metadata": {"name": "c"}, "data": {"k": "v"}});
    s.update(&cm, "default", "c", body, Part::Object, &Write::default())
        .unwrap();
}

#[test]
fn stale_resource_version_conflicts() {
    let mut s = state();
    let w = widget(&s);
    let created = s
        .create(
            &w,
            "default",
            json!({"metadata": {"name": "a"}, "spec": {"n": 1}}),
            &Write::default(),
        )
        .unwrap();
    merge(&mut s, &w, "a", br#"{"spec": {"n": 2}}"#).unwrap();
    let err = s
        .update(
            &w,
            "default",
            "a",
            created.clone(),
            Part::Object,
            &Write::default(),
        )
        .unwrap_err();
    assert_eq!(err.reason, Reason::Conflict);
    let body = format!(
        r#"{{"metadata": {{"resourceVersion": "{}"}}, "spec": {{"n": 3}}}}"#,
        created["metadata"]["resourceVersion"].as_str().unwrap()
    );
    let err = merge(&mut s, &w, "a", body.as_bytes()).unwrap_err();
    assert_eq!(err.code, 409);
}

#[test]
fn finalizers_delay_deletion() {
    let mut s = state();
    let w = widget(&s);
    s.create(
        &w,
        "default",
        json!({"metadata": {"name": "a", "finalizers": ["x/y"]}}),
        &Write::default(),
    )
    .unwrap();
    let Deleted::Pending(obj) = s
        .delete(&w, "default", "a", &DeleteOptions::default())
        .unwrap()
    else {
        panic!("expected pending deletion");
    };
    assert!(obj["metadata"]["deletionTimestamp"].is_string());
    let err = merge(
        &mut s,
        &w,
        "a",
        br#"{"metadata": {"finalizers": ["x/y", "z"]}}"#,
    )
    .unwrap_err();
    assert_eq!(err.code, 422);
    merge(&mut s, &w, "a", br#"{"metadata": {"finalizers": null}}"#).unwrap();
    assert!(s.get(&w, "default", "a").is_err());
}

#[test]
fn owner_references_cascade() {
    let mut s = state();
    let w = widget(&s);
    let cm = kind(&s, "", "configmaps");
    let owner = s
        .create(
            &w,
            "default",
            json!({"metadata": {"name": "o"}}),
            &Write::default(),
        )
        .unwrap();
    let uid = owner["metadata"]["uid"].clone();
    s.create(
        &cm,
        "default",
        json!({"metadata": {"name": "dep", "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Widget", "name": "o", "uid": uid}]}}), &Write::default())
    .unwrap();
    s.delete(&w, "default", "o", &DeleteOptions::default())
        .unwrap();
    assert!(s.get(&cm, "default", "dep").is_err());
}

#[test]
fn namespace_deletion_removes_content() {
    let mut s = state();
    let ns = kind(&s, "", "namespaces");
    let cm = kind(&s, "", "configmaps");
    s.create(
        &ns,
        "",
        json!({"metadata": {"name": "t"}}),
        &Write::default(),
    )
    .unwrap();
    s.create(
        &cm,
        "t",
        json!({"metadata": {"name": "c", "finalizers": ["f"]}}),
        &Write::default(),
    )
    .unwrap();
    let Deleted::Pending(obj) = s.delete(&ns, "", "t", &DeleteOptions::default()).unwrap() else {
        panic!("expected a terminating namespace");
    };
    assert_eq!(obj["status"]["phase"], "Terminating");
    let err = s
        .create(
            &cm,
            "t",
            json!({"metadata": {"name": "d"}}),
            &Write::default(),
        )
        .unwrap_err();
    assert_eq!(err.code, 403);
    s.patch(
        &cm,
        "t",
        "c",
        PatchType::Merge,
        br#"{"metadata": {"finalizers": []}}"#,
        Part::Object,
        &Write::default(),
    )
    .unwrap();
    assert!(s.get(&ns, "", "t").is_err());
}

#[test]
fn pagination_and_expired_continue() {
    let mut s = state();
    let cm = kind(&s, "", "configmaps");
    for i in 0..5 {
        s.create(
            &cm,
            "default",
            json!({"metadata": {"name": format!("c{i}")}}),
            &Write::default(),
        )
        .unwrap();
    }
    let mut opts = ListOptions {
        limit: Some(2),
        ..Default::default()
    };
    let page = s.list(&cm, Some("default"), &opts).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["metadata"]["remainingItemCount"], 3);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    opts.continue_token = Some(token.clone());
    let page2 = s.list(&cm, Some("default"), &opts).unwrap();
    assert_eq!(page2["items"][0]["metadata"]["name"], "c2");
    assert_eq!(
        page2["metadata"]["resourceVersion"],
        page["metadata"]["resourceVersion"]
    );
    s.store.expire_history();
    let err = s.list(&cm, Some("default"), &opts).unwrap_err();
    assert_eq!(err.code, 410);
    opts.continue_token = Some("zz".to_string());
    assert_eq!(s.list(&cm, Some("default"), &opts).unwrap_err().code, 400);
}

#[test]
fn crd_registers_and_unregisters_kinds() {
    let mut s = state();
    let crd_kind = kind(&s, "apiextensions.k8s.io", "customresourcedefinitions");
    let crd = json!({
        "metadata": {"name": "gadgets.example.org"},
        "spec": {"group": "example.org", "scope": "Cluster",
            "names": {"plural": "gadgets", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true}]}
    });
    let created = s.create(&crd_kind, "", crd, &Write::default()).unwrap();
    assert_eq!(created["status"]["conditions"][1]["type"], "Established");
    let gadget = kind(&s, "example.org", "gadgets");
    assert!(!gadget.namespaced);
    s.create(
        &gadget,
        "",
        json!({"metadata": {"name": "g"}}),
        &Write::default(),
    )
    .unwrap();
    s.delete(
        &crd_kind,
        "",
        "gadgets.example.org",
        &DeleteOptions::default(),
    )
    .unwrap();
    assert!(s.registry.find("example.org", "v1", "gadgets").is_none());
    assert!(s.store.get(&gadget.storage, "", "g").is_none());
}

#[test]
fn apply_conflicts_with_other_managers_unless_forced() {
    let mut s = state();
    let w = widget(&s);
    let apply =
        |size: i64| format!("apiVersion: example.com/v1\nkind: Widget\nspec:\n  size: {size}\n");
    let patch = |s: &mut State, body: String, write: Write| {
        s.patch(
            &w,
            "default",
            "a",
            PatchType::Apply,
            body.as_bytes(),
            Part::Object,
            &write,
        )
    };
    patch(&mut s, apply(1), Write::by("a")).unwrap();
    // The same value from another manager shares the field.
    patch(&mut s, apply(1), Write::by("b")).unwrap();
    let err = patch(&mut s, apply(2), Write::by("b")).unwrap_err();
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("conflict with \"a\""),
        "{}",
        err.message
    );
    assert!(err.message.contains(".spec.size"), "{}", err.message);
    let forced = Write {
        force: true,
        ..Write::by("b")
    };
    patch(&mut s, apply(2), forced).unwrap();
    let err = patch(&mut s, apply(3), Write::by("a")).unwrap_err();
    assert_eq!(err.code, 409);
    // A non-apply write takes the fields it changes.
    s.patch(
        &w,
        "default",
        "a",
        PatchType::Merge,
        br#"{"spec":{"size":4}}"#,
        Part::Object,
        &Write::by("c"),
    )
    .unwrap();
    let err = patch(&mut s, apply(5), Write::by("b")).unwrap_err();
    assert!(
        err.message.contains("conflict with \"c\""),
        "{}",
        err.message
    );
    // Deleting the object forgets its managers.
    s.delete(&w, "default", "a", &DeleteOptions::default())
        .unwrap();
    patch(&mut s, apply(6), Write::by("b")).unwrap();
    patch(&mut s, apply(7), Write::by("b")).unwrap();
}

#[test]
fn apply_creates_and_strategic_is_rejected_for_custom_kinds() {
    let mut s = state();
    let w = widget(&s);
    let (obj, created) = s
        .patch(
            &w,
            "default",
            "a",
            PatchType::Apply,
            b"apiVersion: example.com/v1\nkind: Widget\nspec:\n  n: 1\n",
            Part::Object,
            &Write::default(),
        )
        .unwrap();
    assert!(created);
    assert_eq!(obj["spec"]["n"], 1);
    let err = s
        .patch(
            &w,
            "default",
            "a",
            PatchType::Apply,
            b"spec:\n  n: 1\n",
            Part::Object,
            &Write::default(),
        )
        .unwrap_err();
    assert_eq!(err.code, 400);
    let err = s
        .patch(
            &w,
            "default",
            "a",
            PatchType::Strategic,
            b"{}",
            Part::Object,
            &Write::default(),
        )
        .unwrap_err();
    assert_eq!(err.code, 415);
    let err = s
        .patch(
            &w,
            "default",
            "zz",
            PatchType::Merge,
            b"{}",
            Part::Object,
            &Write::default(),
        )
        .unwrap_err();
    assert_eq!(err.code, 404);
}

//! # policy-fixtures: deliberately bad or different builds of the capt-status policy
//!
//! Test fixtures for hosts: every cargo feature of this crate is one [`Variant`], and a wasm
//! build enables exactly one of them, so each build yields one component. Every variant wraps
//! the real policy (the `capt-status` crate, linked without its own component glue): the
//! component glue (`component.rs`, through `capt_policy::export_policy!`) calls [`metadata`]
//! and [`reconcile`] here, which run the real logic with the variant's change around it.
//!
//! The artifacts crate (`artifacts/`, package `policy-fixture-artifacts`) builds every variant
//! and hands tests their paths; `README.md` says what each is for and how to add one. Built
//! natively (normally with no feature) this is an ordinary library, for unit tests.

use std::hint::black_box;

use capt_policy::{Error, Metadata, Request, Response, Subresource};
use serde_json::Value;

#[cfg(target_arch = "wasm32")]
mod component;

/// One fixture variant, i.e. one cargo feature of this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `v2`: the real logic with version [`V2_VERSION`], and [`V2_SUFFIX`] after the message of
    /// every Ready condition with status True that a status patch writes. Passes the scenario
    /// suite; a host can tell its writes apart.
    V2,
    /// `wrong`: the real logic with `status.ready: true` written as `false` in status patches.
    /// Loads fine, fails the scenario suite.
    Wrong,
    /// `loop`: `metadata()` answers; `reconcile()` never returns.
    Loop,
    /// `alloc`: `reconcile()` allocates 1 MiB blocks until the allocator gives up.
    Alloc,
    /// `panic`: `reconcile()` panics with [`PANIC_MESSAGE`] (logged first, like the real guest).
    Panic,
    /// `wasi`: `reconcile()` reads an environment variable. Built for `wasm32-wasip2`, the
    /// component imports `wasi:*` interfaces, which a policy may not.
    Wasi,
    /// `old-world`: the real policy, exporting the contract as `capt:policy@0.2.0`
    /// (`wit-0.2/policy.wit`), a version capt-host does not speak.
    OldWorld,
    /// `live-fail`: the real policy, except for a trigger annotated [`FAIL_LIVE_ANNOTATION`]:
    /// `panic` panics, `loop` never returns, `alloc` exhausts memory, any other value fails
    /// with an internal error ([`LIVE_FAIL_MESSAGE`]). No scenario sets the annotation, so it
    /// passes the scenario suite (a canary) and fails live reconciles (a rollback).
    LiveFail,
}

impl Variant {
    /// Every variant, in the order of the features in `Cargo.toml`.
    pub const ALL: [Variant; 8] = [
        Variant::V2,
        Variant::Wrong,
        Variant::Loop,
        Variant::Alloc,
        Variant::Panic,
        Variant::Wasi,
        Variant::OldWorld,
        Variant::LiveFail,
    ];

    /// The cargo feature that selects this variant.
    pub const fn feature(self) -> &'static str {
        match self {
            Variant::V2 => "v2",
            Variant::Wrong => "wrong",
            Variant::Loop => "loop",
            Variant::Alloc => "alloc",
            Variant::Panic => "panic",
            Variant::Wasi => "wasi",
            Variant::OldWorld => "old-world",
            Variant::LiveFail => "live-fail",
        }
    }
}

/// The variant this build enables; `None` when no variant feature is on (a native build).
pub const ENABLED: Option<Variant> = if cfg!(feature = "v2") {
    Some(Variant::V2)
} else if cfg!(feature = "wrong") {
    Some(Variant::Wrong)
} else if cfg!(feature = "loop") {
    Some(Variant::Loop)
} else if cfg!(feature = "alloc") {
    Some(Variant::Alloc)
} else if cfg!(feature = "panic") {
    Some(Variant::Panic)
} else if cfg!(feature = "wasi") {
    Some(Variant::Wasi)
} else if cfg!(feature = "old-world") {
    Some(Variant::OldWorld)
} else if cfg!(feature = "live-fail") {
    Some(Variant::LiveFail)
} else {
    None
};

/// A component is one variant: a wasm build must enable exactly one feature.
#[cfg(target_arch = "wasm32")]
const _: () = assert!(
    cfg!(feature = "v2") as usize
        + cfg!(feature = "wrong") as usize
        + cfg!(feature = "loop") as usize
        + cfg!(feature = "alloc") as usize
        + cfg!(feature = "panic") as usize
        + cfg!(feature = "wasi") as usize
        + cfg!(feature = "old-world") as usize
        + cfg!(feature = "live-fail") as usize
        == 1,
    "build policy-fixtures for wasm32 with exactly one variant feature \
     (v2, wrong, loop, alloc, panic, wasi, old-world, live-fail)"
);

/// The policy version the `v2` variant reports.
pub const V2_VERSION: &str = "0.2.0-fixture";
/// What the `v2` variant appends to the message of a Ready condition with status True.
pub const V2_SUFFIX: &str = " (policy v2)";
/// The `panic` variant's panic message.
pub const PANIC_MESSAGE: &str = "policy-fixtures: deliberate panic in reconcile (panic fixture)";

/// The annotation that makes the `live-fail` variant fail a trigger: `panic`, `loop`, `alloc`,
/// or any other value for an internal error.
pub const FAIL_LIVE_ANNOTATION: &str = "policy-fixtures/fail-live";
/// The message of the `live-fail` variant's internal error.
pub const LIVE_FAIL_MESSAGE: &str =
    "policy-fixtures: live failure requested by the trigger's annotation (live-fail fixture)";

/// The real policy, which every variant wraps.
use capt_status as real;

/// The enabled variant's `metadata()`.
pub fn metadata() -> Metadata {
    metadata_as(ENABLED)
}

/// The enabled variant's `reconcile()`.
pub fn reconcile(request: &Request) -> Result<Response, Error> {
    reconcile_as(ENABLED, request)
}

/// `metadata()` of `variant` (`None`: the real policy's).
pub fn metadata_as(variant: Option<Variant>) -> Metadata {
    let mut metadata = real::metadata();
    if variant == Some(Variant::V2) {
        metadata.version = V2_VERSION.into();
    }
    metadata
}

/// `reconcile()` of `variant` (`None`: the real policy's). The `loop` and `alloc` variants do
/// not return, natively either.
pub fn reconcile_as(variant: Option<Variant>, request: &Request) -> Result<Response, Error> {
    match variant {
        None | Some(Variant::OldWorld) => real::reconcile(request),
        Some(Variant::V2) => reconcile_v2(request),
        Some(Variant::Wrong) => reconcile_wrong(request),
        Some(Variant::Loop) => spin(),
        Some(Variant::Alloc) => exhaust_memory(),
        Some(Variant::Panic) => panic!("{PANIC_MESSAGE}"),
        Some(Variant::LiveFail) => match fail_live(request).as_deref() {
            None => real::reconcile(request),
            Some("panic") => panic!("{PANIC_MESSAGE}"),
            Some("loop") => spin(),
            Some("alloc") => exhaust_memory(),
            Some(_) => Err(Error::Internal(LIVE_FAIL_MESSAGE.into())),
        },
        Some(Variant::Wasi) => {
            // On wasm32-wasip2 this is `wasi:cli/environment.get-environment`.
            black_box(std::env::var_os("CAPT_POLICY_FIXTURE"));
            real::reconcile(request)
        }
    }
}

/// `v2`: the real logic, with [`V2_SUFFIX`] on Ready=True messages. The suffix is taken off the
/// observed objects first, so the real logic sees what it wrote itself and stays idempotent
/// (otherwise every reconcile would rewrite the message, and "no patch" steps would fail).
fn reconcile_v2(request: &Request) -> Result<Response, Error> {
    let mut stripped = request.clone();
    for object in &mut stripped.objects {
        edit_ready_true_messages(&mut object.manifest, |message| {
            message.strip_suffix(V2_SUFFIX).map(str::to_owned)
        });
    }
    let mut response = real::reconcile(&stripped)?;
    for patch in status_patches(&mut response) {
        edit_ready_true_messages(patch, |message| Some(format!("{message}{V2_SUFFIX}")));
    }
    mark_what_others_made_ready(request, &mut response);
    Ok(response)
}

/// `v2`: a trigger that another policy (v1) made Ready carries no mark, and the real logic sees
/// nothing to change; a status patch adds the mark, so after a swap every ready object shows
/// v2. Only when the response is final and writes no status of the trigger already.
fn mark_what_others_made_ready(request: &Request, response: &mut Response) {
    let writes_trigger_status = response
        .patches
        .iter()
        .any(|p| p.subresource == Subresource::Status && p.target == request.trigger);
    if !response.requirements.is_empty() || writes_trigger_status {
        return;
    }
    let Some(trigger) = request
        .objects
        .iter()
        .find(|o| o.reference == request.trigger)
    else {
        return;
    };
    let Ok(manifest) = serde_json::from_str::<Value>(&trigger.manifest) else {
        return;
    };
    let Some(conditions) = manifest.pointer("/status/conditions") else {
        return;
    };
    let unmarked = serde_json::json!({"status": {"conditions": conditions}}).to_string();
    let mut marked = unmarked.clone();
    edit_ready_true_messages(&mut marked, |message| {
        (!message.ends_with(V2_SUFFIX)).then(|| format!("{message}{V2_SUFFIX}"))
    });
    if marked != unmarked {
        response.patches.push(capt_policy::Patch {
            target: trigger.reference.clone(),
            subresource: Subresource::Status,
            merge_patch: marked,
            resource_version: manifest
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    }
}

/// `live-fail`: the value of the trigger's [`FAIL_LIVE_ANNOTATION`], if it has one.
fn fail_live(request: &Request) -> Option<String> {
    let trigger = request
        .objects
        .iter()
        .find(|object| object.reference == request.trigger)?;
    let manifest: Value = serde_json::from_str(&trigger.manifest).ok()?;
    manifest
        .pointer("/metadata/annotations")?
        .get(FAIL_LIVE_ANNOTATION)?
        .as_str()
        .map(str::to_owned)
}

/// `wrong`: the real logic, with `status.ready: true` written as `false`.
fn reconcile_wrong(request: &Request) -> Result<Response, Error> {
    let mut response = real::reconcile(request)?;
    status_patches(&mut response).for_each(unready);
    Ok(response)
}

/// Turns `status.ready: true` into `false`.
fn unready(json: &mut String) {
    edit_json(json, |doc| match doc.pointer_mut("/status/ready") {
        Some(ready @ Value::Bool(true)) => {
            *ready = Value::Bool(false);
            true
        }
        _ => false,
    });
}

/// `loop`: spins until the host interrupts the call.
fn spin() -> ! {
    loop {
        black_box(());
    }
}

/// `alloc`: keeps 1 MiB blocks until an allocation fails (and the allocator aborts).
fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(black_box(vec![1; 1 << 20]));
        black_box(&mut hoard);
    }
}

/// The merge patches of the response's status patches.
fn status_patches(response: &mut Response) -> impl Iterator<Item = &mut String> {
    response
        .patches
        .iter_mut()
        .filter(|patch| patch.subresource == Subresource::Status)
        .map(|patch| &mut patch.merge_patch)
}

/// Rewrites the message of every `status.conditions` entry of type Ready with status True for
/// which `rewrite` returns a new one.
fn edit_ready_true_messages(json: &mut String, rewrite: impl Fn(&str) -> Option<String>) {
    edit_json(json, |doc| {
        let Some(Value::Array(conditions)) = doc.pointer_mut("/status/conditions") else {
            return false;
        };
        let mut changed = false;
        for condition in conditions {
            if condition["type"] == "Ready"
                && condition["status"] == "True"
                && let Some(Value::String(message)) = condition.get_mut("message")
                && let Some(new) = rewrite(message)
            {
                *message = new;
                changed = true;
            }
        }
        changed
    });
}

/// Parses `json`, lets `edit` change it and writes it back if `edit` says it did. Text that is
/// not JSON is left as it is (the real logic never writes any).
fn edit_json(json: &mut String, edit: impl FnOnce(&mut Value) -> bool) {
    let Ok(mut doc) = serde_json::from_str::<Value>(json) else {
        return;
    };
    if edit(&mut doc) {
        *json = doc.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capt_policy::{ObjectRef, Patch};
    use serde_json::json;

    fn response(subresource: Subresource, merge_patch: Value) -> Response {
        Response {
            patches: vec![Patch {
                target: ObjectRef::new("example.com/v1", "Thing", Some("ns"), "a"),
                subresource,
                merge_patch: merge_patch.to_string(),
                resource_version: Some("7".into()),
            }],
            ..Response::default()
        }
    }

    fn patch(response: &Response) -> Value {
        serde_json::from_str(&response.patches[0].merge_patch).unwrap()
    }

    #[test]
    fn the_variants_are_the_features_of_cargo_toml() {
        let manifest = include_str!("../Cargo.toml");
        let features: Vec<_> = manifest
            .split("[features]")
            .nth(1)
            .unwrap()
            .lines()
            .skip(1)
            .take_while(|line| !line.trim().is_empty())
            .filter(|line| !line.starts_with('#'))
            .map(|line| line.split_once(" = ").unwrap().0)
            .collect();
        let variants: Vec<_> = Variant::ALL.iter().map(|v| v.feature()).collect();
        assert_eq!(features, variants);
    }

    #[test]
    fn v2_marks_only_ready_true_messages_and_reads_them_back_unmarked() {
        let mut response = response(
            Subresource::Status,
            json!({"status": {"ready": true, "conditions": [
                {"type": "Ready", "status": "True", "reason": "Up", "message": "All good"},
                {"type": "VPCReady", "status": "True", "reason": "Up", "message": "VPC ok"},
            ]}}),
        );
        for patch in status_patches(&mut response) {
            edit_ready_true_messages(patch, |m| Some(format!("{m}{V2_SUFFIX}")));
        }
        let written = patch(&response);
        assert_eq!(
            written["status"]["conditions"][0]["message"],
            "All good (policy v2)"
        );
        assert_eq!(written["status"]["conditions"][1]["message"], "VPC ok");

        let mut observed = written.to_string();
        edit_ready_true_messages(&mut observed, |m| {
            m.strip_suffix(V2_SUFFIX).map(str::to_owned)
        });
        let observed: Value = serde_json::from_str(&observed).unwrap();
        assert_eq!(observed["status"]["conditions"][0]["message"], "All good");
    }

    #[test]
    fn v2_marks_a_trigger_another_policy_made_ready_once() {
        let trigger = ObjectRef::new("example.com/v1", "Thing", Some("ns"), "t");
        let made_ready_by_v1 = json!({
            "apiVersion": "example.com/v1", "kind": "Thing",
            "metadata": {"name": "t", "namespace": "ns", "resourceVersion": "7"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "Up", "message": "All good"},
            ]},
        });
        let request = |manifest: &Value| Request {
            trigger: trigger.clone(),
            now_epoch_millis: 0,
            objects: vec![capt_policy::ObservedObject {
                reference: trigger.clone(),
                manifest: manifest.to_string(),
            }],
            missing: vec![],
            settings: "{}".into(),
        };
        let mut response = Response::default();
        mark_what_others_made_ready(&request(&made_ready_by_v1), &mut response);
        assert_eq!(response.patches.len(), 1);
        assert_eq!(response.patches[0].resource_version.as_deref(), Some("7"));
        let marked = patch(&response);
        assert_eq!(
            marked["status"]["conditions"][0]["message"],
            "All good (policy v2)"
        );
        // Once marked, nothing more to write.
        let mut again = Response::default();
        let mut observed = made_ready_by_v1.clone();
        observed["status"] = marked["status"].clone();
        mark_what_others_made_ready(&request(&observed), &mut again);
        assert!(again.patches.is_empty());
    }

    #[test]
    fn v2_leaves_ready_false_and_main_patches_alone() {
        let ready_false = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "Waiting", "message": "Waiting"},
        ]}});
        let mut text = ready_false.to_string();
        edit_ready_true_messages(&mut text, |m| Some(format!("{m}{V2_SUFFIX}")));
        assert_eq!(text, ready_false.to_string());

        let mut main = response(Subresource::Main, json!({"metadata": {"labels": {}}}));
        assert_eq!(status_patches(&mut main).count(), 0);
    }

    #[test]
    fn wrong_writes_ready_true_as_false() {
        let mut response = response(Subresource::Status, json!({"status": {"ready": true}}));
        status_patches(&mut response).for_each(unready);
        assert_eq!(patch(&response), json!({"status": {"ready": false}}));
    }

    #[test]
    fn live_fail_reads_the_annotation_of_the_trigger_only() {
        let trigger = ObjectRef::new("example.com/v1", "Thing", Some("ns"), "a");
        let other = ObjectRef::new("example.com/v1", "Thing", Some("ns"), "b");
        let object = |reference: &ObjectRef, annotations: Value| capt_policy::ObservedObject {
            reference: reference.clone(),
            manifest: json!({"metadata": {"name": reference.name, "annotations": annotations}})
                .to_string(),
        };
        let request = |objects| Request {
            trigger: trigger.clone(),
            now_epoch_millis: 0,
            objects,
            missing: vec![],
            settings: "{}".into(),
        };
        let annotated = json!({FAIL_LIVE_ANNOTATION: "true"});
        assert_eq!(
            fail_live(&request(vec![object(&trigger, annotated.clone())])).as_deref(),
            Some("true")
        );
        assert_eq!(
            fail_live(&request(vec![
                object(&trigger, json!({})),
                object(&other, annotated)
            ])),
            None
        );
        let error = reconcile_as(
            Some(Variant::LiveFail),
            &request(vec![object(&trigger, json!({FAIL_LIVE_ANNOTATION: "yes"}))]),
        )
        .unwrap_err();
        assert_eq!(error, Error::Internal(LIVE_FAIL_MESSAGE.into()));
    }

    #[test]
    fn metadata_differs_only_in_the_v2_version() {
        let real = real::metadata();
        assert_eq!(metadata_as(None), real);
        assert_eq!(metadata_as(Some(Variant::Wrong)), real);
        let v2 = metadata_as(Some(Variant::V2));
        assert_eq!(v2.version, V2_VERSION);
        assert_eq!(v2.name, real.name);
    }
}

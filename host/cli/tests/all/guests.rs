//! Hand-written guest components (WAT), including misbehaving ones: each exercises one way a
//! policy can fail to load or to answer.

/// The contract's types, as a component's type section declares them.
const TYPES: &str = r#"
  (type $object-ref' (record (field "api-version" string) (field "kind" string)
                             (field "namespace" (option string)) (field "name" string)))
  (export $object-ref "object-ref" (type $object-ref'))
  (type $kind-ref' (record (field "api-version" string) (field "kind" string) (field "namespaced" bool)))
  (export $kind-ref "kind-ref" (type $kind-ref'))
  (type $observed-object' (record (field "ref" $object-ref) (field "manifest" string)))
  (export $observed-object "observed-object" (type $observed-object'))
  (type $request' (record (field "trigger" $object-ref) (field "now-epoch-millis" s64)
                          (field "objects" (list $observed-object)) (field "missing" (list $object-ref))
                          (field "settings" string)))
  (export $request "request" (type $request'))
  (type $subresource' (enum "status" "main"))
  (export $subresource "subresource" (type $subresource'))
  (type $patch' (record (field "target" $object-ref) (field "subresource" $subresource)
                        (field "merge-patch" string) (field "resource-version" (option string))))
  (export $patch "patch" (type $patch'))
  (type $event-type' (enum "normal" "warning"))
  (export $event-type "event-type" (type $event-type'))
  (type $event' (record (field "regarding" $object-ref) (field "event-type" $event-type)
                        (field "reason" string) (field "message" string)))
  (export $event "event" (type $event'))
  (type $response' (record (field "patches" (list $patch)) (field "events" (list $event))
                           (field "requeue-after-millis" (option u64)) (field "requirements" (list $object-ref))))
  (export $response "response" (type $response'))
  (type $error' (variant (case "invalid-input" string) (case "unsupported-kind" string) (case "internal" string)))
  (export $error "error" (type $error'))
  (type $policy-metadata' (record (field "name" string) (field "version" string)
                                  (field "triggers" (list $kind-ref)) (field "reads" (list $kind-ref))
                                  (field "default-settings" string)))
  (export $policy-metadata "policy-metadata" (type $policy-metadata'))
"#;

/// A policy component whose `metadata` and `reconcile` core functions have the given bodies.
///
/// Memory layout: the metadata record (name `fixture`, version `0.0.0`, no kinds, settings
/// `{}`) at 0x100; the name's text (`fixture`) at 0x200; an empty successful response at
/// 0x300; a response whose one event has a 5 MiB message at 0x400 (the caller must grow memory
/// first); the heap from 0x1000. The memory is defined by a module of its own, so that the
/// `log` import can be lowered with it: bodies may call `$log` (level, message pointer,
/// length). The global `$probe` (i64, initially 0) is the bodies' own.
pub fn policy(metadata_body: &str, reconcile_body: &str) -> Vec<u8> {
    let metadata = le32(&[0x200, 7, 0x210, 5, 0, 0, 0, 0, 0x220, 2]);
    // result<response, error>: discriminant at 0, response at 8: patches (ptr, len), events
    // (ptr, len), requeue (disc at 16, u64 at 24), requirements (ptr, len) at 32.
    let big_response = le32(&[0, 0, 0, 0, 0x500, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // One event: regarding (api-version, kind, namespace none, name), type at 36, reason at
    // 40, message at 48: 5 MiB of NUL characters from 0x10000.
    let big_event = le32(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10000, 5 << 20]);
    let text = format!(
        r#"(component
  (import "capt:policy/log@0.1.0" (instance $log
    (type $level' (enum "trace" "debug" "info" "warn" "error"))
    (export "level" (type $level (eq $level')))
    (export "log" (func (param "level" $level) (param "message" string)))))
  (core module $memory (memory (export "memory") 1))
  (core instance $mem (instantiate $memory))
  (core func $log (canon lower (func $log "log") (memory (core memory $mem "memory"))))
  (core instance $env (export "memory" (memory $mem "memory")) (export "log" (func $log)))
  (core module $m
    (import "env" "memory" (memory 1))
    (import "env" "log" (func $log (param i32 i32 i32)))
    (global $heap (mut i32) (i32.const 0x1000))
    (global $probe (mut i64) (i64.const 0))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.add (i32.shr_u (global.get $heap) (i32.const 16)) (i32.const 1))))))
      (local.get $p))
    (func (export "metadata") (result i32) {metadata_body})
    (func (export "reconcile")
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i64 i32 i32 i32 i32 i32 i32) (result i32)
      {reconcile_body})
    (data (i32.const 0x100) "{metadata}")
    (data (i32.const 0x200) "fixture")
    (data (i32.const 0x210) "0.0.0")
    (data (i32.const 0x220) "{{}}")
    (data (i32.const 0x400) "{big_response}")
    (data (i32.const 0x500) "{big_event}")
  )
  (core instance $i (instantiate $m (with "env" (instance $env))))
  {TYPES}
  (func $metadata (result $policy-metadata)
    (canon lift (core func $i "metadata") (memory (core memory $mem "memory"))
      (realloc (core func $i "realloc"))))
  (func $reconcile (param "request" $request) (result (result $response (error $error)))
    (canon lift (core func $i "reconcile") (memory (core memory $mem "memory"))
      (realloc (core func $i "realloc"))))
  (instance $reconciler (export "metadata" (func $metadata)) (export "reconcile" (func $reconcile)))
  (instance $types
    (export "object-ref" (type $object-ref)) (export "kind-ref" (type $kind-ref))
    (export "observed-object" (type $observed-object)) (export "request" (type $request))
    (export "subresource" (type $subresource)) (export "patch" (type $patch))
    (export "event-type" (type $event-type)) (export "event" (type $event))
    (export "response" (type $response)) (export "error" (type $error))
    (export "policy-metadata" (type $policy-metadata)))
  (export "capt:policy/types@0.1.0" (instance $types))
  (export "capt:policy/reconciler@0.1.0" (instance $reconciler))
)"#
    );
    wat::parse_str(text).expect("fixture WAT is valid")
}

/// A request for the hand-written guests (which read none of it): one object, `Thing` `ns/a`.
pub fn request() -> capt_policy::Request {
    let trigger = capt_policy::ObjectRef::new("example.com/v1", "Thing", Some("ns"), "a");
    capt_policy::Request {
        trigger: trigger.clone(),
        now_epoch_millis: 0,
        objects: vec![capt_policy::ObservedObject {
            reference: trigger,
            manifest: "{}".into(),
        }],
        missing: vec![],
        settings: "{}".into(),
    }
}

/// Metadata that answers.
pub const METADATA_OK: &str = "(i32.const 0x100)";
/// A reconcile that returns an empty successful response.
pub const RECONCILE_OK: &str = "(i32.const 0x300)";
/// A reconcile that traps.
pub const TRAP: &str = "unreachable";
/// A reconcile that never returns.
pub const LOOP: &str = "(loop $forever (br $forever)) unreachable";
/// A reconcile that grows memory until refused, then aborts (as a Rust guest's allocator does).
pub const MEMORY_BOMB: &str =
    "(loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable";
/// A reconcile whose response carries a 5 MiB event message.
pub const HUGE_RESPONSE: &str = "(drop (memory.grow (i32.const 96))) (i32.const 0x400)";
/// A reconcile whose response carries 20 events that all point at the same 5 MiB message:
/// 100 MiB of text in 6 MiB of guest memory. The response is the one at 0x400, copied to 0x700
/// with its event list moved to 0x520000.
pub const ALIASED_RESPONSE: &str = r#"
    (local $i i32)
    (drop (memory.grow (i32.const 96)))
    (loop $copy
      (memory.copy (i32.add (i32.const 0x520000) (i32.mul (local.get $i) (i32.const 56)))
                   (i32.const 0x500) (i32.const 56))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $copy (i32.lt_u (local.get $i) (i32.const 20))))
    (memory.copy (i32.const 0x700) (i32.const 0x400) (i32.const 64))
    (i32.store (i32.const 0x710) (i32.const 0x520000))
    (i32.store (i32.const 0x714) (i32.const 20))
    (i32.const 0x700)"#;

/// A reconcile that records what it finds at entry and then dirties everything it can: the
/// pristine-state probe (see [`Findings`]).
///
/// At entry it reads the global `$probe` (initially 0), the data segment at 0x200 (the text
/// `fixture`) and the memory's size (initially one page); it grows the memory to 160 pages
/// (10 MiB: past the 2 MiB the pool keeps resident, so both the memset and the decommitted
/// part of a reset are covered) and counts the 8-byte words from 0x8000 (past the heap the
/// request is lowered to) to the end that are not zero, writing all ones to each. Then it
/// sets `$probe` and overwrites the data segment. It answers an empty response whose
/// `requeue-after-millis` carries the findings, written at 0x600.
pub const PROBE: &str = r#"
    (local $flags i64) (local $stale i64) (local $at i32) (local $end i32)
    (if (i64.ne (global.get $probe) (i64.const 0))
      (then (local.set $flags (i64.or (local.get $flags) (i64.const 1)))))
    (if (i64.ne (i64.load (i32.const 0x200)) (i64.const 0x0065727574786966))
      (then (local.set $flags (i64.or (local.get $flags) (i64.const 2)))))
    (if (i32.ne (memory.size) (i32.const 1))
      (then (local.set $flags (i64.or (local.get $flags) (i64.const 4)))))
    (drop (memory.grow (i32.sub (i32.const 160) (memory.size))))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (local.set $at (i32.const 0x8000))
    (loop $scan
      (if (i64.ne (i64.load (local.get $at)) (i64.const 0))
        (then (local.set $stale (i64.add (local.get $stale) (i64.const 1)))))
      (i64.store (local.get $at) (i64.const -1))
      (local.set $at (i32.add (local.get $at) (i32.const 8)))
      (br_if $scan (i32.lt_u (local.get $at) (local.get $end))))
    (global.set $probe (i64.const -1))
    (i64.store (i32.const 0x200) (i64.const -1))
    ;; result<response>: ok, no patches, no events, requeue = findings, no requirements.
    (memory.fill (i32.const 0x600) (i32.const 0) (i32.const 48))
    (i32.store8 (i32.const 0x618) (i32.const 1))
    (i64.store (i32.const 0x620) (i64.or (local.get $flags) (i64.shl (local.get $stale) (i64.const 32))))
    (i32.const 0x600)"#;

/// What one call of [`PROBE`] found at entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Findings {
    /// The global `$probe` was not 0.
    pub dirty_global: bool,
    /// The data segment at 0x200 was not `fixture`.
    pub dirty_data: bool,
    /// The memory was not one page.
    pub grown_memory: bool,
    /// Non-zero 8-byte words in the heap past 0x8000.
    pub stale_words: u32,
}

impl Findings {
    /// What a response of [`PROBE`] reports.
    pub fn of(response: &capt_policy::Response) -> Self {
        let bits = response
            .requeue_after_millis
            .expect("the probe reports its findings");
        Self {
            dirty_global: bits & 1 != 0,
            dirty_data: bits & 2 != 0,
            grown_memory: bits & 4 != 0,
            stale_words: (bits >> 32) as u32,
        }
    }

    /// True when the call saw the module's initial state.
    pub fn pristine(&self) -> bool {
        *self == Self::default()
    }
}

/// A reconcile that logs `fixture` at info level `times` times, then answers an empty
/// response: each log call is a host call, where a test can hold the calling thread.
pub fn logging(times: u32) -> String {
    format!(
        "(local $n i32) (local.set $n (i32.const {times}))
         (loop $more
           (call $log (i32.const 2) (i32.const 0x200) (i32.const 7))
           (local.set $n (i32.sub (local.get $n) (i32.const 1)))
           (br_if $more (i32.gt_s (local.get $n) (i32.const 0))))
         (i32.const 0x300)"
    )
}

/// A component with the given body (imports, exports) and nothing else.
pub fn component(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(component {body})")).expect("fixture WAT is valid")
}

fn le32(values: &[u32]) -> String {
    values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .map(|b| format!("\\{b:02x}"))
        .collect()
}

/// A component of about `bytes` bytes whose one core function is nothing but blocks nested in
/// each other: cheap to write, ruinous to compile (Cranelift needs some 320 MiB for 1 MiB of
/// it).
pub fn nested_blocks(bytes: usize) -> Vec<u8> {
    // `block` is 2 bytes, `end` 1: a third of the size in levels.
    let depth = bytes / 3;
    let mut text = String::with_capacity(depth * 10 + 64);
    text.push_str("(component (core module (func\n");
    for _ in 0..depth {
        text.push_str("block\n");
    }
    for _ in 0..depth {
        text.push_str("end\n");
    }
    text.push_str(")))");
    wat::parse_str(&text).expect("the nested blocks parse")
}

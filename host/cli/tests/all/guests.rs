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
/// `{}`) at 0x100; an empty successful response at 0x300; a response whose one event has a
/// 5 MiB message at 0x400 (the caller must grow memory first); the heap from 0x1000.
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
  (core module $m
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 0x1000))
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
  (core instance $i (instantiate $m))
  {TYPES}
  (func $metadata (result $policy-metadata)
    (canon lift (core func $i "metadata") (memory (core memory $i "memory"))
      (realloc (core func $i "realloc"))))
  (func $reconcile (param "request" $request) (result (result $response (error $error)))
    (canon lift (core func $i "reconcile") (memory (core memory $i "memory"))
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

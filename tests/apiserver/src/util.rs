//! Small helpers shared by the modules: timestamps, identifiers, base64, JSON paths.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// The current time as RFC 3339 with second precision (`2024-01-02T03:04:05Z`), like
/// `metav1.Time`.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

static RANDOM_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A pseudo-random 64-bit number (not cryptographic): the process's random hasher keys
/// applied to a counter.
pub(crate) fn random_u64() -> u64 {
    let n = RANDOM_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    RandomState::new().hash_one((n, nanos))
}

/// A random RFC 4122 version 4 UUID string.
pub(crate) fn new_uid() -> String {
    let hi = random_u64();
    let lo = random_u64();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A random 5-character suffix for `metadata.generateName`, from the same alphabet as the
/// real API server (no vowels, no ambiguous characters).
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (with padding) of `input`.
pub(crate) fn base64_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Lower-case hex of `input` (used for opaque continue tokens).
pub(crate) fn hex_encode(input: &[u8]) -> String {
    input.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes lower- or upper-case hex; `None` when malformed.
pub(crate) fn hex_decode(input: &str) -> Option<Vec<u8>> {
    if !input.len().is_multiple_of(2) {
        return None;
    }
    (0..input.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(input.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The value at a dotted path (`metadata.name`, `spec.nodeName`) of `obj`.
pub(crate) fn value_at_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(obj, |cur, segment| cur.as_object()?.get(segment))
}

/// The string form of a scalar JSON value as a field selector compares it
/// (missing or null fields compare as the empty string).
pub(crate) fn scalar_string(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// `metadata` of an object as a map, created if missing (only call on JSON objects).
pub(crate) fn metadata_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(serde_json::Map::new());
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(map)) => map,
        // The branch above made `metadata` an object.
        _ => unreachable!("metadata was just made an object"),
    }
}

/// A string field of `metadata`.
pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// Whether `name` is a valid DNS-1123 subdomain (the rule for most object names).
pub(crate) fn is_dns1123_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `name` is a valid DNS-1123 label (the rule for namespace names).
pub(crate) fn is_dns1123_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns1123_subdomain(name)
}

/// Whether `s` is a qualified-name part: at most 63 characters, alphanumeric at both ends,
/// `-`, `_`, `.` inside.
fn is_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Why the label key `key` is invalid, if it is (`[prefix/]name`, prefix a DNS subdomain).
pub(crate) fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns1123_subdomain(prefix)
    {
        return Some(format!(
            "prefix part of {key:?} must be a DNS-1123 subdomain"
        ));
    }
    (!is_name_part(name)).then(|| {
        format!(
            "name part of {key:?} must consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character (at most 63 characters)"
        )
    })
}

/// Whether `value` is a valid label value (empty, or a qualified-name part).
pub(crate) fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_name_part(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let bytes = b"{\"rv\":12}";
        assert_eq!(hex_decode(&hex_encode(bytes)).as_deref(), Some(&bytes[..]));
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("é1"), None);
    }

    #[test]
    fn uids_look_like_uuids_and_differ() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
    }

    #[test]
    fn paths_and_scalars() {
        let obj = json!({"metadata": {"name": "a"}, "spec": {"n": 3, "b": true}});
        assert_eq!(scalar_string(value_at_path(&obj, "metadata.name")), "a");
        assert_eq!(scalar_string(value_at_path(&obj, "spec.n")), "3");
        assert_eq!(scalar_string(value_at_path(&obj, "spec.b")), "true");
        assert_eq!(scalar_string(value_at_path(&obj, "spec.missing")), "");
    }

    #[test]
    fn dns_names() {
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("A"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_subdomain(""));
        assert!(is_dns1123_label("default"));
        assert!(!is_dns1123_label("a.b"));
    }

    #[test]
    fn label_keys_and_values() {
        assert!(label_key_error("app").is_none());
        assert!(label_key_error("example.com/app-name_1").is_none());
        assert!(label_key_error("-app").is_some());
        assert!(label_key_error("Bad_Prefix/app").is_some());
        assert!(label_key_error("").is_some());
        assert!(is_label_value(""));
        assert!(is_label_value("v1.2_3"));
        assert!(!is_label_value("has space"));
        assert!(!is_label_value(&"x".repeat(64)));
    }

    #[test]
    fn suffixes_are_five_chars() {
        assert_eq!(name_suffix().len(), 5);
    }
}

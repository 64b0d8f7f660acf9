//! Partial matching of expected values against actual ones, and readable diffs.
//!
//! - a map matches when each expected key matches (a subset: other keys are ignored);
//! - a list matches when each expected element matches a distinct actual element, in any
//!   order (extra actual elements are ignored);
//! - a scalar must be equal (numbers by value: `1` equals `1.0`);
//! - an expected `null` means "absent or null"; so does a map whose values all mean that
//!   (`status: {infrastructureReady: null}` matches an object without a status).

use serde_json::{Map, Value};

/// Every way `actual` fails to match `expected`, one message per mismatch, each starting
/// with its path (`.status.conditions[1].reason`). Empty when it matches.
pub fn mismatches(expected: &Value, actual: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    collect(&mut out, "", expected, actual);
    out
}

/// True when `actual` matches `expected`.
pub fn matches(expected: &Value, actual: Option<&Value>) -> bool {
    mismatches(expected, actual).is_empty()
}

fn collect(out: &mut Vec<String>, path: &str, expected: &Value, actual: Option<&Value>) {
    let at = if path.is_empty() { "." } else { path };
    match (expected, actual) {
        (Value::Null, None | Some(Value::Null)) => {}
        (Value::Null, Some(actual)) => {
            out.push(format!("at {at}: expected no value, got {}", short(actual)));
        }
        (expected, None) if absent_matches(expected) => {}
        (_, None) => out.push(format!("at {at}: missing, expected {}", short(expected))),
        (Value::Object(expected), Some(Value::Object(actual))) => {
            for (key, value) in expected {
                collect(out, &format!("{path}.{key}"), value, actual.get(key));
            }
        }
        (Value::Array(expected), Some(Value::Array(actual))) => {
            let assignment = assign(expected, actual);
            for (i, (element, assigned)) in expected.iter().zip(&assignment).enumerate() {
                if assigned.is_some() {
                    continue;
                }
                let candidates = actual.iter().filter(|a| matches(element, Some(a))).count();
                if candidates == 0 {
                    out.push(format!(
                        "at {at}: no element matches expected element [{i}] {}",
                        short(element)
                    ));
                } else {
                    out.push(format!(
                        "at {at}: expected element [{i}] {} only matches elements already matched by others",
                        short(element)
                    ));
                }
            }
        }
        (expected, Some(actual)) if scalar_eq(expected, actual) => {}
        (expected, Some(actual)) => out.push(format!(
            "at {at}: expected {}, got {}",
            short(expected),
            short(actual)
        )),
    }
}

/// True when an absent value matches `expected`: `null`, or a non-empty map whose values all
/// match an absent value (every key it asks about is absent).
fn absent_matches(expected: &Value) -> bool {
    match expected {
        Value::Null => true,
        Value::Object(map) => !map.is_empty() && map.values().all(absent_matches),
        _ => false,
    }
}

fn scalar_eq(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => e == a || e.as_f64() == a.as_f64(),
        (Value::Object(_) | Value::Array(_), _) => false,
        _ => expected == actual,
    }
}

/// For each expected element, the distinct actual element it is matched to: a maximum
/// bipartite matching (Kuhn's augmenting paths; lists here are short).
fn assign(expected: &[Value], actual: &[Value]) -> Vec<Option<usize>> {
    let fits: Vec<Vec<bool>> = expected
        .iter()
        .map(|e| actual.iter().map(|a| matches(e, Some(a))).collect())
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; actual.len()];
    for e in 0..expected.len() {
        let mut visited = vec![false; actual.len()];
        augment(e, &fits, &mut owner, &mut visited);
    }
    let mut assignment = vec![None; expected.len()];
    for (a, e) in owner.iter().enumerate() {
        if let Some(e) = e {
            assignment[*e] = Some(a);
        }
    }
    assignment
}

fn augment(
    e: usize,
    fits: &[Vec<bool>],
    owner: &mut [Option<usize>],
    visited: &mut [bool],
) -> bool {
    for a in 0..owner.len() {
        if fits[e][a] && !visited[a] {
            visited[a] = true;
            if owner[a].is_none_or(|other| augment(other, fits, owner, visited)) {
                owner[a] = Some(e);
                return true;
            }
        }
    }
    false
}

/// `actual` cut down to the shape of `expected`, for a diff that shows only what was asked
/// about: maps keep the expected keys; list elements are put in the expected order (matched
/// ones first, then the closest candidates), the rest follow cut to the keys any expected
/// element has.
pub fn prune(actual: &Value, expected: &Value) -> Value {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => Value::Object(
            expected
                .iter()
                .filter_map(|(key, e)| actual.get(key).map(|a| (key.clone(), prune(a, e))))
                .collect(),
        ),
        (Value::Array(expected), Value::Array(actual)) => {
            let mut pairs = assign(expected, actual);
            let mut used: Vec<bool> = vec![false; actual.len()];
            for a in pairs.iter().flatten() {
                used[*a] = true;
            }
            // Unmatched expected elements take the closest unused actual element.
            for (e, pair) in pairs.iter_mut().enumerate() {
                if pair.is_none() {
                    *pair = (0..actual.len())
                        .filter(|a| !used[*a])
                        .min_by_key(|a| mismatches(&expected[e], Some(&actual[*a])).len());
                    if let Some(a) = pair {
                        used[*a] = true;
                    }
                }
            }
            let template = union_of_keys(expected);
            let mut out: Vec<Value> = pairs
                .iter()
                .enumerate()
                .filter_map(|(e, pair)| pair.map(|a| prune(&actual[a], &expected[e])))
                .collect();
            out.extend(
                (0..actual.len())
                    .filter(|a| !used[*a])
                    .map(|a| prune(&actual[a], &template)),
            );
            Value::Array(out)
        }
        _ => actual.clone(),
    }
}

/// An object holding every key of every object element (used to cut unmatched elements);
/// `null` when no element is an object.
fn union_of_keys(elements: &[Value]) -> Value {
    let mut union = Map::new();
    for element in elements.iter().filter_map(Value::as_object) {
        for (key, value) in element {
            union.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    if union.is_empty() {
        Value::Null
    } else {
        Value::Object(union)
    }
}

/// A unified diff between the YAML renderings of `expected` and `actual`.
pub fn diff(expected: &Value, actual: &Value) -> String {
    let expected = crate::view::to_yaml(expected);
    let actual = crate::view::to_yaml(actual);
    similar::TextDiff::from_lines(&expected, &actual)
        .unified_diff()
        .context_radius(4)
        .header("expected", "actual")
        .to_string()
}

/// A value on one line, cut to a readable length.
fn short(value: &Value) -> String {
    const MAX: usize = 120;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn maps_match_as_subsets() {
        let actual = json!({"a": 1, "b": {"c": "x", "d": true}});
        assert!(matches(&json!({"b": {"c": "x"}}), Some(&actual)));
        assert_eq!(
            mismatches(&json!({"b": {"c": "y"}, "e": 1}), Some(&actual)),
            [
                r#"at .b.c: expected "y", got "x""#,
                "at .e: missing, expected 1"
            ]
        );
    }

    #[test]
    fn null_means_absent_or_null() {
        let actual = json!({"a": null, "b": 1});
        assert!(matches(&json!({"a": null, "z": null}), Some(&actual)));
        assert_eq!(
            mismatches(&json!({"b": null}), Some(&actual)),
            ["at .b: expected no value, got 1"]
        );
    }

    #[test]
    fn a_map_of_nulls_matches_an_absent_parent() {
        let actual = json!({"metadata": {"name": "x"}});
        assert!(matches(
            &json!({"status": {"infrastructureReady": null}}),
            Some(&actual)
        ));
        assert!(matches(
            &json!({"status": {"a": {"b": null}}}),
            Some(&actual)
        ));
        assert!(!matches(
            &json!({"status": {"infrastructureReady": null, "ready": true}}),
            Some(&actual)
        ));
        assert!(!matches(&json!({"status": {}}), Some(&actual)));
    }

    #[test]
    fn scalars_must_be_equal_and_numbers_compare_by_value() {
        assert!(matches(&json!(1), Some(&json!(1.0))));
        assert!(!matches(&json!("1"), Some(&json!(1))));
        assert!(!matches(&json!({"a": 1}), Some(&json!([1]))));
    }

    #[test]
    fn lists_match_distinct_elements_in_any_order() {
        let actual = json!([{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]);
        assert!(matches(
            &json!([{"type": "B"}, {"type": "A"}]),
            Some(&actual)
        ));
        assert!(matches(&json!([]), Some(&actual)));
        // Two expectations that both only fit the same element fail.
        let twice = json!([{"type": "A"}, {"type": "A"}]);
        assert_eq!(
            mismatches(&twice, Some(&actual)),
            [
                r#"at .: expected element [1] {"type":"A"} only matches elements already matched by others"#
            ]
        );
        // An assignment is found even when a greedy choice would block it.
        let actual = json!([{"a": 1, "b": 1}, {"a": 1}]);
        assert!(matches(&json!([{"a": 1}, {"b": 1}]), Some(&actual)));
    }

    #[test]
    fn pruning_keeps_the_expected_shape_and_order() {
        let actual = json!({
            "metadata": {"name": "x", "uid": "u"},
            "conditions": [
                {"type": "B", "status": "True", "reason": "Y", "time": 1},
                {"type": "A", "status": "False", "reason": "X", "time": 2}
            ]
        });
        let expected = json!({"conditions": [{"type": "A", "status": "True", "reason": "X"}]});
        assert_eq!(
            prune(&actual, &expected),
            json!({"conditions": [
                {"type": "A", "status": "False", "reason": "X"},
                {"type": "B", "status": "True", "reason": "Y"}
            ]})
        );
    }

    #[test]
    fn diffs_are_unified_and_labelled() {
        let text = diff(&json!({"a": 1}), &json!({"a": 2}));
        assert!(text.contains("--- expected"), "{text}");
        assert!(text.contains("+++ actual"), "{text}");
        assert!(text.contains("-a: 1\n+a: 2"), "{text}");
    }
}

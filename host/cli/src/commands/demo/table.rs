//! `kubectl get -o wide`-style tables, from a CustomResourceDefinition's
//! `additionalPrinterColumns`: `NAME`, then each column of the served version (priority 0, then
//! the wide ones of priority 1, such as the Ready condition's reason: why an object is not
//! ready), its `jsonPath` evaluated on each object. Generic over the CRD: nothing here knows a
//! kind.
//!
//! JSONPath support is the subset printer columns use: `.field` steps, `[N]` indices and
//! `[?(@.key=='value')]` filters (the first match); anything else prints empty.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One printer column.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    json_path: String,
    /// `date` columns print as an age.
    date: bool,
}

/// The printer columns of one CRD version.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<Column>,
}

impl Table {
    /// The columns of `crd`'s first served version, as `kubectl get -o wide` shows them (the
    /// columns of priority 0, then those of priority 1); `None` if it has none served.
    pub fn of_crd(crd: &Value) -> Option<Self> {
        let versions = crd.pointer("/spec/versions")?.as_array()?;
        let version = versions
            .iter()
            .find(|v| v.get("served").and_then(Value::as_bool) == Some(true))?;
        let priority = |c: &Value| c.get("priority").and_then(Value::as_i64).unwrap_or(0);
        let printer_columns: Vec<&Value> = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let columns = [0, 1]
            .into_iter()
            .flat_map(|wanted| {
                printer_columns
                    .iter()
                    .filter(move |c| priority(c) == wanted)
            })
            .filter_map(|c| {
                Some(Column {
                    name: c.get("name")?.as_str()?.to_owned(),
                    json_path: c.get("jsonPath")?.as_str()?.to_owned(),
                    date: c.get("type").and_then(Value::as_str) == Some("date"),
                })
            })
            .collect();
        Some(Self { columns })
    }

    /// The table of `objects` at `now`: a header line and one line per object, columns padded
    /// to their widest cell and separated by three spaces, like kubectl.
    pub fn render(&self, objects: &[Value], now: DateTime<Utc>) -> String {
        let mut rows = vec![self.header()];
        rows.extend(objects.iter().map(|o| self.row(o, Some(now))));
        layout(&rows)
    }

    /// The cells of `object`, without the date columns (which change every second): what
    /// tells whether a table changed.
    pub fn fingerprint(&self, objects: &[Value]) -> Vec<Vec<String>> {
        objects.iter().map(|o| self.row(o, None)).collect()
    }

    fn header(&self) -> Vec<String> {
        std::iter::once("NAME".to_owned())
            .chain(self.columns.iter().map(|c| c.name.clone()))
            .collect()
    }

    /// The cells of one object; date columns are ages at `now`, or empty without one.
    fn row(&self, object: &Value, now: Option<DateTime<Utc>>) -> Vec<String> {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let cells = self.columns.iter().map(|column| {
            let value = evaluate(object, &column.json_path);
            match (column.date, now) {
                (true, Some(now)) => value
                    .and_then(Value::as_str)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| age(now.signed_duration_since(t).num_seconds()))
                    .unwrap_or_default(),
                (true, None) => String::new(),
                (false, _) => value.map(cell).unwrap_or_default(),
            }
        });
        std::iter::once(name).chain(cells).collect()
    }
}

/// Pads each column to its widest cell; three spaces between columns; no trailing spaces.
fn layout(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A value as kubectl prints it: strings bare, anything else as JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An age like kubectl's: `45s`, `3m12s`, `17m`, `5h`, `2d`.
fn age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..120 => format!("{seconds}s"),
        120..600 => format!("{}m{}s", seconds / 60, seconds % 60),
        600..10_800 => format!("{}m", seconds / 60),
        10_800..172_800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// Evaluates the printer-column JSONPath subset on `object`.
fn evaluate<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = object;
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            current = current.get(&after[..end])?;
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let selector = &after[..end];
            rest = &after[end + 1..];
            current = match selector
                .strip_prefix("?(@.")
                .and_then(|s| s.strip_suffix(')'))
            {
                Some(filter) => {
                    let (key, expected) = filter.split_once("==")?;
                    let expected = expected.trim().trim_matches(['\'', '"']);
                    current.as_array()?.iter().find(|item| {
                        item.get(key.trim()).and_then(Value::as_str) == Some(expected)
                    })?
                }
                None => current.get(selector.parse::<usize>().ok()?)?,
            };
        } else {
            return None;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_follow_fields_indices_and_filters() {
        let object = json!({"status": {"ready": true, "conditions": [
            {"type": "Synced", "status": "True"},
            {"type": "Ready", "status": "False"}
        ]}});
        assert_eq!(evaluate(&object, ".status.ready"), Some(&json!(true)));
        assert_eq!(
            evaluate(&object, ".status.conditions[1].type"),
            Some(&json!("Ready"))
        );
        assert_eq!(
            evaluate(&object, ".status.conditions[?(@.type=='Ready')].status"),
            Some(&json!("False"))
        );
        assert_eq!(evaluate(&object, ".status.missing"), None);
    }

    #[test]
    fn tables_are_laid_out_like_kubectl() {
        let crd = json!({"spec": {"versions": [{"served": true, "additionalPrinterColumns": [
            {"name": "READY", "type": "boolean", "jsonPath": ".status.ready"},
            {"name": "WIDE", "type": "string", "jsonPath": ".x", "priority": 1},
            {"name": "HIDDEN", "type": "string", "jsonPath": ".x", "priority": 2},
            {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]}]}});
        let table = Table::of_crd(&crd).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:01:05Z")
            .unwrap()
            .to_utc();
        let objects = [
            json!({"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
                   "status": {"ready": true}, "x": "Why"}),
            json!({"metadata": {"name": "longer-name", "creationTimestamp": "2026-01-01T00:01:00Z"}}),
        ];
        assert_eq!(
            table.render(&objects, now),
            "NAME          READY   AGE   WIDE\na             true    65s   Why\nlonger-name           5s\n"
        );
        assert_eq!(table.fingerprint(&objects)[0], ["a", "true", "", "Why"]);
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(192), "3m12s");
        assert_eq!(age(1020), "17m");
        assert_eq!(age(18_000), "5h");
        assert_eq!(age(200_000), "2d");
    }
}

//! [`Contention`]: noticing a second writer of the status fields this operator writes, and
//! stepping aside instead of fighting it (docs/second-writer.md).
//!
//! Another controller writing the same status fields (CAPT's own Go controllers, still
//! running) would otherwise make every write of one undo the other's, forever. The operator
//! remembers, per object it wrote status to, the fields its status patches set and their values
//! after its last write, and the versions its writes produced. Before it writes status again, it
//! compares the object it computed from with that record:
//!
//! - at a version its own write produced, or with every field as it left it: no contest (the
//!   count of overwrites starts over);
//! - at another version with fields it set changed: an overwrite, counted once per version.
//!
//! [`OVERWRITES`] overwrites in a row make the object contested: the operator reports it once
//! (a Warning event `SecondWriter` naming the other field manager from `metadata.managedFields`
//! when the API server reports them, the metric `contested_objects_total`, a log line) and does
//! not write the object's status for the back-off (`--contested-backoff`). After it, one write is
//! tried again; overwritten again, the back-off starts over without a new report. A reconcile
//! that finds its fields as it left them ends the contest.
//!
//! Bound: one record per object the operator wrote status to, each with the fields of its
//! status patches; records of objects gone from the cache are dropped whenever the map doubled
//! since the last sweep.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use capt_policy::ObjectRef;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, DynamicObject};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde_json::Value;

use super::dispatch::lock;
use super::kinds::{KindInfo, ObjectKey};
use super::reconcile::Context;

/// Overwrites in a row of the fields this operator writes that make an object contested.
pub(crate) const OVERWRITES: u32 = 3;
/// The versions produced by this operator's writes remembered per object.
const VERSIONS: usize = 4;
/// The fewest records kept before a sweep of records of objects gone.
const SWEEP_FLOOR: usize = 1024;

/// A field: the keys from the object's root to a leaf of a merge patch.
pub(crate) type FieldPath = Vec<String>;

/// What to do about a status write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write it.
    Write,
    /// Do not write the object's status: it is contested. Look again after `retry_in`.
    Hold {
        /// The rest of the back-off.
        retry_in: Duration,
        /// The fields another writer changed, when the contest is to be reported (once).
        report: Option<Vec<FieldPath>>,
    },
}

/// What the operator remembers of its status writes to one object.
#[derive(Debug, Default)]
struct Record {
    /// Every field its status patches set, with its value after the last write (`null`: absent).
    fields: BTreeMap<FieldPath, Value>,
    /// The versions its last writes produced, newest last.
    versions: VecDeque<String>,
    /// The last version counted as an overwrite.
    counted: Option<String>,
    /// Overwrites in a row.
    overwrites: u32,
    /// The end of the back-off, while contested.
    until: Option<Instant>,
    /// True once the current contest was reported.
    reported: bool,
}

/// The records of the operator's status writes. See the module docs.
#[derive(Debug)]
pub(crate) struct Contention {
    backoff: Duration,
    records: Mutex<Records>,
}

#[derive(Debug, Default)]
struct Records {
    objects: HashMap<ObjectKey, Record>,
    /// The size that triggers the next sweep.
    sweep_at: usize,
}

impl Contention {
    /// Holds a contested object's status for `backoff`.
    pub(crate) fn new(backoff: Duration) -> Self {
        Self {
            backoff,
            records: Mutex::new(Records {
                objects: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }

    /// The back-off of a contested object.
    pub(crate) fn backoff(&self) -> Duration {
        self.backoff
    }

    /// Whether to write the status of `key`, computed from `base` (the object as the policy
    /// saw it, or as this response's previous write left it), at `now`.
    pub(crate) fn check(&self, key: &ObjectKey, base: &Value, now: Instant) -> Verdict {
        let mut records = lock(&self.records);
        let Some(record) = records.objects.get_mut(key) else {
            return Verdict::Write;
        };
        let version = base
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if let Some(until) = record.until {
            if now < until {
                return Verdict::Hold {
                    retry_in: until - now,
                    report: None,
                };
            }
            // Back-off over: one more write; one more overwrite holds it again.
            record.until = None;
            record.overwrites = OVERWRITES - 1;
            record.counted = version.map(str::to_owned);
            return Verdict::Write;
        }
        if version.is_some_and(|v| record.versions.iter().any(|ours| ours == v)) {
            record.end_contest();
            return Verdict::Write;
        }
        if version.is_some() && version == record.counted.as_deref() {
            return Verdict::Write;
        }
        let overwritten: Vec<FieldPath> = record
            .fields
            .iter()
            .filter(|&(path, value)| value_at(base, path) != value)
            .map(|(path, _)| path.clone())
            .collect();
        if overwritten.is_empty() {
            record.end_contest();
            return Verdict::Write;
        }
        record.counted = version.map(str::to_owned);
        record.overwrites += 1;
        if record.overwrites < OVERWRITES {
            return Verdict::Write;
        }
        record.until = Some(now + self.backoff);
        let report = (!record.reported).then_some(overwritten);
        record.reported = true;
        Verdict::Hold {
            retry_in: self.backoff,
            report,
        }
    }

    /// Records a status write of `key`: `patch` (the merge patch sent) produced `written`.
    /// `exists` tells whether an object is still cached (records of others may be dropped).
    pub(crate) fn wrote(
        &self,
        key: &ObjectKey,
        patch: &Value,
        written: &Value,
        exists: impl Fn(&ObjectKey) -> bool,
    ) {
        let mut records = lock(&self.records);
        if records.objects.len() >= records.sweep_at {
            records.objects.retain(|key, _| exists(key));
            records.sweep_at = (records.objects.len() * 2).max(SWEEP_FLOOR);
        }
        let record = records.objects.entry(key.clone()).or_default();
        if let Some(status) = patch.get("status") {
            let mut path = vec!["status".to_owned()];
            leaves(status, &mut path, &mut |leaf| {
                record.fields.insert(leaf.to_vec(), Value::Null);
            });
        }
        for (path, value) in &mut record.fields {
            *value = value_at(written, path).clone();
        }
        if let Some(version) = written
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            if record.versions.len() == VERSIONS {
                record.versions.pop_front();
            }
            record.versions.push_back(version.to_owned());
        }
    }
}

impl Record {
    fn end_contest(&mut self) {
        self.overwrites = 0;
        self.reported = false;
    }
}

/// The value at `path` in `value`; `null` when absent.
fn value_at<'a>(value: &'a Value, path: &[String]) -> &'a Value {
    path.iter()
        .try_fold(value, |value, key| value.get(key))
        .unwrap_or(&Value::Null)
}

/// Calls `found` with the path of every leaf of a merge patch below `path` (an object's
/// fields, recursively; anything else, arrays and `null` included, is a leaf).
fn leaves(value: &Value, path: &mut FieldPath, found: &mut impl FnMut(&[String])) {
    match value {
        Value::Object(fields) => {
            for (key, child) in fields {
                path.push(key.clone());
                leaves(child, path, found);
                path.pop();
            }
        }
        _ => found(path),
    }
}

/// The field managers other than `ours` that own one of `fields` (or a field inside one) in
/// `managed` (`metadata.managedFields`), each once.
pub(crate) fn other_managers(
    managed: &[ManagedFieldsEntry],
    ours: &str,
    fields: &[FieldPath],
) -> Vec<String> {
    let mut managers: Vec<String> = managed
        .iter()
        .filter(|entry| entry.manager.as_deref() != Some(ours))
        .filter(|entry| {
            entry.fields_v1.as_ref().is_some_and(|owned| {
                fields.iter().any(|path| {
                    path.iter()
                        .try_fold(&owned.0, |node, key| node.get(format!("f:{key}")))
                        .is_some()
                })
            })
        })
        .filter_map(|entry| entry.manager.clone())
        .collect();
    managers.sort();
    managers.dedup();
    managers
}

/// Reports that `target` (of kind `info`) is contested: another field manager changed
/// `fields`, which this operator writes. A Warning event `SecondWriter` on it naming the other
/// manager (from `metadata.managedFields`, read with one GET, when the API server reports
/// them), the metric `contested_objects_total`, a log line.
pub(crate) async fn report(
    ctx: &Context,
    info: &KindInfo,
    target: &ObjectRef,
    fields: &[FieldPath],
) {
    let key = ObjectKey::of(target);
    let resource = &*info.api_resource;
    let api: Api<DynamicObject> = match &key.namespace {
        Some(namespace) => Api::namespaced_with(ctx.client.clone(), namespace, resource),
        None => Api::all_with(ctx.client.clone(), resource),
    };
    let managers = match api.get_metadata(&key.name).await {
        Ok(object) => other_managers(
            object
                .metadata
                .managed_fields
                .as_deref()
                .unwrap_or_default(),
            &ctx.field_manager,
            fields,
        ),
        Err(error) => {
            tracing::debug!(error = %capt_host_core::error_chain(&error), "managedFields not read");
            Vec::new()
        }
    };
    let who = match managers.as_slice() {
        [] => "another field manager (the API server does not say which)".to_owned(),
        names => format!("the field manager {}", names.join(", ")),
    };
    let fields: Vec<String> = fields.iter().map(|path| display(path)).collect();
    let fields = fields.join(", ");
    let backoff = ctx.contention.backoff();
    ctx.metrics.contention.contested.inc();
    tracing::warn!(
        object = %target,
        managers = ?managers,
        fields = %fields,
        ?backoff,
        "a second writer keeps overwriting status fields this operator writes: not writing them \
         for the back-off"
    );
    let note = format!(
        "{who} keeps overwriting status fields {} writes ({fields}): not writing this object's \
         status for {}s instead of fighting over it (see docs/second-writer.md)",
        ctx.field_manager,
        backoff.as_secs()
    );
    let uid = ctx.cache.uid(&key);
    if let Err(error) = ctx
        .events
        .warn(target, uid, "SecondWriter", &note, &ctx.metrics.events)
        .await
    {
        tracing::warn!(error = %capt_host_core::error_chain(&error), "warning event not recorded");
    }
}

/// `.status.ready`, as Kubernetes prints field paths.
pub(crate) fn display(path: &[String]) -> String {
    path.iter().map(|key| format!(".{key}")).collect()
}

/// Metrics of the contests.
#[derive(Debug)]
pub(crate) struct ContentionMetrics {
    pub(crate) contested: Counter,
}

impl ContentionMetrics {
    /// Registers `contested_objects_total`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let contested = Counter::default();
        registry.register(
            "contested_objects",
            "Objects found contested: another field manager kept overwriting the status fields \
             this operator writes, so it stopped writing them for --contested-backoff",
            contested.clone(),
        );
        Self { contested }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    use super::*;

    fn key() -> ObjectKey {
        ObjectKey::of(&capt_policy::ObjectRef::new(
            "example.com/v1",
            "Thing",
            Some("ns"),
            "t",
        ))
    }

    fn object(version: &str, ready: bool) -> Value {
        json!({"metadata": {"resourceVersion": version}, "status": {"ready": ready, "other": 1}})
    }

    fn patch() -> Value {
        json!({"metadata": {"resourceVersion": "x"}, "status": {"ready": true}})
    }

    /// A fight: we write ready=true (version `ours`), they write ready=false (`theirs`).
    fn fight(contention: &Contention, round: u32, now: Instant) -> Verdict {
        let verdict = contention.check(&key(), &object(&format!("theirs-{round}"), false), now);
        if verdict == Verdict::Write {
            contention.wrote(
                &key(),
                &patch(),
                &object(&format!("ours-{round}"), true),
                |_| true,
            );
        }
        verdict
    }

    #[test]
    fn repeated_overwrites_hold_the_object_and_are_reported_once() {
        let contention = Contention::new(Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(
            contention.check(&key(), &object("1", false), now),
            Verdict::Write
        );
        contention.wrote(&key(), &patch(), &object("ours-0", true), |_| true);
        for round in 1..OVERWRITES {
            assert_eq!(
                fight(&contention, round, now),
                Verdict::Write,
                "round {round}"
            );
        }
        let expected = Verdict::Hold {
            retry_in: Duration::from_secs(60),
            report: Some(vec![vec!["status".into(), "ready".into()]]),
        };
        assert_eq!(fight(&contention, OVERWRITES, now), expected);
        // Held for the back-off, whatever they write, without another report.
        let later = now + Duration::from_secs(10);
        assert_eq!(
            contention.check(&key(), &object("theirs-x", false), later),
            Verdict::Hold {
                retry_in: Duration::from_secs(50),
                report: None
            }
        );
        // After it, one write; overwritten again: held again, not reported again.
        let after = now + Duration::from_secs(61);
        assert_eq!(fight(&contention, 10, after), Verdict::Write);
        assert!(matches!(
            fight(&contention, 11, after),
            Verdict::Hold { report: None, .. }
        ));
    }

    #[test]
    fn our_own_versions_and_untouched_fields_are_no_contest() {
        let contention = Contention::new(Duration::from_secs(60));
        let now = Instant::now();
        contention.wrote(&key(), &patch(), &object("ours-0", true), |_| true);
        for round in 0..OVERWRITES * 2 {
            // Another writer changes fields this operator does not write.
            let mut theirs = object(&format!("theirs-{round}"), true);
            theirs["status"]["other"] = json!(round);
            assert_eq!(contention.check(&key(), &theirs, now), Verdict::Write);
            // A stale read of our own write.
            assert_eq!(
                contention.check(&key(), &object("ours-0", false), now),
                Verdict::Write
            );
        }
        // One overwrite at a time, each followed by our fields intact: never contested.
        for round in 0..OVERWRITES * 2 {
            assert_eq!(fight(&contention, round, now), Verdict::Write);
            let intact = object(&format!("ours-{round}"), true);
            assert_eq!(contention.check(&key(), &intact, now), Verdict::Write);
        }
        // One version counts once, however often it is reconciled.
        for _ in 0..OVERWRITES * 2 {
            assert_eq!(
                contention.check(&key(), &object("theirs-same", false), now),
                Verdict::Write
            );
        }
    }

    #[test]
    fn records_of_objects_gone_are_swept() {
        let contention = Contention::new(Duration::from_secs(60));
        for n in 0..SWEEP_FLOOR * 3 {
            let mut key = key();
            key.name = n.to_string();
            contention.wrote(&key, &patch(), &object("1", true), |_| false);
        }
        assert!(lock(&contention.records).objects.len() <= SWEEP_FLOOR);
    }

    #[test]
    fn the_other_managers_are_those_owning_a_contested_field() {
        let entry = |manager: &str, fields: Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        };
        let managed = [
            entry("capt-status", json!({"f:status": {"f:ready": {}}})),
            entry("capt-controller", json!({"f:status": {"f:ready": {}}})),
            entry("kubectl", json!({"f:spec": {"f:ready": {}}})),
            entry("other", json!({"f:status": {"f:phase": {}}})),
        ];
        let contested = [vec!["status".to_owned(), "ready".to_owned()]];
        assert_eq!(
            other_managers(&managed, "capt-status", &contested),
            ["capt-controller"]
        );
        assert_eq!(display(&contested[0]), ".status.ready");
    }
}

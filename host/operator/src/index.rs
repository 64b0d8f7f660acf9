//! [`TriggerIndex`]: everything the operator remembers per trigger object, in one place so
//! that one rule bounds it.
//!
//! For each trigger: the objects its last reconcile read (the trigger itself excluded; found or
//! reported missing; those of watched kinds, which send change events, apart from the others,
//! which only tell the next reconcile what to fetch up front), how many
//! reconciles in a row failed (the backoff), and the last Warning event the host recorded about
//! it (so that a failure repeating itself is recorded once). A reverse map answers "which
//! triggers read this object?" when the object changes.
//!
//! Bound: each reconcile *replaces* its trigger's read set, and a trigger's entry is removed
//! when the trigger is deleted. So the index holds, at any time, at most one entry per live
//! trigger, each with the objects of that trigger's last reconcile (at most what the policy
//! asked for in [`capt_host_core::rounds::MAX_ROUNDS`] rounds), and a reverse edge per such pair. It does
//! not grow with time, with the number of reconciles, or with objects that are created and
//! deleted: a deleted object stays only until the reconciles it re-triggers replace the sets
//! that mention it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::kinds::ObjectKey;

/// A Warning event the host recorded about a trigger: `(reason, message)`.
pub type Warning = (String, String);

/// What the operator keeps about one trigger.
#[derive(Debug, Default)]
struct Entry {
    /// What the last reconcile read of watched kinds (each key shared with `readers`).
    reads: Vec<Arc<ObjectKey>>,
    /// What the last reconcile read of kinds that are not watched (they trigger nothing).
    unwatched: Vec<ObjectKey>,
    failures: u32,
    warning: Option<Warning>,
}

/// Per-trigger state and the reverse dependency map. See the module docs for the bound.
///
/// Every object appears once as an `Arc<ObjectKey>`, shared by the forward and the reverse
/// map: at 10,000 clusters the index holds some 100,000 edges, and a key is four strings.
#[derive(Debug, Default)]
pub struct TriggerIndex {
    triggers: HashMap<Arc<ObjectKey>, Entry>,
    /// The triggers that read each object (a handful each: a list, not a set).
    readers: HashMap<Arc<ObjectKey>, Vec<Arc<ObjectKey>>>,
    /// The number of (object, reader) pairs in `readers`, kept as they change: every reconcile
    /// reports it, and counting it there would cost a walk over the whole index.
    edges: usize,
}

impl TriggerIndex {
    /// Replaces what `trigger`'s reconciles read with `reads` (the trigger itself is ignored).
    pub fn record_reads(&mut self, trigger: &ObjectKey, reads: HashSet<ObjectKey>) {
        let trigger = self.shared(trigger);
        let mut reads: Vec<_> = reads
            .iter()
            .filter(|read| *read != &*trigger)
            .map(|read| self.shared(read))
            .collect();
        reads.shrink_to_fit();
        let entry = self.triggers.entry(trigger.clone()).or_default();
        let old = std::mem::replace(&mut entry.reads, reads);
        let new = &entry.reads;
        for stale in old.iter().filter(|read| !new.contains(read)) {
            if unlink(&mut self.readers, stale, &trigger) {
                self.edges -= 1;
            }
        }
        for added in new.iter().filter(|read| !old.contains(read)) {
            let readers = self.readers.entry(added.clone()).or_default();
            if !readers.contains(&trigger) {
                readers.push(trigger.clone());
                self.edges += 1;
            }
        }
    }

    /// Replaces what `trigger`'s reconciles read of kinds that are not watched.
    pub fn record_unwatched_reads(&mut self, trigger: &ObjectKey, reads: Vec<ObjectKey>) {
        self.entry(trigger).unwatched = reads;
    }

    /// Everything `trigger`'s last reconcile read, watched or not (the trigger excluded): what
    /// its next reconcile most likely needs.
    pub fn last_reads(&self, trigger: &ObjectKey) -> Vec<ObjectKey> {
        self.triggers.get(trigger).map_or_else(Vec::new, |entry| {
            let watched = entry.reads.iter().map(|read| &**read);
            watched.chain(&entry.unwatched).cloned().collect()
        })
    }

    /// The triggers whose last reconcile read `object`.
    pub fn readers_of(&self, object: &ObjectKey) -> impl Iterator<Item = &ObjectKey> {
        self.readers
            .get(object)
            .into_iter()
            .flatten()
            .map(|reader| &**reader)
    }

    /// Forgets everything about `trigger` (it was deleted).
    pub fn forget(&mut self, trigger: &ObjectKey) {
        if let Some(entry) = self.triggers.remove(trigger) {
            for read in &entry.reads {
                if unlink(&mut self.readers, read, trigger) {
                    self.edges -= 1;
                }
            }
        }
    }

    /// Counts a failed reconcile of `trigger`; returns the failures in a row, this one included.
    pub fn failed(&mut self, trigger: &ObjectKey) -> u32 {
        let entry = self.entry(trigger);
        entry.failures = entry.failures.saturating_add(1);
        entry.failures
    }

    /// The failures in a row of `trigger` (0 after a success).
    pub fn failures(&self, trigger: &ObjectKey) -> u32 {
        self.triggers.get(trigger).map_or(0, |e| e.failures)
    }

    /// Records a successful reconcile: resets the failure count and the last warning.
    pub fn succeeded(&mut self, trigger: &ObjectKey) {
        if let Some(entry) = self.triggers.get_mut(trigger) {
            entry.failures = 0;
            entry.warning = None;
        }
    }

    /// Remembers `warning` as the last one recorded about `trigger`; false when it is the
    /// same as the last one (it need not be recorded again).
    pub fn warn(&mut self, trigger: &ObjectKey, warning: Warning) -> bool {
        let entry = self.entry(trigger);
        if entry.warning.as_ref() == Some(&warning) {
            return false;
        }
        entry.warning = Some(warning);
        true
    }

    /// How many triggers and dependency edges the index holds.
    pub fn size(&self) -> (usize, usize) {
        (self.triggers.len(), self.edges)
    }

    /// The entry of `trigger`, created if needed.
    fn entry(&mut self, trigger: &ObjectKey) -> &mut Entry {
        let trigger = self.shared(trigger);
        self.triggers.entry(trigger).or_default()
    }

    /// The index's own copy of `key`, if it has one, else a new one.
    fn shared(&self, key: &ObjectKey) -> Arc<ObjectKey> {
        self.readers
            .get_key_value(key)
            .map(|(shared, _)| shared)
            .or_else(|| self.triggers.get_key_value(key).map(|(shared, _)| shared))
            .map_or_else(|| Arc::new(key.clone()), Arc::clone)
    }
}

/// Removes `trigger` from the readers of `object`; true if it was one.
fn unlink(
    readers: &mut HashMap<Arc<ObjectKey>, Vec<Arc<ObjectKey>>>,
    object: &ObjectKey,
    trigger: &ObjectKey,
) -> bool {
    let Some(list) = readers.get_mut(object) else {
        return false;
    };
    let Some(position) = list.iter().position(|reader| **reader == *trigger) else {
        return false;
    };
    list.swap_remove(position);
    if list.is_empty() {
        readers.remove(object);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::KindKey;

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            kind: KindKey::new("example.com", "Thing"),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    fn set(names: &[&str]) -> HashSet<ObjectKey> {
        names.iter().map(|n| key(n)).collect()
    }

    fn readers(index: &TriggerIndex, name: &str) -> Vec<String> {
        let mut names: Vec<_> = index
            .readers_of(&key(name))
            .map(|k| k.name.clone())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn each_reconcile_replaces_the_read_set_of_its_trigger() {
        let mut index = TriggerIndex::default();
        index.record_reads(&key("t1"), set(&["a", "b"]));
        index.record_reads(&key("t2"), set(&["b"]));
        assert_eq!(readers(&index, "b"), ["t1", "t2"]);
        index.record_reads(&key("t1"), set(&["c"]));
        assert_eq!(readers(&index, "a"), Vec::<String>::new());
        assert_eq!(readers(&index, "b"), ["t2"]);
        assert_eq!(readers(&index, "c"), ["t1"]);
        assert_eq!(index.size(), (2, 2));
        // The edge count is kept, not recounted: reading the same set again changes nothing.
        index.record_reads(&key("t1"), set(&["c", "t1"]));
        assert_eq!(index.size(), (2, 2));
    }

    #[test]
    fn the_last_reads_are_the_watched_and_the_unwatched_ones() {
        let mut index = TriggerIndex::default();
        assert!(index.last_reads(&key("t")).is_empty());
        index.record_reads(&key("t"), set(&["t", "a", "b"]));
        index.record_unwatched_reads(&key("t"), vec![key("s")]);
        let mut reads: Vec<_> = index
            .last_reads(&key("t"))
            .into_iter()
            .map(|k| k.name)
            .collect();
        reads.sort();
        assert_eq!(reads, ["a", "b", "s"]);
        assert!(
            readers(&index, "s").is_empty(),
            "unwatched reads trigger nothing"
        );
        index.forget(&key("t"));
        assert!(index.last_reads(&key("t")).is_empty());
    }

    #[test]
    fn a_trigger_is_not_its_own_reader() {
        let mut index = TriggerIndex::default();
        index.record_reads(&key("t"), set(&["t", "a"]));
        assert!(readers(&index, "t").is_empty());
        assert_eq!(index.size(), (1, 1));
    }

    #[test]
    fn forgetting_a_trigger_removes_every_trace_of_it() {
        let mut index = TriggerIndex::default();
        index.record_reads(&key("t"), set(&["a", "b"]));
        index.failed(&key("t"));
        index.warn(&key("t"), ("Failed".into(), "boom".into()));
        index.forget(&key("t"));
        assert_eq!(index.size(), (0, 0));
        assert_eq!(index.failures(&key("t")), 0);
    }

    #[test]
    fn the_same_warning_is_recorded_once_until_a_success() {
        let mut index = TriggerIndex::default();
        let warning = || ("Failed".to_owned(), "boom".to_owned());
        assert!(index.warn(&key("t"), warning()));
        assert!(!index.warn(&key("t"), warning()));
        assert!(index.warn(&key("t"), ("Failed".into(), "other".into())));
        assert_eq!(index.failed(&key("t")), 1);
        assert_eq!(index.failed(&key("t")), 2);
        index.succeeded(&key("t"));
        assert_eq!(index.failures(&key("t")), 0);
        assert!(index.warn(&key("t"), warning()));
    }
}

//! [`OwnWrites`]: the operator's own writes, per object, so that their watch events (their
//! *echoes*) do not reconcile their writers again.
//!
//! A trigger's reconcile computed the version it writes, and a response settles its trigger
//! (`reconcile` in `wit/policy.wit`): the watch event of that version must not reconcile the
//! writer again, while every other trigger that reads the object still runs. The event may
//! arrive before the write's response says which version it produced, so the changes of an
//! object are held while one of the operator's writes of it is in flight, and released when
//! the write returns, without the writer for its own version.
//!
//! Bound: one entry per object with a write in flight or an echo awaited, with at most
//! [`MAX_AWAITED`] echoes (an echo can be lost: a re-list reports only an object's latest
//! version); the held changes of an object are released with its last write in flight; a
//! deletion forgets the awaited echoes.

use std::collections::{HashMap, VecDeque};

use super::kinds::ObjectKey;

/// The most echoes awaited per object; older ones are forgotten (their writers then run once
/// more, which is harmless).
pub(crate) const MAX_AWAITED: usize = 4;

/// One change of an object, and the triggers it would reconcile.
#[derive(Debug)]
pub(crate) struct Change {
    /// The object's new version; `None` when it was deleted.
    pub(crate) version: Option<String>,
    /// The triggers to reconcile.
    pub(crate) targets: Vec<ObjectKey>,
}

/// The operator's writes in flight and the echoes awaited, by object. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct OwnWrites {
    objects: HashMap<ObjectKey, Entry>,
}

#[derive(Debug, Default)]
struct Entry {
    /// The triggers whose write of the object is in flight.
    writing: Vec<ObjectKey>,
    /// Changes that arrived meanwhile, in order.
    held: Vec<Change>,
    /// Versions the operator's writes produced, with their writers, oldest first.
    awaited: VecDeque<(String, ObjectKey)>,
}

impl OwnWrites {
    /// The triggers `change` of `object` reconciles now: none while a write of the object is in
    /// flight (the change is held), else its targets without the writer it is the echo of.
    pub(crate) fn route(&mut self, object: &ObjectKey, change: Change) -> Vec<ObjectKey> {
        let Some(entry) = self.objects.get_mut(object) else {
            return change.targets;
        };
        if !entry.writing.is_empty() {
            entry.held.push(change);
            return Vec::new();
        }
        let targets = entry.without_echo(change);
        self.forget_if_idle(object);
        targets
    }

    /// `writer`'s reconcile starts writing `object`.
    pub(crate) fn start(&mut self, object: ObjectKey, writer: ObjectKey) {
        self.objects.entry(object).or_default().writing.push(writer);
    }

    /// `writer`'s write of `object` returned, producing `version` (`None`: it failed). Returns
    /// the triggers the changes held meanwhile reconcile, once no write of it is in flight.
    pub(crate) fn finish(
        &mut self,
        object: &ObjectKey,
        writer: &ObjectKey,
        version: Option<String>,
    ) -> Vec<ObjectKey> {
        let Some(entry) = self.objects.get_mut(object) else {
            return Vec::new();
        };
        if let Some(position) = entry.writing.iter().position(|w| w == writer) {
            entry.writing.swap_remove(position);
        }
        if let Some(version) = version {
            if entry.awaited.len() == MAX_AWAITED {
                entry.awaited.pop_front();
            }
            entry.awaited.push_back((version, writer.clone()));
        }
        let mut targets = Vec::new();
        if entry.writing.is_empty() {
            for change in std::mem::take(&mut entry.held) {
                targets.extend(entry.without_echo(change));
            }
        }
        self.forget_if_idle(object);
        targets
    }

    /// How many objects have a write in flight or an echo awaited.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.objects.len()
    }

    fn forget_if_idle(&mut self, object: &ObjectKey) {
        if self
            .objects
            .get(object)
            .is_some_and(|e| e.writing.is_empty() && e.awaited.is_empty())
        {
            self.objects.remove(object);
        }
    }
}

impl Entry {
    /// The targets of `change`, without the writer whose echo it is; a deletion ends every
    /// echo awaited.
    fn without_echo(&mut self, change: Change) -> Vec<ObjectKey> {
        let Change {
            version,
            mut targets,
        } = change;
        let Some(version) = version else {
            self.awaited.clear();
            return targets;
        };
        if let Some(position) = self.awaited.iter().position(|(v, _)| *v == version)
            && let Some((_, writer)) = self.awaited.remove(position)
        {
            tracing::trace!(%writer, version, "the echo of a trigger's own write");
            targets.retain(|target| *target != writer);
        }
        targets
    }
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

    fn change(version: Option<&str>, targets: &[&str]) -> Change {
        Change {
            version: version.map(str::to_owned),
            targets: targets.iter().map(|t| key(t)).collect(),
        }
    }

    fn names(targets: Vec<ObjectKey>) -> Vec<String> {
        targets.into_iter().map(|k| k.name).collect()
    }

    #[test]
    fn the_echo_of_a_write_skips_only_its_writer_and_only_once() {
        let mut own = OwnWrites::default();
        own.start(key("o"), key("t1"));
        assert!(
            own.finish(&key("o"), &key("t1"), Some("5".into()))
                .is_empty()
        );
        let route = |own: &mut OwnWrites, version| {
            names(own.route(&key("o"), change(Some(version), &["t1", "t2"])))
        };
        assert_eq!(route(&mut own, "4"), ["t1", "t2"], "an earlier change");
        assert_eq!(route(&mut own, "5"), ["t2"], "the echo");
        assert_eq!(route(&mut own, "5"), ["t1", "t2"], "taken once");
        assert_eq!(own.len(), 0, "nothing left once the echo arrived");
    }

    #[test]
    fn changes_during_a_write_are_held_until_it_returns() {
        let mut own = OwnWrites::default();
        own.start(key("o"), key("t1"));
        own.start(key("o"), key("t2"));
        // The echo arrives before the write's response, then somebody else's change.
        assert!(
            own.route(&key("o"), change(Some("5"), &["t1", "t2"]))
                .is_empty()
        );
        assert!(
            own.route(&key("o"), change(Some("6"), &["t1", "t2"]))
                .is_empty()
        );
        assert!(
            own.finish(&key("o"), &key("t1"), Some("5".into()))
                .is_empty(),
            "t2 still writing"
        );
        let released = own.finish(&key("o"), &key("t2"), None);
        assert_eq!(
            names(released),
            ["t2", "t1", "t2"],
            "t1's echo without t1; the rest"
        );
        assert_eq!(own.len(), 0);
    }

    #[test]
    fn a_deletion_ends_the_echoes_and_old_echoes_are_forgotten() {
        let mut own = OwnWrites::default();
        for version in 1..=MAX_AWAITED + 1 {
            own.start(key("o"), key("t"));
            own.finish(&key("o"), &key("t"), Some(version.to_string()));
        }
        let route =
            |own: &mut OwnWrites, version| names(own.route(&key("o"), change(version, &["t"])));
        assert_eq!(
            route(&mut own, Some("1")),
            ["t"],
            "the oldest was forgotten"
        );
        assert!(route(&mut own, Some("2")).is_empty());
        assert_eq!(route(&mut own, None), ["t"], "a deletion");
        assert_eq!(own.len(), 0);
        assert_eq!(route(&mut own, Some("3")), ["t"]);
    }
}

//! The objects of one request: lookup by reference, requirement collection, and typed reads of
//! JSON fields with precise errors.

use std::borrow::Cow;
use std::cell::RefCell;

use serde_json::Value;

use crate::contract::{Error, ObjectRef, Request};

/// Why a reconcile stops before producing a response.
#[derive(Debug)]
pub enum Halt {
    /// Objects are needed that the host has not sent yet (collected in [`Inputs`]).
    Need,
    /// The reconcile failed.
    Fail(Error),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Fail(e)
    }
}

/// The observed objects of a request, parsed once.
pub struct Inputs {
    objects: Vec<(ObjectRef, Value)>,
    missing: Vec<ObjectRef>,
    needed: RefCell<Vec<ObjectRef>>,
}

impl Inputs {
    /// Parses every manifest of the request.
    pub fn new(request: &Request) -> Result<Self, Error> {
        let objects = request
            .objects
            .iter()
            .map(|o| {
                let value: Value = serde_json::from_str(&o.manifest).map_err(|e| {
                    Error::InvalidInput(format!("{}: manifest is not valid JSON: {e}", o.reference))
                })?;
                if !value.is_object() {
                    return Err(Error::InvalidInput(format!(
                        "{}: manifest is not a JSON object",
                        o.reference
                    )));
                }
                Ok((o.reference.clone(), value))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            objects,
            missing: request.missing.clone(),
            needed: RefCell::new(Vec::new()),
        })
    }

    /// The object, `None` when the host reported it missing, or [`Halt::Need`] (recording the
    /// requirement) when the host has not been asked for it yet.
    pub fn get(&self, reference: &ObjectRef) -> Result<Option<Fields<'_>>, Halt> {
        self.require(std::slice::from_ref(reference))?;
        Ok(self.find(reference))
    }

    /// Records every reference the host has not answered yet; [`Halt::Need`] if there was one.
    /// Asking for several objects at once saves round trips.
    pub fn require(&self, references: &[ObjectRef]) -> Result<(), Halt> {
        let mut needed = self.needed.borrow_mut();
        let mut any = false;
        for r in references {
            if self.find(r).is_none() && !self.missing.iter().any(|m| m.same_object(r)) {
                any = true;
                if !needed.iter().any(|n| n.same_object(r)) {
                    needed.push(r.clone());
                }
            }
        }
        if any { Err(Halt::Need) } else { Ok(()) }
    }

    /// The object if the host sent it, without asking for it.
    pub fn find(&self, reference: &ObjectRef) -> Option<Fields<'_>> {
        self.objects
            .iter()
            .find(|(r, _)| r.same_object(reference))
            .map(|(r, v)| Fields::new(r, v))
    }

    /// The requirements collected so far.
    pub fn into_requirements(self) -> Vec<ObjectRef> {
        self.needed.into_inner()
    }
}

/// Typed, located reads of one object's JSON: each accessor names the object and field in its
/// error, so a malformed object yields a precise `invalid-input` error instead of a guess.
#[derive(Clone, Copy)]
pub struct Fields<'a> {
    /// The object, for error messages.
    pub owner: &'a ObjectRef,
    /// The JSON being read.
    pub value: &'a Value,
}

impl<'a> Fields<'a> {
    /// Reads `value` as part of `owner`.
    pub fn new(owner: &'a ObjectRef, value: &'a Value) -> Self {
        Self { owner, value }
    }

    /// The value at a dotted path: `Value::pointer` of the path with `.` read as `/`, walked
    /// in place rather than through a pointer string built for each read.
    fn at(&self, path: &str) -> Option<&'a Value> {
        path.split(['.', '/'])
            .try_fold(self.value, |target, token| {
                let token = if token.contains('~') {
                    Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
                } else {
                    Cow::Borrowed(token)
                };
                match target {
                    Value::Object(map) => map.get(token.as_ref()),
                    Value::Array(list) => array_index(&token).and_then(|i| list.get(i)),
                    _ => None,
                }
            })
            .filter(|v| !v.is_null())
    }

    fn wrong(&self, path: &str, expected: &str) -> Error {
        Error::InvalidInput(format!("{}: {path} must be {expected}", self.owner))
    }

    /// A string field (dotted path); absent or null is `None`, another type is an error.
    pub fn str(&self, path: &str) -> Result<Option<&'a str>, Error> {
        match self.at(path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(path, "a string")),
        }
    }

    /// A non-empty string field; empty counts as absent.
    pub fn non_empty(&self, path: &str) -> Result<Option<&'a str>, Error> {
        Ok(self.str(path)?.filter(|s| !s.is_empty()))
    }

    /// A boolean field.
    pub fn bool(&self, path: &str) -> Result<Option<bool>, Error> {
        match self.at(path) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(path, "a boolean")),
        }
    }

    /// An integer field.
    pub fn int(&self, path: &str) -> Result<Option<i64>, Error> {
        match self.at(path) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(path, "an integer")),
        }
    }

    /// An object field (absent is `None`).
    pub fn object(&self, path: &str) -> Result<Option<&'a serde_json::Map<String, Value>>, Error> {
        match self.at(path) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(self.wrong(path, "an object")),
        }
    }

    /// An array field (absent is empty).
    pub fn array(&self, path: &str) -> Result<&'a [Value], Error> {
        match self.at(path) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.wrong(path, "a list")),
        }
    }

    /// A metadata annotation's value.
    pub fn annotation(&self, key: &str) -> Result<Option<&'a str>, Error> {
        match self
            .object("metadata.annotations")?
            .and_then(|m| m.get(key))
        {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(&format!("metadata.annotations[{key}]"), "a string")),
        }
    }

    /// `metadata.generation`, 1 when unset (new objects).
    pub fn generation(&self) -> Result<i64, Error> {
        Ok(self.int("metadata.generation")?.unwrap_or(1))
    }

    /// `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Result<Option<String>, Error> {
        Ok(self.str("metadata.resourceVersion")?.map(str::to_owned))
    }
}

/// An array index in a JSON pointer, as `Value::pointer` reads it: decimal, no sign, no
/// leading zeros.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ObservedObject;
    use serde_json::json;

    fn cm(name: &str) -> ObjectRef {
        ObjectRef::new("v1", "ConfigMap", Some("default"), name)
    }

    fn request(objects: &[(&ObjectRef, &str)], missing: &[&ObjectRef]) -> Request {
        Request {
            trigger: cm("a"),
            now_epoch_millis: 0,
            objects: objects
                .iter()
                .map(|(r, m)| ObservedObject {
                    reference: (*r).clone(),
                    manifest: (*m).to_owned(),
                })
                .collect(),
            missing: missing.iter().map(|r| (*r).clone()).collect(),
            settings: "{}".into(),
        }
    }

    #[test]
    fn unknown_objects_become_requirements_once_and_missing_ones_are_none() {
        let (a, b, c) = (cm("a"), cm("b"), cm("c"));
        let inputs = Inputs::new(&request(&[(&a, "{}")], &[&b])).unwrap();
        assert!(inputs.get(&a).unwrap().is_some());
        assert!(inputs.get(&b).unwrap().is_none());
        assert!(matches!(inputs.get(&c), Err(Halt::Need)));
        assert!(matches!(
            inputs.require(&[a.clone(), c.clone()]),
            Err(Halt::Need)
        ));
        assert_eq!(inputs.into_requirements(), vec![c]);
    }

    #[test]
    fn malformed_manifests_are_invalid_input() {
        let a = cm("a");
        for bad in ["{", "[]"] {
            let err = Inputs::new(&request(&[(&a, bad)], &[])).err().unwrap();
            assert!(
                matches!(err, Error::InvalidInput(ref m) if m.contains("ConfigMap/default/a")),
                "{err}"
            );
        }
    }

    #[test]
    fn fields_name_the_object_and_path_on_type_errors() {
        let a = cm("a");
        let v = json!({"spec": {"region": 5, "name": "", "ok": "x"}, "metadata": {"annotations": {"k": "v"}}});
        let f = Fields::new(&a, &v);
        let err = f.str("spec.region").unwrap_err().to_string();
        assert!(
            err.contains("ConfigMap/default/a: spec.region must be a string"),
            "{err}"
        );
        assert_eq!(f.non_empty("spec.name").unwrap(), None);
        assert_eq!(f.str("spec.ok").unwrap(), Some("x"));
        assert_eq!(f.str("spec.absent.deeper").unwrap(), None);
        assert_eq!(f.annotation("k").unwrap(), Some("v"));
        assert_eq!(f.generation().unwrap(), 1);
    }

    #[test]
    fn paths_read_like_json_pointers() {
        let a = cm("a");
        let v = json!({"a": {"b/c": {"~d": [10, {"e": "x"}]}, "n": null}});
        let f = Fields::new(&a, &v);
        for path in [
            "a.b~1c.~0d.1.e",
            "a/b~1c/~0d/1/e",
            "a.n",
            "a.b~1c.~0d.01.e",
            "a.x",
            "",
        ] {
            let pointer = format!("/{}", path.replace('.', "/"));
            let expected = v.pointer(&pointer).filter(|v| !v.is_null());
            assert_eq!(f.at(path), expected, "{path}");
        }
        assert_eq!(f.str("a.b~1c.~0d.1.e").unwrap(), Some("x"));
    }
}

//! Test fixtures: object builders and a tiny world that runs requirement rounds and applies
//! patches the way the API server does, so behaviour tests read like scenarios.

use serde_json::{Value, json};

use crate::contract::{ObjectRef, ObservedObject, Request, Response, Subresource};
use crate::time::parse_timestamp;

/// The namespace of every fixture object.
pub const NS: &str = "default";

/// A Cluster API Cluster referencing CAPTCluster and CAPTControlPlane `name`.
pub fn cluster(name: &str) -> Value {
    json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster", "name": name, "namespace": NS},
            "controlPlaneRef": {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane", "name": name, "namespace": NS}
        }
    })
}

fn owned_by(name: &str) -> Value {
    json!([{"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "name": name, "uid": "u-cluster"}])
}

/// A CAPTCluster owned by Cluster `name`, building its VPC from a template.
pub fn capt_cluster(name: &str) -> Value {
    json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "CAPTCluster",
        "metadata": {"name": name, "namespace": NS, "ownerReferences": owned_by(name)},
        "spec": {"region": "ap-northeast-1", "vpcTemplateRef": {"name": "vpc-template", "namespace": NS}}
    })
}

/// A CAPTControlPlane owned by Cluster `name`.
pub fn control_plane(name: &str) -> Value {
    json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane",
        "metadata": {"name": name, "namespace": NS, "ownerReferences": owned_by(name)},
        "spec": {"version": "1.31", "workspaceTemplateRef": {"name": "eks-template", "namespace": NS}}
    })
}

/// A WorkspaceTemplateApply naming Workspace `workspace`.
pub fn apply(name: &str, workspace: &str) -> Value {
    json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "WorkspaceTemplateApply",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"templateRef": {"name": "t"}, "writeConnectionSecretToRef": {"name": format!("{workspace}-connection"), "namespace": NS}},
        "status": {"workspaceName": workspace}
    })
}

/// A Workspace with `Synced`/`Ready` conditions (`None`: condition absent) and outputs.
pub fn workspace(name: &str, synced: Option<&str>, ready: Option<&str>, outputs: Value) -> Value {
    let mut conditions = Vec::new();
    for (kind, status) in [("Synced", synced), ("Ready", ready)] {
        if let Some(status) = status {
            conditions.push(json!({"type": kind, "status": status, "reason": "R", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}));
        }
    }
    json!({
        "apiVersion": "tf.upbound.io/v1beta1", "kind": "Workspace",
        "metadata": {"name": name, "generation": 1},
        "status": {"conditions": conditions, "atProvider": {"outputs": outputs}}
    })
}

/// Puts a WorkspaceTemplateApply `name` and its Workspace `workspace`: synced, still applying.
pub fn put_applying(w: &mut World, name: &str, workspace_name: &str) {
    w.put(apply(name, workspace_name));
    w.put(workspace(
        workspace_name,
        Some("True"),
        Some("False"),
        json!({}),
    ));
}

/// The reference of a manifest.
pub fn reference(manifest: &Value) -> ObjectRef {
    let s = |p: &str| manifest.pointer(p).and_then(Value::as_str);
    ObjectRef::new(
        s("/apiVersion").unwrap_or_default(),
        s("/kind").unwrap_or_default(),
        s("/metadata/namespace"),
        s("/metadata/name").unwrap_or_default(),
    )
}

/// RFC 7396 merge.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// A set of objects that reconciles like a host and applies writes like the API server.
pub struct World {
    /// The objects.
    pub objects: Vec<Value>,
    /// Settings overrides (JSON object).
    pub settings: Value,
    next_version: u64,
}

impl World {
    /// A world of these objects (resourceVersion and generation filled in).
    pub fn new(objects: Vec<Value>) -> Self {
        let mut world = Self {
            objects: Vec::new(),
            settings: json!({}),
            next_version: 1,
        };
        for o in objects {
            world.put(o);
        }
        world
    }

    /// Creates or merges an object, as another controller or a user would.
    pub fn put(&mut self, mut manifest: Value) {
        let r = reference(&manifest);
        let version = self.bump();
        match self
            .objects
            .iter_mut()
            .find(|o| reference(o).same_object(&r))
        {
            Some(existing) => {
                let spec_before = existing.get("spec").cloned();
                merge(existing, &manifest);
                if existing.get("spec").cloned() != spec_before {
                    let generation = existing
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    existing["metadata"]["generation"] = json!(generation.saturating_add(1));
                }
                existing["metadata"]["resourceVersion"] = json!(version);
            }
            None => {
                manifest["metadata"]["resourceVersion"] = json!(version);
                if manifest.pointer("/metadata/generation").is_none() {
                    manifest["metadata"]["generation"] = json!(1);
                }
                self.objects.push(manifest);
            }
        }
    }

    fn bump(&mut self) -> String {
        self.next_version += 1;
        self.next_version.to_string()
    }

    /// The object of this kind and name.
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    /// Reconciles `kind`/`name` at `now` (RFC 3339) through requirement rounds, applies the
    /// response and returns it.
    pub fn reconcile(
        &mut self,
        kind: &str,
        name: &str,
        now: &str,
    ) -> Result<Response, crate::contract::Error> {
        self.reconcile_at(kind, name, parse_timestamp(now).expect("fixture time"))
    }

    /// [`World::reconcile`] at `now`, in milliseconds since the epoch.
    pub fn reconcile_at(
        &mut self,
        kind: &str,
        name: &str,
        now: i64,
    ) -> Result<Response, crate::contract::Error> {
        let trigger = reference(self.get(kind, name));
        let mut request = Request {
            trigger: trigger.clone(),
            now_epoch_millis: now,
            objects: vec![self.observed(&trigger).expect("trigger exists")],
            missing: Vec::new(),
            settings: self.settings.to_string(),
        };
        for _ in 0..8 {
            let response = crate::reconcile(&request)?;
            if response.requirements.is_empty() {
                self.write(&response);
                return Ok(response);
            }
            for r in response.requirements {
                match self.observed(&r) {
                    Some(o) => request.objects.push(o),
                    None => request.missing.push(r),
                }
            }
        }
        panic!("too many requirement rounds")
    }

    fn observed(&self, r: &ObjectRef) -> Option<ObservedObject> {
        self.objects
            .iter()
            .find(|o| reference(o).same_object(r))
            .map(|o| ObservedObject {
                reference: reference(o),
                manifest: o.to_string(),
            })
    }

    /// Applies patches like the API server: preconditions (chained within one response),
    /// status-only or spec-only writes, generation bumps on spec changes.
    fn write(&mut self, response: &Response) {
        let mut produced: Vec<(ObjectRef, String, String)> = Vec::new();
        for p in &response.patches {
            let version = self.bump();
            let object = self
                .objects
                .iter_mut()
                .find(|o| reference(o).same_object(&p.target))
                .expect("patched object exists");
            let current = object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let expected = produced
                .iter()
                .rev()
                .find(|(r, from, _)| {
                    r.same_object(&p.target) && Some(from) == p.resource_version.as_ref()
                })
                .map(|(_, _, to)| to.clone())
                .or(p.resource_version.clone());
            assert_eq!(
                expected.as_deref(),
                Some(current.as_str()),
                "conflict on {}",
                p.target
            );
            let mut body: Value = serde_json::from_str(&p.merge_patch).expect("patch is JSON");
            let body = body.as_object_mut().expect("patch is an object");
            let spec_before = object.get("spec").cloned();
            match p.subresource {
                Subresource::Status => merge(object, &json!({"status": body.remove("status")})),
                Subresource::Main => {
                    body.remove("status");
                    merge(object, &Value::Object(body.clone()));
                }
            }
            if object.get("spec").cloned() != spec_before {
                let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
                object["metadata"]["generation"] = json!(generation.saturating_add(1));
            }
            object["metadata"]["resourceVersion"] = json!(version);
            produced.push((
                p.target.clone(),
                p.resource_version.clone().unwrap_or_default(),
                version,
            ));
        }
    }
}

/// The condition of type `kind` of an object.
pub fn condition<'a>(object: &'a Value, kind: &str) -> &'a Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// `(status, reason)` of a condition, for compact assertions.
pub fn state(object: &Value, kind: &str) -> (String, String) {
    let c = condition(object, kind);
    (
        c["status"].as_str().unwrap_or("-").to_owned(),
        c["reason"].as_str().unwrap_or("-").to_owned(),
    )
}

/// `(status, reason)` literal.
pub fn is(status: &str, reason: &str) -> (String, String) {
    (status.to_owned(), reason.to_owned())
}

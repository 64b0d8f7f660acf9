//! CAPT objects for the operator and swap tests (each test binary includes this file with
//! `#[path]`): the simulated CAPT world of `capt-status-sim` on either backend, with readers
//! that go to the in-process server's store (so they do not count as requests) or, on the
//! real server, to the API as the administrator, and steps that fail the test when they fail. The including binary provides `crate::eventually`.
//!
//! Each binary uses a subset, hence `allow(dead_code)` where it is included.

use std::ops::Deref;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

pub use capt_status_sim::condition_of;
#[allow(unused_imports, reason = "each binary uses part of it")]
pub use capt_status_sim::objects::endpoint_url;

use crate::backend::{Reads, TestServer};
use crate::eventually;

/// The CAPT objects of the `default` namespace, and the test's part of Crossplane. Writes go
/// through the API; reads come from the server's store. Derefs to the simulation (its APIs).
pub struct Capt {
    sim: capt_status_sim::Capt,
    reads: Reads,
}

impl Deref for Capt {
    type Target = capt_status_sim::Capt;

    fn deref(&self) -> &Self::Target {
        &self.sim
    }
}

impl Capt {
    /// The APIs, through `server`'s administrator client.
    pub fn new(server: &impl TestServer) -> Self {
        Self {
            sim: capt_status_sim::Capt::new(&server.client(), "default"),
            reads: server.reads(),
        }
    }

    /// [`capt_status_sim::Capt::create_with`], or the test fails.
    pub async fn create_with(&self, name: &str, capt_cluster_spec: Value) {
        self.sim
            .create_with(name, capt_cluster_spec)
            .await
            .unwrap_or_else(|e| panic!("creating cluster {name}: {e}"));
    }

    /// [`capt_status_sim::Capt::create`], or the test fails.
    pub async fn create(&self, name: &str) {
        self.sim
            .create(name)
            .await
            .unwrap_or_else(|e| panic!("creating cluster {name}: {e}"));
    }

    /// [`capt_status_sim::Capt::provision_vpc`], or the test fails.
    pub async fn provision_vpc(&self, name: &str) {
        self.sim
            .provision_vpc(name)
            .await
            .unwrap_or_else(|e| panic!("provisioning the VPC of {name}: {e}"));
    }

    /// [`capt_status_sim::Capt::provision_control_plane`], or the test fails.
    pub async fn provision_control_plane(&self, name: &str) {
        self.sim
            .provision_control_plane(name)
            .await
            .unwrap_or_else(|e| panic!("provisioning the control plane of {name}: {e}"));
    }

    /// Everything of cluster `name`, from creation to both objects Ready.
    pub async fn converge(&self, name: &str) {
        self.create(name).await;
        self.provision_vpc(name).await;
        self.provision_control_plane(name).await;
        eventually(&format!("{name} to converge"), || self.converged(name)).await;
    }

    /// True when the CAPTCluster, the CAPTControlPlane and the Cluster `name` are all ready.
    pub async fn converged(&self, name: &str) -> bool {
        capt_status_sim::converged(
            self.cluster(name).await.as_ref(),
            self.capt_cluster(name).await.as_ref(),
            self.control_plane(name).await.as_ref(),
        )
    }

    /// The Cluster `name`, as stored.
    pub async fn cluster(&self, name: &str) -> Option<Value> {
        self.stored(&capt_status_sim::kinds::cluster(), name).await
    }

    /// The CAPTCluster `name`, as stored.
    pub async fn capt_cluster(&self, name: &str) -> Option<Value> {
        self.stored(&capt_status_sim::kinds::capt_cluster(), name)
            .await
    }

    /// The CAPTControlPlane `name`, as stored.
    pub async fn control_plane(&self, name: &str) -> Option<Value> {
        self.stored(&capt_status_sim::kinds::control_plane(), name)
            .await
    }

    async fn stored(&self, kind: &kube::api::ApiResource, name: &str) -> Option<Value> {
        match &self.reads {
            Reads::Store(store) => {
                store.get_dynamic(&kind.api_version, &kind.plural, Some("default"), name)
            }
            Reads::Api(client) => {
                let api = Api::<DynamicObject>::namespaced_with(client.clone(), "default", kind);
                let object = api.get_opt(name).await.expect("a read");
                object.map(|o| serde_json::to_value(o).expect("JSON"))
            }
        }
    }

    /// The events about the object `name` of `kind`.
    pub async fn events_about(&self, kind: &str, name: &str) -> Vec<Event> {
        let events = match &self.reads {
            Reads::Store(store) => store.list::<Event>(Some("default")),
            Reads::Api(client) => {
                Api::<Event>::default_namespaced(client.clone())
                    .list(&ListParams::default())
                    .await
                    .expect("a list")
                    .items
            }
        };
        events
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some(kind) && r.name.as_deref() == Some(name)
                })
            })
            .collect()
    }
}

/// Creates `manifest` with `api`, or the test fails.
pub async fn create(
    api: &kube::api::Api<kube::api::DynamicObject>,
    manifest: Value,
) -> kube::api::DynamicObject {
    capt_status_sim::create(api, manifest)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

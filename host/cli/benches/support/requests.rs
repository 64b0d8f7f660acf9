//! The realistic requests of the guest-call benchmarks, and their command-line options.

use std::path::Path;
use std::sync::Mutex;

use capt_host_core::{Policy, PolicyError};
use capt_policy::{Metadata, Request, Response};

/// The scenario whose final rounds are the benchmarks' requests.
const SCENARIO: &str = "policies/capt-status/scenarios/happy-path/from-nothing-to-both-ready-with-the-cluster-updated.yaml";

/// A policy that records every request and answers with the wrapped policy.
struct Recorder<'a> {
    inner: &'a dyn Policy,
    requests: Mutex<Vec<Request>>,
}

impl Policy for Recorder<'_> {
    fn metadata(&self) -> &Metadata {
        self.inner.metadata()
    }

    fn reconcile(&self, request: &Request) -> Result<Response, PolicyError> {
        self.requests
            .lock()
            .expect("not poisoned")
            .push(request.clone());
        self.inner.reconcile(request)
    }
}

/// The last request of the happy-path scenario (run with `policy`) for each of the two
/// trigger kinds: every related object present.
pub fn final_requests(policy: &dyn Policy) -> Vec<(String, Request)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let scenario =
        capt_host_core::scenario::load(&root.join(SCENARIO)).expect("the scenario loads");
    let recorder = Recorder {
        inner: policy,
        requests: Mutex::new(vec![]),
    };
    let outcome = capt_host_core::scenario::run(&scenario, &recorder);
    assert!(outcome.passed(), "the happy-path scenario passes");
    let requests = recorder.requests.into_inner().expect("not poisoned");
    ["CAPTCluster", "CAPTControlPlane"]
        .into_iter()
        .map(|kind| {
            let last = requests
                .iter()
                .rev()
                .find(|r| r.trigger.kind == kind)
                .unwrap_or_else(|| panic!("the scenario reconciles a {kind}"));
            (kind.to_owned(), last.clone())
        })
        .collect()
}

/// Reads `--name value` options after `--` (others, like cargo's `--bench`, are ignored):
/// `(name, value)` pairs in order.
pub fn options() -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--bench" {
            continue;
        }
        let value = args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        pairs.push((arg, value));
    }
    pairs
}

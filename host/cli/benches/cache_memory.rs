//! Benchmark: what one cached object costs the operator in memory, as the `DynamicObject` the
//! reflector stores hold (a `serde_json::Value` tree) and as its JSON text.
//!
//! The objects are those of the happy-path scenario's final rounds (see `guest_call`), each
//! parsed `--copies` times; the cost is the growth of this process's resident set divided by
//! the number of objects (the allocator's own overhead included, as in the operator).
//!
//! `cargo bench -p capt-host --bench cache_memory [-- --copies N]`

#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../src/embedded.rs"]
mod embedded;
#[path = "support/requests.rs"]
mod requests;

use std::sync::Arc;

use capt_host_runtime::{Engine, Limits, WasmPolicy};

use crate::embedded::DEFAULT_POLICY;
use kube::api::DynamicObject;

use self::requests::final_requests;

/// This process's resident set (VmRSS), in bytes.
fn rss_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024.0
}

fn main() {
    let mut copies = 5000;
    for (name, value) in requests::options() {
        match name.as_str() {
            "--copies" => copies = value.parse().expect("--copies: a number"),
            _ => panic!("unknown option {name}"),
        }
    }
    let engine = Engine::new(Limits::default()).expect("the engine starts");
    let policy = WasmPolicy::load(&engine, DEFAULT_POLICY).expect("the default policy loads");
    let manifests: Vec<String> = final_requests(&policy)
        .iter()
        .flat_map(|(_, request)| request.objects.iter().map(|o| o.manifest.clone()))
        .collect();
    let count = (copies * manifests.len()) as f64;
    let json_bytes =
        manifests.iter().map(String::len).sum::<usize>() as f64 / manifests.len() as f64;

    let start = rss_bytes();
    let objects: Vec<Arc<DynamicObject>> = (0..copies)
        .flat_map(|_| {
            manifests
                .iter()
                .map(|m| Arc::new(serde_json::from_str(m).expect("a Kubernetes object")))
        })
        .collect();
    let parsed = rss_bytes();
    let texts: Vec<Arc<str>> = (0..copies)
        .flat_map(|_| manifests.iter().map(|m| Arc::from(m.as_str())))
        .collect();
    let text = rss_bytes();

    println!(
        "{} objects x {copies}: {json_bytes:.0} bytes of JSON each; as DynamicObject {:.0} B, \
         as JSON text {:.0} B per object",
        manifests.len(),
        (parsed - start) / count,
        (text - parsed) / count,
    );
    drop((objects, texts));
}

//! Benchmark: one reconcile of a realistic CAPTCluster and CAPTControlPlane request, as
//!
//! - `native`: `capt_status::reconcile` linked as a library;
//! - `fresh`: [`WasmPolicy::reconcile`], a fresh store and instance per call (what the
//!   operator does: pooling allocator, limits on);
//! - `reused`: [`PolicyInstance::reconcile`], one instance called again and again.
//!
//! The requests are the final rounds of the happy-path scenario (every related object present),
//! captured by running the scenario through a recording policy. The variants run interleaved,
//! in batches, so that a noisy neighbour on the machine slows them alike; every call is timed
//! on its own and the median and 99th percentile of all calls are reported.
//!
//! `cargo bench -p capt-host --bench guest_call [-- --rounds N --batch N --json FILE
//!  --module LABEL=FILE...]`: each `--module` adds its fresh and reused variants (relative
//! paths are relative to the workspace root).

#[allow(dead_code, reason = "each binary uses part of it")]
#[path = "../src/embedded.rs"]
mod embedded;
mod support;

use std::time::{Duration, Instant};

use capt_host_core::Policy as _;

use capt_host_runtime::{Engine, Limits, PolicyInstance, WasmPolicy};

use crate::embedded::DEFAULT_POLICY;
use capt_policy::{Request, Response};
use serde_json::json;

use self::support::{final_requests, micros, percentiles, request_bytes};

/// Command-line options (after `--`).
struct Options {
    /// Interleaved rounds; each runs one batch of every variant.
    rounds: usize,
    /// Calls per variant per round.
    batch: usize,
    /// Where to write the results as JSON, if anywhere.
    json: Option<String>,
    /// Other policy modules to measure next to the default one (`--module LABEL=FILE`,
    /// repeatable): a guest built with other settings, for instance.
    modules: Vec<(String, String)>,
}

impl Options {
    fn parse() -> Self {
        let mut options = Self {
            rounds: 30,
            batch: 200,
            json: None,
            modules: vec![],
        };
        for (name, value) in support::options() {
            match name.as_str() {
                "--rounds" => options.rounds = value.parse().expect("--rounds: a number"),
                "--batch" => options.batch = value.parse().expect("--batch: a number"),
                "--json" => options.json = Some(value),
                "--module" => {
                    let (label, path) = value.split_once('=').expect("--module LABEL=FILE");
                    options.modules.push((label.to_owned(), path.to_owned()));
                }
                _ => panic!("unknown option {name}"),
            }
        }
        options
    }
}

/// How a variant calls the policy.
enum Call {
    /// `capt_status::reconcile`, linked natively.
    Native,
    /// A fresh store and instance per call.
    Fresh(Box<WasmPolicy>),
    /// One instance, reused.
    Reused(Box<PolicyInstance>),
}

/// One measured variant.
struct Variant {
    name: String,
    call: Call,
}

impl Variant {
    fn reconcile(&mut self, request: &Request) -> Response {
        match &mut self.call {
            Call::Native => capt_status::reconcile(request).expect("the native policy answers"),
            Call::Fresh(policy) => policy.reconcile(request).expect("wasm answers"),
            Call::Reused(instance) => instance.reconcile(request).expect("wasm answers"),
        }
    }
}

/// The fresh and reused variants of the module `bytes`, their names suffixed with `label`.
fn wasm_variants(engine: &Engine, label: &str, bytes: &[u8]) -> [Variant; 2] {
    [
        Variant {
            name: format!("fresh{label}"),
            call: Call::Fresh(Box::new(
                WasmPolicy::load(engine, bytes).expect("the module loads"),
            )),
        },
        Variant {
            name: format!("reused{label}"),
            call: Call::Reused(Box::new(
                PolicyInstance::new(engine, bytes).expect("it instantiates"),
            )),
        },
    ]
}

fn main() {
    let options = Options::parse();
    let engine = Engine::new(Limits::default()).expect("the engine starts");
    let mut variants = vec![Variant {
        name: "native".into(),
        call: Call::Native,
    }];
    variants.extend(wasm_variants(&engine, "", DEFAULT_POLICY));
    for (label, path) in &options.modules {
        let path = support::from_workspace(path);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        variants.extend(wasm_variants(&engine, &format!("-{label}"), &bytes));
    }
    let Call::Fresh(default_policy) = &variants[1].call else {
        unreachable!("the second variant is the default module, fresh");
    };
    let requests = final_requests(&**default_policy);

    let mut results = Vec::new();
    println!(
        "{:<17} {:>6} {:>12} {:>10} {:>10} {:>8} {:>8}",
        "request", "bytes", "variant", "median µs", "p99 µs", "x native", "p99 x"
    );
    for (kind, request) in &requests {
        // Every variant agrees before anything is timed.
        let expected = capt_status::reconcile(request).expect("the native policy answers");
        for variant in &mut variants {
            assert_eq!(variant.reconcile(request), expected, "{}", variant.name);
        }

        let mut samples = vec![Vec::new(); variants.len()];
        for _ in 0..options.rounds {
            for (variant, samples) in variants.iter_mut().zip(&mut samples) {
                for _ in 0..options.batch {
                    let start = Instant::now();
                    std::hint::black_box(variant.reconcile(request));
                    samples.push(start.elapsed());
                }
            }
        }
        let stats: Vec<(Duration, Duration)> = samples.iter_mut().map(|s| percentiles(s)).collect();
        let native = stats[0];
        for (variant, (median, p99)) in variants.iter().zip(stats) {
            let ratio = median.as_secs_f64() / native.0.as_secs_f64();
            let p99_ratio = p99.as_secs_f64() / native.1.as_secs_f64();
            println!(
                "{kind:<17} {:>6} {:>12} {:>10.1} {:>10.1} {ratio:>8.2} {p99_ratio:>8.2}",
                request_bytes(request),
                variant.name,
                micros(median),
                micros(p99),
            );
            results.push(json!({
                "request": kind,
                "request_bytes": request_bytes(request),
                "objects": request.objects.len(),
                "variant": variant.name,
                "median_us": micros(median),
                "p99_us": micros(p99),
                "median_ratio_to_native": ratio,
                "p99_ratio_to_native": p99_ratio,
                "calls": options.rounds * options.batch,
            }));
        }
    }
    if let Some(path) = options.json {
        let path = support::from_workspace(&path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the directory of --json can be created");
        }
        let text = serde_json::to_string_pretty(&results).expect("JSON");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

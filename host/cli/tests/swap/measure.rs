//! Measures (prints, asserts nothing about) the time from a file change to the promotion of
//! the default module (capt-status), compile + canary, with and without the compile cache.
//! `cargo test -p capt-host --test swap measure -- --nocapture` shows it.

use std::time::Instant;

use capt_host_runtime::{CompileCache, WasmPolicy};

use crate::support::{Files, TempDir, digest, engine, policy_until, server, start, v1, v2};

/// Starts an operator on v2, writes v1 (the default module) over its file and reports the
/// time until v1 serves.
async fn swap_to_the_default_module(name: &str, cache: Option<CompileCache>) -> String {
    let server = server().await;
    let files = Files::new(name, &v2());
    let mut config = files.config();
    config.compile_cache = cache;
    let (operator, _) = start(&server, name, config).await;
    let written = Instant::now();
    files.write(&v1());
    let report = policy_until(&operator, "v1 to be promoted", |report, _| {
        report.active.digest == digest(&v1())
    })
    .await;
    let observed = written.elapsed();
    operator.shutdown().await.expect("stops cleanly");
    let swap = &report["last_swap"];
    assert_eq!(swap["reused"], false);
    format!(
        "file written -> serving (polled): {observed:?}; /policy last_swap: total {} ms = debounce {} + read {} + load {} (from cache: {}) + canary {} ms ({} scenarios)",
        swap["total"],
        swap["debounce"],
        swap["read"],
        swap["load"],
        swap["from_cache"],
        swap["canary"],
        report["last_canary"]["scenarios"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_from_a_file_change_to_the_promotion_of_the_default_module() {
    let without = swap_to_the_default_module("measure-compile", None).await;

    let dir = TempDir::new("measure-cache");
    let cache = CompileCache::open(dir.join("cache")).expect("a cache");
    // The cache holds the default module already (a restart, a swap back).
    let warm = WasmPolicy::load_with_cache(engine(), &v1(), Some(&cache)).unwrap();
    assert!(!warm.compilation().from_cache);
    let with = swap_to_the_default_module("measure-cached", Some(cache)).await;
    assert!(with.contains("from cache: true"), "{with}");
    println!("swap to the default module, compiled:  {without}");
    println!("swap to the default module, cached:    {with}");
}

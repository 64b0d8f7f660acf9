//! The checks of a candidate on their own (`Swapper::check`: read, compile, contract, canary),
//! and the compile cache.

use capt_host_swap::{Fallback, SwapConfig, Swapper};

use crate::embedded::{DEFAULT_POLICY, suite_len as embedded_suite_len};
use capt_host_runtime::{CompileCache, CompileCacheError, WasmPolicy};

use crate::support::{Files, TempDir, digest, engine, fixtures, v1, v2};

/// Every bad module, with the reason label it must be rejected with.
fn bad_modules() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut oversized = b"\0asm\x0d\0\x01\0".to_vec();
    oversized.resize((1 << 20) + 1, 0);
    vec![
        ("loop", fixtures::bytes(fixtures::LOOP), "canary_cpu_time"),
        (
            "alloc",
            fixtures::bytes(fixtures::ALLOC),
            "canary_out_of_memory",
        ),
        ("panic", fixtures::bytes(fixtures::PANIC), "canary_trap"),
        ("wasi", fixtures::bytes(fixtures::WASI), "unexpected_import"),
        (
            "old-world",
            fixtures::bytes(fixtures::OLD_WORLD),
            "incompatible_version",
        ),
        ("wrong", fixtures::bytes(fixtures::WRONG), "canary_failed"),
        ("truncated", fixtures::truncated(fixtures::V2), "compile"),
        ("oversized", oversized, "too_large"),
        ("garbage", b"not a module at all".to_vec(), "not_wasm"),
    ]
}

#[test]
fn every_bad_module_is_rejected_with_its_reason() {
    let files = Files::new("pipeline-bad", &v1());
    let mut config = files.config();
    config.max_module_bytes = 1 << 20;
    let swapper = Swapper::load(engine(), config).expect("v1 loads");
    for (name, bytes, reason) in bad_modules() {
        files.write(&bytes);
        match swapper.check() {
            Ok(report) => panic!("{name} passed: {report:?}"),
            Err(error) => assert_eq!(
                error.reason(),
                reason,
                "{name}: {}",
                capt_host_core::error_chain(&error)
            ),
        }
    }
}

#[test]
fn v2_passes_the_whole_canary_and_the_active_module_is_no_candidate() {
    let files = Files::new("pipeline-v2", &v1());
    let swapper = Swapper::load(engine(), files.config()).expect("v1 loads");
    assert!(swapper.check().expect("v1 is fine").is_none(), "unchanged");

    files.write(&v2());
    let report = swapper.check().expect("v2 passes").expect("a candidate");
    assert_eq!(report.digest, digest(&v2()));
    assert_eq!(report.version, policy_fixtures::V2_VERSION);
    let canary = report.canary.expect("a canary ran");
    assert_eq!(canary.scenarios, embedded_suite_len());
    assert_eq!(canary.suite, "embedded");

    // live-fail passes too: no scenario fails it (a canary cannot catch everything).
    files.write(&fixtures::bytes(fixtures::LIVE_FAIL));
    assert!(swapper.check().expect("live-fail passes").is_some());
}

#[test]
fn a_settings_file_that_is_not_an_object_is_rejected() {
    let files = Files::new("pipeline-settings", &v1());
    let swapper = Swapper::load(engine(), files.config()).expect("v1 loads");
    std::fs::write(files.settings(), "- a list\n").unwrap();
    let error = swapper.check().expect_err("rejected");
    assert_eq!(error.reason(), "settings", "{error}");
}

/// Settings with a typo on line 2, which the policy rejects.
const TYPO: &str = "pollInterval: 1h\npollIntervl: 10s\n";

/// The `pollInterval` the module in `swapper`'s slot runs with.
fn poll_interval(swapper: &Swapper) -> String {
    let active = swapper.slot().current();
    let settings: serde_json::Value =
        serde_json::from_str(active.settings()).expect("the settings are JSON");
    settings["pollInterval"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn with_fallback(mut config: SwapConfig) -> SwapConfig {
    config.fallback = Some(Fallback {
        bytes: DEFAULT_POLICY,
        label: "embedded default".into(),
    });
    config
}

#[test]
fn settings_the_module_rejects_are_rejected_at_their_line_in_the_file() {
    let files = Files::new("pipeline-settings-typo", &v1());
    let swapper = Swapper::load(engine(), files.config()).expect("v1 loads");
    assert_eq!(poll_interval(&swapper), "1h");
    std::fs::write(files.settings(), TYPO).unwrap();
    let error = swapper.check().expect_err("rejected");
    let message = capt_host_core::error_chain(&error);
    assert_eq!(error.reason(), "settings", "{message}");
    assert!(message.contains("2:1: `pollIntervl`"), "{message}");

    // At start, they stop the load; with a fallback, it serves with its defaults instead.
    let Err(error) = Swapper::load(engine(), files.config()) else {
        panic!("loaded settings with a typo");
    };
    assert_eq!(error.reason(), "settings", "{error}");
    let swapper = Swapper::load(engine(), with_fallback(files.config())).expect("falls back");
    let fallback = swapper.status().report().fallback.expect("a fallback");
    assert_eq!(fallback.reason, "settings");
    assert_ne!(poll_interval(&swapper), "1h");
}

#[test]
fn a_fallback_that_rejects_the_settings_runs_with_its_defaults() {
    let files = Files::new("pipeline-settings-fallback", &v1());
    std::fs::remove_file(files.module()).unwrap();
    std::fs::write(files.settings(), TYPO).unwrap();
    let swapper = Swapper::load(engine(), with_fallback(files.config())).expect("falls back");
    assert_eq!(
        swapper
            .status()
            .report()
            .fallback
            .expect("a fallback")
            .reason,
        "read"
    );
    assert_ne!(poll_interval(&swapper), "1h");

    // Settings it accepts, it runs with.
    std::fs::write(files.settings(), crate::support::SETTINGS).unwrap();
    let swapper = Swapper::load(engine(), with_fallback(files.config())).expect("falls back");
    assert_eq!(poll_interval(&swapper), "1h");
}

#[test]
fn the_compile_cache_serves_a_module_again_and_recovers_from_a_corrupt_entry() {
    let dir = TempDir::new("cache");
    let cache = CompileCache::open(dir.join("cache")).expect("a private cache directory");
    let bytes = v2();
    let load = || WasmPolicy::load_with_cache(engine(), &bytes, Some(&cache)).expect("v2 loads");

    let first = load();
    assert!(!first.compilation().from_cache);
    let second = load();
    assert!(second.compilation().from_cache);
    assert_eq!(second.sha256(), first.sha256());
    println!(
        "v2: compiled in {:?}, from the cache in {:?}",
        first.compilation().duration,
        second.compilation().duration
    );

    // A flipped byte in the entry: detected, removed, compiled again, rewritten.
    let entry = cache.entry_path(engine(), &digest(&bytes));
    let mut content = std::fs::read(&entry).expect("the entry exists");
    let middle = content.len() / 2;
    content[middle] ^= 0xff;
    std::fs::write(&entry, content).unwrap();
    let recovered = load();
    assert!(
        !recovered.compilation().from_cache,
        "a corrupt entry is not used"
    );
    assert!(load().compilation().from_cache, "the entry was rewritten");

    // A truncated entry too.
    let content = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &content[..content.len() / 3]).unwrap();
    assert!(!load().compilation().from_cache);
}

#[cfg(unix)]
#[test]
fn a_compile_cache_others_can_write_to_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("cache-shared");
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(
        CompileCache::open(&shared),
        Err(CompileCacheError::Shared { .. })
    ));
    // A new directory is created private.
    let private = dir.join("private/cache");
    CompileCache::open(&private).expect("created");
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

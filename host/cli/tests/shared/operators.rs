//! The embedded policy and operator configurations, shared by the test binaries that run
//! operators (`tests/operator` on the in-process API server, `tests/real` on the real one).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use capt_host_core::Policy;
use capt_host_operator::{OperatorConfig, RetryPolicy};
use capt_host_runtime::{ActivePolicy, Engine, Limits, PolicySlot, WasmPolicy};
use serde_json::Value;

use crate::embedded::DEFAULT_POLICY;

/// The embedded policy with `settings` (`None`: its defaults), compiled once for every test
/// of the binary, with room for the calls of several operators at once.
pub fn policy(settings: Option<&Value>) -> PolicySlot {
    static COMPILED: OnceLock<Arc<WasmPolicy>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        let limits = Limits {
            concurrent_calls: 64,
            ..Limits::default()
        };
        let engine = Engine::new(limits).expect("the engine starts");
        Arc::new(WasmPolicy::load(&engine, DEFAULT_POLICY).expect("the default policy loads"))
    });
    let policy: Arc<dyn Policy + Send + Sync> = compiled.clone();
    let active =
        ActivePolicy::new(policy, compiled.sha256(), settings).expect("the settings are valid");
    PolicySlot::new(active)
}

/// An operator configuration with short retries, named `identity`.
pub fn config(identity: &str) -> OperatorConfig {
    let mut config = OperatorConfig::new("capt-status", identity);
    config.retry = RetryPolicy {
        min: Duration::from_millis(50),
        max: Duration::from_secs(1),
    };
    config
}

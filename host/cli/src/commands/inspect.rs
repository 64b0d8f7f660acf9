//! `capt-host inspect`: describes a policy component.

use std::process::ExitCode;

use capt_host_core::Policy as _;
use capt_host_core::view::{self, KindView};
use capt_host_runtime::{Engine, WitItem};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::ModuleArgs;

/// Prints a policy component's metadata (name, version, triggers, reads, default settings),
/// SHA-256, size, WIT-level imports and exports, and the sandbox its calls run in on this
/// machine (how memory is reset between calls and why, the call limits), as YAML.
#[derive(Debug, Args)]
pub struct Inspect {
    #[command(flatten)]
    module: ModuleArgs,
}

impl Inspect {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Self { module } = self;
        let policy = module.load()?;
        let metadata = policy.metadata();
        let default_settings: Value = serde_json::from_str(&metadata.default_settings)?;
        let report = Report {
            module: module.describe(),
            sha256: policy.sha256(),
            size: policy.size(),
            name: &metadata.name,
            version: &metadata.version,
            triggers: metadata.triggers.iter().map(view::kind).collect(),
            reads: metadata.reads.iter().map(view::kind).collect(),
            default_settings,
            imports: policy.imports(),
            exports: policy.exports(),
            sandbox: Sandbox::of(policy.engine()),
        };
        print!("{}", view::to_yaml(&report));
        Ok(ExitCode::SUCCESS)
    }
}

/// What `inspect` prints, in this order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    module: String,
    sha256: &'a str,
    size: usize,
    name: &'a str,
    version: &'a str,
    triggers: Vec<KindView<'a>>,
    reads: Vec<KindView<'a>>,
    default_settings: Value,
    imports: Vec<WitItem>,
    exports: Vec<WitItem>,
    sandbox: Sandbox,
}

/// The sandbox of the policy's calls on this machine.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sandbox {
    /// `pagemap-scan` or `memset` (see `capt_host_runtime::PageReset`).
    page_reset: &'static str,
    /// Why that reset.
    page_reset_reason: String,
    /// Whether the kernel has PAGEMAP_SCAN (without it, `pagemap-scan` resets as `memset`).
    pagemap_scan_available: bool,
    cpu_limit: String,
    deadline: String,
    slots: u32,
    slot_wait: String,
    memory_bytes: usize,
}

impl Sandbox {
    fn of(engine: &Engine) -> Self {
        let (reset, limits) = (engine.page_reset(), engine.limits());
        Self {
            page_reset: reset.reset.name(),
            page_reset_reason: reset.reason.to_string(),
            pagemap_scan_available: capt_host_runtime::pagemap_scan_available(),
            cpu_limit: format!("{:?}", limits.cpu_time),
            deadline: format!("{:?}", limits.deadline),
            slots: limits.concurrent_calls,
            slot_wait: format!("{:?}", limits.slot_wait),
            memory_bytes: limits.memory_bytes,
        }
    }
}

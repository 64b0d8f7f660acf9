//! `capt-host inspect`: describes a policy component.

use std::process::ExitCode;

use capt_host_core::Policy as _;
use capt_host_core::view::{self, KindView};
use capt_host_runtime::WitItem;
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::ModuleArgs;

/// Prints a policy component's metadata (name, version, triggers, reads, default settings),
/// SHA-256, size, and WIT-level imports and exports, as YAML.
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
}

//! The subcommands, one module each; this module only declares the command line and
//! dispatches.

mod eval;
mod inspect;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use capt_host::telemetry::LogFormat;
use capt_host::{DEFAULT_POLICY, Engine, Limits, WasmPolicy};
use clap::{Args, Parser, Subcommand};

/// Runs capt:policy status policies (wasm components): scenario tests, single reconciles,
/// module inspection.
#[derive(Debug, Parser)]
#[command(name = "capt-host", version)]
pub struct Cli {
    /// How log records are written to stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "CAPT_HOST_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Log filter, in RUST_LOG syntax (e.g. `info`, `policy=debug`); default: `warn`.
    #[arg(long, global = true, env = "RUST_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenario files against a policy and report each as ok or FAIL.
    Test(test::Test),
    /// Run one reconcile (with requirement rounds) and print its patches, events and requeue.
    Eval(eval::Eval),
    /// Print a policy component's metadata, digest, size, imports and exports.
    Inspect(inspect::Inspect),
}

impl Command {
    /// Runs the subcommand; the exit code is its result.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Test(command) => command.run(),
            Self::Eval(command) => command.run(),
            Self::Inspect(command) => command.run(),
        }
    }
}

/// Which policy component to run.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// The policy component (.wasm); default: the policy embedded at build time.
    #[arg(long, value_name = "FILE", env = "CAPT_HOST_MODULE")]
    pub module: Option<PathBuf>,
}

impl ModuleArgs {
    /// Loads the chosen module into a new engine with the default limits.
    pub fn load(&self) -> anyhow::Result<WasmPolicy> {
        let engine = Engine::new(Limits::default())?;
        let bytes = match &self.module {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("could not read the module {}", path.display()))?,
            None => DEFAULT_POLICY.to_vec(),
        };
        WasmPolicy::load(&engine, &bytes)
            .with_context(|| format!("could not load the policy {}", self.describe()))
    }

    /// The module's path, or a note that it is the embedded one.
    pub fn describe(&self) -> String {
        self.module
            .as_ref()
            .map_or("(embedded default)".into(), |p| p.display().to_string())
    }
}

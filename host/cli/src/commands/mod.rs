//! The subcommands, one module each; this module only declares the command line and
//! dispatches.

#[cfg(feature = "demo")]
mod demo;
mod eval;
mod inspect;
mod run;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::embedded::DEFAULT_POLICY;
use crate::telemetry::LogFormat;
use anyhow::Context as _;
use capt_host_runtime::{Engine, Limits, WasmPolicy};
use clap::{Args, Parser, Subcommand};

/// Runs capt:policy status policies (wasm components): scenario tests, single reconciles,
/// module inspection, the operator.
#[derive(Debug, Parser)]
#[command(name = "capt-host", version)]
pub struct Cli {
    /// How log records are written to stderr: text (coloured on a terminal only) or json (flat,
    /// one object per line: ts, level, logger, msg and the fields).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "CAPT_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// The log level or filter, in RUST_LOG syntax (`debug`, `capt_host_operator=debug,info`);
    /// RUST_LOG wins when set. Default: info for `run`, warn for the other commands.
    #[arg(long, global = true, env = "CAPT_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command line, exiting with a usage error when it is invalid.
    pub fn parse_args() -> Self {
        Self::parse()
    }

    /// The log filter: `--log-level`, else the command's default.
    pub fn log_level(&self) -> &str {
        self.log_level.as_deref().unwrap_or(match self.command {
            // The operator says what it does; the one-shot commands print their results
            // and only warn.
            Command::Run(_) => "info",
            _ => "warn",
        })
    }
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
    /// Run the operator: reconcile the policy's trigger objects in a Kubernetes cluster.
    Run(Box<run::Run>),
    /// Show the operator at work: an in-process API server, the CAPT samples and a simulated
    /// Crossplane, until both CAPT objects are Ready.
    #[cfg(feature = "demo")]
    Demo(demo::Demo),
}

impl Command {
    /// Runs the subcommand; the exit code is its result.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Test(command) => command.run(),
            Self::Eval(command) => command.run(),
            Self::Inspect(command) => command.run(),
            Self::Run(command) => (*command).run(),
            #[cfg(feature = "demo")]
            Self::Demo(command) => command.run(),
        }
    }
}

/// Which policy component to run, and the limits of its calls.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// The policy component (.wasm); default: the policy embedded at build time.
    #[arg(long, value_name = "FILE", env = "CAPT_MODULE")]
    pub module: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

impl ModuleArgs {
    /// Loads the chosen module into a new engine with the chosen limits.
    pub fn load(&self) -> anyhow::Result<WasmPolicy> {
        load_module(self.module.as_deref(), self.limits.limits())
    }

    /// The module's path, or a note that it is the embedded one.
    pub fn describe(&self) -> String {
        describe_module(self.module.as_deref())
    }
}

/// The limits of every policy call (see [`Limits`]); the other limits keep their defaults.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// The CPU time one policy call may use (the guest's work, not the node's load); a call
    /// past it is stopped and fails.
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_CALL_CPU_LIMIT",
        default_value = "2s",
        value_parser = duration
    )]
    pub call_cpu_limit: Duration,
    /// The wall-clock time one policy call may take, a backstop for a stuck host: a call past
    /// it fails (and is retried).
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_CALL_DEADLINE",
        default_value = "30s",
        value_parser = duration
    )]
    pub call_deadline: Duration,
    /// How long a policy call waits for a free instance slot when all are busy before it
    /// fails (and is retried).
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_CALL_SLOT_WAIT",
        default_value = "10s",
        value_parser = duration
    )]
    pub call_slot_wait: Duration,
}

impl LimitArgs {
    /// The default limits with these.
    pub fn limits(&self) -> Limits {
        Limits {
            cpu_time: self.call_cpu_limit,
            deadline: self.call_deadline,
            slot_wait: self.call_slot_wait,
            ..Limits::default()
        }
    }
}

/// Parses a Go-style duration (`90s`, `5m`, `250ms`, `0`).
pub fn duration(text: &str) -> Result<Duration, String> {
    capt_host_core::scenario::duration::parse(text)
}

/// Loads the module at `path` (the embedded default policy when `None`) into a new engine
/// with `limits`.
pub fn load_module(path: Option<&Path>, limits: Limits) -> anyhow::Result<WasmPolicy> {
    let engine = Engine::new(limits)?;
    let bytes = match path {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("could not read the module {}", path.display()))?,
        None => DEFAULT_POLICY.to_vec(),
    };
    WasmPolicy::load(&engine, &bytes)
        .with_context(|| format!("could not load the policy {}", describe_module(path)))
}

/// The module's path, or a note that it is the embedded one.
pub fn describe_module(path: Option<&Path>) -> String {
    path.map_or("(embedded default)".into(), |p| p.display().to_string())
}

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
use capt_host_runtime::compile::{self, CompileLimits};
use capt_host_runtime::{CompileWorker, Engine, Limits, WasmPolicy};
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
    /// Compile one module: the process the other commands compile modules in (the module
    /// arrives on standard input, the compiled code leaves on standard output; see
    /// `capt_host_runtime::compile`). Not for people.
    #[command(hide = true)]
    CompileWorker,
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
            Self::CompileWorker => Ok(compile_worker()),
        }
    }
}

/// `capt-host compile-worker`: compiles the module on standard input under the memory limit
/// that precedes it. A module that does not compile exits with
/// [`compile::WORKER_COMPILE_FAILED`], its error on standard error.
fn compile_worker() -> ExitCode {
    match compile::run_compile_worker(std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", capt_host_core::error_chain(&error));
            match error {
                compile::CompileWorkerError::Compile(_) => {
                    ExitCode::from(u8::try_from(compile::WORKER_COMPILE_FAILED).unwrap_or(1))
                }
                _ => ExitCode::from(2),
            }
        }
    }
}

/// A policy engine with `limits` that compiles modules in `capt-host compile-worker`
/// processes, under the compile budget of `limits`.
pub fn engine(limits: Limits) -> anyhow::Result<Engine> {
    let program = std::env::current_exe()
        .context("could not find this program's path, to start compiler processes")?;
    Ok(Engine::with_compile_worker(
        limits,
        CompileWorker::new(program, ["compile-worker"]),
    )?)
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
    /// The memory a process compiling a module may use (its heap, e.g. 128Mi); a module that
    /// needs more is refused. Modules are compiled in a separate process, so the operator's
    /// own memory never grows with what a module makes the compiler do.
    #[arg(
        long,
        value_name = "BYTES",
        env = "CAPT_COMPILE_MEMORY_LIMIT",
        default_value = "128Mi",
        value_parser = byte_size
    )]
    pub compile_memory_limit: u64,
    /// How long compiling a module may take; a module that takes longer is refused.
    #[arg(
        long,
        value_name = "DURATION",
        env = "CAPT_COMPILE_TIME_LIMIT",
        default_value = "60s",
        value_parser = duration
    )]
    pub compile_time_limit: Duration,
}

impl LimitArgs {
    /// The default limits with these.
    pub fn limits(&self) -> Limits {
        Limits {
            cpu_time: self.call_cpu_limit,
            deadline: self.call_deadline,
            slot_wait: self.call_slot_wait,
            compile: CompileLimits {
                memory_bytes: self.compile_memory_limit,
                time: self.compile_time_limit,
                ..CompileLimits::default()
            },
            ..Limits::default()
        }
    }
}

/// Parses a size in bytes, as Kubernetes quantities write it: `134217728`, `128Mi`, `512Ki`,
/// `1Gi`.
pub fn byte_size(text: &str) -> Result<u64, String> {
    let expected = || format!("{text:?}: expected bytes, or a number with Ki, Mi or Gi");
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let shift = match unit {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        _ => return Err(expected()),
    };
    let number: u64 = digits.parse().map_err(|_| expected())?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a Go-style duration (`90s`, `5m`, `250ms`, `0`).
pub fn duration(text: &str) -> Result<Duration, String> {
    capt_policy::duration::parse(text).map_err(|error| error.to_string())
}

/// Loads the module at `path` (the embedded default policy when `None`) into a new engine
/// with `limits`.
pub fn load_module(path: Option<&Path>, limits: Limits) -> anyhow::Result<WasmPolicy> {
    let engine = engine(limits)?;
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

#[cfg(test)]
mod tests {
    use super::byte_size;

    #[test]
    fn sizes_are_bytes_or_binary_multiples() {
        assert_eq!(byte_size("4096"), Ok(4096));
        assert_eq!(byte_size("512Ki"), Ok(512 << 10));
        assert_eq!(byte_size("128Mi"), Ok(128 << 20));
        assert_eq!(byte_size("2Gi"), Ok(2 << 30));
        for bad in ["", "Mi", "12MB", "1.5Gi", "-1", "99999999999999999999Gi"] {
            assert!(byte_size(bad).is_err(), "{bad:?}");
        }
    }
}

//! The `capt-host` command line: parses arguments, sets up logging, dispatches to
//! `commands/<name>.rs`, and prints any error with its causes.

mod commands;
mod embedded;
mod telemetry;

use std::process::ExitCode;

use capt_host_core::rounds::RoundError;

fn main() -> ExitCode {
    let cli = commands::Cli::parse_args();
    if let Err(error) = telemetry::init(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("error: invalid --log-level: {error}");
        return ExitCode::from(2);
    }
    match cli.command.run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            let causes: Vec<_> = error.chain().skip(1).collect();
            if !causes.is_empty() {
                eprintln!("\nCaused by:");
                for (i, cause) in causes.iter().enumerate() {
                    eprintln!("  {i:>4}: {cause}");
                }
            }
            // A reconcile that failed is a result (1); anything else kept the command from
            // running (2), like a usage error.
            if error.chain().any(|cause| cause.is::<RoundError>()) {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

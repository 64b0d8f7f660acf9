//! The `capt-host` command line: parses arguments, sets up logging, dispatches to
//! `commands/<name>.rs`, and prints any error with its causes.

mod commands;
mod embedded;
mod filter;
mod junit;
mod kinds;
mod telemetry;

use std::process::ExitCode;

use capt_host_core::rounds::RoundError;

fn main() -> ExitCode {
    let cli = commands::Cli::parse_args();
    if let Err(error) = telemetry::init(cli.log_format, cli.log_level()) {
        report(&error);
        return ExitCode::from(2);
    }
    match cli.command.run() {
        Ok(code) => code,
        // The reader went away (`capt-host test ... | head -1`): stop quietly, with the
        // status of a process that SIGPIPE ended, as other command-line tools do.
        Err(error) if is_broken_pipe(&error) => ExitCode::from(141),
        Err(error) => {
            report(&error);
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

/// Whether `error` comes from writing to a pipe whose reader is gone.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints `error` and its causes to stderr, each once.
fn report(error: &anyhow::Error) {
    let messages = capt_host_core::error_messages(error.as_ref());
    let Some((message, causes)) = messages.split_first() else {
        return;
    };
    eprintln!("error: {message}");
    if !causes.is_empty() {
        eprintln!("\nCaused by:");
        for (i, cause) in causes.iter().enumerate() {
            eprintln!("  {i:>4}: {cause}");
        }
    }
}

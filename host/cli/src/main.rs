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
    let messages = distinct_causes(error.chain().map(ToString::to_string));
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

/// The messages of an error chain without the causes that an outer message already shows
/// (many errors repeat their source's message in their own).
fn distinct_causes(chain: impl Iterator<Item = String>) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    for message in chain {
        if !messages.iter().any(|shown| shown.contains(&message)) {
            messages.push(message);
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::distinct_causes;

    #[test]
    fn causes_that_an_outer_message_shows_are_printed_once() {
        let chain = [
            "could not connect to https://10.0.0.1:6443",
            "client error: tcp connect error: Connection refused",
            "tcp connect error: Connection refused",
            "Connection refused",
        ];
        assert_eq!(
            distinct_causes(chain.iter().map(ToString::to_string)),
            [chain[0], chain[1]]
        );
    }
}

//! Logging: `tracing` records to stderr (stdout is for results), as text or JSON lines.

use tracing_subscriber::EnvFilter;

/// The log filter used when neither `--log-level` nor `RUST_LOG` is given.
pub const DEFAULT_FILTER: &str = "warn";

/// How log records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber writing to stderr. `filter` uses `RUST_LOG` syntax
/// (`info`, `capt_host=debug,policy=trace`); `None` means [`DEFAULT_FILTER`].
pub fn init(format: LogFormat, filter: Option<&str>) -> Result<(), capt_host_core::BoxError> {
    let filter = EnvFilter::try_new(filter.unwrap_or(DEFAULT_FILTER))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
}

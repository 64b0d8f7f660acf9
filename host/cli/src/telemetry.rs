//! Logging: `tracing` records to stderr (stdout is for results), as text (coloured on a
//! terminal only) or as flat JSON lines shaped like zap's production encoder, the format log
//! pipelines of Kubernetes operators already parse.

use std::io::IsTerminal as _;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The environment variable that, when set and not empty, overrides `--log-level`.
pub const RUST_LOG: &str = "RUST_LOG";

/// How log records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured when stderr is a terminal.
    #[default]
    Text,
    /// One flat JSON object per line: `ts` (epoch seconds), `level`, `logger`, `msg`, then the
    /// record's and its spans' fields at the top level.
    Json,
}

/// Installs the global subscriber writing to stderr. The filter is `RUST_LOG` when it is set
/// and not empty, else `level` (RUST_LOG syntax: `info`, `capt_host_operator=debug,warn`).
pub fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var(RUST_LOG)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(filter) => {
            EnvFilter::try_new(&filter).with_context(|| format!("invalid {RUST_LOG}"))?
        }
        None => EnvFilter::try_new(level).context("invalid --log-level")?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(ZapJson)
            .try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("could not install the logger: {error}"))
}

/// Formats a record as one flat JSON object, like zap's production encoder: `ts` (seconds
/// since the epoch, a float), `level` (lower case), `logger` (the target), `msg`, and the
/// fields of the record's spans (outermost first) and of the record itself at the top level,
/// numbers and booleans as JSON numbers and booleans.
struct ZapJson;

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        let metadata = event.metadata();
        let mut record = Map::new();
        record.insert("ts".into(), ts.into());
        record.insert("level".into(), level_name(*metadata.level()).into());
        record.insert("logger".into(), metadata.target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // The spans' fields were formatted by `JsonFields`: a JSON object's text.
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str(fields.as_str())
                {
                    record.extend(fields);
                }
            }
        }
        event.record(&mut FieldsVisitor(&mut record));
        writeln!(writer, "{}", Value::Object(record))
    }
}

/// zap's level names (`warn`, not `warning`).
fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// Collects a record's fields into a JSON object, its `message` as `msg`.
struct FieldsVisitor<'a>(&'a mut Map<String, Value>);

impl FieldsVisitor<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        let name = match field.name() {
            "message" => "msg",
            name => name,
        };
        self.0.insert(name.to_owned(), value);
    }
}

impl Visit for FieldsVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, capt_host_core::error_chain(value).into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.insert(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(bytes)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn json_records_are_flat_with_numbers_as_numbers() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(ZapJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let _span = tracing::info_span!("reconcile", trigger = "a/b", round = 2).entered();
            tracing::warn!(attempt = 3, ratio = 0.5, ok = false, url = %"https://x", "retrying");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let record: Value = serde_json::from_str(text.trim()).unwrap();
        assert!(record["ts"].as_f64().unwrap() > 1.7e9, "{record}");
        assert_eq!(record["level"], "warn");
        assert_eq!(record["msg"], "retrying");
        assert_eq!(record["attempt"], 3);
        assert_eq!(record["ratio"], 0.5);
        assert_eq!(record["ok"], false);
        assert_eq!(record["url"], "https://x");
        assert_eq!(record["trigger"], "a/b", "span fields at the top level");
        assert_eq!(record["round"], 2);
        assert!(record.get("fields").is_none() && record.get("span").is_none());
    }
}

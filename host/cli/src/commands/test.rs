//! `capt-host test`: runs scenario files, reported as text, JUnit XML or JSON.

use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use capt_host_core::scenario::{self, Outcome};
use capt_host_core::settings::{self, SettingsFile};
use capt_host_core::{Policy, view};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::ModuleArgs;
use crate::filter::Filter;
use crate::junit;

/// Runs scenario files against a policy. As text: one line per scenario (`ok` or `FAIL`), a
/// message and a diff per failed expectation, then `N passed, M failed`. Exits with 1 if any
/// failed or none was found, 2 if a scenario's settings are rejected by the policy.
#[derive(Debug, Args)]
pub struct Test {
    /// Scenario files, or directories searched recursively for `.yaml`/`.yml` files.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    module: ModuleArgs,
    /// Run only the scenarios whose file (relative to its directory) or name contains this
    /// text, or matches it as a glob (`*`, `?`, `[a-z]`).
    #[arg(long, value_name = "TEXT|GLOB")]
    filter: Option<String>,
    /// The report on stdout: text, junit (JUnit XML, for CI) or json.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: Output,
    /// Also print what every reconcile produced (text output).
    #[arg(long, short)]
    verbose: bool,
    /// Write every final reconcile as one JSON line to FILE (the patch stream of
    /// docs/embedding.md), to compare this host with others.
    #[arg(long, value_name = "FILE")]
    patch_stream: Option<PathBuf>,
}

/// The report's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
enum Output {
    /// A line per scenario, coloured on a terminal.
    #[default]
    Text,
    /// JUnit XML: one test suite, one test case per scenario.
    Junit,
    /// One JSON object: every scenario with its failures, and the counts.
    Json,
}

/// What happened to one scenario.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ScenarioResult {
    /// Its file, relative to the directory it was found under.
    file: String,
    /// Its name (empty if the file is not a valid scenario).
    name: String,
    /// False when the file is not a valid scenario.
    #[serde(skip)]
    valid: bool,
    /// ok, failed, or error (its settings are rejected: a usage error).
    status: Status,
    failures: Vec<FailureView>,
    duration_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Failed,
    Error,
}

/// A failed expectation: where (`setup` or `step N`), what, and the diff if any.
#[derive(Debug, Serialize)]
struct FailureView {
    place: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
}

impl Test {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            paths,
            module,
            filter,
            output,
            verbose,
            patch_stream,
        } = self;
        let policy = module.load()?;
        let files = match scenario::files(&paths) {
            Ok(files) => files,
            // A folder without scenarios is a failed suite (1), not a usage error (2).
            Err(error @ scenario::ScenarioError::Empty { .. }) => {
                eprintln!("error: {error}");
                return Ok(ExitCode::from(1));
            }
            Err(error) => return Err(error.into()),
        };
        let mut stream = patch_stream
            .as_ref()
            .map(|path| {
                std::fs::File::create(path)
                    .map(std::io::BufWriter::new)
                    .with_context(|| {
                        format!("could not create the patch stream {}", path.display())
                    })
            })
            .transpose()?;
        let filter = filter.as_deref().map(Filter::new);
        let colour = output == Output::Text && std::io::stdout().is_terminal();
        let mut out = std::io::stdout().lock();
        let mut results = Vec::new();
        for file in &files {
            let relative = relative_name(&paths, file);
            let start = Instant::now();
            let loaded = scenario::load(file);
            let valid = loaded.is_ok();
            let name = loaded.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            if let Some(filter) = &filter
                && !filter.matches(&relative)
                && !filter.matches(&name)
            {
                continue;
            }
            let (status, failures, outcome) = match loaded {
                Err(error) => (
                    Status::Failed,
                    vec![FailureView {
                        place: "file".into(),
                        message: capt_host_core::error_chain(&error),
                        diff: None,
                    }],
                    None,
                ),
                Ok(loaded) => match check_settings(&policy, file) {
                    Err(message) => (
                        Status::Error,
                        vec![FailureView {
                            place: "settings".into(),
                            message,
                            diff: None,
                        }],
                        None,
                    ),
                    Ok(()) => {
                        let outcome = scenario::run(&loaded, &policy);
                        let status = if outcome.passed() {
                            Status::Ok
                        } else {
                            Status::Failed
                        };
                        (status, failures(&outcome), Some(outcome))
                    }
                },
            };
            if let (Some(stream), Some(outcome)) = (&mut stream, &outcome) {
                for record in &outcome.records {
                    writeln!(stream, "{}", scenario::stream::line(&relative, record))?;
                }
            }
            let result = ScenarioResult {
                file: relative,
                name,
                valid,
                status,
                failures,
                duration_seconds: start.elapsed().as_secs_f64(),
            };
            if output == Output::Text {
                print_text(&mut out, &file.display().to_string(), &result, colour)?;
                if let (true, Some(outcome)) = (verbose, &outcome) {
                    report_records(&mut out, outcome)?;
                }
            }
            results.push(result);
        }
        if let Some(mut stream) = stream {
            stream.flush()?;
        }
        let count = |status: Status| results.iter().filter(|r| r.status == status).count();
        let (passed, failed, errors) = (
            count(Status::Ok),
            count(Status::Failed),
            count(Status::Error),
        );
        match output {
            Output::Text => {
                let errors = match errors {
                    0 => String::new(),
                    n => format!(", {n} with invalid settings"),
                };
                writeln!(out, "{passed} passed, {failed} failed{errors}")?;
            }
            Output::Junit => {
                out.write_all(junit::report("capt-host test", &junit_cases(&results)).as_bytes())?;
            }
            Output::Json => {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({
                        "scenarios": results,
                        "passed": passed,
                        "failed": failed,
                        "errors": errors,
                    }),
                )?;
                writeln!(out)?;
            }
        }
        out.flush()?;
        if results.is_empty() {
            let filter = filter.map(|_| " matches --filter").unwrap_or(" found");
            eprintln!("error: no scenario{filter}");
            return Ok(ExitCode::from(1));
        }
        Ok(match (errors, failed) {
            (0, 0) => ExitCode::SUCCESS,
            (0, _) => ExitCode::from(1),
            _ => ExitCode::from(2),
        })
    }
}

/// The policy's verdict on the `settings` of the scenario file `file`, with the rejected
/// keys' places in that file.
fn check_settings(policy: &dyn Policy, file: &Path) -> Result<(), String> {
    let checked = std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            SettingsFile::parse_key(file, &text, "settings")
                .and_then(|settings| settings::check(policy, settings.as_ref()))
                .map_err(|e| capt_host_core::error_chain(&e))
        });
    checked.map(drop)
}

fn failures(outcome: &Outcome) -> Vec<FailureView> {
    outcome
        .failures
        .iter()
        .map(|failure| FailureView {
            place: match failure.step {
                0 => "setup".to_owned(),
                n => format!("step {n}"),
            },
            message: failure.message.clone(),
            diff: failure.diff.clone(),
        })
        .collect()
}

/// One scenario as text: `ok   FILE: NAME`, or `FAIL FILE: NAME` (`ERROR` for rejected
/// settings) and its failures.
fn print_text(
    out: &mut impl Write,
    path: &str,
    result: &ScenarioResult,
    colour: bool,
) -> std::io::Result<()> {
    let (label, code) = match result.status {
        Status::Ok => ("ok  ", "32"),
        Status::Failed => ("FAIL", "31"),
        Status::Error => ("ERROR", "31"),
    };
    let label = if colour {
        format!("\x1b[{code}m{label}\x1b[0m")
    } else {
        label.to_owned()
    };
    if !result.valid {
        writeln!(out, "{label} {path}: (not a valid scenario)")?;
        for failure in &result.failures {
            writeln!(out, "{}", indent(&failure.message, 4))?;
        }
        return Ok(());
    }
    writeln!(out, "{label} {path}: {}", result.name)?;
    for failure in &result.failures {
        writeln!(
            out,
            "{}",
            indent(&format!("{}: {}", failure.place, failure.message), 4)
        )?;
        if let Some(diff) = &failure.diff {
            writeln!(out, "{}", indent(diff.trim_end(), 6))?;
        }
    }
    Ok(())
}

/// The results as JUnit cases: one per scenario, its name (its file when it has none), its
/// file as the class name.
fn junit_cases(results: &[ScenarioResult]) -> Vec<junit::Case> {
    results
        .iter()
        .map(|result| {
            let message = result
                .failures
                .first()
                .map(|f| format!("{}: {}", f.place, f.message))
                .unwrap_or_default();
            let details = result
                .failures
                .iter()
                .map(|f| match &f.diff {
                    Some(diff) => format!("{}: {}\n{diff}", f.place, f.message),
                    None => format!("{}: {}", f.place, f.message),
                })
                .collect::<Vec<_>>()
                .join("\n");
            let verdict = match result.status {
                Status::Ok => junit::Verdict::Passed,
                Status::Failed => junit::Verdict::Failure { message, details },
                Status::Error => junit::Verdict::Error { message, details },
            };
            junit::Case {
                name: match result.name.as_str() {
                    "" => result.file.clone(),
                    name => name.to_owned(),
                },
                classname: result.file.clone(),
                time: Duration::from_secs_f64(result.duration_seconds),
                verdict,
            }
        })
        .collect()
}

/// `file` relative to the directory it was found under (`/`-separated); a file given directly
/// is named by its file name.
fn relative_name(roots: &[PathBuf], file: &Path) -> String {
    let relative = roots
        .iter()
        .filter(|root| root.is_dir())
        .find_map(|root| file.strip_prefix(root).ok())
        .or_else(|| file.file_name().map(Path::new))
        .unwrap_or(file);
    let parts: Vec<_> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

fn report_records(out: &mut impl Write, outcome: &Outcome) -> std::io::Result<()> {
    for record in &outcome.records {
        writeln!(
            out,
            "    step {}: reconcile {}",
            record.step, record.trigger
        )?;
        let text = match &record.result {
            Ok(response) => view::to_yaml(&view::response(response)),
            Err(message) => format!("error: {message}"),
        };
        writeln!(out, "{}", indent(text.trim_end(), 6))?;
    }
    Ok(())
}

/// `text` with every line indented by `by` spaces.
fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|line| format!("{pad}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

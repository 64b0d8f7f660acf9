//! `capt-host test`: runs scenario files.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use capt_host_core::scenario::{self, Outcome};
use capt_host_core::view;
use clap::Args;

use super::ModuleArgs;

/// Runs scenario files against a policy: one line per scenario (`ok` or `FAIL`), a message and
/// a diff per failed expectation, then `N passed, M failed`. Exits with 1 if any failed.
#[derive(Debug, Args)]
pub struct Test {
    /// Scenario files, or directories searched recursively for `.yaml`/`.yml` files.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    module: ModuleArgs,
    /// Also print what every reconcile produced.
    #[arg(long, short)]
    verbose: bool,
    /// Write every final reconcile as one JSON line to FILE (the patch stream of
    /// docs/embedding.md), to compare this host with others.
    #[arg(long, value_name = "FILE")]
    patch_stream: Option<PathBuf>,
}

impl Test {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            paths,
            module,
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
        let mut stream = match &patch_stream {
            Some(path) => Some(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| {
                    anyhow::anyhow!("cannot create the patch stream {}: {e}", path.display())
                })?,
            )),
            None => None,
        };
        let mut out = std::io::stdout().lock();
        let (mut passed, mut failed) = (0, 0);
        for file in &files {
            let path = file.display();
            let outcome = match scenario::load(file) {
                Ok(scenario) => scenario::run(&scenario, &policy),
                Err(error) => {
                    failed += 1;
                    writeln!(out, "FAIL {path}: (not a valid scenario)")?;
                    writeln!(out, "{}", indent(&capt_host_core::error_chain(&error), 4))?;
                    continue;
                }
            };
            if let Some(stream) = &mut stream {
                let relative = relative_name(&paths, file);
                for record in &outcome.records {
                    writeln!(stream, "{}", scenario::stream::line(&relative, record))?;
                }
            }
            if outcome.passed() {
                passed += 1;
                writeln!(out, "ok   {path}: {}", outcome.name)?;
            } else {
                failed += 1;
                writeln!(out, "FAIL {path}: {}", outcome.name)?;
                report_failures(&mut out, &outcome)?;
            }
            if verbose {
                report_records(&mut out, &outcome)?;
            }
        }
        if let Some(mut stream) = stream {
            stream.flush()?;
        }
        writeln!(out, "{passed} passed, {failed} failed")?;
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

/// `file` relative to the directory it was found under (`/`-separated); a file given directly
/// is named by its file name.
fn relative_name(roots: &[PathBuf], file: &std::path::Path) -> String {
    let relative = roots
        .iter()
        .filter(|root| root.is_dir())
        .find_map(|root| file.strip_prefix(root).ok())
        .or_else(|| file.file_name().map(std::path::Path::new))
        .unwrap_or(file);
    let parts: Vec<_> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    parts.join("/")
}

fn report_failures(out: &mut impl std::io::Write, outcome: &Outcome) -> std::io::Result<()> {
    for failure in &outcome.failures {
        let place = match failure.step {
            0 => "setup".to_owned(),
            n => format!("step {n}"),
        };
        writeln!(
            out,
            "{}",
            indent(&format!("{place}: {}", failure.message), 4)
        )?;
        if let Some(diff) = &failure.diff {
            writeln!(out, "{}", indent(diff.trim_end(), 6))?;
        }
    }
    Ok(())
}

fn report_records(out: &mut impl std::io::Write, outcome: &Outcome) -> std::io::Result<()> {
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

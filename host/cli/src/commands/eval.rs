//! `capt-host eval`: one reconcile against objects from a file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use capt_host_core::scenario::{Selector, runner};
use capt_host_core::view::{self, ReferenceView, ResponseView};
use capt_host_core::world::World;
use capt_host_core::{Policy as _, rounds};
use capt_host_operator::manifests;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::{ModuleArgs, read_yaml};

/// Runs one reconcile (with requirement rounds) and prints its patches (merge patches as YAML),
/// events and requeue as YAML. Exits with 1 if the reconcile fails.
#[derive(Debug, Args)]
pub struct Eval {
    /// The object to reconcile: KIND/NAMESPACE/NAME, or KIND/NAME when cluster-scoped.
    #[arg(long, value_name = "KIND/NAMESPACE/NAME")]
    trigger: String,
    /// The objects the policy may read: a multi-document YAML file, a YAML list, or a `List`.
    #[arg(long, value_name = "FILE")]
    objects: PathBuf,
    /// The reconcile's time, RFC 3339 (e.g. 2026-01-01T00:00:00Z); default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    now: Option<DateTime<Utc>>,
    /// Overrides of the policy's default settings: a YAML (or JSON) object.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    #[command(flatten)]
    module: ModuleArgs,
}

impl Eval {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            trigger,
            objects,
            now,
            settings,
            module,
        } = self;
        let selector = parse_trigger(&trigger)?;
        let now = now.unwrap_or_else(Utc::now);
        let overrides = settings.as_deref().map(read_yaml).transpose()?;
        let mut world = World::new();
        for manifest in read_manifests(&objects)? {
            world
                .apply(manifest, now)
                .with_context(|| format!("in {}", objects.display()))?;
        }
        let Some(trigger) = runner::locate(&world, &selector).map_err(anyhow::Error::msg)? else {
            bail!("{} has no object {selector}", objects.display());
        };
        // The policy is loaded last, so bad input fails fast, before anything is compiled.
        let policy = module.load()?;
        let settings =
            rounds::merge_settings(&policy.metadata().default_settings, overrides.as_ref())?;
        let response =
            rounds::reconcile(&policy, &world, &trigger, now.timestamp_millis(), &settings)
                .with_context(|| format!("reconciling {trigger}"))?;

        let report = Report {
            trigger: view::reference(&trigger),
            now: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            response: view::response(&response),
        };
        print!("{}", view::to_yaml(&report));
        Ok(ExitCode::SUCCESS)
    }
}

/// What `eval` prints, in this order.
#[derive(Serialize)]
struct Report<'a> {
    trigger: ReferenceView<'a>,
    now: String,
    #[serde(flatten)]
    response: ResponseView<'a>,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; expected RFC 3339, e.g. 2026-01-01T00:00:00Z"))
}

fn parse_trigger(text: &str) -> anyhow::Result<Selector> {
    let parts: Vec<&str> = text.split('/').collect();
    let (kind, namespace, name) = match parts[..] {
        [kind, namespace, name] => (kind, Some(namespace), name),
        [kind, name] => (kind, None, name),
        _ => bail!("invalid --trigger {text:?}: expected KIND/NAMESPACE/NAME or KIND/NAME"),
    };
    if [kind, name]
        .iter()
        .chain(&namespace)
        .any(|part| part.is_empty())
    {
        bail!("invalid --trigger {text:?}: empty part");
    }
    Ok(Selector {
        api_version: None,
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    })
}

/// Every manifest in a YAML file (see [`manifests::parse`]).
fn read_manifests(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    manifests::parse(&text).with_context(|| format!("{} is not valid YAML", path.display()))
}

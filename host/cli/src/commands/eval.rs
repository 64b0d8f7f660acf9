//! `capt-host eval`: one reconcile against objects from files, rendered like `crossplane
//! render`: the objects as they are after the patches, then the patches, events and requeue.

use std::cell::RefCell;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use capt_host_core::scenario::{self, Selector, runner};
use capt_host_core::settings::{self, SettingsFile};
use capt_host_core::view::{self, ReferenceView, ResponseView};
use capt_host_core::world::World;
use capt_host_core::{Policy, PolicyError, rounds};
use capt_host_operator::manifests;
use capt_policy::{Metadata, ObjectRef, Request, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::Value;

use super::ModuleArgs;
use crate::kinds::Kinds;

/// Runs one reconcile (with requirement rounds) of an object among the given ones and prints,
/// as one YAML (or JSON) document: the trigger, the time, the objects the patches wrote as
/// they are after them, the patches (merge patches as objects), the events and the requeue.
/// Exits with 1 if the reconcile fails, 2 on bad input (objects, trigger, settings).
#[derive(Debug, Args)]
pub struct Eval {
    /// The object to reconcile, as kubectl names it: RESOURCE/NAME (with -n), where RESOURCE
    /// is a kind, plural or short name in any case, optionally with its group
    /// (captclusters.infrastructure.cluster.x-k8s.io); or KIND/NAMESPACE/NAME.
    #[arg(long, value_name = "RESOURCE/NAME")]
    trigger: String,
    /// The trigger's namespace; default: any namespace, if the name is unique.
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: Option<String>,
    /// The objects the policy may read: YAML files (several documents, YAML lists and `List`s)
    /// and folders searched recursively for .yaml/.yml files; repeat or list several.
    #[arg(long, value_name = "PATH", required = true, num_args = 1..)]
    objects: Vec<PathBuf>,
    /// The reconcile's time, RFC 3339 (e.g. 2026-01-01T00:00:00Z); default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    now: Option<DateTime<Utc>>,
    /// Overrides of the policy's default settings: a YAML (or JSON) object, checked by the
    /// policy.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// The output format.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: Output,
    /// Also print each requirement round: the objects sent, those missing, and what the
    /// policy required next.
    #[arg(long)]
    show_rounds: bool,
    #[command(flatten)]
    module: ModuleArgs,
}

/// How `eval` prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
enum Output {
    /// One YAML document.
    #[default]
    Yaml,
    /// One JSON object.
    Json,
}

impl Eval {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            trigger,
            namespace,
            objects,
            now,
            settings,
            output,
            show_rounds,
            module,
        } = self;
        let now = now.unwrap_or_else(Utc::now);
        let settings = settings.as_deref().map(SettingsFile::read).transpose()?;
        let mut world = World::new();
        let mut kinds = Kinds::default();
        for file in object_files(&objects)? {
            for manifest in read_manifests(&file)? {
                kinds.add_object(&manifest);
                world
                    .apply(manifest, now)
                    .with_context(|| format!("in {}", file.display()))?;
            }
        }
        let selector = parse_trigger(&trigger, namespace.as_deref(), &kinds)?;
        let Some(trigger) = runner::locate(&world, &selector).map_err(anyhow::Error::msg)? else {
            bail!("the objects have no {selector}");
        };
        // The policy is loaded last, so bad input fails fast, before anything is compiled.
        let policy = module.load()?;
        let settings = settings::check(&policy, settings.as_ref())?;
        let recording = Recording::new(&policy);
        let response = rounds::reconcile(
            &recording,
            &world,
            &trigger,
            now.timestamp_millis(),
            &settings,
        )
        .with_context(|| format!("reconciling {trigger}"))?;
        world
            .apply_response(&response.patches)
            .context("applying the patches to the objects")?;
        let mut written = vec![&trigger];
        for patch in &response.patches {
            if !written.iter().any(|r| r.same_object(&patch.target)) {
                written.push(&patch.target);
            }
        }
        let rounds = recording.rounds.into_inner();
        let report = Report {
            trigger: view::reference(&trigger),
            now: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            objects: written.iter().filter_map(|r| world.get(r)).collect(),
            response: view::response(&response),
            rounds: show_rounds.then(|| rounds.iter().map(Round::view).collect()),
        };
        let text = match output {
            Output::Yaml => view::to_yaml(&report),
            Output::Json => serde_json::to_string_pretty(&report)? + "\n",
        };
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}

/// What `eval` prints, in this order.
#[derive(Serialize)]
struct Report<'a> {
    trigger: ReferenceView<'a>,
    now: String,
    /// The trigger and every other object a patch wrote, after the patches.
    objects: Vec<&'a Value>,
    #[serde(flatten)]
    response: ResponseView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rounds: Option<Vec<RoundView<'a>>>,
}

/// A policy that records the requirement rounds of the policy it calls.
struct Recording<'a> {
    policy: &'a dyn Policy,
    rounds: RefCell<Vec<Round>>,
}

impl<'a> Recording<'a> {
    fn new(policy: &'a dyn Policy) -> Self {
        Self {
            policy,
            rounds: RefCell::default(),
        }
    }
}

impl Policy for Recording<'_> {
    fn metadata(&self) -> &Metadata {
        self.policy.metadata()
    }

    fn reconcile(&self, request: &Request) -> Result<Response, PolicyError> {
        let result = self.policy.reconcile(request);
        self.rounds.borrow_mut().push(Round {
            sent: request
                .objects
                .iter()
                .map(|o| o.reference.clone())
                .collect(),
            missing: request.missing.clone(),
            requirements: result
                .as_ref()
                .map(|response| response.requirements.clone())
                .unwrap_or_default(),
        });
        result
    }
}

/// One call of a reconcile.
struct Round {
    sent: Vec<ObjectRef>,
    missing: Vec<ObjectRef>,
    requirements: Vec<ObjectRef>,
}

impl Round {
    fn view(&self) -> RoundView<'_> {
        RoundView {
            objects: self.sent.iter().map(view::reference).collect(),
            missing: self.missing.iter().map(view::reference).collect(),
            requirements: self.requirements.iter().map(view::reference).collect(),
        }
    }
}

/// A round as printed: what the policy got, and what it required next (none in the last).
#[derive(Serialize)]
struct RoundView<'a> {
    objects: Vec<ReferenceView<'a>>,
    missing: Vec<ReferenceView<'a>>,
    requirements: Vec<ReferenceView<'a>>,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; expected RFC 3339, e.g. 2026-01-01T00:00:00Z"))
}

/// The selector of `text` (RESOURCE/NAME or KIND/NAMESPACE/NAME) in `namespace`, its resource
/// name resolved among `kinds`.
fn parse_trigger(text: &str, namespace: Option<&str>, kinds: &Kinds) -> anyhow::Result<Selector> {
    let parts: Vec<&str> = text.split('/').collect();
    let (resource, namespace, name) = match (parts.as_slice(), namespace) {
        ([resource, name], namespace) => (*resource, namespace, *name),
        ([kind, namespace, name], None) => (*kind, Some(*namespace), *name),
        ([_, _, _], Some(_)) => {
            bail!("invalid --trigger {text:?}: a namespace in it and in -n; give one of the two")
        }
        _ => bail!("invalid --trigger {text:?}: expected RESOURCE/NAME or KIND/NAMESPACE/NAME"),
    };
    if [resource, name]
        .iter()
        .chain(&namespace)
        .any(|part| part.is_empty())
    {
        bail!("invalid --trigger {text:?}: empty part");
    }
    let kind = kinds.resolve(resource)?;
    Ok(Selector {
        api_version: Some(kind.api_version.clone()),
        kind: kind.kind.clone(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    })
}

/// The files of `paths`: files as given, folders searched recursively for YAML files.
fn object_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = scenario::yaml_files(path)?;
            if found.is_empty() {
                bail!("{} holds no .yaml or .yml files", path.display());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Every manifest in a YAML file (see [`manifests::parse`]).
fn read_manifests(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    manifests::parse(&text).with_context(|| format!("{} is not valid YAML", path.display()))
}

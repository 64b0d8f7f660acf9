//! Property tests of scenario files ("fuzzing"): arbitrary text and mutated files of the
//! default policy's suite parse to a [`Scenario`] or a typed error, never a panic; what
//! parses runs to an [`super::Outcome`] (with a policy that answers nothing), never a panic;
//! and so do Go durations.

use std::path::Path;
use std::sync::LazyLock;

use capt_policy::{KindRef, Metadata, Request, Response};
use proptest::prelude::*;
use proptest::sample::Index;

use capt_policy::duration;

use super::{Scenario, files, run};
use crate::policy::{Policy, PolicyError};

/// A policy triggered by the suite's kinds that answers every reconcile with nothing.
struct Idle(Metadata);

impl Idle {
    fn new() -> Self {
        let kind = |api_version: &str, kind: &str| KindRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespaced: true,
        };
        Self(Metadata {
            name: "idle".into(),
            version: "0.0.0".into(),
            triggers: vec![
                kind("infrastructure.cluster.x-k8s.io/v1beta1", "CAPTCluster"),
                kind("controlplane.cluster.x-k8s.io/v1beta1", "CAPTControlPlane"),
            ],
            reads: vec![],
            default_settings: "{}".into(),
        })
    }
}

impl Policy for Idle {
    fn metadata(&self) -> &Metadata {
        &self.0
    }

    fn reconcile(&self, _: &Request) -> Result<Response, PolicyError> {
        Ok(Response::default())
    }
}

/// The text of every file of the default policy's scenario suite, read once.
static SUITE: LazyLock<Vec<String>> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/capt-status/scenarios");
    files(&[dir])
        .expect("the suite")
        .iter()
        .map(|file| std::fs::read_to_string(file).expect("a scenario file"))
        .collect()
});

/// Tokens that YAML, the format or the runner treat specially.
const TOKENS: [&str; 24] = [
    "~",
    "-",
    "- ",
    ":",
    ": ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "!!binary ",
    "!!int ",
    "<<: *a",
    "null",
    "0",
    "-1",
    "18446744073709551616",
    "99999999999h",
    "1.5.5s",
    "+262143-12-31T23:59:59Z",
    "-262143-01-01T00:00:00Z",
    "\t",
    "\n  ",
];

/// One edit of a text, at a position (in chars, or a line for `DuplicateLine`) taken modulo
/// the text's length.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    Truncate(usize),
    DuplicateLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let text = prop_oneof![
        3 => prop::sample::select(TOKENS.to_vec()).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    prop_oneof![
        4 => (any::<usize>(), text).prop_map(|(at, text)| Edit::Insert(at, text)),
        2 => (any::<usize>(), 1..20usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => any::<usize>().prop_map(Edit::DuplicateLine),
    ]
}

/// Applies `edits` to `text`.
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let at = |position: &usize| position % (chars.len() + 1);
        match edit {
            Edit::Insert(index, text) => {
                let at = at(index);
                chars.splice(at..at, text.chars());
            }
            Edit::Delete(index, n) => {
                let at = at(index);
                let end = (at + n).min(chars.len());
                chars.drain(at..end);
            }
            Edit::Truncate(index) => chars.truncate(at(index)),
            Edit::DuplicateLine(index) => {
                let lines: Vec<String> = chars
                    .split(|c| *c == '\n')
                    .map(|line| line.iter().collect())
                    .collect();
                let line = index % lines.len();
                let mut out = lines[..=line].to_vec();
                out.extend_from_slice(&lines[line..]);
                chars = out.join("\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

/// Parses `text` as a scenario and, if it parses, runs it: either may fail, neither panics.
fn parse_and_run(text: &str) {
    if let Ok(scenario) = serde_yaml_ng::from_str::<Scenario>(text) {
        let _ = run(&scenario, &Idle::new());
    }
}

/// 64 cases unless `PROPTEST_CASES` says otherwise (the bounded run in .ci/run).
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_is_a_scenario_or_a_typed_error(text in any::<String>()) {
        parse_and_run(&text);
    }

    #[test]
    fn mutated_suite_files_are_scenarios_or_typed_errors(
        file in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let text = mutate(&SUITE[file.index(SUITE.len())], &edits);
        parse_and_run(&text);
    }

    #[test]
    fn any_duration_text_parses_or_is_an_error(
        text in prop_oneof![any::<String>(), "[0-9.]{0,30}(ns|us|µs|ms|s|m|h){0,2}"],
    ) {
        let _ = duration::parse(&text);
    }
}

#[test]
fn the_mutations_edit_where_they_are_told() {
    assert_eq!(mutate("ab", &[Edit::Insert(4, "x".into())]), "axb");
    assert_eq!(
        mutate("ab\ncd\nef", &[Edit::DuplicateLine(4)]),
        "ab\ncd\ncd\nef"
    );
    assert_eq!(mutate("abc", &[Edit::Delete(1, 5)]), "a");
    assert_eq!(mutate("abc", &[Edit::Truncate(2)]), "ab");
}

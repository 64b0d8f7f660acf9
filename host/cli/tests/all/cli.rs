//! The `capt-host` binary, run as a user would. These tests use the embedded policy but assert
//! only what does not depend on its logic: exit codes, output shape, error reporting.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn capt_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capt-host"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("CAPT_HOST_MODULE")
        .output()
        .expect("running capt-host")
}

fn fixture(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
        .display()
        .to_string()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("output is YAML")
}

/// Writes `contents` to `name` in the test binary's temporary folder (`CARGO_TARGET_TMPDIR`).
pub(crate) fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn test_reports_each_scenario_and_closes_with_the_counts() {
    let output = capt_host(&["test", &fixture("scenarios")]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}{}", stderr(&output));
    let lines: Vec<&str> = out.lines().collect();
    let fails = fixture("scenarios/fails.yaml");
    let malformed = fixture("scenarios/malformed.yaml");
    let passes = fixture("scenarios/passes.yaml");
    assert_eq!(
        lines[0],
        format!("FAIL {fails}: an expectation that does not hold")
    );
    assert!(
        out.contains("step 1: object ConfigMap/settings does not match:"),
        "{out}"
    );
    assert!(
        out.contains("at .data.mode: expected \"slow\", got \"fast\""),
        "{out}"
    );
    assert!(
        out.contains("--- expected\n")
            && out.contains("-  mode: slow\n")
            && out.contains("+  mode: fast\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("FAIL {malformed}: (not a valid scenario)")),
        "{out}"
    );
    assert!(out.contains("unknown field `patchez`"), "{out}");
    assert!(
        out.contains(&format!(
            "ok   {passes}: world rules and an unsupported kind"
        )),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"1 passed, 2 failed"));
}

#[test]
fn test_exits_zero_when_everything_passes_and_verbose_shows_reconciles() {
    let output = capt_host(&["test", "--verbose", &fixture("scenarios/passes.yaml")]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(
        out.contains("step 2: reconcile ConfigMap/default/settings"),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 0 failed\n"), "{out}");
}

#[test]
fn test_writes_one_patch_stream_line_per_reconcile_named_relative_to_the_directory() {
    let stream = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-patch-stream.jsonl");
    let dir = fixture("scenarios");
    let output = capt_host(&[
        "test",
        &dir,
        "--patch-stream",
        &stream.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let lines: Vec<Value> = std::fs::read_to_string(&stream)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(!lines.is_empty());
    let files: std::collections::BTreeSet<&str> =
        lines.iter().map(|l| l["file"].as_str().unwrap()).collect();
    assert!(files.contains("passes.yaml"), "{files:?}");
    assert!(
        !files.contains("malformed.yaml"),
        "an invalid scenario writes nothing"
    );
    for l in &lines {
        for key in [
            "step",
            "trigger",
            "patches",
            "events",
            "requeueAfterMillis",
            "error",
        ] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
    }
}

#[test]
fn test_of_a_missing_path_is_a_usage_error() {
    let output = capt_host(&["test", "/nonexistent/scenarios"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("could not read /nonexistent/scenarios"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn test_of_a_folder_without_scenarios_fails_with_exit_code_1() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-scenarios-here");
    std::fs::create_dir_all(&dir).unwrap();
    let output = capt_host(&["test", &dir.display().to_string()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("holds no scenario files"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn inspect_describes_the_embedded_policy() {
    let output = capt_host(&["inspect"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = yaml(&stdout(&output));
    for key in [
        "name",
        "version",
        "triggers",
        "reads",
        "defaultSettings",
        "sha256",
        "size",
        "imports",
        "exports",
    ] {
        assert!(report.get(key).is_some(), "no {key} in {report}");
    }
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    let imports = report["imports"].as_array().unwrap();
    // The host provides exactly one thing: the log function.
    let imports: Vec<&str> = imports
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(imports, ["capt:policy/log@0.1.0"]);
    assert_eq!(
        report["imports"][0]["members"],
        serde_json::json!(["type level", "func log"]),
        "{report}"
    );
    let exports: Vec<&str> = report["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        exports,
        ["capt:policy/types@0.1.0", "capt:policy/reconciler@0.1.0"]
    );
}

#[test]
fn the_demo_converges_and_hot_swaps_to_a_new_module() {
    let output = capt_host(&[
        "demo",
        "--step",
        "200ms",
        "--timeout",
        "5m",
        "--swap-to",
        policy_fixture_artifacts::V2,
    ]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    // The kubectl columns of the spec, then both Ready.
    for header in [
        "NAME           VPC-ID                  READY   ENDPOINT",
        "NAME           READY   PHASE   VERSION   ENDPOINT",
    ] {
        assert!(out.contains(header), "no `{header}` table in:\n{out}");
    }
    assert!(out.contains("both Ready"), "{out}");
    // The swap: promoted, and every object reconciled again under v2.
    assert!(
        out.contains("swap: promoted capt-status 0.2.0-fixture"),
        "{out}"
    );
    for plural in ["captclusters", "captcontrolplanes"] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("{plural}/demo-cluster: Ready")))
            .unwrap_or_else(|| panic!("no Ready line for {plural} in:\n{out}"));
        assert!(line.ends_with("(policy v2)\""), "{line}");
    }
}

#[test]
fn bad_modules_are_clear_errors_not_panics() {
    let output = capt_host(&["inspect", "--module", "/nonexistent.wasm"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("could not read the module /nonexistent.wasm"),
        "{}",
        stderr(&output)
    );

    let garbage = temp_file("garbage.wasm", b"not wasm at all");
    let output = capt_host(&["inspect", "--module", garbage.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("Caused by:") && err.contains("not a WebAssembly file"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn eval_prints_the_response_as_yaml() {
    // Reconcile an object of the policy's first trigger kind, whatever the policy is.
    let report = yaml(&stdout(&capt_host(&["inspect"])));
    let trigger = &report["triggers"][0];
    let kind = trigger["kind"].as_str().unwrap();
    let api_version = trigger["apiVersion"].as_str().unwrap();
    let objects = temp_file(
        "eval-objects.yaml",
        format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{namespace: default, name: demo}}\nspec: {{}}\n").as_bytes(),
    );
    let output = capt_host(&[
        "eval",
        "--trigger",
        &format!("{kind}/default/demo"),
        "--objects",
        objects.to_str().unwrap(),
        "--now",
        "2026-01-01T00:00:00Z",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let result = yaml(&text);
    assert_eq!(result["trigger"]["name"], "demo");
    assert_eq!(result["now"], "2026-01-01T00:00:00.000Z");
    assert!(
        result["patches"].is_array() && result["events"].is_array(),
        "{text}"
    );
    assert!(result.get("requeueAfter").is_some(), "{text}");
    for patch in result["patches"].as_array().unwrap() {
        assert!(
            patch["mergePatch"].is_object(),
            "merge patches are YAML, not JSON strings: {text}"
        );
    }
}

#[test]
fn eval_of_an_unsupported_kind_fails_with_the_policy_error() {
    let output = capt_host(&[
        "eval",
        "--trigger",
        "ConfigMap/default/settings",
        "--objects",
        &fixture("eval/configmap.yaml"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("reconciling ConfigMap/default/settings") && err.contains("unsupported kind"),
        "{err}"
    );
}

#[test]
fn eval_rejects_malformed_arguments() {
    let output = capt_host(&[
        "eval",
        "--trigger",
        "just-a-name",
        "--objects",
        &fixture("eval/configmap.yaml"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("expected KIND/NAMESPACE/NAME or KIND/NAME"));
    let output = capt_host(&[
        "eval",
        "--trigger",
        "Secret/nope",
        "--objects",
        &fixture("eval/configmap.yaml"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("has no object Secret/nope"),
        "{}",
        stderr(&output)
    );
    let output = capt_host(&[
        "eval",
        "--trigger",
        "A/b",
        "--objects",
        "x",
        "--now",
        "yesterday",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("RFC 3339"));
}

//! The `capt-host` binary, run as a user would. These tests use the embedded policy but assert
//! only what does not depend on its logic: exit codes, output shape, error reporting.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn capt_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capt-host"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("CAPT_MODULE")
        .env_remove("CAPT_LOG_LEVEL")
        .env_remove("CAPT_LOG_FORMAT")
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
    assert!(stderr(&output).contains("expected RESOURCE/NAME or KIND/NAMESPACE/NAME"));
    let output = capt_host(&[
        "eval",
        "--trigger",
        "Widget/nope",
        "--objects",
        &fixture("eval/configmap.yaml"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .contains("unknown resource type \"Widget\"; the objects are of: ConfigMap, Secret"),
        "{}",
        stderr(&output)
    );
    // A kind the objects know (the Secret of the file's List), but no such object.
    let output = capt_host(&[
        "eval",
        "--trigger",
        "secrets/nope",
        "-n",
        "default",
        "--objects",
        &fixture("eval/configmap.yaml"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("the objects have no Secret/default/nope"),
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

/// The policy's first trigger kind: `(apiVersion, kind)`.
fn first_trigger() -> (String, String) {
    let report = yaml(&stdout(&capt_host(&["inspect"])));
    let trigger = &report["triggers"][0];
    (
        trigger["apiVersion"].as_str().unwrap().to_owned(),
        trigger["kind"].as_str().unwrap().to_owned(),
    )
}

/// A folder holding one object of the policy's first trigger kind, `demo` in `default`, and
/// a ConfigMap in another file.
fn objects_folder() -> PathBuf {
    let (api_version, kind) = first_trigger();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eval-objects");
    std::fs::create_dir_all(dir.join("more")).unwrap();
    std::fs::write(
        dir.join("trigger.yaml"),
        format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{namespace: default, name: demo}}\nspec: {{}}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("more/configmap.yml"),
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: default, name: c}\n---\n",
    )
    .unwrap();
    dir
}

#[test]
fn eval_takes_folders_and_kubectl_references_and_renders_objects_patches_and_rounds_as_json() {
    let (_, kind) = first_trigger();
    let dir = objects_folder();
    let plural = format!("{}s", kind.to_lowercase());
    let output = capt_host(&[
        "eval",
        "--trigger",
        &format!("{plural}/demo"),
        "-n",
        "default",
        "--objects",
        dir.to_str().unwrap(),
        "--now",
        "2026-01-01T00:00:00Z",
        "-o",
        "json",
        "--show-rounds",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    let result: Value = serde_json::from_str(&text).expect("the output is JSON");
    let positions: Vec<usize> = [
        "trigger",
        "now",
        "objects",
        "patches",
        "events",
        "requeueAfter",
        "rounds",
    ]
    .iter()
    .map(|key| {
        text.find(&format!("\n  \"{key}\": "))
            .unwrap_or_else(|| panic!("no {key}: {text}"))
    })
    .collect();
    assert!(
        positions.is_sorted(),
        "the objects first, then the patches and events: {text}"
    );
    let trigger = &result["objects"][0];
    assert_eq!(trigger["metadata"]["name"], "demo", "{text}");
    // The trigger is shown after the patches: every status field a patch wrote is in it.
    for patch in result["patches"].as_array().unwrap() {
        if patch["target"]["name"] == "demo" && patch["subresource"] == "status" {
            for (field, value) in patch["mergePatch"]["status"].as_object().unwrap() {
                if !value.is_null() && !value.is_object() {
                    assert_eq!(&trigger["status"][field], value, "{field} in {text}");
                }
            }
        }
    }
    let rounds = result["rounds"].as_array().unwrap();
    assert!(!rounds.is_empty(), "{text}");
    assert_eq!(rounds[0]["objects"][0]["name"], "demo", "the trigger first");
    assert_eq!(
        rounds.last().unwrap()["requirements"],
        serde_json::json!([]),
        "the last round requires nothing more"
    );

    // Any case, the kind itself, the old KIND/NAMESPACE/NAME form; YAML without rounds.
    for trigger in [
        format!("{}/demo", kind.to_uppercase()),
        format!("{kind}/default/demo"),
    ] {
        let output = capt_host(&[
            "eval",
            "--trigger",
            &trigger,
            "--objects",
            dir.join("trigger.yaml").to_str().unwrap(),
            dir.join("more").to_str().unwrap(),
        ]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{trigger}: {}",
            stderr(&output)
        );
        assert!(yaml(&stdout(&output)).get("rounds").is_none());
    }
    let output = capt_host(&[
        "eval",
        "--trigger",
        "nosuchkinds/demo",
        "--objects",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unknown resource type \"nosuchkinds\"")
            && stderr(&output).contains("ConfigMap"),
        "{}",
        stderr(&output)
    );
}

/// A settings file with a typo on line 3 and a bad value on line 4.
fn bad_settings() -> PathBuf {
    temp_file(
        "bad-settings.yaml",
        b"# my overrides\nvpcReadyTimeout: 20m\npollIntervl: 10s\nclusterPropagation: sometimes\n",
    )
}

fn assert_points_at_the_users_file(err: &str, file: &Path) {
    let file = file.display();
    assert!(
        err.contains(&format!(
            "{file}: the policy `capt-status` rejects these settings"
        )),
        "{err}"
    );
    assert!(err.contains("3:1: `pollIntervl`: "), "{err}");
    assert!(err.contains("4:1: `clusterPropagation`: "), "{err}");
    assert!(!err.contains("2:1:"), "a valid key is not blamed: {err}");
    assert!(
        !err.contains("line 1 column"),
        "no position in a document the user never wrote: {err}"
    );
}

#[test]
fn eval_and_run_reject_bad_settings_at_their_line_before_anything_else() {
    let settings = bad_settings();
    let dir = objects_folder();
    let output = capt_host(&[
        "eval",
        "--trigger",
        "configmap/c",
        "--objects",
        dir.to_str().unwrap(),
        "--settings",
        settings.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_points_at_the_users_file(&stderr(&output), &settings);

    // `run` stops before it reads the kubeconfig (which does not exist).
    let output = capt_host(&[
        "run",
        "--settings",
        settings.to_str().unwrap(),
        "--kubeconfig",
        "/nonexistent/kubeconfig",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert_points_at_the_users_file(&err, &settings);
    assert!(!err.contains("kubeconfig"), "{err}");
}

#[test]
fn a_scenario_whose_settings_the_policy_rejects_is_a_usage_error() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scenario-bad-settings");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("typo.yaml"),
        "name: a typo in the settings\nsettings:\n  pollIntervl: 10s\nsteps: []\n",
    )
    .unwrap();
    let output = capt_host(&["test", dir.to_str().unwrap()]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{out}{}", stderr(&output));
    assert!(out.contains("ERROR "), "{out}");
    assert!(out.contains("3:3: `pollIntervl`"), "{out}");
    assert!(
        out.ends_with("0 passed, 0 failed, 1 with invalid settings\n"),
        "{out}"
    );
}

#[test]
fn test_filters_scenarios_by_file_or_name_and_none_matching_is_an_error() {
    for filter in ["passes", "pass*.y?ml", "world rules"] {
        let output = capt_host(&["test", &fixture("scenarios"), "--filter", filter]);
        let out = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{filter}: {out}");
        assert!(out.ends_with("1 passed, 0 failed\n"), "{filter}: {out}");
    }
    let output = capt_host(&["test", &fixture("scenarios"), "--filter", "nothing-like-it"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no scenario matches --filter"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn test_reports_as_junit_and_json_without_colour_in_a_pipe() {
    let output = capt_host(&["test", &fixture("scenarios"), "--output", "junit"]);
    assert_eq!(output.status.code(), Some(1));
    let xml = stdout(&output);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains("<testsuite name=\"capt-host test\" tests=\"3\" failures=\"2\" errors=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<testcase name=\"world rules and an unsupported kind\" classname=\"passes.yaml\""
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"step 1: object ConfigMap/settings does not match"),
        "{xml}"
    );

    let output = capt_host(&["test", &fixture("scenarios"), "-o", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(
        (report["passed"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(2))
    );
    let passes = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["file"] == "passes.yaml")
        .unwrap();
    assert_eq!(passes["status"], "ok");

    let output = capt_host(&["test", &fixture("scenarios")]);
    assert!(
        !stdout(&output).contains('\x1b'),
        "no colour codes in a pipe"
    );
}

#[test]
fn test_into_a_closed_pipe_ends_quietly() {
    // A pipe whose reader is gone before the command starts: its first write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_capt-host"))
        .args(["test", &fixture("scenarios")])
        .env_remove("RUST_LOG")
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(141), "{err}");
    assert!(err.is_empty(), "{err}");
}

/// A kubeconfig whose server nothing listens on.
fn unreachable_kubeconfig() -> PathBuf {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    temp_file(
        "unreachable-kubeconfig.yaml",
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\ncontexts:\n- name: nowhere\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user: {{token: t}}\n"
        )
        .as_bytes(),
    )
}

#[test]
fn run_logs_at_info_as_flat_json_and_says_which_server_it_could_not_connect_to() {
    let kubeconfig = unreachable_kubeconfig();
    let output = capt_host(&[
        "run",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--log-format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    let records: Vec<Value> = err
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("a JSON log line"))
        .collect();
    let loaded = records
        .iter()
        .find(|r| r["msg"] == "policy loaded")
        .unwrap_or_else(|| panic!("no info record `policy loaded` at the default level: {err}"));
    assert_eq!(loaded["level"], "info");
    assert!(loaded["ts"].is_f64(), "{loaded}");
    assert!(
        loaded["version"].is_u64() || loaded["version"].is_string(),
        "{loaded}"
    );
    let error = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        error.contains("could not connect to the Kubernetes API server at http://127.0.0.1:")
            && error.contains("(kubeconfig context nowhere)"),
        "{err}"
    );
    let causes: Vec<&str> = err
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .collect();
    for (i, cause) in causes.iter().enumerate() {
        let text = cause.split_once(": ").map_or(*cause, |(_, t)| t);
        assert!(
            !causes[..i].iter().any(|earlier| earlier.contains(text)),
            "a cause is repeated: {err}"
        );
    }

    // --log-level (and CAPT_LOG_LEVEL) quieten it; RUST_LOG wins over both.
    let quiet = capt_host(&[
        "run",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--log-level",
        "error",
    ]);
    assert!(
        !stderr(&quiet).contains("policy loaded"),
        "{}",
        stderr(&quiet)
    );
    let output = Command::new(env!("CARGO_BIN_EXE_capt-host"))
        .args([
            "run",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--log-level",
            "error",
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(err.contains("policy loaded"), "{err}");
    assert!(!err.contains('\x1b'), "no colour codes in a pipe: {err}");
}

//! The policy embedded in other hosts: Node.js (jco) and Python (wasmtime-py) run the same
//! component over the same scenarios and must agree with `capt-host` scenario by scenario and
//! patch by patch (tests/embedding/run.sh does the work; docs/embedding.md explains it).

use std::path::Path;
use std::process::Command;

use crate::embedded::DEFAULT_POLICY;

#[test]
fn node_and_python_hosts_agree_with_capt_host_patch_for_patch() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let module = Path::new(env!("CARGO_TARGET_TMPDIR")).join("embedding-policy.wasm");
    std::fs::write(&module, DEFAULT_POLICY).unwrap();
    let output = Command::new("bash")
        .arg(repo.join("tests/embedding/run.sh"))
        .env("CAPT_POLICY_MODULE", &module)
        .env("CAPT_HOST_BIN", env!("CARGO_BIN_EXE_capt-host"))
        .current_dir(&repo)
        .output()
        .expect("running tests/embedding/run.sh");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    println!("{out}");
    assert!(output.status.success(), "run.sh failed:\n{out}\n{err}");
    // Three hosts ran, and each comparison was made (not skipped).
    for check in [
        "ok   node runner passes every scenario",
        "ok   python runner passes every scenario",
        "ok   node agrees with the rust host",
        "ok   python agrees with the rust host",
    ] {
        assert!(out.contains(check), "missing `{check}` in:\n{out}");
    }
    let streams = ["node", "python", "rust"].map(|host| {
        std::fs::read(repo.join("target/embedding").join(format!("{host}.jsonl"))).unwrap()
    });
    assert!(!streams[0].is_empty());
    assert!(
        streams.iter().all(|s| s == &streams[0]),
        "the patch streams differ"
    );
}

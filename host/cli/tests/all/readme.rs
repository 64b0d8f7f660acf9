//! The README's `capt-host eval` and `capt-host test` examples run as written, from the
//! repository's root, and succeed.

use std::path::Path;
use std::process::Command;

/// The repository's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("host/cli is two levels down")
}

/// The command lines of the README's `sh` blocks that run `capt-host <command>`, without
/// their trailing comments.
fn examples(readme: &str, command: &str) -> Vec<String> {
    let prefix = format!("capt-host {command} ");
    let mut in_shell = false;
    let mut found = Vec::new();
    for line in readme.lines() {
        let trimmed = line.trim();
        if let Some(fence) = trimmed.strip_prefix("```") {
            in_shell = !in_shell && fence == "sh";
            continue;
        }
        if in_shell && trimmed.starts_with(&prefix) {
            let command = trimmed.split(" #").next().unwrap_or(trimmed).trim();
            found.push(command.to_owned());
        }
    }
    found
}

fn run(example: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_capt-host"))
        .args(example.split_whitespace().skip(1))
        .current_dir(root())
        .env_remove("RUST_LOG")
        .env_remove("CAPT_MODULE")
        .output()
        .expect("running capt-host");
    assert!(
        output.status.success(),
        "`{example}` exited with {}:\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_readme_examples_of_eval_and_test_run_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for command in ["eval", "test"] {
        let examples = examples(&readme, command);
        assert!(
            !examples.is_empty(),
            "the README has no `capt-host {command}` example"
        );
        for example in examples {
            run(&example);
        }
    }
}

#[test]
fn examples_are_taken_from_sh_blocks_without_their_comments() {
    let readme = "text capt-host test a\n```sh\ncapt-host test a b   # two\ncapt-host eval x\n```\n```text\ncapt-host test c\n```\n";
    assert_eq!(examples(readme, "test"), ["capt-host test a b"]);
    assert_eq!(examples(readme, "eval"), ["capt-host eval x"]);
}

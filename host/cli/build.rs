//! Builds the default policy component (the workspace's guest crate) and embeds it.
//!
//! Like wasmtime's `crates/test-programs/artifacts/build.rs`: a nested `cargo build` for
//! `wasm32-unknown-unknown` with the `guest` profile, in its own target directory under
//! `OUT_DIR` (so it never waits for the lock the outer cargo holds), with the outer build's
//! compiler flags and wrappers removed. Its dep-info file gives the exact `rerun-if-changed`
//! lines, so an unchanged guest costs nothing; when the guest did change, the nested cargo is
//! incremental. The component is copied to `OUT_DIR/default-policy.wasm`, whose path is
//! exported to every target of this package as `CAPT_HOST_DEFAULT_POLICY`.
//!
//! It also embeds the default policy's scenario suite (`policies/capt-status/scenarios`), the
//! default canary of hot swaps: `OUT_DIR/canary-scenarios.rs` lists each file with
//! `include_str!`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The guest package built as the default policy.
const GUEST_PACKAGE: &str = "capt-status";
/// The file name rustc gives the component (the package name with `_`).
const GUEST_ARTIFACT: &str = "capt_status";
/// The target the guest is built for: no WASI, linked into a component by wasm-component-ld.
const TARGET: &str = "wasm32-unknown-unknown";
/// The workspace profile used for the guest (see the root `Cargo.toml`).
const PROFILE: &str = "guest";

fn main() {
    if let Err(message) = build() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or("the host crate has no parent directory")?
        .to_path_buf();
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);

    ensure_target_installed()?;

    let target_dir = out_dir.join("guest-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args([
            "-p",
            GUEST_PACKAGE,
            "--target",
            TARGET,
            "--profile",
            PROFILE,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host build must not leak into the wasm build; clippy's wrapper
        // must not lint the guest from here. The jobserver (CARGO_MAKEFLAGS) is kept on
        // purpose, so the nested build shares the outer build's job slots.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        // Cargo's stdout is parsed for `cargo:` directives: keep the nested cargo's away from it.
        .stdout(Stdio::null());
    let status = cmd
        .status()
        .map_err(|e| format!("could not run `{cargo}`: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the default policy failed ({status}); to see why, run:\n  \
             cargo build -p {GUEST_PACKAGE} --target {TARGET} --profile {PROFILE}"
        ));
    }

    let artifacts = target_dir.join(TARGET).join(PROFILE);
    let wasm = artifacts.join(format!("{GUEST_ARTIFACT}.wasm"));
    let dep_info = artifacts.join(format!("{GUEST_ARTIFACT}.d"));
    emit_rerun_lines(&dep_info)?;
    for path in [
        workspace.join("Cargo.toml"),
        workspace.join("Cargo.lock"),
        workspace.join("guest").join("Cargo.toml"),
        workspace.join("wit"),
        workspace.join(".cargo").join("config.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    embed_canary_suite(&workspace, &out_dir)?;

    let embedded = out_dir.join("default-policy.wasm");
    fs::copy(&wasm, &embedded).map_err(|e| {
        format!(
            "could not copy {} to {}: {e}",
            wasm.display(),
            embedded.display()
        )
    })?;
    println!(
        "cargo:rustc-env=CAPT_HOST_DEFAULT_POLICY={}",
        embedded.display()
    );
    Ok(())
}

/// The scenario suite of the default policy, embedded as the default canary of hot swaps
/// (`capt_host::swap`): writes `OUT_DIR/canary-scenarios.rs`, a list of
/// `(path relative to the suite, include_str!(file))`, sorted by path.
fn embed_canary_suite(workspace: &Path, out_dir: &Path) -> Result<(), String> {
    let suite = workspace
        .join("policies")
        .join("capt-status")
        .join("scenarios");
    println!("cargo:rerun-if-changed={}", suite.display());
    let mut files = Vec::new();
    collect_yaml(&suite, &mut files)?;
    files.sort();
    let mut code = String::from("&[\n");
    for file in &files {
        let relative = file
            .strip_prefix(&suite)
            .map_err(|e| e.to_string())?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        code.push_str(&format!(
            "    ({relative:?}, include_str!({:?})),\n",
            file.display().to_string()
        ));
    }
    code.push_str("]\n");
    let generated = out_dir.join("canary-scenarios.rs");
    fs::write(&generated, code).map_err(|e| format!("could not write {}: {e}", generated.display()))
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries =
        fs::read_dir(dir).map_err(|e| format!("could not read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect_yaml(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}

/// Emits one `rerun-if-changed` line per input listed in the nested build's dep-info file
/// (`target: dep dep ...`, spaces inside paths escaped with `\`).
fn emit_rerun_lines(dep_info: &Path) -> Result<(), String> {
    let text = fs::read_to_string(dep_info)
        .map_err(|e| format!("could not read {}: {e}", dep_info.display()))?;
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut current = String::new();
        let mut chars = deps.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ' ' => {
                    if !current.is_empty() {
                        println!("cargo:rerun-if-changed={current}");
                        current.clear();
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            println!("cargo:rerun-if-changed={current}");
        }
    }
    Ok(())
}

/// Makes sure the wasm target's standard library is installed: rustup does not add the
/// targets listed in `rust-toolchain.toml` to a toolchain that is already installed.
fn ensure_target_installed() -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("could not run `{rustc} --print sysroot`: {e}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
    {
        return Ok(());
    }
    println!("cargo:warning=the {TARGET} target is missing; running `rustup target add {TARGET}`");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if added {
        Ok(())
    } else {
        Err(format!(
            "the {TARGET} target is not installed and `rustup target add` failed; run:\n  \
             rustup target add {TARGET}"
        ))
    }
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}

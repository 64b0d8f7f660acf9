//! Builds the default policy component (the workspace's guest crate) and embeds it.
//!
//! A nested `cargo build` for `wasm32-unknown-unknown` with the `guest` profile
//! (`capt-wasm-build`). The component is copied to `OUT_DIR/default-policy.wasm`, whose path
//! is exported to every target of this package as `CAPT_HOST_DEFAULT_POLICY`.
//!
//! It also embeds the default policy's scenario suite (`policies/capt-status/scenarios`), the
//! default canary of hot swaps: `OUT_DIR/canary-scenarios.rs` lists each file with
//! `include_str!`.

use std::fs;
use std::path::{Path, PathBuf};

use capt_wasm_build::{Build, ensure_target_installed, env_var, rerun_if_changed};

/// The guest package built as the default policy.
const GUEST_PACKAGE: &str = "capt-status";
/// The file name rustc gives the component (the package name with `_`).
const GUEST_ARTIFACT: &str = "capt_status";
/// The target the guest is built for: no WASI, linked into a component by wasm-component-ld.
const TARGET: &str = "wasm32-unknown-unknown";
/// The workspace profile used for the guest (see the root `Cargo.toml`).
const PROFILE: &str = "guest";

fn main() {
    capt_wasm_build::main(build);
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    // This package is `host/cli` in the workspace.
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .ok_or("the capt-host package is not two levels under the workspace")?
        .to_path_buf();
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);

    ensure_target_installed(TARGET)?;
    let wasm = Build {
        workspace: &workspace,
        package: GUEST_PACKAGE,
        artifact: GUEST_ARTIFACT,
        target: TARGET,
        profile: PROFILE,
        features: &[],
        target_dir: &out_dir.join("guest-target"),
    }
    .run()?;
    rerun_if_changed([
        workspace.join("Cargo.toml"),
        workspace.join("Cargo.lock"),
        workspace.join("guest").join("Cargo.toml"),
        workspace.join("wit"),
        workspace.join(".cargo").join("config.toml"),
    ]);

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
/// (`src/embedded.rs`): writes `OUT_DIR/canary-scenarios.rs`, a list of
/// `(path relative to the suite, include_str!(file))`, sorted by path.
fn embed_canary_suite(workspace: &Path, out_dir: &Path) -> Result<(), String> {
    let suite = workspace
        .join("policies")
        .join("capt-status")
        .join("scenarios");
    rerun_if_changed([&suite]);
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

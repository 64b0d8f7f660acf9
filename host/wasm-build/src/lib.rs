//! # capt-wasm-build: nested cargo builds of wasm components, for build scripts
//!
//! Like wasmtime's `crates/test-programs/artifacts/build.rs`: a nested `cargo build` in its own
//! target directory under `OUT_DIR` (so it never waits for the lock the outer cargo holds),
//! with the outer build's compiler flags and wrappers removed. The nested build's dep-info
//! file gives the exact `rerun-if-changed` lines, so an unchanged guest costs nothing; when it
//! did change, the nested cargo is incremental.
//!
//! Used by `capt-host`'s build script (the default policy) and by the test fixtures' (every
//! variant of `policy-fixtures`). Errors are messages for the build's output.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One nested build: `package` of the workspace at `workspace`, for `target` with `profile`.
#[derive(Debug, Clone)]
pub struct Build<'a> {
    /// The workspace root (its `Cargo.toml`).
    pub workspace: &'a Path,
    /// The package to build.
    pub package: &'a str,
    /// The file name rustc gives its artifacts (the package name with `_`).
    pub artifact: &'a str,
    /// The target, e.g. `wasm32-unknown-unknown`.
    pub target: &'a str,
    /// The profile, e.g. `guest`.
    pub profile: &'a str,
    /// Features to enable (none: the defaults).
    pub features: &'a [&'a str],
    /// The nested build's target directory (under `OUT_DIR`).
    pub target_dir: &'a Path,
}

impl Build<'_> {
    /// Where the component is once built.
    pub fn wasm(&self) -> PathBuf {
        self.artifacts().join(format!("{}.wasm", self.artifact))
    }

    fn artifacts(&self) -> PathBuf {
        self.target_dir.join(self.target).join(self.profile)
    }

    /// Runs the build, then prints a `rerun-if-changed` line per input of its dep-info file.
    /// Returns the component's path.
    pub fn run(&self) -> Result<PathBuf, String> {
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(&cargo);
        command
            .arg("build")
            .arg("--manifest-path")
            .arg(self.workspace.join("Cargo.toml"))
            .args(["-p", self.package, "--target", self.target])
            .args(["--profile", self.profile]);
        if !self.features.is_empty() {
            command.args(["--features", &self.features.join(",")]);
        }
        let status = command
            .arg("--target-dir")
            .arg(self.target_dir)
            // Flags meant for the host build must not leak into the wasm build; clippy's
            // wrapper must not lint the guest from here. The jobserver (CARGO_MAKEFLAGS) is
            // kept on purpose, so the nested build shares the outer build's job slots.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            // Cargo's stdout is parsed for `cargo:` directives: keep the nested cargo's away.
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("could not run `{cargo}`: {e}"))?;
        if !status.success() {
            let features = match self.features {
                [] => String::new(),
                features => format!(" --features {}", features.join(",")),
            };
            return Err(format!(
                "building {} failed ({status}); to see why, run:\n  \
                 cargo build -p {} --target {} --profile {}{features}",
                self.package, self.package, self.target, self.profile
            ));
        }
        emit_rerun_lines(&self.artifacts().join(format!("{}.d", self.artifact)))?;
        Ok(self.wasm())
    }
}

/// Prints one `rerun-if-changed` line per input listed in a dep-info file
/// (`target: dep dep ...`, spaces inside paths escaped with `\`).
pub fn emit_rerun_lines(dep_info: &Path) -> Result<(), String> {
    let text = fs::read_to_string(dep_info)
        .map_err(|e| format!("could not read {}: {e}", dep_info.display()))?;
    for path in dep_info_inputs(&text) {
        println!("cargo:rerun-if-changed={path}");
    }
    Ok(())
}

/// The inputs a dep-info file lists.
fn dep_info_inputs(text: &str) -> Vec<String> {
    let mut inputs = Vec::new();
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
                        inputs.push(std::mem::take(&mut current));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            inputs.push(current);
        }
    }
    inputs
}

/// Makes sure a target's standard library is installed: rustup does not add the targets
/// listed in `rust-toolchain.toml` to a toolchain that is already installed.
pub fn ensure_target_installed(target: &str) -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("could not run `{rustc} --print sysroot`: {e}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .is_dir()
    {
        return Ok(());
    }
    println!("cargo:warning=the {target} target is missing; running `rustup target add {target}`");
    let added = Command::new("rustup")
        .args(["target", "add", target])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if added {
        Ok(())
    } else {
        Err(format!(
            "the {target} target is not installed and `rustup target add` failed; run:\n  \
             rustup target add {target}"
        ))
    }
}

/// Runs a build script's `body`; when it fails, prints the message and fails the build.
pub fn main(body: impl FnOnce() -> Result<(), String>) {
    if let Err(message) = body() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

/// The environment variable `name`, which cargo sets for build scripts.
pub fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}

/// Prints `rerun-if-changed` lines for `paths`.
pub fn rerun_if_changed<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) {
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.as_ref().display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_inputs_unescape_spaces() {
        let text = "out.wasm: src/a.rs src/my\\ file.rs\n\nsrc/a.rs:\n";
        assert_eq!(dep_info_inputs(text), ["src/a.rs", "src/my file.rs"]);
    }
}

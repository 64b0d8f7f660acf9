//! The `kube-apiserver`, `etcd` and `kubectl` binaries: built (or reused) by `tests/kube/build.sh`, once
//! per process. The script holds a lock, so test binaries running in parallel build once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::Error;

/// The folder of this crate, which holds `build.sh` and the pinned `go.mod`.
pub fn here() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folder holding `kube-apiserver`, `etcd` and `kubectl`, building them first if the cache has no
/// build of the pinned versions (minutes, the first time; the script prints its progress).
pub fn dir() -> Result<&'static Path, Error> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(build)
        .as_deref()
        .map_err(|e| Error::Build(e.clone()))
}

/// The `kubectl` of the pinned Kubernetes release (built with the servers), for tests that
/// install `deploy/` as users do (`kubectl apply -k`, `kubectl kustomize`).
pub fn kubectl() -> Result<PathBuf, Error> {
    dir().map(|dir| dir.join("kubectl"))
}

fn build() -> Result<PathBuf, String> {
    let script = here().join("build.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!("{} {}", script.display(), output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout
        .lines()
        .last()
        .ok_or_else(|| format!("{} printed no folder", script.display()))?;
    Ok(PathBuf::from(dir))
}

//! The CustomResourceDefinitions the real-server tests install: the CAPT CRDs this repository
//! ships, the Cluster API `Cluster` CRD as Cluster API publishes it (from its Go module at the
//! release pinned in `crds/go.mod`, fetched into the Go module cache and verified against
//! `crds/go.sum` at test time), and a stand-in for the Crossplane `Workspace` CRD.
//!
//! The Go module proxy does not serve provider-terraform (`github.com/upbound/provider-terraform`,
//! which carries `package/crds/tf.upbound.io_workspaces.yaml`), so the `Workspace` CRD is the
//! repository's minimal one (`policies/capt-status/crds/test-only/`): the same group, version,
//! kind and scope, the fields CAPT reads spelled out, every other field kept open with
//! `x-kubernetes-preserve-unknown-fields` (the real one types `spec.forProvider` and
//! `status.atProvider` fully).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{Error, binaries};

/// The Cluster API module whose `Cluster` CRD is installed (pinned in `crds/go.mod`).
pub const CLUSTER_API_MODULE: &str = "sigs.k8s.io/cluster-api";
/// The `Cluster` CRD's path inside that module.
const CLUSTER_CRD: &str = "core/config/crd/bases/cluster.x-k8s.io_clusters.yaml";

/// The repository's root.
pub fn repository() -> PathBuf {
    binaries::here().join("../..")
}

/// The CAPT CRDs: the files named by `policies/capt-status/crds/kustomization.yaml`.
pub fn capt() -> Result<Vec<Value>, Error> {
    let dir = repository().join("policies/capt-status/crds");
    kustomization_resources(&dir)?
        .iter()
        .map(|file| parse_file(file))
        .collect::<Result<Vec<_>, _>>()
        .map(|files| files.into_iter().flatten().collect())
}

/// The Cluster API `Cluster` CRD of the pinned release, with one change: `v1beta1` (the
/// version CAPT reads and writes) is the storage version instead of `v1beta2`. Cluster API
/// converts between them with a webhook that does not run here; without it the server would
/// store a `v1beta1` write as `v1beta2` unconverted and prune every field `v1beta2` lacks.
/// The schemas of both versions are kept as published.
pub fn cluster_api() -> Result<Vec<Value>, Error> {
    let mut crds = parse_file(&module_dir(CLUSTER_API_MODULE)?.join(CLUSTER_CRD))?;
    for crd in &mut crds {
        for version in crd["spec"]["versions"].as_array_mut().into_iter().flatten() {
            version["storage"] = Value::from(version["name"] == "v1beta1");
        }
    }
    Ok(crds)
}

/// The stand-in for Crossplane's `Workspace` CRD (see the module documentation).
pub fn workspace_stand_in() -> Result<Vec<Value>, Error> {
    parse_file(
        &repository().join("policies/capt-status/crds/test-only/tf.upbound.io_workspaces.yaml"),
    )
}

/// Every CRD the operator needs: [`capt`], [`cluster_api`] and [`workspace_stand_in`].
pub fn all() -> Result<Vec<Value>, Error> {
    let mut crds = capt()?;
    crds.extend(cluster_api()?);
    crds.extend(workspace_stand_in()?);
    Ok(crds)
}

/// The files a `kustomization.yaml` in `dir` lists as resources (files only, not folders).
pub fn kustomization_resources(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let file = dir.join("kustomization.yaml");
    let kustomization = parse_file(&file)?.into_iter().next().unwrap_or_default();
    let resources = kustomization["resources"]
        .as_array()
        .ok_or_else(|| Error::Manifest {
            file: file.clone(),
            message: "no resources list".to_owned(),
        })?;
    Ok(resources
        .iter()
        .filter_map(Value::as_str)
        .map(|name| dir.join(name))
        .filter(|path| path.is_file())
        .collect())
}

/// The YAML documents of `file`, as JSON values (empty documents skipped).
pub fn parse_file(file: &Path) -> Result<Vec<Value>, Error> {
    let text =
        std::fs::read_to_string(file).map_err(Error::io(format!("reading {}", file.display())))?;
    let mut values = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|e| Error::Manifest {
                file: file.to_path_buf(),
                message: e.to_string(),
            })?;
        if !value.is_null() {
            values.push(value);
        }
    }
    Ok(values)
}

/// The folder of `module` (at the version `crds/go.mod` pins) in the Go module cache,
/// downloading and verifying it first if needed.
fn module_dir(module: &str) -> Result<PathBuf, Error> {
    let pins = binaries::here().join("crds");
    let output = Command::new("go")
        .args(["mod", "download", "-json", module])
        .current_dir(&pins)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(Error::io(format!("running go mod download {module}")))?;
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    match answer["Dir"].as_str() {
        Some(dir) if output.status.success() => Ok(PathBuf::from(dir)),
        _ => Err(Error::Manifest {
            file: pins.join("go.mod"),
            message: format!(
                "go mod download {module} failed ({}): {}",
                output.status, answer["Error"]
            ),
        }),
    }
}

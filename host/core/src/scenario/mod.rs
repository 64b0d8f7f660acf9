//! Scenario files: a YAML description of an initial world and of steps that change it,
//! reconcile and check expectations ([`format`]), with Go-style durations
//! ([`capt_policy::duration`]); partial matching and diffs ([`matching`]); and the runner
//! ([`runner`]).

pub mod format;
#[cfg(test)]
mod fuzz;
pub mod matching;
pub mod runner;
pub mod stream;

use std::path::{Path, PathBuf};

pub use format::{Expect, Requeue, Scenario, Selector, Step};
pub use runner::{Failure, Outcome, Record, run};

/// Why a scenario file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("could not read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A folder holds no scenario files: a suite that finds nothing is a mistake, not a pass.
    #[error("{} holds no scenario files (.yaml or .yml)", .path.display())]
    Empty {
        /// The folder.
        path: PathBuf,
    },
    /// The file is not a valid scenario.
    #[error("{} is not a valid scenario", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        #[source]
        source: serde_yaml_ng::Error,
    },
}

/// Reads and parses one scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_yaml_ng::from_str(&text).map_err(|source| ScenarioError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// The scenario files under `paths`: files as given, directories searched recursively for
/// `.yaml` and `.yml` files; sorted, without duplicates. A directory without any is an error.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut found = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| ScenarioError::Read {
            path: path.clone(),
            source,
        })?;
        if metadata.is_dir() {
            let yaml = yaml_files(path)?;
            if yaml.is_empty() {
                return Err(ScenarioError::Empty { path: path.clone() });
            }
            found.extend(yaml);
        } else {
            found.push(path.clone());
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The `.yaml` and `.yml` files under `dir`, searched recursively, sorted.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut found = Vec::new();
    walk(dir, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ScenarioError> {
    let read_error = |source| ScenarioError::Read {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_dir() {
            walk(&path, found)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_scenario_files_is_an_error() {
        let dir = std::env::temp_dir().join(format!("capt-empty-suite-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a scenario").unwrap();
        let error = files(std::slice::from_ref(&dir)).unwrap_err();
        assert!(
            matches!(&error, ScenarioError::Empty { path } if *path == dir),
            "{error}"
        );
        std::fs::write(dir.join("nested/a.yaml"), "name: a").unwrap();
        assert_eq!(
            files(std::slice::from_ref(&dir)).unwrap(),
            [dir.join("nested/a.yaml")]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

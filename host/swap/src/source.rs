//! Where candidates come from: the module file and its optional settings file, read with a
//! size limit ([`read`]), and [`Changes`], which tells when they may have changed.
//!
//! The parent directories are watched, not the files: a mounted ConfigMap changes by an
//! atomic swap of the `..data` symlink (the files are symlinks through it and never change
//! themselves), an editor or `cp` replaces or rewrites the file, `mv` renames a new file over
//! it. Any event in a watched directory (but reads) starts a quiet period ([`SwapConfig`]'s
//! `debounce`); when no event came for that long, the files are read again by path, following
//! the symlinks anew. A periodic re-read (`rescan`) is the safety net for file systems that
//! send no events. Reading an unchanged module costs a read and a SHA-256: the job ignores
//! candidates identical to the active module.
//!
//! [`SwapConfig`]: super::SwapConfig

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::error::SwapError;
use capt_host_core::settings::SettingsFile;
use capt_host_core::text::hex;

/// A candidate as read from the files.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) bytes: Vec<u8>,
    pub(crate) sha256: String,
    /// The settings overrides, if a settings file is configured.
    pub(crate) settings: Option<SettingsFile>,
    /// The SHA-256 of the settings file's bytes (empty without one).
    pub(crate) settings_sha256: String,
}

impl Candidate {
    /// The candidate of the module `bytes` with `settings`.
    pub(crate) fn new(bytes: Vec<u8>, settings: &Settings) -> Self {
        Self {
            sha256: hex(&Sha256::digest(&bytes)),
            bytes,
            settings: settings.file.clone(),
            settings_sha256: settings.sha256.clone(),
        }
    }

    /// What makes two candidates the same: the module and the settings.
    pub(crate) fn key(&self) -> (String, String) {
        (self.sha256.clone(), self.settings_sha256.clone())
    }
}

/// Reads the module at `module` (refusing more than `limit` bytes) and the settings at
/// `settings`.
pub(crate) fn read(
    module: &Path,
    settings: Option<&Path>,
    limit: u64,
) -> Result<Candidate, SwapError> {
    let bytes = read_module(module, limit)?;
    let settings = read_settings(settings)?;
    Ok(Candidate::new(bytes, &settings))
}

/// Reads the module at `path`, refusing more than `limit` bytes.
pub(crate) fn read_module(path: &Path, limit: u64) -> Result<Vec<u8>, SwapError> {
    let read_error = |source| SwapError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > limit {
        return Err(SwapError::TooLarge { size, limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // The file may grow while it is read: never take more than the limit.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let read = bytes.len() as u64;
    if read > limit {
        return Err(SwapError::TooLarge { size: read, limit });
    }
    Ok(bytes)
}

/// The settings overrides of a candidate.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    /// The overrides, with their places in the file; `None` without a settings file, or
    /// when it does not exist.
    pub(crate) file: Option<SettingsFile>,
    /// The SHA-256 of the file's bytes; empty without one.
    pub(crate) sha256: String,
}

/// Reads the settings file at `path`. A file that does not exist (a ConfigMap without a
/// settings key, not created yet) means the policy's default settings; it is read again when
/// it appears.
pub(crate) fn read_settings(path: Option<&Path>) -> Result<Settings, SwapError> {
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Settings::default());
        }
        Err(source) => {
            return Err(SwapError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let sha256 = hex(&Sha256::digest(&text));
    let invalid = |message: String| SwapError::Settings {
        path: Some(path.to_owned()),
        message,
    };
    let text = String::from_utf8(text).map_err(|e| invalid(e.to_string()))?;
    let file =
        SettingsFile::parse(path, &text).map_err(|e| invalid(capt_host_core::error_chain(&e)))?;
    Ok(Settings {
        file: Some(file),
        sha256,
    })
}

/// Tells when the watched files may have changed.
pub(crate) struct Changes {
    events: mpsc::UnboundedReceiver<()>,
    debounce: Duration,
    rescan: Option<Duration>,
    // Watching stops when it is dropped.
    _watcher: Option<RecommendedWatcher>,
}

impl Changes {
    /// Watches the directories of `files`. Without a watcher (it could not be set up), only
    /// the rescan reports changes.
    pub(crate) fn watch(files: &[&Path], debounce: Duration, rescan: Option<Duration>) -> Self {
        let (sender, events) = mpsc::unbounded_channel();
        let directories: BTreeSet<PathBuf> = files.iter().map(|file| parent(file)).collect();
        let watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if is_read(&event.kind) => {}
                Ok(_) => {
                    let _ = sender.send(());
                }
                Err(error) => tracing::warn!(%error, "watching the policy files"),
            })
            .and_then(|mut watcher| {
                for directory in &directories {
                    watcher.watch(directory, RecursiveMode::NonRecursive)?;
                }
                Ok(watcher)
            });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::error!(%error, ?directories, ?rescan, "cannot watch the policy files; relying on the periodic re-read");
                None
            }
        };
        Self {
            events,
            debounce,
            rescan,
            _watcher: watcher,
        }
    }

    /// Waits for a change, then for `debounce` without events; returns when the first event
    /// of the burst came. A change is also reported every `rescan`.
    pub(crate) async fn next(&mut self) -> Instant {
        let rescan = async {
            match self.rescan {
                Some(every) => tokio::time::sleep(every).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = self.events.recv() => {
                if event.is_none() {
                    // The watcher is gone: only rescans are left.
                    std::future::pending::<()>().await;
                }
            }
            () = rescan => return Instant::now(),
        }
        let first = Instant::now();
        // A burst that never ends is cut after 20 quiet periods.
        let longest = self.debounce.saturating_mul(20);
        while first.elapsed() < longest {
            match tokio::time::timeout(self.debounce, self.events.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) | Err(_) => break,
            }
        }
        first
    }
}

/// True for events that only read (opening, reading, closing without writing): the host's own
/// reads of the files must not look like changes.
fn is_read(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(access) if *access != AccessKind::Close(AccessMode::Write))
}

/// The directory of `file` (`.` for a bare file name).
fn parent(file: &Path) -> PathBuf {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_not_changes_but_finished_writes_are() {
        assert!(is_read(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(is_read(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_read(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!is_read(&EventKind::Create(notify::event::CreateKind::Any)));
    }

    #[test]
    fn a_missing_settings_file_means_the_defaults_and_differs_from_an_empty_one() {
        let dir = std::env::temp_dir().join(format!("capt-swap-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("settings.yaml");
        let _ = std::fs::remove_file(&path);
        let missing = read_settings(Some(&path)).unwrap();
        assert!(missing.file.is_none());
        assert!(missing.sha256.is_empty());
        std::fs::write(&path, "{}").unwrap();
        let present = read_settings(Some(&path)).unwrap();
        assert_eq!(
            present.file.as_ref().map(SettingsFile::overrides),
            Some(&serde_json::json!({}))
        );
        assert!(!present.sha256.is_empty());
        std::fs::write(&path, "[unclosed").unwrap();
        assert_eq!(read_settings(Some(&path)).unwrap_err().reason(), "settings");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(parent(Path::new("policy.wasm")), PathBuf::from("."));
        assert_eq!(
            parent(Path::new("/etc/p/policy.wasm")),
            PathBuf::from("/etc/p")
        );
    }
}

//! [`CompileCache`]: compiled policy code on disk, keyed by the module's SHA-256 and the
//! engine's compatibility hash, so that loading a module seen before (a restart, a swap back)
//! skips Cranelift.
//!
//! Loading compiled code is `unsafe` in wasmtime: the bytes become executable code, and
//! wasmtime only checks that they were made by a compatible engine, not that they are what
//! that engine made. So the cache trusts nothing it did not write itself, as far as it can
//! tell:
//! - an entry's file name is `<sha256 of the module>-<engine compatibility hash>.cwasm`: a
//!   module or engine change never finds an old entry;
//! - an entry starts with a magic line and the SHA-256 of the code after it, checked before
//!   the code is handed to wasmtime: a truncated or corrupt entry (a crash while writing, a
//!   bad disk) is deleted and the module compiled again;
//! - entries are written to a temporary file and renamed into place, so no reader sees half of
//!   one;
//! - the directory is created with mode 0700, and an existing directory that other users can
//!   write to is refused ([`CompileCache::open`]): whoever can write an entry can run code in
//!   the host.
//!
//! At most [`CompileCache::DEFAULT_ENTRIES`] entries are kept (the least recently written are
//! removed).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;

use crate::engine::Engine;

/// The first bytes of every entry.
const MAGIC: &[u8] = b"capt-host compiled policy v1\n";
/// The extension of entry files.
const EXTENSION: &str = "cwasm";

/// A directory of compiled policy components. See the module documentation.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    max_entries: usize,
}

/// Why a compile cache directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CompileCacheError {
    /// The directory could not be created or inspected.
    #[error("could not create or read the compile cache directory {}", .dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The path is not a directory.
    #[error("the compile cache {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// Other users may write to the directory: its entries cannot be trusted.
    #[error(
        "the compile cache directory {} is writable by other users (mode {mode:o}); \
         use a directory only this user can write to",
        .dir.display()
    )]
    Shared {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl CompileCache {
    /// How many entries a cache keeps by default.
    pub const DEFAULT_ENTRIES: usize = 16;

    /// The cache in `dir`, created (mode 0700) if missing. Fails when `dir` is not a
    /// directory or other users can write to it.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CompileCacheError> {
        let dir = dir.into();
        let io_error = |source| CompileCacheError::Io {
            dir: dir.clone(),
            source,
        };
        if !dir.exists() {
            create_private_dir(&dir).map_err(io_error)?;
        }
        let metadata = std::fs::metadata(&dir).map_err(io_error)?;
        if !metadata.is_dir() {
            return Err(CompileCacheError::NotADirectory(dir));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = metadata.permissions().mode() & 0o7777;
            // Sticky shared directories (/tmp) are refused too: others may create entries.
            if mode & 0o022 != 0 {
                return Err(CompileCacheError::Shared { dir, mode });
            }
        }
        Ok(Self {
            dir,
            max_entries: Self::DEFAULT_ENTRIES,
        })
    }

    /// Keeps at most `entries` entries (at least one).
    pub fn with_max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries.max(1);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry file of the module with SHA-256 `module_sha256` compiled by `engine`.
    pub fn entry_path(&self, engine: &Engine, module_sha256: &str) -> PathBuf {
        let compatibility = engine.compatibility_hash();
        self.dir.join(format!(
            "{module_sha256}-{}.{EXTENSION}",
            &compatibility[..32]
        ))
    }

    /// The compiled component of the module `module_sha256` for `engine`, if a sound entry
    /// exists. A corrupt or unusable entry is removed.
    pub(crate) fn get(&self, engine: &Engine, module_sha256: &str) -> Option<Component> {
        let path = self.entry_path(engine, module_sha256);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "compile cache entry unreadable; compiling");
                return None;
            }
        };
        let Some(code) = verified(&bytes) else {
            tracing::warn!(path = %path.display(), "corrupt compile cache entry removed; compiling");
            let _ = std::fs::remove_file(&path);
            return None;
        };
        // SAFETY: `code` is exactly what `put` wrote for this module and this engine's
        // compatibility hash (its SHA-256 matches the one written before it), in a directory
        // only this user can write to (`open`). wasmtime additionally checks that it was
        // compiled by a compatible engine and refuses it otherwise.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine.wasmtime(), code) };
        match component {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error, "unusable compile cache entry removed; compiling");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `component`, the module `module_sha256` compiled by `engine`. Failures are
    /// logged and otherwise ignored: the cache is an optimisation.
    pub(crate) fn put(&self, engine: &Engine, module_sha256: &str, component: &Component) {
        let path = self.entry_path(engine, module_sha256);
        if let Err(error) = self.write(&path, component) {
            tracing::warn!(path = %path.display(), %error, "could not write a compile cache entry");
            return;
        }
        self.prune();
    }

    fn write(&self, path: &Path, component: &Component) -> io::Result<()> {
        let code = component
            .serialize()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut bytes = Vec::with_capacity(MAGIC.len() + 32 + code.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&Sha256::digest(&code));
        bytes.extend_from_slice(&code);
        static UNIQUE: AtomicU64 = AtomicU64::new(0);
        let temporary = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
        let written =
            std::fs::write(&temporary, &bytes).and_then(|()| std::fs::rename(&temporary, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }

    /// Removes the oldest entries beyond `max_entries`.
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == EXTENSION))
            .filter_map(|path| {
                let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
                Some((modified, path))
            })
            .collect();
        if found.len() <= self.max_entries {
            return;
        }
        found.sort();
        let excess = found.len() - self.max_entries;
        for (_, path) in found.into_iter().take(excess) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The code of an entry whose checksum matches, else `None`.
fn verified(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC)?;
    let (checksum, code) = rest.split_at_checked(32)?;
    (Sha256::digest(code).as_slice() == checksum).then_some(code)
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_its_code_behind_a_magic_line_and_a_checksum() {
        let code = b"some code";
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(&Sha256::digest(code));
        entry.extend_from_slice(code);
        assert_eq!(verified(&entry), Some(&code[..]));

        let mut flipped = entry.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verified(&flipped), None);
        assert_eq!(verified(&entry[..entry.len() - 1]), None);
        assert_eq!(verified(&entry[..10]), None);
        assert_eq!(verified(b"garbage"), None);
    }
}

//! A server process that cannot outlive the test: it runs under a small `sh` guard whose
//! standard input is a pipe from this process. Dropping the [`Supervised`] process closes the
//! pipe, and so does the death of the test process however it dies (panic, abort, SIGKILL):
//! the guard then kills the server with SIGKILL. The guard exits when the server does, so an
//! early exit is seen while waiting for readiness.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};

use crate::Error;

/// Kills the server (`$1`, with its arguments) when standard input reaches its end.
const GUARD: &str = r#"exec 3<&0
"$@" </dev/null &
server=$!
{ read -r _ <&3; kill -9 "$server" 2>/dev/null; } &
wait "$server""#;

/// A running server process and its log file.
pub struct Supervised {
    /// `etcd` or `kube-apiserver`.
    pub name: &'static str,
    /// Where its standard output and error go.
    pub log: PathBuf,
    guard: Child,
    lifeline: Option<ChildStdin>,
}

impl Supervised {
    /// Starts `program` with `args`, logging to `log`.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<Self, Error> {
        let out = File::create(&log).map_err(Error::io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("opening {}", log.display())))?;
        let mut guard = Command::new("sh")
            .arg("-c")
            .arg(GUARD)
            .arg("sh")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(Error::io(format!("starting {}", program.display())))?;
        let lifeline = guard.stdin.take();
        Ok(Self {
            name,
            log,
            guard,
            lifeline,
        })
    }

    /// How the process exited, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.guard.try_wait().ok().flatten()
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// The error for an early exit with `status`.
    pub fn exited_error(&self, status: ExitStatus) -> Error {
        Error::Exited {
            name: self.name,
            status: status.to_string(),
            log: self.log.clone(),
            tail: self.log_tail(),
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // Closing the lifeline makes the guard kill the server; the guard then exits.
        drop(self.lifeline.take());
        let _ = self.guard.wait();
    }
}

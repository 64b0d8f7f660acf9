//! What a WorkspaceTemplateApply and its Crossplane Workspace say (spec §1.3).
//!
//! The Workspace is authoritative for `Synced`/`Ready` and outputs; the WorkspaceTemplateApply
//! for `applied`, `lastAppliedTime`, `workspaceName` and the connection secret reference.

use serde_json::{Map, Value};

use crate::conditions::{Conditions, Status};
use crate::contract::{Error, ObjectRef};
use crate::draft::Draft;
use crate::inputs::{Fields, Halt, Inputs};
use crate::kinds;
use crate::message::bounded;
use crate::outcome::{Class, Outcome};
use crate::time::{Millis, parse_timestamp};

/// The `status.workspaceTemplateStatus` field both kinds keep.
pub const WTS: &str = "workspaceTemplateStatus";

/// The WorkspaceTemplateApply a provider object uses: its `spec.workspaceTemplateApplyName`,
/// else its own name followed by `default_suffix`.
pub fn apply_ref(me: Fields<'_>, default_suffix: &str) -> Result<ObjectRef, Error> {
    let name = match me.non_empty("spec.workspaceTemplateApplyName")? {
        Some(name) => name.to_owned(),
        None => format!("{}{default_suffix}", me.owner.name),
    };
    Ok(kinds::workspace_template_apply(
        me.owner.namespace.as_deref(),
        &name,
    ))
}

/// How far the Terraform run has come.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// The WorkspaceTemplateApply does not exist.
    NoApply,
    /// The WorkspaceTemplateApply has not named its Workspace yet.
    NoWorkspaceName,
    /// The named Workspace does not exist.
    NoWorkspace,
    /// The Workspace exists but is not `Synced=True` yet.
    NotSynced,
    /// The Workspace reports an error (`Synced` or `Ready` False with a message).
    Failing {
        /// The error message, copied.
        message: String,
        /// When the failing condition entered its state.
        since: Option<Millis>,
        /// Whether the Workspace is `Synced=True` (only its `Ready` reports the error).
        synced: bool,
    },
    /// Synced, not yet applied.
    Applying,
    /// Applied: WTA `applied: true`, Workspace `Synced` and `Ready` True.
    Applied {
        /// When it was applied: the WTA's `lastAppliedTime`, else the Workspace `Ready` time.
        at: Option<Millis>,
    },
}

impl Progress {
    /// The `workspaceTemplateStatus.state` value.
    pub fn state(&self) -> &'static str {
        match self {
            Progress::NoApply
            | Progress::NoWorkspaceName
            | Progress::NoWorkspace
            | Progress::NotSynced => "Pending",
            Progress::Failing { .. } => "Error",
            Progress::Applying => "Applying",
            Progress::Applied { .. } => "Applied",
        }
    }

    /// Whether this still blocks readiness once the object was created (VPC ID known, control
    /// plane initialized): a workspace error, or a WorkspaceTemplateApply or Workspace that has
    /// gone missing (transient errors, spec §4). A re-apply or resync in progress does not.
    pub fn blocks_after_creation(&self) -> bool {
        matches!(
            self,
            Progress::Failing { .. }
                | Progress::NoApply
                | Progress::NoWorkspaceName
                | Progress::NoWorkspace
        )
    }

    /// True while the Workspace does not yet exist or is not `Synced=True`, whatever keeps it
    /// from syncing, an error included (what `workspaceReadyTimeout` bounds).
    pub fn before_synced(&self) -> bool {
        matches!(
            self,
            Progress::NoApply
                | Progress::NoWorkspaceName
                | Progress::NoWorkspace
                | Progress::NotSynced
                | Progress::Failing { synced: false, .. }
        )
    }
}

/// The observed WorkspaceTemplateApply and Workspace of one provider object.
pub struct Observed<'a> {
    /// The WorkspaceTemplateApply's reference.
    pub apply_ref: ObjectRef,
    /// The WorkspaceTemplateApply, if it exists.
    pub apply: Option<Fields<'a>>,
    /// The Workspace's name, if the WTA names one.
    pub workspace_name: Option<&'a str>,
    /// The Workspace, if it exists.
    pub workspace: Option<Fields<'a>>,
    /// How far it has come.
    pub progress: Progress,
}

impl<'a> Observed<'a> {
    /// Reads the WorkspaceTemplateApply `apply_ref` and, through it, the Workspace (asking the
    /// host for either when needed).
    pub fn read(inputs: &'a Inputs, apply_ref: ObjectRef) -> Result<Self, Halt> {
        let mut observed = Observed {
            apply: None,
            workspace_name: None,
            workspace: None,
            progress: Progress::NoApply,
            apply_ref,
        };
        let Some(apply) = inputs.get(&observed.apply_ref)? else {
            return Ok(observed);
        };
        observed.apply = Some(apply);
        let Some(name) = apply.non_empty("status.workspaceName")? else {
            observed.progress = Progress::NoWorkspaceName;
            return Ok(observed);
        };
        observed.workspace_name = Some(name);
        let workspace_ref = kinds::workspace(name);
        let Some(workspace) = inputs.get(&workspace_ref)? else {
            observed.progress = Progress::NoWorkspace;
            return Ok(observed);
        };
        observed.workspace = Some(workspace);
        observed.progress = progress(apply, workspace)?;
        Ok(observed)
    }

    /// When the workspace was applied, once it is.
    pub fn applied_at(&self) -> Option<Option<Millis>> {
        match self.progress {
            Progress::Applied { at } => Some(at),
            _ => None,
        }
    }

    /// Records `workspaceTemplateStatus.ready` and `.state`.
    pub fn record(&self, draft: &mut Draft) {
        let applied = matches!(self.progress, Progress::Applied { .. });
        draft.set_in(WTS, "ready", applied);
        draft.set_in(WTS, "state", self.progress.state());
    }

    /// What blocks the object short of an applied workspace: the waits, a workspace error
    /// (recorded as `lastFailedRevision`/`lastFailureMessage`), and `applying` (reason and
    /// message) while Terraform runs. `None` once applied.
    pub fn blocked(
        &self,
        draft: &mut Draft,
        applying: (&str, &str),
    ) -> Result<Option<Outcome>, Error> {
        Ok(Some(match &self.progress {
            Progress::NoApply => Outcome::blocked(
                "WaitingForWorkspaceTemplateApply",
                format!(
                    "Waiting for WorkspaceTemplateApply {} to be created",
                    self.apply_ref
                ),
                Class::Wait,
            ),
            Progress::NoWorkspaceName | Progress::NoWorkspace | Progress::NotSynced => {
                Outcome::blocked(
                    "WaitingForWorkspace",
                    match self.workspace_name {
                        Some(name) => {
                            format!("Waiting for Workspace {name} to exist and be synced")
                        }
                        None => format!("Waiting for {} to name its Workspace", self.apply_ref),
                    },
                    Class::Wait,
                )
            }
            Progress::Failing { message, since, .. } => {
                if let Some(revision) = self.revision()? {
                    draft.set_in(WTS, "lastFailedRevision", revision);
                }
                draft.set_in(WTS, "lastFailureMessage", bounded(message).as_ref());
                Outcome::blocked(
                    "WorkspaceError",
                    message.as_str(),
                    Class::Transient { since: *since },
                )
            }
            Progress::Applying => Outcome::blocked(applying.0, applying.1, Class::Wait),
            Progress::Applied { .. } => return Ok(None),
        }))
    }

    /// The Workspace's non-sensitive outputs (`status.atProvider.outputs`).
    pub fn outputs(&self) -> Result<Option<&'a Map<String, Value>>, Error> {
        match self.workspace {
            Some(ws) => ws.object("status.atProvider.outputs"),
            None => Ok(None),
        }
    }

    /// An output as it is, of whatever type (`None` when absent or null).
    pub fn output_value(&self, key: &str) -> Result<Option<&'a Value>, Error> {
        Ok(self
            .outputs()?
            .and_then(|outputs| outputs.get(key))
            .filter(|v| !v.is_null()))
    }

    /// A string output.
    pub fn output(&self, key: &str) -> Result<Option<&'a str>, Error> {
        match self.workspace {
            Some(ws) => ws.non_empty(&format!("status.atProvider.outputs.{key}")),
            None => Ok(None),
        }
    }

    /// The Workspace generation, as the revision recorded in `workspaceTemplateStatus`.
    pub fn revision(&self) -> Result<Option<String>, Error> {
        match self.workspace {
            Some(ws) => Ok(Some(ws.generation()?.to_string())),
            None => Ok(None),
        }
    }

    /// The WTA's `lastAppliedTime`, as written.
    pub fn last_applied_time(&self) -> Result<Option<&'a str>, Error> {
        match self.apply {
            Some(apply) => apply.non_empty("status.lastAppliedTime"),
            None => Ok(None),
        }
    }

    /// The connection secret named by the WTA's `spec.writeConnectionSecretToRef`.
    pub fn connection_secret(&self) -> Result<Option<ObjectRef>, Error> {
        let Some(apply) = self.apply else {
            return Ok(None);
        };
        let Some(name) = apply.non_empty("spec.writeConnectionSecretToRef.name")? else {
            return Ok(None);
        };
        let namespace = apply
            .non_empty("spec.writeConnectionSecretToRef.namespace")?
            .or(self.apply_ref.namespace.as_deref());
        Ok(Some(kinds::secret(namespace, name)))
    }
}

/// Reads a string key of a Secret's `data` (base64), if present and decodable.
pub fn secret_value(secret: Fields<'_>, key: &str) -> Result<Option<String>, Error> {
    let Some(encoded) = secret.str(&format!("data.{key}"))? else {
        return Ok(None);
    };
    let bytes = base64_decode(encoded.trim()).ok_or_else(|| {
        Error::InvalidInput(format!("{}: data.{key} is not valid base64", secret.owner))
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::InvalidInput(format!("{}: data.{key} is not UTF-8 text", secret.owner))
    })?;
    let text = text.trim().to_owned();
    Ok((!text.is_empty()).then_some(text))
}

/// Standard base64 (RFC 4648, with or without padding), as Kubernetes encodes Secret data.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let data = text.trim_end_matches('=').as_bytes();
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn progress(apply: Fields<'_>, workspace: Fields<'_>) -> Result<Progress, Error> {
    let conditions = Conditions::parse(workspace.value.pointer("/status/conditions"), 0, 0)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", workspace.owner)))?;
    for kind in ["Synced", "Ready"] {
        if let Some(c) = conditions
            .get(kind)
            .filter(|c| c.status == Status::False && !c.message.is_empty())
        {
            return Ok(Progress::Failing {
                message: c.message.clone(),
                since: c.since(),
                synced: conditions.is("Synced", Status::True),
            });
        }
    }
    if !conditions.is("Synced", Status::True) {
        return Ok(Progress::NotSynced);
    }
    if apply.bool("status.applied")? != Some(true) || !conditions.is("Ready", Status::True) {
        return Ok(Progress::Applying);
    }
    let at = apply
        .non_empty("status.lastAppliedTime")?
        .and_then(parse_timestamp)
        .or_else(|| conditions.since("Ready", Status::True));
    Ok(Progress::Applied { at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padded_and_unpadded() {
        assert_eq!(base64_decode("dnBjLTEyMw==").unwrap(), b"vpc-123");
        assert_eq!(base64_decode("dnBjLTEyMw").unwrap(), b"vpc-123");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("d!").is_none());
        assert!(base64_decode("a").is_none());
    }
}

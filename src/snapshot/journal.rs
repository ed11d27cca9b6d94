//! The restore journal: what a running `snapshot restore` is doing to which volume, written to
//! the state directory before each step, so that a restore that was killed can be finished or
//! undone exactly by the next one — never guessed from volume names.
//!
//! - `Copying`: the volume is being copied aside; it is intact and the copy may be partial.
//!   Undo: remove the copy.
//! - `Replacing`: the volume is being emptied and filled; the copy (when the volume existed)
//!   is complete. Undo: give the volume the copy's content, or remove it when it did not exist.
//! - `committed`: every volume and the secrets were written; only the copies are left to
//!   remove.
//!
//! Not for: the copies themselves (that is `restore`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The journal's file name in the state directory.
pub const JOURNAL_FILE: &str = "restore-journal.json";

/// One volume's step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Copying,
    Replacing,
}

/// What a restore is doing to one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub volume: String,
    /// The copy of its content from before (`None`: it did not exist).
    pub copy: Option<String>,
    pub phase: Phase,
}

/// A restore in progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The snapshot being restored.
    pub snapshot: String,
    pub entries: Vec<Entry>,
    /// Every volume and the secrets were written.
    #[serde(default)]
    pub committed: bool,
    #[serde(skip)]
    path: PathBuf,
}

impl Journal {
    /// A new journal for restoring `snapshot` in state directory `state_dir` (not yet written).
    pub fn new(state_dir: &Path, snapshot: &str) -> Journal {
        Journal {
            snapshot: snapshot.to_string(),
            path: state_dir.join(JOURNAL_FILE),
            ..Journal::default()
        }
    }

    /// The journal an earlier restore left in `state_dir`, if any.
    pub fn left(state_dir: &Path) -> anyhow::Result<Option<Journal>> {
        let path = state_dir.join(JOURNAL_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut j: Journal = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "{} is not a restore journal devenv wrote; look at it, then remove it",
                        path.display()
                    )
                })?;
                j.path = path;
                Ok(Some(j))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Record `entry` (a new volume, or the next phase of one already there) and write.
    pub fn record(&mut self, entry: Entry) -> anyhow::Result<()> {
        match self.entries.iter_mut().find(|e| e.volume == entry.volume) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
        self.write()
    }

    /// Mark every volume and the secrets written, and write.
    pub fn commit(&mut self) -> anyhow::Result<()> {
        self.committed = true;
        self.write()
    }

    /// Remove the journal: the restore is over.
    pub fn finish(self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", self.path.display())),
        }
    }

    fn write(&self) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(self)?;
        crate::files::write_atomic(&self.path, &text, 0o600)
    }
}

/// The problem `up` and `save` report while a restore's journal is there.
pub fn interrupted(journal: &Journal) -> (String, String) {
    let volumes: Vec<&str> = journal.entries.iter().map(|e| e.volume.as_str()).collect();
    (
        format!(
            "an interrupted `devenv snapshot restore {}` was changing {}",
            journal.snapshot,
            volumes.join(", ")
        ),
        format!(
            "run `devenv snapshot restore {}` again: it first finishes or undoes what the interrupted one did",
            journal.snapshot
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_is_written_before_it_is_taken_and_read_back_after_a_kill() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Journal::left(dir.path()).unwrap().is_none());
        let mut j = Journal::new(dir.path(), "before");
        j.record(Entry {
            volume: "a".into(),
            copy: Some("a-before-restore".into()),
            phase: Phase::Copying,
        })
        .unwrap();
        j.record(Entry {
            volume: "a".into(),
            copy: Some("a-before-restore".into()),
            phase: Phase::Replacing,
        })
        .unwrap();
        let left = Journal::left(dir.path()).unwrap().unwrap();
        assert_eq!(left.entries.len(), 1);
        assert_eq!(left.entries[0].phase, Phase::Replacing);
        assert!(!left.committed);
        let (message, hint) = interrupted(&left);
        assert!(
            message.contains("restore before") && message.contains('a'),
            "{message}"
        );
        assert!(hint.contains("devenv snapshot restore before"));
        left.finish().unwrap();
        assert!(Journal::left(dir.path()).unwrap().is_none());
    }
}

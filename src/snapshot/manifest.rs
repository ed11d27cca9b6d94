//! A snapshot's manifest (`manifest.json`): what was saved, from which environment, devenv
//! and images, and the size and SHA-256 of every file, so that `restore` can refuse a
//! truncated or changed snapshot before it touches anything.
//!
//! Not for: reading or writing volumes (that is `save` and `restore`).

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Failure;

/// The manifest's file name in a snapshot's directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The file with the secrets the saved data opens with (mode 0600).
pub const SECRETS_FILE: &str = "secrets.env";
/// The manifest format this devenv writes and reads.
pub const FORMAT: u32 = 1;

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    /// The environment (`name:` of devenv.yaml) it was saved from.
    pub environment: String,
    /// When it was saved, UTC, RFC 3339.
    pub created: String,
    /// The devenv that saved it (`devenv --version`).
    pub devenv: String,
    /// SHA-256 of the resolved configuration it was saved under.
    pub config_hash: String,
    /// How the data was made consistent.
    pub consistency: String,
    pub volumes: Vec<SavedVolume>,
    /// The secrets file, when the saved services use secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SavedFile>,
}

/// One volume in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedVolume {
    /// The volume's name without the environment's prefix (`timescaledb-data`): what it is
    /// restored into in any environment.
    pub key: String,
    /// Its full name when it was saved.
    pub volume: String,
    pub service: String,
    /// The service's image when it was saved.
    pub image: String,
    /// Where the service mounts it.
    pub target: String,
    /// The size of the uncompressed tar stream.
    pub bytes: u64,
    /// The zstd-compressed tar file.
    #[serde(flatten)]
    pub file: SavedFile,
}

/// A file of the snapshot, with what it must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedFile {
    /// Its name in the snapshot's directory.
    pub file: String,
    /// Its size on disk.
    pub stored: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

impl Manifest {
    /// The sum of the stored files' sizes.
    pub fn stored(&self) -> u64 {
        self.volumes.iter().map(|v| v.file.stored).sum::<u64>()
            + self.secrets.as_ref().map_or(0, |s| s.stored)
    }

    /// The services it holds data of, in order, each once.
    pub fn services(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for v in &self.volumes {
            if !out.contains(&v.service.as_str()) {
                out.push(&v.service);
            }
        }
        out
    }
}

/// Read the manifest of the snapshot in `dir`: a missing, unreadable or foreign one is bad
/// input naming the file.
pub fn read(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::bad_input(
            format!("{}: cannot be read ({e})", path.display()),
            "`devenv snapshot list` shows the snapshots there are".to_string(),
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        Failure::bad_input(
            format!(
                "{}:{}:{}: not a snapshot manifest devenv wrote: {e}",
                path.display(),
                e.line(),
                e.column()
            ),
            "the snapshot is damaged; `devenv snapshot rm` removes it".to_string(),
        )
    })?;
    let mut keys: Vec<&str> = manifest.volumes.iter().map(|v| v.key.as_str()).collect();
    keys.sort_unstable();
    if let Some(twice) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(Failure::bad_input(
            format!("{}: volume `{}` is listed twice", path.display(), twice[0]),
            "the snapshot is damaged; `devenv snapshot rm` removes it".to_string(),
        )
        .into());
    }
    if manifest.format != FORMAT {
        return Err(Failure::bad_input(
            format!(
                "{}: snapshot format {} (this devenv reads format {FORMAT})",
                path.display(),
                manifest.format
            ),
            "restore it with the devenv that saved it".to_string(),
        )
        .into());
    }
    Ok(manifest)
}

/// Check that `file` in `dir` has the size and SHA-256 the manifest says; bad input (exit 2)
/// naming the file and what differs, otherwise.
pub fn verify(dir: &Path, file: &SavedFile) -> anyhow::Result<()> {
    let path = dir.join(&file.file);
    let damaged = |what: String| -> anyhow::Error {
        Failure::bad_input(
            format!("{}: {what}; nothing was changed", path.display()),
            "the snapshot is damaged (cut off, or changed after it was saved); restore another one"
                .to_string(),
        )
        .into()
    };
    // A name that leaves the directory is not one devenv writes.
    if file.file.contains('/') || file.file.starts_with('.') {
        return Err(damaged(format!(
            "the manifest names a file `{}` outside the snapshot",
            file.file
        )));
    }
    let size = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) => return Err(damaged(format!("cannot be read ({e})"))),
    };
    if size != file.stored {
        return Err(damaged(format!(
            "{size} bytes where the manifest says {}",
            file.stored
        )));
    }
    let sum = sha256_file(&path)?;
    if sum != file.sha256 {
        return Err(damaged(format!(
            "SHA-256 {sum} where the manifest says {}",
            file.sha256
        )));
    }
    Ok(())
}

/// The SHA-256 (hex) and size of the file at `path`.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Describe file `file` in `dir` for the manifest.
pub fn describe(dir: &Path, file: &str) -> anyhow::Result<SavedFile> {
    let path = dir.join(file);
    let stored = std::fs::metadata(&path)
        .with_context(|| format!("reading the size of {}", path.display()))?
        .len();
    Ok(SavedFile {
        file: file.to_string(),
        stored,
        sha256: sha256_file(&path)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dir: &Path) -> Manifest {
        std::fs::write(dir.join("db-data.tar.zst"), b"compressed bytes").unwrap();
        Manifest {
            format: FORMAT,
            name: "before".into(),
            environment: "macula".into(),
            created: "2026-12-07T12:00:00Z".into(),
            devenv: "0.1.0".into(),
            config_hash: "abc".into(),
            consistency: "copied".into(),
            volumes: vec![SavedVolume {
                key: "db-data".into(),
                volume: "macula-db-data".into(),
                service: "db".into(),
                image: "postgres:16".into(),
                target: "/var/lib/postgresql/data".into(),
                bytes: 100,
                file: describe(dir, "db-data.tar.zst").unwrap(),
            }],
            secrets: None,
        }
    }

    #[test]
    fn a_file_as_saved_passes_and_a_cut_or_changed_one_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path());
        let file = &m.volumes[0].file;
        verify(dir.path(), file).unwrap();

        std::fs::write(dir.path().join("db-data.tar.zst"), b"compressed").unwrap();
        let cut = verify(dir.path(), file).unwrap_err();
        assert_eq!(crate::error::exit_code(&cut), 2);
        assert!(
            format!("{cut:#}").contains("10 bytes where the manifest says 16"),
            "{cut:#}"
        );

        std::fs::write(dir.path().join("db-data.tar.zst"), b"compressed bytez").unwrap();
        let changed = verify(dir.path(), file).unwrap_err();
        assert_eq!(crate::error::exit_code(&changed), 2);
        assert!(format!("{changed:#}").contains("SHA-256"), "{changed:#}");

        let outside = SavedFile {
            file: "../secrets.env".into(),
            ..file.clone()
        };
        assert_eq!(
            crate::error::exit_code(&verify(dir.path(), &outside).unwrap_err()),
            2
        );
    }

    #[test]
    fn the_manifest_reads_back_and_a_foreign_one_names_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path());
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            serde_json::to_string_pretty(&m).unwrap(),
        )
        .unwrap();
        assert_eq!(read(dir.path()).unwrap(), m);

        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            "{\n  \"format\": 1,\n  \"extra\": 2\n}",
        )
        .unwrap();
        let e = read(dir.path()).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        assert!(format!("{e:#}").contains("manifest.json:3:"), "{e:#}");
    }
}

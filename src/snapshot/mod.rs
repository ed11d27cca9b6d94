//! Snapshots: a copy of every named volume of an environment that `restore` puts back,
//! exactly. The library operations behind `devenv snapshot save|restore|list|rm`.
//!
//! # What, and how it stays consistent
//!
//! A snapshot covers the named volumes of the enabled services: the Postgres-family databases
//! (pdns-db, timescaledb, services of one's own), the registry's blobs, MinIO, Grafana,
//! Prometheus, Loki, Tempo and one's own services' volumes. Every volume, databases included,
//! is copied **with its service stopped** (and started again, healthy, when it ran): a
//! Postgres stopped cleanly has checkpointed, so its data directory is a consistent image that
//! restores *exactly* (roles, settings, extensions, TimescaleDB's catalogs, sequences, every
//! database of the cluster), with any image of the family and no tool in it. A dump
//! (`pg_dump`) would keep the database up, but restores only what it dumps (one database, no
//! roles), needs the same tools in the image, and TimescaleDB needs its own pre- and
//! post-restore steps. The price of the copy: the service is down for the copy's length.
//!
//! # Layout
//!
//! `<state dir>/snapshots/<name>/` (or `--dir`): `manifest.json` ([`manifest`]), one
//! `<volume key>.tar.zst` per volume (the volume's tar stream from the engine, zstd), and
//! `secrets.env` with the secrets the saved data opens with — a database restored after
//! `down --purge` must open with the password it was made with. Directories 0700, files 0600.
//!
//! Not for: arguments, prompts or printing (the command does those).

pub mod journal;
pub mod manifest;
pub mod restore;
pub mod save;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::config::{Config, MountSource, SecretName, Service};
use crate::error::Failure;

pub use manifest::Manifest;

/// The directory under the state directory that holds the snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// Mode of the snapshot directories and files: they hold the data and its secrets.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// The suffix of a volume's file in a snapshot.
const VOLUME_SUFFIX: &str = ".tar.zst";
/// The longest snapshot name.
const NAME_MAX: usize = 64;

/// Where the snapshots of one environment live.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

/// One entry of [`Store::list`].
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    pub path: PathBuf,
    /// Its manifest, when it can be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    /// Why it cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

impl Store {
    /// `dir`, else `snapshots` in the state directory `state_dir`.
    pub fn new(state_dir: &Path, dir: Option<PathBuf>) -> Store {
        Store {
            dir: dir.unwrap_or_else(|| state_dir.join(SNAPSHOTS_DIR)),
        }
    }

    /// The directory of snapshot `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The snapshot `name`, which must exist: bad input naming the ones there are, otherwise.
    pub fn existing(&self, name: &str) -> anyhow::Result<PathBuf> {
        check_name(name)?;
        let path = self.path(name);
        if path.join(manifest::MANIFEST_FILE).is_file() {
            return Ok(path);
        }
        let names: Vec<String> = self.list()?.into_iter().map(|l| l.name).collect();
        let there = match names.as_slice() {
            [] => format!("there are none in {}", self.dir.display()),
            _ => format!("there are: {}", names.join(", ")),
        };
        Err(Failure::bad_input(
            format!("no snapshot `{name}` in {}", self.dir.display()),
            format!("{there}; `devenv snapshot save {name}` makes one"),
        )
        .into())
    }

    /// Every snapshot, oldest first (by creation, then name). Half-written ones (a save that
    /// was stopped) are not listed.
    pub fn list(&self) -> anyhow::Result<Vec<Listed>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.dir.display())),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", self.dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with('.') || !path.is_dir() {
                continue;
            }
            let (manifest, unreadable) = match manifest::read(&path) {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(crate::error::describe(&e).0)),
            };
            out.push(Listed {
                name,
                path,
                manifest,
                unreadable,
            });
        }
        out.sort_by(|a, b| {
            let created = |l: &Listed| l.manifest.as_ref().map(|m| m.created.clone());
            created(a).cmp(&created(b)).then(a.name.cmp(&b.name))
        });
        Ok(out)
    }

    /// Delete snapshot `name`.
    pub fn remove(&self, name: &str) -> anyhow::Result<()> {
        let path = self.existing(name)?;
        std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))
    }

    /// Create the store's directory (0700) when it is missing.
    fn prepare(&self) -> anyhow::Result<()> {
        create_private_dir(&self.dir)
    }
}

/// A snapshot name: letters, digits, `.`, `_` and `-`, starting with a letter or digit, at
/// most [`NAME_MAX`] long. Anything else is bad input.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        return Ok(());
    }
    Err(Failure::bad_input(
        format!("`{}` is not a snapshot name", crate::config::shorten(name)),
        format!("use letters, digits, `.`, `_` and `-`, starting with a letter or digit, at most {NAME_MAX} characters (e.g. `before-migration`)"),
    )
    .into())
}

/// The name `save` gives when none is asked for: the time, UTC (`20261207-130501`).
pub fn default_name(now: time::OffsetDateTime) -> String {
    stamp(now, "", "-", "")
}

/// `now` as RFC 3339, UTC, to the second.
fn rfc3339(now: time::OffsetDateTime) -> String {
    stamp(now, "-", "T", ":") + "Z"
}

/// `now`'s date and time of day, UTC, with these separators.
fn stamp(now: time::OffsetDateTime, date: &str, between: &str, clock: &str) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{date}{:02}{date}{:02}{between}{:02}{clock}{:02}{clock}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// What `save` and `restore` act on: the engine, the environment and its state directory,
/// where the snapshots are, how services are brought back, and where progress goes.
pub struct Target<'a> {
    pub engine: &'a crate::docker::Engine,
    pub config: &'a Config,
    pub store: &'a Store,
    pub state_dir: &'a Path,
    pub options: &'a crate::converge::Options,
    pub reporter: std::sync::Arc<dyn crate::output::progress::Reporter>,
}

/// One named volume of the environment, as a snapshot sees it.
#[derive(Debug, Clone)]
pub struct Covered {
    /// The volume's name without the environment's prefix.
    pub key: String,
    /// Its full Docker name.
    pub volume: String,
    pub target: String,
    /// The service that mounts it.
    pub service: Service,
}

impl Covered {
    /// Its file in a snapshot.
    pub fn file(&self) -> String {
        format!("{}{VOLUME_SUFFIX}", self.key)
    }
}

/// The named volumes of `config`'s enabled services but the mirrors' caches — of those in
/// `only` when it is not empty (an unknown or disabled name there is bad input).
pub fn covered(config: &Config, only: &[String]) -> anyhow::Result<Vec<Covered>> {
    let services = config.services();
    for name in only {
        if !services.iter().any(|s| &s.name == name) {
            let with_data: Vec<&str> = services
                .iter()
                .filter(|s| volumes_of(s).next().is_some())
                .map(|s| s.name.as_str())
                .collect();
            return Err(Failure::bad_input(
                format!(
                    "--only `{}` is not an enabled service",
                    crate::config::shorten(name)
                ),
                format!("services with data: {}", with_data.join(", ")),
            )
            .into());
        }
    }
    let volumes = every_volume(config)
        .into_iter()
        .filter(|c| match only.is_empty() {
            // A mirror's volume is a cache of public images, fetched again on demand: saved
            // only when asked for by name.
            true => crate::config::mirror_of(config, &c.service.name).is_none(),
            false => only.contains(&c.service.name),
        })
        .collect();
    Ok(volumes)
}

/// Every named volume of `config`'s enabled services, the mirrors' caches included: what a
/// restore may restore into.
pub fn every_volume(config: &Config) -> Vec<Covered> {
    let prefix = format!("{}-", config.name);
    let mut out = Vec::new();
    for service in config.services() {
        for (volume, target) in volumes_of(&service) {
            out.push(Covered {
                key: volume.strip_prefix(&prefix).unwrap_or(volume).to_string(),
                volume: volume.to_string(),
                target: target.to_string(),
                service: service.clone(),
            });
        }
    }
    out
}

/// The named volumes a service mounts, with where.
fn volumes_of(service: &Service) -> impl Iterator<Item = (&str, &str)> {
    service.mounts.iter().filter_map(|m| match &m.source {
        MountSource::Volume(v) => Some((v.as_str(), m.target.as_str())),
        _ => None,
    })
}

/// The secrets a service's environment uses (the ones its data may have been made with).
pub fn secrets_of(service: &Service) -> Vec<SecretName> {
    let mut out: Vec<SecretName> = Vec::new();
    for value in service.env.values() {
        for s in value.secrets() {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
    }
    out
}

/// SHA-256 of the resolved configuration, for the manifest.
pub fn config_hash(config: &Config) -> String {
    use sha2::Digest as _;
    let json = serde_json::to_vec(config).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(json))
}

/// Create `dir` (and its parents) with mode 0700; one that exists is left as it is (a
/// `--dir` the user made).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    set_mode(dir, DIR_MODE)
}

/// Set the mode of `path` (Unix).
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {} to {mode:o}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_path_components() {
        for good in ["before-migration", "20261207-130501", "v1.2_rc"] {
            check_name(good).unwrap();
        }
        for bad in ["", ".hidden", "../up", "a/b", "with space", &"x".repeat(65)] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2, "{bad}");
        }
    }

    #[test]
    fn the_default_name_is_the_time_and_sorts_as_it() {
        let t = time::Date::from_calendar_date(2026, time::Month::December, 7)
            .unwrap()
            .with_hms(9, 5, 1)
            .unwrap()
            .assume_utc();
        assert_eq!(default_name(t), "20261207-090501");
        assert_eq!(rfc3339(t), "2026-12-07T09:05:01Z");
    }

    #[test]
    fn every_named_volume_of_the_enabled_services_is_covered_and_only_narrows_it() {
        let config = Config::default();
        let all = covered(&config, &[]).unwrap();
        let keys: Vec<&str> = all.iter().map(|c| c.key.as_str()).collect();
        assert!(keys.contains(&"pdns-db-data"), "{keys:?}");
        assert!(keys.contains(&"registry-data"), "{keys:?}");
        assert!(
            all.iter()
                .all(|c| c.volume == format!("{}-{}", config.name, c.key))
        );
        // The mirror's cache only when named.
        assert!(!keys.contains(&"mirror-data"), "{keys:?}");
        let cache = covered(&config, &["mirror".to_string()]).unwrap();
        assert_eq!(cache[0].key, "mirror-data");
        let one = covered(&config, &["pdns-db".to_string()]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].file(), "pdns-db-data.tar.zst");
        let e = covered(&config, &["nope".to_string()]).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        assert!(crate::error::describe(&e).1.unwrap().contains("pdns-db"));
    }
}

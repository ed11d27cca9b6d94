//! `snapshot save`: stop the services whose volumes are copied, stream each volume out of the
//! engine through zstd into the snapshot's directory, start the services again (healthy), and
//! only then give the snapshot its name — a save that fails or is stopped leaves no snapshot
//! (a hidden partial directory, removed by the next save).
//!
//! Not for: choosing the name or printing (the command does those).

use std::path::Path;

use anyhow::Context as _;
use async_compression::tokio::write::ZstdEncoder;
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;

use super::manifest::{self, Manifest, SavedVolume};
use super::{Covered, covered, create_private_dir, secrets_of, set_mode};
use crate::config::{Config, SecretName};

use crate::docker::Engine;
use crate::error::Failure;
use crate::output::progress::Reporter;
use crate::state::Secrets;

/// What the manifest says about consistency.
pub const CONSISTENCY: &str = "each volume copied with its service stopped";

/// What [`save`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    pub path: std::path::PathBuf,
    pub manifest: Manifest,
    /// Volumes of the environment not in the snapshot, with why.
    pub not_saved: Vec<(String, String)>,
    /// The services stopped for the copy and started again.
    pub restarted: Vec<String>,
}

/// Save the volumes of `config`'s enabled services (of `only`, when not empty) as snapshot
/// `name` in `store`. Services that run are stopped for the copy and brought back healthy
/// through [`converge::up`] with `options` (the caller holds the environment's lock).
pub async fn save(target: super::Target<'_>, name: &str, only: &[String]) -> anyhow::Result<Saved> {
    let super::Target {
        engine,
        config,
        store,
        state_dir,
        options,
        reporter,
    } = target;
    super::check_name(name)?;
    let target = store.path(name);
    if target.exists() {
        return Err(Failure::bad_input(
            format!("snapshot `{name}` exists in {}", store.dir.display()),
            format!("choose another name, or `devenv snapshot rm {name}` first"),
        )
        .into());
    }
    let wanted = covered(config, only)?;
    let observed = engine.observe().await?;
    if let Some(journal) = super::journal::Journal::left(state_dir)? {
        let (message, hint) = super::journal::interrupted(&journal);
        return Err(Failure::environment(message, hint).into());
    }
    let exists = |v: &str| observed.volumes.iter().any(|o| o.name == v);
    let mut not_saved = Vec::new();
    let mut present = Vec::new();
    for c in wanted {
        if exists(&c.volume) {
            present.push(c);
        } else {
            not_saved.push((
                c.volume.clone(),
                "no data yet (`devenv up` makes it)".to_string(),
            ));
        }
    }
    if present.is_empty() {
        return Err(Failure::bad_input(
            format!("nothing to save: no volume of `{}` exists yet", config.name),
            "`devenv up` makes the services' volumes".to_string(),
        )
        .into());
    }
    // Volumes of the environment that no enabled service mounts (a service switched off).
    if only.is_empty() {
        for v in observed
            .volumes
            .iter()
            .filter(|v| v.project.as_deref() == Some(&config.name))
            .filter(|v| !v.name.ends_with(super::restore::PREVIOUS_SUFFIX))
            .filter(|v| !present.iter().any(|c| c.volume == v.name))
        {
            not_saved.push((v.name.clone(), "no enabled service mounts it".to_string()));
        }
    }
    let secrets = Secrets::load_for(state_dir, &config.own_secrets())?;
    // A value made up in memory is not the one the data opens with: saving it would make the
    // snapshot's data unreachable after a restore.
    for c in &present {
        if let Some(lost) = secrets_of(&c.service)
            .into_iter()
            .find(|n| !secrets.stored(n))
        {
            return Err(Failure::environment(
                format!(
                    "{} of `{}` is not in {}{}: the snapshot could not open its data",
                    lost.var(),
                    c.service.name,
                    secrets.path().display(),
                    secrets
                        .trouble()
                        .map(|t| format!(" (the file {t})"))
                        .unwrap_or_default()
                ),
                "put the secrets file back (a backup, or the snapshot it came with) before saving"
                    .to_string(),
            )
            .into());
        }
    }
    let stopped = super::restore::stop_users(
        engine,
        config,
        &present.iter().map(|c| c.volume.clone()).collect::<Vec<_>>(),
        false,
    )
    .await?;

    let partial = store.dir.join(format!(".{name}.partial"));
    let copied = async {
        store.prepare()?;
        if partial.exists() {
            std::fs::remove_dir_all(&partial)
                .with_context(|| format!("removing {}", partial.display()))?;
        }
        create_private_dir(&partial)?;
        let mut volumes = Vec::new();
        for c in &present {
            volumes.push(copy_out(engine, config, c, &partial, reporter.as_ref()).await?);
        }
        let secrets = write_secrets(&partial, &present, &secrets)?;
        let manifest = Manifest {
            format: manifest::FORMAT,
            name: name.to_string(),
            environment: config.name.clone(),
            created: super::rfc3339(time::OffsetDateTime::now_utc()),
            devenv: env!("CARGO_PKG_VERSION").to_string(),
            config_hash: super::config_hash(config),
            consistency: CONSISTENCY.to_string(),
            volumes,
            secrets,
        };
        let path = partial.join(manifest::MANIFEST_FILE);
        let text = serde_json::to_string_pretty(&manifest)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        set_mode(&path, super::FILE_MODE)?;
        std::fs::rename(&partial, &target)
            .with_context(|| format!("renaming {} to {}", partial.display(), target.display()))?;
        anyhow::Ok(manifest)
    }
    .await;
    if copied.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    // Back up whatever happened to the copy.
    let restarted =
        super::restore::bring_back(config, &stopped, state_dir, options, reporter).await;
    let manifest = copied?;
    restarted?;
    Ok(Saved {
        path: target,
        manifest,
        not_saved,
        restarted: stopped,
    })
}

/// Stream volume `c` out of the engine into `<dir>/<key>.tar.zst`.
async fn copy_out(
    engine: &Engine,
    config: &Config,
    c: &Covered,
    dir: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<SavedVolume> {
    let image = super::restore::carrier_image(engine, config, c, None).await?;
    let carrier = engine.carrier(&config.name, &c.volume, &image).await?;
    let path = dir.join(c.file());
    let task = reporter.transfer("saving", &format!("volume {}", c.volume));
    let written = async {
        let file = tokio::fs::File::create(&path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        // zstd's own worker threads, one per core: compression, not the engine's stream, is
        // what limits a save.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let mut zstd = ZstdEncoder::with_quality_and_params(
            tokio::io::BufWriter::with_capacity(1 << 20, file),
            async_compression::Level::Default,
            &[async_compression::zstd::CParameter::nb_workers(workers)],
        );
        let mut stream = std::pin::pin!(engine.read_volume(&carrier));
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            zstd.write_all(&chunk)
                .await
                .with_context(|| format!("writing {}", path.display()))?;
            task.bytes(bytes, 0);
        }
        zstd.shutdown()
            .await
            .with_context(|| format!("writing {}", path.display()))?;
        zstd.into_inner()
            .into_inner()
            .sync_all()
            .await
            .with_context(|| format!("writing {}", path.display()))?;
        anyhow::Ok(bytes)
    }
    .await;
    let removed = engine.remove_carrier(&carrier).await;
    let bytes = match written.and_then(|b| removed.map(|()| b)) {
        Ok(b) => b,
        Err(e) => {
            task.finish("failed", "");
            return Err(e);
        }
    };
    set_mode(&path, super::FILE_MODE)?;
    let file = manifest::describe(dir, &c.file())?;
    task.finish(
        "saved",
        &format!(" ({}, {} compressed)", size(bytes), size(file.stored)),
    );
    Ok(SavedVolume {
        key: c.key.clone(),
        volume: c.volume.clone(),
        service: c.service.name.clone(),
        image: c.service.image.clone(),
        target: c.target.clone(),
        bytes,
        file,
    })
}

/// Write the secrets the saved services use into `dir` (0600), when they use any.
fn write_secrets(
    dir: &Path,
    saved: &[Covered],
    secrets: &Secrets,
) -> anyhow::Result<Option<manifest::SavedFile>> {
    let mut names: Vec<SecretName> = Vec::new();
    for c in saved {
        for s in secrets_of(&c.service) {
            if !names.contains(&s) {
                names.push(s);
            }
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    names.sort();
    let text = crate::state::secrets_text(names.iter().map(|n| (n, secrets.get(n))));
    let path = dir.join(manifest::SECRETS_FILE);
    crate::files::write_atomic(&path, text.as_bytes(), super::FILE_MODE)?;
    Ok(Some(manifest::describe(dir, manifest::SECRETS_FILE)?))
}

/// A byte count for people: `512 B`, `3.2 MB`, `1.1 GB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(3_200_000), "3.2 MB");
        assert_eq!(size(1_100_000_000), "1.1 GB");
    }
}

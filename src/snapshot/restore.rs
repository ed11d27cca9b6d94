//! `snapshot restore`: put a snapshot's volumes back, all or nothing.
//!
//! 1. Check before touching anything: the manifest, the size and SHA-256 of every file
//!    restored, and that the secrets the data opens with can be set without making another
//!    volume's data unreachable. Anything wrong is bad input (exit 2) and nothing changes.
//! 2. Stop and remove the services' containers (devenv's; a container devenv did not make
//!    that mounts a volume stops the restore, untouched).
//! 3. For each volume: copy its content aside into `<volume>-before-restore`, empty it
//!    (remove and create again, same labels), and extract the snapshot's archive into it,
//!    each step written to the restore journal ([`super::journal`]) before it is taken.
//!    When any step of any volume fails, every volume already replaced gets its content back
//!    from its copy: a failed restore leaves the data as it was. A restore that was killed
//!    leaves its journal; `up` and `save` refuse to go on, and the next restore finishes or
//!    undoes it first, as the journal says.
//! 4. Set the secrets the data was saved with, remove the copies, and bring the services
//!    that ran back up, healthy (with those whose environment the secrets changed).
//!
//! Not for: printing (the command does that).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use async_compression::tokio::bufread::ZstdDecoder;
use futures_util::StreamExt as _;
use serde::Serialize;

use super::journal::{Entry, Journal, Phase};
use super::manifest::{self, SavedVolume};
use super::{Covered, every_volume, secrets_of};
use crate::config::{Config, SecretName, labels};
use crate::converge::{self, Options};
use crate::docker::Engine;
use crate::docker::observed::ObservedVolume;
use crate::error::Failure;
use crate::output::progress::Reporter;
use crate::state::{Secrets, Trouble};

pub use crate::docker::volumes::BEFORE_RESTORE_SUFFIX as PREVIOUS_SUFFIX;

/// What [`restore`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Restored {
    /// The volumes replaced.
    pub volumes: Vec<String>,
    /// Volumes an interrupted restore had left half-replaced, given their content back first.
    pub put_back: Vec<String>,
    /// Volumes of the snapshot not restored, with why.
    pub skipped: Vec<(String, String)>,
    /// Secrets set to the values the data was saved with (their variable names).
    pub secrets_set: Vec<String>,
    /// The services brought back up.
    pub restarted: Vec<String>,
    /// Things the user should know (an image that changed since the save).
    pub warnings: Vec<String>,
}

/// One volume to restore: the snapshot's entry and the volume it goes into now.
struct Chosen<'a> {
    saved: &'a SavedVolume,
    into: Covered,
}

/// Restore snapshot `name` from `store` into `config`'s volumes (only the services in `only`,
/// when not empty). Services that ran are brought back through [`converge::up`] with
/// `options` (the caller holds the environment's lock).
pub async fn restore(
    target: super::Target<'_>,
    name: &str,
    only: &[String],
) -> anyhow::Result<Restored> {
    let super::Target {
        engine,
        config,
        store,
        state_dir,
        options,
        reporter,
    } = target;
    let dir = store.existing(name)?;
    let manifest = manifest::read(&dir)?;
    let mut out = Restored::default();
    let held = manifest.services().join(", ");
    for o in only {
        if !manifest.services().contains(&o.as_str()) {
            return Err(Failure::bad_input(
                format!(
                    "snapshot `{name}` holds no data of `{}`",
                    crate::config::shorten(o)
                ),
                format!("it holds data of: {held}"),
            )
            .into());
        }
    }
    let current = every_volume(config);
    let mut chosen = Vec::new();
    for saved in &manifest.volumes {
        if !only.is_empty() && !only.contains(&saved.service) {
            continue;
        }
        match current.iter().find(|c| c.key == saved.key) {
            Some(into) => chosen.push(Chosen {
                saved,
                into: into.clone(),
            }),
            None if !only.is_empty() => {
                return Err(Failure::bad_input(
                    format!(
                        "`{}` is not enabled in this configuration: there is no volume to restore {} into",
                        saved.service, saved.key
                    ),
                    format!("enable `services.{}` in devenv.yaml first", saved.service),
                )
                .into());
            }
            None => out.skipped.push((
                saved.volume.clone(),
                format!("`{}` is not enabled in this configuration", saved.service),
            )),
        }
    }
    if chosen.is_empty() {
        return Err(Failure::bad_input(
            format!("nothing of snapshot `{name}` can be restored: none of its services ({held}) is enabled"),
            "enable them in devenv.yaml".to_string(),
        )
        .into());
    }

    // 1. Everything checked before anything changes.
    for c in &chosen {
        manifest::verify(&dir, &c.saved.file)?;
    }
    let saved_secrets = match &manifest.secrets {
        Some(file) => {
            manifest::verify(&dir, file)?;
            let path = dir.join(&file.file);
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            crate::state::parse_secrets(&bytes)
                .map_err(|why| Failure::bad_input(format!("{}: {why}", path.display()), None))?
        }
        None => BTreeMap::new(),
    };
    let mut secrets = Secrets::load_for(state_dir, &config.own_secrets())?;
    if let Some(Trouble::Unusable(why)) = secrets.trouble() {
        return Err(Failure::bad_input(
            format!("secrets file {}: {why}", secrets.path().display()),
            "fix or restore the file first; devenv does not overwrite it".to_string(),
        )
        .into());
    }
    let observed = engine.observe().await?;
    let changes = secret_changes(
        &chosen,
        &current,
        &saved_secrets,
        &secrets,
        &observed.volumes,
    )?;
    for c in &chosen {
        if c.saved.image != c.into.service.image {
            out.warnings.push(format!(
                "volume {} was saved from image {}; `{}` now runs {}",
                c.into.volume, c.saved.image, c.into.service.name, c.into.service.image
            ));
        }
    }
    // What an interrupted restore left (its journal says), finished or undone below.
    let left = Journal::left(state_dir)?;
    let in_left = |v: &str| {
        left.as_ref()
            .is_some_and(|j| j.entries.iter().any(|e| e.volume == v))
    };
    // Only volumes devenv made for this environment are replaced, and a copy's name must be
    // free (or the interrupted restore's own).
    for c in &chosen {
        if let Some(found) = engine.volume_labels(&c.into.volume).await?
            && found.get(labels::PROJECT) != Some(&config.name)
        {
            return Err(Failure::environment(
                format!(
                    "volume {} exists, but devenv did not make it for `{}`",
                    c.into.volume, config.name
                ),
                "devenv does not touch it: rename or remove it, or give this environment another `name:`".to_string(),
            )
            .into());
        }
        let copy = copy_name(&c.into.volume);
        if !in_left(&c.into.volume) && engine.volume_labels(&copy).await?.is_some() {
            return Err(Failure::environment(
                format!("volume {copy} exists, and no restore of devenv's made it"),
                "devenv needs the name to keep the data aside while it restores: rename or remove that volume".to_string(),
            )
            .into());
        }
    }

    // 2. The services stop; their containers go (devenv makes them again from the model).
    let mut volumes: Vec<String> = chosen.iter().map(|c| c.into.volume.clone()).collect();
    if let Some(j) = &left {
        volumes.extend(j.entries.iter().map(|e| e.volume.clone()));
    }
    let stopped = stop_users(engine, config, &volumes, true).await?;
    if let Some(j) = left {
        out.put_back = recover(engine, config, options, j, reporter.as_ref()).await?;
    }

    // 3. Replace each volume's content, all or nothing, each step in the journal first.
    let mut journal = Journal::new(state_dir, name);
    let mut swaps: Vec<Swap> = Vec::new();
    let replaced = async {
        for c in &chosen {
            let image = carrier_image(engine, config, &c.into, Some(&c.saved.image)).await?;
            let found = engine.volume_labels(&c.into.volume).await?;
            let copy = found.is_some().then(|| copy_name(&c.into.volume));
            let found = found.unwrap_or_else(|| default_labels(config, options));
            let mut swap = Swap {
                volume: c.into.volume.clone(),
                previous: copy.clone(),
                labels: found.clone(),
                image: image.clone(),
                phase: Phase::Copying,
            };
            if let Some(copy) = &copy {
                journal.record(swap.entry())?;
                swaps.push(swap.clone());
                engine
                    .create_volume(
                        &config.name,
                        copy,
                        &[(labels::RESTORE_OF.to_string(), c.into.volume.clone())],
                    )
                    .await?;
                engine
                    .copy_volume(&config.name, &c.into.volume, copy, &image)
                    .await?;
                swaps.pop();
            }
            // From here on the volume changes: a failure gives it back its content.
            swap.phase = Phase::Replacing;
            journal.record(swap.entry())?;
            swaps.push(swap);
            engine.recreate_volume(&c.into.volume, &found).await?;
            fill(engine, config, &dir, c, &image, reporter.as_ref()).await?;
        }
        for (name, value) in &changes {
            secrets.set(name.clone(), value.clone());
        }
        if !changes.is_empty() {
            secrets.store()?;
        }
        journal.commit()
    }
    .await;
    if let Err(e) = replaced {
        if let Err(rolled) = roll_back(engine, config, &swaps).await {
            return Err(e.context(format!(
                "restoring snapshot `{name}` failed, and so did putting the data back ({rolled:#}); the journal {} says what is left to undo: run `devenv snapshot restore {name}` again",
                state_dir.join(super::journal::JOURNAL_FILE).display()
            )));
        }
        journal.finish()?;
        let back = bring_back(config, &stopped, state_dir, options, Arc::clone(&reporter)).await;
        return Err(e.context(format!(
            "restoring snapshot `{name}` failed; every volume holds the data it held before{}",
            match back {
                Ok(()) => String::new(),
                Err(b) => format!(" (bringing the services back failed too: {b:#})"),
            }
        )));
    }

    // 4. Done: the copies go (a copy that will not go is only a warning now), the services
    // come back.
    for s in &swaps {
        if let Some(copy) = &s.previous
            && let Err(e) = engine.remove_volume(copy).await
        {
            out.warnings.push(format!("{e:#}; remove it by hand"));
        }
    }
    if let Err(e) = journal.finish() {
        out.warnings.push(format!("{e:#}; remove it by hand"));
    }
    out.volumes = chosen.iter().map(|c| c.into.volume.clone()).collect();
    out.secrets_set = changes.iter().map(|(n, _)| n.var().into_owned()).collect();
    let mut restart = stopped.clone();
    if !stopped.is_empty() || observed_running(engine, config).await? {
        for s in config.services() {
            let uses = secrets_of(&s)
                .iter()
                .any(|x| changes.iter().any(|(n, _)| n == x));
            if uses && !restart.contains(&s.name) {
                restart.push(s.name.clone());
            }
        }
    }
    bring_back(config, &restart, state_dir, options, reporter).await?;
    out.restarted = restart;
    Ok(out)
}

/// The name of the volume that keeps `volume`'s content while a restore replaces it.
fn copy_name(volume: &str) -> String {
    format!("{volume}{PREVIOUS_SUFFIX}")
}

/// A volume being replaced, and how to give it its content back.
#[derive(Debug, Clone)]
struct Swap {
    volume: String,
    /// The copy of its content from before (`None`: it did not exist).
    previous: Option<String>,
    labels: HashMap<String, String>,
    image: String,
    phase: Phase,
}

impl Swap {
    fn entry(&self) -> Entry {
        Entry {
            volume: self.volume.clone(),
            copy: self.previous.clone(),
            phase: self.phase,
        }
    }
}

/// Undo `swaps`, newest first: a copy being made is removed (the volume is intact); a volume
/// being replaced gets the copy's content back, or is removed when it did not exist.
async fn roll_back(engine: &Engine, config: &Config, swaps: &[Swap]) -> anyhow::Result<()> {
    for s in swaps.iter().rev() {
        match (s.phase, &s.previous) {
            (Phase::Copying, Some(copy)) => engine.remove_volume(copy).await?,
            (Phase::Copying, None) => {}
            (Phase::Replacing, Some(copy)) => {
                engine.recreate_volume(&s.volume, &s.labels).await?;
                engine
                    .copy_volume(&config.name, copy, &s.volume, &s.image)
                    .await?;
                engine.remove_volume(copy).await?;
            }
            (Phase::Replacing, None) => engine.remove_volume(&s.volume).await?,
        }
    }
    Ok(())
}

/// Finish or undo what the restore of `journal` did before it was killed: committed, only its
/// copies go; otherwise each volume is rolled back as [`roll_back`] does. The volumes given
/// their content back.
async fn recover(
    engine: &Engine,
    config: &Config,
    options: &Options,
    journal: Journal,
    reporter: &dyn Reporter,
) -> anyhow::Result<Vec<String>> {
    let mut put_back = Vec::new();
    if journal.committed {
        for e in &journal.entries {
            if let Some(copy) = &e.copy {
                engine.remove_volume(copy).await?;
            }
        }
        reporter.step(
            "finished",
            &format!("the interrupted restore of `{}`", journal.snapshot),
        );
        journal.finish()?;
        return Ok(put_back);
    }
    let image = any_image(engine, config).await?;
    let mut swaps = Vec::new();
    for e in &journal.entries {
        let labels = engine
            .volume_labels(&e.volume)
            .await?
            .unwrap_or_else(|| default_labels(config, options));
        swaps.push(Swap {
            volume: e.volume.clone(),
            previous: e.copy.clone(),
            labels,
            image: image.clone(),
            phase: e.phase,
        });
        if e.phase == Phase::Replacing {
            put_back.push(e.volume.clone());
        }
    }
    roll_back(engine, config, &swaps).await?;
    for v in &put_back {
        reporter.step(
            "put back",
            &format!("volume {v} as it was before the interrupted restore"),
        );
    }
    journal.finish()?;
    Ok(put_back)
}

/// The secrets to set to the snapshot's values for the restored services, or bad input when
/// one would change under data not restored: a volume of another service made with the
/// current value (or with one the state directory lost, which writing the file would hide).
fn secret_changes(
    chosen: &[Chosen<'_>],
    current: &[Covered],
    saved: &BTreeMap<SecretName, String>,
    secrets: &Secrets,
    volumes: &[ObservedVolume],
) -> anyhow::Result<Vec<(SecretName, String)>> {
    let restored: Vec<&str> = chosen
        .iter()
        .map(|c| c.into.service.name.as_str())
        .collect();
    let mut changes: Vec<(SecretName, String)> = Vec::new();
    for c in chosen {
        for name in secrets_of(&c.into.service) {
            let Some(value) = saved.get(&name) else {
                continue;
            };
            if secrets.get(&name) == value || changes.iter().any(|(n, _)| n == &name) {
                continue;
            }
            changes.push((name, value.clone()));
        }
    }
    if changes.is_empty() {
        return Ok(changes);
    }
    let stored = |name: &SecretName| secrets.stored(name);
    for other in current {
        if restored.contains(&other.service.name.as_str())
            || !volumes.iter().any(|v| v.name == other.volume)
        {
            continue;
        }
        for name in secrets_of(&other.service) {
            let changed = changes.iter().any(|(n, _)| n == &name);
            if changed && stored(&name) {
                return Err(Failure::bad_input(
                    format!(
                        "restoring sets {} to the value the snapshot's data was saved with, but volume {} of `{}` was made with the current value and is not restored",
                        name.var(),
                        other.volume,
                        other.service.name
                    ),
                    format!("restore `{}` from the snapshot too (leave out --only, or add it)", other.service.name),
                )
                .into());
            }
            if !changed && !stored(&name) {
                return Err(Failure::bad_input(
                    format!(
                        "{} is missing from {}, and volume {} of `{}` was made with it; writing the secrets file now would hide that",
                        name.var(),
                        secrets.path().display(),
                        other.volume,
                        other.service.name
                    ),
                    format!(
                        "restore `{}` from the snapshot too, or put the secrets file back first",
                        other.service.name
                    ),
                )
                .into());
            }
        }
    }
    Ok(changes)
}

/// Stream the snapshot's archive of `c` into its (empty) volume.
async fn fill(
    engine: &Engine,
    config: &Config,
    dir: &Path,
    c: &Chosen<'_>,
    image: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let path = dir.join(&c.saved.file.file);
    let file = tokio::fs::File::open(&path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let task = reporter.transfer("restoring", &format!("volume {}", c.into.volume));
    let total = c.saved.bytes;
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = Arc::clone(&done);
    let progress: Arc<dyn crate::output::progress::Task> = Arc::from(task);
    let shown = Arc::clone(&progress);
    let tar = tokio_util::io::ReaderStream::with_capacity(
        ZstdDecoder::new(tokio::io::BufReader::with_capacity(1 << 20, file)),
        1 << 20,
    )
    .inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            let now = counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed)
                + chunk.len() as u64;
            shown.bytes(now, total);
        }
    });
    let carrier = engine.carrier(&config.name, &c.into.volume, image).await?;
    let written = engine.write_volume(&carrier, tar).await;
    let removed = engine.remove_carrier(&carrier).await;
    match written.and(removed) {
        Ok(()) => {
            progress.finish("restored", &format!(" ({})", super::save::size(total)));
            Ok(())
        }
        Err(e) => {
            progress.finish("failed", "");
            Err(e)
        }
    }
}

/// Stop the containers that mount `volumes` (devenv's, of this environment), and remove them
/// when `remove`; the services whose containers were running, for [`bring_back`]. A container
/// devenv did not make that mounts one stops everything (running: it would change the data
/// under the copy; any, when the volume is to be replaced). Carriers a killed run left go.
pub async fn stop_users(
    engine: &Engine,
    config: &Config,
    volumes: &[String],
    remove: bool,
) -> anyhow::Result<Vec<String>> {
    let mut users = Vec::new();
    for v in volumes {
        for u in engine.volume_users(v).await? {
            let ours = u.project.as_deref() == Some(&config.name);
            if !ours && (u.running || remove) {
                return Err(Failure::environment(
                    format!(
                        "volume {v} is mounted by container {}, which devenv did not make for `{}`",
                        u.name, config.name
                    ),
                    format!(
                        "stop (and, to restore, remove) {} first; devenv does not touch it",
                        u.name
                    ),
                )
                .into());
            }
            if ours
                && !users
                    .iter()
                    .any(|x: &crate::docker::volumes::VolumeUser| x.id == u.id)
            {
                users.push(u);
            }
        }
    }
    let mut stopped = Vec::new();
    for u in &users {
        if u.carrier {
            engine.remove_leftover_carrier(&u.id, &u.name).await?;
            continue;
        }
        if u.running
            && let Some(service) = &u.service
            && !stopped.contains(service)
        {
            stopped.push(service.clone());
        }
        if remove {
            engine.stop_and_remove(&u.id, &u.name).await?;
        } else if u.running {
            engine.stop_container(&u.id, &u.name).await?;
        }
    }
    Ok(stopped)
}

/// Whether any container of the environment runs (it is up).
async fn observed_running(engine: &Engine, config: &Config) -> anyhow::Result<bool> {
    Ok(engine.observe().await?.containers.iter().any(|c| {
        c.project.as_deref() == Some(&config.name)
            && c.state == crate::docker::observed::RunState::Running
    }))
}

/// Bring `services` up again, healthy, through [`converge::up`] (nothing when empty).
pub async fn bring_back(
    config: &Config,
    services: &[String],
    state_dir: &Path,
    options: &Options,
    reporter: Arc<dyn Reporter>,
) -> anyhow::Result<()> {
    if services.is_empty() {
        return Ok(());
    }
    let options = Options {
        only: services.to_vec(),
        ..options.clone()
    };
    let mut outcome = converge::up(config, &options, state_dir, reporter).await?;
    match outcome.take_failure() {
        Some(e) => Err(e.context(format!("bringing {} back up", services.join(", ")))),
        None => Ok(()),
    }
}

/// An image on this machine to make a carrier of `c`'s volume from: the service's, the one it
/// was saved from, else any of the environment's.
pub async fn carrier_image(
    engine: &Engine,
    config: &Config,
    c: &Covered,
    saved: Option<&str>,
) -> anyhow::Result<String> {
    for image in [Some(c.service.image.as_str()), saved]
        .into_iter()
        .flatten()
    {
        if engine.image_present(image).await {
            return Ok(image.to_string());
        }
    }
    any_image(engine, config).await.map_err(|_| {
        Failure::environment(
            format!(
                "no image of `{}` is on this machine to read and write volume {} with",
                config.name, c.volume
            ),
            format!(
                "`devenv up --only {}` pulls the service's image",
                c.service.name
            ),
        )
        .into()
    })
}

/// Any image of the environment's services that is on this machine.
async fn any_image(engine: &Engine, config: &Config) -> anyhow::Result<String> {
    for s in config.services() {
        if engine.image_present(&s.image).await {
            return Ok(s.image);
        }
    }
    Err(Failure::environment(
        format!("no image of `{}` is on this machine", config.name),
        "`devenv up` pulls them".to_string(),
    )
    .into())
}

/// The labels of a volume devenv makes for the environment (a restore into one that does not
/// exist, as after `down --purge`).
fn default_labels(config: &Config, options: &Options) -> HashMap<String, String> {
    let mut labels = HashMap::from([(labels::PROJECT.to_string(), config.name.clone())]);
    if let Some(owner) = &options.owner {
        labels.extend(owner.labels());
    }
    labels
}

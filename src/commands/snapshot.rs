//! `devenv snapshot save|restore|list|rm`: a script over [`crate::snapshot`] — settings from
//! the arguments, the environment's lock (save and restore change what runs), the operation,
//! the report.

use std::path::PathBuf;

use crate::cli::{SnapshotChangeArgs, SnapshotCommand, SnapshotDirArgs};
use crate::converge::Options;
use crate::docker::Engine;
use crate::output::{Format, progress, table};
use crate::snapshot::{self, Store, save::size};
use crate::state;

use super::Settings;

pub fn run(settings: &Settings, command: SnapshotCommand) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Save(args) => {
            let name = match args.name {
                Some(n) => n,
                None => snapshot::default_name(time::OffsetDateTime::now_utc()),
            };
            snapshot::check_name(&name)?;
            let prep = Prepared::new(settings, &args.change)?;
            let saved = settings.runtime.block_on(async {
                let engine = Engine::connect().await?;
                snapshot::save::save(prep.target(&engine, settings), &name, &args.change.only).await
            })?;
            {
                let p = &settings.printer;
                if p.format != Format::Human {
                    return p.json(&saved);
                }
                for (volume, why) in &saved.not_saved {
                    p.status(format!("not in the snapshot: volume {volume}: {why}"));
                }
                p.step(
                    "saved",
                    format!(
                        "snapshot `{name}`: {} volumes, {} in {}",
                        saved.manifest.volumes.len(),
                        size(saved.manifest.stored()),
                        saved.path.display()
                    ),
                );
                Ok(())
            }
        }
        SnapshotCommand::Restore(args) => {
            snapshot::check_name(&args.name)?;
            let prep = Prepared::new(settings, &args.change)?;
            let restored = settings.runtime.block_on(async {
                let engine = Engine::connect().await?;
                snapshot::restore::restore(
                    prep.target(&engine, settings),
                    &args.name,
                    &args.change.only,
                )
                .await
            })?;
            {
                let p = &settings.printer;
                if p.format != Format::Human {
                    return p.json(&restored);
                }
                for w in &restored.warnings {
                    p.warn(w);
                }
                for (volume, why) in &restored.skipped {
                    p.status(format!("not restored: volume {volume}: {why}"));
                }
                if !restored.secrets_set.is_empty() {
                    p.step(
                        "set",
                        format!(
                            "{} to the values the data was saved with",
                            restored.secrets_set.join(", ")
                        ),
                    );
                }
                let back = if restored.restarted.is_empty() {
                    "; the services were not running and stay down (`devenv up` starts them)"
                        .to_string()
                } else {
                    format!("; up again: {}", restored.restarted.join(", "))
                };
                p.step(
                    "restored",
                    format!(
                        "snapshot `{}` into {}{back}",
                        args.name,
                        restored.volumes.join(", ")
                    ),
                );
                Ok(())
            }
        }
        SnapshotCommand::List(dir) => list(settings, &dir),
        SnapshotCommand::Rm(args) => {
            let store = store(settings, &args.dir)?;
            store.remove(&args.name)?;
            settings
                .printer
                .step("removed", format!("snapshot `{}`", args.name));
            Ok(())
        }
    }
}

/// What `save` and `restore` work with: the environment, its lock (held while this lives),
/// its owner confirmed, the options services are brought back with.
struct Prepared {
    config: crate::config::Config,
    state_dir: PathBuf,
    store: Store,
    options: Options,
    _lock: state::Lock,
}

impl Prepared {
    /// What the operation acts on, with `engine`.
    fn target<'a>(&'a self, engine: &'a Engine, settings: &Settings) -> snapshot::Target<'a> {
        snapshot::Target {
            engine,
            config: &self.config,
            store: &self.store,
            state_dir: &self.state_dir,
            options: &self.options,
            reporter: progress::reporter(&settings.printer),
        }
    }

    fn new(settings: &Settings, args: &SnapshotChangeArgs) -> anyhow::Result<Prepared> {
        let (dir, timeout, force) = (&args.dir, args.timeout, args.force);
        let loaded = settings.load_environment(false)?;
        let state_dir = state::dir(&loaded.config.name)?;
        let p = &settings.printer;
        let lock = state::lock(&loaded.config.name, &state_dir, timeout, |m| p.status(m))?;
        let owner = state::Owner::new(loaded.path.as_deref(), &state_dir);
        settings.confirm_owner(&loaded.config.name, &owner, true, force)?;
        let options = Options {
            timeout,
            kubeconfig: settings.kubeconfig(&loaded.config)?,
            owner: Some(owner),
            ..Options::default()
        };
        Ok(Prepared {
            store: Store::new(&state_dir, dir.dir.clone()),
            config: loaded.config,
            state_dir,
            options,
            _lock: lock,
        })
    }
}

/// The store `--dir` or the environment's state directory names.
fn store(settings: &Settings, dir: &SnapshotDirArgs) -> anyhow::Result<Store> {
    let loaded = settings.load_environment(false)?;
    Ok(Store::new(
        &state::dir(&loaded.config.name)?,
        dir.dir.clone(),
    ))
}

fn list(settings: &Settings, dir: &SnapshotDirArgs) -> anyhow::Result<()> {
    let store = store(settings, dir)?;
    let listed = store.list()?;
    let p = &settings.printer;
    if p.format != Format::Human {
        return p.json(&serde_json::json!({ "dir": store.dir, "snapshots": listed }));
    }
    if listed.is_empty() {
        p.status(format!("no snapshots in {}", store.dir.display()));
        return Ok(());
    }
    let mut rows = vec![
        ["NAME", "CREATED", "SIZE", "SERVICES"]
            .map(String::from)
            .to_vec(),
    ];
    for l in &listed {
        rows.push(match &l.manifest {
            Some(m) => vec![
                l.name.clone(),
                m.created.clone(),
                size(m.stored()),
                m.services().join(","),
            ],
            None => vec![
                l.name.clone(),
                "-".into(),
                "-".into(),
                format!("unreadable: {}", l.unreadable.as_deref().unwrap_or("")),
            ],
        });
    }
    p.data(table(&rows))?;
    Ok(())
}

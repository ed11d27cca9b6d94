//! `devenv down [--purge]`: remove devenv's containers and network; named volumes stay so
//! data survives, unless `--purge`, which also removes them and the generated secrets.
//!
//! Only what carries devenv's project label for this environment is touched.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::DownArgs;
use crate::docker::{Engine, runtime};
use crate::env;
use crate::error::Failure;
use crate::output::Format;
use crate::state::{self, RENDERED_DIR};

use super::Settings;

/// How long `down` waits for a running `up` on the same environment.
const LOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// `down`'s settings, from its arguments.
struct Down {
    /// Also remove volumes and generated secrets.
    purge: bool,
    /// The purge was confirmed on the command line (`--yes`).
    confirmed: bool,
}

impl Down {
    fn from_arguments(args: DownArgs) -> Down {
        Down {
            purge: args.purge,
            confirmed: args.yes,
        }
    }
}

pub fn run(settings: &Settings, args: DownArgs) -> anyhow::Result<()> {
    let down = Down::from_arguments(args);
    let loaded = settings.load_config()?;
    let config = &loaded.config;
    let p = &settings.printer;
    if down.purge && !down.confirmed {
        confirm_purge(&config.name)?;
    }
    let state_dir = state::dir(&config.name)?;
    let _lock = state::lock(&config.name, &state_dir, LOCK_TIMEOUT, |m| p.status(m))?;
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let observed = engine.observe().await?;
        let ours = |project: &Option<String>| project.as_deref() == Some(config.name.as_str());

        let containers: Vec<_> = observed
            .containers
            .iter()
            .filter(|c| ours(&c.project))
            .collect();
        let removals = containers.iter().map(|c| {
            let engine = &engine;
            async move { engine.stop_and_remove(&c.id, &c.name).await }
        });
        for r in futures_util::future::join_all(removals).await {
            r?;
        }
        let mut removed_networks = Vec::new();
        for n in observed.networks.iter().filter(|n| ours(&n.project)) {
            // The shared `kind` network stays while KinD or another environment uses it.
            if engine.remove_network_if_unused(&n.name).await? {
                removed_networks.push(n.name.clone());
            }
        }
        let volumes: Vec<String> = observed
            .volumes
            .iter()
            .filter(|v| ours(&v.project))
            .map(|v| v.name.clone())
            .collect();
        let mut removed_volumes = Vec::new();
        if down.purge {
            for v in &volumes {
                engine.remove_volume(v).await?;
                removed_volumes.push(v.clone());
            }
            for path in [
                state_dir.join(state::SECRETS_FILE),
                state_dir.join(RENDERED_DIR),
            ] {
                let result = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                match result {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("removing {}", path.display()));
                    }
                }
            }
        }
        let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
        if p.format == Format::Json {
            p.json(&serde_json::json!({
                "containers_removed": names,
                "networks_removed": removed_networks,
                "volumes_removed": removed_volumes,
                "volumes_kept": if down.purge { Vec::new() } else { volumes.clone() },
                "secrets_removed": down.purge,
            }))?;
            return Ok(());
        }
        for n in &names {
            p.step("removed", format!("container {n}"));
        }
        for n in &removed_networks {
            p.step("removed", format!("network {n}"));
        }
        for v in &removed_volumes {
            p.step("removed", format!("volume {v}"));
        }
        if down.purge {
            p.step("removed", "generated secrets");
        } else if !volumes.is_empty() {
            p.status(format!(
                "kept {} volumes with your data (`devenv down --purge` removes them)",
                volumes.len()
            ));
        }
        if names.is_empty() && removed_networks.is_empty() && removed_volumes.is_empty() {
            p.status(format!("nothing of `{}` was running", config.name));
        }
        Ok(())
    })
}

/// Ask before deleting data: on a terminal, a prompt; elsewhere (CI, scripts) only `--yes`.
fn confirm_purge(name: &str) -> anyhow::Result<()> {
    let hint = "pass --yes to purge without asking".to_string();
    let interactive =
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal() && !env::flag(env::CI);
    if !interactive {
        return Err(Failure::bad_input(
            "--purge deletes every volume of the environment and its secrets, and needs confirmation",
            hint,
        )
        .into());
    }
    let yes = dialoguer::Confirm::new()
        .with_prompt(format!(
            "Remove all data volumes and generated secrets of `{name}`?"
        ))
        .default(false)
        .interact()
        .context("asking for confirmation")?;
    if yes {
        Ok(())
    } else {
        Err(Failure::bad_input("purge cancelled; nothing was removed", None).into())
    }
}

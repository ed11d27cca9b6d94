//! `devenv init`: write a devenv.yaml, asking on a terminal, from flags otherwise. Not for:
//! changing an existing file (only replacing it with `--force`).

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::cli::InitArgs;
use crate::config::{self, Config, DEFAULT_FILE, RoutingMode, Tiers};
use crate::error::Failure;
use crate::files;

use super::Settings;

/// The keys `init` writes; everything else keeps its default.
#[derive(Serialize)]
struct InitFile<'a> {
    name: &'a str,
    domain: &'a str,
    routing: Routing,
    tiers: &'a Tiers,
}

#[derive(Serialize)]
struct Routing {
    mode: RoutingMode,
}

pub fn run(settings: &Settings, args: InitArgs) -> anyhow::Result<()> {
    let path: PathBuf = args
        .path
        .clone()
        .or_else(|| {
            settings
                .config_explicit
                .then(|| settings.config_path.clone())
                .flatten()
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
    if path.exists() && !args.force {
        return Err(Failure::bad_input(
            format!("{} already exists", path.display()),
            Some("pass --force to overwrite it, or --path to write elsewhere".to_string()),
        )
        .into());
    }
    let mut config = Config::default();
    if let Some(name) = &settings.name {
        config.name = name.clone();
    }
    if let Some(domain) = &args.domain {
        config.domain = domain.clone();
    }
    if let Some(r) = args.routing {
        config.routing.mode = r.into();
    }
    for &t in &args.no_tier {
        config.tiers.set(t.into(), false);
    }
    let interactive = !args.yes && settings.interactive();
    if interactive {
        ask(&mut config)?;
    }
    let text = format!(
        "# devenv.yaml: every key is optional; `devenv config schema` describes them all.\n{}",
        serde_saphyr::to_string(&InitFile {
            name: &config.name,
            domain: &config.domain,
            routing: Routing {
                mode: config.routing.mode,
            },
            tiers: &config.tiers,
        })?
    );
    // Validate exactly what will be written, so a bad flag changes nothing.
    config::load_str(&text, &format!("{} (to be written)", path.display()))?;
    files::write_atomic(&path, text.as_bytes(), 0o644)?;
    settings.printer.step("created", path.display().to_string());
    settings.printer.status(
        "next: `devenv up` brings the platform up; `devenv render` writes kind/ and compose/",
    );
    Ok(())
}

fn ask(config: &mut Config) -> anyhow::Result<()> {
    use dialoguer::{Input, MultiSelect, Select};
    let theme = dialoguer::theme::SimpleTheme;
    config.domain = Input::with_theme(&theme)
        .with_prompt("Local DNS domain")
        .default(config.domain.clone())
        .validate_with(|d: &String| {
            crate::config::check_dns_name(d).map_err(|why| format!("not a DNS name: {why}"))
        })
        .interact_text()
        .context("reading the domain")?;
    let modes = [
        "split-ip: apps at http://<app>.<domain> (127.0.0.2:80/443)",
        "ports: apps at http://<app>.<domain>:8080 (127.0.0.1)",
    ];
    let current = usize::from(config.routing.mode == RoutingMode::Ports);
    let choice = Select::with_theme(&theme)
        .with_prompt("How should application URLs look?")
        .items(modes)
        .default(current)
        .interact()
        .context("reading the routing mode")?;
    config.routing.mode = if choice == 0 {
        RoutingMode::SplitIp
    } else {
        RoutingMode::Ports
    };
    let tiers = [
        "core (gateway, registry, PowerDNS)",
        "observability (Prometheus, Grafana, Loki, Tempo)",
        "data (MinIO, TimescaleDB)",
        "tools (Excalidraw)",
    ];
    let t = &config.tiers;
    let chosen = MultiSelect::with_theme(&theme)
        .with_prompt("Tiers to run (space toggles, enter accepts)")
        .items(tiers)
        .defaults(&[t.core, t.observability, t.data, t.tools])
        .interact()
        .context("reading the tiers")?;
    config.tiers = Tiers {
        core: chosen.contains(&0),
        observability: chosen.contains(&1),
        data: chosen.contains(&2),
        tools: chosen.contains(&3),
    };
    Ok(())
}

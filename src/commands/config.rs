//! `devenv config validate|schema|show`: check devenv.yaml, print its JSON Schema, print the
//! effective configuration. Not for: writing a file (that is `init`).

use crate::cli::ConfigCommand;
use crate::config::Config;
use crate::output::Format;

use super::Settings;

pub fn run(settings: &Settings, cmd: ConfigCommand) -> anyhow::Result<()> {
    let p = &settings.printer;
    match cmd {
        ConfigCommand::Validate => {
            let loaded = settings.load_config()?;
            let origin = loaded
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults".to_string());
            let warnings: Vec<String> = domain_warning(&loaded.config).into_iter().collect();
            if p.format == Format::Json {
                p.json(
                    &serde_json::json!({"valid": true, "source": origin, "warnings": warnings}),
                )?;
            } else {
                for w in &warnings {
                    p.warn(w);
                }
                p.status(format!("{origin}: valid"));
            }
        }
        ConfigCommand::Schema => {
            let schema = schemars::schema_for!(Config);
            p.json(&schema)?;
        }
        ConfigCommand::Show => {
            let loaded = settings.load_config()?;
            // The file's settings, with `services` resolved: every enabled service as it runs.
            let mut shown = serde_json::to_value(&loaded.config)?;
            shown["services"] =
                serde_json::to_value(crate::config::shown(&loaded.config.services()))?;
            if p.format == Format::Json {
                p.json(&shown)?;
            } else {
                p.data(serde_saphyr::to_string(&shown)?)?;
            }
        }
    }
    Ok(())
}

/// The warning for a domain that takes names from the real DNS (`config validate` and `up`
/// print it; `dns install` refuses such a domain without `--force`).
pub fn domain_warning(config: &Config) -> Option<String> {
    crate::config::domain::taken_from_real_dns(&config.domain).map(|why| {
        format!(
            "domain `{}`: {why}; a name under `.test`, `.internal` or `.local` (e.g. `{}.local`) takes nothing from it",
            config.domain, config.name
        )
    })
}

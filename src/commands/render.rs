//! `devenv render [--out DIR] [--check]`: write (or compare) every artifact of devenv.yaml.

use crate::cli::RenderArgs;
use crate::error::Failure;
use crate::output::Format;
use crate::render;

use super::Settings;

pub fn run(settings: &Settings, args: RenderArgs) -> anyhow::Result<()> {
    let loaded = settings.load_config()?;
    let artifacts = render::render(&loaded.config)?;
    let p = &settings.printer;
    if args.check {
        let drift = render::check(&args.out, &artifacts);
        if p.format == Format::Json {
            let items: Vec<_> = drift
                .iter()
                .map(|(path, diff)| serde_json::json!({"path": path, "missing": diff.is_none(), "diff": diff}))
                .collect();
            p.json(&serde_json::json!({"up_to_date": drift.is_empty(), "differences": items}))?;
        } else {
            for (path, diff) in &drift {
                match diff {
                    None => p.data(format!("missing: {}", path.display()))?,
                    Some(d) => p.data(format!(
                        "--- {0} (on disk)\n+++ {0} (rendered)\n{d}",
                        path.display()
                    ))?,
                }
            }
        }
        if drift.is_empty() {
            p.status(format!(
                "{} files under {} are up to date",
                artifacts.len(),
                args.out.display()
            ));
            return Ok(());
        }
        return Err(Failure::check_failed(format!(
            "{} of {} files under {} differ from devenv.yaml",
            drift.len(),
            artifacts.len(),
            args.out.display()
        ))
        .into());
    }
    let written = render::write_all(&args.out, &artifacts)?;
    if p.format == Format::Json {
        p.json(&serde_json::json!({
            "out": args.out,
            "created": written.created,
            "updated": written.updated,
            "unchanged": written.unchanged,
        }))?;
    } else {
        for path in &written.created {
            p.step("created", path.display().to_string());
        }
        for path in &written.updated {
            p.step("updated", path.display().to_string());
        }
        p.status(format!(
            "{} files under {}: {} created, {} updated, {} unchanged",
            artifacts.len(),
            args.out.display(),
            written.created.len(),
            written.updated.len(),
            written.unchanged.len()
        ));
    }
    Ok(())
}

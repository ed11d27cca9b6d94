//! `devenv render [--out DIR] [--check]`: write (or compare) every artifact of devenv.yaml;
//! `--check` also fails on stale files under the rendered directories. Not for: the state
//! directory's copy, which `up` writes (`converge::render`).

use crate::cli::RenderArgs;
use crate::error::Failure;
use crate::files::{self, Drift};
use crate::output::Format;
use crate::render;

use super::Settings;

pub fn run(settings: &Settings, args: RenderArgs) -> anyhow::Result<()> {
    let loaded = settings.load_config()?;
    let artifacts = render::render(&loaded.config)?;
    let p = &settings.printer;
    if args.check {
        let drift = files::check(&args.out, &artifacts)?;
        if p.format == Format::Json {
            let items: Vec<_> = drift
                .iter()
                .map(|(path, d)| {
                    let diff = match d {
                        Drift::Changed(diff) => Some(diff),
                        Drift::Missing | Drift::Stale => None,
                    };
                    serde_json::json!({
                        "path": path,
                        "missing": *d == Drift::Missing,
                        "stale": *d == Drift::Stale,
                        "diff": diff,
                    })
                })
                .collect();
            p.json(&serde_json::json!({"up_to_date": drift.is_empty(), "differences": items}))?;
        } else {
            for (path, d) in &drift {
                match d {
                    Drift::Missing => p.data(format!("missing: {}", path.display()))?,
                    Drift::Stale => p.data(format!(
                        "stale: {} (devenv no longer renders it; remove it)",
                        path.display()
                    ))?,
                    Drift::Changed(diff) => p.data(format!(
                        "--- {0} (on disk)\n+++ {0} (rendered)\n{diff}",
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
        let stale = drift.iter().filter(|(_, d)| *d == Drift::Stale).count();
        let differ = drift.len() - stale;
        let mut message = format!(
            "{differ} of {} files under {} differ from devenv.yaml",
            artifacts.len(),
            args.out.display()
        );
        if stale > 0 {
            message.push_str(&format!(", and {stale} files there are no longer rendered"));
        }
        return Err(Failure::check_failed(message).into());
    }
    let made = made_out(&args.out).map_err(|why| {
        Failure::bad_input(
            format!("--out {}: {why}", args.out.display()),
            Some("name a directory devenv may create or write into".to_string()),
        )
    })?;
    let written = match files::write_all(&args.out, &artifacts) {
        Ok(written) => written,
        Err(e) => {
            // Only the directories made for --out, deepest first, and only while empty.
            for dir in made {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(e);
        }
    };
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

/// Make the directory `out` (and what is missing above it), before anything is written, so that
/// a path that cannot be used is bad input and changes nothing; the directories made, deepest
/// first.
fn made_out(out: &std::path::Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut missing = Vec::new();
    let mut at = out.to_path_buf();
    loop {
        match std::fs::metadata(&at) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(format!("{} is not a directory", at.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // A file where a directory is needed: found when walking up.
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {}
            Err(e) => return Err(format!("{} cannot be read: {e}", at.display())),
        }
        missing.push(at.clone());
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent.to_path_buf(),
            _ => break,
        }
    }
    for dir in missing.iter().rev() {
        std::fs::create_dir(dir).map_err(|e| {
            for made in missing.iter().filter(|m| m.is_dir()) {
                let _ = std::fs::remove_dir(made);
            }
            format!("{} cannot be created: {e}", dir.display())
        })?;
    }
    Ok(missing)
}

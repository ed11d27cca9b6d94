//! Reading `devenv.yaml`: parse with file:line:column on every error, then validate.
//!
//! Not for: deciding which file to read (the command layer resolves `--config`).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Config;
use super::locate::Locations;
use super::validate;
use crate::error::Failure;

/// A configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file read, or `None` when the built-in defaults are used.
    pub path: Option<PathBuf>,
}

/// Read and validate `path`. `None`: the built-in defaults.
///
/// A file that does not parse or validate is a [`Failure::bad_input`] naming every problem
/// with file:line:column and a hint.
pub fn load(path: Option<&Path>) -> anyhow::Result<LoadedConfig> {
    let Some(path) = path else {
        return Ok(LoadedConfig {
            config: Config::default(),
            path: None,
        });
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::bad_input(
                format!("{}: no such file", path.display()),
                Some("create it with `devenv init`, or leave out --config to use the built-in defaults".to_string()),
            )
            .into());
        }
        Err(e) => {
            return Err(e).with_context(|| format!("reading {}", path.display()));
        }
    };
    let config = load_str(&text, &path.display().to_string())?;
    Ok(LoadedConfig {
        config,
        path: Some(path.to_path_buf()),
    })
}

/// Parse and validate `text`, naming it `origin` in messages.
pub fn load_str(text: &str, origin: &str) -> anyhow::Result<Config> {
    // An empty file (or one holding only comments) means "all defaults".
    let config: Config = if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        Config::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| parse_failure(&e, text, origin))?
    };
    let problems = validate::validate(&config);
    if problems.is_empty() {
        return Ok(config);
    }
    let locations = Locations::index(text);
    Err(problems.into_failure(origin, &locations).into())
}

fn parse_failure(err: &serde_saphyr::Error, text: &str, origin: &str) -> Failure {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    // The error's Display may carry a snippet and a trailing location: keep its first line.
    let msg = err.without_snippet().to_string();
    let first = msg.lines().next().unwrap_or("invalid YAML").trim();
    let first = strip_location_suffix(first);
    let where_ = if line > 0 {
        format!("{origin}:{line}:{column}")
    } else {
        origin.to_string()
    };
    // "invalid u16" says little: name the value and the range a person meant.
    let value = scalar_at(text, line, column);
    let ranged = [
        (
            "u16",
            "a port is a whole number from 1 to 65535 (0 leaves it unpublished)",
        ),
        ("u8", "a whole number from 0 to 255"),
        ("u32", "a whole number from 0 to 4294967295"),
    ]
    .into_iter()
    .find(|(ty, _)| first == format!("invalid {ty}") || first.ends_with(&format!("expected {ty}")));
    if let (Some((_, hint)), Some(value)) = (ranged, value) {
        return Failure::bad_input(
            format!("{where_}: `{value}` is out of range or not a whole number"),
            Some(hint.to_string()),
        );
    }
    let hint = if first.contains("unknown field") {
        "remove the key or correct its spelling; `devenv config schema` lists every key"
    } else if first.contains("unknown variant") {
        "use one of the values listed"
    } else if first.contains("invalid type") || first.contains("invalid value") {
        "give the value the type shown; `devenv config schema` describes every key"
    } else {
        "fix the YAML at that position"
    };
    Failure::bad_input(format!("{where_}: {first}"), Some(hint.to_string()))
}

/// serde-saphyr appends " at line L column C" to some messages; devenv puts the position first.
fn strip_location_suffix(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// The plain scalar written at a 1-based line and column, for messages.
fn scalar_at(text: &str, line: u64, column: u64) -> Option<&str> {
    let l = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let rest = l.get(usize::try_from(column).ok()?.checked_sub(1)?..)?;
    let end = rest.find([',', '}', ']', '#']).unwrap_or(rest.len());
    let v = rest[..end].trim();
    (!v.is_empty()).then_some(v)
}

//! Reading `devenv.yaml`: parse with file:line:column on every error, then validate.
//!
//! Not for: deciding which file to read (the command layer resolves `--config`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::locate::Locations;
use super::validate::{self, shorten};
use super::{Config, shape};
use crate::error::Failure;

/// A configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file read, or `None` when the built-in defaults are used.
    pub path: Option<PathBuf>,
    /// Whether the file sets `network.subnet` itself (CI mode picks a free one otherwise).
    pub fixed_subnet: bool,
}

/// The largest devenv.yaml devenv reads: far beyond any real one, small enough that a wrong
/// path (a log, an image, a device) is refused before it fills memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Read and validate `path`. `None`: the built-in defaults.
///
/// A file that does not parse or validate is a [`Failure::bad_input`] naming every problem
/// with file:line:column and a hint. So is a path that is not a regular text file (a
/// directory, a FIFO, a device, a file over [`MAX_FILE_BYTES`], bytes that are not UTF-8):
/// it is refused without being read, or as soon as it shows what it is.
pub fn load(path: Option<&Path>) -> anyhow::Result<LoadedConfig> {
    let Some(path) = path else {
        return Ok(LoadedConfig {
            config: Config::default(),
            path: None,
            fixed_subnet: false,
        });
    };
    let text = read_text(path)?;
    let mut config = load_str(&text, &path.display().to_string())?;
    config.base_dir = path
        .parent()
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .and_then(|d| std::path::absolute(d).ok());
    // Written, or (in a form the index may not see) different from the default.
    let fixed_subnet = Locations::index(&text).exact("network.subnet").is_some()
        || config.network.subnet != super::Network::default().subnet;
    Ok(LoadedConfig {
        config,
        path: Some(path.to_path_buf()),
        fixed_subnet,
    })
}

/// The text of the config file at `path`, refusing anything but a regular UTF-8 file of at
/// most [`MAX_FILE_BYTES`].
fn read_text(path: &Path) -> anyhow::Result<String> {
    let shown = path.display();
    let not_a_file = |what: &str| -> anyhow::Error {
        Failure::bad_input(
            format!("{shown}: is {what}, not a devenv.yaml file"),
            Some("name a YAML file with --config (or DEVENV_CONFIG)".to_string()),
        )
        .into()
    };
    // Metadata first: opening a FIFO would block and a device would never end.
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::bad_input(
                format!("{shown}: no such file"),
                Some("create it with `devenv init`, or leave out --config to use the built-in defaults".to_string()),
            )
            .into());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {shown}")),
    };
    if meta.is_dir() {
        return Err(not_a_file("a directory"));
    }
    if !meta.is_file() {
        return Err(not_a_file("a FIFO, socket or device"));
    }
    let too_big = || -> anyhow::Error {
        Failure::bad_input(
            format!(
                "{shown}: is larger than {} KiB, more than any devenv.yaml",
                MAX_FILE_BYTES / 1024
            ),
            Some("name the right file with --config".to_string()),
        )
        .into()
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading {shown}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = e.utf8_error().valid_up_to();
        let before = &bytes[..valid];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        Failure::bad_input(
            format!(
                "{shown}:{line}:{column}: byte 0x{:02x} is not UTF-8 text",
                bytes[valid]
            ),
            Some("save the file as UTF-8".to_string()),
        )
        .into()
    })
}

/// Top-level keys of a devenv.yaml for devenv.sh (cachix/devenv, the Nix-based tool that also
/// has `devenv up`, `devenv ci` and a `devenv.yaml`) that this devenv's file never has.
const DEVENV_SH_KEYS: &[&str] = &[
    "inputs",
    "imports",
    "allowUnfree",
    "allowBroken",
    "clean",
    "impure",
    "permittedInsecurePackages",
    "nixpkgs",
];

/// A file written for devenv.sh: exit 2 naming that tool at its first key of that kind, with
/// the way to keep both (this devenv's file under another name).
fn other_devenv(
    document: &serde_json::Value,
    origin: &str,
    locations: &Locations,
) -> Option<Failure> {
    let map = document.as_object()?;
    let mut keys: Vec<&str> = DEVENV_SH_KEYS
        .iter()
        .copied()
        .filter(|k| map.contains_key(*k))
        .collect();
    if keys.is_empty() {
        return None;
    }
    keys.sort_by_key(|k| locations.exact(k).map_or(usize::MAX, |(line, _)| line));
    let at = match locations.exact(keys[0]) {
        Some((line, column)) => format!("{origin}:{line}:{column}"),
        None => origin.to_string(),
    };
    let named = keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(Failure::bad_input(
        format!(
            "{at}: this is a devenv.yaml for devenv.sh (the Nix-based devenv; {named} {}), not for this devenv, the local platform of a KinD cluster, infrastructure and DNS",
            if keys.len() == 1 {
                "is its key"
            } else {
                "are its keys"
            }
        ),
        Some(format!(
            "keep this devenv's settings in another file and name it with --config or {} (`devenv --config devenv-platform.yaml init` writes one; an empty file means all defaults)",
            crate::env::CONFIG
        )),
    ))
}

/// Parse and validate `text`, naming it `origin` in messages.
///
/// Every problem is found in one run: the document's shape (unknown keys, types, choices,
/// ranges) is checked first and what is wrong taken out, then the rest is read and validated;
/// a problem that only follows from one already reported is not reported again.
pub fn load_str(text: &str, origin: &str) -> anyhow::Result<Config> {
    // An empty file (or one holding only comments) means "all defaults".
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        let config = Config::default();
        let problems = validate::validate(&config);
        if problems.is_empty() {
            return Ok(config);
        }
        return Err(problems.into_failure(origin, &Locations::default()).into());
    }
    let mut document: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| parse_failure(&e, text, origin))?;
    let locations = Locations::index(text);
    if let Some(failure) = other_devenv(&document, origin, &locations) {
        return Err(failure.into());
    }
    let written = |path: &str| -> Option<String> {
        let (line, column) = locations.value(path)?;
        scalar_at(text, line as u64, column as u64).map(str::to_string)
    };
    let mut problems = shape::check(&mut document, &written);
    let config: Config = match serde_json::from_value(document) {
        Ok(config) => config,
        // Something the shape check does not know: serde's own reading says where.
        Err(e) => match serde_saphyr::from_str::<Config>(text) {
            Err(e) if problems.is_empty() => return Err(parse_failure(&e, text, origin).into()),
            _ => {
                problems.push(validate::Problem::new(
                    "",
                    format!("cannot be read: {e}"),
                    "`devenv config schema` describes every key",
                ));
                return Err(problems.into_failure(origin, &locations).into());
            }
        },
    };
    // Values taken out were replaced by defaults: a rule broken only by such a default is
    // not the user's problem.
    let removed: Vec<String> = problems.0.iter().map(|p| p.path.clone()).collect();
    let within = |path: &str| {
        removed.iter().any(|r| {
            path == r || path.starts_with(&format!("{r}.")) || path.starts_with(&format!("{r}["))
        })
    };
    for p in validate::validate(&config).0 {
        if !within(&p.path) {
            problems.push(p);
        }
    }
    if problems.is_empty() {
        return Ok(config);
    }
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
            format!(
                "{where_}: `{}` is out of range or not a whole number",
                shorten(value)
            ),
            Some(hint.to_string()),
        );
    }
    if let Some(key) = first.strip_prefix("duplicate mapping key: ") {
        let key = key.split(", set ").next().unwrap_or(key);
        return Failure::bad_input(
            format!(
                "{where_}: key `{}` appears twice in one mapping",
                shorten(key)
            ),
            Some("keep one of them".to_string()),
        );
    }
    let first = shorten(first);
    let hint = if first.contains("unknown field") {
        "remove the key or correct its spelling; `devenv config schema` lists every key"
    } else if first.contains("unknown variant") {
        "use one of the values listed"
    } else if first.contains("invalid type") || first.contains("invalid value") {
        "give the value the type shown; `devenv config schema` describes every key"
    } else {
        // Not a value devenv could read but the YAML itself: say what is wrong in devenv's
        // words, and keep the reader's own as a detail.
        let (at, said, hint) = syntax_problem(&first, text, line);
        let where_ = match at {
            Some((line, column)) => format!("{origin}:{line}:{column}"),
            None => where_,
        };
        return Failure::bad_input(
            format!("{where_}: {said}\n  detail (YAML reader): {first}"),
            Some(hint.to_string()),
        );
    };
    Failure::bad_input(format!("{where_}: {first}"), Some(hint.to_string()))
}

/// What is wrong with YAML that does not parse, and what to do, from the reader's message
/// and the text at the line it points to (1-based; 0 when it gave none); with the line and
/// column of the fault where it is not where the reader stopped (a tab, an opening quote).
fn syntax_problem(
    reader: &str,
    text: &str,
    line: u64,
) -> (Option<(usize, usize)>, String, &'static str) {
    let lower = reader.to_ascii_lowercase();
    let at_line = usize::try_from(line)
        .ok()
        .and_then(|l| l.checked_sub(1))
        .and_then(|l| text.lines().nth(l));
    // The reader often points past the fault (to where it gave up): look back to the line.
    let upto: Vec<&str> = text
        .lines()
        .take(usize::try_from(line).unwrap_or(usize::MAX).max(1))
        .collect();
    // The first line indented with a tab, and the tab's column.
    let tab = text.lines().enumerate().find_map(|(i, l)| {
        let spaces = l.len() - l.trim_start_matches(' ').len();
        l[spaces..].starts_with('\t').then_some((i + 1, spaces + 1))
    });
    if lower.contains("tab") || tab.is_some_and(|(l, _)| l <= line.max(1) as usize) {
        return (
            tab,
            "a tab indents this line: YAML indents with spaces only".to_string(),
            "replace the tab with spaces, as many as the keys around it use",
        );
    }
    // The last line up to the fault with an odd number of one kind of quote (outside a
    // comment), and where that quote opens.
    let open_quote = upto.iter().enumerate().rev().find_map(|(i, l)| {
        let l = l.split(" #").next().unwrap_or(l);
        ['"', '\''].into_iter().find_map(|q| {
            (l.matches(q).count() % 2 == 1).then(|| (i + 1, l.find(q).map_or(1, |c| c + 1)))
        })
    });
    if lower.contains("quote") || open_quote.is_some() {
        return (
            open_quote,
            "a quoted value is not closed: the quote that starts it has no partner".to_string(),
            "end the value with the same quote it starts with (\" or ')",
        );
    }
    let opened = |open: char, close: char| {
        let opens: usize = upto.iter().map(|l| l.matches(open).count()).sum();
        let closes: usize = upto.iter().map(|l| l.matches(close).count()).sum();
        opens > closes
    };
    if opened('[', ']') || opened('{', '}') || lower.contains("flow") {
        return (
            None,
            "a list `[` or mapping `{` is not closed".to_string(),
            "close it with `]` or `}` on the same value, or write the entries one per line",
        );
    }
    if lower.contains("mapping values are not allowed") {
        return (
            None,
            "a second `: ` on this line: a value that holds `: ` must be quoted".to_string(),
            "quote the value (`key: \"a: b\"`), or put the inner key on a line of its own, indented",
        );
    }
    if at_line.is_some_and(|l| l.trim_start().starts_with('-')) || lower.contains("sequence") {
        return (
            None,
            "a list item `- ` is not where a list can be: check its indentation".to_string(),
            "indent the `- ` items under their key, all at the same column",
        );
    }
    (
        None,
        "this line's indentation does not line up with the keys above it".to_string(),
        "indent each key with spaces under its parent, all siblings at the same column, and write `key: value` with a space after the colon",
    )
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

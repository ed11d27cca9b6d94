//! GitHub Actions: the `::error` workflow command a failing command prints, and appending to the
//! step summary file (`GITHUB_STEP_SUMMARY`).
//!
//! Escaping follows GitHub's workflow-command rules (actions/toolkit `command.ts`): in the
//! message, `%`, CR and LF become `%25`, `%0D`, `%0A`; in a property value (`title=`), `:` and
//! `,` also become `%3A` and `%2C`.
//!
//! Where the annotation goes: the runner reads workflow commands from a step's stdout and its
//! stderr alike (actions/runner `ScriptHandler` feeds both through an `OutputManager`), so the
//! line goes to stdout for human output and to stderr with `--output json`/`jsonl`, where stdout
//! carries only JSON.
//!
//! Not for: deciding whether devenv runs on GitHub Actions (the caller reads the environment)
//! nor what the summary says (the command builds its markdown).

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// A workflow command's message (data) escaped.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value escaped.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `::error title=<title>::<message>`, one line.
pub fn error_annotation(title: &str, message: &str) -> String {
    format!(
        "::error title={}::{}",
        escape_property(title),
        escape_data(message)
    )
}

/// Append `markdown` to the step summary file at `path` (created if missing, as the runner does).
pub fn append_summary(path: &Path, markdown: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the step summary {}", path.display()))?;
    file.write_all(markdown.as_bytes())
        .with_context(|| format!("writing the step summary {}", path.display()))
}

/// A markdown table cell: pipes escaped, lines joined.
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_escapes_percent_cr_and_lf_and_keeps_colons_and_commas() {
        assert_eq!(
            escape_data("50% done\r\nnext: a, b"),
            "50%25 done%0D%0Anext: a, b"
        );
        // The percent first: an escape sequence already in the text is not decoded later.
        assert_eq!(escape_data("%0A"), "%250A");
    }

    #[test]
    fn properties_also_escape_colons_and_commas() {
        assert_eq!(
            escape_property("devenv up: a, b%\n"),
            "devenv up%3A a%2C b%25%0A"
        );
    }

    #[test]
    fn an_error_annotation_is_one_line() {
        let line = error_annotation(
            "devenv up",
            "preflight failed, nothing was changed:\n  port 5001 is taken",
        );
        assert_eq!(
            line,
            "::error title=devenv up::preflight failed, nothing was changed:%0A  port 5001 is taken"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn cells_keep_the_table_intact() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn the_summary_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "before\n").unwrap();
        append_summary(&path, "after\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "before\nafter\n");
    }
}

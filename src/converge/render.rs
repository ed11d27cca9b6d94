//! Step: render every artifact of the configuration into `<state>/rendered`, where the
//! containers mount them from. Unchanged files are not touched, so their mounts stay as they
//! are.
//!
//! Not for: what the files contain (`crate::render`) or `devenv render`'s output directory.

use std::path::Path;

use crate::config::Config;
use crate::files;
use crate::render::{self, Artifact};
use crate::state::RENDERED_DIR;

/// Render `config` and write it under `<state_dir>/rendered`; the artifacts, for the drivers.
pub fn render(config: &Config, state_dir: &Path) -> anyhow::Result<Vec<Artifact>> {
    let artifacts = render::render(config)?;
    files::write_all(&state_dir.join(RENDERED_DIR), &artifacts)?;
    Ok(artifacts)
}

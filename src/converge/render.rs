//! Step: render every artifact of the configuration into `<state>/rendered`, where the
//! containers mount them from. Unchanged files are not touched, so their mounts stay as they
//! are.
//!
//! Not for: what the files contain (`crate::render`) or `devenv render`'s output directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigFile, MountSource, Service};
use crate::docker::spec::RenderedFile;
use crate::files;
use crate::render::{self, Artifact, COMPOSE_DIR};
use crate::state::RENDERED_DIR;

/// Render `config` and write it under `<state_dir>/rendered`; the artifacts, for the drivers.
pub fn render(config: &Config, state_dir: &Path) -> anyhow::Result<Vec<Artifact>> {
    let artifacts = render::render(config)?;
    files::write_all(&state_dir.join(RENDERED_DIR), &artifacts)?;
    // The gateway's live directory (certificate, key, routes) must be there before it starts.
    if config.services().iter().any(|s| s.name == "gateway") {
        crate::gateway::prepare(config, state_dir)?;
    }
    Ok(artifacts)
}

/// The rendered config files `services` mount, as the Docker driver mounts them: from
/// `<state_dir>/rendered`. A file the renderers did not produce is left out (the driver names
/// it).
pub fn mounted<'a>(
    artifacts: &'a [Artifact],
    services: &[Service],
    state_dir: &Path,
) -> BTreeMap<ConfigFile, RenderedFile<'a>> {
    let root = state_dir.join(RENDERED_DIR);
    let mut out = BTreeMap::new();
    for s in services {
        for m in &s.mounts {
            let MountSource::Config(file) = m.source else {
                continue;
            };
            let relative = PathBuf::from(COMPOSE_DIR).join(file.path());
            if let Some(a) = artifacts.iter().find(|a| a.path == relative) {
                out.insert(
                    file,
                    RenderedFile {
                        source: root.join(&relative),
                        contents: &a.contents,
                    },
                );
            }
        }
    }
    out
}

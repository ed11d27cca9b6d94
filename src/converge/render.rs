//! Step: render every artifact of the configuration, and — once every check passed
//! ([`keep`]) — write them into `<state>/rendered`, where the containers mount them from.
//! Unchanged files are not touched, so their mounts stay as they are.
//!
//! Not for: what the files contain (`crate::render`) or `devenv render`'s output directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigFile, MountSource, Service};
use crate::docker::spec::RenderedFile;
use crate::files;
use crate::render::{self, Artifact, COMPOSE_DIR};
use crate::state::RENDERED_DIR;

/// Render `config`: the artifacts, for the drivers. Writes nothing.
pub fn render(config: &Config) -> anyhow::Result<Vec<Artifact>> {
    render::render(config)
}

/// Write `artifacts` under `<state_dir>/rendered`, and the gateway's live directory
/// (certificate, key, routes), which must be there before it starts — after preflight: a
/// failed `up` leaves the state directory as it was. The live directory only with `gateway`
/// (the run converges the infrastructure, which reloads a running gateway). Whether the live
/// directory changed.
pub fn keep(
    config: &Config,
    state_dir: &Path,
    artifacts: &[Artifact],
    gateway: bool,
) -> anyhow::Result<bool> {
    files::write_all(&state_dir.join(RENDERED_DIR), artifacts)?;
    if gateway && config.services().iter().any(|s| s.name == "gateway") {
        return Ok(crate::gateway::prepare(config, state_dir)?.changed);
    }
    Ok(false)
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

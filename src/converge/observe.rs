//! Step: look at the engine — every container, network and volume, and which of the images
//! the services use are present.
//!
//! Not for: judging what was seen (that is [`super::plan`] and [`super::preflight`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::docker::observed::Observed;
use crate::docker::{ContainerSpec, Engine};

/// What the engine holds, as far as the services care.
#[derive(Debug, Clone)]
pub struct Seen {
    pub observed: Observed,
    /// The local ID of each image the services use, `None` where it is not present.
    pub image_ids: BTreeMap<String, Option<String>>,
}

/// Look at the engine. `previous` skips a second listing when only image IDs may have changed
/// (after a pull).
pub async fn observe(
    engine: &Engine,
    specs: &BTreeMap<String, ContainerSpec>,
    previous: Option<Observed>,
) -> anyhow::Result<Seen> {
    let wanted: Vec<String> = specs
        .values()
        .map(|s| s.image.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (observed, image_ids) = match previous {
        Some(o) => (o, engine.image_ids(&wanted).await?),
        None => tokio::try_join!(engine.observe(), engine.image_ids(&wanted))?,
    };
    Ok(Seen {
        observed,
        image_ids,
    })
}

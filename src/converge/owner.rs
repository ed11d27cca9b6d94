//! Whose an environment is: what devenv made carries its owner (the devenv.yaml and state
//! directory it was made from, [`Owner`]); a run from another checkout with the same `name:`
//! finds another owner there and must not act on it unasked ([`others`]).
//!
//! Not for: asking (the commands do, on a terminal, or take `--force`).

use std::collections::BTreeMap;

use crate::docker::Engine;
use crate::state::Owner;

/// The owners other than `me` of environment `project`'s containers (and, with `volumes`, of
/// its volumes), each with the names of what carries it. Empty when all is `me`'s or made
/// before devenv labelled owners.
pub async fn others(
    engine: &Engine,
    project: &str,
    me: &Owner,
    volumes: bool,
) -> anyhow::Result<Vec<(Owner, Vec<String>)>> {
    let found = engine.owners(project).await?;
    Ok(foreign(found, me, volumes))
}

/// The pure part of [`others`].
fn foreign(
    found: Vec<((String, String), String)>,
    me: &Owner,
    volumes: bool,
) -> Vec<(Owner, Vec<String>)> {
    let mut out: BTreeMap<Owner, Vec<String>> = BTreeMap::new();
    for ((config, state), what) in found {
        if !volumes && what.starts_with("volume ") {
            continue;
        }
        let owner = Owner { config, state };
        if owner != *me {
            out.entry(owner).or_default().push(what);
        }
    }
    out.into_iter().collect()
}

/// A sentence naming the other owners and what they made, for a prompt or an error.
pub fn describe(project: &str, me: &Owner, others: &[(Owner, Vec<String>)]) -> String {
    let theirs: Vec<String> = others
        .iter()
        .map(|(o, what)| format!("{o}: {}", what.join(", ")))
        .collect();
    format!(
        "environment `{project}` was made from another devenv.yaml or state directory — {}; this run is {me}",
        theirs.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(config: &str, state: &str) -> Owner {
        Owner {
            config: config.into(),
            state: state.into(),
        }
    }

    #[test]
    fn another_checkouts_containers_and_volumes_are_foreign() {
        let me = owner("/a/devenv.yaml", "/a/state");
        let found = vec![
            (
                ("/a/devenv.yaml".into(), "/a/state".into()),
                "container x-gateway".into(),
            ),
            (
                ("/b/devenv.yaml".into(), "/b/state".into()),
                "container x-registry".into(),
            ),
            (
                ("/b/devenv.yaml".into(), "/b/state".into()),
                "volume x-registry-data".into(),
            ),
            // Same file, another state directory (another HOME): another owner too.
            (
                ("/a/devenv.yaml".into(), "/c/state".into()),
                "volume x-minio-data".into(),
            ),
        ];
        let all = foreign(found.clone(), &me, true);
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[1].0, owner("/b/devenv.yaml", "/b/state"));
        assert_eq!(all[1].1, ["container x-registry", "volume x-registry-data"]);
        let containers = foreign(found, &me, false);
        assert_eq!(containers.len(), 1, "{containers:?}");
        let text = describe("x", &me, &containers);
        assert!(text.contains("/b/devenv.yaml (state in /b/state): container x-registry"));
        assert!(text.contains("this run is /a/devenv.yaml (state in /a/state)"));
        assert!(foreign(Vec::new(), &me, true).is_empty());
    }
}

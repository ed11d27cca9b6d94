//! Step: nothing is created unless every check passes. For the services in Docker: conflicts
//! from the plan, the subnet of a network about to be created, the host binds the new
//! containers need (minus those devenv's own containers, about to be replaced, hold), and
//! images; then pulling what is missing. [`fail_on`] turns every driver's problems into one
//! failure (exit 3) that lists them all.
//!
//! Not for: the checks' rules (`crate::preflight`, pure) or changing anything in the
//! environment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures_util::future::join_all;

use crate::config::{Config, Service};
use std::net::IpAddr;

use crate::config::Protocol;
use crate::docker::observed::{ObservedContainer, RunState};
use crate::docker::{ContainerSpec, Engine};
use crate::error::Failure;
use crate::output::events::Kind;
use crate::output::progress::Reporter;
use crate::plan::{ContainerAction, Plan};
use crate::preflight::{self, Bind, Problem, PullPolicy};
use crate::state::Trouble;

use super::observe::Seen;

/// What the checks found: the problems, and the images to pull once there are none.
#[derive(Debug, Default)]
pub struct Found {
    pub problems: Vec<Problem>,
    pub to_pull: Vec<String>,
}

/// Check that `plan` can be carried out for `services`.
pub async fn check(
    engine: &Engine,
    config: &Config,
    pull: PullPolicy,
    services: &[Service],
    specs: &BTreeMap<String, ContainerSpec>,
    plan: &Plan,
    seen: &Seen,
) -> anyhow::Result<Found> {
    let Seen {
        observed,
        image_ids,
    } = seen;
    let mut problems: Vec<Problem> = plan
        .conflicts
        .iter()
        .map(|c| Problem {
            message: c.clone(),
            hint: "devenv touches only what carries its labels".into(),
        })
        .collect();

    let own_network = config.network_name();
    if plan.create_networks.contains(&own_network) {
        problems.extend(preflight::check_subnet(
            config.network.subnet,
            &own_network,
            &observed.networks,
        ));
    }

    let replaced: BTreeSet<&str> = plan
        .containers
        .iter()
        .filter_map(|a| match a {
            ContainerAction::Recreate { id, .. } | ContainerAction::Remove { id, .. } => {
                Some(id.as_str())
            }
            _ => None,
        })
        .collect();
    let freed: BTreeSet<_> = observed
        .containers
        .iter()
        .filter(|c| replaced.contains(c.id.as_str()))
        .flat_map(|c| c.published.iter().cloned())
        .collect();
    // The environment's own containers hold their ports in any state but stopped: created
    // (a start a killed run left in flight), restarting, paused. What they hold is theirs,
    // not a conflict: kept or started, they keep it; replaced, they give it up first.
    let held = held_by_own(engine, &config.name, &observed.containers).await?;
    let changing: Vec<&Service> = services
        .iter()
        .filter(|s| plan.action(&s.name).is_some_and(|a| !a.is_keep()))
        .collect();
    let binds: Vec<Bind> = changing
        .iter()
        .flat_map(|s| Bind::of(s))
        .filter(|b| {
            let at = (b.addr, b.port, b.protocol);
            !freed.contains(&at) && !held.contains(&at)
        })
        .collect();
    tracing::info!(
        "preflight: checking {} host binds ({} held by the environment's own containers, {} freed by replaced ones)",
        binds.len(),
        held.len(),
        freed.len()
    );
    let publisher = publisher(engine, &binds).await?;
    problems.extend(preflight::check_binds(&binds, publisher));

    let needed: BTreeSet<String> = if pull == PullPolicy::Always {
        specs.values().map(|s| s.image.clone()).collect()
    } else {
        changing
            .iter()
            .map(|s| specs[&s.name].image.clone())
            .collect()
    };
    let (to_pull, image_problems) = preflight::images_to_pull(&needed, image_ids, pull);
    problems.extend(image_problems);
    problems.extend(missing_binds(services));
    Ok(Found { problems, to_pull })
}

/// A problem for each path on the host a service of the user's own mounts that does not
/// exist: the engine would refuse the container, or make an empty directory in its place.
fn missing_binds(services: &[Service]) -> Vec<Problem> {
    services
        .iter()
        .flat_map(|s| s.mounts.iter().map(move |m| (s, m)))
        .filter_map(|(s, m)| match &m.source {
            crate::config::MountSource::Bind(path) if !path.exists() => Some(Problem {
                message: format!(
                    "service {} mounts {}, which does not exist",
                    s.name,
                    path.display()
                ),
                hint: format!(
                    "create it, or fix services.{}.volumes (paths are relative to devenv.yaml)",
                    s.name
                ),
            }),
            _ => None,
        })
        .collect()
}

/// A problem when the secrets file at `path` is in `trouble` and new secrets cannot be made:
/// the environment's `volumes` exist, holding data made with the old ones (new passwords
/// would lock them out), or the file says something devenv does not write.
pub fn check_secrets(trouble: &Trouble, path: &Path, volumes: &[&str]) -> Option<Problem> {
    let file = path.display();
    if !volumes.is_empty() {
        return Some(Problem {
            message: format!(
                "the secrets file {file} {trouble}, but the volumes {} hold data made with the secrets it had; devenv makes no new ones for existing data",
                volumes.join(", ")
            ),
            hint: format!(
                "restore {file} from a backup, or start over without that data: `devenv down --purge` (deletes the volumes)"
            ),
        });
    }
    if trouble.fillable() {
        return None;
    }
    Some(Problem {
        message: format!("the secrets file {file} {trouble}"),
        hint: format!("no volume holds data yet: remove {file} and devenv makes new secrets"),
    })
}

/// The host binds the environment's own containers may hold now: those they publish while
/// running, and those they are configured with in every other state but stopped (the engine
/// is asked only about those).
pub async fn held_by_own(
    engine: &Engine,
    project: &str,
    containers: &[ObservedContainer],
) -> anyhow::Result<BTreeSet<(IpAddr, u16, Protocol)>> {
    let own = containers
        .iter()
        .filter(|c| c.project.as_deref() == Some(project));
    let mut held: BTreeSet<_> = own
        .clone()
        .flat_map(|c| c.published.iter().cloned())
        .collect();
    let unsure = own.filter(|c| may_hold_ports(c.state));
    let configured = join_all(unsure.map(|c| engine.port_bindings(&c.id, &c.name))).await;
    for binds in configured {
        held.extend(binds?);
    }
    Ok(held)
}

/// Whether a container in `state` may hold its host ports although the engine's list shows
/// none: every state but running (listed) and stopped (released).
fn may_hold_ports(state: RunState) -> bool {
    !matches!(state, RunState::Running | RunState::Exited | RunState::Dead)
}

/// Who publishes the ports. The engine is asked only when a port is below the unprivileged
/// start, where its answer matters.
pub async fn publisher(engine: &Engine, binds: &[Bind]) -> anyhow::Result<preflight::Publisher> {
    let start = preflight::unprivileged_port_start();
    let rootless = if binds.iter().any(|b| b.port < start) {
        engine.rootless().await?
    } else {
        false
    };
    Ok(preflight::Publisher {
        rootless,
        unprivileged_port_start: start,
    })
}

/// Fail (exit 3, nothing changed) listing every problem, with their distinct hints.
pub fn fail_on(problems: Vec<Problem>) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let message = problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("\n  ");
    let hints: Vec<&str> = problems
        .iter()
        .map(|p| p.hint.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Err(Failure::environment(
        format!("preflight failed, nothing was changed:\n  {message}"),
        hints.join("\n      "),
    )
    .into())
}

/// Pull `images`, all at once, each with its own progress. Every failure is reported, not only
/// the first; a failure is a preflight failure (exit 3).
pub async fn pull(
    engine: &Engine,
    images: &[String],
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let pulls = images.iter().map(|image| async move {
        let span = reporter.start(Kind::Pull, image);
        let task = reporter.transfer("pulling", image);
        let result = engine
            .pull(image, |done, total| {
                task.bytes(done, total);
                span.bytes(done);
            })
            .await;
        task.clear();
        let result = span.end(result);
        if result.is_ok() {
            reporter.step("pulled", image);
        }
        result
    });
    let failures: Vec<(String, String)> = join_all(pulls)
        .await
        .into_iter()
        .zip(images)
        .filter_map(|(r, image)| r.err().map(|e| (image.clone(), cause(&e))))
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    Err(Failure::environment(
        format!(
            "preflight failed: images could not be pulled:\n  {}",
            by_cause(&failures).join("\n  ")
        ),
        "check the image names (services.<svc>.image in devenv.yaml) and the registry's reachability, or load the images and use --pull never".to_string(),
    )
    .into())
}

/// What went wrong in a pull, without the "pulling image X" context on top.
fn cause(e: &anyhow::Error) -> String {
    let below: Vec<String> = e.chain().skip(1).map(ToString::to_string).collect();
    if below.is_empty() {
        e.to_string()
    } else {
        below.join(": ")
    }
}

/// One line per distinct cause, naming every image it stopped: one unreachable registry is
/// one line, however many images come from it. In the order causes were first seen.
fn by_cause(failures: &[(String, String)]) -> Vec<String> {
    let mut causes: Vec<(&str, Vec<&str>)> = Vec::new();
    for (image, cause) in failures {
        match causes.iter_mut().find(|(c, _)| c == cause) {
            Some((_, images)) => images.push(image),
            None => causes.push((cause, vec![image])),
        }
    }
    causes
        .into_iter()
        .map(|(cause, images)| match images.as_slice() {
            [one] => format!("pulling image {one}: {cause}"),
            many => format!(
                "pulling {} images ({}): {cause}",
                many.len(),
                many.join(", ")
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_secrets_with_existing_data_stop_up_naming_the_file_the_volumes_and_the_ways_out() {
        let path = Path::new("/state/secrets.env");
        let volumes = ["macula-pdns-db-data", "macula-registry-data"];
        for trouble in [
            Trouble::Missing,
            Trouble::Incomplete(vec![crate::config::SecretName::PdnsDbPassword]),
            Trouble::Unusable("line 3 is not `NAME=value`".into()),
        ] {
            let p = check_secrets(&trouble, path, &volumes).expect("a problem");
            assert!(p.message.contains("/state/secrets.env"), "{p:?}");
            assert!(
                p.message
                    .contains("macula-pdns-db-data, macula-registry-data"),
                "{p:?}"
            );
            assert!(
                p.hint.contains("restore") && p.hint.contains("down --purge"),
                "{p:?}"
            );
        }
        // Without data: a missing or incomplete file is filled in; a garbled one is named.
        assert_eq!(check_secrets(&Trouble::Missing, path, &[]), None);
        let garbled = Trouble::Unusable("line 3 is not `NAME=value`".into());
        let p = check_secrets(&garbled, path, &[]).expect("a problem");
        assert!(p.message.contains("line 3"), "{p:?}");
    }

    #[test]
    fn own_containers_may_hold_ports_in_every_state_but_running_and_stopped() {
        for state in [
            RunState::Created,
            RunState::Restarting,
            RunState::Paused,
            RunState::Removing,
            RunState::Unknown,
        ] {
            assert!(may_hold_ports(state), "{state:?}");
        }
        for state in [RunState::Running, RunState::Exited, RunState::Dead] {
            assert!(!may_hold_ports(state), "{state:?}");
        }
    }

    #[test]
    fn pull_failures_are_one_line_per_cause() {
        let unreachable = "dial tcp: lookup registry.example: no such host";
        let failures: Vec<(String, String)> = [
            ("a:1", unreachable),
            ("b:1", unreachable),
            ("c:1", "manifest unknown"),
            ("d:1", unreachable),
        ]
        .iter()
        .map(|(i, c)| (i.to_string(), c.to_string()))
        .collect();
        assert_eq!(
            by_cause(&failures),
            [
                format!("pulling 3 images (a:1, b:1, d:1): {unreachable}"),
                "pulling image c:1: manifest unknown".to_string(),
            ]
        );
    }

    #[test]
    fn the_cause_leaves_out_the_image_context() {
        let e = anyhow::anyhow!("no such host").context("pulling image a:1");
        assert_eq!(cause(&e), "no such host");
        assert_eq!(cause(&anyhow::anyhow!("alone")), "alone");
    }
}

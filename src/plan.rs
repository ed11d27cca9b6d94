//! Pure reconciliation: the desired infrastructure (from the model) against what the Docker
//! engine holds (observed) gives the actions that make them agree.
//!
//! Nothing here talks to Docker or reads files: the Docker driver owns the model of what it
//! observes ([`crate::docker::observed`]) and applies the actions; `converge` strings the steps
//! together. Not for: ordering the start (dependencies are carried along for the applier) nor
//! deciding whether a host port is free (that is `preflight`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::docker::observed::{Observed, ObservedContainer, RunState};

/// One service as devenv wants it to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredContainer {
    /// The service name (`grafana`).
    pub service: String,
    /// The Docker container name (`macula-grafana`).
    pub container_name: String,
    /// Hash of everything that makes up the container (see `docker::spec`).
    pub spec_hash: String,
    /// The ID of the image it should run, when the image is present locally.
    pub image_id: Option<String>,
    /// Every network it must be attached to.
    pub networks: Vec<String>,
}

/// One network devenv wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredNetwork {
    pub name: String,
    /// `None`: any subnet will do (the shared `kind` network).
    pub subnet: Option<String>,
    /// Shared with other tools (KinD): used as found, whoever made it.
    pub shared: bool,
}

/// Everything devenv wants to exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub networks: Vec<DesiredNetwork>,
    pub volumes: Vec<String>,
    pub containers: Vec<DesiredContainer>,
    /// Remove devenv's containers the model no longer has (false with `--only`).
    pub remove_unknown: bool,
}

/// What to do about one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum ContainerAction {
    /// No container yet.
    Create { service: String },
    /// The container differs from the model; remove it and create it again.
    Recreate {
        service: String,
        id: String,
        reason: String,
    },
    /// The container matches but is not running.
    Start { service: String, id: String },
    /// The container matches and runs.
    Keep { service: String, id: String },
    /// devenv made it, and the model no longer has it.
    Remove {
        container: String,
        id: String,
        reason: String,
    },
}

impl ContainerAction {
    /// The service (or, for a removal, the container) this action is about.
    pub fn subject(&self) -> &str {
        match self {
            ContainerAction::Create { service }
            | ContainerAction::Recreate { service, .. }
            | ContainerAction::Start { service, .. }
            | ContainerAction::Keep { service, .. } => service,
            ContainerAction::Remove { container, .. } => container,
        }
    }

    /// Whether the action leaves the container as it is.
    pub fn is_keep(&self) -> bool {
        matches!(self, ContainerAction::Keep { .. })
    }
}

/// The result of comparing desired and observed state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Networks to create.
    pub create_networks: Vec<String>,
    /// Named volumes to create.
    pub create_volumes: Vec<String>,
    /// One action per desired service, in the model's order, then the removals.
    pub containers: Vec<ContainerAction>,
    /// Things devenv will not resolve by itself (a foreign container holding a name, a network
    /// with another subnet). Nothing may be applied while there are any.
    pub conflicts: Vec<String>,
}

impl Plan {
    /// Whether applying the plan changes nothing.
    pub fn is_noop(&self) -> bool {
        self.create_networks.is_empty()
            && self.create_volumes.is_empty()
            && self.containers.iter().all(ContainerAction::is_keep)
    }

    /// The action for `service`, if it is desired.
    pub fn action(&self, service: &str) -> Option<&ContainerAction> {
        self.containers
            .iter()
            .find(|a| !matches!(a, ContainerAction::Remove { .. }) && a.subject() == service)
    }
}

/// Compare `desired` with `observed` for project `project`.
pub fn plan(project: &str, desired: &Desired, observed: &Observed) -> Plan {
    let mut out = Plan::default();

    let mut fresh_networks = BTreeSet::new();
    for want in &desired.networks {
        match observed.networks.iter().find(|n| n.name == want.name) {
            None => {
                out.create_networks.push(want.name.clone());
                fresh_networks.insert(want.name.as_str());
            }
            Some(_) if want.shared => {}
            Some(have) if have.project.as_deref() != Some(project) => out.conflicts.push(format!(
                "a Docker network named {} exists that devenv did not create for `{project}`",
                want.name
            )),
            Some(have) => {
                if let Some(subnet) = &want.subnet
                    && !have.subnets.is_empty()
                    && !have.subnets.contains(subnet)
                {
                    out.conflicts.push(format!(
                        "the Docker network {} has subnet {}, devenv.yaml wants {subnet} (`devenv down` removes it)",
                        want.name,
                        have.subnets.join(", ")
                    ));
                }
            }
        }
    }

    for volume in &desired.volumes {
        if !observed.volumes.iter().any(|v| &v.name == volume) {
            out.create_volumes.push(volume.clone());
        }
    }

    let ours = |c: &&ObservedContainer| c.project.as_deref() == Some(project);
    for want in &desired.containers {
        let found = observed
            .containers
            .iter()
            .find(|c| c.name == want.container_name);
        let action = match found {
            None => ContainerAction::Create {
                service: want.service.clone(),
            },
            Some(have) if !ours(&have) => {
                out.conflicts.push(format!(
                    "a container named {} exists that devenv did not create; rename or remove it, or change `name:` in devenv.yaml",
                    want.container_name
                ));
                continue;
            }
            Some(have) => match recreate_reason(want, have, &fresh_networks) {
                Some(reason) => ContainerAction::Recreate {
                    service: want.service.clone(),
                    id: have.id.clone(),
                    reason,
                },
                None if have.state == RunState::Running || have.state == RunState::Restarting => {
                    ContainerAction::Keep {
                        service: want.service.clone(),
                        id: have.id.clone(),
                    }
                }
                None => ContainerAction::Start {
                    service: want.service.clone(),
                    id: have.id.clone(),
                },
            },
        };
        out.containers.push(action);
    }

    if desired.remove_unknown {
        let wanted: BTreeSet<&str> = desired
            .containers
            .iter()
            .map(|c| c.container_name.as_str())
            .collect();
        for have in observed.containers.iter().filter(ours) {
            if !wanted.contains(have.name.as_str()) {
                let reason = match &have.service {
                    Some(s) => format!("service {s} is no longer in devenv.yaml"),
                    None => "not a service of devenv.yaml".to_string(),
                };
                out.containers.push(ContainerAction::Remove {
                    container: have.name.clone(),
                    id: have.id.clone(),
                    reason,
                });
            }
        }
    }
    out
}

fn recreate_reason(
    want: &DesiredContainer,
    have: &ObservedContainer,
    fresh_networks: &BTreeSet<&str>,
) -> Option<String> {
    if have.spec_hash.as_deref() != Some(want.spec_hash.as_str()) {
        return Some("its settings changed".into());
    }
    if let (Some(want_image), Some(have_image)) = (&want.image_id, &have.image_id)
        && want_image != have_image
    {
        return Some("its image changed".into());
    }
    if matches!(
        have.state,
        RunState::Dead | RunState::Removing | RunState::Unknown
    ) {
        return Some(format!("it is {:?}", have.state).to_lowercase());
    }
    let missing: Vec<&str> = want
        .networks
        .iter()
        .map(String::as_str)
        .filter(|n| fresh_networks.contains(n) || !have.networks.iter().any(|h| h == n))
        .collect();
    if !missing.is_empty() {
        return Some(format!("it is not attached to {}", missing.join(", ")));
    }
    None
}

/// The services of `all` named in `only`, plus everything they depend on (transitively).
/// `deps` maps a service to its direct dependencies. Unknown names are returned as errors.
pub fn with_dependencies(
    only: &[String],
    deps: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeSet<String>, Vec<String>> {
    let unknown: Vec<String> = only
        .iter()
        .filter(|s| !deps.contains_key(*s))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    let mut out = BTreeSet::new();
    let mut stack: Vec<String> = only.to_vec();
    while let Some(s) = stack.pop() {
        if out.insert(s.clone()) {
            stack.extend(deps.get(&s).into_iter().flatten().cloned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::observed::{ObservedNetwork, ObservedVolume};

    const P: &str = "demo";

    fn want(service: &str, hash: &str) -> DesiredContainer {
        DesiredContainer {
            service: service.into(),
            container_name: format!("{P}-{service}"),
            spec_hash: hash.into(),
            image_id: Some("sha256:img".into()),
            networks: vec!["demo-infra".into()],
        }
    }

    fn have(service: &str, hash: &str, state: RunState) -> ObservedContainer {
        ObservedContainer {
            id: format!("id-{service}"),
            name: format!("{P}-{service}"),
            project: Some(P.into()),
            service: Some(service.into()),
            spec_hash: Some(hash.into()),
            image_id: Some("sha256:img".into()),
            state,
            networks: vec!["demo-infra".into()],
            published: vec![],
            healthy: true,
        }
    }

    fn network() -> DesiredNetwork {
        DesiredNetwork {
            name: "demo-infra".into(),
            subnet: Some("172.30.80.0/24".into()),
            shared: false,
        }
    }

    fn our_network() -> ObservedNetwork {
        ObservedNetwork {
            name: "demo-infra".into(),
            project: Some(P.into()),
            subnets: vec!["172.30.80.0/24".into()],
        }
    }

    fn desired(containers: Vec<DesiredContainer>) -> Desired {
        Desired {
            networks: vec![network()],
            volumes: vec!["demo-db-data".into()],
            containers,
            remove_unknown: true,
        }
    }

    #[test]
    fn from_nothing_everything_is_created() {
        let p = plan(
            P,
            &desired(vec![want("db", "h1"), want("web", "h2")]),
            &Observed::default(),
        );
        assert_eq!(p.create_networks, ["demo-infra"]);
        assert_eq!(p.create_volumes, ["demo-db-data"]);
        assert_eq!(
            p.containers,
            [
                ContainerAction::Create {
                    service: "db".into()
                },
                ContainerAction::Create {
                    service: "web".into()
                }
            ]
        );
        assert!(p.conflicts.is_empty());
        assert!(!p.is_noop());
    }

    #[test]
    fn matching_running_containers_are_kept_and_the_plan_is_a_noop() {
        let observed = Observed {
            containers: vec![have("db", "h1", RunState::Running)],
            networks: vec![our_network()],
            volumes: vec![ObservedVolume {
                name: "demo-db-data".into(),
                project: Some(P.into()),
            }],
        };
        let p = plan(P, &desired(vec![want("db", "h1")]), &observed);
        assert!(p.is_noop(), "{p:?}");
    }

    #[test]
    fn a_changed_hash_recreates_only_that_service() {
        let observed = Observed {
            containers: vec![
                have("db", "h1", RunState::Running),
                have("web", "old", RunState::Running),
            ],
            networks: vec![our_network()],
            volumes: vec![],
        };
        let p = plan(
            P,
            &desired(vec![want("db", "h1"), want("web", "new")]),
            &observed,
        );
        assert!(p.containers[0].is_keep());
        assert!(matches!(
            &p.containers[1],
            ContainerAction::Recreate { service, reason, .. } if service == "web" && reason.contains("settings")
        ));
    }

    #[test]
    fn a_new_image_id_recreates() {
        let mut h = have("db", "h1", RunState::Running);
        h.image_id = Some("sha256:older".into());
        let observed = Observed {
            containers: vec![h],
            networks: vec![our_network()],
            volumes: vec![],
        };
        let p = plan(P, &desired(vec![want("db", "h1")]), &observed);
        assert!(
            matches!(&p.containers[0], ContainerAction::Recreate { reason, .. } if reason.contains("image"))
        );
    }

    #[test]
    fn stopped_and_created_containers_are_started() {
        for state in [RunState::Exited, RunState::Created, RunState::Paused] {
            let observed = Observed {
                containers: vec![have("db", "h1", state)],
                networks: vec![our_network()],
                volumes: vec![],
            };
            let p = plan(P, &desired(vec![want("db", "h1")]), &observed);
            assert_eq!(
                p.containers[0],
                ContainerAction::Start {
                    service: "db".into(),
                    id: "id-db".into()
                },
                "{state:?}"
            );
        }
    }

    #[test]
    fn a_container_missing_a_network_is_recreated() {
        let mut h = have("db", "h1", RunState::Running);
        h.networks.clear();
        let observed = Observed {
            containers: vec![h],
            networks: vec![our_network()],
            volumes: vec![],
        };
        let p = plan(P, &desired(vec![want("db", "h1")]), &observed);
        assert!(
            matches!(&p.containers[0], ContainerAction::Recreate { reason, .. } if reason.contains("demo-infra"))
        );

        // A network that has to be created again means every container is on a stale one.
        let observed = Observed {
            containers: vec![have("db", "h1", RunState::Running)],
            networks: vec![],
            volumes: vec![],
        };
        let p = plan(P, &desired(vec![want("db", "h1")]), &observed);
        assert!(matches!(&p.containers[0], ContainerAction::Recreate { .. }));
    }

    #[test]
    fn leftovers_of_ours_are_removed_and_foreign_ones_never() {
        let mut foreign = have("web", "h", RunState::Running);
        foreign.project = None;
        foreign.name = "bystander".into();
        let mut other_project = have("web", "h", RunState::Running);
        other_project.project = Some("other".into());
        other_project.name = "other-web".into();
        let observed = Observed {
            containers: vec![have("old", "h", RunState::Running), foreign, other_project],
            networks: vec![our_network()],
            volumes: vec![],
        };
        let p = plan(P, &desired(vec![]), &observed);
        assert_eq!(p.containers.len(), 1);
        assert!(
            matches!(&p.containers[0], ContainerAction::Remove { container, .. } if container == "demo-old")
        );

        let mut only = desired(vec![]);
        only.remove_unknown = false;
        assert!(plan(P, &only, &observed).containers.is_empty());
    }

    #[test]
    fn foreign_names_and_networks_are_conflicts() {
        let mut foreign = have("db", "h1", RunState::Running);
        foreign.project = None;
        let observed = Observed {
            containers: vec![foreign],
            networks: vec![ObservedNetwork {
                name: "demo-infra".into(),
                project: None,
                subnets: vec![],
            }],
            volumes: vec![],
        };
        let p = plan(P, &desired(vec![want("db", "h1")]), &observed);
        assert_eq!(p.conflicts.len(), 2, "{:?}", p.conflicts);
        assert!(p.containers.is_empty());
    }

    #[test]
    fn another_subnet_is_a_conflict_and_a_shared_network_is_used_as_found() {
        let mut net = our_network();
        net.subnets = vec!["10.0.0.0/24".into()];
        let kind = ObservedNetwork {
            name: "kind".into(),
            project: None,
            subnets: vec!["172.18.0.0/16".into()],
        };
        let mut d = desired(vec![]);
        d.networks.push(DesiredNetwork {
            name: "kind".into(),
            subnet: None,
            shared: true,
        });
        let observed = Observed {
            containers: vec![],
            networks: vec![net, kind],
            volumes: vec![],
        };
        let p = plan(P, &d, &observed);
        assert_eq!(p.conflicts.len(), 1);
        assert!(p.conflicts[0].contains("10.0.0.0/24"));
        assert!(p.create_networks.is_empty());
    }

    #[test]
    fn only_pulls_in_dependencies_and_rejects_unknown_names() {
        let deps: BTreeMap<String, Vec<String>> = [
            ("db".to_string(), vec![]),
            ("api".to_string(), vec!["db".to_string()]),
            ("ui".to_string(), vec!["api".to_string()]),
            ("other".to_string(), vec![]),
        ]
        .into();
        let got = with_dependencies(&["ui".into()], &deps).unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), ["api", "db", "ui"]);
        assert_eq!(
            with_dependencies(&["nope".into()], &deps),
            Err(vec!["nope".to_string()])
        );
    }
}

//! Step: which services this run is about (`--only` and what they need), and their desired
//! state — networks, volumes, containers — compared with what was observed, through the pure
//! planner ([`crate::plan`]).
//!
//! Not for: the comparison rules themselves (`crate::plan`) or carrying anything out.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, Service};
use crate::docker::ContainerSpec;
use crate::error::Failure;
use crate::plan::{self, Desired, DesiredContainer, DesiredNetwork, Plan};

use super::observe::Seen;

/// Split `--only` into whether the cluster is wanted and the services named: with no `--only`,
/// the cluster (unless `cluster.provider: none`) and every service; `cluster` in the list names
/// the cluster.
pub fn split_only(config: &Config, only: &[String]) -> (bool, Vec<String>) {
    let has_cluster = config.cluster.provider != crate::config::ClusterProvider::None;
    let services: Vec<String> = only
        .iter()
        .filter(|s| s.as_str() != super::cluster::UNIT)
        .cloned()
        .collect();
    let want_cluster =
        has_cluster && (only.is_empty() || only.iter().any(|s| s == super::cluster::UNIT));
    (want_cluster, services)
}

/// The services to bring up: all enabled ones, or those named by `--only` and what they need.
pub fn select(config: &Config, only: &[String]) -> anyhow::Result<Vec<Service>> {
    let all = config.services();
    if only.is_empty() {
        return Ok(all);
    }
    let deps: BTreeMap<String, Vec<String>> = all
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.depends_on.iter().map(|d| d.service.clone()).collect(),
            )
        })
        .collect();
    match plan::with_dependencies(only, &deps) {
        Ok(keep) => Ok(all.into_iter().filter(|s| keep.contains(&s.name)).collect()),
        Err(unknown) => Err(Failure::bad_input(
            format!(
                "--only names services that are not enabled: {}",
                unknown.join(", ")
            ),
            format!(
                "enabled services: {}",
                deps.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
        .into()),
    }
}

/// What devenv wants to exist for `services`, and what to do about what was `seen`.
/// `remove_unknown`: remove devenv's containers the model no longer has (false with `--only`).
pub fn plan(
    config: &Config,
    services: &[Service],
    specs: &BTreeMap<String, ContainerSpec>,
    seen: &Seen,
    remove_unknown: bool,
) -> Plan {
    let mut networks = vec![DesiredNetwork {
        name: config.network_name(),
        subnet: Some(config.network.subnet.to_string()),
        shared: false,
    }];
    let mut volumes = BTreeSet::new();
    let mut containers = Vec::new();
    for s in services {
        let spec = &specs[&s.name];
        for extra in &spec.extra_networks {
            if !networks.iter().any(|n| n.name == extra.network) {
                networks.push(DesiredNetwork {
                    name: extra.network.clone(),
                    subnet: None,
                    shared: !extra.internal,
                });
            }
        }
        volumes.extend(spec.volumes.iter().cloned());
        containers.push(DesiredContainer {
            service: s.name.clone(),
            container_name: s.container_name.clone(),
            spec_hash: spec.spec_hash.clone(),
            image_id: seen.image_ids.get(&spec.image).cloned().flatten(),
            networks: spec.networks.clone(),
        });
    }
    let desired = Desired {
        networks,
        volumes: volumes.into_iter().collect(),
        containers,
        remove_unknown,
    };
    plan::plan(&config.name, &desired, &seen.observed)
}

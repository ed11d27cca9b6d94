//! Step: carry out the plan for the services in Docker. Create networks and volumes, stop and
//! remove what goes, then bring each service up — independent ones in parallel, each after
//! the services it depends on ([`super::wait`]) — and publish each outcome as a milestone.
//!
//! Not for: deciding what to do (the plan) or the engine calls (`docker`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;

use crate::config::{Config, Service};
use crate::docker::{ContainerSpec, Engine, NetworkKind};
use crate::error::Failure;
use crate::output::events::{Kind, Outcome, Span};
use crate::output::progress::{Reporter, Task};
use crate::plan::{ContainerAction, Plan};

use super::Ready;
use super::wait::{self, Skipped};

/// What apply did.
#[derive(Debug)]
pub struct Applied {
    /// The services whose healthcheck passed.
    pub healthy: BTreeSet<String>,
    /// Why the others are not up.
    pub failure: Option<anyhow::Error>,
}

/// What apply works from: the desired services and specs, the plan, and which kept services
/// Docker already reports healthy.
#[derive(Clone, Copy)]
pub struct Work<'a> {
    pub services: &'a [Service],
    pub specs: &'a BTreeMap<String, ContainerSpec>,
    pub plan: &'a Plan,
    pub already_healthy: &'a BTreeSet<String>,
    /// How long services get to become healthy.
    pub timeout: Duration,
    /// The owner labels of what is made.
    pub owner_labels: &'a [(String, String)],
}

/// Carry out `work.plan`, publishing every service's outcome on `ready`.
pub async fn apply(
    reporter: &Arc<dyn Reporter>,
    engine: &Engine,
    config: &Config,
    work: Work<'_>,
    ready: &Arc<Ready>,
) -> Applied {
    if let Err(e) = prepare(
        reporter.as_ref(),
        engine,
        config,
        work.plan,
        work.owner_labels,
    )
    .await
    {
        return Applied {
            healthy: BTreeSet::new(),
            failure: Some(e),
        };
    }
    bring_all_up(reporter, engine, work, ready).await
}

/// Create networks and volumes, and stop and remove every container that goes.
async fn prepare(
    reporter: &dyn Reporter,
    engine: &Engine,
    config: &Config,
    plan: &Plan,
    owner_labels: &[(String, String)],
) -> anyhow::Result<()> {
    let subnet = config.network.subnet.to_string();
    let ip_range = config.network.dynamic_range().to_string();
    for name in &plan.create_networks {
        if *name == config.metrics_network_name() {
            create_metrics_network(engine, config, owner_labels).await?;
            reporter.step("created", &format!("network {name}"));
            continue;
        }
        let how = if *name == config.network_name() {
            NetworkKind::Own(crate::docker::Subnet {
                subnet: &subnet,
                ip_range: &ip_range,
            })
        } else {
            NetworkKind::Shared
        };
        engine
            .create_network(&config.name, name, how, owner_labels)
            .await?;
        reporter.step("created", &format!("network {name}"));
    }
    for name in &plan.create_volumes {
        engine
            .create_volume(&config.name, name, owner_labels)
            .await?;
        reporter.step("created", &format!("volume {name}"));
    }
    // Everything that goes is stopped first, so its ports are free for what replaces it.
    let removals = plan.containers.iter().filter_map(|a| match a {
        ContainerAction::Recreate {
            service,
            id,
            reason,
        } => Some((id, service.as_str(), reason)),
        ContainerAction::Remove {
            container,
            id,
            reason,
        } => Some((id, container.as_str(), reason)),
        _ => None,
    });
    let removals = removals.map(|(id, name, reason)| async move {
        engine.stop_and_remove(id, name).await?;
        reporter.step("removed", &format!("{name} ({reason})"));
        anyhow::Ok(())
    });
    for r in futures_util::future::join_all(removals).await {
        r?;
    }
    Ok(())
}

/// Create the metrics network on a subnet no network on the engine uses (see
/// [`crate::subnets::free_metrics_subnet`]). Another environment may take the same subnet at the
/// same moment, before the engine lists it: then the engine refuses the overlap, and the next
/// free one is tried.
async fn create_metrics_network(
    engine: &Engine,
    config: &Config,
    owner_labels: &[(String, String)],
) -> anyhow::Result<()> {
    let name = config.metrics_network_name();
    let mut refused = Vec::new();
    loop {
        let subnet = metrics_subnet(engine, config, &refused).await?;
        let text = subnet.to_string();
        match engine
            .create_network(
                &config.name,
                &name,
                NetworkKind::Internal(&text),
                owner_labels,
            )
            .await
        {
            Ok(()) => return Ok(()),
            // The engine's words for a pool that overlaps another: "Pool overlaps with other
            // one on this address space" (20.10), "networks have overlapping IPv4" (later).
            Err(e)
                if refused.len() < METRICS_SUBNET_TRIES && format!("{e:#}").contains("overlap") =>
            {
                tracing::info!("network {name}: {text} was taken meanwhile, trying another");
                refused.push(subnet);
            }
            Err(e) => return Err(e),
        }
    }
}

/// How many subnets the engine may refuse as taken before creating the metrics network fails.
const METRICS_SUBNET_TRIES: usize = 8;

/// A subnet for the metrics network that neither a network on the engine nor `refused` uses.
async fn metrics_subnet(
    engine: &Engine,
    config: &Config,
    refused: &[ipnet::Ipv4Net],
) -> anyhow::Result<ipnet::Ipv4Net> {
    let observed = engine.observe().await?;
    let mut taken = crate::subnets::in_use(&observed.networks, &config.metrics_network_name());
    taken.extend_from_slice(refused);
    match crate::subnets::free_metrics_subnet(&config.name, config.network.subnet, &taken) {
        Some(s) => Ok(s),
        None => Err(crate::error::Failure::environment(
            format!(
                "no /{} in {} is free of the engine's networks for network {}",
                crate::subnets::METRICS_PREFIX,
                crate::subnets::METRICS_RANGES.join(" or "),
                config.metrics_network_name()
            ),
            "remove Docker networks you no longer need (`docker network prune`)".to_string(),
        )
        .into()),
    }
}

/// Bring each service up in dependency order, independent ones in parallel, and wait for its
/// healthcheck; a service whose dependency failed is skipped.
async fn bring_all_up(
    reporter: &Arc<dyn Reporter>,
    engine: &Engine,
    work: Work<'_>,
    ready: &Arc<Ready>,
) -> Applied {
    let Work {
        services,
        specs,
        plan,
        already_healthy,
        timeout,
        ..
    } = work;
    let deadline = Instant::now() + timeout;
    let mut tasks = tokio::task::JoinSet::new();
    for s in services {
        let Some(action) = plan.action(&s.name).cloned() else {
            continue;
        };
        // Within this run only (`--only` brings every dependency along).
        let deps: Vec<String> = s
            .depends_on
            .iter()
            .filter(|d| ready.declared(&d.service))
            .map(|d| d.service.clone())
            .collect();
        let spec = Arc::new(specs[&s.name].clone());
        let engine = engine.clone();
        let reporter = Arc::clone(reporter);
        let ready = Arc::clone(ready);
        let healthy = already_healthy.contains(&s.name);
        tasks.spawn(async move {
            let promise = ready.promise(&spec.service);
            let span = reporter.start(Kind::Service, &spec.service);
            span.detail(action_word(&action));
            let result = if healthy {
                Ok(())
            } else {
                let up = Up {
                    engine: &engine,
                    reporter: reporter.as_ref(),
                    ready: &ready,
                    deadline,
                    timeout,
                };
                up.bring_up(&spec, action, &deps).await
            };
            promise.keep(result.is_ok());
            finish(span, &result);
            (spec.service.clone(), result)
        });
    }
    let mut healthy = BTreeSet::new();
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.context("a service task panicked") {
            Ok((service, Ok(()))) => {
                healthy.insert(service);
            }
            // A mirror that does not come up (Distribution exits at start when its registry
            // cannot be reached: offline) stops nothing: the nodes' host files send pulls to
            // the registry itself when the mirror does not answer.
            Ok((service, Err(e)))
                if crate::config::is_mirror(&service) && e.downcast_ref::<Skipped>().is_none() =>
            {
                reporter.step(
                    "warning",
                    &format!(
                        "{e:#}; the nodes pull from the registry itself until it comes up (is its registry reachable?)"
                    ),
                );
            }
            Ok((service, Err(e))) => failures.push((service, e)),
            Err(e) => failures.push((String::new(), e)),
        }
    }
    if failures.is_empty() {
        return Applied {
            healthy,
            failure: None,
        };
    }
    // Root causes first; "skipped because X failed" after.
    failures.sort_by_key(|(_, e)| e.downcast_ref::<Skipped>().is_some());
    let text: Vec<String> = failures.iter().map(|(_, e)| format!("{e:#}")).collect();
    let message = format!(
        "{} of {} services are not up:\n{}",
        failures.len(),
        services.len(),
        text.join("\n")
    );
    // A root cause that says what to do (a healthcheck that cannot run: exit 3) keeps its
    // exit code and hint for the whole.
    let typed = failures.iter().find_map(|(_, e)| crate::error::failure(e));
    let failure = match typed {
        Some(f) => anyhow::Error::new(Failure {
            kind: f.kind,
            message,
            hint: f.hint.clone(),
        }),
        None => anyhow::anyhow!(message),
    };
    Applied {
        healthy,
        failure: Some(failure),
    }
}

/// What the plan does with a service, for its span.
fn action_word(action: &ContainerAction) -> &'static str {
    match action {
        ContainerAction::Create { .. } => "create",
        ContainerAction::Recreate { .. } => "recreate",
        ContainerAction::Start { .. } => "start",
        ContainerAction::Keep { .. } => "keep",
        ContainerAction::Remove { .. } => "remove",
    }
}

/// Finish a service's span: ok, skipped (a dependency did not come up) or failed.
fn finish(span: Span, result: &anyhow::Result<()>) {
    match result {
        Ok(()) => span.finish(Outcome::Ok, None),
        Err(e) if e.downcast_ref::<Skipped>().is_some() => {
            span.finish(Outcome::Skipped, Some(format!("{e:#}")));
        }
        Err(e) => span.finish(Outcome::Failed, Some(format!("{e:#}"))),
    }
}

/// What bringing one service up needs.
struct Up<'a> {
    engine: &'a Engine,
    reporter: &'a dyn Reporter,
    ready: &'a Ready,
    deadline: Instant,
    timeout: Duration,
}

impl Up<'_> {
    /// Wait for the dependencies, create or start the container as the plan says, and wait
    /// until it is healthy.
    async fn bring_up(
        &self,
        spec: &ContainerSpec,
        action: ContainerAction,
        deps: &[String],
    ) -> anyhow::Result<()> {
        let name = spec.service.as_str();
        // A kept service shows only its verdict; the others a spinner on a terminal.
        let task: Option<Box<dyn Task>> = (!action.is_keep()).then(|| self.reporter.task(name));
        let finish = |word: &str, detail: &str| match &task {
            Some(t) => t.finish(word, detail),
            None => self.reporter.step(word, &format!("{name}{detail}")),
        };
        let note = |text: &str| {
            if let Some(t) = &task {
                t.note(text);
            }
        };
        if let Err(skipped) = wait::dependencies(self.ready, name, deps, note).await {
            finish(
                "skipped",
                &format!(" ({} did not come up)", skipped.dependency),
            );
            return Err(skipped.into());
        }
        let step = |word: &str| match &task {
            Some(t) => t.step(word),
            None => self.reporter.step(word, name),
        };
        let id = match &action {
            ContainerAction::Create { .. } | ContainerAction::Recreate { .. } => {
                note("creating");
                let id = self.engine.create_container(spec).await?;
                self.engine.start(&id, &spec.container_name).await?;
                step("created");
                id
            }
            ContainerAction::Start { id, .. } => {
                self.engine.start(id, &spec.container_name).await?;
                step("started");
                id.clone()
            }
            ContainerAction::Keep { id, .. } => id.clone(),
            ContainerAction::Remove { .. } => unreachable!("removals are not per service"),
        };
        note("waiting until healthy");
        let verdict = wait::healthy(self.engine, &id, spec, self.deadline, self.timeout).await;
        finish(
            if verdict.is_ok() {
                "healthy"
            } else {
                "unhealthy"
            },
            "",
        );
        verdict
    }
}

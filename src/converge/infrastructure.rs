//! The services in Docker as a converge [`Driver`]: the registry, PowerDNS, observability and
//! data services, and the gateway, each a container on the environment's network. Its steps,
//! in order: [`observe`], [`plan`], [`preflight`] (check, then pull), [`apply`] with
//! [`wait`](super::wait), and the [`summary`] rows. Its milestones are its
//! service names.
//!
//! Not for: the engine calls (`docker`) or the pure decisions (`plan`, `preflight`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use crate::config::{Config, SecretName, Service};
use crate::docker::Engine;
use crate::docker::spec::{self, ContainerSpec};
use crate::plan::{ContainerAction, Plan};
use crate::render::Artifact;
use crate::state::{Owner, Secrets, Trouble};

use super::observe::{self, Seen};
use super::{Checked, Context, Driver, Part, Ready, apply, plan, preflight, summary};

/// The Docker driver of converge, for one run.
pub struct Infrastructure {
    engine: Engine,
    services: Vec<Service>,
    specs: BTreeMap<String, ContainerSpec>,
    /// The last look at the engine and the plan made from it (after [`Driver::check`]).
    looked: Option<(Seen, Plan)>,
    /// Containers Docker reported healthy at the first look.
    healthy_ids: BTreeSet<String>,
    /// Images to pull (after [`Driver::check`]).
    to_pull: Vec<String>,
    /// What was wrong with the secrets file, and where it is (checked against the data).
    secrets: (Option<Trouble>, PathBuf),
    /// The state directory (the gateway's live directory is in it).
    state_dir: PathBuf,
    /// Whether the gateway's live directory changed before apply ([`Self::gateway_changed`]).
    gateway_changed: Arc<AtomicBool>,
}

/// The mark, in the gateway's live directory, of a reload that failed: the next `up` tries it
/// again, though nothing changed since. A dot file: the gateway's `include` patterns never
/// match it.
const RELOAD_PENDING: &str = ".reload-pending";

impl Infrastructure {
    /// Connect to the engine and translate `services` into container specs, with the rendered
    /// `artifacts` (written under `<state_dir>/rendered`) and the generated `secrets`.
    pub async fn connect(
        config: &Config,
        services: Vec<Service>,
        artifacts: &[Artifact],
        secrets: &Secrets,
        state_dir: &Path,
        owner: Option<&Owner>,
    ) -> anyhow::Result<Infrastructure> {
        let engine = Engine::connect().await?;
        let owner = owner.cloned();
        let configs = super::render::mounted(artifacts, &services, state_dir);
        let secret = |name: &SecretName| secrets.get(name).to_string();
        let network = config.network_name();
        let subnet = config.network.subnet.to_string();
        let ctx = spec::Context {
            project: &config.name,
            network: &network,
            subnet: &subnet,
            configs: &configs,
            secret: &secret,
            owner: owner.as_ref(),
            state_dir,
        };
        let specs = spec::container_specs(&ctx, &services)?;
        Ok(Infrastructure {
            engine,
            services,
            specs,
            looked: None,
            healthy_ids: BTreeSet::new(),
            to_pull: Vec::new(),
            secrets: (secrets.trouble().cloned(), secrets.path().to_path_buf()),
            state_dir: state_dir.to_path_buf(),
            gateway_changed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The flag to set when the gateway's live directory (certificate, key, routes) changed
    /// after this driver was made: apply then reloads a gateway container it keeps.
    pub fn gateway_changed(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.gateway_changed)
    }

    /// Reload the running gateway when its live directory changed (a renewed certificate, other
    /// routes or ports), or a reload failed before ([`RELOAD_PENDING`]),
    /// and this run did not (re)start it: `gateway::serve`, checked by `nginx -t` and by the
    /// generation. Also when `--only` left the gateway out: it serves the same directory.
    async fn refresh_gateway(
        &self,
        ctx: &Context<'_>,
        plan: &Plan,
        healthy: &BTreeSet<String>,
    ) -> anyhow::Result<()> {
        // A reload that failed before is tried again, though the files have not changed since.
        let pending = crate::gateway::dir(&self.state_dir).join(RELOAD_PENDING);
        if !self.gateway_changed.load(Ordering::SeqCst) && !pending.exists() {
            return Ok(());
        }
        match plan.action("gateway") {
            // Started with the new files: nothing to reload.
            Some(action) if !action.is_keep() => {
                let _ = std::fs::remove_file(&pending);
                return Ok(());
            }
            // Did not come up: nothing to reload.
            Some(_) if !healthy.contains("gateway") => return Ok(()),
            _ => {}
        }
        let routes = crate::routes::load(&self.state_dir)?;
        let served = match crate::gateway::serve(ctx.config, &self.state_dir, &routes.routes).await
        {
            Ok(served) => {
                let _ = std::fs::remove_file(&pending);
                served
            }
            Err(e) => {
                let _ = crate::files::write_atomic(&pending, b"", 0o644);
                return Err(e.context(
                    "reloading the gateway with its new certificate, routes or stream servers",
                ));
            }
        };
        if let crate::gateway::Served::Live(crate::gateway::Applied::Reloaded { generation }) =
            served
        {
            ctx.reporter.step(
                "reloaded",
                &format!("gateway (new certificate, routes or ports; generation {generation})"),
            );
        }
        Ok(())
    }

    fn plan(&self, config: &Config, remove_unknown: bool, seen: &Seen) -> Plan {
        plan::plan(config, &self.services, &self.specs, seen, remove_unknown)
    }
}

/// What the driver planned, for the `--output json` document. Also with an empty plan when
/// `up` stopped before changing anything, so that the document has the same keys on every
/// path.
pub fn details(plan: &Plan) -> serde_json::Map<String, serde_json::Value> {
    let mut details = serde_json::Map::new();
    details.insert(
        "networks_created".into(),
        serde_json::json!(plan.create_networks),
    );
    details.insert(
        "volumes_created".into(),
        serde_json::json!(plan.create_volumes),
    );
    details.insert("actions".into(), serde_json::json!(plan.containers));
    details
}

#[async_trait]
impl Driver for Infrastructure {
    async fn check(&mut self, ctx: &Context<'_>) -> anyhow::Result<Checked> {
        let seen = observe::observe(&self.engine, &self.specs, None).await?;
        let plan = self.plan(ctx.config, ctx.options.only.is_empty(), &seen);
        let found = preflight::check(
            &self.engine,
            ctx.config,
            ctx.options.pull,
            &self.services,
            &self.specs,
            &plan,
            &seen,
        )
        .await?;
        for action in &plan.containers {
            tracing::info!("plan: {action:?}");
        }
        for n in &plan.create_networks {
            tracing::info!("plan: create network {n}");
        }
        for v in &plan.create_volumes {
            tracing::info!("plan: create volume {v}");
        }
        if !found.to_pull.is_empty() {
            tracing::info!("plan: pull {}", found.to_pull.join(", "));
        }
        let mut problems = found.problems;
        let (trouble, path) = &self.secrets;
        if let Some(trouble) = trouble {
            // Secrets of the user's own services that are new (a service or a reference was
            // added) open no existing data but that of the services using them.
            let users_of: Option<Vec<String>> = match trouble {
                Trouble::Incomplete(missing)
                    if missing.iter().all(|m| matches!(m, SecretName::User(_))) =>
                {
                    Some(
                        ctx.config
                            .services()
                            .iter()
                            .filter(|s| {
                                s.env
                                    .values()
                                    .any(|v| v.secrets().iter().any(|x| missing.contains(x)))
                            })
                            .flat_map(|s| s.mounts.iter())
                            .filter_map(|m| match &m.source {
                                crate::config::MountSource::Volume(v) => Some(v.clone()),
                                _ => None,
                            })
                            .collect(),
                    )
                }
                _ => None,
            };
            let volumes: Vec<&str> = seen
                .observed
                .volumes
                .iter()
                .filter(|v| v.project.as_deref() == Some(ctx.config.name.as_str()))
                .filter(|v| users_of.as_ref().is_none_or(|u| u.contains(&v.name)))
                .map(|v| v.name.as_str())
                .collect();
            tracing::info!(
                "secrets file {} {trouble}; data volumes: {volumes:?}",
                path.display()
            );
            problems.extend(preflight::check_secrets(trouble, path, &volumes));
        }
        self.healthy_ids = seen
            .observed
            .containers
            .iter()
            .filter(|c| c.healthy)
            .map(|c| c.id.clone())
            .collect();
        self.to_pull = found.to_pull;
        self.looked = Some((seen, plan));
        Ok(Checked {
            problems,
            milestones: self.services.iter().map(|s| s.name.clone()).collect(),
        })
    }

    async fn fetch(&mut self, ctx: &Context<'_>) -> anyhow::Result<()> {
        if self.to_pull.is_empty() {
            return Ok(());
        }
        preflight::pull(&self.engine, &self.to_pull, ctx.reporter.as_ref()).await?;
        // Pulled images have new IDs; the containers are as they were.
        let (seen, _) = self.looked.take().expect("fetch runs after check");
        let seen = observe::observe(&self.engine, &self.specs, Some(seen.observed)).await?;
        let plan = self.plan(ctx.config, ctx.options.only.is_empty(), &seen);
        self.looked = Some((seen, plan));
        Ok(())
    }

    async fn apply(&mut self, ctx: &Context<'_>, ready: &Arc<Ready>) -> anyhow::Result<Part> {
        let (_, plan) = self.looked.as_ref().expect("apply runs after check");
        // Kept services whose containers Docker already reports healthy.
        let already_healthy: BTreeSet<String> = plan
            .containers
            .iter()
            .filter_map(|a| match a {
                ContainerAction::Keep { service, id } if self.healthy_ids.contains(id) => {
                    Some(service.clone())
                }
                _ => None,
            })
            .collect();
        let owner_labels: Vec<(String, String)> =
            ctx.options.owner.iter().flat_map(|o| o.labels()).collect();
        let work = apply::Work {
            services: &self.services,
            specs: &self.specs,
            plan,
            already_healthy: &already_healthy,
            timeout: ctx.options.timeout,
            owner_labels: &owner_labels,
        };
        let mut applied = apply::apply(&ctx.reporter, &self.engine, ctx.config, work, ready).await;
        if let Err(e) = self.refresh_gateway(ctx, plan, &applied.healthy).await {
            applied.healthy.remove("gateway");
            applied.failure.get_or_insert(e);
        }
        let details = details(plan);
        let containers = match self.engine.project_containers(&ctx.config.name).await {
            Ok(c) => c,
            // Apply's own failure says more than the listing's.
            Err(e) => return Err(applied.failure.unwrap_or(e)),
        };
        Ok(Part {
            changed: !plan.is_noop(),
            units_changed: plan.containers.iter().filter(|a| !a.is_keep()).count(),
            rows: summary::rows(&self.services, &containers, &applied.healthy),
            details,
            failure: applied.failure,
        })
    }
}

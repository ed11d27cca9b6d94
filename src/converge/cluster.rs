//! The Kubernetes cluster as a converge [`Driver`], beside the Docker one: with
//! `cluster.provider: kind` it creates the KinD cluster from the rendered config (or starts its
//! stopped nodes, or leaves a matching one alone), wires the registry into its nodes, and
//! applies devenv's objects inside it — the Traefik ingress, the local CA and certificate, the
//! KEP-1755 registry ConfigMap, the CoreDNS zone — then checks from a pod that the names
//! resolve. With `provider: existing` it does the in-cluster part on a cluster it did not create,
//! and never creates, stops or deletes it.
//!
//! Order inside [`Driver::apply`]: certificate → nodes → API → objects → zone → ingress ready;
//! then, after the `registry` milestone, the registry wiring, and after the `gateway`
//! milestone, the lookup check (both need the Docker side). Everything before waits for
//! nothing of the infrastructure, so the two drivers run side by side.
//!
//! Also here, for `down` and `status`: [`down`] (stop the nodes; with purge, delete the cluster
//! devenv made) and [`status`].
//!
//! Not for: the kind CLI, the kube-rs calls or the objects themselves (`cluster`,
//! `render::cluster`), nor printing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use serde::Serialize;

use crate::cluster::kind::{self as kind_cli, Kind, Search};
use crate::cluster::kube::{Kube, LookupResult};
use crate::cluster::provision::{self, Release};
use crate::cluster::{context_info, crds, record, registry};
use crate::config::{ClusterProvider, Config, Protocol, RoutingMode};
use crate::docker::Engine;
use crate::docker::nodes::Node;
use crate::docker::observed::RunState;
use crate::error::Failure;
use crate::files;
use crate::output::events::{self, Outcome};
use crate::output::progress::{Reporter, Task};
use crate::preflight::{self, Bind, Problem};
use crate::render::cluster::{self as objects, Object, coredns, gateway, traefik};
use crate::render::{KIND_DIR, kind as kind_config};
use crate::state::RENDERED_DIR;
use crate::tls;

use super::{Checked, Context, Driver, Options, Part, Ready, Row};

/// The cluster's name in `--only`, the summary and the milestones board.
pub const UNIT: &str = "cluster";

/// What the cluster driver does about the nodes.
#[derive(Debug, Clone, PartialEq)]
enum Nodes {
    /// No cluster of that name: create it.
    Create,
    /// devenv's cluster, made from another config, and `--recreate`: delete and create it.
    Recreate,
    /// devenv's cluster with stopped nodes: start them.
    Start(Vec<Node>),
    /// devenv's cluster, running.
    Keep,
    /// `provider: existing`: nothing to do about nodes.
    Existing,
}

impl Nodes {
    fn verb(&self) -> &'static str {
        match self {
            Nodes::Create => "created",
            Nodes::Recreate => "recreated",
            Nodes::Start(_) => "started",
            Nodes::Keep | Nodes::Existing => "kept",
        }
    }
}

/// The cluster driver of converge, for one run.
pub struct Cluster {
    engine: Engine,
    state_dir: PathBuf,
    kubeconfig: PathBuf,
    /// The rendered KinD config and its path under `<state>/rendered`.
    kind_config: (PathBuf, String),
    recreate: bool,
    install_kind: bool,
    // Decided by check:
    nodes: Nodes,
    kind: Option<Kind>,
    provision: Option<Release>,
    /// How the recorded cluster differs from devenv.yaml (kept without `--recreate`).
    differs: Option<String>,
}

impl Cluster {
    /// The driver for `config`'s cluster. `kubeconfig` is where the context goes and is read
    /// from; `recreate` allows deleting and re-creating a cluster made from another config;
    /// `install_kind` allows provisioning the pinned kind when none is usable.
    pub async fn connect(
        config: &Config,
        state_dir: &Path,
        kubeconfig: PathBuf,
        recreate: bool,
        install_kind: bool,
    ) -> anyhow::Result<Cluster> {
        let engine = Engine::connect().await?;
        let path = state_dir
            .join(RENDERED_DIR)
            .join(KIND_DIR)
            .join(kind_config::CLUSTER_FILE);
        let text = kind_config::render_cluster(config)?;
        Ok(Cluster {
            engine,
            state_dir: state_dir.to_path_buf(),
            kubeconfig,
            kind_config: (path, text),
            recreate,
            install_kind,
            nodes: Nodes::Keep,
            kind: None,
            provision: None,
            differs: None,
        })
    }

    /// The host binds a new cluster needs: the design card's ports, and the applications'
    /// address on :80/:443 in split-ip mode.
    pub fn binds(config: &Config) -> Vec<Bind> {
        let c = &config.cluster;
        let listen = std::net::IpAddr::V4(c.listen_address);
        let mut binds = vec![
            bind("cluster.http_port", listen, c.http_port, Protocol::Tcp),
            bind("cluster.https_port", listen, c.https_port, Protocol::Tcp),
            bind("cluster.quic_port", listen, c.quic_port, Protocol::Udp),
        ];
        if config.routing.mode == RoutingMode::SplitIp {
            let apps = std::net::IpAddr::V4(config.dns.applications);
            binds.push(bind("dns.applications", apps, 80, Protocol::Tcp));
            binds.push(bind("dns.applications", apps, 443, Protocol::Tcp));
            for port in config.application_quic_ports() {
                binds.push(bind("dns.applications", apps, port, Protocol::Udp));
            }
        }
        binds
    }

    async fn find_kind(&mut self, problems: &mut Vec<Problem>) -> anyhow::Result<()> {
        match Kind::find(&Search::from_env()).await {
            Ok(kind) => self.kind = Some(kind.on_engine(&self.engine.endpoint)),
            Err(unusable) if unusable.provisioning_helps() && self.install_kind => {
                match provision::pinned() {
                    Ok(release) => self.provision = Some(release),
                    Err(e) => problems.push(problem_of(&e)),
                }
            }
            Err(unusable) => {
                let helps = unusable.provisioning_helps();
                let failure = unusable.into_failure();
                let hint = if helps {
                    format!(
                        "{}: `devenv up --install-kind` (or {}=1)",
                        failure.hint.clone().unwrap_or_default(),
                        crate::env::INSTALL_KIND
                    )
                } else {
                    failure.hint.clone().unwrap_or_default()
                };
                problems.push(Problem {
                    message: failure.message,
                    hint,
                });
            }
        }
        Ok(())
    }

    /// Apply's work: the certificate and the nodes first; then, side by side, the registry
    /// wiring (Docker, after the `registry` milestone) and the work inside the cluster (the
    /// API). Each fails on its first error; both errors are reported.
    async fn converge(
        &mut self,
        ctx: &Context<'_>,
        ready: &Arc<Ready>,
        task: &dyn Task,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let config = ctx.config;
        let reporter = ctx.reporter.as_ref();
        let bundle = tls::ensure(&self.state_dir, config)?;
        if bundle.issued {
            task.step("issued the wildcard certificate");
        }
        let span = reporter.start(events::Kind::Cluster, "nodes");
        span.detail(self.nodes.verb());
        if matches!(self.nodes, Nodes::Existing | Nodes::Keep) {
            span.finish(Outcome::Skipped, None);
        } else {
            span.end(self.nodes_step(config, task).await)?;
        }
        report.context = match config.cluster.provider {
            ClusterProvider::Existing => config.cluster.context.clone().unwrap_or_default(),
            _ => kind_cli::context(&config.name),
        };
        if config.cluster.provider == ClusterProvider::Kind {
            report
                .notes
                .extend(self.context_entry(config, &report.context).await);
        }
        let this = &*self;
        let (wired, inside) = tokio::join!(
            step(
                reporter,
                "registry-wiring",
                this.registry_step(config, ready, task)
            ),
            this.inside(ctx, ready, task, &bundle, &report.context),
        );
        let mut errors = Vec::new();
        match wired {
            Ok(nodes) => report.registry_wired = nodes,
            Err(e) => errors.push(e),
        }
        match inside {
            Ok(done) => {
                report.nodes = done.nodes;
                report.zone_changed = done.zone_changed;
                report.ingress_ready = true;
                report.lookups = done.lookups;
                report.notes.extend(done.skipped);
            }
            Err(e) => errors.push(e),
        }
        if config.cluster.provider == ClusterProvider::Existing {
            report.notes.push(
                "an existing cluster's nodes are not devenv's: containerd's registry host files are not written there, and names are not checked from a pod".into(),
            );
            report.notes.push(format!(
                "the ingress holds no host ports on an existing cluster: reach it through Service {}/{} (`kubectl --context {} -n {} port-forward svc/{} 8080:80`)",
                objects::NAMESPACE,
                traefik::NAME,
                report.context,
                objects::NAMESPACE,
                traefik::NAME
            ));
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => {
                let second = format!("{:#}", errors.remove(1));
                Err(errors.remove(0).context(format!("also: {second}")))
            }
        }
    }

    /// Inside the cluster, through its API: nodes Ready, images, devenv's objects, the zone,
    /// the ingress Ready, and the lookup check.
    async fn inside(
        &self,
        ctx: &Context<'_>,
        ready: &Arc<Ready>,
        task: &dyn Task,
        bundle: &tls::Bundle,
        context: &str,
    ) -> anyhow::Result<Inside> {
        let config = ctx.config;
        let timeout = ctx.options.timeout;
        let reporter = ctx.reporter.as_ref();
        task.note("connecting to the API server");
        let kube = step(reporter, "api", async {
            let kube = Kube::open(&self.kubeconfig, context).await?;
            kube.wait_answering(self.api_wait(ctx.options), &|line| task.note(line))
                .await
                .map_err(|e| self.what_exists(config, e))?;
            anyhow::Ok(kube)
        })
        .await?;
        // When each kind node last started (the engine's clock, which its kubelet shares): what
        // a node said before a stop (devenv's `down`, a reboot) is not taken for the present.
        let started = match self.kind {
            Some(_) => self.engine.nodes_started(&config.name).await?,
            None => BTreeMap::new(),
        };
        task.note("waiting for the nodes to be Ready");
        let nodes = step(
            reporter,
            "wait-nodes",
            kube.wait_nodes_ready(ctx.options.wait(timeout), &started),
        )
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect();
        if let (Some(kind), Nodes::Create | Nodes::Recreate) = (&self.kind, &self.nodes) {
            // An ingress image the host already has is loaded instead of pulled by the node.
            let present = self.engine.image_ids(&[traefik::IMAGE.to_string()]).await?;
            if present.values().any(Option::is_some) {
                preload_image(kind, &config.name, traefik::IMAGE, task).await;
            }
        }
        let mut gateway = GatewayApi::default();
        if config.cluster.gateway_api {
            task.note("checking the Gateway API CRDs");
            let crds = self.gateway_api_step(ctx, &kube, task);
            gateway = step(reporter, "gateway-api", crds).await?;
        }
        task.note("applying devenv's objects");
        let skipped = step(reporter, "objects", async {
            let existing = config.cluster.provider == ClusterProvider::Existing;
            let mut skipped = Vec::new();
            for object in objects::all(config, bundle) {
                if object.needs_gateway_api() && !gateway.served {
                    continue;
                }
                // On a cluster devenv did not create, an object of the same name that devenv did
                // not make (an ingress-nginx's IngressClass `nginx`, a registry ConfigMap another
                // tool wrote) is left as it is.
                if existing && let Some(manager) = foreign(&kube, &object).await? {
                    if matches!(object, Object::Namespace(_)) {
                        let problem = foreign_namespace(context, &manager);
                        return Err(Failure::environment(problem.message, Some(problem.hint)).into());
                    }
                    skipped.push(format!(
                        "{} was not made by devenv (managed by {manager}): left as it is, not applied",
                        object.describe()
                    ));
                    continue;
                }
                apply(&kube, &object).await?;
            }
            anyhow::Ok(skipped)
        })
        .await?;
        task.note("installing the zone in CoreDNS");
        let (block, zone) = (coredns::server_block(config), coredns::zone(config));
        let zone = kube.ensure_zone(&block, coredns::ZONE_KEY, &zone, ctx.options.wait(timeout));
        let zone_changed = step(reporter, "zone", zone).await?;
        task.note("waiting for the ingress to be ready");
        let rollout = kube.wait_rollout(
            objects::NAMESPACE,
            traefik::NAME,
            ctx.options.wait(timeout),
            &started,
        );
        step(reporter, "wait-ingress", rollout).await?;
        let lookups = if config.cluster.provider == ClusterProvider::Kind {
            let lookup = self.lookup_step(config, ready, task, &kube, ctx.options.wait(timeout));
            step(reporter, "lookup", lookup).await?
        } else {
            Vec::new()
        };
        let mut notes = gateway.notes;
        notes.extend(skipped);
        Ok(Inside {
            nodes,
            zone_changed,
            lookups,
            skipped: notes,
        })
    }

    /// The Gateway API CRDs: another tool's are used as they are (or refused, exit 3, when
    /// Traefik cannot serve them); none or devenv's own older ones are installed from the
    /// verified bundle. Offline with nothing cached, a warning: Ingress is still served, and
    /// the next `up` that reaches the release installs them.
    async fn gateway_api_step(
        &self,
        ctx: &Context<'_>,
        kube: &Kube,
        task: &dyn Task,
    ) -> anyhow::Result<GatewayApi> {
        let pin = crds::Pin::pinned();
        let file = ctx.options.gateway_crds.clone();
        // (A file given was checked against the pin in `check`, before anything was made.)
        let live = kube.gateway_crds().await?;
        let mut out = GatewayApi::default();
        if pin.overridden {
            out.notes.push(format!(
                "{} is set: a Gateway API bundle is checked against it instead of the checksum devenv carries",
                crate::env::GATEWAY_CRDS_SHA256
            ));
        }
        match crds::decide(&live, &pin.version) {
            crds::Decision::Keep { .. } => out.served = true,
            crds::Decision::UseTheirs { version, manager } => {
                out.served = true;
                out.notes.push(format!(
                    "the cluster's Gateway API CRDs {version} (managed by {manager}) are used as they are: devenv installs none over them"
                ));
            }
            crds::Decision::Refuse {
                version,
                manager,
                missing,
            } if manager == "devenv" => {
                return Err(Failure::environment(
                    format!(
                        "the cluster has devenv's Gateway API CRDs {version}, newer than this devenv's {}, without {}: this devenv does not install its older release over them",
                        pin.version,
                        missing.join(", ")
                    ),
                    Some(
                        "run the newer devenv that installed them, or set cluster.gateway_api: false in devenv.yaml"
                            .to_string(),
                    ),
                )
                .into());
            }
            crds::Decision::Refuse {
                version,
                manager,
                missing,
            } => {
                return Err(Failure::environment(
                    format!(
                        "the cluster has Gateway API CRDs {version} (managed by {manager}) that devenv's Traefik cannot serve: it reads {}, which they do not serve; devenv does not replace another tool's CRDs",
                        missing.join(", ")
                    ),
                    Some(format!(
                        "upgrade them to {} or later with {manager}, the tool that installed them (the release: {}), or set cluster.gateway_api: false in devenv.yaml",
                        pin.version, pin.url
                    )),
                )
                .into());
            }
            crds::Decision::Install => {
                let data = provision::data_dir()?;
                let job = pin.clone();
                let obtained =
                    tokio::task::spawn_blocking(move || crds::obtain(&job, file.as_deref(), &data))
                        .await
                        .context("the Gateway API bundle's download stopped")??;
                match obtained {
                    crds::Obtained::Unreachable(why) => {
                        out.notes.push(format!(
                            "{why}; Gateway API is not served until the CRDs are installed (Ingress is): run `devenv up` again online, or `devenv up --gateway-crds FILE` with the release's {}",
                            crds::FILE
                        ));
                    }
                    crds::Obtained::Verified(bytes, source) => {
                        let bundle = crds::parse(&bytes).map_err(|e| {
                            Failure::environment(
                                format!("the Gateway API bundle from {source} cannot be used: {e:#}; nothing was applied"),
                                Some("set cluster.gateway_api: false, or give the release's own bundle".to_string()),
                            )
                        })?;
                        let minor = kube.server_minor().await?;
                        if let Some(why) = crds::too_old(&bundle, minor) {
                            out.notes.push(format!(
                                "{why}: they are not installed and Gateway API is not served (Ingress is); a cluster of 1.{} or later serves it, or set cluster.gateway_api: false to leave it out",
                                crds::RULES_MINOR
                            ));
                            return Ok(out);
                        }
                        let wait = ctx.options.wait(ctx.options.timeout);
                        let note = kube
                            .install_gateway_crds(&bundle, &objects::labels(ctx.config), wait)
                            .await?;
                        task.step(&format!(
                            "installed the Gateway API CRDs {} from {source}",
                            bundle.version
                        ));
                        out.notes.extend(note);
                        out.served = true;
                    }
                }
            }
        }
        Ok(out)
    }

    /// devenv's entry (its registry and mirrors) in the kind context kind just wrote or kept;
    /// a note when it could not be written, as the cluster works without it.
    async fn context_entry(&self, config: &Config, context: &str) -> Option<String> {
        let (file, name, info) = (
            self.kubeconfig.clone(),
            context.to_string(),
            context_info::info(config),
        );
        let done =
            tokio::task::spawn_blocking(move || context_info::record(&file, &name, &info)).await;
        let file = self.kubeconfig.display();
        match done {
            Ok(Ok(context_info::Annotated::NoContext)) => Some(format!(
                "the kubeconfig {file} has no context `{context}`, so devenv's entry (its registry and mirrors) is not in it: `kind export kubeconfig --name {} --kubeconfig {file}` writes the context, and the next `up` the entry",
                config.name
            )),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!(
                "devenv's entry (its registry and mirrors) was not written into context `{context}` of {file}: {e:#}"
            )),
            Err(e) => Some(format!(
                "devenv's entry in the kubeconfig was not written: {e}"
            )),
        }
    }

    async fn nodes_step(&mut self, config: &Config, task: &dyn Task) -> anyhow::Result<()> {
        let name = &config.name;
        match &self.nodes {
            Nodes::Existing | Nodes::Keep => return Ok(()),
            Nodes::Start(nodes) => {
                task.note("starting the nodes");
                self.engine.start_nodes(nodes).await?;
                return Ok(());
            }
            Nodes::Recreate => {
                task.note("deleting the cluster made from the old config");
                self.kind()?.delete(name, Some(&self.kubeconfig)).await?;
                record::remove(&self.state_dir)?;
            }
            Nodes::Create => {}
        }
        let (path, text) = &self.kind_config;
        files::write_atomic(path, text.as_bytes(), 0o644)?;
        let kind = self.kind()?.clone();
        let mut progress = |line: &str| task.note(line);
        kind.create_reporting(name, path, Some(&self.kubeconfig), None, &mut progress)
            .await
            .context(
                "kind could not create the cluster (kind removes what it made of a cluster it failed to create)",
            )?;
        record::save(
            &self.state_dir,
            &record::Record {
                name: name.clone(),
                kubeconfig: self.kubeconfig.clone(),
                kind_config: text.clone(),
            },
        )?;
        task.step("created the cluster");
        Ok(())
    }

    /// The host files of the registry and the mirrors in every node, once they run; the
    /// nodes wired.
    async fn registry_step(
        &self,
        config: &Config,
        ready: &Arc<Ready>,
        task: &dyn Task,
    ) -> anyhow::Result<Vec<String>> {
        let pulled: Vec<String> = config
            .services()
            .into_iter()
            .map(|s| s.name)
            .filter(|n| n == "registry" || crate::config::is_mirror(n))
            .collect();
        if config.cluster.provider != ClusterProvider::Kind || pulled.is_empty() {
            return Ok(Vec::new());
        }
        for name in &pulled {
            task.note(&format!("waiting for the {name}"));
            // A mirror that did not come up is wired all the same: its host file sends pulls
            // to the registry itself while the mirror does not answer.
            if ready.declared(name) && !ready.wait(name).await && !crate::config::is_mirror(name) {
                anyhow::bail!("the {name} did not come up, so it was not wired into the nodes");
            }
        }
        let wiring = registry::wire(&self.engine, config, &config.name).await?;
        Ok(wiring.nodes.into_iter().map(|n| n.node).collect())
    }

    /// From a pod, resolve an application name and (with a gateway) an infrastructure name.
    async fn lookup_step(
        &self,
        config: &Config,
        ready: &Arc<Ready>,
        task: &dyn Task,
        kube: &Kube,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Lookup>> {
        let services = config.services();
        let mut names = vec![config.fqdn(LOOKUP_APPLICATION)];
        if services.iter().any(|s| s.name == "gateway") {
            task.note("waiting for the gateway");
            if ready.declared("gateway") && !ready.wait("gateway").await {
                anyhow::bail!("the gateway did not come up: pods cannot reach the infrastructure");
            }
            let routed = services
                .iter()
                .filter(|s| s.name != "gateway")
                .flat_map(|s| s.routes.iter().map(|r| r.hostname.clone()))
                .next();
            names.extend(routed);
            // And the first name of each service of the user's own: what their pods will ask.
            names.extend(
                services
                    .iter()
                    .filter(|s| s.is_own())
                    .filter_map(|s| s.routes.first().map(|r| r.hostname.clone()))
                    .filter(|n| !names.contains(n))
                    .collect::<Vec<_>>(),
            );
        }
        task.note("resolving names from a pod");
        let fqdns: Vec<String> = names.iter().map(|n| format!("{n}.")).collect();
        let results = kube
            .lookup(traefik::IMAGE, &fqdns, &objects::labels(config), timeout)
            .await?;
        let failed: Vec<&LookupResult> = results.iter().filter(|r| !r.resolved()).collect();
        if !failed.is_empty() {
            let lines: Vec<String> = failed
                .iter()
                .map(|r| format!("{}: {}", r.name, r.output.join(" / ")))
                .collect();
            return Err(
                Failure::check_failed(format!("pods cannot resolve {}", lines.join("; "))).into(),
            );
        }
        Ok(results.iter().map(Lookup::from).collect())
    }

    fn kind(&self) -> anyhow::Result<&Kind> {
        self.kind
            .as_ref()
            .context("kind was not found (check runs before apply)")
    }

    /// Why the `provider: existing` cluster cannot be used, if it cannot: the kubeconfig cannot
    /// be read, lacks devenv.yaml's `cluster.context`, or that context's API server does not
    /// answer (waited for as [`Cluster::api_wait`] says) or refuses its credentials.
    async fn existing_unusable(&self, config: &Config, options: &Options) -> Option<Problem> {
        let context = config.cluster.context.as_deref().unwrap_or_default();
        let file = self.kubeconfig.display();
        let elsewhere = format!(
            "pass `--kubeconfig PATH` (or set {}) naming the kubeconfig that has context `{context}`",
            crate::env::KUBECONFIG_FILE
        );
        match crate::cluster::kube::contexts(&self.kubeconfig) {
            Err(e) => {
                return Some(Problem {
                    message: format!(
                        "cannot read the kubeconfig {file}, where `cluster.provider: existing` looks for context `{context}`: {e:#}"
                    ),
                    hint: elsewhere,
                });
            }
            Ok(names) if !names.iter().any(|n| n == context) => {
                let has = if names.is_empty() {
                    "it has none".to_string()
                } else {
                    format!("it has {}", names.join(", "))
                };
                return Some(Problem {
                    message: format!(
                        "the kubeconfig {file} has no context `{context}` (devenv.yaml's `cluster.context`); {has}"
                    ),
                    hint: format!(
                        "set `cluster.context` in devenv.yaml to the context of the cluster devenv should use, or {elsewhere}"
                    ),
                });
            }
            Ok(_) => {}
        }
        let kube = match Kube::open(&self.kubeconfig, context).await {
            Ok(kube) => kube,
            Err(e) => return Some(problem_of(&e)),
        };
        let note = |line: &str| tracing::info!("{line}");
        if let Err(e) = kube.wait_answering(self.api_wait(options), &note).await {
            return Some(problem_of(&e));
        }
        match kube.foreign_namespace(objects::NAMESPACE).await {
            Ok(None) => None,
            Ok(Some(manager)) => Some(foreign_namespace(context, &manager)),
            Err(e) => Some(problem_of(&e)),
        }
    }

    /// How long the API server is waited for. A kind cluster's API server needs 10 to 40 s
    /// after its nodes start (and after a reboot Docker starts them itself), so it gets the
    /// whole `--timeout`; another tool's cluster that does not answer is more likely down than
    /// starting, so that wait is short.
    fn api_wait(&self, options: &Options) -> Duration {
        match self.nodes {
            Nodes::Existing => options.wait(options.timeout.min(EXISTING_API_WAIT)),
            Nodes::Create | Nodes::Recreate | Nodes::Start(_) | Nodes::Keep => {
                options.wait(options.timeout)
            }
        }
    }

    /// `err`, with what exists of the cluster and where to look. Never `--purge`: a cluster
    /// that does not answer yet is most often one that is still starting, and purging it would
    /// delete the user's workloads.
    fn what_exists(&self, config: &Config, err: anyhow::Error) -> anyhow::Error {
        let silent = crate::error::failure(&err)
            .is_some_and(|f| f.message.contains(") did not answer within "));
        if config.cluster.provider != ClusterProvider::Kind || !silent {
            return err;
        }
        let name = &config.name;
        err.context(format!(
            "the kind cluster `{name}` exists (its node containers are named {name}-*) and its API server does not answer; \
             `docker logs {name}-control-plane` shows how the node is starting, and `devenv up` again waits for it"
        ))
    }
}

/// The longest wait for the API server of a cluster devenv did not create (`provider:
/// existing`).
const EXISTING_API_WAIT: Duration = Duration::from_secs(30);

/// One step of the cluster's apply, recorded as a span from start to finish.
async fn step<T>(
    reporter: &dyn Reporter,
    name: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let span = reporter.start(events::Kind::Cluster, name);
    span.end(work.await)
}

/// Copy `image` from the host's Docker into the nodes of cluster `name`, to spare the nodes a
/// pull; returns whether it did. A failed load is only a note: the node pulls the image instead.
/// (`kind load docker-image` fails for a multi-platform image under Docker's containerd image
/// store, the default of Docker Desktop and of new Docker 29 installs: kind#3795.)
async fn preload_image(kind: &Kind, name: &str, image: &str, task: &dyn Task) -> bool {
    task.note(&format!("loading {image} into the nodes"));
    match kind.load_image(name, image, &[]).await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!("{err:#}; the nodes pull {image} instead");
            task.note(&format!("could not load {image}; the nodes pull it"));
            false
        }
    }
}

/// The application name the lookup check resolves (any name under the domain that is not an
/// infrastructure name goes to the ingress).
const LOOKUP_APPLICATION: &str = "devenv-lookup-check";

fn bind(key: &str, addr: std::net::IpAddr, port: u16, protocol: Protocol) -> Bind {
    Bind {
        key: key.to_string(),
        addr,
        port,
        protocol,
    }
}

fn problem_of(e: &anyhow::Error) -> Problem {
    match crate::error::failure(e) {
        Some(f) => Problem {
            message: f.message.clone(),
            hint: f.hint.clone().unwrap_or_default(),
        },
        None => Problem {
            message: format!("{e:#}"),
            hint: String::new(),
        },
    }
}

/// Apply one of devenv's objects, server-side.
async fn apply(kube: &Kube, object: &Object) -> anyhow::Result<()> {
    match object {
        Object::Namespace(o) => kube.apply(o).await.map(drop),
        Object::ServiceAccount(o) => kube.apply(o).await.map(drop),
        Object::ClusterRole(o) => kube.apply(o).await.map(drop),
        Object::ClusterRoleBinding(o) => kube.apply(o).await.map(drop),
        Object::IngressClass(o) => kube.apply(o).await.map(drop),
        Object::ConfigMap(o) => kube.apply(o).await.map(drop),
        Object::Secret(o) => kube.apply(o).await.map(drop),
        Object::Service(o) => kube.apply(o.as_ref()).await.map(drop),
        Object::Deployment(o) => kube.apply(o.as_ref()).await.map(drop),
        Object::GatewayClass(o) => kube.apply(o).await.map(drop),
        Object::Gateway(o) => kube.apply(o.as_ref()).await.map(drop),
    }
}

/// A `devenv` namespace on an existing cluster that devenv did not make.
fn foreign_namespace(context: &str, manager: &str) -> Problem {
    Problem {
        message: format!(
            "the namespace `{}` of context `{context}` was not made by devenv (managed by {manager}), and devenv puts its ingress there",
            objects::NAMESPACE
        ),
        hint: "devenv never changes what it did not make: use another cluster, or remove that namespace yourself if it is unused".into(),
    }
}

/// Who manages the live object of `object`'s name when devenv did not make it
/// ([`Kube::foreign`]).
async fn foreign(kube: &Kube, object: &Object) -> anyhow::Result<Option<String>> {
    match object {
        Object::Namespace(o) => kube.foreign(o).await,
        Object::ServiceAccount(o) => kube.foreign(o).await,
        Object::ClusterRole(o) => kube.foreign(o).await,
        Object::ClusterRoleBinding(o) => kube.foreign(o).await,
        Object::IngressClass(o) => kube.foreign(o).await,
        Object::ConfigMap(o) => kube.foreign(o).await,
        Object::Secret(o) => kube.foreign(o).await,
        Object::Service(o) => kube.foreign(o.as_ref()).await,
        Object::Deployment(o) => kube.foreign(o.as_ref()).await,
        Object::GatewayClass(o) => kube.foreign(o).await,
        Object::Gateway(o) => kube.foreign(o.as_ref()).await,
    }
}

/// What the Gateway API step found.
#[derive(Default)]
struct GatewayApi {
    /// The cluster serves the kinds the GatewayClass and Gateway need.
    served: bool,
    notes: Vec<String>,
}

/// What the work inside the cluster found.
struct Inside {
    nodes: Vec<String>,
    zone_changed: bool,
    lookups: Vec<Lookup>,
    /// Objects left alone because devenv did not make them (an existing cluster).
    skipped: Vec<String>,
}

/// What one name resolved to from a pod.
#[derive(Debug, Clone, Serialize)]
struct Lookup {
    name: String,
    addresses: Vec<String>,
}

impl From<&LookupResult> for Lookup {
    fn from(r: &LookupResult) -> Lookup {
        Lookup {
            name: r.name.clone(),
            addresses: r.addresses.iter().map(ToString::to_string).collect(),
        }
    }
}

/// What the cluster driver did, for the summary's JSON.
#[derive(Debug, Default, Serialize)]
struct Report {
    provider: String,
    name: String,
    context: String,
    kubeconfig: PathBuf,
    action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    differs: Option<String>,
    nodes: Vec<String>,
    ingress_ready: bool,
    zone_changed: bool,
    registry_wired: Vec<String>,
    lookups: Vec<Lookup>,
    notes: Vec<String>,
}

#[async_trait]
impl Driver for Cluster {
    async fn check(&mut self, ctx: &Context<'_>) -> anyhow::Result<Checked> {
        let config = ctx.config;
        let mut problems = Vec::new();
        if config.cluster.gateway_api
            && let Some(file) = ctx.options.gateway_crds.clone()
        {
            let pin = crds::Pin::pinned();
            tokio::task::spawn_blocking(move || crds::check_file(&pin, &file))
                .await
                .context("checking the Gateway API bundle stopped")??;
        }
        if config.cluster.provider == ClusterProvider::Existing {
            // Before anything changes: the context is in the kubeconfig, its credentials work
            // and its API server answers. kind is never looked for.
            self.nodes = Nodes::Existing;
            if let Some(problem) = self.existing_unusable(config, ctx.options).await {
                problems.push(problem);
            }
            return Ok(Checked {
                problems,
                milestones: vec![UNIT.to_string()],
            });
        }
        let nodes = self.engine.kind_nodes(&config.name).await?;
        let recorded = record::load(&self.state_dir)?;
        self.nodes = match (nodes.is_empty(), &recorded) {
            (true, _) => Nodes::Create,
            (false, None) => {
                problems.push(Problem {
                    message: format!(
                        "a kind cluster named `{}` exists that devenv did not create (no {} in {})",
                        config.name,
                        record::FILE,
                        self.state_dir.display()
                    ),
                    hint: format!(
                        "devenv never touches it: give this environment another `name:` in devenv.yaml, delete that cluster yourself (`kind delete cluster --name {}`), or use it with `cluster.provider: existing`",
                        config.name
                    ),
                });
                Nodes::Keep
            }
            (false, Some(r)) if r.kind_config != self.kind_config.1 => {
                let diff = files::line_diff(&r.kind_config, &self.kind_config.1);
                if self.recreate {
                    Nodes::Recreate
                } else {
                    self.differs = Some(diff);
                    stopped(&nodes).map_or(Nodes::Keep, Nodes::Start)
                }
            }
            (false, Some(_)) => stopped(&nodes).map_or(Nodes::Keep, Nodes::Start),
        };
        if matches!(self.nodes, Nodes::Create | Nodes::Recreate) {
            self.find_kind(&mut problems).await?;
        }
        if matches!(self.nodes, Nodes::Create | Nodes::Start(_)) {
            // A recreated cluster frees the ports its old nodes hold.
            let binds = Self::binds(config);
            let publisher = preflight::Publisher {
                rootless: self.engine.rootless().await?,
                unprivileged_port_start: preflight::unprivileged_port_start(),
            };
            problems.extend(preflight::check_binds(&binds, publisher));
        }
        Ok(Checked {
            problems,
            milestones: vec![UNIT.to_string()],
        })
    }

    async fn fetch(&mut self, ctx: &Context<'_>) -> anyhow::Result<()> {
        let Some(release) = self.provision.take() else {
            return Ok(());
        };
        let dir = provision::default_dir()?;
        let span = ctx.reporter.start(events::Kind::Cluster, "install-kind");
        let task = ctx.reporter.task("kind");
        task.note(&format!("installing kind {}", release.version));
        let installed = async {
            let installed =
                tokio::task::spawn_blocking(move || provision::provision(&release, &dir))
                    .await
                    .context("installing kind")??;
            Kind::at(&installed).await.map(|kind| (installed, kind))
        };
        let (installed, kind) = span.end(installed.await)?;
        self.kind = Some(kind.on_engine(&self.engine.endpoint));
        task.finish("installed", &installed.display().to_string());
        Ok(())
    }

    async fn apply(&mut self, ctx: &Context<'_>, ready: &Arc<Ready>) -> anyhow::Result<Part> {
        let config = ctx.config;
        let promise = ready.promise(UNIT);
        let span = ctx.reporter.start(events::Kind::Cluster, UNIT);
        span.detail(self.nodes.verb());
        let task = ctx.reporter.task(UNIT);
        let mut report = Report {
            provider: match config.cluster.provider {
                ClusterProvider::Kind => "kind",
                ClusterProvider::Existing => "existing",
                ClusterProvider::None => "none",
            }
            .into(),
            name: config.name.clone(),
            kubeconfig: self.kubeconfig.clone(),
            action: self.nodes.verb().into(),
            differs: self.differs.clone(),
            ..Report::default()
        };
        if let Some(diff) = &self.differs {
            task.step("differs from devenv.yaml (kept; `devenv up --recreate` rebuilds it)");
            report.notes.push(format!(
                "the cluster was created from another KinD config; `devenv up --recreate` rebuilds it:\n{diff}"
            ));
        }
        let result = self.converge(ctx, ready, task.as_ref(), &mut report).await;
        match &result {
            Ok(()) => span.finish(Outcome::Ok, None),
            Err(e) => span.finish(Outcome::Failed, Some(format!("{e:#}"))),
        }
        let changed = !matches!(self.nodes, Nodes::Keep | Nodes::Existing) || report.zone_changed;
        promise.keep(result.is_ok());
        match &result {
            Ok(()) => task.finish(
                "ready",
                &format!("{} ({} nodes)", report.context, report.nodes.len()),
            ),
            Err(_) => task.finish("failed", ""),
        }
        let row = Row {
            service: UNIT.into(),
            url: ingress_url(config),
            ports: ingress_ports(config),
            state: if result.is_ok() { "running" } else { "failed" }.into(),
            health: if result.is_ok() {
                "healthy"
            } else {
                "unhealthy"
            }
            .into(),
        };
        let mut details = serde_json::Map::new();
        details.insert(UNIT.into(), serde_json::to_value(&report)?);
        Ok(Part {
            changed,
            units_changed: usize::from(changed),
            rows: vec![row],
            details,
            failure: result.err(),
        })
    }
}

/// The stopped nodes, if any node is not running.
fn stopped(nodes: &[Node]) -> Option<Vec<Node>> {
    let down: Vec<Node> = nodes
        .iter()
        .filter(|n| n.state != RunState::Running)
        .cloned()
        .collect();
    (!down.is_empty()).then_some(down)
}

/// Where applications are reached: the clean URL in split-ip mode, the design card's port
/// otherwise; `None` on an existing cluster, whose ingress has no host port devenv maps.
pub fn ingress_url(config: &Config) -> Option<String> {
    match (config.cluster.provider, config.routing.mode) {
        (ClusterProvider::Existing, _) => None,
        (_, RoutingMode::SplitIp) => Some(format!("http://*.{}", config.domain)),
        (_, RoutingMode::Ports) => Some(format!(
            "http://*.{}:{}",
            config.domain, config.cluster.http_port
        )),
    }
}

/// The host ports the cluster's ingress is published on (none on an existing cluster).
pub fn ingress_ports(config: &Config) -> Vec<String> {
    let c = &config.cluster;
    if c.provider == ClusterProvider::Existing {
        return Vec::new();
    }
    let mut ports = vec![
        format!("{}:{}/tcp", c.listen_address, c.http_port),
        format!("{}:{}/tcp", c.listen_address, c.https_port),
        format!("{}:{}/udp", c.listen_address, c.quic_port),
    ];
    if config.routing.mode == RoutingMode::SplitIp {
        let apps = config.dns.applications;
        ports.push(format!("{apps}:80/tcp"));
        ports.push(format!("{apps}:443/tcp"));
        for port in config.application_quic_ports() {
            ports.push(format!("{apps}:{port}/udp"));
        }
    }
    ports
}

/// What [`down`] did to the cluster.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterTeardown {
    /// Node containers stopped (`down`).
    pub nodes_stopped: Vec<String>,
    /// The cluster deleted (`down --purge`).
    pub deleted: Option<String>,
    /// Why the cluster was left alone, when it was.
    pub left_alone: Option<String>,
}

/// `down` for the cluster: stop devenv's cluster's nodes (its workloads come back with the
/// next `up`); with `purge`, delete it, its record and its certificates. A cluster devenv did
/// not create, and any `provider: existing` cluster, is never touched (with `purge`, only
/// devenv's own certificates go, and the message says how to remove its objects by hand).
pub async fn down(
    engine: &Engine,
    config: &Config,
    state_dir: &Path,
    purge: bool,
) -> anyhow::Result<ClusterTeardown> {
    let mut out = ClusterTeardown::default();
    match config.cluster.provider {
        ClusterProvider::None => return Ok(out),
        ClusterProvider::Existing => {
            out.left_alone = Some(if purge {
                // The CA and certificate are devenv's own files; the cluster and what devenv
                // applied to it are left as they are.
                tls::remove(state_dir)?;
                let gateway = if config.cluster.gateway_api {
                    " -f kind/manifests/gateway.yaml"
                } else {
                    ""
                };
                format!(
                    "an existing cluster is never stopped or deleted, and devenv's objects stay in it (`kubectl --context {} delete -f kind/manifests/ingress.yaml -f kind/manifests/local-registry-hosting.yaml{gateway}` removes them; the Gateway API CRDs devenv installed stay, as other tools' routes may use them)",
                    config.cluster.context.as_deref().unwrap_or_default()
                )
            } else {
                "an existing cluster is never stopped or deleted".into()
            });
            return Ok(out);
        }
        ClusterProvider::Kind => {}
    }
    let nodes = engine.kind_nodes(&config.name).await?;
    let Some(recorded) = record::load(state_dir)? else {
        if !nodes.is_empty() {
            out.left_alone = Some(format!(
                "the kind cluster `{}` was not created by devenv here",
                config.name
            ));
        }
        return Ok(out);
    };
    if purge {
        if !nodes.is_empty() {
            let kind = Kind::find_or_fail().await?.on_engine(&engine.endpoint);
            kind.delete(&recorded.name, Some(&recorded.kubeconfig))
                .await?;
            out.deleted = Some(recorded.name.clone());
        }
        record::remove(state_dir)?;
        tls::remove(state_dir)?;
        return Ok(out);
    }
    let running: Vec<Node> = nodes
        .into_iter()
        .filter(|n| n.state == RunState::Running)
        .collect();
    engine.stop_nodes(&running).await?;
    out.nodes_stopped = running.into_iter().map(|n| n.name).collect();
    Ok(out)
}

/// `status` for the cluster: one row per link — the nodes, the ingress, the registry wiring,
/// the names for pods — each `running`/`healthy` when it holds.
pub async fn status(engine: &Engine, config: &Config, kubeconfig: &Path) -> Vec<Row> {
    let row = |what: &str, state: &str, ok: bool, url: Option<String>| Row {
        service: what.to_string(),
        url,
        ports: Vec::new(),
        state: state.to_string(),
        health: if ok { "healthy" } else { "unhealthy" }.to_string(),
    };
    let context = match config.cluster.provider {
        ClusterProvider::None => return Vec::new(),
        ClusterProvider::Existing => config.cluster.context.clone().unwrap_or_default(),
        ClusterProvider::Kind => kind_cli::context(&config.name),
    };
    if config.cluster.provider == ClusterProvider::Kind {
        match engine.kind_nodes(&config.name).await {
            Ok(nodes) if nodes.is_empty() => {
                return vec![Row {
                    service: UNIT.into(),
                    url: None,
                    ports: Vec::new(),
                    state: "missing".into(),
                    health: "-".into(),
                }];
            }
            Ok(nodes) if stopped(&nodes).is_some() => {
                return vec![row(UNIT, "stopped", false, None)];
            }
            Ok(_) => {}
            Err(e) => return vec![row(UNIT, &format!("unknown: {e:#}"), false, None)],
        }
    }
    let kube = match Kube::connect(kubeconfig, &context).await {
        Ok(k) => k,
        Err(e) => return vec![row(UNIT, &format!("unreachable: {e:#}"), false, None)],
    };
    let mut rows = Vec::new();
    match kube.nodes().await {
        Ok(nodes) => {
            let ready = nodes.iter().filter(|n| n.ready).count();
            rows.push(Row {
                ports: ingress_ports(config),
                ..row(
                    UNIT,
                    "running",
                    ready == nodes.len() && ready > 0,
                    Some(format!("{context}: {ready}/{} nodes Ready", nodes.len())),
                )
            });
        }
        Err(e) => rows.push(row(UNIT, &format!("unknown: {e:#}"), false, None)),
    }
    match kube
        .deployment_replicas(objects::NAMESPACE, traefik::NAME)
        .await
    {
        Ok(Some(r)) => rows.push(row(
            "ingress",
            "running",
            r.all_ready(),
            ingress_url(config),
        )),
        Ok(None) => rows.push(row("ingress", "missing", false, None)),
        Err(e) => rows.push(row("ingress", &format!("unknown: {e:#}"), false, None)),
    }
    if config.cluster.gateway_api {
        rows.push(match kube.gateway_state().await {
            Ok(state) => {
                let (what, ok) = gateway_state(&state);
                row(
                    GATEWAY_ROW,
                    &what,
                    ok,
                    ok.then(|| format!("Gateway {}/{}", objects::NAMESPACE, gateway::GATEWAY)),
                )
            }
            Err(e) => row(GATEWAY_ROW, &format!("unknown: {e:#}"), false, None),
        });
    }
    if config.cluster.provider == ClusterProvider::Kind
        && config
            .services()
            .iter()
            .any(|s| s.name == "registry" || crate::config::is_mirror(&s.name))
    {
        match registry::missing(engine, config, &config.name).await {
            Ok(missing) if missing.is_empty() => {
                rows.push(row("registry-wiring", "running", true, None))
            }
            Ok(missing) => {
                let nodes: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
                rows.push(row(
                    "registry-wiring",
                    &format!("missing on {}", nodes.join(", ")),
                    false,
                    None,
                ));
            }
            Err(e) => rows.push(row(
                "registry-wiring",
                &format!("unknown: {e:#}"),
                false,
                None,
            )),
        }
    }
    let zone = coredns::zone(config);
    match kube
        .config_map_value(coredns::NAMESPACE, coredns::CONFIG_MAP, coredns::ZONE_KEY)
        .await
    {
        Ok(Some(live)) if live == zone => rows.push(row("cluster-dns", "running", true, None)),
        Ok(Some(_)) => rows.push(row("cluster-dns", "stale (run devenv up)", false, None)),
        Ok(None) => rows.push(row("cluster-dns", "missing", false, None)),
        Err(e) => rows.push(row("cluster-dns", &format!("unknown: {e:#}"), false, None)),
    }
    rows
}

/// The status row of devenv's Gateway.
pub const GATEWAY_ROW: &str = "gateway-api";

/// A [`GatewayState`] as a status row's state, and whether it is healthy.
pub fn gateway_state(state: &crate::cluster::kube::GatewayState) -> (String, bool) {
    use crate::cluster::kube::GatewayState::*;
    match state {
        Ready => ("running".into(), true),
        NoCrds => (
            "CRDs not installed (`devenv up` installs them on Kubernetes 1.25+; offline: --gateway-crds FILE)".into(),
            false,
        ),
        Missing => ("missing (run devenv up)".into(), false),
        NotReady(why) => (why.clone(), false),
    }
}

/// The kubeconfig and context of the environment's cluster, for `logs ingress`.
pub fn context(config: &Config) -> Option<String> {
    match config.cluster.provider {
        ClusterProvider::None => None,
        ClusterProvider::Existing => config.cluster.context.clone(),
        ClusterProvider::Kind => Some(kind_cli::context(&config.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind whose `load docker-image` fails as kind v0.33 does under Docker's containerd
    /// image store (kind#3795).
    #[cfg(unix)]
    #[tokio::test]
    async fn an_image_kind_cannot_load_is_pulled_by_the_nodes_not_an_error() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kind");
        std::fs::write(
            &path,
            "#!/bin/sh\n\
             case \"$1\" in\n\
             version) echo 'kind v0.33.0 go1.26.7 linux/amd64' ;;\n\
             load) echo 'ERROR: failed to load image: command \"docker exec --privileged -i macula-control-plane ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -\" failed with error: exit status 1' >&2\n\
               echo 'Command Output: ctr: content digest sha256:b1addbe72465a718643cff9e60a58e6df1841e29d6d7d60c9a85d8d72f08d1a7: not found' >&2; exit 1 ;;\n\
             *) exit 2 ;;\n\
             esac\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let kind = Kind::at(&path).await.unwrap();
        let silent = crate::output::progress::Silent;
        assert!(!preload_image(&kind, "macula", traefik::IMAGE, &silent).await);
    }

    #[test]
    fn a_new_cluster_checks_the_design_cards_ports_and_the_applications_address() {
        let config = Config::default();
        let keys: Vec<(String, String)> = Cluster::binds(&config)
            .iter()
            .map(|b| {
                (
                    b.key.clone(),
                    format!("{}:{}/{}", b.addr, b.port, b.protocol.as_str()),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("cluster.http_port", "127.0.0.1:8080/tcp"),
                ("cluster.https_port", "127.0.0.1:8443/tcp"),
                ("cluster.quic_port", "127.0.0.1:4433/udp"),
                ("dns.applications", "127.0.0.2:80/tcp"),
                ("dns.applications", "127.0.0.2:443/tcp"),
                ("dns.applications", "127.0.0.2:443/udp"),
                ("dns.applications", "127.0.0.2:4433/udp"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let mut ports = Config::default();
        ports.routing.mode = RoutingMode::Ports;
        assert_eq!(Cluster::binds(&ports).len(), 3);
    }

    #[test]
    fn the_ingress_url_follows_the_routing_mode() {
        let mut config = Config::default();
        assert_eq!(ingress_url(&config).unwrap(), "http://*.macula.local");
        assert_eq!(ingress_ports(&config).len(), 7);
        config.routing.mode = RoutingMode::Ports;
        assert_eq!(ingress_url(&config).unwrap(), "http://*.macula.local:8080");
        config.cluster.provider = ClusterProvider::Existing;
        assert_eq!(ingress_url(&config), None);
        assert!(ingress_ports(&config).is_empty());
    }
}

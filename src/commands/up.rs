//! `devenv up`: bring the infrastructure to what devenv.yaml describes, idempotently.
//!
//! A short script of steps — lock, render, observe, plan, preflight, apply, wait, summary —
//! over `render`, `docker`, `plan` and `preflight`. The cluster's steps join this list in a
//! later change; each step is one function here so they slot in between.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cli::UpArgs;
use crate::config::{Config, Service};
use crate::docker::images;
use crate::docker::spec::{self, ContainerSpec};
use crate::docker::{Engine, health, runtime};
use crate::error::Failure;
use crate::output::{Format, Printer};
use crate::plan::{self, ContainerAction, Desired, DesiredContainer, DesiredNetwork, Plan};
use crate::preflight::{self, Bind, Problem, PullPolicy};
use crate::render;
use crate::state::{self, RENDERED_DIR};

use super::Settings;
use super::status::{self, Row};

/// `up`'s settings, from its arguments.
struct Up {
    only: Vec<String>,
    timeout: Duration,
    pull: PullPolicy,
}

impl Up {
    fn from_arguments(args: UpArgs) -> Up {
        Up {
            only: args.only.into_iter().filter(|s| !s.is_empty()).collect(),
            timeout: Duration::from_secs(args.timeout),
            pull: args.pull.into(),
        }
    }
}

pub fn run(settings: &Settings, args: UpArgs) -> anyhow::Result<()> {
    let up = Up::from_arguments(args);
    let loaded = settings.load_config()?;
    let config = &loaded.config;
    let printer = &settings.printer;
    let reported = Cell::new(false);
    let result = (|| {
        let state_dir = state::dir(&config.name)?;
        let _lock = state::lock(&config.name, &state_dir, up.timeout, |m| printer.status(m))?;
        runtime()?.block_on(execute(printer, config, &up, &state_dir, &reported))
    })();
    // `--output json` promises one document on every path, also when up stopped before the
    // summary (the lock, preflight, a missing engine); the exit code stays the failure's.
    if let Err(e) = &result
        && printer.format == Format::Json
        && !reported.get()
    {
        printer.json(&serde_json::json!({
            "changed": false,
            "services": [],
            "error": format!("{e:#}"),
        }))?;
    }
    result
}

async fn execute(
    printer: &Printer,
    config: &Config,
    up: &Up,
    state_dir: &Path,
    reported: &Cell<bool>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let services = select(config, &up.only)?;
    let artifacts = render_step(config, state_dir)?;
    let secrets = state::Secrets::load_or_generate(state_dir)?;
    let engine = Engine::connect().await?;

    let rendered_root = state_dir.join(RENDERED_DIR);
    let secret = |name| secrets.get(name).to_string();
    let network = config.network_name();
    let subnet = config.network.subnet.to_string();
    let ctx = spec::Context {
        project: &config.name,
        network: &network,
        subnet: &subnet,
        rendered_root: &rendered_root,
        artifacts: &artifacts,
        secret: &secret,
    };
    let specs = spec::container_specs(&ctx, &services)?;

    let mut look = observe_and_plan(&engine, config, up, &services, &specs, None).await?;
    let pulled = preflight_step(printer, &engine, config, up, &services, &specs, &look).await?;
    let observed_ids: BTreeSet<String> = look
        .observed
        .containers
        .iter()
        .filter(|c| c.healthy)
        .map(|c| c.id.clone())
        .collect();
    if pulled {
        look =
            observe_and_plan(&engine, config, up, &services, &specs, Some(look.observed)).await?;
    }
    let plan = look.plan;

    let noop = plan.is_noop();
    let healthy: BTreeSet<String> = observed_healthy(&plan, &observed_ids);
    let work = Work {
        up,
        services: &services,
        specs: &specs,
        plan: &plan,
        already_healthy: &healthy,
    };
    let applied = apply_step(printer, &engine, config, work).await;

    let containers = match engine.project_containers(&config.name).await {
        Ok(c) => c,
        // Apply's own failure says more than the listing's.
        Err(e) => return Err(applied.failure.unwrap_or(e)),
    };
    let rows = status::rows(&services, &containers, &applied.healthy);
    reported.set(printer.format == Format::Json);
    summary_step(
        printer,
        &plan,
        noop,
        &rows,
        applied.failure,
        started.elapsed(),
    )
}

/// Services kept as they are whose containers Docker already reports healthy.
fn observed_healthy(plan: &Plan, healthy_ids: &BTreeSet<String>) -> BTreeSet<String> {
    plan.containers
        .iter()
        .filter_map(|a| match a {
            ContainerAction::Keep { service, id } if healthy_ids.contains(id) => {
                Some(service.clone())
            }
            _ => None,
        })
        .collect()
}

/// The services to bring up: all enabled ones, or those named by `--only` and what they need.
fn select(config: &Config, only: &[String]) -> anyhow::Result<Vec<Service>> {
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

/// Step: render every artifact into `<state>/rendered` (unchanged files are not touched, so
/// their hashes and mounts stay as they are).
fn render_step(config: &Config, state_dir: &Path) -> anyhow::Result<Vec<render::Artifact>> {
    let artifacts = render::render(config)?;
    crate::files::write_all(&state_dir.join(RENDERED_DIR), &artifacts)?;
    Ok(artifacts)
}

/// What the engine holds and what to do about it.
struct Look {
    plan: Plan,
    /// The local ID of each image the services use, `None` where it is not present.
    image_ids: BTreeMap<String, Option<String>>,
    observed: plan::Observed,
}

/// Step: look at the engine and compare. `previous` skips a second listing when only image
/// IDs changed (after a pull).
async fn observe_and_plan(
    engine: &Engine,
    config: &Config,
    up: &Up,
    services: &[Service],
    specs: &BTreeMap<String, ContainerSpec>,
    previous: Option<plan::Observed>,
) -> anyhow::Result<Look> {
    let wanted_images: Vec<String> = specs
        .values()
        .map(|s| s.image.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (observed, image_ids) = match previous {
        Some(o) => (o, images::image_ids(engine, &wanted_images).await?),
        None => tokio::try_join!(engine.observe(), images::image_ids(engine, &wanted_images))?,
    };
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
            if !networks.iter().any(|n| &n.name == extra) {
                networks.push(DesiredNetwork {
                    name: extra.clone(),
                    subnet: None,
                    shared: true,
                });
            }
        }
        volumes.extend(spec.volumes.iter().cloned());
        containers.push(DesiredContainer {
            service: s.name.clone(),
            container_name: s.container_name.clone(),
            spec_hash: spec.spec_hash.clone(),
            image_id: image_ids.get(&spec.image).cloned().flatten(),
            networks: spec.networks.clone(),
        });
    }
    let desired = Desired {
        networks,
        volumes: volumes.into_iter().collect(),
        containers,
        remove_unknown: up.only.is_empty(),
    };
    Ok(Look {
        plan: plan::plan(&config.name, &desired, &observed),
        image_ids,
        observed,
    })
}

/// Step: nothing is created unless every check passes. Conflicts from the plan, the subnet of
/// a network about to be created, host binds the new containers need (minus those devenv's
/// own containers, about to be replaced, hold), loopback addresses, images. Pulls what is
/// missing; returns whether anything was pulled.
async fn preflight_step(
    printer: &Printer,
    engine: &Engine,
    config: &Config,
    up: &Up,
    services: &[Service],
    specs: &BTreeMap<String, ContainerSpec>,
    look: &Look,
) -> anyhow::Result<bool> {
    let Look {
        plan,
        image_ids,
        observed,
    } = look;
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
    let changing: Vec<&Service> = services
        .iter()
        .filter(|s| plan.action(&s.name).is_some_and(|a| !a.is_keep()))
        .collect();
    let binds: Vec<Bind> = changing
        .iter()
        .flat_map(|s| Bind::of(s))
        .filter(|b| !freed.contains(&(b.addr, b.port, b.protocol)))
        .collect();
    let publisher = publisher(engine, &binds).await?;
    problems.extend(preflight::check_binds(&binds, publisher));

    let needed: BTreeSet<String> = changing
        .iter()
        .map(|s| specs[&s.name].image.clone())
        .collect();
    let needed: BTreeSet<String> = if up.pull == PullPolicy::Always {
        specs.values().map(|s| s.image.clone()).collect()
    } else {
        needed
    };
    let (to_pull, image_problems) = preflight::images_to_pull(&needed, image_ids, up.pull);
    problems.extend(image_problems);
    fail_on(problems)?;

    if to_pull.is_empty() {
        return Ok(false);
    }
    let quiet = quiet_printer(printer);
    images::pull(engine, &to_pull, &quiet).await.map_err(|e| {
        anyhow::Error::from(Failure::environment(
            format!("preflight failed: images could not be pulled:\n  {e:#}"),
            "check the image names (services.<svc>.image in devenv.yaml) and the registry's reachability, or load the images and use --pull never".to_string(),
        ))
    })?;
    Ok(true)
}

/// Who publishes the ports. The engine is asked only when a port is below the unprivileged
/// start, where its answer matters.
async fn publisher(engine: &Engine, binds: &[Bind]) -> anyhow::Result<preflight::Publisher> {
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

fn fail_on(problems: Vec<Problem>) -> anyhow::Result<()> {
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

/// A printer that says nothing with `--output json` (one document, no progress).
fn quiet_printer(printer: &Printer) -> Printer {
    let mut p = printer.clone();
    if p.format == Format::Json {
        p.quiet = true;
    }
    p
}

/// How apply reports progress: spinners on a terminal, plain lines elsewhere.
#[derive(Clone)]
enum Progress {
    Bars(MultiProgress),
    Lines(Printer),
}

impl Progress {
    fn new(printer: &Printer) -> Progress {
        if printer.progress_enabled() {
            Progress::Bars(MultiProgress::new())
        } else {
            Progress::Lines(quiet_printer(printer))
        }
    }

    fn service(&self, name: &str) -> Option<ProgressBar> {
        match self {
            Progress::Bars(m) => {
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.green} {prefix:.bold} {msg}")
                        .expect("a valid progress template"),
                );
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                Some(bar)
            }
            Progress::Lines(_) => None,
        }
    }

    /// A passing state, shown on a terminal only.
    fn note(&self, bar: Option<&ProgressBar>, text: &str) {
        if let Some(b) = bar {
            b.set_message(text.to_string());
        }
    }

    fn step(&self, bar: Option<&ProgressBar>, word: &str, text: &str) {
        match (self, bar) {
            (_, Some(b)) => b.set_message(format!("{word} {text}")),
            (Progress::Lines(p), None) => p.step(word, text),
            (Progress::Bars(m), None) => {
                let _ = m.println(format!("{word:>10} {text}"));
            }
        }
    }
}

/// What apply did.
struct Applied {
    /// The services whose healthcheck passed.
    healthy: BTreeSet<String>,
    /// Why the others are not up.
    failure: Option<anyhow::Error>,
}

/// What apply works from: the settings, the desired services and specs, the plan, and which
/// kept services Docker already reports healthy.
#[derive(Clone, Copy)]
struct Work<'a> {
    up: &'a Up,
    services: &'a [Service],
    specs: &'a BTreeMap<String, ContainerSpec>,
    plan: &'a Plan,
    already_healthy: &'a BTreeSet<String>,
}

/// Step: create networks and volumes, remove what goes, then bring each service up in
/// dependency order — independent services in parallel — and wait for its healthcheck.
async fn apply_step(
    printer: &Printer,
    engine: &Engine,
    config: &Config,
    work: Work<'_>,
) -> Applied {
    let plan = work.plan;
    let progress = Progress::new(printer);
    if let Err(e) = prepare(&progress, engine, config, plan).await {
        return Applied {
            healthy: BTreeSet::new(),
            failure: Some(e),
        };
    }
    bring_all_up(&progress, engine, work).await
}

/// Create networks and volumes, and stop and remove every container that goes.
async fn prepare(
    progress: &Progress,
    engine: &Engine,
    config: &Config,
    plan: &Plan,
) -> anyhow::Result<()> {
    for name in &plan.create_networks {
        let own = *name == config.network_name();
        let subnet = config.network.subnet.to_string();
        engine
            .create_network(&config.name, name, own.then_some(subnet.as_str()), !own)
            .await?;
        progress.step(None, "created", &format!("network {name}"));
    }
    for name in &plan.create_volumes {
        engine.create_volume(&config.name, name).await?;
        progress.step(None, "created", &format!("volume {name}"));
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
    let removals = removals.map(|(id, name, reason)| {
        let progress = progress.clone();
        async move {
            engine.stop_and_remove(id, name).await?;
            progress.step(None, "removed", &format!("{name} ({reason})"));
            anyhow::Ok(())
        }
    });
    for r in futures_util::future::join_all(removals).await {
        r?;
    }
    Ok(())
}

/// Bring each service up in dependency order, independent ones in parallel, and wait for its
/// healthcheck; a service whose dependency failed is skipped.
async fn bring_all_up(progress: &Progress, engine: &Engine, work: Work<'_>) -> Applied {
    let Work {
        up,
        services,
        specs,
        plan,
        already_healthy,
    } = work;
    let deadline = Instant::now() + up.timeout;
    let mut senders = BTreeMap::new();
    let mut receivers = BTreeMap::new();
    for s in services {
        let (tx, rx) = watch::channel(None::<bool>);
        senders.insert(s.name.clone(), tx);
        receivers.insert(s.name.clone(), rx);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for s in services {
        let Some(action) = plan.action(&s.name).cloned() else {
            continue;
        };
        let deps: Vec<(String, watch::Receiver<Option<bool>>)> = s
            .depends_on
            .iter()
            .filter_map(|d| Some((d.service.clone(), receivers.get(&d.service)?.clone())))
            .collect();
        let tx = senders.remove(&s.name).expect("one sender per service");
        let spec = Arc::new(specs[&s.name].clone());
        let engine = engine.clone();
        let progress = progress.clone();
        let timeout = up.timeout;
        let healthy = already_healthy.contains(&s.name);
        tasks.spawn(async move {
            let result = if healthy {
                Ok(())
            } else {
                bring_up(&engine, &progress, &spec, action, deps, deadline, timeout).await
            };
            let _ = tx.send(Some(result.is_ok()));
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
    Applied {
        healthy,
        failure: Some(anyhow::anyhow!(
            "{} of {} services are not up:\n{}",
            failures.len(),
            services.len(),
            text.join("\n")
        )),
    }
}

/// A service not started because one it depends on failed.
#[derive(Debug)]
struct Skipped(String);

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skipped {}

async fn bring_up(
    engine: &Engine,
    progress: &Progress,
    spec: &ContainerSpec,
    action: ContainerAction,
    deps: Vec<(String, watch::Receiver<Option<bool>>)>,
    deadline: Instant,
    timeout: Duration,
) -> anyhow::Result<()> {
    let name = spec.service.as_str();
    let bar = if action.is_keep() {
        None
    } else {
        progress.service(name)
    };
    let finish = |word: &str, text: &str| match &bar {
        Some(b) => b.finish_with_message(format!("{word} {text}")),
        None => progress.step(None, word, &format!("{name}{text}")),
    };
    for (dep, mut rx) in deps {
        progress.note(bar.as_ref(), &format!("waiting for {dep}"));
        let ok = rx.wait_for(Option::is_some).await.map(|v| *v == Some(true));
        if !matches!(ok, Ok(true)) {
            finish("skipped", &format!(" ({dep} did not come up)"));
            return Err(Skipped(format!(
                "service {name}: not started, {dep} did not come up"
            ))
            .into());
        }
    }
    let id = match &action {
        ContainerAction::Create { .. } | ContainerAction::Recreate { .. } => {
            progress.note(bar.as_ref(), "creating");
            let id = engine.create_container(spec).await?;
            engine.start(&id, &spec.container_name).await?;
            progress.step(bar.as_ref(), "created", name);
            id
        }
        ContainerAction::Start { id, .. } => {
            engine.start(id, &spec.container_name).await?;
            progress.step(bar.as_ref(), "started", name);
            id.clone()
        }
        ContainerAction::Keep { id, .. } => id.clone(),
        ContainerAction::Remove { .. } => unreachable!("removals are not per service"),
    };
    progress.note(bar.as_ref(), "waiting until healthy");
    match health::wait_healthy(engine, &id, name, &spec.healthcheck, deadline, timeout).await {
        Ok(()) => {
            finish("healthy", "");
            Ok(())
        }
        Err(e) => {
            finish("unhealthy", "");
            Err(e)
        }
    }
}

/// Step: say what happened — the table on stdout, or one JSON document, which is printed
/// also when apply failed (with the `error`; the exit code is the failure's).
fn summary_step(
    printer: &Printer,
    plan: &Plan,
    noop: bool,
    rows: &[Row],
    failure: Option<anyhow::Error>,
    elapsed: Duration,
) -> anyhow::Result<()> {
    if printer.format == Format::Json {
        printer.json(&serde_json::json!({
            "changed": !noop,
            "networks_created": plan.create_networks,
            "volumes_created": plan.create_volumes,
            "actions": plan.containers,
            "services": rows,
            "error": failure.as_ref().map(|e| format!("{e:#}")),
        }))?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if printer.format == Format::Json {
        return Ok(());
    }
    status::print_table(printer, rows)?;
    if noop {
        printer.status(format!(
            "nothing to do: {} services up to date ({} ms)",
            rows.len(),
            elapsed.as_millis()
        ));
    } else {
        let changed = plan.containers.iter().filter(|a| !a.is_keep()).count();
        printer.status(format!(
            "{changed} of {} services changed, all healthy ({:.1}s)",
            rows.len(),
            elapsed.as_secs_f64()
        ));
    }
    Ok(())
}

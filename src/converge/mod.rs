//! Converge: bring the platform to what devenv.yaml describes, idempotently. The library
//! operation behind `devenv up` (and, in reverse, `devenv down`: [`teardown()`]).
//!
//! # The pipeline
//!
//! ```text
//! render ─▶ for every driver, concurrently:  check ─▶ fetch ─▶ apply ─▶ summary
//!            (observe, plan, preflight)      join     join     join (+ milestones)
//! ```
//!
//! - [`render`]: every artifact into `<state>/rendered` (shared by all drivers).
//! - A [`Driver`] brings one part of the platform to its desired state in three phases, each a
//!   join point across drivers: [`Driver::check`] looks and plans and lists every problem
//!   without changing anything (if any driver has a problem, nothing is changed anywhere);
//!   [`Driver::fetch`] makes present what apply needs from elsewhere (images); and
//!   [`Driver::apply`] changes things and returns its [`Part`] of the summary.
//! - [`run`] drives any list of drivers through the phases; [`up`] renders, builds the list
//!   and summarises. Drivers run concurrently. Where one needs another's work (the cluster's registry wiring
//!   needs the registry container up), it waits for a named milestone on the shared [`Ready`]
//!   board; every milestone a run will reach is declared by [`Driver::check`] ([`Checked`]),
//!   so waiting for one nobody declared returns at once instead of hanging.
//!
//! Each phase (`render`, `connect`, `check`, `fetch`, `apply`), each service, pull and cluster
//! step is a span on the reporter ([`Reporter::start`]), recorded and, with `--output jsonl`,
//! streamed as start/finish events.
//!
//! Today's one driver is [`Infrastructure`], the services in Docker: its steps are
//! [`observe`], [`plan`], [`preflight`], [`apply`] and [`wait`], one file each; its milestones
//! are its service names (`registry`, `gateway`, ...), which its own services also wait on.
//! The KinD cluster joins as a second `Driver` (create or start the nodes, wire the registry
//! after the `registry` milestone, apply the Kubernetes objects, wait), added to the list in
//! [`up`], and its rows join the same summary.
//!
//! Not for: arguments or printing (the commands do that), the pure planning rules (`plan`),
//! the engine calls themselves (`docker`), nor rendering (`render`).

pub mod apply;
pub mod cluster;
pub mod deadline;
pub mod infrastructure;
pub mod observe;
pub mod owner;
pub mod plan;
pub mod preflight;
pub mod ready;
pub mod render;
pub mod summary;
pub mod teardown;
pub mod wait;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::config::Config;
use crate::output::events::{self, Kind};
use crate::output::progress::Reporter;
use crate::preflight::{Problem, PullPolicy};
use crate::state::{Owner, Secrets};

pub use cluster::Cluster;
pub use infrastructure::Infrastructure;
pub use ready::Ready;
pub use summary::Row;
pub use teardown::{Teardown, teardown};

/// What `up` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these services and what they depend on; empty: everything enabled.
    pub only: Vec<String>,
    /// How long services get to become healthy (and `up` waits for the lock).
    pub timeout: Duration,
    /// When images are pulled.
    pub pull: PullPolicy,
    /// The kubeconfig the cluster's context goes into and is read from.
    pub kubeconfig: PathBuf,
    /// Delete and re-create a cluster that was made from another KinD config.
    pub recreate: bool,
    /// Install the pinned kind into devenv's directory when no usable kind is found.
    pub install_kind: bool,
    /// The Gateway API CRD bundle from this file instead of the download (`--gateway-crds`).
    pub gateway_crds: Option<PathBuf>,
    /// Who this run acts for (labels what it makes); `None` leaves the owner labels off.
    pub owner: Option<Owner>,
    /// When the run's waits must have ended, so that a wait that fails says what it waited for
    /// before the run's own deadline stops everything; `None`: each wait gets `timeout`.
    pub waits_end: Option<tokio::time::Instant>,
}

impl Options {
    /// How long a wait that may take `at_most` gets now: no longer than the run has left for
    /// its waits, and at least a second (to ask once).
    pub fn wait(&self, at_most: Duration) -> Duration {
        let left = self.waits_end.map_or(at_most, |end| {
            end.saturating_duration_since(tokio::time::Instant::now())
        });
        at_most.min(left).max(Duration::from_secs(1))
    }
}

/// What every driver works from.
pub struct Context<'a> {
    pub config: &'a Config,
    pub options: &'a Options,
    /// Where progress goes (shared with the tasks a driver spawns).
    pub reporter: Arc<dyn Reporter>,
}

/// What [`Driver::check`] found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Everything that stops the run, each with what to do about it. Nothing is changed by
    /// any driver while there is one.
    pub problems: Vec<Problem>,
    /// The milestones [`Driver::apply`] will publish on [`Ready`] (reached or failed).
    pub milestones: Vec<String>,
}

/// One driver's share of the summary.
#[derive(Debug, Default)]
pub struct Part {
    /// Whether the driver changed anything.
    pub changed: bool,
    /// How many of its units (services, nodes) it changed.
    pub units_changed: usize,
    /// One row per unit, in the driver's order (the table; `services` in JSON).
    pub rows: Vec<Row>,
    /// What it planned and did, merged into the `--output json` document.
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Why some units are not up.
    pub failure: Option<anyhow::Error>,
}

/// One part of the platform that converge brings to its desired state. See the module docs
/// for the phases and how drivers wait for each other.
#[async_trait]
pub trait Driver: Send {
    /// Look at what exists, plan, and check that the plan can be carried out. Changes nothing.
    async fn check(&mut self, ctx: &Context<'_>) -> anyhow::Result<Checked>;

    /// Make present what apply needs from elsewhere (images). Runs only when no driver found
    /// a problem; a failure here is still a preflight failure (nothing was changed).
    async fn fetch(&mut self, ctx: &Context<'_>) -> anyhow::Result<()>;

    /// Carry out the plan: report through `ctx.reporter`, publish each declared milestone on
    /// `ready`, wait there for other drivers' milestones this one needs. Units that did not
    /// come up are a [`Part::failure`]; an `Err` means there is no part to report at all.
    async fn apply(&mut self, ctx: &Context<'_>, ready: &Arc<Ready>) -> anyhow::Result<Part>;
}

/// What converge did.
#[derive(Debug)]
pub struct Outcome {
    /// Each driver's part, in driver order.
    pub parts: Vec<Part>,
    /// From the start of [`up`].
    pub elapsed: Duration,
}

impl Outcome {
    /// Whether nothing was changed.
    pub fn unchanged(&self) -> bool {
        self.parts.iter().all(|p| !p.changed)
    }

    /// How many units were changed.
    pub fn units_changed(&self) -> usize {
        self.parts.iter().map(|p| p.units_changed).sum()
    }

    /// The details a driver reported under `key` (`cluster`), if any.
    pub fn details(&self, key: &str) -> Option<&serde_json::Value> {
        self.parts.iter().find_map(|p| p.details.get(key))
    }

    /// Every row, in driver order.
    pub fn rows(&self) -> Vec<&Row> {
        self.parts.iter().flat_map(|p| &p.rows).collect()
    }

    /// Why some units are not up: every driver's failure (none when all are up).
    pub fn take_failure(&mut self) -> Option<anyhow::Error> {
        let mut failures: Vec<anyhow::Error> = self
            .parts
            .iter_mut()
            .filter_map(|p| p.failure.take())
            .collect();
        match failures.len() {
            0 => None,
            1 => failures.pop(),
            _ => Some(anyhow::anyhow!(
                "{}",
                failures
                    .iter()
                    .map(|e| format!("{e:#}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
        }
    }

    /// The `--output json` document: `changed`, each driver's details, `services` (every
    /// row) and `error`.
    pub fn json(&self, failure: Option<&anyhow::Error>) -> serde_json::Value {
        let mut doc = serde_json::Map::new();
        doc.insert("changed".into(), (!self.unchanged()).into());
        for part in &self.parts {
            doc.extend(part.details.clone());
        }
        doc.insert(
            "services".into(),
            serde_json::to_value(self.rows()).unwrap_or_default(),
        );
        doc.insert("error".into(), failure.map(|e| format!("{e:#}")).into());
        serde_json::Value::Object(doc)
    }
}

/// The `--output json` document of an `up` that stopped before changing anything (the lock,
/// preflight, a missing engine): the same keys as [`Outcome::json`], nothing changed, and the
/// `error`.
pub fn stopped_json(failure: &anyhow::Error) -> serde_json::Value {
    let nothing = Outcome {
        parts: vec![Part {
            details: infrastructure::details(&crate::plan::Plan::default()),
            ..Part::default()
        }],
        elapsed: Duration::ZERO,
    };
    nothing.json(Some(failure))
}

/// Bring the platform up. An `Err` means converge stopped before changing anything it could
/// report on (bad `--only`, no engine, a preflight problem, a failed pull); an `Outcome` may
/// still hold failures of units that did not come up ([`Outcome::take_failure`]).
///
/// Call with the environment's lock held (`state::lock`).
pub async fn up(
    config: &Config,
    options: &Options,
    state_dir: &Path,
    reporter: Arc<dyn Reporter>,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let (want_cluster, only) = plan::split_only(config, &options.only);
    if !want_cluster && options.only.iter().any(|s| s == cluster::UNIT) {
        return Err(crate::error::Failure::bad_input(
            "--only names the cluster, but `cluster.provider` is `none`",
            "set `cluster.provider: kind` (or `existing`) in devenv.yaml".to_string(),
        )
        .into());
    }
    let span = reporter.start(Kind::Step, "render");
    let (artifacts, secrets) = span.end(
        render::render(config)
            .and_then(|a| Ok((a, Secrets::load_for(state_dir, &config.own_secrets())?))),
    )?;
    // `--only cluster` alone leaves the infrastructure (and its secrets) as they are.
    let infrastructure = options.only.is_empty() || !only.is_empty();
    let span = reporter.start(Kind::Step, "connect");
    let connected = async {
        let mut drivers: Vec<Box<dyn Driver + '_>> = Vec::new();
        // Set when `keep` changed the gateway's live directory (a renewed certificate): the
        // Docker driver then reloads a gateway it keeps running.
        let mut gateway_changed = None;
        if infrastructure {
            for warning in secrets.warnings() {
                reporter.step("warning", warning);
            }
            let services = plan::select(config, &only)?;
            let driver = Infrastructure::connect(
                config,
                services,
                &artifacts,
                &secrets,
                state_dir,
                options.owner.as_ref(),
            )
            .await?;
            gateway_changed = Some(driver.gateway_changed());
            drivers.push(Box::new(driver));
        }
        if want_cluster {
            let cluster = Cluster::connect(
                config,
                state_dir,
                options.kubeconfig.clone(),
                options.recreate,
                options.install_kind,
            )
            .await?;
            drivers.push(Box::new(cluster));
        }
        anyhow::Ok((drivers, gateway_changed))
    };
    let (mut drivers, gateway_changed) = span.end(connected.await)?;
    let ctx = Context {
        config,
        options,
        reporter,
    };
    // What the run keeps in the state directory: written only once every check passed.
    let keep = || {
        // The gateway's live directory only with the driver that reloads it.
        let changed = render::keep(config, state_dir, &artifacts, infrastructure)?;
        if let Some(flag) = &gateway_changed {
            flag.store(changed, std::sync::atomic::Ordering::SeqCst);
        }
        if infrastructure {
            secrets.store()?;
        }
        Ok(())
    };
    let parts = run(&mut drivers, &ctx, keep).await?;
    Ok(Outcome {
        parts,
        elapsed: started.elapsed(),
    })
}

/// Run `drivers` through the phases, each phase concurrently across drivers and joined before
/// the next: every check; stop (exit 3, nothing changed) if any found a problem; every fetch;
/// `keep` (what the run writes to the state directory); every apply, with the milestones
/// every check declared on one [`Ready`] board. The parts, in driver order.
pub async fn run(
    drivers: &mut [Box<dyn Driver + '_>],
    ctx: &Context<'_>,
    keep: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Part>> {
    let span = ctx.reporter.start(Kind::Step, "check");
    let checked =
        futures_util::future::try_join_all(drivers.iter_mut().map(|d| d.check(ctx))).await;
    let mut problems = Vec::new();
    let mut milestones = Vec::new();
    let verdict = checked.and_then(|checked| {
        for c in checked {
            problems.extend(c.problems);
            milestones.extend(c.milestones);
        }
        preflight::fail_on(problems)
    });
    span.end(verdict)?;
    let span = ctx.reporter.start(Kind::Step, "fetch");
    let fetched =
        futures_util::future::try_join_all(drivers.iter_mut().map(|d| d.fetch(ctx))).await;
    span.end(fetched.and_then(|_| keep()))?;

    let span = ctx.reporter.start(Kind::Step, "apply");
    let ready = Arc::new(Ready::new(milestones));
    let parts: anyhow::Result<Vec<Part>> =
        futures_util::future::join_all(drivers.iter_mut().map(|d| d.apply(ctx, &ready)))
            .await
            .into_iter()
            .collect();
    match &parts {
        Ok(parts) if parts.iter().any(|p| p.failure.is_some()) => {
            span.finish(
                events::Outcome::Failed,
                Some("some units did not come up".into()),
            );
        }
        Ok(_) => span.finish(events::Outcome::Ok, None),
        Err(e) => span.finish(events::Outcome::Failed, Some(format!("{e:#}"))),
    }
    parts
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::output::progress::Silent;

    /// A driver that records its phases in a shared log, may report a problem, and in apply
    /// waits for `needs` before publishing `provides`.
    struct Fake {
        name: &'static str,
        problem: bool,
        needs: Option<&'static str>,
        provides: &'static str,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        fn note(&self, what: &str) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} {what}", self.name));
        }
    }

    #[async_trait]
    impl Driver for Fake {
        async fn check(&mut self, _: &Context<'_>) -> anyhow::Result<Checked> {
            self.note("check");
            Ok(Checked {
                problems: if self.problem {
                    vec![Problem {
                        message: format!("{} cannot", self.name),
                        hint: "fix it".into(),
                    }]
                } else {
                    Vec::new()
                },
                milestones: vec![self.provides.to_string()],
            })
        }

        async fn fetch(&mut self, _: &Context<'_>) -> anyhow::Result<()> {
            self.note("fetch");
            Ok(())
        }

        async fn apply(&mut self, _: &Context<'_>, ready: &Arc<Ready>) -> anyhow::Result<Part> {
            let promise = ready.promise(self.provides);
            if let Some(needed) = self.needs {
                let reached = ready.wait(needed).await;
                self.note(&format!("saw {needed} {reached}"));
            }
            self.note("apply");
            promise.keep(true);
            Ok(Part {
                changed: true,
                units_changed: 1,
                ..Part::default()
            })
        }
    }

    fn ctx(config: &Config) -> Context<'_> {
        static OPTIONS: std::sync::OnceLock<Options> = std::sync::OnceLock::new();
        Context {
            config,
            options: OPTIONS.get_or_init(Options::default),
            reporter: Arc::new(Silent),
        }
    }

    fn fake(
        log: &Arc<Mutex<Vec<String>>>,
        name: &'static str,
        needs: Option<&'static str>,
        problem: bool,
    ) -> Box<dyn Driver> {
        Box::new(Fake {
            name,
            problem,
            needs,
            provides: name,
            log: Arc::clone(log),
        })
    }

    #[tokio::test]
    async fn a_driver_waits_for_another_drivers_milestone_across_the_join() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let config = Config::default();
        // The cluster is listed first and still sees the registry reached.
        let mut drivers = vec![
            fake(&log, "cluster", Some("registry"), false),
            fake(&log, "registry", None, false),
        ];
        let parts = run(&mut drivers, &ctx(&config), || Ok(())).await.unwrap();
        assert_eq!(parts.len(), 2);
        let log = log.lock().unwrap().clone();
        let at = |line: &str| log.iter().position(|l| l == line).unwrap();
        // Every check before any fetch, every fetch before any apply.
        assert!(at("cluster check").max(at("registry check")) < at("cluster fetch"));
        assert!(at("cluster fetch").max(at("registry fetch")) < at("registry apply"));
        assert!(at("registry apply") < at("cluster saw registry true"));
        assert!(at("cluster saw registry true") < at("cluster apply"));
    }

    #[tokio::test]
    async fn one_drivers_problem_stops_every_driver_before_anything_changes() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let config = Config::default();
        let mut drivers = vec![
            fake(&log, "cluster", None, true),
            fake(&log, "registry", None, false),
        ];
        let mut kept = false;
        let e = run(&mut drivers, &ctx(&config), || {
            kept = true;
            Ok(())
        })
        .await
        .unwrap_err();
        assert!(!kept, "nothing is written to the state directory");
        let failure = crate::error::failure(&e).expect("a Failure");
        assert_eq!(failure.exit_code(), crate::error::exit::ENVIRONMENT);
        assert!(failure.message.contains("cluster cannot"), "{failure:?}");
        let log = log.lock().unwrap().clone();
        assert_eq!(log.len(), 2, "only the checks ran: {log:?}");
        assert!(log.iter().all(|l| l.ends_with(" check")), "{log:?}");
    }

    #[test]
    fn up_json_has_the_same_keys_when_it_stopped_before_changing_anything() {
        let done = Outcome {
            parts: vec![Part {
                details: infrastructure::details(&crate::plan::Plan::default()),
                ..Part::default()
            }],
            elapsed: Duration::ZERO,
        };
        let keys = |v: serde_json::Value| -> Vec<String> {
            v.as_object().unwrap().keys().cloned().collect()
        };
        let stopped = stopped_json(&anyhow::anyhow!("no engine"));
        assert_eq!(stopped["error"], "no engine");
        assert_eq!(stopped["changed"], false);
        assert_eq!(keys(stopped), keys(done.json(None)));
    }

    #[tokio::test]
    async fn waiting_for_a_milestone_nobody_declared_does_not_hang() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let config = Config::default();
        let mut drivers = vec![fake(&log, "cluster", Some("nothing"), false)];
        run(&mut drivers, &ctx(&config), || Ok(())).await.unwrap();
        assert!(
            log.lock()
                .unwrap()
                .contains(&"cluster saw nothing false".to_string())
        );
    }
}

//! devenv brings up a local development platform with one command.
//!
//! # Architecture
//!
//! One typed model, `devenv.yaml` ([`config`]), whose defaults are the whole platform, so no
//! file is needed. Everything else is derived from it, with dependencies pointing one way
//! (nothing imports `commands` or `cli`):
//!
//! ```text
//! main.rs    parse, tracing, the one async runtime -> run
//! cli        clap only; its enums map into the domain's by From
//! commands   one short script per subcommand: settings, one library call, print
//!   |-> ci         a CI job's throwaway environment: its name, free ports and subnet, the
//!   |              coordinates its command gets, running that command (signals, deadline)
//!   |-> converge   up as a pipeline: render, then per driver check -> fetch -> apply (joined),
//!   |              summary rows; teardown for down. Driver trait + milestones board (Ready)
//!   |     |-> plan       pure: desired containers/networks/volumes vs observed -> actions
//!   |     |-> preflight  pure checks: free ports (and who holds them), subnets, images to pull
//!   |     |-> subnets    pure: overlap, the subnets in use, free ones for CI jobs and the metrics
//!   |     |              network
//!   |     '-> docker     the bollard engine driver: connect, observe (its own model), create,
//!   |                    start, remove, pull, health waits, logs; bollard stays inside
//!   |     '-> cluster    the KinD cluster: the kind CLI seam, kind provisioning, registry
//!   |                    wiring into the nodes, kube-rs apply/wait/CoreDNS/lookup/status
//!   |-> render     pure: Config -> Vec<Artifact>: kind, compose, nginx, prometheus, grafana,
//!   |              loki, tempo, pdns; the typed cluster objects (render::cluster)
//!   |-> tls        the local CA and the wildcard certificate (state directory)
//!   |-> dns        the resolver: zone table, fast path, hickory handler, forwarder, OS split DNS
//!   |-> doctor     every link of the chain checked at once (host, names, services, cluster)
//!   |-> output     stdout data, stderr status, colour; progress::Reporter (bars | lines | silent)
//!   |              with spans recorded in events (the --output jsonl stream); github annotations
//!   |-> state      the state directory: generated secrets, the run lock
//!   |-> files      atomic writes, writing and checking rendered artifacts
//!   '-> config     the model: defaults, the service catalog (each fact once), load, validate
//! ```
//!
//! - The **infrastructure** (registry, PowerDNS, observability, data, the gateway) runs in
//!   Docker outside the cluster so it survives cluster re-creation; [`config::Service`] is the
//!   one description of each service, consumed by the compose renderer, the services' config
//!   renderers and the Docker driver. `devenv up` converges it through
//!   [`converge::Infrastructure`], one [`converge::Driver`].
//! - The **cluster** is the other driver: the `kind` CLI creates it from the rendered KinD config
//!   (`kind/`), and kube-rs applies devenv's objects inside it ([`cluster`]).
//! - **Names** resolve through devenv's own resolver ([`dns`]): infrastructure names to
//!   127.0.0.1 (the host gateway), application names to 127.0.0.2 (the cluster's ingress).
//!
//! Exit codes are in [`error::exit`].

pub mod ci;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod converge;
pub mod dns;
pub mod docker;
pub mod doctor;
pub mod env;
pub mod error;
pub mod files;
pub mod gateway;
pub mod output;
pub mod plan;
pub mod preflight;
pub mod render;
pub mod routes;
pub mod snapshot;
pub mod state;
pub mod subnets;
pub mod tls;
pub mod trust;

/// Run a parsed command line, async work on `runtime` (built once, by the caller). The caller
/// maps the result to an exit code with [`error::exit_code`].
pub fn run(cli: cli::Cli, runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
    commands::run(cli, runtime)
}

/// The async runtime devenv runs on: the work is I/O (the engine, the cluster's API), two
/// workers suffice. Built once, in `main`.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

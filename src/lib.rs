//! devenv brings up a local development platform with one command.
//!
//! # Architecture
//!
//! One typed model, `devenv.yaml` ([`config`]), whose defaults are the whole platform, so no
//! file is needed. Everything else is derived from it, with dependencies pointing one way:
//!
//! ```text
//! main.rs -> cli (clap) -> commands (one short script per subcommand)
//!                              |-> render   pure: Config -> Vec<Artifact> (kind/, compose/, service configs)
//!                              |-> plan     pure: desired services vs observed containers -> actions
//!                              |-> preflight free ports (and who holds them), loopback aliases, subnet overlaps, images
//!                              |-> docker   the bollard engine driver: connect, observe, create, health waits
//!                              |-> dns      the resolver: zone table, fast path, hickory handler, forwarder, OS split DNS
//!                              |-> output   stdout data, stderr status, progress, colour
//!                              |-> state    state directory, generated secrets, atomic writes, the run lock
//!                              '-> config   the model: defaults, load (file:line:col), validate
//! ```
//!
//! - The **infrastructure** (registry, PowerDNS, observability, data) runs in Docker outside
//!   the cluster so it survives cluster re-creation; [`config::Service`] is the one description
//!   of each service, consumed both by the compose renderer and by the Docker driver.
//! - The **cluster** is created by the `kind` binary from the rendered KinD config.
//! - **Names** resolve through devenv's own resolver: infrastructure names to 127.0.0.1 (host
//!   gateway), application names to 127.0.0.2 (the cluster's ingress).
//!
//! Exit codes are in [`error::exit`].

pub mod cli;
pub mod commands;
pub mod config;
pub mod converge;
pub mod dns;
pub mod docker;
pub mod env;
pub mod error;
pub mod files;
pub mod output;
pub mod plan;
pub mod preflight;
pub mod render;
pub mod state;

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

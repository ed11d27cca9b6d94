//! `devenv routes add|rm|list`: names for processes on this host. A change is checked and
//! served by the running gateway first (`gateway::serve`) and written to the routes file only
//! when that worked, so a route nginx rejects changes nothing. `list` shows them with the
//! infrastructure's names and the cluster's Ingresses (`routes::list`).

use std::time::Duration;

use serde::Serialize;

use crate::cli::{RoutesAddArgs, RoutesArgs, RoutesCommand, RoutesListArgs, RoutesRmArgs};
use crate::config::Config;
use crate::error::Failure;
use crate::gateway::{self, Applied, Served};
use crate::output::{self, Format};
use crate::routes::{self, Routes, list};
use crate::state;

use super::Settings;

pub fn run(settings: &Settings, args: RoutesArgs) -> anyhow::Result<()> {
    match args
        .command
        .unwrap_or(RoutesCommand::List(RoutesListArgs::default()))
    {
        RoutesCommand::Add(a) => add(settings, a),
        RoutesCommand::Rm(a) => rm(settings, a),
        RoutesCommand::List(a) => list(settings, a),
    }
}

fn add(settings: &Settings, args: RoutesAddArgs) -> anyhow::Result<()> {
    let config = settings.load_environment(false)?.config;
    let dir = state::dir(&config.name)?;
    let mut table = routes::load(&dir)?;
    table.add(&config, &args.name, &args.to, args.host.as_deref())?;
    let route = table.routes.last_mut().expect("just added");
    // The relay is served by the environment's resolver: only when one runs is it there to
    // reach (with `dns.enabled: false`, or before `up`, the route goes straight to the port).
    if route.target.is_local()
        && gateway_enabled(&config)
        && crate::dns::RunFile::running(&dir).is_some()
    {
        route.relay = settings.runtime.block_on(relay_for());
    }
    let route = route.clone();
    change(settings, &config, &dir, &table, &route.host)?;
    let (http, https) = gateway::urls(&config, &route.host);
    settings.printer.step(
        "added",
        format!("{} -> {} ({https}, {http})", route.name, route.target),
    );
    if let Some(relay) = &route.relay {
        relay_note(settings, &route.target, relay);
    } else if route.target.is_local()
        && cfg!(target_os = "linux")
        && let Some(note) = reach_note(&route.target)
    {
        settings.printer.status(note);
    }
    Ok(())
}

fn gateway_enabled(config: &Config) -> bool {
    config.services().iter().any(|s| s.name == "gateway")
}

/// A relay for a route to this host's loopback, when the engine's `host-gateway` address is
/// an address of this host (`routes::relay`).
async fn relay_for() -> Option<routes::relay::Relay> {
    let engine = crate::docker::Engine::connect().await.ok()?;
    routes::relay::allocate(engine.host_gateway().await?)
}

/// How long `routes add` waits for the background process to serve a new route's relay (it
/// reads the routes file every second).
const RELAY_WAIT: Duration = Duration::from_secs(5);

/// Wait until the running resolver serves `relay`, and say what still stands between the
/// gateway and `target`.
fn relay_note(settings: &Settings, target: &routes::Target, relay: &routes::relay::Relay) {
    let p = &settings.printer;
    if !settings
        .runtime
        .block_on(routes::relay::wait_accepting(relay, RELAY_WAIT))
    {
        p.warn(format!(
            "the resolver did not open the relay {} -> {target} within {} s; `devenv dns status` and its log say why",
            relay.socket(),
            RELAY_WAIT.as_secs()
        ));
    } else if routes::listening::port(target.port) == routes::listening::Listening::Nothing {
        p.status(format!("note: nothing listens on port {} yet", target.port));
    }
}

/// What to tell about a route to this host's `target` (Linux): the gateway container reaches
/// the host at Docker's address for it, so a process listening on loopback only is out of its
/// reach. `None` when the port already listens where the gateway reaches it.
fn reach_note(target: &routes::Target) -> Option<String> {
    let port = target.port;
    match routes::listening::port(port) {
        routes::listening::Listening::Reachable => None,
        routes::listening::Listening::LoopbackOnly => Some(format!(
            "warning: port {port} listens on loopback only, out of the gateway container's reach (it comes from Docker's address for the host): with Docker Engine on Linux this route answers 502 until the process listens on 0.0.0.0 (for most dev servers `--host 0.0.0.0`), or until it is added again while devenv's resolver runs (`devenv up`), which relays it; Docker Desktop forwards to loopback"
        )),
        routes::listening::Listening::Elsewhere(address) => Some(format!(
            "note: port {port} listens on {address} only; the gateway container reaches the host at Docker's address for it (docker0's on Linux): unless that is {address}, listen on 0.0.0.0"
        )),
        routes::listening::Listening::Nothing => Some(format!(
            "note: nothing listens on port {port} yet; start the process on 0.0.0.0, not only on 127.0.0.1: the gateway container reaches {target} through Docker's host address"
        )),
        routes::listening::Listening::Unknown => Some(format!(
            "note: the gateway container reaches {target} through Docker's host address: the process must listen on 0.0.0.0, not only on 127.0.0.1"
        )),
    }
}

fn rm(settings: &Settings, args: RoutesRmArgs) -> anyhow::Result<()> {
    let config = settings.load_environment(false)?.config;
    let dir = state::dir(&config.name)?;
    let mut table = routes::load(&dir)?;
    let route = table.remove(&args.name)?;
    change(settings, &config, &dir, &table, &route.host)?;
    settings
        .printer
        .step("removed", format!("{} ({})", route.name, route.host));
    Ok(())
}

/// Serve `table` through the gateway, then save it, and wait until the running resolver answers
/// `host` as the saved table says: the command returns when the change is true.
fn change(
    settings: &Settings,
    config: &Config,
    dir: &std::path::Path,
    table: &Routes,
    host: &str,
) -> anyhow::Result<()> {
    let served = settings
        .runtime
        .block_on(gateway::serve(config, dir, &table.routes))?;
    routes::save(dir, table)?;
    if let Some(run) = crate::dns::RunFile::running(dir)
        && !settings
            .runtime
            .block_on(resolver_answers(config, run.udp, host))
    {
        settings.printer.warn(format!(
            "the resolver on {} did not take up the change to {host} within {} s; it follows the routes file, and answers the new table once it reads it",
            run.udp,
            RESOLVER_WAIT.as_secs()
        ));
    }
    match served {
        Served::Live(Applied::Reloaded { generation }) => settings
            .printer
            .status(format!("gateway reloaded (routes generation {generation})")),
        Served::Live(Applied::Unchanged { .. }) => {}
        Served::NotRunning(why) => settings.printer.status(format!(
            "{why}: `devenv up` serves the routes when it starts the gateway"
        )),
    }
    Ok(())
}

/// How long `routes add|rm` waits for the running resolver to answer the change (it reads the
/// routes file every second).
const RESOLVER_WAIT: Duration = Duration::from_secs(5);

/// Whether the resolver at `server` answers `host` (A and AAAA) as the saved routes table says
/// (the same question answered in-process from devenv.yaml and the routes file), within
/// [`RESOLVER_WAIT`].
async fn resolver_answers(config: &Config, server: std::net::SocketAddr, host: &str) -> bool {
    use crate::dns::client;
    use hickory_proto::rr::{Name, RecordType};
    let Ok(name) = Name::from_ascii(format!("{host}.")) else {
        return true;
    };
    let answers = |m: &hickory_proto::op::Message| {
        let mut out: Vec<String> = m
            .answers
            .iter()
            .map(|r| format!("{} {}", r.record_type(), r.data))
            .collect();
        out.sort();
        (m.metadata.response_code, out)
    };
    let mut expected = Vec::new();
    for rtype in [RecordType::A, RecordType::AAAA] {
        match client::answer_in_process(config, &client::build_query(&name, rtype)).await {
            Ok(m) => expected.push(answers(&m)),
            Err(_) => return true,
        }
    }
    let deadline = tokio::time::Instant::now() + RESOLVER_WAIT;
    loop {
        let mut got = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            if let Ok(m) = client::ask(server, &client::build_query(&name, rtype)).await {
                got.push(answers(&m));
            }
        }
        if got == expected {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    listed: list::Listed,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<list::Probe>,
}

/// The `-o json` document.
#[derive(Serialize)]
struct Listing {
    names: Vec<Row>,
    cluster: list::ClusterNames,
}

fn list(settings: &Settings, args: RoutesListArgs) -> anyhow::Result<()> {
    let config = settings.load_environment(false)?.config;
    let table = routes::load(&state::dir(&config.name)?)?;
    let gateway = list::gateway_http(&config);
    let (ingresses, cluster) = settings
        .runtime
        .block_on(list::cluster(&config, settings.kubeconfig(&config)));
    if let Some(warning) = &cluster.warning {
        settings.printer.status(format!("warning: {warning}"));
    }
    let mut names = list::listing(&config, &table);
    // The cluster's names after the infrastructure's, before the user's routes.
    let at = names
        .iter()
        .take_while(|l| l.kind == "infrastructure")
        .count();
    let user_routes = names.split_off(at);
    names.extend(ingresses);
    names.extend(user_routes);
    let timeout = Duration::from_secs(10);
    let rows: Vec<Row> = names
        .into_iter()
        .map(|listed| {
            let check = args.check.then(|| {
                let host = list::probe_host(&config, &listed);
                match (listed.kind, gateway) {
                    ("ingress" | "httproute", _) => Some(list::probe(
                        list::ingress_http(&config),
                        host,
                        &listed.path,
                        timeout,
                    )),
                    (_, Some(addr)) => Some(list::probe(addr, host, &listed.path, timeout)),
                    (_, None) => None,
                }
            });
            Row {
                listed,
                check: check.flatten(),
            }
        })
        .collect();
    let verdict = check_failures(args.check, gateway.is_some(), &cluster, &rows);
    if settings.printer.format == Format::Json {
        settings.printer.json(&Listing {
            names: rows,
            cluster,
        })?;
        return verdict;
    }
    let mut lines = vec![
        ["KIND", "NAME", "URL", "TARGET"]
            .iter()
            .map(ToString::to_string)
            .chain(args.check.then(|| "CHECK".to_string()))
            .collect::<Vec<_>>(),
    ];
    for r in &rows {
        let mut line = vec![
            r.listed.kind.to_string(),
            r.listed.name.clone(),
            r.listed.https.clone(),
            r.listed.target.clone(),
        ];
        if let Some(c) = &r.check {
            line.push(match (c.status, &c.error) {
                (Some(s), _) => format!("{s} {}ms", c.latency_ms),
                (None, Some(e)) => format!("no answer: {e}"),
                (None, None) => "no answer".to_string(),
            });
        }
        lines.push(line);
    }
    settings.printer.data(output::table(&lines))?;
    verdict
}

/// `--check`: exit 4 when a name does not answer, there is no gateway to probe through, or
/// the cluster's Ingresses could not be read.
fn check_failures(
    check: bool,
    gateway: bool,
    cluster: &list::ClusterNames,
    rows: &[Row],
) -> anyhow::Result<()> {
    if !check {
        return Ok(());
    }
    if !gateway {
        return Err(Failure::check_failed("the gateway is not enabled: nothing to probe").into());
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.check.as_ref().is_some_and(list::Probe::ok))
        .map(|r| r.listed.host.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(Failure::check_failed(format!(
            "{} of {} names do not answer: {}",
            failed.len(),
            rows.len(),
            failed.join(", ")
        ))
        .into());
    }
    if cluster.context.is_some() && !cluster.listed {
        return Err(Failure::check_failed(
            cluster
                .warning
                .clone()
                .unwrap_or_else(|| "the cluster's Ingresses were not read".to_string()),
        )
        .into());
    }
    Ok(())
}

//! `devenv dns serve|query|install|uninstall|status`: run the resolver, ask it, route the
//! domain to it at the OS level, and report on it.
//!
//! A running `serve` leaves a small run file (`dns.json`) in the state directory with its
//! addresses, pid, upstreams and record count, which `query` and `status` read.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use serde::{Deserialize, Serialize};

use crate::cli::{DnsArgs, DnsCommand, DnsInstallArgs, DnsQueryArgs, DnsServeArgs, MechanismArg};
use crate::config::Config;
use crate::dns::{self, Forwarder, Handler, Records, Running, Store, os};
use crate::error::Failure;
use crate::output::{Format, Printer};
use crate::state;

use super::Settings;

/// The run file of a serving resolver, in the state directory.
const RUN_FILE: &str = "dns.json";
/// The system resolver configuration, for default upstreams.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of the real upstreams (behind its stub).
const RESOLVED_CONF: &str = "/run/systemd/resolve/resolv.conf";
/// How long `query` and `status` wait for an answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// What a running `devenv dns serve` tells `query` and `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunFile {
    pid: u32,
    udp: SocketAddr,
    tcp: SocketAddr,
    domain: String,
    forwarding: bool,
    upstreams: Vec<SocketAddr>,
    records: usize,
    serial: u32,
    config: Option<PathBuf>,
}

pub fn run(settings: &Settings, args: DnsArgs) -> anyhow::Result<()> {
    match args
        .command
        .unwrap_or(DnsCommand::Serve(DnsServeArgs::default()))
    {
        DnsCommand::Serve(a) => serve(settings, a),
        DnsCommand::Query(a) => query(settings, a),
        DnsCommand::Install(a) => install(settings, a),
        DnsCommand::Uninstall(a) => uninstall(settings, a),
        DnsCommand::Status => status(settings),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: the UDP fast path has its own; the rest (TCP, forwarding) is light.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn upstreams(config: &Config, flags: &[SocketAddr], listen: SocketAddr) -> Vec<SocketAddr> {
    if !flags.is_empty() {
        return flags.to_vec();
    }
    if !config.dns.upstreams.is_empty() {
        return config.dns.upstreams.clone();
    }
    dns::forward::system_upstreams(Path::new(RESOLV_CONF), Path::new(RESOLVED_CONF), &[listen])
}

fn serve(settings: &Settings, args: DnsServeArgs) -> anyhow::Result<()> {
    let loaded = settings.load_config()?;
    let config = loaded.config;
    let p = &settings.printer;
    let ip = args.address.unwrap_or(config.dns.address);
    if !dns::handler::is_loopback(ip) && !config.bind.allow_non_loopback {
        return Err(Failure::bad_input(
            format!("{ip} is outside loopback: the resolver would be reachable from the network"),
            Some("use a loopback address, or set `bind.allow_non_loopback: true` in devenv.yaml (clients off this host then get only the zone)".to_string()),
        )
        .into());
    }
    let listen = SocketAddr::new(ip, args.port.unwrap_or(config.dns.port));
    let forwarding = !args.no_forward;
    let upstreams = if forwarding {
        upstreams(&config, &args.upstreams, listen)
    } else {
        Vec::new()
    };
    if forwarding && upstreams.is_empty() {
        p.warn(format!(
            "no upstream resolvers (none in dns.upstreams, none usable in {RESOLV_CONF}): names outside {} will fail; use --upstream or --no-forward",
            config.domain
        ));
    }
    let store = Arc::new(Store::new(Records::from_config(&config), forwarding)?);
    let forwarder = forwarding.then(|| Arc::new(Forwarder::new(upstreams.clone())));
    let handler = Handler::new(store.clone(), forwarder);
    let rt = runtime()?;
    rt.block_on(async {
        let running = Running::start(listen, handler)?;
        let state_dir = state::dir(&config.name).ok();
        let zone = store.snapshot();
        let mut run = RunFile {
            pid: std::process::id(),
            udp: running.udp_addr(),
            tcp: running.tcp_addr(),
            domain: config.domain.clone(),
            forwarding,
            upstreams: upstreams.clone(),
            records: zone.record_count(),
            serial: zone.serial(),
            config: loaded.path.clone(),
        };
        let write_run = |run: &RunFile| {
            if let Some(dir) = &state_dir {
                let text = serde_json::to_vec_pretty(run).unwrap_or_default();
                if let Err(e) = state::write_atomic(&dir.join(RUN_FILE), &text, 0o644) {
                    tracing::warn!("{e:#}");
                }
            }
        };
        write_run(&run);
        if p.format == Format::Json {
            p.json(&serde_json::json!({"udp": run.udp, "tcp": run.tcp, "pid": run.pid, "domain": run.domain}))?;
        } else {
            p.data(run.udp.to_string())?;
        }
        p.status(format!(
            "serving {} on {}/udp and {}/tcp ({} records); {}",
            config.domain,
            run.udp,
            run.tcp,
            run.records,
            if !forwarding {
                "other names are REFUSED".to_string()
            } else {
                let list: Vec<String> = upstreams.iter().map(ToString::to_string).collect();
                format!("other names forwarded to {}", if list.is_empty() { "nobody".into() } else { list.join(", ") })
            }
        ));
        if !dns::handler::is_loopback(ip) {
            p.warn(format!("listening on {ip}: clients off loopback get only {}, never forwarding", config.domain));
        }

        let stop = Arc::new(AtomicBool::new(false));
        if let Some(path) = loaded.path.clone() {
            tokio::spawn(dns::server::follow_config(path, store.clone(), run.udp, stop.clone()));
        }
        let mut changes = store.subscribe();
        let wait_signal = async {
            #[cfg(unix)]
            {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("listening for SIGTERM")?;
                tokio::select! {
                    r = tokio::signal::ctrl_c() => r.context("listening for SIGINT")?,
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            tokio::signal::ctrl_c().await.context("listening for Ctrl-C")?;
            Ok::<_, anyhow::Error>(())
        };
        tokio::pin!(wait_signal);
        loop {
            tokio::select! {
                r = &mut wait_signal => { r?; break; }
                Ok(()) = changes.changed() => {
                    let zone = store.snapshot();
                    run.records = zone.record_count();
                    run.serial = zone.serial();
                    write_run(&run);
                    p.status(format!("records updated: {} records, serial {}", run.records, run.serial));
                }
            }
        }
        p.status("shutting down");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        running.shutdown().await?;
        if let Some(dir) = &state_dir {
            // Only our own run file: another serve may have started since.
            if read_run(dir).is_some_and(|r| r.pid == std::process::id()) {
                let _ = std::fs::remove_file(dir.join(RUN_FILE));
            }
        }
        Ok(())
    })
}

fn read_run(dir: &Path) -> Option<RunFile> {
    let text = std::fs::read(dir.join(RUN_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // Signal 0 checks existence; EPERM means it exists under another user.
        // SAFETY: kill with signal 0 sends nothing.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// The run file of a resolver that is still alive.
fn running(config: &Config) -> Option<RunFile> {
    let dir = state::dir(&config.name).ok()?;
    read_run(&dir).filter(|r| pid_alive(r.pid))
}

fn build_query(name: &Name, rtype: RecordType) -> anyhow::Result<Message> {
    let mut m = Message::query();
    m.add_query(Query::query(name.clone(), rtype));
    m.metadata.recursion_desired = true;
    let mut edns = Edns::new();
    edns.set_max_payload(dns::fast::EDNS_PAYLOAD);
    m.set_edns(edns);
    Ok(m)
}

/// Ask `server` over UDP, and over TCP when the answer is truncated.
fn ask(server: SocketAddr, query: &Message) -> anyhow::Result<Message> {
    let bytes = query.to_vec().context("encoding the query")?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let bind = if server.ip().is_loopback() {
        bind
    } else {
        SocketAddr::new(
            if server.is_ipv4() {
                IpAddr::from([0, 0, 0, 0])
            } else {
                IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
            },
            0,
        )
    };
    let socket = std::net::UdpSocket::bind(bind)
        .with_context(|| format!("binding a UDP socket to ask {server}"))?;
    socket
        .set_read_timeout(Some(QUERY_TIMEOUT))
        .context("setting a timeout")?;
    socket
        .connect(server)
        .with_context(|| format!("connecting to {server}"))?;
    socket
        .send(&bytes)
        .with_context(|| format!("sending to {server}"))?;
    let mut buf = vec![0u8; 65_535];
    let answer = loop {
        let n = socket
            .recv(&mut buf)
            .with_context(|| format!("{server} did not answer"))?;
        if let Ok(m) = Message::from_vec(&buf[..n])
            && m.metadata.id == query.metadata.id
        {
            break m;
        }
    };
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect_timeout(&server, QUERY_TIMEOUT)
        .with_context(|| format!("connecting to {server} over TCP"))?;
    tcp.set_read_timeout(Some(QUERY_TIMEOUT))
        .context("setting a timeout")?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    tcp.write_all(&framed)
        .with_context(|| format!("writing to {server} over TCP"))?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len)
        .with_context(|| format!("reading from {server} over TCP"))?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut buf)
        .with_context(|| format!("reading from {server} over TCP"))?;
    Message::from_vec(&buf).with_context(|| format!("decoding the answer of {server}"))
}

fn query(settings: &Settings, args: DnsQueryArgs) -> anyhow::Result<()> {
    let config = settings.load_config()?.config;
    let p = &settings.printer;
    let text = if args.name.contains('.') {
        args.name.clone()
    } else {
        config.fqdn(&args.name)
    };
    let mut name = Name::from_ascii(&text)
        .map_err(|e| Failure::bad_input(format!("`{}` is not a DNS name: {e}", args.name), None))?;
    name.set_fqdn(true);
    let rtype = RecordType::from_str(&args.record_type.to_ascii_uppercase()).map_err(|_| {
        Failure::bad_input(
            format!("`{}` is not a record type", args.record_type),
            Some("use A, AAAA, CNAME, TXT, NS, SOA, MX, ANY, ...".to_string()),
        )
    })?;
    let message = build_query(&name, rtype)?;
    let server = args.server.or_else(|| running(&config).map(|r| r.udp));
    let (answer, source) = match server {
        Some(server) => (ask(server, &message)?, server.to_string()),
        None => {
            let store = Arc::new(Store::new(Records::from_config(&config), true)?);
            let listen = SocketAddr::new(config.dns.address, config.dns.port);
            let forwarder = Arc::new(Forwarder::new(upstreams(&config, &[], listen)));
            let handler = Handler::new(store, Some(forwarder));
            let bytes = runtime()?.block_on(dns::server::answer_in_process(
                &handler,
                message.to_vec()?,
                SocketAddr::from(([127, 0, 0, 1], 0)),
            ))?;
            (
                Message::from_vec(&bytes).context("decoding the in-process answer")?,
                "in-process".to_string(),
            )
        }
    };
    let record = |r: &hickory_proto::rr::Record| serde_json::json!({"name": r.name.to_ascii(), "ttl": r.ttl, "type": r.record_type().to_string(), "data": r.data.to_string()});
    let code = answer.metadata.response_code;
    if p.format == Format::Json {
        p.json(&serde_json::json!({
            "name": name.to_ascii(),
            "type": rtype.to_string(),
            "server": source,
            "rcode": code.to_string(),
            "authoritative": answer.metadata.authoritative,
            "answers": answer.answers.iter().map(record).collect::<Vec<_>>(),
            "authorities": answer.authorities.iter().map(record).collect::<Vec<_>>(),
        }))?;
    } else {
        for r in &answer.answers {
            p.data(format!(
                "{}\t{}\t{}\t{}",
                r.name.to_ascii(),
                r.ttl,
                r.record_type(),
                r.data
            ))?;
        }
        let what = match (code, answer.answers.is_empty()) {
            (ResponseCode::NoError, true) => format!("no {rtype} record (NODATA)"),
            (ResponseCode::NoError, false) => format!("{} record(s)", answer.answers.len()),
            (other, _) => other.to_string(),
        };
        p.status(format!(
            "{what}; answered by {}{}",
            if source == "in-process" {
                "devenv in-process (no resolver running)".to_string()
            } else {
                source.clone()
            },
            if answer.metadata.authoritative {
                ", authoritative"
            } else {
                ""
            }
        ));
    }
    if code != ResponseCode::NoError {
        return Err(Failure::check_failed(format!("{} {rtype}: {code}", name.to_ascii())).into());
    }
    Ok(())
}

fn mechanism(args: &DnsInstallArgs) -> anyhow::Result<os::Mechanism> {
    if let Some(m) = args.mechanism {
        return Ok(match m {
            MechanismArg::SystemdResolved => os::Mechanism::SystemdResolved,
            MechanismArg::NetworkManager => os::Mechanism::NetworkManager,
            MechanismArg::Macos => os::Mechanism::Macos,
            MechanismArg::Windows => os::Mechanism::Windows,
        });
    }
    os::detect(&args.root).ok_or_else(|| {
        Failure::environment(
            "this host has no per-domain DNS routing devenv knows: neither systemd-resolved nor NetworkManager in dnsmasq mode",
            Some("point your resolver's domain forwarding at devenv by hand (dnsmasq: `server=/<domain>/127.0.0.1#<port>`), or pick one with --mechanism and --dry-run to see the file".to_string()),
        )
        .into()
    })
}

fn print_plan(p: &Printer, plan: &os::Plan, dry_run: bool) -> anyhow::Result<()> {
    if p.format == Format::Json {
        return p.json(&serde_json::json!({"dry_run": dry_run, "plan": plan}));
    }
    let mut out = String::new();
    for f in &plan.files {
        out.push_str(&format!("write {}:\n", f.path.display()));
        for line in f.contents.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    for c in &plan.commands {
        out.push_str(&format!("run {}\n", c.join(" ")));
    }
    for m in &plan.manual {
        out.push_str(&format!("run (as administrator, in PowerShell): {m}\n"));
    }
    p.data(out.trim_end())?;
    Ok(())
}

fn install(settings: &Settings, args: DnsInstallArgs) -> anyhow::Result<()> {
    let config = settings.load_config()?.config;
    let p = &settings.printer;
    let mechanism = mechanism(&args)?;
    let resolver = SocketAddr::new(config.dns.address, config.dns.port);
    let plan = os::plan(mechanism, &config.domain, resolver);
    for n in &plan.notes {
        p.warn(n);
    }
    if let Some(r) = running(&config).filter(|r| r.udp != resolver) {
        p.warn(format!("the running resolver listens on {}, not {resolver} (dns.address/dns.port) which this install points at", r.udp));
    }
    if args.dry_run || mechanism == os::Mechanism::Windows {
        print_plan(p, &plan, args.dry_run)?;
        if args.dry_run {
            p.status(format!(
                "dry run: nothing changed ({})",
                mechanism.describe()
            ));
        }
        return Ok(());
    }
    let installed = os::apply(&plan, &args.root)?;
    let dir = state::dir(&config.name)?;
    let record = serde_json::to_vec_pretty(&installed).context("encoding the install record")?;
    state::write_atomic(&dir.join(os::RECORD_FILE), &record, 0o644)?;
    if p.format == Format::Json {
        p.json(&installed)?;
    }
    for f in &installed.files {
        p.step("wrote", f.path.display().to_string());
    }
    for c in &installed.commands {
        p.step(
            if args.root == Path::new("/") {
                "ran"
            } else {
                "skipped"
            },
            c.join(" "),
        );
    }
    p.status(format!(
        "{} now sends {} to {resolver}",
        mechanism.describe(),
        config.domain
    ));
    Ok(())
}

fn uninstall(settings: &Settings, args: DnsInstallArgs) -> anyhow::Result<()> {
    let config = settings.load_config()?.config;
    let p = &settings.printer;
    let dir = state::dir(&config.name)?;
    let record_path = dir.join(os::RECORD_FILE);
    let installed: Option<os::Installed> = std::fs::read(&record_path)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok());
    let installed = match installed {
        Some(i) => i,
        None => {
            let mechanism = mechanism(&args)?;
            if mechanism == os::Mechanism::Windows {
                p.data(os::windows_uninstall(&config.domain))?;
                return Ok(());
            }
            let plan = os::plan(
                mechanism,
                &config.domain,
                SocketAddr::new(config.dns.address, config.dns.port),
            );
            os::recover(&plan, &args.root)
        }
    };
    let removed = os::undo(&installed, &args.root, args.dry_run)?;
    if p.format == Format::Json {
        p.json(&serde_json::json!({"dry_run": args.dry_run, "mechanism": installed.mechanism, "result": removed}))?;
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for f in &removed.removed {
            p.data(format!("{verb} {}", f.display()))?;
        }
    }
    for f in &removed.kept {
        p.warn(format!(
            "{} changed since devenv wrote it: left in place",
            f.display()
        ));
    }
    for f in &removed.missing {
        p.status(format!("{} was already gone", f.display()));
    }
    if !args.dry_run {
        if args.root == Path::new("/") {
            for c in &installed.commands {
                p.step("ran", c.join(" "));
            }
        }
        let _ = std::fs::remove_file(&record_path);
        p.status(format!(
            "{} no longer sends {} to devenv",
            installed.mechanism.describe(),
            installed.domain
        ));
    }
    Ok(())
}

/// Resolve `name` through the host's own resolver (getaddrinfo), with a timeout.
fn system_lookup(name: String) -> Option<Vec<IpAddr>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = (name.as_str(), 0)
            .to_socket_addrs()
            .map(|a| a.map(|s| s.ip()).collect::<Vec<_>>());
        let _ = tx.send(r.ok());
    });
    rx.recv_timeout(QUERY_TIMEOUT).ok().flatten()
}

fn status(settings: &Settings) -> anyhow::Result<()> {
    let config = settings.load_config()?.config;
    let p = &settings.printer;
    let run = running(&config);
    // An infrastructure name when there is one, else the name server's own.
    let probe = config
        .services()
        .iter()
        .flat_map(|s| s.routes.iter().map(|r| r.hostname.clone()))
        .next()
        .unwrap_or_else(|| format!("ns.{}", config.domain));
    let answering = run.as_ref().is_some_and(|r| {
        let mut name = Name::from_ascii(&config.domain).unwrap_or_default();
        name.set_fqdn(true);
        build_query(&name, RecordType::SOA)
            .and_then(|q| ask(r.udp, &q))
            .is_ok_and(|m| {
                m.metadata.authoritative && m.metadata.response_code == ResponseCode::NoError
            })
    });
    let zone = dns::Zone::compile(&Records::from_config(&config), 1, true)?;
    let expected: Vec<IpAddr> = {
        let mut n = Name::from_ascii(&probe).unwrap_or_default();
        n.set_fqdn(true);
        zone.lookup(&n, RecordType::A, 0)
            .map(|a| a.answers.iter().filter_map(|r| r.data.ip_addr()).collect())
            .unwrap_or_default()
    };
    let system = system_lookup(probe.clone());
    let host_routes = system
        .as_ref()
        .is_some_and(|ips| !ips.is_empty() && ips.iter().all(|ip| expected.contains(ip)));
    let installed: Option<os::Installed> = state::dir(&config.name)
        .ok()
        .and_then(|d| std::fs::read(d.join(os::RECORD_FILE)).ok())
        .and_then(|t| serde_json::from_slice(&t).ok());
    if p.format == Format::Json {
        p.json(&serde_json::json!({
            "running": run.is_some() && answering,
            "pid": run.as_ref().map(|r| r.pid),
            "udp": run.as_ref().map(|r| r.udp),
            "tcp": run.as_ref().map(|r| r.tcp),
            "domain": config.domain,
            "records": run.as_ref().map_or(zone.record_count(), |r| r.records),
            "forwarding": run.as_ref().map(|r| r.forwarding),
            "upstreams": run.as_ref().map(|r| r.upstreams.clone()),
            "host_resolves_domain": host_routes,
            "probe": {"name": probe, "expected": expected, "system": system},
            "installed": installed.as_ref().map(|i| i.mechanism),
        }))?;
    } else {
        let mut rows = vec![vec!["".to_string(), "".to_string()]];
        rows.clear();
        let state = match (&run, answering) {
            (Some(r), true) => format!("running (pid {}) on {}/udp, {}/tcp", r.pid, r.udp, r.tcp),
            (Some(r), false) => format!("not answering (pid {} on {})", r.pid, r.udp),
            (None, _) => "not running".to_string(),
        };
        rows.push(vec!["resolver".into(), state]);
        rows.push(vec!["domain".into(), config.domain.clone()]);
        rows.push(vec![
            "records".into(),
            run.as_ref()
                .map_or(zone.record_count(), |r| r.records)
                .to_string(),
        ]);
        if let Some(r) = &run {
            let ups: Vec<String> = r.upstreams.iter().map(ToString::to_string).collect();
            rows.push(vec![
                "upstreams".into(),
                if !r.forwarding {
                    "none (--no-forward)".into()
                } else if ups.is_empty() {
                    "none".into()
                } else {
                    ups.join(", ")
                },
            ]);
        }
        let seen = match &system {
            Some(ips) if !ips.is_empty() => ips
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            _ => "no answer".to_string(),
        };
        rows.push(vec![
            "host".into(),
            format!(
                "{} ({probe} -> {seen} via the system resolver)",
                if host_routes {
                    "sends the domain to devenv"
                } else {
                    "does not send the domain to devenv"
                }
            ),
        ]);
        rows.push(vec![
            "installed".into(),
            installed
                .as_ref()
                .map_or("no (see `devenv dns install --dry-run`)".to_string(), |i| {
                    i.mechanism.describe().to_string()
                }),
        ]);
        p.data(crate::output::table(&rows))?;
    }
    if run.is_none() || !answering {
        return Err(Failure::check_failed("the resolver is not running").into());
    }
    Ok(())
}

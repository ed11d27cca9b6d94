//! `devenv dns serve|query|install|uninstall|status`: run the resolver, ask it, route the
//! domain to it at the OS level, and report on it.
//!
//! A script over [`crate::dns`]: a running `serve` keeps a run file ([`crate::dns::runfile`])
//! that `query` and `status` read; this file only turns arguments into calls and prints.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};

use crate::cli::{DnsArgs, DnsCommand, DnsInstallArgs, DnsQueryArgs, DnsServeArgs, MechanismArg};
use crate::dns::{self, Forwarder, Handler, RunFile, Running, Store, client, os};
use crate::error::Failure;
use crate::output::{Format, Printer};
use crate::state;

use super::Settings;

pub fn run(settings: &Settings, args: DnsArgs) -> anyhow::Result<()> {
    match args.command {
        DnsCommand::Serve(a) => serve(settings, a),
        DnsCommand::Query(a) => query(settings, a),
        DnsCommand::Install(a) => install(settings, a.args, a.force),
        DnsCommand::Uninstall(a) => uninstall(settings, a),
        DnsCommand::Status => status(settings),
    }
}

fn serve(settings: &Settings, args: DnsServeArgs) -> anyhow::Result<()> {
    let loaded = settings.load_environment(false)?;
    let config = loaded.config;
    let p = &settings.printer;
    let ip = args.address.unwrap_or(config.dns.address);
    if !dns::records::is_loopback(ip) && !config.bind.allow_non_loopback {
        return Err(Failure::bad_input(
            format!("{ip} is outside loopback: the resolver would be reachable from the network"),
            Some("use a loopback address, or set `bind.allow_non_loopback: true` in devenv.yaml (clients off this host then get only the zone)".to_string()),
        )
        .into());
    }
    let listen = SocketAddr::new(ip, args.port.unwrap_or(config.dns.port));
    let forwarding = !args.no_forward;
    let upstreams = if forwarding {
        dns::forward::choose_upstreams(&config, &args.upstreams, listen)
    } else {
        Vec::new()
    };
    if forwarding && upstreams.is_empty() {
        p.warn(format!(
            "no upstream resolvers (none in dns.upstreams, none usable in {}): names outside {} will fail; use --upstream or --no-forward",
            dns::forward::RESOLV_CONF,
            config.domain
        ));
    }
    let state_dir = state::dir(&config.name).ok();
    let records = dns::routes::records(&config, state_dir.as_deref());
    let store = Arc::new(Store::new(records, forwarding)?);
    let forwarder = forwarding.then(|| Arc::new(Forwarder::new(upstreams.clone())));
    let handler = Handler::new(store.clone(), forwarder);
    // One resolver per environment: held until this process ends.
    let _claim = match state_dir.as_deref() {
        Some(dir) => RunFile::claim(dir)?,
        None => None,
    };
    // Every TCP connection and forwarded query takes a descriptor: take all the system allows.
    dns::tcp::raise_open_file_limit();
    runtime()?.block_on(async {
        let running = Running::start(listen, handler)?;
        let mut run = RunFile {
            pid: std::process::id(),
            udp: running.udp_addr(),
            tcp: running.tcp_addr(),
            domain: config.domain.clone(),
            forwarding,
            upstreams: upstreams.clone(),
            records: 0,
            serial: 0,
            config: loaded.path.clone(),
        };
        run.refresh(&store.snapshot());
        // Before the address is printed: whoever reads it may ask `query`, which reads this.
        run.publish(state_dir.as_deref());
        if p.format == Format::Json {
            p.json(&serde_json::json!({"udp": run.udp, "tcp": run.tcp, "pid": run.pid, "domain": run.domain}))?;
        } else {
            p.data(run.udp.to_string())?;
        }
        let others = if !forwarding {
            "other names are REFUSED".to_string()
        } else if upstreams.is_empty() {
            "other names forwarded to nobody".to_string()
        } else {
            let list: Vec<String> = upstreams.iter().map(ToString::to_string).collect();
            format!("other names forwarded to {}", list.join(", "))
        };
        p.status(format!(
            "serving {} on {}/udp and {}/tcp ({} records); {others}",
            config.domain, run.udp, run.tcp, run.records
        ));
        if !dns::records::is_loopback(ip) {
            p.warn(format!("listening on {ip}: clients off loopback get only {}, never forwarding", config.domain));
        }

        let stop = Arc::new(AtomicBool::new(false));
        if let Some(path) = loaded.path.clone() {
            tokio::spawn(dns::server::follow_config(path, store.clone(), stop.clone()));
        }
        if let Some(dir) = state_dir.clone() {
            tokio::spawn(dns::routes::follow(config.clone(), dir, store.clone(), stop.clone()));
        }
        dns::runfile::publish_until_signal(run, state_dir.as_deref(), &store, |run| {
            p.status(format!("records updated: {} records, serial {}", run.records, run.serial));
        })
        .await?;
        p.status("shutting down");
        stop.store(true, Ordering::Relaxed);
        running.shutdown().await?;
        if let Some(dir) = &state_dir {
            RunFile::remove_own(dir);
        }
        Ok(())
    })
}

/// The runtime of a `dns` command: one thread, since the resolver's UDP fast path has its own
/// and the rest (TCP, forwarding, one query) is light.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The run file of a resolver for `config` that is still alive.
fn running(config: &crate::config::Config) -> Option<RunFile> {
    RunFile::running(&state::dir(&config.name).ok()?)
}

fn query(settings: &Settings, args: DnsQueryArgs) -> anyhow::Result<()> {
    let config = settings.load_environment(false)?.config;
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
    let message = client::build_query(&name, rtype);
    let server = args.server.or_else(|| running(&config).map(|r| r.udp));
    let (answer, source) = runtime()?.block_on(async {
        anyhow::Ok(match server {
            Some(server) => (client::ask(server, &message).await?, server.to_string()),
            None => (
                client::answer_in_process(&config, &message).await?,
                "in-process".to_string(),
            ),
        })
    })?;
    let record = |r: &hickory_proto::rr::Record| serde_json::json!({"name": r.name.to_ascii(), "ttl": r.ttl, "type": r.record_type().to_string(), "data": r.data.to_string()});
    let code = answer.metadata.response_code;
    if p.format == Format::Json {
        p.json(&serde_json::json!({
            "name": name.to_ascii(),
            "type": rtype.to_string(),
            "server": source,
            "rcode": rcode_name(code),
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
        return Err(Failure::check_failed(format!(
            "{} {rtype}: {}",
            name.to_ascii(),
            rcode_name(code)
        ))
        .into());
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

fn print_plan(
    p: &Printer,
    plan: &os::Plan,
    login: Option<&dns::login::Plan>,
    dry_run: bool,
) -> anyhow::Result<()> {
    if p.format == Format::Json {
        return p.json(&serde_json::json!({"dry_run": dry_run, "plan": plan, "login": login}));
    }
    let mut out = String::new();
    let files = plan.files.iter().chain(login.iter().flat_map(|l| &l.files));
    for f in files {
        out.push_str(&format!("write {}:\n", f.path.display()));
        for line in f.contents.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    for c in &plan.commands {
        out.push_str(&format!("run {}\n", c.join(" ")));
    }
    for c in login.iter().flat_map(|l| &l.start) {
        out.push_str(&format!("run {}\n", c.args.join(" ")));
    }
    for m in &plan.manual {
        out.push_str(&format!("run (as administrator, in PowerShell): {m}\n"));
    }
    for m in login.iter().flat_map(|l| &l.manual) {
        out.push_str(&format!("run (as yourself, in PowerShell): {m}\n"));
    }
    p.data(out.trim_end())?;
    Ok(())
}

fn install(settings: &Settings, args: DnsInstallArgs, force: bool) -> anyhow::Result<()> {
    let loaded = settings.load_environment(false)?;
    let config = &loaded.config;
    let p = &settings.printer;
    if let Some(taken) = crate::config::domain::taken_from_real_dns(&config.domain) {
        if !force {
            return Err(Failure::bad_input(
                format!("domain `{}`: {taken}", config.domain),
                Some(format!(
                    "choose a domain of your own under `.test`, `.internal` or `.local` (e.g. `{}.local`) in devenv.yaml, or pass --force to send `{}` to devenv all the same",
                    config.name, config.domain
                )),
            )
            .into());
        }
        p.warn(format!(
            "domain `{}`: {taken} (installed all the same: --force)",
            config.domain
        ));
    }
    let mechanism = mechanism(&args)?;
    let resolver = SocketAddr::new(config.dns.address, config.dns.port);
    let plan = os::plan(mechanism, &config.domain, resolver);
    for n in &plan.notes {
        p.warn(n);
    }
    if let Some(r) = running(config).filter(|r| r.udp != resolver) {
        p.warn(format!("the running resolver listens on {}, not {resolver} (dns.address/dns.port) which this install points at", r.udp));
    }
    let at = os::record_dir(&config.name)?;
    let login = if args.no_login_service {
        None
    } else {
        login_plan(p, &loaded, &args.root, &at.dir)?
    };
    if args.dry_run || mechanism == os::Mechanism::Windows {
        print_plan(p, &plan, login.as_ref(), args.dry_run)?;
        if args.dry_run {
            p.status(format!(
                "dry run: nothing changed ({})",
                mechanism.describe()
            ));
        }
        return Ok(());
    }
    let previous = os::load_record(&at.dir);
    let mut installed = os::apply(&plan, &args.root, previous.as_ref())?;
    let mut ran = Vec::new();
    if let Some(login) = &login {
        // The service manager runs the resolver from now on: the one `up` started goes.
        if let dns::service::Stopped::Stopped(pid) = dns::service::stop(&at.dir)? {
            p.step(
                "stopped",
                format!("the background resolver (pid {pid}); the login service runs it now"),
            );
        }
        let (done, calls) = dns::login::apply(
            login,
            &args.root,
            previous.as_ref().and_then(|i| i.login.as_ref()),
        )?;
        installed.login = Some(done);
        ran = calls;
    }
    os::save_record(&at, &installed)?;
    if p.format == Format::Json {
        p.json(&serde_json::json!({"installed": installed, "ran": ran}))?;
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
    if let Some(l) = &installed.login {
        for f in &l.files {
            p.step("wrote", f.path.display().to_string());
        }
    }
    report_calls(p, &ran);
    p.status(format!(
        "{} now sends {} to {resolver}",
        mechanism.describe(),
        config.domain
    ));
    if let Some(l) = &installed.login {
        p.status(format!(
            "the resolver starts at login ({} {})",
            l.manager.describe(),
            l.unit
        ));
    }
    Ok(())
}

/// The login service for this environment's resolver, if this host has a service manager
/// devenv knows (else a warning: `up` still starts the resolver).
fn login_plan(
    p: &Printer,
    loaded: &crate::config::LoadedConfig,
    root: &Path,
    state_dir: &Path,
) -> anyhow::Result<Option<dns::login::Plan>> {
    let Some(manager) = dns::login::detect(root) else {
        p.warn("no systemd user manager here: the resolver is not started at login (`devenv up` starts it)");
        return Ok(None);
    };
    let Some(user) = os::invoking_user() else {
        p.warn("no home directory (HOME): the resolver is not started at login (`devenv up` starts it)");
        return Ok(None);
    };
    let exe = std::env::current_exe().context("finding the devenv binary")?;
    let config = match &loaded.path {
        Some(path) => {
            Some(std::path::absolute(path).with_context(|| format!("finding {}", path.display()))?)
        }
        None => None,
    };
    let resolver = dns::login::Resolver {
        name: loaded.config.name.clone(),
        domain: loaded.config.domain.clone(),
        exe,
        config,
        state_dir: state_dir.to_path_buf(),
    };
    Ok(Some(dns::login::plan(manager, &resolver, &user)))
}

/// Say which service-manager calls failed without stopping the command (those that may).
fn report_calls(p: &Printer, ran: &[dns::login::Ran]) {
    for r in ran {
        match &r.failed {
            None => p.step("ran", &r.command),
            Some(why) => p.status(format!("`{}` did not succeed ({why}); going on", r.command)),
        }
    }
}

fn uninstall(settings: &Settings, args: DnsInstallArgs) -> anyhow::Result<()> {
    let config = settings.load_environment(false)?.config;
    let p = &settings.printer;
    let dir = os::record_dir(&config.name)?.dir;
    let installed = match os::load_record(&dir) {
        Some(i) => i,
        None => {
            let mechanism = mechanism(&args)?;
            if mechanism == os::Mechanism::Windows {
                p.data(os::windows_uninstall(&config.domain))?;
                p.data(dns::login::windows_uninstall(&config.name))?;
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
    let (login, ran) = match &installed.login {
        Some(l) => {
            let (removed, ran) = dns::login::undo(l, &args.root, args.dry_run)?;
            (Some(removed), ran)
        }
        None => (None, Vec::new()),
    };
    let mut removed = os::undo(&installed, &args.root, args.dry_run)?;
    if let Some(l) = login {
        removed.removed.extend(l.removed);
        removed.dirs.extend(l.dirs);
        removed.kept.extend(l.kept);
        removed.missing.extend(l.missing);
    }
    if p.format == Format::Json {
        p.json(&serde_json::json!({"dry_run": args.dry_run, "mechanism": installed.mechanism, "result": removed, "ran": ran}))?;
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for f in &removed.removed {
            p.data(format!("{verb} {}", f.display()))?;
        }
        for d in &removed.dirs {
            p.data(format!("{verb} {}/", d.display()))?;
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
    report_calls(p, &ran);
    if !args.dry_run {
        if args.root == Path::new("/") {
            for c in &installed.commands {
                p.step("ran", c.join(" "));
            }
        }
        if let Err(e) = os::forget_record(&dir) {
            p.warn(format!("{e:#}"));
        }
        p.status(format!(
            "{} no longer sends {} to devenv",
            installed.mechanism.describe(),
            installed.domain
        ));
    }
    Ok(())
}

fn status(settings: &Settings) -> anyhow::Result<()> {
    let config = settings.load_environment(false)?.config;
    let p = &settings.printer;
    let run = running(&config);
    let answering = match &run {
        Some(r) => runtime()?.block_on(client::answers_for(r.udp, &config.domain)),
        None => false,
    };
    let records = dns::routes::records(&config, state::dir(&config.name).ok().as_deref());
    let zone = dns::Zone::compile(&records, 1, true)?;
    let host = os::check_host(&config, &zone, client::QUERY_TIMEOUT);
    let installed = os::record_dir(&config.name)
        .ok()
        .and_then(|d| os::load_record(&d.dir));
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
            "host_resolves_domain": host.routed,
            "probe": {"name": host.name, "expected": host.expected, "system": host.system},
            "installed": installed.as_ref().map(|i| i.mechanism),
        }))?;
    } else {
        let mut rows: Vec<Vec<String>> = Vec::new();
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
        let seen = match &host.system {
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
                "{} ({} -> {seen} via the system resolver)",
                if host.routed {
                    "sends the domain to devenv"
                } else {
                    "does not send the domain to devenv"
                },
                host.name
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

/// The standard mnemonic of a response code (`NOERROR`, `NXDOMAIN`, ...), as dig prints it.
fn rcode_name(code: ResponseCode) -> String {
    match u16::from(code) {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

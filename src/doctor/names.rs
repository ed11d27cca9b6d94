//! Checks of names: devenv's resolver runs and answers, the OS sends the domain to it (a
//! lookup through the system resolver, as any program does), and no mDNS lookup delays
//! `.local` names first.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};

use super::{Check, Facts, Finding, Group};
use crate::config::Config;
use crate::dns::{self, RunFile, Zone, client, os};

/// The name other checks need for the resolver.
pub const RESOLVER: &str = "resolver";

/// How long the system resolver gets for one name.
const SYSTEM_LOOKUP: Duration = Duration::from_secs(5);

pub fn checks(facts: &Facts) -> Vec<Check<'_>> {
    vec![
        Check::new(RESOLVER, Group::Names, resolver(facts)),
        Check::new("os-routing", Group::Names, routing(facts))
            .needs(RESOLVER)
            .timeout(SYSTEM_LOOKUP + Duration::from_secs(2)),
        Check::new("mdns", Group::Names, async { mdns(facts) }),
    ]
}

/// The zone devenv serves for `facts`' environment (devenv.yaml and the routes).
/// The zone devenv.yaml gives, or the failing finding that says how to fix it.
fn zone(facts: &Facts) -> Result<Zone, Finding> {
    let records = dns::routes::records(&facts.config, Some(&facts.state_dir));
    Zone::compile(&records, 1, true).map_err(|e| {
        Finding::fail(
            format!("{e:#}"),
            "fix devenv.yaml (`devenv config validate`)",
        )
    })
}

/// The infrastructure name the checks resolve (the one `devenv dns status` resolves), and the
/// addresses the zone gives it.
fn probe(config: &Config, zone: &Zone) -> (String, Vec<IpAddr>) {
    let host = os::check_host_name(config);
    let mut name = Name::from_ascii(&host).unwrap_or_default();
    name.set_fqdn(true);
    let expected = zone
        .lookup(&name, RecordType::A, 0)
        .map(|a| a.answers.iter().filter_map(|r| r.data.ip_addr()).collect())
        .unwrap_or_default();
    (host, expected)
}

fn list(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        return "nothing".into();
    }
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

const START_FIX: &str = "start it: `devenv up` (starts it in the background), or `devenv dns serve` in a terminal; `devenv dns status` shows where it runs";

async fn resolver(facts: &Facts) -> Finding {
    let Some(run) = RunFile::running(&facts.state_dir) else {
        if !facts.config.dns.enabled {
            return Finding::skip(
                "dns.enabled is false in devenv.yaml and no resolver of yours runs",
            );
        }
        return Finding::fail(
            format!(
                "devenv's resolver is not running (no live {} in {})",
                dns::runfile::FILE,
                facts.state_dir.display()
            ),
            START_FIX,
        );
    };
    let zone = match zone(facts) {
        Ok(z) => z,
        Err(finding) => return finding,
    };
    let (host, expected) = probe(&facts.config, &zone);
    let mut name = match Name::from_ascii(&host) {
        Ok(n) => n,
        Err(e) => return Finding::fail(format!("`{host}`: {e}"), "fix devenv.yaml"),
    };
    name.set_fqdn(true);
    let at = format!("pid {} on {}", run.pid, run.udp);
    let answer = match client::ask(run.udp, &client::build_query(&name, RecordType::A)).await {
        Ok(m) => m,
        Err(e) => {
            return Finding::fail(
                format!("the resolver ({at}) does not answer: {e:#}"),
                format!("stop it (`kill {}`) and {START_FIX}", run.pid),
            );
        }
    };
    let got: Vec<IpAddr> = answer
        .answers
        .iter()
        .filter_map(|r| r.data.ip_addr())
        .collect();
    if got.is_empty() || got.iter().any(|ip| !expected.contains(ip)) {
        return Finding::fail(
            format!(
                "the resolver ({at}) answers {} for {host}; devenv.yaml says {}",
                list(&got),
                list(&expected)
            ),
            format!(
                "restart it so it serves this devenv.yaml (`kill {}`, then `devenv up`)",
                run.pid
            ),
        );
    }
    Finding::ok(format!("{at}: {host} -> {}", list(&got)))
}

async fn routing(facts: &Facts) -> Finding {
    let zone = match zone(facts) {
        Ok(z) => z,
        Err(finding) => return finding,
    };
    let config = facts.config.clone();
    let host =
        tokio::task::spawn_blocking(move || os::check_host(&config, &zone, SYSTEM_LOOKUP)).await;
    let Ok(host) = host else {
        return Finding::fail("the system lookup did not finish", "run it again");
    };
    let seen = match &host.system {
        Some(ips) if !ips.is_empty() => list(ips),
        _ => "no answer".into(),
    };
    if host.routed {
        return Finding::ok(format!(
            "{} -> {seen} through the system resolver",
            host.name
        ));
    }
    Finding::fail(
        format!(
            "the system resolver gives {seen} for {}, devenv's resolver {}: the OS does not send `{}` to devenv",
            host.name,
            list(&host.expected),
            facts.config.domain
        ),
        "route the domain to devenv: `sudo devenv dns install` (`devenv dns install --dry-run` shows the change)",
    )
}

fn mdns(facts: &Facts) -> Finding {
    let nsswitch = if cfg!(target_os = "linux") {
        std::fs::read_to_string("/etc/nsswitch.conf").ok()
    } else {
        None
    };
    mdns_verdict(
        std::env::consts::OS,
        &facts.config.domain,
        nsswitch.as_deref(),
    )
}

/// Whether `.local` names go to mDNS before DNS on `os`: macOS always does (a miss costs
/// seconds); on Linux, nss-mdns in the `hosts:` line of nsswitch.conf does (and with
/// `[NOTFOUND=return]`, the name never reaches DNS at all).
pub fn mdns_verdict(os: &str, domain: &str, nsswitch: Option<&str>) -> Finding {
    let local = domain.trim_end_matches('.').to_ascii_lowercase();
    if !(local == "local" || local.ends_with(".local")) {
        return Finding::ok(format!(
            "{domain} is not under .local: no mDNS lookup first"
        ));
    }
    let fix = format!(
        "use a domain outside .local, e.g. `domain: {}` in devenv.yaml",
        local.trim_end_matches("local").to_string() + "test"
    );
    match os {
        "macos" => Finding::warn(
            format!(
                "macOS asks mDNS first for .local names: a lookup of a name under {domain} can take seconds"
            ),
            fix,
        ),
        "linux" => {
            let hosts = nsswitch.and_then(|text| {
                text.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim())
                    .find_map(|l| l.strip_prefix("hosts:").map(str::trim))
            });
            match hosts {
                Some(h) if h.split_whitespace().any(|s| s.starts_with("mdns")) => Finding::warn(
                    format!(
                        "/etc/nsswitch.conf sends .local names to mDNS first (`hosts: {h}`): names under {domain} may never reach devenv"
                    ),
                    fix,
                ),
                Some(h) => Finding::ok(format!("no mDNS before DNS (`hosts: {h}`)")),
                None => Finding::ok("no `hosts:` line in /etc/nsswitch.conf: no mDNS lookup"),
            }
        }
        other => Finding::skip(format!("not checked on {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn mdns_warns_on_macos_for_local_and_never_for_other_domains() {
        let f = mdns_verdict("macos", "macula.local", None);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(
            f.fix.as_deref(),
            Some("use a domain outside .local, e.g. `domain: macula.test` in devenv.yaml")
        );
        assert_eq!(
            mdns_verdict("macos", "macula.test", None).status,
            Status::Ok
        );
    }

    #[test]
    fn mdns_on_linux_follows_the_hosts_line_of_nsswitch() {
        let avahi = "passwd: files\nhosts: files mdns4_minimal [NOTFOUND=return] dns # comment\n";
        let f = mdns_verdict("linux", "macula.local", Some(avahi));
        assert_eq!(f.status, Status::Warn, "{f:?}");
        assert!(
            f.detail.contains("mdns4_minimal [NOTFOUND=return] dns"),
            "{f:?}"
        );
        let plain = mdns_verdict("linux", "macula.local", Some("hosts:          files dns\n"));
        assert_eq!(plain.status, Status::Ok);
        assert_eq!(plain.detail, "no mDNS before DNS (`hosts: files dns`)");
    }
}

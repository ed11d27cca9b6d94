//! Checks a parsed [`Config`] for impossible values and reports every problem at once.
//!
//! Pure: no file, network or engine is looked at (whether a port is free right now is
//! preflight's business, not this module's).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::catalog::{self, NAMES};
use super::locate::Locations;
use super::{Config, Protocol, RecordKind, RoutingMode};
use crate::error::Failure;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in devenv.yaml, as a dotted path (`services.grafana.ports.http`).
    pub path: String,
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// Every problem found, in the order of the checks.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    fn add(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One bad-input failure listing every problem with its position in `origin`.
    pub fn into_failure(self, origin: &str, locations: &Locations) -> Failure {
        // In file order, so a person can fix them top to bottom.
        let mut located: Vec<_> = self
            .0
            .iter()
            .map(|p| (locations.find(&p.path), p))
            .collect();
        located.sort_by_key(|(at, _)| at.unwrap_or((usize::MAX, 0)));
        let mut lines = Vec::new();
        for (at, p) in located {
            let at = match at {
                Some((line, col)) => format!("{origin}:{line}:{col}"),
                None => origin.to_string(),
            };
            lines.push(format!(
                "{at}: {}: {}\n  hint: {}",
                p.path, p.message, p.hint
            ));
        }
        let head = if self.0.len() == 1 {
            String::new()
        } else {
            format!("{origin}: {} problems\n", self.0.len())
        };
        Failure::bad_input(format!("{head}{}", lines.join("\n")), None)
    }
}

/// Check `config`, returning every problem.
pub fn validate(config: &Config) -> Problems {
    let mut p = Problems::default();
    check_name(config, &mut p);
    if let Err(why) = check_dns_name(&config.domain) {
        p.add("domain", format!("`{}` is not a valid DNS domain: {why}", config.domain), "use lowercase labels of letters, digits and `-`, separated by dots, e.g. `macula.local`");
    }
    check_images(config, &mut p);
    check_services(config, &mut p);
    check_addresses(config, &mut p);
    check_hostnames(config, &mut p);
    check_bindings(config, &mut p);
    check_dns(config, &mut p);
    check_cluster(config, &mut p);
    p
}

fn check_name(config: &Config, p: &mut Problems) {
    let n = &config.name;
    let ok = !n.is_empty()
        && n.len() <= 40
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-');
    if !ok {
        p.add(
            "name",
            format!("`{n}` is not a valid environment name"),
            "use 1 to 40 lowercase letters, digits and `-`, not starting or ending with `-` (it names the cluster, network and containers)",
        );
    }
}

/// Why `name` is not a valid DNS name, if it is not.
pub fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label".into());
        }
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "label `{label}` has a character other than letters, digits and `-`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` starts or ends with `-`"));
        }
    }
    Ok(())
}

/// Why an image reference is not pinned, if it is not.
fn check_image(image: &str) -> Result<(), String> {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return Err("it is empty or has white space".into());
    }
    if image.contains("@sha256:") {
        return Ok(());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => Err("it has no tag, which means `:latest`".into()),
        Some((_, "latest")) => Err("`:latest` is not a pinned version".into()),
        Some((_, "")) => Err("its tag is empty".into()),
        Some(_) => Ok(()),
    }
}

fn check_images(config: &Config, p: &mut Problems) {
    if let Err(why) = check_image(&config.cluster.node_image) {
        p.add(
            "cluster.node_image",
            format!("image `{}` is not pinned: {why}", config.cluster.node_image),
            "name a version tag or a digest, e.g. `kindest/node:v1.32.2`",
        );
    }
    for (name, s) in &config.services {
        if let Some(image) = &s.image
            && let Err(why) = check_image(image)
        {
            p.add(
                format!("services.{name}.image"),
                format!("image `{image}` is not pinned: {why}"),
                "name a version tag or a digest, e.g. `registry:3.0.0`",
            );
        }
    }
}

fn check_services(config: &Config, p: &mut Problems) {
    for (name, settings) in &config.services {
        if !NAMES.contains(&name.as_str()) {
            let near = NAMES.iter().find(|n| similar(n, name));
            let hint = match near {
                Some(n) => format!("did you mean `{n}`? The services are: {}", NAMES.join(", ")),
                None => format!("the services are: {}", NAMES.join(", ")),
            };
            p.add(
                format!("services.{name}"),
                format!("there is no service `{name}`"),
                hint,
            );
            continue;
        }
        let known = catalog::port_names(name);
        for port in settings.ports.keys() {
            if !known.contains(&port.as_str()) {
                p.add(
                    format!("services.{name}.ports.{port}"),
                    format!("service `{name}` has no port `{port}`"),
                    format!("its ports are: {}", known.join(", ")),
                );
            }
        }
        if let Some(hostnames) = &settings.hostnames {
            if name == "gateway" || name == "pdns-db" {
                p.add(
                    format!("services.{name}.hostnames"),
                    format!("service `{name}` is not reached by hostname"),
                    "remove the key",
                );
            }
            for (i, h) in hostnames.iter().enumerate() {
                let fqdn = config.fqdn(h);
                if let Err(why) = check_dns_name(&fqdn) {
                    p.add(
                        format!("services.{name}.hostnames[{i}]"),
                        format!("`{h}` is not a valid hostname: {why}"),
                        "use a label such as `grafana`, or a name ending in the domain",
                    );
                } else if !h.contains('.') || h.ends_with(&format!(".{}", config.domain)) {
                    // a plain label or a name under the domain
                } else {
                    p.add(
                        format!("services.{name}.hostnames[{i}]"),
                        format!("`{h}` is not under the domain `{}`", config.domain),
                        format!(
                            "use a plain label, or a name ending in `.{}`",
                            config.domain
                        ),
                    );
                }
            }
        }
    }
}

/// A cheap "did you mean": same letters give or take one edit, or one is a prefix.
fn similar(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.starts_with(b) || b.starts_with(a) {
        return true;
    }
    // Levenshtein distance <= 2.
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

fn check_addresses(config: &Config, p: &mut Problems) {
    let hint = "use a loopback address (127.0.0.0/8 or ::1), or set `bind.allow_non_loopback: true` to publish on the network on purpose";
    let mut check = |path: String, ip: IpAddr| {
        if !config.bind.allow_non_loopback && !is_loopback(ip) {
            p.add(
                path,
                format!("{ip} is outside loopback and would be reachable from the network"),
                hint,
            );
        }
    };
    for (name, s) in &config.services {
        if let Some(ip) = s.address {
            check(format!("services.{name}.address"), ip);
        }
    }
    check("dns.address".into(), config.dns.address);
    check(
        "cluster.listen_address".into(),
        IpAddr::V4(config.cluster.listen_address),
    );
    check(
        "dns.infrastructure".into(),
        IpAddr::V4(config.dns.infrastructure),
    );
    check(
        "dns.applications".into(),
        IpAddr::V4(config.dns.applications),
    );
}

fn check_hostnames(config: &Config, p: &mut Problems) {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for svc in config.services() {
        for (i, route) in svc.routes.iter().enumerate() {
            let path = if config
                .services
                .get(&svc.name)
                .and_then(|s| s.hostnames.as_ref())
                .is_some()
            {
                format!("services.{}.hostnames[{i}]", svc.name)
            } else {
                format!("services.{}", svc.name)
            };
            let name = route.hostname.to_ascii_lowercase();
            if let Some(other) = seen.get(&name) {
                p.add(
                    path,
                    format!("hostname `{name}` is also used by {other}"),
                    "give each service its own hostnames",
                );
            } else {
                seen.insert(name, format!("service `{}`", svc.name));
            }
        }
    }
    for (i, r) in config.dns.records.iter().enumerate() {
        let name = config.fqdn(&r.name).to_ascii_lowercase();
        if let Some(other) = seen.get(&name) {
            p.add(
                format!("dns.records[{i}].name"),
                format!("`{name}` is already the hostname of {other}"),
                "pick another name, or change the service's hostnames",
            );
        }
    }
}

/// Something that listens on a host address and port.
struct Binding {
    path: String,
    ip: IpAddr,
    port: u16,
    protocol: Protocol,
}

fn overlaps(a: &Binding, b: &Binding) -> bool {
    a.port == b.port
        && a.protocol == b.protocol
        && (a.ip == b.ip || a.ip.is_unspecified() || b.ip.is_unspecified())
}

fn check_bindings(config: &Config, p: &mut Problems) {
    let mut all = Vec::new();
    for svc in config.services() {
        for port in &svc.ports {
            all.push(Binding {
                path: format!("services.{}.ports.{}", svc.name, port.name),
                ip: port.host_ip,
                port: port.host_port,
                protocol: port.protocol,
            });
        }
    }
    let c = &config.cluster;
    let listen = IpAddr::V4(c.listen_address);
    for (path, port, protocol) in [
        ("cluster.http_port", c.http_port, Protocol::Tcp),
        ("cluster.https_port", c.https_port, Protocol::Tcp),
        ("cluster.quic_port", c.quic_port, Protocol::Udp),
    ] {
        if port == 0 {
            p.add(
                path,
                "port 0 cannot be mapped",
                "use a port from 1 to 65535",
            );
            continue;
        }
        all.push(Binding {
            path: path.into(),
            ip: listen,
            port,
            protocol,
        });
    }
    if config.routing.mode == RoutingMode::SplitIp {
        let apps = IpAddr::V4(config.dns.applications);
        for port in [80, 443] {
            all.push(Binding {
                path: "dns.applications".into(),
                ip: apps,
                port,
                protocol: Protocol::Tcp,
            });
        }
    }
    if config.dns.port != 0 {
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            all.push(Binding {
                path: "dns.port".into(),
                ip: config.dns.address,
                port: config.dns.port,
                protocol,
            });
        }
    }
    for (i, a) in all.iter().enumerate() {
        if let Some(b) = all[..i].iter().find(|b| overlaps(a, b) && b.path != a.path) {
            p.add(
                a.path.clone(),
                format!(
                    "{}:{}/{} is also used by {}",
                    a.ip,
                    a.port,
                    a.protocol.as_str(),
                    b.path
                ),
                "move one of them to another port or loopback address",
            );
        }
    }
}

fn check_dns(config: &Config, p: &mut Problems) {
    let d = &config.dns;
    if d.ttl > 86_400 {
        p.add(
            "dns.ttl",
            format!("TTL {} is longer than a day", d.ttl),
            "use a short TTL (seconds), e.g. 5",
        );
    }
    if config.routing.mode == RoutingMode::SplitIp && d.applications == d.infrastructure {
        p.add(
            "dns.applications",
            "applications and infrastructure share one address in split-ip mode",
            "use another loopback address such as 127.0.0.2, or `routing.mode: ports`",
        );
    }
    for (i, up) in d.upstreams.iter().enumerate() {
        if up.ip() == d.address && up.port() == d.port {
            p.add(
                format!("dns.upstreams[{i}]"),
                format!("{up} is devenv's own resolver: queries would loop"),
                "name another resolver",
            );
        }
    }
    for (i, r) in d.records.iter().enumerate() {
        let fqdn = config.fqdn(&r.name);
        if let Err(why) = check_dns_name(&fqdn) {
            p.add(
                format!("dns.records[{i}].name"),
                format!("`{}` is not a valid name: {why}", r.name),
                "use a label such as `api`, or a name ending in the domain",
            );
        } else if r.name.contains('.')
            && !r.name.ends_with(&format!(".{}", config.domain))
            && r.name != config.domain
        {
            p.add(
                format!("dns.records[{i}].name"),
                format!("`{}` is not under the domain `{}`", r.name, config.domain),
                "devenv only answers for its own domain",
            );
        }
        let ok = match r.kind {
            RecordKind::A => r.value.parse::<std::net::Ipv4Addr>().is_ok(),
            RecordKind::AAAA => r.value.parse::<std::net::Ipv6Addr>().is_ok(),
            RecordKind::CNAME => check_dns_name(r.value.trim_end_matches('.')).is_ok(),
            RecordKind::TXT => r.value.len() <= 255,
        };
        if !ok {
            p.add(format!("dns.records[{i}].value"), format!("`{}` is not valid data for a {:?} record", r.value, r.kind), "A takes an IPv4 address, AAAA an IPv6 address, CNAME a host name, TXT up to 255 characters");
        }
    }
}

fn check_cluster(config: &Config, p: &mut Problems) {
    let c = &config.cluster;
    if c.workers > 8 {
        p.add(
            "cluster.workers",
            format!("{} workers is more than a laptop holds", c.workers),
            "use 0 to 8 workers",
        );
    }
    let prefix = config.network.subnet.prefix_len();
    if prefix > 28 {
        p.add(
            "network.subnet",
            format!("/{prefix} has too few addresses for the services"),
            "use a /28 or larger, e.g. 172.30.80.0/24",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        let problems = validate(&Config::default());
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn dns_names() {
        assert!(check_dns_name("macula.local").is_ok());
        assert!(check_dns_name("a-b.c1").is_ok());
        for bad in ["", "a..b", "-a.b", "a_b.c", "a b", &"x".repeat(64)] {
            assert!(check_dns_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images_must_be_pinned() {
        assert!(check_image("registry:3.0.0").is_ok());
        assert!(check_image("localhost:5001/x@sha256:abc").is_ok());
        assert!(check_image("localhost:5001/x").is_err());
        assert!(check_image("nginx:latest").is_err());
        assert!(check_image("nginx").is_err());
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let mut c = Config {
            name: String::new(),
            domain: "bad_domain".into(),
            ..Default::default()
        };
        c.dns.ttl = 100_000;
        assert_eq!(validate(&c).0.len(), 3);
    }
}

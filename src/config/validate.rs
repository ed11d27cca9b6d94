//! Checks a parsed [`Config`] for impossible values and reports every problem at once.
//!
//! Pure: no file, network or engine is looked at (whether a port is free right now is
//! preflight's business, not this module's).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::catalog::{self, NAMES};
use super::locate::Locations;
use super::{Config, Protocol, RecordKind, RoutingMode};
use crate::error::Failure;

/// The longest part of a user's value echoed in a message; the rest is elided.
const ECHO_MAX: usize = 80;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in devenv.yaml, as a dotted path (`services.grafana.ports.http`).
    pub path: String,
    pub message: String,
    /// What to do about it.
    pub hint: String,
    /// Other keys the problem involves (the other side of a clash), where to point when the
    /// file does not have `path` itself (a default it clashes with).
    pub related: Vec<String>,
    /// Point at the value rather than at its key.
    pub at_value: bool,
}

impl Problem {
    /// A problem with `path`.
    pub fn new(
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
            hint: hint.into(),
            related: Vec::new(),
            at_value: false,
        }
    }

    /// Where in `origin` the problem is: its own key (or value), else the first related key
    /// the file has, else the nearest enclosing key.
    fn position(&self, locations: &Locations) -> Option<(usize, usize)> {
        let own = if self.at_value {
            locations
                .value(&self.path)
                .or_else(|| locations.exact(&self.path))
        } else {
            locations.exact(&self.path)
        };
        own.or_else(|| self.related.iter().find_map(|r| locations.exact(r)))
            .or_else(|| locations.find(&self.path))
            .or_else(|| self.related.iter().find_map(|r| locations.find(r)))
    }
}

/// `value` as a message shows it: whole when short, else its start and its length, so that a
/// 50 MB value does not fill the terminal.
pub fn shorten(value: &str) -> String {
    if value.chars().count() <= ECHO_MAX {
        return value.to_string();
    }
    let head: String = value.chars().take(ECHO_MAX - 20).collect();
    format!("{head}… ({} characters)", value.chars().count())
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
        self.0.push(Problem::new(path, message, hint));
    }

    /// A problem between `path` and `related` keys (a clash with another setting).
    fn add_related(
        &mut self,
        path: impl Into<String>,
        related: Vec<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let mut p = Problem::new(path, message, hint);
        p.related = related;
        self.0.push(p);
    }

    /// Add one problem.
    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One bad-input failure listing every problem with its position in `origin`.
    pub fn into_failure(self, origin: &str, locations: &Locations) -> Failure {
        // In file order, so a person can fix them top to bottom.
        let mut located: Vec<_> = self.0.iter().map(|p| (p.position(locations), p)).collect();
        located.sort_by_key(|(at, _)| at.unwrap_or((usize::MAX, 0)));
        let mut lines = Vec::new();
        for (at, p) in located {
            let at = match at {
                Some((line, col)) => format!("{origin}:{line}:{col}"),
                None => origin.to_string(),
            };
            let path = if p.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", p.path)
            };
            lines.push(format!("{at}: {path}{}\n  hint: {}", p.message, p.hint));
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
    // Names under a bad domain are not checked against it: one problem, not one per name.
    let domain_ok = check_domain(config, &mut p);
    check_images(config, &mut p);
    check_services(config, domain_ok, &mut p);
    check_dependencies(config, &mut p);
    check_addresses(config, &mut p);
    if domain_ok {
        check_hostnames(config, &mut p);
    }
    check_bindings(config, &mut p);
    check_dns(config, domain_ok, &mut p);
    check_cluster(config, &mut p);
    check_mirror(config, &mut p);
    p
}

/// Whether `registry` (as image references name it) is devenv's own local registry: by its
/// names on the host (`localhost:<port>`, `127.0.0.1:<port>`), under the domain
/// (`registry.<domain>`, or any name there: they all lead to devenv), or on the `kind` network
/// (`<name>-registry:5000`).
fn is_own_registry(config: &Config, registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.parse::<u16>().is_ok())
        .map_or(registry, |(host, _)| host);
    host == "localhost"
        || host.starts_with("127.")
        || host == format!("{}-registry", config.name)
        || host.ends_with(&format!(".{}", config.domain))
}

/// `mirror`: which registries, and where each is fetched from.
fn check_mirror(config: &Config, p: &mut Problems) {
    let known: Vec<&str> = super::catalog::MIRRORED.iter().map(|m| m.0).collect();
    let registries = &config.mirror.registries;
    for (i, r) in registries.iter().enumerate() {
        let at = format!("mirror.registries[{i}]");
        if is_own_registry(config, r) {
            p.add(
                at,
                format!("`{}` is devenv's own registry: the nodes pull from it directly, there is nothing to mirror", shorten(r)),
                format!("remove it; a mirror is for public registries: {}", known.join(", ")),
            );
        } else if !known.contains(&r.as_str()) {
            let close = known.iter().find(|k| similar(k, r));
            p.add(
                at,
                format!("devenv cannot mirror `{}`", shorten(r)),
                match close {
                    Some(k) => format!("did you mean `{k}`? devenv mirrors: {}", known.join(", ")),
                    None => format!("devenv mirrors: {}", known.join(", ")),
                },
            );
        } else if registries[..i].contains(r) {
            p.add(
                at,
                format!("`{r}` is listed twice"),
                "list each registry once",
            );
        }
    }
    for (registry, url) in &config.mirror.remote {
        let at = format!("mirror.remote.{registry}");
        // Listed, or its mirror switched on by its own `enabled`.
        let switched_on = super::catalog::MIRRORED
            .iter()
            .find(|m| m.0 == registry)
            .is_some_and(|m| config.services.get(m.1).and_then(|s| s.enabled) == Some(true));
        if !registries.contains(registry) && !switched_on {
            p.add(
                at,
                format!(
                    "`{}` is not mirrored, so it has no remote",
                    shorten(registry)
                ),
                format!(
                    "add it to mirror.registries, or remove `remote.{}`",
                    shorten(registry)
                ),
            );
            continue;
        }
        let host = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .map(|rest| rest.trim_end_matches('/'));
        match host {
            Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ', '@']) => {
                if is_own_registry(config, host) {
                    p.add(
                        at,
                        format!(
                            "`{}` is devenv's own registry, not a remote to mirror",
                            shorten(url)
                        ),
                        "point it at the registry to mirror, or remove it",
                    );
                }
            }
            _ => p.add(
                at,
                format!("`{}` is not a registry's address", shorten(url)),
                "write it as http(s)://host[:port], with no path",
            ),
        }
    }
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
            format!("`{}` is not a valid environment name", shorten(n)),
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
            return Err(format!(
                "label `{}` is longer than 63 characters",
                shorten(label)
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "label `{}` has a character other than letters, digits and `-`",
                shorten(label)
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "label `{}` starts or ends with `-`",
                shorten(label)
            ));
        }
    }
    Ok(())
}

/// The labels devenv itself puts under the domain besides the services' hostnames: the
/// zone's NS and SOA names and the wildcard.
const OWN_LABELS: &[&str] = &["ns", "hostmaster", "*"];

/// Check the domain; whether it is usable for checking the names under it.
fn check_domain(config: &Config, p: &mut Problems) -> bool {
    let d = &config.domain;
    let hint =
        "use lowercase labels of letters, digits and `-`, separated by dots, e.g. `macula.local`";
    if let Err(why) = check_dns_name(d) {
        p.add(
            "domain",
            format!("`{}` is not a valid DNS domain: {why}", shorten(d)),
            hint,
        );
        return false;
    }
    let tld = d.rsplit('.').next().unwrap_or(d);
    if d.parse::<IpAddr>().is_ok() || tld.bytes().all(|b| b.is_ascii_digit()) {
        p.add(
            "domain",
            format!(
                "`{}` is not a valid DNS domain: it is an IP address, not a name",
                shorten(d)
            ),
            hint,
        );
        return false;
    }
    // Every name devenv answers under the domain must fit in 253 characters too.
    let mut labels: Vec<String> = OWN_LABELS.iter().map(|l| l.to_string()).collect();
    let mut all = config.clone();
    all.tiers = super::Tiers {
        core: true,
        observability: true,
        data: true,
        tools: true,
    };
    for svc in all.services() {
        for route in &svc.routes {
            if let Some(label) = route.hostname.strip_suffix(&format!(".{d}")) {
                labels.push(label.to_string());
            }
        }
    }
    if let Some(longest) = labels.iter().max_by_key(|l| l.len())
        && d.len() + 1 + longest.len() > 253
    {
        p.add(
            "domain",
            format!(
                "`{}` is too long: `{longest}.<domain>` would be {} characters, and a DNS name holds 253",
                shorten(d),
                d.len() + 1 + longest.len()
            ),
            format!(
                "use a domain of at most {} characters",
                253 - 1 - longest.len()
            ),
        );
        return false;
    }
    true
}

/// Why `image` is not a reference Docker accepts, or not pinned, if it is not.
///
/// The grammar is the Distribution project's reference grammar (which Docker uses):
/// `[host[:port]/]path[:tag][@algorithm:hex]`, path components of lowercase letters and digits
/// joined by `.`, `_`, `__` or dashes, a tag of word characters, `.` and `-` up to 128
/// characters, and a digest of at least 32 hex digits (exactly 64 for sha256).
pub fn check_image(image: &str) -> Result<(), String> {
    check_reference(image).map_err(|why| format!("is not a valid image reference: {why}"))?;
    let tail = &image[image.rfind('/').map_or(0, |i| i + 1)..];
    if image.contains('@') {
        return Ok(());
    }
    match tail.rsplit_once(':') {
        None => Err("is not pinned: it has no tag, which means `:latest`".into()),
        Some((_, "latest")) => Err("is not pinned: `:latest` is not a pinned version".into()),
        Some(_) => Ok(()),
    }
}

fn check_reference(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = image.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("it contains {c:?}"));
    }
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    // A tag follows the last `:` after the last `/` (a `:` before it is a registry port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    check_image_name(name)?;
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
            });
        if !valid {
            return Err(format!(
                "tag `{}` is not 1 to 128 letters, digits, `_`, `.` and `-` (not starting with `.` or `-`)",
                shorten(tag)
            ));
        }
    }
    Ok(())
}

fn check_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!(
            "digest `{}` is not `algorithm:hex`",
            shorten(digest)
        ));
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|c| {
            c.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && c.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if !algorithm_ok {
        return Err(format!(
            "digest algorithm `{}` is not valid",
            shorten(algorithm)
        ));
    }
    let (lower_only, len_ok) = match algorithm {
        "sha256" => (true, hex.len() == 64),
        "sha512" => (true, hex.len() == 128),
        _ => (false, hex.len() >= 32),
    };
    let hex_ok = hex.bytes().all(|b| {
        b.is_ascii_digit()
            || (b'a'..=b'f').contains(&b)
            || (!lower_only && (b'A'..=b'F').contains(&b))
    });
    if hex.is_empty() || !len_ok || !hex_ok {
        return Err(format!(
            "digest `{}` is not {algorithm}:<{}>",
            shorten(digest),
            match algorithm {
                "sha256" => "64 lowercase hex digits",
                "sha512" => "128 lowercase hex digits",
                _ => "at least 32 hex digits",
            }
        ));
    }
    Ok(())
}

fn check_image_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("its repository is empty".into());
    }
    if name.len() > 255 {
        return Err("its name is longer than 255 characters".into());
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // Docker reads the first component as a registry when it has a `.` or `:`, is `localhost`,
    // or has uppercase letters (which a repository path cannot have).
    if components.len() > 1 {
        let first = components[0];
        if first.contains(['.', ':'])
            || first == "localhost"
            || first.bytes().any(|b| b.is_ascii_uppercase())
        {
            check_registry_host(first)?;
            components.remove(0);
        }
    }
    for c in components {
        if !is_path_component(c) {
            return Err(if c.is_empty() {
                "its repository has an empty path component".to_string()
            } else if c.bytes().any(|b| b.is_ascii_uppercase()) {
                format!(
                    "repository component `{}` has uppercase letters",
                    shorten(c)
                )
            } else {
                format!(
                    "repository component `{}` is not lowercase letters and digits joined by `.`, `_`, `__` or `-`",
                    shorten(c)
                )
            });
        }
    }
    Ok(())
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn check_registry_host(host: &str) -> Result<(), String> {
    let bad = || Err(format!("registry `{}` is not host[:port]", shorten(host)));
    let (h, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return bad();
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return bad();
        }
        (None, after.strip_prefix(':'))
    } else {
        match host.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad();
    }
    if let Some(h) = h {
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !h.split('.').all(component_ok) {
            return bad();
        }
    }
    Ok(())
}

fn check_images(config: &Config, p: &mut Problems) {
    let mut image = |path: String, image: &str, example: &str| {
        if let Err(why) = check_image(image) {
            p.add(
                path,
                format!("image `{}` {why}", shorten(image)),
                format!("name a version tag or a digest, e.g. `{example}`"),
            );
        }
    };
    image(
        "cluster.node_image".into(),
        &config.cluster.node_image,
        "kindest/node:v1.32.2",
    );
    for (name, s) in &config.services {
        if let Some(i) = &s.image {
            image(format!("services.{name}.image"), i, "registry:3.0.0");
        }
    }
}

/// Where a service is switched on or off: its own `enabled`, else its tier.
fn switch_of(config: &Config, service: &str, tier: super::Tier) -> String {
    if config
        .services
        .get(service)
        .is_some_and(|s| s.enabled.is_some())
    {
        format!("services.{service}.enabled")
    } else {
        let tier = serde_json::to_value(tier)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        format!("tiers.{tier}")
    }
}

fn check_dependencies(config: &Config, p: &mut Problems) {
    let enabled: BTreeSet<String> = config.services().into_iter().map(|s| s.name).collect();
    for svc in config.services() {
        for (dep, dep_tier) in super::catalog::needs_of(config, &svc.name) {
            if enabled.contains(&dep) {
                continue;
            }
            let off = switch_of(config, &dep, dep_tier);
            let on = switch_of(config, &svc.name, svc.tier);
            p.add_related(
                off.clone(),
                vec![on.clone()],
                format!(
                    "service `{}` is enabled but `{dep}`, which it needs, is disabled (by `{off}`)",
                    svc.name
                ),
                format!(
                    "enable `{dep}` (services.{dep}.enabled: true), or disable `{}` too",
                    svc.name
                ),
            );
        }
    }
}

/// The keys only a service of the user's own takes, each with whether `settings` has it.
fn own_only_keys(settings: &super::ServiceSettings) -> [(&'static str, bool); 9] {
    [
        ("command", settings.command.is_some()),
        ("entrypoint", settings.entrypoint.is_some()),
        ("env", !settings.env.is_empty()),
        ("user", settings.user.is_some()),
        ("volumes", !settings.volumes.is_empty()),
        ("healthcheck", settings.healthcheck.is_some()),
        ("depends_on", !settings.depends_on.is_empty()),
        ("tier", settings.tier.is_some()),
        ("metrics", settings.metrics.is_some()),
    ]
}

/// A service of the user's own: what it runs, its ports, env, volumes, healthcheck,
/// dependencies and metrics.
fn check_own_service(
    config: &Config,
    name: &str,
    settings: &super::ServiceSettings,
    p: &mut Problems,
) {
    let at = |key: &str| format!("services.{name}.{key}");
    if let Err(why) = check_dns_name(name).and_then(|()| {
        if name.contains('.') || name.len() > 40 {
            Err("it must be one label of at most 40 characters".to_string())
        } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Err("it has capital letters".to_string())
        } else {
            Ok(())
        }
    }) {
        p.add(
            format!("services.{name}"),
            format!("`{}` is not a valid service name: {why}", shorten(name)),
            "name it with lowercase letters, digits and `-` (it names its container and its host on the network)",
        );
        return;
    }
    if settings.image.is_none() {
        let near = NAMES.iter().find(|n| similar(n, name));
        let hint = match near {
            Some(n) => format!(
                "did you mean `{n}`, the built-in service? The built-in services are: {}. A service of your own needs `image`",
                NAMES.join(", ")
            ),
            None => format!(
                "a service of your own needs `image: <repository>:<tag>`; the built-in services are: {}",
                NAMES.join(", ")
            ),
        };
        p.add(
            format!("services.{name}"),
            format!(
                "`{}` is not a built-in service, and has no `image` to be one of your own",
                shorten(name)
            ),
            hint,
        );
        return;
    }
    for (port, setting) in &settings.ports {
        if let Err(why) = check_dns_name(port).and_then(|()| {
            if port.contains('.') {
                Err("it has a `.`".to_string())
            } else {
                Ok(())
            }
        }) {
            p.add(
                at(&format!("ports.{port}")),
                format!("`{}` is not a valid port name: {why}", shorten(port)),
                "name ports with lowercase letters, digits and `-` (`http`, `amqp`, ...)",
            );
        }
        if setting.container() == 0 {
            p.add(
                at(&format!("ports.{port}")),
                "the container port is 0".to_string(),
                "give the port the program listens on, e.g. `6379` or `{container: 6379, host: 0}`",
            );
        }
    }
    if settings.hostnames.as_ref().is_some_and(|h| !h.is_empty()) && settings.ports.is_empty() {
        p.add(
            at("hostnames"),
            format!("service `{name}` has hostnames but no ports to lead them to"),
            "add its ports (an `http` port is proxied by the gateway), or remove the hostnames",
        );
    }
    for (key, value) in &settings.env {
        let key_ok = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !key_ok {
            p.add(
                at(&format!("env.{key}")),
                format!("`{}` is not an environment variable name", shorten(key)),
                "use letters, digits and `_`, not starting with a digit",
            );
        }
        if let Err(why) = super::pieces(value) {
            let mut problem = Problem::new(
                at(&format!("env.{key}")),
                why,
                format!(
                    "write a secret as `${{{}NAME}}`, NAME in capital letters, digits and `_`",
                    super::USER_SECRET_PREFIX
                ),
            );
            problem.at_value = true;
            p.push(problem);
        }
    }
    let mut targets = BTreeSet::new();
    for (i, entry) in settings.volumes.iter().enumerate() {
        let suffix = super::labels::BEFORE_RESTORE_SUFFIX;
        if entry.split(':').next().is_some_and(|v| v.ends_with(suffix)) {
            p.add(
                at(&format!("volumes[{i}]")),
                format!("a volume name ending in `{suffix}` is devenv's own: it names the data `snapshot restore` keeps aside"),
                "choose another name",
            );
            continue;
        }
        match catalog::own_volume(config, name, entry) {
            None => p.add(
                at(&format!("volumes[{i}]")),
                format!("`{}` is not a volume", shorten(entry)),
                "write `NAME:/path` for a named volume (NAME: lowercase letters, digits, `-`) or `./dir:/path` (`:rw` to make it writable) for a path next to devenv.yaml",
            ),
            Some(m) if !targets.insert(m.target.clone()) => p.add(
                at(&format!("volumes[{i}]")),
                format!("`{}` is mounted twice", m.target),
                "mount each path in the container once",
            ),
            Some(_) => {}
        }
    }
    if let Some(h) = &settings.healthcheck {
        let given = [h.command.is_some(), h.tcp.is_some(), h.http.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            p.add(
                at("healthcheck"),
                "the healthcheck needs exactly one of `command`, `tcp` and `http`".to_string(),
                "`command: [redis-cli, ping]` runs in the container; `tcp: PORT` or `http: {port: PORT, path: /health}` are probed by devenv, for an image with no tool to check with",
            );
        }
        if let Some(command) = &h.command
            && command.first().is_none_or(String::is_empty)
        {
            p.add(
                at("healthcheck.command"),
                "the healthcheck has no command".to_string(),
                "give the command and its arguments, e.g. [redis-cli, ping]",
            );
        }
        let probed = [
            h.tcp.as_ref().map(|r| ("healthcheck.tcp", r)),
            h.http.as_ref().map(|x| ("healthcheck.http.port", &x.port)),
        ];
        for (key, port) in probed.into_iter().flatten() {
            match port {
                super::PortRef::Name(n) if !settings.ports.contains_key(n) => {
                    let known: Vec<&str> = settings.ports.keys().map(String::as_str).collect();
                    p.add(
                        at(key),
                        format!("service `{name}` has no port `{}`", shorten(n)),
                        if known.is_empty() {
                            "name one under `ports:`, or give the port in the container".to_string()
                        } else {
                            format!("its ports are: {}", known.join(", "))
                        },
                    );
                }
                super::PortRef::Number(0) => p.add(
                    at(key),
                    "port 0 cannot be probed".to_string(),
                    "give the port the service listens on in its container",
                ),
                _ => {}
            }
        }
        if let Some(http) = &h.http
            && (!http.path.starts_with('/')
                || http
                    .path
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()))
        {
            p.add(
                at("healthcheck.http.path"),
                format!("`{}` is not a path", shorten(&http.path)),
                "start it with `/`, without spaces (percent-encode them), e.g. /health",
            );
        }
        if h.interval == 0 || h.timeout == 0 || h.retries == 0 {
            p.add(
                at("healthcheck"),
                "interval, timeout and retries must be at least 1".to_string(),
                "leave them out for 5 s, 3 s and 12",
            );
        }
    }
    if settings.user.as_deref().is_some_and(str::is_empty) {
        p.add(
            at("user"),
            "the user is empty".to_string(),
            "give `uid[:gid]` or a name, or leave the key out",
        );
    }
    if let Some(m) = &settings.metrics
        && !settings.ports.contains_key(&m.port)
    {
        let known: Vec<&str> = settings.ports.keys().map(String::as_str).collect();
        p.add(
            at("metrics.port"),
            format!("service `{name}` has no port `{}`", shorten(&m.port)),
            format!("its ports are: {}", known.join(", ")),
        );
    }
    let names = config.service_names();
    for (i, dep) in settings.depends_on.iter().enumerate() {
        if dep == name {
            p.add(
                at(&format!("depends_on[{i}]")),
                format!("service `{name}` depends on itself"),
                "remove it from its own depends_on",
            );
        } else if !names.contains(dep) {
            p.add(
                at(&format!("depends_on[{i}]")),
                format!("there is no service `{}`", shorten(dep)),
                format!("the services are: {}", names.join(", ")),
            );
        }
    }
}

/// A cycle among the `depends_on` of the user's own services, as `a -> b -> a`.
fn dependency_cycle(config: &Config) -> Option<(String, String)> {
    let deps = |n: &str| -> Vec<String> {
        config
            .services
            .get(n)
            .filter(|_| !NAMES.contains(&n))
            .map(|s| s.depends_on.clone())
            .unwrap_or_default()
    };
    fn visit(
        n: &str,
        deps: &dyn Fn(&str) -> Vec<String>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in deps(n) {
            if d == n {
                continue;
            }
            if let Some(c) = visit(&d, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in catalog::own_names(config) {
        if let Some(cycle) = visit(n, &deps, &mut Vec::new(), &mut done) {
            return Some((cycle[0].clone(), cycle.join(" -> ")));
        }
    }
    None
}

fn check_services(config: &Config, domain_ok: bool, p: &mut Problems) {
    if let Some((first, cycle)) = dependency_cycle(config) {
        p.add(
            format!("services.{first}.depends_on"),
            format!("the services depend on each other in a circle: {cycle}"),
            "remove one of these dependencies",
        );
    }
    let used = catalog::slots_used(config);
    let lower_half = (1u64 << (32 - u32::from(config.network.subnet.prefix_len()))) / 2;
    if (used + 2) as u64 > lower_half {
        p.add(
            "network.subnet",
            format!(
                "{} has room for {} services in its lower half, and there are {}",
                config.network.subnet,
                lower_half.saturating_sub(2),
                used
            ),
            "use a larger subnet, e.g. a /24",
        );
    }
    for (name, settings) in &config.services {
        if !NAMES.contains(&name.as_str()) {
            check_own_service(config, name, settings, p);
        } else {
            for (key, set) in own_only_keys(settings) {
                if set {
                    p.add(
                        format!("services.{name}.{key}"),
                        format!("`{key}` is for services of your own; `{name}` is built in"),
                        "a built-in service takes enabled, image, address, ports and hostnames; to run something else, add a service under another name",
                    );
                }
            }
        }
        if NAMES.contains(&name.as_str()) {
            let known = catalog::port_names(config, name);
            for (port, setting) in &settings.ports {
                if !known.contains(&port.as_str()) {
                    p.add(
                        format!("services.{name}.ports.{port}"),
                        format!("service `{name}` has no port `{}`", shorten(port)),
                        format!("its ports are: {}", known.join(", ")),
                    );
                } else if matches!(setting, super::PortSetting::Mapped { .. }) {
                    p.add(
                        format!("services.{name}.ports.{port}"),
                        format!("the container port of built-in `{name}` is fixed"),
                        format!("give only the host port: `{port}: <port>` (0: not published)"),
                    );
                }
            }
        }
        if let Some(hostnames) = &settings.hostnames {
            let mirror = catalog::MIRRORED.iter().any(|m| m.1 == name);
            if name == "gateway" || name == "pdns-db" || mirror {
                p.add(
                    format!("services.{name}.hostnames"),
                    format!("service `{name}` is not reached by hostname"),
                    "remove the key",
                );
            }
            for (i, h) in hostnames.iter().enumerate() {
                // Under a bad domain (reported once), only the name itself is checked.
                let fqdn = if domain_ok { config.fqdn(h) } else { h.clone() };
                if let Err(why) = check_dns_name(&fqdn) {
                    p.add(
                        format!("services.{name}.hostnames[{i}]"),
                        format!("`{}` is not a valid hostname: {why}", shorten(h)),
                        "use a label such as `grafana`, or a name ending in the domain",
                    );
                } else if !domain_ok
                    || !h.contains('.')
                    || h.ends_with(&format!(".{}", config.domain))
                {
                    // a plain label or a name under the domain
                } else {
                    p.add(
                        format!("services.{name}.hostnames[{i}]"),
                        format!(
                            "`{}` is not under the domain `{}`",
                            shorten(h),
                            config.domain
                        ),
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
pub(super) fn similar(a: &str, b: &str) -> bool {
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
    /// The key that sets its address, for positions when `path` itself is a default.
    address_path: String,
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
                address_path: format!("services.{}.address", svc.name),
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
            address_path: "cluster.listen_address".into(),
            ip: listen,
            port,
            protocol,
        });
    }
    if config.routing.mode == RoutingMode::SplitIp {
        let apps = IpAddr::V4(config.dns.applications);
        let quic = config.application_quic_ports();
        let tcp = [80, 443].map(|port| (port, Protocol::Tcp));
        for (port, protocol) in tcp
            .into_iter()
            .chain(quic.into_iter().map(|p| (p, Protocol::Udp)))
        {
            all.push(Binding {
                path: "dns.applications".into(),
                address_path: "routing.mode".into(),
                ip: apps,
                port,
                protocol,
            });
        }
    }
    if config.dns.port != 0 {
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            all.push(Binding {
                path: "dns.port".into(),
                address_path: "dns.address".into(),
                ip: config.dns.address,
                port: config.dns.port,
                protocol,
            });
        }
    }
    for (i, a) in all.iter().enumerate() {
        if let Some(b) = all[..i].iter().find(|b| overlaps(a, b) && b.path != a.path) {
            p.add_related(
                a.path.clone(),
                vec![
                    b.path.clone(),
                    a.address_path.clone(),
                    b.address_path.clone(),
                ],
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

/// Whether a resolver listening on `listen` receives what is sent to `to`.
fn reaches(listen: (IpAddr, u16), to: std::net::SocketAddr) -> bool {
    let (ip, port) = listen;
    if port != to.port() {
        return false;
    }
    let to_ip = to.ip();
    // 0.0.0.0 and :: as a destination mean this host.
    let local = to_ip.is_unspecified() || to_ip.is_loopback();
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => to_ip.is_ipv4() && local || to_ip == ip,
        // `::` also takes IPv4 on a dual-stack host.
        IpAddr::V6(v6) if v6.is_unspecified() => local,
        _ => to_ip == ip || (to_ip.is_unspecified() && ip.is_loopback()),
    }
}

fn check_dns(config: &Config, domain_ok: bool, p: &mut Problems) {
    let d = &config.dns;
    if d.ttl > 86_400 {
        p.add(
            "dns.ttl",
            format!("TTL {} is longer than a day", d.ttl),
            "use a short TTL (seconds), e.g. 5",
        );
    }
    if config.routing.mode == RoutingMode::SplitIp && d.applications == d.infrastructure {
        p.add_related(
            "dns.applications",
            vec!["dns.infrastructure".into(), "routing.mode".into()],
            "applications and infrastructure share one address in split-ip mode",
            "use another loopback address such as 127.0.0.2, or `routing.mode: ports`",
        );
    }
    for (i, up) in d.upstreams.iter().enumerate() {
        if reaches((d.address, d.port), *up) {
            p.add_related(
                format!("dns.upstreams[{i}]"),
                vec!["dns.address".into(), "dns.port".into()],
                format!(
                    "{up} is devenv's own resolver (it listens on {}:{}): queries would loop",
                    d.address, d.port
                ),
                "name another resolver",
            );
        }
    }
    let mut cidrs: BTreeMap<ipnet::IpNet, usize> = BTreeMap::new();
    for (i, v) in d.views.iter().enumerate() {
        if let Some(first) = cidrs.get(&v.cidr.trunc()) {
            p.add_related(
                format!("dns.views[{i}].cidr"),
                vec![format!("dns.views[{first}].cidr")],
                format!("{} is also the network of dns.views[{first}]", v.cidr),
                "give each network one view; the first would always win",
            );
        } else {
            cidrs.insert(v.cidr.trunc(), i);
        }
    }
    let under =
        |name: &str| name == config.domain || name.ends_with(&format!(".{}", config.domain));
    let mut names_ok = vec![false; d.records.len()];
    for (i, r) in d.records.iter().enumerate() {
        let fqdn = if domain_ok {
            config.fqdn(&r.name)
        } else {
            r.name.clone()
        };
        if let Err(why) = check_dns_name(&fqdn) {
            p.add(
                format!("dns.records[{i}].name"),
                format!("`{}` is not a valid name: {why}", shorten(&r.name)),
                "use a label such as `api`, or a name ending in the domain",
            );
        } else if domain_ok && r.name.contains('.') && !under(&r.name) {
            p.add(
                format!("dns.records[{i}].name"),
                format!(
                    "`{}` is not under the domain `{}`",
                    shorten(&r.name),
                    config.domain
                ),
                "devenv only answers for its own domain",
            );
        } else {
            names_ok[i] = true;
        }
        let ok = match r.kind {
            RecordKind::A => r.value.parse::<Ipv4Addr>().is_ok(),
            RecordKind::AAAA => r.value.parse::<Ipv6Addr>().is_ok(),
            RecordKind::CNAME => check_dns_name(r.value.trim_end_matches('.')).is_ok(),
            RecordKind::TXT => r.value.len() <= 255,
        };
        if !ok {
            p.add(format!("dns.records[{i}].value"), format!("`{}` is not valid data for a {:?} record", shorten(&r.value), r.kind), "A takes an IPv4 address, AAAA an IPv6 address, CNAME a host name, TXT up to 255 characters");
        }
    }
    if domain_ok {
        check_cnames(config, &names_ok, p);
    }
}

/// CNAME rules (RFC 1034 3.6.2, RFC 2181 10.1): no CNAME at the apex, nothing else beside a
/// CNAME at one name, and no chain that comes back to where it started.
fn check_cnames(config: &Config, names_ok: &[bool], p: &mut Problems) {
    let d = &config.dns;
    let key = |name: &str| config.fqdn(name).trim_end_matches('.').to_ascii_lowercase();
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in d.records.iter().enumerate() {
        if names_ok[i] {
            by_name.entry(key(&r.name)).or_default().push(i);
        }
    }
    let apex = config.domain.to_ascii_lowercase();
    let mut cname_of: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (name, items) in &by_name {
        for &i in items {
            let r = &d.records[i];
            if r.kind != RecordKind::CNAME {
                continue;
            }
            if *name == apex {
                p.add(
                    format!("dns.records[{i}].name"),
                    format!("a CNAME at the domain itself (`{apex}`) would hide its SOA and NS"),
                    "put the alias on a name under the domain, or use an A record",
                );
                continue;
            }
            if let Some(&other) = items.iter().find(|&&j| j != i) {
                p.add_related(
                    format!("dns.records[{i}].name"),
                    vec![format!("dns.records[{other}].name")],
                    format!(
                        "`{name}` has a CNAME and other records (dns.records[{other}]); a CNAME must be alone at its name"
                    ),
                    "keep either the CNAME or the other records",
                );
                continue;
            }
            cname_of.insert(name.clone(), (i, key(&r.value)));
        }
    }
    let mut reported = BTreeSet::new();
    for start in cname_of.keys() {
        let mut seen = vec![start.clone()];
        let mut current = start.clone();
        while let Some((_, target)) = cname_of.get(&current) {
            if let Some(at) = seen.iter().position(|s| s == target) {
                let cycle: Vec<String> = seen[at..].to_vec();
                let first = cycle.iter().min().cloned().unwrap_or_default();
                if reported.insert(first.clone()) {
                    let i = cname_of[&first].0;
                    let mut path = cycle.clone();
                    path.push(target.clone());
                    p.add(
                        format!("dns.records[{i}].value"),
                        format!("CNAMEs form a loop: {}", path.join(" -> ")),
                        "point one of them at an address record",
                    );
                }
                break;
            }
            seen.push(target.clone());
            current = target.clone();
        }
    }
}

fn check_cluster(config: &Config, p: &mut Problems) {
    let c = &config.cluster;
    match (c.provider, &c.context) {
        (crate::config::ClusterProvider::Existing, None) => p.add(
            "cluster.provider",
            "`provider: existing` needs the kubeconfig context of that cluster",
            "add `context: <name>` under `cluster` (`kubectl config get-contexts` lists them)",
        ),
        (crate::config::ClusterProvider::Existing, Some(ctx)) if ctx.trim().is_empty() => p.add(
            "cluster.context",
            "the context is empty",
            "name a context from `kubectl config get-contexts`",
        ),
        (crate::config::ClusterProvider::Kind | crate::config::ClusterProvider::None, Some(_)) => {
            p.add(
                "cluster.context",
                "`context` is only for `provider: existing`; devenv names the kind cluster's context itself (`kind-<name>`)",
                "remove `context`, or set `provider: existing`",
            )
        }
        _ => {}
    }
    if c.workers > 8 {
        p.add(
            "cluster.workers",
            format!("{} workers is more than a laptop holds", c.workers),
            "use 0 to 8 workers",
        );
    }
    let subnet = config.network.subnet;
    let unusable: [(&str, &str); 5] = [
        ("0.0.0.0/8", "\"this network\" (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
        ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
        ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
        ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
    ];
    let clash = unusable.iter().find(|(net, _)| {
        let net: ipnet::Ipv4Net = net.parse().expect("a valid network");
        net.contains(&subnet.network()) || subnet.contains(&net.network())
    });
    if let Some((_, what)) = clash {
        let mut problem = Problem::new(
            "network.subnet",
            format!("{subnet} overlaps {what}, which a Docker network cannot use"),
            "use a private range, e.g. 172.30.80.0/24",
        );
        problem.at_value = true;
        p.push(problem);
    } else if subnet.addr() != subnet.network() {
        let mut problem = Problem::new(
            "network.subnet",
            format!("{subnet} has host bits set"),
            format!("write the network address: {}", subnet.trunc()),
        );
        problem.at_value = true;
        p.push(problem);
    }
    let prefix = subnet.prefix_len();
    let smallest = super::Network::smallest_prefix();
    if prefix > smallest {
        p.add(
            "network.subnet",
            format!(
                "/{prefix} has too few addresses: each service has a fixed address in the lower half"
            ),
            format!("use a /{smallest} or larger, e.g. 172.30.80.0/24"),
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
        let digest = format!("sha256:{}", "a1".repeat(32));
        assert!(check_image(&format!("localhost:5001/x@{digest}")).is_ok());
        assert!(check_image(&format!("kindest/node:v1.37.0@{digest}")).is_ok());
        assert!(check_image("localhost:5001/x@sha256:abc").is_err());
        for good in [
            "registry.example.com:5000/team/app_x__y.z-w:1.0-rc.1",
            "[::1]:5000/app:v1",
            "localhost/app:v1",
            "Registry.Example.com/app:v1",
            &format!("app:{}", "t".repeat(128)),
        ] {
            assert!(check_image(good).is_ok(), "{good}: {:?}", check_image(good));
        }
        for bad in [
            "grafana/Grafana:1.0",
            "Grafana:1.0",
            ":1.0",
            "/app:1.0",
            "app/:1.0",
            "app:",
            "app:-1",
            "app:1.0!",
            &format!("app:{}", "t".repeat(129)),
            "app@sha256:",
            "app@sha256:ABCDEF",
            &format!("app@sha256:{}", "A".repeat(64)),
            "app@:abc",
            "a--_b:1",
            "app..x:1",
            "host:port/app:1",
        ] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
        assert!(check_image("localhost:5001/x").is_err());
        assert!(check_image("nginx:latest").is_err());
        assert!(check_image("nginx").is_err());
    }

    #[test]
    fn a_needed_service_disabled_is_a_problem_a_used_one_is_not() {
        let off = |names: &[&str]| {
            let mut c = Config::default();
            for n in names {
                c.services.insert(
                    n.to_string(),
                    super::super::ServiceSettings {
                        enabled: Some(false),
                        ..Default::default()
                    },
                );
            }
            validate(&c).0
        };
        let problems = off(&["pdns-db"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("`pdns`") && problems[0].message.contains("`pdns-db`"),
            "{problems:?}"
        );
        // Grafana renders datasources from whichever of these run: none is needed.
        assert!(off(&["loki", "tempo", "prometheus"]).is_empty());
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

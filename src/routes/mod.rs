//! Routes to processes on the host: a name under the domain that the host gateway proxies (on
//! :80 and :443) to `host:port`, such as a dev server on `127.0.0.1:3000`. The table lives in
//! `<state dir>/routes.json`, written atomically; the gateway serves it (`crate::gateway`) and
//! the resolver answers its names with the gateway's address (`crate::dns`).
//!
//! This module is the model, its validation (DNS label rules, one holder per host, only one
//! label under the domain — what the wildcard certificate covers) and the file. Not for:
//! rendering nginx config or reloading the gateway.

pub mod list;
pub mod listening;
pub mod relay;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::config::{Config, check_dns_name};
use crate::error::Failure;

/// The routes file in the state directory.
pub const FILE: &str = "routes.json";
/// The version of the file's format.
const VERSION: u32 = 1;

/// Where a route leads: a host (IP address or name) and a port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// An IP address (IPv6 without brackets) or a DNS name.
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Whether the target is this host's loopback, which the gateway container reaches
    /// through the engine's address for the host.
    pub fn is_local(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    /// `host:port`, `[v6]:port`.
    fn from_str(s: &str) -> Result<Target, String> {
        let bad = |why: &str| format!("`{s}` is not host:port ({why})");
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or_else(|| bad("no `]:port`"))?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address in brackets"))?;
            (host, port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            if host.contains(':') {
                return Err(bad("an IPv6 address goes in brackets: [::1]:3000"));
            }
            if host.parse::<std::net::Ipv4Addr>().is_err() {
                check_dns_name(host).map_err(|e| bad(&format!("host: {e}")))?;
            }
            (host, port)
        };
        let port: u16 = port.parse().map_err(|_| bad("the port is not 1-65535"))?;
        if port == 0 {
            return Err(bad("the port is not 1-65535"));
        }
        Ok(Target {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Its name (a DNS label), how `routes rm` finds it.
    pub name: String,
    /// The fully qualified host name it answers (`api.macula.local`).
    pub host: String,
    pub target: Target,
    /// Where the gateway container reaches a target on this host's loopback (`relay`); none
    /// for other targets, and where the engine cannot reach this host's bridge address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<relay::Relay>,
}

/// The routes of one environment, in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    version: u32,
    pub routes: Vec<Route>,
}

/// The path of the routes file of the environment whose state directory is `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The routes in `state_dir` (none when there is no file). A file that cannot be read or
/// parsed is exit 3, naming it.
pub fn load(state_dir: &Path) -> anyhow::Result<Routes> {
    let file = path(state_dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Routes {
                version: VERSION,
                routes: Vec::new(),
            });
        }
        Err(e) => {
            return Err(Failure::environment(
                format!("cannot read {}: {e}", file.display()),
                Some("make it readable by you (it is devenv's routes table), or remove it to start with no routes".to_string()),
            )
            .into());
        }
    };
    let routes: Routes = serde_json::from_str(&text).map_err(|e| {
        Failure::environment(
            format!("{} is not a routes table: {e}", file.display()),
            Some("fix or remove it (it holds only what `devenv routes add` wrote)".to_string()),
        )
    })?;
    if routes.version != VERSION {
        return Err(Failure::environment(
            format!(
                "{} has version {}, this devenv reads {VERSION}",
                file.display(),
                routes.version
            ),
            Some("use the devenv that wrote it, or remove the file".to_string()),
        )
        .into());
    }
    Ok(routes)
}

/// Write `routes` to `state_dir` atomically (readers see the old table or the new one).
pub fn save(state_dir: &Path, routes: &Routes) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(&Routes {
        version: VERSION,
        routes: routes.routes.clone(),
    })
    .context("serialising the routes")?;
    text.push('\n');
    crate::files::write_atomic(&path(state_dir), text.as_bytes(), 0o644)
}

/// Who holds a host name already.
fn holder(config: &Config, routes: &Routes, host: &str) -> Option<String> {
    for s in config.services() {
        if s.routes
            .iter()
            .any(|r| r.hostname.eq_ignore_ascii_case(host))
        {
            return Some(format!("the infrastructure service `{}`", s.name));
        }
    }
    for r in &config.dns.records {
        if config.fqdn(&r.name).eq_ignore_ascii_case(host) {
            return Some(format!(
                "the record `{}` in devenv.yaml (dns.records)",
                r.name
            ));
        }
    }
    routes
        .routes
        .iter()
        .find(|r| r.host.eq_ignore_ascii_case(host))
        .map(|r| format!("the route `{}`", r.name))
}

fn bad(message: String, hint: &str) -> anyhow::Error {
    Failure::bad_input(message, Some(hint.to_string())).into()
}

impl Routes {
    /// The route named `name`.
    pub fn get(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// Add a route `name` to `target`, answering `host` (a label or a name under the domain;
    /// default: `name`). Every problem is exit 2 and changes nothing.
    pub fn add(
        &mut self,
        config: &Config,
        name: &str,
        target: &str,
        host: Option<&str>,
    ) -> anyhow::Result<&Route> {
        check_label(name).map_err(|e| {
            bad(
                format!("route name `{name}`: {e}"),
                "a route name is one DNS label: letters, digits and `-`, at most 63",
            )
        })?;
        if let Some(holder) = self.get(name) {
            return Err(bad(
                format!(
                    "a route named `{name}` exists already (to {})",
                    holder.target
                ),
                &format!("remove it first: devenv routes rm {name}"),
            ));
        }
        let host = fqdn_under(config, host.unwrap_or(name))?;
        if let Some(holder) = holder(config, self, &host) {
            return Err(bad(
                format!("{host} is taken by {holder}"),
                "choose another name, or --host for another host name",
            ));
        }
        let target: Target = target.parse().map_err(|e: String| {
            bad(
                format!("--to: {e}"),
                "give where the process listens, e.g. --to 127.0.0.1:3000",
            )
        })?;
        self.routes.push(Route {
            name: name.to_string(),
            host,
            target,
            relay: None,
        });
        Ok(self.routes.last().expect("just pushed"))
    }

    /// Remove the route `name`; exit 2 naming the routes there are when there is none.
    pub fn remove(&mut self, name: &str) -> anyhow::Result<Route> {
        match self.routes.iter().position(|r| r.name == name) {
            Some(i) => Ok(self.routes.remove(i)),
            None => {
                let names: Vec<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
                Err(bad(
                    format!("there is no route named `{name}`"),
                    &if names.is_empty() {
                        "there are no routes; `devenv routes list` shows them".to_string()
                    } else {
                        format!("the routes are: {}", names.join(", "))
                    },
                ))
            }
        }
    }
}

/// One DNS label: 1-63 letters, digits and `-`, not starting or ending with `-`.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.contains('.') {
        return Err("it has a `.`; it must be one label".into());
    }
    check_dns_name(label)
}

/// `host` as a name one label under the domain: what the wildcard certificate `*.<domain>`
/// covers. A bare label is put under the domain; anything else outside it is exit 2.
fn fqdn_under(config: &Config, host: &str) -> anyhow::Result<String> {
    let domain = config.domain.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let label = if host.contains('.') {
        match host.strip_suffix(&format!(".{domain}")) {
            Some(label) => label.to_string(),
            None => {
                return Err(bad(
                    format!("{host} is outside the domain {domain}"),
                    &format!(
                        "routes answer names under {domain}: --host NAME or --host NAME.{domain}"
                    ),
                ));
            }
        }
    } else {
        host
    };
    check_label(&label).map_err(|e| {
        bad(
            format!("host `{label}.{domain}`: {e}"),
            &format!(
                "a route's host is one label under {domain} (what the certificate *.{domain} covers)"
            ),
        )
    })?;
    Ok(format!("{label}.{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FailureKind, failure};

    fn kind(e: &anyhow::Error) -> FailureKind {
        failure(e).expect("a typed failure").kind
    }

    #[test]
    fn targets_are_host_and_port() {
        let t: Target = "127.0.0.1:3000".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 3000));
        assert!(t.is_local());
        let t: Target = "[::1]:8080".parse().unwrap();
        assert_eq!(t.to_string(), "[::1]:8080");
        assert!(t.is_local());
        let t: Target = "Build-Box.lan:443".parse().unwrap();
        assert_eq!(t.to_string(), "build-box.lan:443");
        assert!(!t.is_local());
        for bad in [
            "3000",
            "127.0.0.1",
            "127.0.0.1:0",
            "h:99999",
            "::1:80",
            "a b:1",
            ":80",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn add_validates_names_hosts_and_conflicts_naming_the_holder() {
        let config = Config::default();
        let mut routes = Routes::default();
        let r = routes.add(&config, "api", "127.0.0.1:3000", None).unwrap();
        assert_eq!(r.host, "api.macula.local");
        let r = routes
            .add(&config, "web", "127.0.0.1:5173", Some("shop.macula.local"))
            .unwrap();
        assert_eq!(r.host, "shop.macula.local");

        let err = |routes: &mut Routes, name: &str, to: &str, host: Option<&str>| {
            let before = routes.clone();
            let e = routes.add(&config, name, to, host).unwrap_err();
            assert_eq!(*routes, before, "a refused add changed the table");
            assert_eq!(kind(&e), FailureKind::BadInput, "{e:#}");
            format!("{e:#}")
        };
        assert!(err(&mut routes, "x", "127.0.0.1:1", Some("api")).contains("the route `api`"));
        assert!(err(&mut routes, "api", "127.0.0.1:1", Some("other")).contains("exists already"));
        assert!(
            err(&mut routes, "graf", "127.0.0.1:1", Some("grafana"))
                .contains("infrastructure service `grafana`")
        );
        assert!(err(&mut routes, "x", "127.0.0.1:1", Some("x.example.com")).contains("outside"));
        assert!(
            err(&mut routes, "x", "127.0.0.1:1", Some("a.b.macula.local")).contains("one label")
        );
        assert!(err(&mut routes, "Bad_Name", "127.0.0.1:1", None).contains("route name"));
        assert!(err(&mut routes, "-x", "127.0.0.1:1", None).contains("route name"));
        assert!(err(&mut routes, "x", "localhost", None).contains("not host:port"));
        assert_eq!(routes.routes.len(), 2);

        assert_eq!(routes.remove("api").unwrap().name, "api");
        let e = routes.remove("api").unwrap_err();
        assert!(format!("{e:#}").contains("no route named `api`"));
        assert!(
            failure(&e)
                .unwrap()
                .hint
                .as_deref()
                .unwrap()
                .contains("web")
        );
    }

    #[test]
    fn the_file_round_trips_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().routes.is_empty());
        let mut routes = Routes::default();
        routes
            .add(&Config::default(), "api", "127.0.0.1:3000", None)
            .unwrap();
        save(dir.path(), &routes).unwrap();
        assert_eq!(load(dir.path()).unwrap().routes, routes.routes);

        std::fs::write(
            path(dir.path()),
            "{\"version\":1,\"routes\":[{\"name\":\"a\"}]}",
        )
        .unwrap();
        let e = load(dir.path()).unwrap_err();
        assert_eq!(kind(&e), FailureKind::Environment);
        assert!(format!("{e:#}").contains("routes.json"), "{e:#}");
    }
}

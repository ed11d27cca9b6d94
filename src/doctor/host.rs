//! Checks of the host: the Docker engine and its version, kind, the host ports of what is not
//! running yet, the inotify limits (Linux), the loopback addresses beyond 127.0.0.1.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use super::{Check, Facts, Finding, Group};
use crate::cluster::kind::{self, Kind, Search};
use crate::config::{ClusterProvider, Protocol, RoutingMode};
use crate::converge::{self, Cluster};
use crate::docker::observed::RunState;
use crate::preflight::{self, Bind, Publisher};

/// The name other checks need for the engine.
pub const ENGINE: &str = "docker-engine";

/// The oldest engine API devenv speaks (Docker 20.10).
pub const MIN_API: (u32, u32) = (1, 41);

/// kind's known issue "Pod errors due to too many open files": the values its docs give.
pub const INOTIFY_WATCHES: u64 = 524_288;
pub const INOTIFY_INSTANCES: u64 = 512;

pub fn checks(facts: &Facts) -> Vec<Check<'_>> {
    vec![
        Check::new(ENGINE, Group::Host, engine(facts)),
        Check::new("kind", Group::Host, kind(facts)),
        Check::new("ports", Group::Host, ports(facts)),
        Check::new("inotify", Group::Host, async { inotify() }),
        Check::new("loopback", Group::Host, async { loopback(facts) }),
    ]
}

async fn engine(facts: &Facts) -> Finding {
    let engine = match facts.engine().await {
        Ok(e) => e,
        Err(u) => {
            return Finding::fail(
                u.message.clone(),
                u.hint.clone().unwrap_or_else(|| "start Docker".into()),
            );
        }
    };
    let (version, api) = match engine.version().await {
        Ok(v) => v,
        Err(e) => return Finding::fail(format!("{e:#}"), "check the engine's own logs"),
    };
    let what = format!("Docker {version} (API {api}) at {}", engine.endpoint);
    match parse_api(&api) {
        Some(v) if v >= MIN_API => Finding::ok(what),
        _ => Finding::fail(
            format!(
                "{what}: devenv needs API {}.{} (Docker 20.10) or newer",
                MIN_API.0, MIN_API.1
            ),
            "upgrade the Docker engine",
        ),
    }
}

/// `1.41` as (1, 41).
fn parse_api(api: &str) -> Option<(u32, u32)> {
    let (major, minor) = api.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

async fn kind(facts: &Facts) -> Finding {
    if facts.config.cluster.provider != ClusterProvider::Kind {
        return Finding::skip(format!(
            "cluster.provider is `{}`: kind is not used",
            provider_word(facts.config.cluster.provider)
        ));
    }
    match Kind::find(&Search::from_env()).await {
        Ok(k) => Finding::ok(format!("kind {} at {}", k.version, k.path.display())),
        Err(unusable) => Finding::fail(unusable.to_string(), kind::install_hint()),
    }
}

fn provider_word(p: ClusterProvider) -> &'static str {
    match p {
        ClusterProvider::Kind => "kind",
        ClusterProvider::Existing => "existing",
        ClusterProvider::None => "none",
    }
}

/// The host ports of everything that is not running yet must be free: those of devenv's own
/// containers (running, or holding them in another state) are theirs.
async fn ports(facts: &Facts) -> Finding {
    let config = &facts.config;
    let mut binds: Vec<Bind> = config.services().iter().flat_map(Bind::of).collect();
    let mut held = BTreeSet::new();
    let mut cluster_running = false;
    let engine = facts.engine().await.ok();
    if let Some(engine) = engine {
        if let Ok(observed) = facts.observed().await {
            match converge::preflight::held_by_own(engine, &config.name, &observed.containers).await
            {
                Ok(h) => held = h,
                Err(e) => tracing::debug!("ports held by devenv's containers: {e:#}"),
            }
        }
        if config.cluster.provider == ClusterProvider::Kind {
            cluster_running = engine.kind_nodes(&config.name).await.is_ok_and(|nodes| {
                !nodes.is_empty() && nodes.iter().all(|n| n.state == RunState::Running)
            });
        }
    }
    if config.cluster.provider == ClusterProvider::Kind && !cluster_running {
        binds.extend(Cluster::binds(config));
    }
    let total = binds.len();
    binds.retain(|b| !held.contains(&(b.addr, b.port, b.protocol)));
    let publisher = match engine {
        Some(engine) => converge::preflight::publisher(engine, &binds)
            .await
            .unwrap_or_default(),
        None => Publisher {
            rootless: false,
            unprivileged_port_start: preflight::unprivileged_port_start(),
        },
    };
    let checked = binds.len();
    let problems = tokio::task::spawn_blocking(move || preflight::check_binds(&binds, publisher))
        .await
        .unwrap_or_default();
    if problems.is_empty() {
        return Finding::ok(format!(
            "{checked} host ports free for what is not running ({} held by devenv's own containers)",
            total - checked
        ));
    }
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    let hints: BTreeSet<&str> = problems.iter().map(|p| p.hint.as_str()).collect();
    // Without the engine, devenv's own containers cannot be told from others.
    let unsure = if engine.is_none() {
        " (the Docker engine does not answer: ports devenv's own containers hold count as taken)"
    } else {
        ""
    };
    Finding::fail(
        format!("{}{unsure}", messages.join("; ")),
        hints.into_iter().collect::<Vec<_>>().join("; "),
    )
}

fn inotify() -> Finding {
    if !cfg!(target_os = "linux") {
        return Finding::skip(
            "inotify limits are Linux's (a Docker VM has its own; set them there if pods fail with `too many open files`)",
        );
    }
    let read = |name: &str| std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}")).ok();
    inotify_verdict(
        read("max_user_watches").as_deref(),
        read("max_user_instances").as_deref(),
    )
}

/// The verdict on the limits as /proc/sys/fs/inotify shows them (`None`: unreadable).
pub fn inotify_verdict(watches: Option<&str>, instances: Option<&str>) -> Finding {
    let parse = |s: Option<&str>| s.and_then(|s| s.trim().parse::<u64>().ok());
    let (Some(watches), Some(instances)) = (parse(watches), parse(instances)) else {
        return Finding::warn(
            "cannot read /proc/sys/fs/inotify/max_user_watches and max_user_instances",
            format!(
                "check them with `sysctl fs.inotify`; kind needs max_user_watches >= {INOTIFY_WATCHES} and max_user_instances >= {INOTIFY_INSTANCES}"
            ),
        );
    };
    let mut low = Vec::new();
    let mut set = Vec::new();
    for (name, value, wanted) in [
        ("max_user_watches", watches, INOTIFY_WATCHES),
        ("max_user_instances", instances, INOTIFY_INSTANCES),
    ] {
        if value < wanted {
            low.push(format!("fs.inotify.{name} is {value} (below {wanted})"));
            set.push(format!("fs.inotify.{name}={wanted}"));
        }
    }
    if low.is_empty() {
        return Finding::ok(format!(
            "fs.inotify.max_user_watches {watches}, max_user_instances {instances}"
        ));
    }
    Finding::warn(
        format!(
            "{}: pods in kind may fail with `too many open files`",
            low.join(", ")
        ),
        format!(
            "sudo sysctl -w {} (and the same lines in /etc/sysctl.d/99-kind.conf to keep them)",
            set.join(" ")
        ),
    )
}

/// The loopback addresses beyond 127.0.0.1 devenv publishes on can be bound.
fn loopback(facts: &Facts) -> Finding {
    let config = &facts.config;
    let mut addrs: BTreeSet<IpAddr> = config
        .services()
        .iter()
        .flat_map(|s| s.ports.iter().map(|p| p.host_ip))
        .filter(|a| a.is_loopback())
        .collect();
    if config.cluster.provider != ClusterProvider::None
        && config.routing.mode == RoutingMode::SplitIp
    {
        addrs.insert(IpAddr::V4(config.dns.applications));
    }
    addrs.remove(&IpAddr::V4(Ipv4Addr::LOCALHOST));
    if addrs.is_empty() {
        return Finding::ok("only 127.0.0.1 is used");
    }
    let binds: Vec<Bind> = addrs
        .iter()
        .map(|&addr| Bind {
            key: "loopback".into(),
            addr,
            port: 0,
            protocol: Protocol::Tcp,
        })
        .collect();
    let problems = preflight::check_binds(&binds, Publisher::default());
    let list = addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if problems.is_empty() {
        let why = if cfg!(target_os = "linux") {
            " (all of 127.0.0.0/8 is loopback on Linux)"
        } else {
            ""
        };
        return Finding::ok(format!("{list} usable{why}"));
    }
    Finding::fail(
        problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        problems
            .iter()
            .map(|p| p.hint.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn inotify_limits_at_kinds_values_are_ok() {
        let f = inotify_verdict(Some("524288\n"), Some("512\n"));
        assert_eq!(f.status, Status::Ok, "{f:?}");
        assert_eq!(
            f.detail,
            "fs.inotify.max_user_watches 524288, max_user_instances 512"
        );
    }

    #[test]
    fn low_inotify_limits_warn_with_the_sysctl_for_each_low_one() {
        let f = inotify_verdict(Some("8192\n"), Some("512\n"));
        assert_eq!(f.status, Status::Warn);
        assert_eq!(
            f.detail,
            "fs.inotify.max_user_watches is 8192 (below 524288): pods in kind may fail with `too many open files`"
        );
        assert_eq!(
            f.fix.as_deref(),
            Some(
                "sudo sysctl -w fs.inotify.max_user_watches=524288 (and the same lines in /etc/sysctl.d/99-kind.conf to keep them)"
            )
        );
        let both = inotify_verdict(Some("8192"), Some("128"));
        assert!(
            both.fix
                .as_deref()
                .unwrap()
                .contains("fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512"),
            "{both:?}"
        );
    }

    #[test]
    fn unreadable_inotify_limits_warn() {
        for (w, i) in [(None, Some("512")), (Some("lots"), Some("512"))] {
            let f = inotify_verdict(w, i);
            assert_eq!(f.status, Status::Warn, "{f:?}");
            assert!(f.detail.starts_with("cannot read"), "{f:?}");
        }
    }

    #[test]
    fn the_api_version_parses_and_compares() {
        assert_eq!(parse_api("1.41"), Some((1, 41)));
        assert!(parse_api("1.43").unwrap() >= MIN_API);
        assert!(parse_api("1.40").unwrap() < MIN_API);
        assert_eq!(parse_api("v2"), None);
    }
}

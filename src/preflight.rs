//! Checks made before anything is created: every host address and port `up` will publish is
//! free (TCP and UDP, per address) — and when one is not, which process holds it (Linux:
//! /proc; macOS: lsof) and which devenv.yaml key moves it —, loopback addresses beyond
//! 127.0.0.1 are usable, the environment's subnet overlaps no other Docker network, and
//! images are present or may be pulled.
//!
//! Not for: the checks themselves changing anything; talking to the engine (the caller passes
//! in what it observed, as [`Publisher`] and [`ObservedNetwork`]s); and not for ports devenv's
//! own running containers already publish (the caller leaves those out).

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use ipnet::{IpNet, Ipv4Net};

use crate::config::{Protocol, Service};
use crate::docker::observed::ObservedNetwork;

/// `--pull`: when images are pulled. Lives here rather than in `docker` because deciding what
/// to pull is a preflight decision; the driver only pulls the list it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull only images that are not present.
    #[default]
    Missing,
    /// Pull every image, so tags that moved are refreshed.
    Always,
    /// Never pull; a missing image is an error.
    Never,
}

/// One host bind a service needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The devenv.yaml key that moves it (`services.grafana.ports.http`, `cluster.http_port`).
    pub key: String,
    pub addr: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl Bind {
    /// Every bind of `service`.
    pub fn of(service: &Service) -> Vec<Bind> {
        service
            .ports
            .iter()
            .map(|p| Bind {
                key: format!("services.{}.ports.{}", service.name, p.name),
                addr: p.host_ip,
                port: p.host_port,
                protocol: p.protocol,
            })
            .collect()
    }

    /// The devenv.yaml key that moves it.
    pub fn key(&self) -> String {
        self.key.clone()
    }

    fn at(&self) -> String {
        format!(
            "{}/{}",
            SocketAddr::new(self.addr, self.port),
            self.protocol.as_str()
        )
    }
}

/// A problem found before anything was created, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub hint: String,
}

/// Who publishes the containers' ports, which decides what a port devenv itself may not bind
/// means. A rootful engine (the usual Linux install, Docker Desktop) publishes as root, so a
/// port below 1024 that devenv, running as a normal user, cannot bind is no obstacle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Publisher {
    /// The engine runs rootless (`docker info` lists `name=rootless`): it publishes ports as
    /// the user, so ports below `unprivileged_port_start` cannot be published.
    pub rootless: bool,
    /// The lowest port an unprivileged process may bind (Linux
    /// `net.ipv4.ip_unprivileged_port_start`, 1024 unless changed; 0 where there is no such
    /// limit).
    pub unprivileged_port_start: u16,
}

/// The lowest port an unprivileged process may bind on this machine: Linux's
/// `net.ipv4.ip_unprivileged_port_start`, 0 elsewhere.
pub fn unprivileged_port_start() -> u16 {
    if cfg!(target_os = "linux") {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1024)
    } else {
        0
    }
}

/// What binding the port devenv itself showed.
#[derive(Debug)]
pub enum Probe {
    Free,
    /// Someone has it (`EADDRINUSE`).
    InUse,
    /// This process may not bind it (`EACCES`: a port below the unprivileged start).
    Denied,
    /// Anything else.
    Failed(std::io::Error),
}

impl Probe {
    /// Try to bind `bind` and let go at once.
    pub fn of(bind: &Bind) -> Probe {
        let at = SocketAddr::new(bind.addr, bind.port);
        let result = match bind.protocol {
            Protocol::Tcp => TcpListener::bind(at).map(drop),
            Protocol::Udp => UdpSocket::bind(at).map(drop),
        };
        match result {
            Ok(()) => Probe::Free,
            Err(e) if e.kind() == ErrorKind::AddrInUse => Probe::InUse,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Probe::Denied,
            Err(e) => Probe::Failed(e),
        }
    }
}

/// What the OS's socket tables say about a host address and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Occupant {
    /// No socket holds it.
    Free,
    /// A socket holds it; `by` names the process where the OS lets devenv see it.
    Held { by: Option<String> },
    /// The tables cannot be read here.
    Unknown,
}

/// Check that every bind in `binds` is free and its address usable.
pub fn check_binds(binds: &[Bind], publisher: Publisher) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut unusable = BTreeSet::new();
    for addr in binds.iter().map(|b| b.addr).collect::<BTreeSet<_>>() {
        if let Err(e) = TcpListener::bind(SocketAddr::new(addr, 0))
            && e.kind() == ErrorKind::AddrNotAvailable
        {
            unusable.insert(addr);
            problems.push(Problem {
                message: format!("the address {addr} is not configured on this machine"),
                hint: alias_hint(addr),
            });
        }
    }
    for b in binds.iter().filter(|b| !unusable.contains(&b.addr)) {
        let probe = Probe::of(b);
        problems.extend(judge(b, probe, publisher, || {
            occupant(b.addr, b.port, b.protocol)
        }));
    }
    problems
}

/// The decision for one bind, from devenv's own attempt to bind it (`probe`), who publishes
/// ports (`publisher`) and, when needed, the OS's socket tables (`occupant`).
///
/// A bind devenv may not make itself (`Denied`) is a problem only when the engine cannot make
/// it either (rootless, below the unprivileged start) or the socket tables show it taken: a
/// rootful engine publishes ports below 1024 for a normal user in the `docker` group.
pub fn judge(
    bind: &Bind,
    probe: Probe,
    publisher: Publisher,
    occupant: impl FnOnce() -> Occupant,
) -> Option<Problem> {
    if publisher.rootless && bind.port < publisher.unprivileged_port_start {
        return Some(Problem {
            message: format!(
                "{} for {} is below {}, and the rootless Docker engine may not publish it",
                bind.at(),
                bind.key(),
                publisher.unprivileged_port_start
            ),
            hint: format!(
                "set `{}` in devenv.yaml to {} or above, or let unprivileged processes bind it (`sudo sysctl net.ipv4.ip_unprivileged_port_start={}`)",
                bind.key(),
                publisher.unprivileged_port_start,
                bind.port
            ),
        });
    }
    let taken = |by: Option<String>| Problem {
        message: format!(
            "{} for {} is taken by {}",
            bind.at(),
            bind.key(),
            by.unwrap_or_else(|| "a process devenv cannot see (try as root)".to_string())
        ),
        hint: format!(
            "stop that process, or set `{}` in devenv.yaml to a free port (0 leaves it unpublished)",
            bind.key()
        ),
    };
    match probe {
        Probe::Free => None,
        Probe::InUse => Some(taken(match occupant() {
            Occupant::Held { by } => by,
            Occupant::Free | Occupant::Unknown => None,
        })),
        Probe::Denied => match occupant() {
            Occupant::Held { by } => Some(taken(by)),
            // The engine, not devenv, binds it.
            Occupant::Free | Occupant::Unknown => None,
        },
        Probe::Failed(e) => Some(Problem {
            message: format!("{} for {}: {e}", bind.at(), bind.key()),
            hint: format!("set `{}` in devenv.yaml to another port", bind.key()),
        }),
    }
}

/// A problem when `subnet` (`network.subnet`) overlaps a subnet of a Docker network other than
/// the environment's own network `own`: the engine refuses to create a network whose pool
/// overlaps another's.
pub fn check_subnet(subnet: Ipv4Net, own: &str, networks: &[ObservedNetwork]) -> Vec<Problem> {
    networks
        .iter()
        .filter(|n| n.name != own)
        .filter_map(|n| {
            let clash = n.subnets.iter().find(|s| {
                matches!(s.parse::<IpNet>(), Ok(IpNet::V4(other))
                    if crate::subnets::overlap(&subnet, &other))
            })?;
            Some(Problem {
                message: format!(
                    "network.subnet {subnet} overlaps the subnet {clash} of the Docker network {}, which is not this environment's",
                    n.name
                ),
                hint: format!(
                    "set `network.subnet` in devenv.yaml to a free range (e.g. one in 10.0.0.0/8 that no `docker network inspect` shows), or remove the network {} if nothing needs it",
                    n.name
                ),
            })
        })
        .collect()
}

fn alias_hint(addr: IpAddr) -> String {
    if cfg!(target_os = "macos") {
        format!(
            "macOS answers only 127.0.0.1 on loopback; add the alias with `sudo ifconfig lo0 alias {addr} up`, or set the service's `address` in devenv.yaml to 127.0.0.1"
        )
    } else {
        format!(
            "add it (`sudo ip addr add {addr}/32 dev lo`), or set the service's `address` in devenv.yaml to 127.0.0.1"
        )
    }
}

/// Images that must be pulled, given which are present (`ids`), and problems for those that
/// may not be.
pub fn images_to_pull(
    needed: &BTreeSet<String>,
    ids: &BTreeMap<String, Option<String>>,
    policy: PullPolicy,
) -> (Vec<String>, Vec<Problem>) {
    let mut pull = Vec::new();
    let mut problems = Vec::new();
    for image in needed {
        let present = ids.get(image).is_some_and(Option::is_some);
        match policy {
            PullPolicy::Always => pull.push(image.clone()),
            PullPolicy::Missing if !present => pull.push(image.clone()),
            PullPolicy::Never if !present => problems.push(Problem {
                message: format!(
                    "image {image} is not present and --pull never forbids pulling it"
                ),
                hint: format!(
                    "load it (`docker pull {image}` or `docker load`), or run with --pull missing"
                ),
            }),
            _ => {}
        }
    }
    (pull, problems)
}

/// Whether a socket holds `addr:port`, and whose it is, where the OS lets devenv see.
pub fn occupant(addr: IpAddr, port: u16, protocol: Protocol) -> Occupant {
    #[cfg(target_os = "linux")]
    {
        linux::occupant(addr, port, protocol)
    }
    #[cfg(target_os = "macos")]
    {
        let _ = addr;
        match macos::owner(port, protocol) {
            Some(by) => Occupant::Held { by: Some(by) },
            None => Occupant::Unknown,
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = (addr, port, protocol);
        Occupant::Unknown
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::Occupant;
    use crate::config::Protocol;

    /// A socket in /proc/net/{tcp,udp}{,6}: local address, port, state, inode.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct Entry {
        pub addr: IpAddr,
        pub port: u16,
        pub state: u8,
        pub inode: u64,
    }

    /// Parse one /proc/net table. The kernel prints each 32-bit word of the address in host
    /// byte order.
    pub(super) fn parse(table: &str) -> Vec<Entry> {
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (addr, port) = fields.get(1)?.split_once(':')?;
                let words: Vec<u32> = (0..addr.len() / 8)
                    .map(|i| u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16))
                    .collect::<Result<_, _>>()
                    .ok()?;
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
                let addr = match bytes.len() {
                    4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
                    16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
                    _ => return None,
                };
                Some(Entry {
                    addr,
                    port: u16::from_str_radix(port, 16).ok()?,
                    state: u8::from_str_radix(fields.get(3)?, 16).ok()?,
                    inode: fields.get(9)?.parse().ok()?,
                })
            })
            .collect()
    }

    const TCP_LISTEN: u8 = 0x0A;

    /// Whether a socket bound to `bound` keeps `wanted` (same port) from being bound.
    pub(super) fn covers(bound: IpAddr, wanted: IpAddr) -> bool {
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        let same_family = v4(bound).is_some() == v4(wanted).is_some();
        bound == wanted
            || v4(bound).is_some_and(|b| v4(wanted) == Some(b))
            // A wildcard takes the port on every address of its family; `[::]` is dual-stack
            // unless IPV6_V6ONLY, which /proc does not show.
            || bound.is_unspecified() && (same_family || bound.is_ipv6())
            || wanted.is_unspecified() && (same_family || wanted.is_ipv6())
    }

    pub(super) fn occupant(addr: IpAddr, port: u16, protocol: Protocol) -> Occupant {
        let files: &[&str] = match protocol {
            Protocol::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
            Protocol::Udp => &["/proc/net/udp", "/proc/net/udp6"],
        };
        let tables: Vec<String> = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect();
        if tables.is_empty() {
            return Occupant::Unknown;
        }
        let holding: Vec<Entry> = tables
            .iter()
            .flat_map(|t| parse(t))
            .filter(|e| e.port == port && covers(e.addr, addr))
            .filter(|e| protocol == Protocol::Udp || e.state == TCP_LISTEN)
            .collect();
        if holding.is_empty() {
            return Occupant::Free;
        }
        let inodes: Vec<u64> = holding
            .iter()
            .map(|e| e.inode)
            .filter(|&i| i != 0)
            .collect();
        Occupant::Held {
            by: process_of(&inodes),
        }
    }

    /// The process with a file descriptor on one of the socket `inodes`. Other users'
    /// processes are invisible without privilege.
    fn process_of(inodes: &[u64]) -> Option<String> {
        if inodes.is_empty() {
            return None;
        }
        let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
        for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = proc_entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                    return Some(describe(pid));
                }
            }
        }
        None
    }

    fn describe(pid: u32) -> String {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split('\0')
                    .flat_map(str::split_whitespace)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let mut cmdline: String = cmdline.chars().take(100).collect();
        if cmdline.is_empty() {
            cmdline = comm.trim().to_string();
        }
        let comm = comm.trim();
        let mut text = format!("pid {pid} `{comm}` ({cmdline})");
        if comm == "docker-proxy" {
            text.push_str(", publishing a Docker container's port (see `docker ps`)");
        }
        text
    }
}

#[cfg(target_os = "macos")]
mod macos {
    use crate::config::Protocol;

    pub(super) fn owner(port: u16, protocol: Protocol) -> Option<String> {
        let mut cmd = std::process::Command::new("lsof");
        cmd.arg("-nP").arg("-Fpc");
        match protocol {
            Protocol::Tcp => cmd.arg(format!("-iTCP:{port}")).arg("-sTCP:LISTEN"),
            Protocol::Udp => cmd.arg(format!("-iUDP:{port}")),
        };
        let out = cmd.output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text.lines().find_map(|l| l.strip_prefix('p'))?;
        let command = text
            .lines()
            .find_map(|l| l.strip_prefix('c'))
            .unwrap_or("?");
        Some(format!("pid {pid} `{command}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(port: u16, protocol: Protocol) -> Bind {
        Bind {
            key: "services.grafana.ports.http".into(),
            addr: "127.0.0.1".parse().unwrap(),
            port,
            protocol,
        }
    }

    #[test]
    fn a_taken_tcp_port_names_its_owner_and_the_key() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let problems = check_binds(&[bind(port, Protocol::Tcp)], ROOTFUL);
        assert_eq!(problems.len(), 1);
        let p = &problems[0];
        assert!(
            p.message.contains(&format!("127.0.0.1:{port}/tcp")),
            "{p:?}"
        );
        assert!(p.message.contains("services.grafana.ports.http"), "{p:?}");
        #[cfg(target_os = "linux")]
        assert!(
            p.message.contains(&format!("pid {}", std::process::id())),
            "{p:?}"
        );
        assert!(p.hint.contains("services.grafana.ports.http"));
    }

    #[test]
    fn udp_is_checked_separately_from_tcp() {
        let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        assert_eq!(check_binds(&[bind(port, Protocol::Udp)], ROOTFUL).len(), 1);
        // The same number on TCP may well be free; a free one passes.
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        assert!(check_binds(&[bind(port, Protocol::Tcp)], ROOTFUL).is_empty());
    }

    const ROOTFUL: Publisher = Publisher {
        rootless: false,
        unprivileged_port_start: 1024,
    };
    const ROOTLESS: Publisher = Publisher {
        rootless: true,
        unprivileged_port_start: 1024,
    };

    fn denied() -> Probe {
        Probe::Denied
    }

    #[test]
    fn a_port_a_normal_user_may_not_bind_is_fine_when_a_rootful_engine_publishes_it() {
        // What a non-root user sees for 127.0.0.1:80: EACCES, and nobody listening.
        let gateway = bind(80, Protocol::Tcp);
        assert_eq!(judge(&gateway, denied(), ROOTFUL, || Occupant::Free), None);
        assert_eq!(
            judge(&gateway, denied(), ROOTFUL, || Occupant::Unknown),
            None
        );
    }

    #[test]
    fn a_port_a_normal_user_may_not_bind_but_someone_holds_is_taken() {
        let gateway = bind(80, Protocol::Tcp);
        let p = judge(&gateway, denied(), ROOTFUL, || Occupant::Held {
            by: Some("pid 42 `nginx`".into()),
        })
        .expect("a problem");
        assert!(p.message.contains("127.0.0.1:80/tcp"), "{p:?}");
        assert!(p.message.contains("taken by pid 42 `nginx`"), "{p:?}");
        assert!(p.hint.contains("services.grafana.ports.http"), "{p:?}");
        // Another user's process: taken, by someone devenv cannot name.
        let p = judge(&gateway, denied(), ROOTFUL, || Occupant::Held { by: None }).unwrap();
        assert!(p.message.contains("cannot see"), "{p:?}");
    }

    #[test]
    fn a_rootless_engine_cannot_publish_below_the_unprivileged_start() {
        let gateway = bind(80, Protocol::Tcp);
        let p = judge(&gateway, denied(), ROOTLESS, || Occupant::Free).expect("a problem");
        assert!(p.message.contains("rootless"), "{p:?}");
        assert!(p.hint.contains("services.grafana.ports.http"), "{p:?}");
        assert!(
            p.hint.contains("net.ipv4.ip_unprivileged_port_start=80"),
            "{p:?}"
        );
        // Whoever runs devenv: the engine, not devenv, binds it.
        assert!(judge(&gateway, Probe::Free, ROOTLESS, || Occupant::Free).is_some());
        // Above the start, or with the start lowered, rootless is no obstacle.
        assert_eq!(
            judge(&bind(8080, Protocol::Tcp), Probe::Free, ROOTLESS, || {
                Occupant::Free
            }),
            None
        );
        let lowered = Publisher {
            rootless: true,
            unprivileged_port_start: 80,
        };
        assert_eq!(
            judge(&gateway, Probe::Free, lowered, || Occupant::Free),
            None
        );
    }

    #[test]
    fn a_port_in_use_is_taken_whatever_the_tables_say() {
        let b = bind(3000, Protocol::Tcp);
        assert!(judge(&b, Probe::InUse, ROOTFUL, || Occupant::Free).is_some());
        assert_eq!(judge(&b, Probe::Free, ROOTFUL, || unreachable!()), None);
    }

    fn network(name: &str, subnets: &[&str]) -> ObservedNetwork {
        ObservedNetwork {
            name: name.into(),
            project: None,
            subnets: subnets.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_subnet_overlapping_another_network_is_a_problem_naming_it() {
        let subnet: Ipv4Net = "172.30.80.0/24".parse().unwrap();
        let networks = [
            network("macula-infra", &["172.30.80.0/24"]),
            network("bridge", &["172.17.0.0/16"]),
            network("v6", &["fd00::/64"]),
            network("pool", &["172.30.0.0/16"]),
            network("inside", &["172.30.80.128/25"]),
        ];
        let problems = check_subnet(subnet, "macula-infra", &networks);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.contains("pool"), "{problems:?}");
        assert!(
            problems[0].message.contains("172.30.0.0/16"),
            "{problems:?}"
        );
        assert!(problems[1].message.contains("inside"), "{problems:?}");
        assert!(problems.iter().all(|p| p.hint.contains("network.subnet")));
        assert!(check_subnet(subnet, "macula-infra", &networks[..3]).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn wildcards_cover_the_addresses_of_their_family() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(linux::covers(a("0.0.0.0"), a("127.0.0.1")));
        assert!(linux::covers(a("::"), a("127.0.0.1")));
        assert!(linux::covers(a("::ffff:127.0.0.1"), a("127.0.0.1")));
        assert!(linux::covers(a("127.0.0.2"), a("0.0.0.0")));
        assert!(!linux::covers(a("127.0.0.2"), a("127.0.0.1")));
        assert!(!linux::covers(a("0.0.0.0"), a("::1")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_socket_tables_show_a_listener_and_its_process() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let here = "127.0.0.1".parse().unwrap();
        match occupant(here, port, Protocol::Tcp) {
            Occupant::Held { by: Some(by) } => {
                assert!(by.contains(&format!("pid {}", std::process::id())), "{by}")
            }
            other => panic!("{other:?}"),
        }
        drop(holder);
        assert_eq!(occupant(here, port, Protocol::Tcp), Occupant::Free);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_net_tables_parse() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n";
        let e = linux::parse(table);
        assert_eq!(
            e,
            [linux::Entry {
                addr: "127.0.0.1".parse().unwrap(),
                port: 5432,
                state: 0x0A,
                inode: 12345
            }]
        );
    }

    #[test]
    fn pull_policy_decides_what_is_pulled() {
        let needed: BTreeSet<String> = ["a:1".to_string(), "b:1".to_string()].into();
        let ids: BTreeMap<String, Option<String>> = [
            ("a:1".to_string(), Some("sha256:a".to_string())),
            ("b:1".to_string(), None),
        ]
        .into();
        assert_eq!(
            images_to_pull(&needed, &ids, PullPolicy::Missing),
            (vec!["b:1".to_string()], vec![])
        );
        assert_eq!(images_to_pull(&needed, &ids, PullPolicy::Always).0.len(), 2);
        let (pull, problems) = images_to_pull(&needed, &ids, PullPolicy::Never);
        assert!(pull.is_empty());
        assert!(problems[0].message.contains("b:1"));
    }
}

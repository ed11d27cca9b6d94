//! Checks made before anything is created: every host address and port `up` will publish is
//! free (TCP and UDP, per address) — and when one is not, which process holds it (Linux:
//! /proc; macOS: lsof) and which devenv.yaml key moves it —, loopback addresses beyond
//! 127.0.0.1 are usable, and images are present or may be pulled.
//!
//! Not for: the checks themselves changing anything; and not for ports devenv's own running
//! containers already publish (the caller leaves those out).

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use crate::config::{Protocol, Service};
use crate::docker::images::PullPolicy;

/// One host bind a service needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub service: String,
    /// The port's name in `services.<svc>.ports`.
    pub port_name: String,
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
                service: service.name.clone(),
                port_name: p.name.clone(),
                addr: p.host_ip,
                port: p.host_port,
                protocol: p.protocol,
            })
            .collect()
    }

    /// The devenv.yaml key that moves it.
    pub fn key(&self) -> String {
        format!("services.{}.ports.{}", self.service, self.port_name)
    }
}

/// A problem found before anything was created, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub hint: String,
}

/// Check that every bind in `binds` is free and its address usable.
pub fn check_binds(binds: &[Bind]) -> Vec<Problem> {
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
        let at = SocketAddr::new(b.addr, b.port);
        let result = match b.protocol {
            Protocol::Tcp => TcpListener::bind(at).map(drop),
            Protocol::Udp => UdpSocket::bind(at).map(drop),
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AddrInUse => {
                let holder = owner(b.addr, b.port, b.protocol)
                    .unwrap_or_else(|| "a process devenv cannot see (try as root)".to_string());
                problems.push(Problem {
                    message: format!(
                        "{at}/{} for {} is taken by {holder}",
                        b.protocol.as_str(),
                        b.key()
                    ),
                    hint: format!(
                        "stop that process, or set `{}` in devenv.yaml to a free port (0 leaves it unpublished)",
                        b.key()
                    ),
                });
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => problems.push(Problem {
                message: format!(
                    "{at}/{} for {} needs privilege to bind",
                    b.protocol.as_str(),
                    b.key()
                ),
                hint: format!(
                    "set `{}` in devenv.yaml to a port above 1023, or allow unprivileged ports (Linux: sysctl net.ipv4.ip_unprivileged_port_start)",
                    b.key()
                ),
            }),
            Err(e) => problems.push(Problem {
                message: format!("{at}/{} for {}: {e}", b.protocol.as_str(), b.key()),
                hint: format!("set `{}` in devenv.yaml to another port", b.key()),
            }),
        }
    }
    problems
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

/// Who holds `addr:port`, as `pid 123 (nginx: master process ...)`, where the OS lets devenv see.
pub fn owner(addr: IpAddr, port: u16, protocol: Protocol) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        linux::owner(addr, port, protocol)
    }
    #[cfg(target_os = "macos")]
    {
        let _ = addr;
        macos::owner(port, protocol)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = (addr, port, protocol);
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

    fn covers(bound: IpAddr, wanted: IpAddr) -> bool {
        bound == wanted
            || bound.is_unspecified()
            || matches!(bound, IpAddr::V6(v6) if v6.to_ipv4_mapped() == Some(match wanted {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(_) => return false,
            }))
    }

    pub(super) fn owner(addr: IpAddr, port: u16, protocol: Protocol) -> Option<String> {
        let files: &[&str] = match protocol {
            Protocol::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
            Protocol::Udp => &["/proc/net/udp", "/proc/net/udp6"],
        };
        let inodes: Vec<u64> = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| parse(&t))
            .filter(|e| e.port == port && covers(e.addr, addr))
            .filter(|e| protocol == Protocol::Udp || e.state == TCP_LISTEN)
            .map(|e| e.inode)
            .filter(|&i| i != 0)
            .collect();
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
            service: "grafana".into(),
            port_name: "http".into(),
            addr: "127.0.0.1".parse().unwrap(),
            port,
            protocol,
        }
    }

    #[test]
    fn a_taken_tcp_port_names_its_owner_and_the_key() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let problems = check_binds(&[bind(port, Protocol::Tcp)]);
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
        assert_eq!(check_binds(&[bind(port, Protocol::Udp)]).len(), 1);
        // The same number on TCP may well be free; a free one passes.
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        assert!(check_binds(&[bind(port, Protocol::Tcp)]).is_empty());
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

//! The relay that lets the gateway container reach a dev server listening on this host's
//! loopback only (`npm run dev`, `rails s` and `go run .` listen on 127.0.0.1 by default).
//!
//! With Docker Engine on Linux the gateway container reaches the host at the default bridge's
//! gateway address (what `host-gateway` maps to), never at 127.0.0.1, so a loopback-only
//! process answers it 502. A route to this host's loopback therefore gets a relay: a TCP port
//! on that bridge address, chosen by `routes add` and kept in the route, where devenv's
//! background process (the resolver, `devenv dns serve`) accepts the gateway's connections and
//! copies each, both ways, to the route's own target on loopback. It listens on no other
//! address, forwards only to its route's target, and accepts only peers that come from a Docker
//! bridge (by this host's routing table), so a neighbour on the LAN who routes to the bridge
//! address is refused. WebSockets and long-lived streams are plain TCP to it.
//!
//! Where the bridge address is not an address of this host (Docker Desktop, Rancher Desktop
//! and colima run the engine in a VM and forward to the host's loopback themselves; a rootless
//! engine's bridge lives in its own namespace; a remote engine), there is no relay, and
//! `routes add` still warns about loopback-only targets where they can answer 502.
//!
//! Not for: proxying HTTP (the gateway does), or routes to other hosts.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{Route, Target};

/// Where a route's relay listens: the bridge address containers reach this host at, and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    pub address: IpAddr,
    pub port: u16,
}

impl Relay {
    pub fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// A relay address for a new route, when `bridge` (the engine's `host-gateway` address) is an
/// address of this host: a port the kernel has free there now. `None` otherwise (the engine
/// runs in a VM, rootless or elsewhere: binding the address fails).
pub fn allocate(bridge: IpAddr) -> Option<Relay> {
    let listener = std::net::TcpListener::bind((bridge, 0)).ok()?;
    let port = listener.local_addr().ok()?.port();
    Some(Relay {
        address: bridge,
        port,
    })
}

/// Whether something accepts connections at `relay` now.
pub async fn accepts(relay: &Relay) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(relay.socket())).await,
        Ok(Ok(_))
    )
}

/// Wait up to `wait` for `relay` to accept connections.
pub async fn wait_accepting(relay: &Relay, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if accepts(relay).await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The addresses to try for `target` on this host: loopback for the unspecified address, both
/// loopbacks for `localhost` (dev servers bind `localhost` as `::1` or `127.0.0.1`).
fn destinations(target: &Target) -> Vec<SocketAddr> {
    let port = target.port;
    match target.host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => vec![
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
        ],
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => vec![
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
        ],
    }
}

/// The relays being served, by route: each a listening task. `reconcile` makes them those of
/// a routes table.
#[derive(Default)]
pub struct Relays {
    running: BTreeMap<(Relay, Target), JoinHandle<()>>,
}

impl Relays {
    /// Serve the relays of `routes` and stop the others. A relay that cannot listen (its port
    /// was taken meanwhile, the bridge address is gone) is logged and tried again on the next
    /// call.
    pub fn reconcile(&mut self, routes: &[Route]) {
        let wanted: BTreeMap<(Relay, Target), ()> = routes
            .iter()
            .filter_map(|r| Some(((r.relay?, r.target.clone()), ())))
            .collect();
        self.running.retain(|key, task| {
            let keep = wanted.contains_key(key) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for key in wanted.into_keys() {
            if self.running.contains_key(&key) {
                continue;
            }
            let (relay, target) = key.clone();
            match bind(relay.socket()) {
                Ok(listener) => {
                    tracing::info!("relay {} -> {target}", relay.socket());
                    self.running
                        .insert(key, tokio::spawn(serve(listener, target)));
                }
                Err(e) => {
                    tracing::warn!("relay {} -> {target}: cannot listen: {e}", relay.socket())
                }
            }
        }
    }

    /// How many relays are served.
    pub fn len(&self) -> usize {
        self.running.values().filter(|t| !t.is_finished()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

fn bind(at: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match at {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(at)?;
    socket.listen(128)
}

async fn serve(listener: TcpListener, target: Target) {
    loop {
        let (inbound, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("relay to {target}: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !from_a_docker_bridge(peer.ip()) {
            tracing::warn!("relay to {target}: refused {peer}: not from a Docker bridge");
            continue;
        }
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(e) = relay(inbound, &target).await {
                tracing::debug!("relay {peer} -> {target}: {e}");
            }
        });
    }
}

async fn relay(mut inbound: TcpStream, target: &Target) -> std::io::Result<()> {
    let mut last = None;
    for at in destinations(target) {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(at)).await {
            Ok(Ok(mut outbound)) => {
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await?;
                return Ok(());
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(std::io::ErrorKind::TimedOut.into()),
        }
    }
    // Closing the inbound side makes nginx answer 502, as for a target that is down.
    Err(last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()))
}

/// Whether `peer` is this host or comes from a Docker bridge: the most specific route to it in
/// this host's IPv4 routing table (`/proc/net/route`) leaves through a `docker*` or `br-*`
/// interface. Peers on the LAN, a VPN or anything else are not.
fn from_a_docker_bridge(peer: IpAddr) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => return v6.is_loopback(),
        },
        IpAddr::V4(v4) => v4,
    };
    if peer.is_loopback() {
        return true;
    }
    std::fs::read_to_string("/proc/net/route")
        .is_ok_and(|table| route_interface(&table, peer).is_some_and(is_docker_bridge))
}

fn is_docker_bridge(interface: &str) -> bool {
    interface.starts_with("docker") || interface.starts_with("br-")
}

/// The interface of the most specific route to `peer` in a `/proc/net/route` table
/// (destination and mask as little-endian hex).
fn route_interface(table: &str, peer: Ipv4Addr) -> Option<&str> {
    let peer = u32::from(peer);
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let destination = u32::from_str_radix(fields.get(1)?, 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?.swap_bytes();
            (peer & mask == destination & mask).then_some((mask.count_ones(), fields[0]))
        })
        .max_by_key(|(bits, _)| *bits)
        .map(|(_, interface)| interface)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br-1a2b3c4d5e6f\t0000D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    #[test]
    fn peers_are_judged_by_the_interface_of_their_most_specific_route() {
        let at = |ip: &str| route_interface(TABLE, ip.parse().unwrap());
        assert_eq!(at("172.17.0.5"), Some("docker0"));
        assert_eq!(at("10.213.0.7"), Some("br-1a2b3c4d5e6f"));
        // The LAN's own subnet, and anything behind the default route.
        assert_eq!(at("192.168.2.40"), Some("eth0"));
        assert_eq!(at("8.8.8.8"), Some("eth0"));
        assert!(is_docker_bridge("docker0") && is_docker_bridge("br-1a2b3c4d5e6f"));
        assert!(!is_docker_bridge("eth0") && !is_docker_bridge("wlan0"));
        assert_eq!(
            route_interface("Iface\tDestination\n", Ipv4Addr::LOCALHOST),
            None
        );
    }

    #[test]
    fn loopback_targets_are_tried_on_both_loopbacks() {
        let t = |s: &str| destinations(&s.parse().unwrap());
        assert_eq!(t("127.0.0.1:3000"), ["127.0.0.1:3000".parse().unwrap()]);
        assert_eq!(t("[::1]:3000"), ["[::1]:3000".parse().unwrap()]);
        let both: Vec<SocketAddr> = vec![
            "127.0.0.1:5173".parse().unwrap(),
            "[::1]:5173".parse().unwrap(),
        ];
        assert_eq!(t("localhost:5173"), both);
        assert_eq!(t("0.0.0.0:5173"), both);
    }

    #[tokio::test]
    async fn a_relay_copies_both_ways_to_its_target_and_stops_with_its_route() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A server on loopback only, echoing with a prefix until its client closes.
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target: Target = server.local_addr().unwrap().to_string().parse().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = server.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&[b"echo:", &buf[..n]].concat()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        // Loopback stands in for the bridge address: the host is a permitted peer.
        let relay = allocate(Ipv4Addr::LOCALHOST.into()).unwrap();
        let route = Route {
            name: "api".into(),
            host: "api.macula.local".into(),
            target,
            relay: Some(relay),
        };
        let mut relays = Relays::default();
        relays.reconcile(std::slice::from_ref(&route));
        assert_eq!(relays.len(), 1);
        assert!(wait_accepting(&relay, Duration::from_secs(5)).await);
        let mut c = TcpStream::connect(relay.socket()).await.unwrap();
        // Two exchanges on one connection: a stream, not one request.
        for word in ["one", "two"] {
            c.write_all(word.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 5 + word.len()];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, format!("echo:{word}").as_bytes());
        }
        // The same table again changes nothing; without the route the port closes.
        relays.reconcile(std::slice::from_ref(&route));
        assert_eq!(relays.len(), 1);
        relays.reconcile(&[]);
        assert!(relays.is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!accepts(&relay).await);
    }

    #[test]
    fn no_relay_where_the_bridge_address_is_not_this_hosts() {
        // TEST-NET-1 is never an address of this host: binding it fails, as for a VM's bridge.
        assert_eq!(allocate("192.0.2.1".parse().unwrap()), None);
    }
}

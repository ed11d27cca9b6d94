//! Who can reach a port on this host: whether something listens on it, and on which addresses,
//! read from the kernel's socket tables (`/proc/net/tcp`, `/proc/net/tcp6`). A route to a
//! process on the host is served by the gateway container, which reaches the host at Docker's
//! address for it, never at 127.0.0.1: a dev server listening on loopback only is out of its
//! reach (Linux; Docker Desktop forwards to the host's loopback). `routes add` says so.
//!
//! Not for: probing the route through the gateway (`routes list --check` does).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a TCP port of this host listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listening {
    /// Nothing listens on it.
    Nothing,
    /// Only on loopback addresses: unreachable from containers.
    LoopbackOnly,
    /// On all addresses (`0.0.0.0`, `::`): containers reach it through Docker's address for
    /// the host.
    Reachable,
    /// On another address only (a LAN, VPN or bridge address): reachable from containers only
    /// when that is Docker's address for the host.
    Elsewhere(IpAddr),
    /// The socket tables cannot be read here (not Linux).
    Unknown,
}

/// How `port` listens, from this host's socket tables.
pub fn port(port: u16) -> Listening {
    let tables: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    if tables.is_empty() {
        return Listening::Unknown;
    }
    classify(tables.iter().flat_map(|t| listeners(t)), port)
}

/// The verdict for `port` among `listeners` (address, port).
fn classify(listeners: impl Iterator<Item = (IpAddr, u16)>, port: u16) -> Listening {
    let mut seen = false;
    let mut elsewhere = None;
    for (address, p) in listeners {
        if p != port {
            continue;
        }
        seen = true;
        let address = match address {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4),
            v4 => v4,
        };
        if address.is_unspecified() {
            return Listening::Reachable;
        }
        if !address.is_loopback() {
            elsewhere.get_or_insert(address);
        }
    }
    match (seen, elsewhere) {
        (_, Some(address)) => Listening::Elsewhere(address),
        (true, None) => Listening::LoopbackOnly,
        (false, None) => Listening::Nothing,
    }
}

/// The listening sockets (state `0A`) of one `/proc/net/tcp` or `tcp6` table.
fn listeners(table: &str) -> impl Iterator<Item = (IpAddr, u16)> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let state = fields.nth(1)?;
        if state != "0A" {
            return None;
        }
        let (address, port) = local.split_once(':')?;
        Some((address_of(address)?, u16::from_str_radix(port, 16).ok()?))
    })
}

/// An address as the kernel writes it: 32-bit words in host byte order, each as 8 hex digits.
fn address_of(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as a little-endian Linux writes them (header, then one socket a line).
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0BB9 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 100 0 0 10 0
   3: 0500007F:0BBA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4 1 0000000000000000 100 0 0 10 0
   4: 0A01A8C0:0BBE 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 8 1 0000000000000000 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0BBB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0BBC 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 6 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0BBD 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7 1 0000000000000000 100 0 0 10 0
";

    fn verdict(port: u16) -> Listening {
        classify(listeners(TCP).chain(listeners(TCP6)), port)
    }

    #[test]
    fn loopback_only_listeners_are_told_from_reachable_ones() {
        if cfg!(target_endian = "big") {
            return; // the fixture is a little-endian machine's
        }
        assert_eq!(verdict(3000), Listening::LoopbackOnly, "127.0.0.1:3000");
        assert_eq!(verdict(8080), Listening::Reachable, "0.0.0.0:8080");
        // An established connection is no listener.
        assert_eq!(verdict(3001), Listening::Nothing);
        assert_eq!(verdict(3002), Listening::LoopbackOnly, "127.0.0.5");
        assert_eq!(verdict(3003), Listening::LoopbackOnly, "[::1]");
        assert_eq!(verdict(3004), Listening::Reachable, "[::]");
        assert_eq!(verdict(3005), Listening::LoopbackOnly, "[::ffff:127.0.0.1]");
        assert_eq!(
            verdict(3006),
            Listening::Elsewhere("192.168.1.10".parse().unwrap()),
            "a LAN address only"
        );
        assert_eq!(verdict(9), Listening::Nothing);
    }

    #[test]
    fn a_real_listener_is_seen_as_it_listens() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let loopback = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = loopback.local_addr().unwrap().port();
        assert_eq!(port(p), Listening::LoopbackOnly);
        drop(loopback);
        let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let p = any.local_addr().unwrap().port();
        assert_eq!(port(p), Listening::Reachable);
        drop(any);
        assert_eq!(port(p), Listening::Nothing);
    }
}

//! The `kind` network, made the way kind makes it when devenv is first: kind uses any network of
//! that name as it finds it (it never inspects its options), so a network devenv creates must
//! already be what `kind create cluster` would have created. Read from kind v0.32.0's
//! `pkg/cluster/internal/providers/docker/network.go`:
//!
//! - a bridge with `com.docker.network.bridge.enable_ip_masquerade=true`, and
//!   `com.docker.network.driver.mtu` set to the default `bridge` network's MTU when that is a
//!   number above 0 (a host whose uplink has a small MTU, as in many VMs and VPNs);
//! - IPv6 on, with a ULA /64 derived from the network's name: `fc00:` and bytes 2 to 7 of the
//!   SHA-1 of the name followed by the attempt number (a little-endian int32); IPv4 is left to
//!   the engine;
//! - a subnet the engine refuses as overlapping: the next attempt, five in all; an engine
//!   without IPv6 (no ip6tables, IPv6 off): once more without IPv6;
//! - several networks of that name: the one with the most containers is kept, then the lowest
//!   ID, and the others removed.
//!
//! Not for: the environment's own networks (`super::Engine::create_network`).

use sha1::{Digest, Sha1};

/// The engine's option for a bridge's MTU.
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";
/// The engine's option that masquerades a bridge's traffic to the outside.
pub const MASQUERADE_OPTION: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// How many IPv6 subnets kind tries before it gives up.
pub const ATTEMPTS: i32 = 5;

/// The IPv6 subnet kind gives network `name` on `attempt` (0-based), e.g.
/// `fc00:f853:ccd:e793::/64` for `kind` on the first.
pub fn ula_subnet(name: &str, attempt: i32) -> String {
    let mut hash = Sha1::new();
    hash.update(name.as_bytes());
    hash.update(attempt.to_le_bytes());
    let digest = hash.finalize();
    let mut octets = [0u8; 16];
    octets[0] = 0xfc;
    octets[2..8].copy_from_slice(&digest[2..8]);
    format!("{}/64", std::net::Ipv6Addr::from(octets))
}

/// The MTU kind copies from the default `bridge` network's options: a number above 0, else
/// none.
pub fn bridge_mtu(value: Option<&str>) -> Option<u32> {
    value?.trim().parse::<u32>().ok().filter(|m| *m > 0)
}

/// What the engine's refusal to create the network means to kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The subnet overlaps another network's: try the next.
    Overlap,
    /// The engine cannot do IPv6: once more without it.
    NoIpv6,
    /// Anything else: give up.
    Other,
}

/// kind's reading of the engine's message (the CLI's text after `Error response from daemon: `),
/// matched anywhere in it.
pub fn refusal(message: &str) -> Refusal {
    // `contains`, not kind's `starts_with`: newer engines put `invalid pool request: ` first.
    if message.contains("Pool overlaps with other one on this address space")
        || message.contains("networks have overlapping")
    {
        Refusal::Overlap
    } else if message.contains("Cannot read IPv6 setup for bridge")
        || message.contains("(iptables failed: ip6tables")
    {
        Refusal::NoIpv6
    } else {
        Refusal::Other
    }
}

/// Of several networks of one name (ID, attached containers), the one kind keeps: the most
/// containers, then the lowest ID.
pub fn kept(networks: &[(String, usize)]) -> Option<&str> {
    networks
        .iter()
        .min_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)))
        .map(|(id, _)| id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv6_subnet_is_kinds_own() {
        // kind's network_test.go: "kind", attempt 0.
        assert_eq!(ula_subnet("kind", 0), "fc00:f853:ccd:e793::/64");
        assert_eq!(ula_subnet("kind", 1), "fc00:8866:27d0:bd7e::/64");
        assert_eq!(ula_subnet("kind", 4), "fc00:3131:6ea8:d73a::/64");
        assert_ne!(ula_subnet("other", 0), ula_subnet("kind", 0));
    }

    #[test]
    fn the_mtu_is_the_bridges_when_it_is_a_number_above_zero() {
        assert_eq!(bridge_mtu(Some("1400")), Some(1400));
        assert_eq!(bridge_mtu(Some("0")), None);
        assert_eq!(bridge_mtu(Some("")), None);
        assert_eq!(bridge_mtu(Some("auto")), None);
        assert_eq!(bridge_mtu(None), None);
    }

    #[test]
    fn refusals_are_read_as_kind_reads_them() {
        assert_eq!(
            refusal("Pool overlaps with other one on this address space"),
            Refusal::Overlap
        );
        assert_eq!(
            refusal("invalid pool request: networks have overlapping IPv6"),
            Refusal::Overlap
        );
        assert_eq!(
            refusal(
                "Cannot read IPv6 setup for bridge br-1234: open /proc/sys/net/ipv6: no such file"
            ),
            Refusal::NoIpv6
        );
        assert_eq!(
            refusal(
                "Failed to Setup IP tables: Unable to enable NAT rule:  (iptables failed: ip6tables --wait -t nat -I POSTROUTING: ip6tables v1.8.9: can't initialize)"
            ),
            Refusal::NoIpv6
        );
        assert_eq!(
            refusal("invalid pool request: Pool overlaps with other one on this address space"),
            Refusal::Overlap
        );
        assert_eq!(refusal("permission denied"), Refusal::Other);
    }

    #[test]
    fn of_same_named_networks_the_busiest_then_the_lowest_id_is_kept() {
        let n = |id: &str, c| (id.to_string(), c);
        assert_eq!(kept(&[n("b", 0), n("a", 0)]), Some("a"));
        assert_eq!(kept(&[n("a", 0), n("b", 2), n("c", 2)]), Some("b"));
        assert_eq!(kept(&[]), None);
    }
}

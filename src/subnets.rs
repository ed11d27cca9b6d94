//! Pure: which IPv4 subnets the engine's networks use, whether two overlap, and free ones for
//! the networks whose subnet devenv chooses itself: a CI job's infrastructure network and the
//! metrics network. Not for: asking the engine (the caller observes it) or creating anything.

use ipnet::Ipv4Net;
use sha2::Digest as _;

use crate::docker::observed::ObservedNetwork;

/// Where CI mode's infrastructure subnets come from: a /24 each.
pub const CI_RANGE: &str = "172.30.0.0/16";

/// Where the metrics network's subnet comes from, in order (see [`free_metrics_subnet`]): the
/// top of the last of Docker's default /16 pools, then a corner of 10/8 that neither Docker's
/// defaults nor devenv's own subnets use.
pub const METRICS_RANGES: [&str; 2] = ["172.31.255.0/24", "10.255.255.0/24"];

/// The metrics network's prefix length: a /29 holds the registry and Prometheus.
pub const METRICS_PREFIX: u8 = 29;

/// Whether `a` and `b` share an address (the engine refuses a pool that overlaps another's).
pub fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The IPv4 subnets of the engine's networks other than `except`, as the engine reports them.
pub fn in_use(networks: &[ObservedNetwork], except: &str) -> Vec<Ipv4Net> {
    networks
        .iter()
        .filter(|n| n.name != except)
        .flat_map(|n| n.subnets.iter().filter_map(|s| s.parse().ok()))
        .collect()
}

/// A /24 of [`CI_RANGE`] that overlaps none of `taken`, for a CI job's environment named
/// `seed`.
pub fn free_ci_subnet(taken: &[Ipv4Net], seed: &str) -> Option<Ipv4Net> {
    first_free(CI_RANGE, 24, seed, taken)
}

/// A subnet for the metrics network of environment `name` that overlaps none of `taken` (the
/// engine's networks) nor the environment's own subnet `own`: a /29 from [`METRICS_RANGES`].
/// `None` when every one is taken.
///
/// devenv chooses it rather than leave it to Docker, which would give each environment a whole
/// /16 of its default address pools (172.17-31.x, then 192.168.x): a handful of environments
/// would use them up, and one could take [`CI_RANGE`]. With no address on the host, the network
/// adds no route on the host, so only other Docker networks can clash with it.
pub fn free_metrics_subnet(name: &str, own: Ipv4Net, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    let mut taken = taken.to_vec();
    taken.push(own);
    METRICS_RANGES
        .iter()
        .find_map(|range| first_free(range, METRICS_PREFIX, name, &taken))
}

/// The first subnet of length `prefix` in `range` that overlaps none of `taken`, starting at
/// an offset from `seed` (an environment's name) so that environments created together seldom
/// try the same one.
fn first_free(range: &str, prefix: u8, seed: &str, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    let range: Ipv4Net = range.parse().expect("a valid range");
    let slots = 1u32 << (prefix - range.prefix_len());
    let start = u32::from(sha2::Sha256::digest(seed.as_bytes())[0]);
    (0..slots)
        .map(|k| {
            let offset = ((start + k) % slots) << (32 - u32::from(prefix));
            let first = std::net::Ipv4Addr::from(u32::from(range.network()) + offset);
            Ipv4Net::new(first, prefix).expect("a valid prefix")
        })
        .find(|s| !taken.iter().any(|t| overlap(s, t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    const OWN: &str = "172.30.80.0/24";

    #[test]
    fn a_free_ci_subnet_overlaps_no_taken_one() {
        let taken: Vec<Ipv4Net> = (0..=255u8)
            .filter(|t| *t != 7)
            .map(|t| net(&format!("172.30.{t}.0/24")))
            .collect();
        assert_eq!(
            free_ci_subnet(&taken, "x").unwrap().to_string(),
            "172.30.7.0/24"
        );
        assert_eq!(free_ci_subnet(&[net("172.16.0.0/12")], "x"), None);
    }

    #[test]
    fn the_metrics_subnet_is_a_small_one_of_devenvs_own_chosen_by_name() {
        let first = free_metrics_subnet("macula", net(OWN), &[]).unwrap();
        assert_eq!(first.prefix_len(), METRICS_PREFIX);
        assert!(net(METRICS_RANGES[0]).contains(&first.network()), "{first}");
        assert_eq!(
            free_metrics_subnet("macula", net(OWN), &[]),
            Some(first),
            "the same every time"
        );
        assert_ne!(
            free_metrics_subnet("another", net(OWN), &[]),
            Some(first),
            "by name"
        );
    }

    #[test]
    fn the_metrics_subnet_avoids_every_network_and_the_environments_own_subnet() {
        let first = free_metrics_subnet("macula", net(OWN), &[]).unwrap();
        // Taken exactly, or inside a larger network: another /29.
        for taken in [first, net(&format!("{}/24", first.network()))] {
            let s = free_metrics_subnet("macula", net(OWN), &[taken]).unwrap();
            assert!(!overlap(&s, &taken), "{s}");
        }
        // Docker's last default pool in use as a whole: the next range.
        let s = free_metrics_subnet("macula", net(OWN), &[net("172.31.0.0/16")]).unwrap();
        assert!(net(METRICS_RANGES[1]).contains(&s.network()), "{s}");
        // The environment's own subnet counts too.
        let s = free_metrics_subnet("macula", net("172.31.255.0/24"), &[]).unwrap();
        assert!(net(METRICS_RANGES[1]).contains(&s.network()), "{s}");
        // Nothing left.
        let all = [net("172.31.0.0/16"), net("10.0.0.0/8")];
        assert_eq!(free_metrics_subnet("macula", net(OWN), &all), None);
    }
}

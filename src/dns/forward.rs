//! Names outside the domain: which upstream resolvers to ask (the system's, never devenv
//! itself), asking them (through [`super::exchange`]), and a small cache that
//! honours the answers' TTLs (and the SOA minimum for negative answers).
//!
//! Not for: the zone's own names, which are never forwarded.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::exchange;
use crate::config::Config;

/// How long one upstream gets to answer before the next is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Cache entries kept at most; beyond, expired entries go, then the oldest.
const CACHE_CAPACITY: usize = 2_048;
/// Cap on how long any answer is cached.
const MAX_TTL: u32 = 86_400;
/// Cap on how long a negative answer is cached (RFC 2308 suggests hours; a developer who has
/// just created a name wants minutes at most).
const MAX_NEGATIVE_TTL: u32 = 300;

/// The system resolver configuration, where the default upstreams come from.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of the real upstreams (behind its stub).
pub const RESOLVED_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// The upstreams to forward to: `flags` (`--upstream`) when given, else devenv.yaml's
/// `dns.upstreams`, else the system's resolvers minus `listen` (devenv's own address).
pub fn choose_upstreams(
    config: &Config,
    flags: &[SocketAddr],
    listen: SocketAddr,
) -> Vec<SocketAddr> {
    if !flags.is_empty() {
        return flags.to_vec();
    }
    if !config.dns.upstreams.is_empty() {
        return config.dns.upstreams.clone();
    }
    system_upstreams(Path::new(RESOLV_CONF), Path::new(RESOLVED_CONF), &[listen])
}

/// The system's resolvers: `nameserver` lines of `resolv_conf` (port 53), minus `own` (so
/// devenv never forwards to itself). When the file names only systemd-resolved's stub
/// (127.0.0.53/54), the real upstreams come from `resolved_conf` instead.
pub fn system_upstreams(
    resolv_conf: &Path,
    resolved_conf: &Path,
    own: &[SocketAddr],
) -> Vec<SocketAddr> {
    let parse = |path: &Path| -> Vec<SocketAddr> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                (words.next()? == "nameserver").then_some(())?;
                // A scoped link-local address (fe80::1%eth0) cannot be parsed into an IpAddr.
                let ip: IpAddr = words.next()?.parse().ok()?;
                Some(SocketAddr::new(ip, 53))
            })
            .collect()
    };
    let mut found = parse(resolv_conf);
    let is_stub = |a: &SocketAddr| matches!(a.ip(), IpAddr::V4(v4) if v4.octets()[..3] == [127, 0, 0] && matches!(v4.octets()[3], 53 | 54));
    if !found.is_empty() && found.iter().all(is_stub) {
        let real = parse(resolved_conf);
        if !real.is_empty() {
            found = real;
        }
    }
    found.retain(|up| {
        !own.iter().any(|o| {
            o.port() == up.port()
                && (o.ip() == up.ip() || (o.ip().is_unspecified() && up.ip().is_loopback()))
        })
    });
    found
}

/// An upstream's answer, as stored in the cache.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub response_code: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// Whether it came from the cache.
    pub cached: bool,
}

#[derive(Debug)]
struct CacheEntry {
    stored: Instant,
    ttl: u32,
    answer: Forwarded,
}

type CacheKey = (LowerName, RecordType, DNSClass);

/// Forwards questions to upstream resolvers, with a cache.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    cache: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl Forwarder {
    /// A forwarder to `upstreams`, asked in order.
    pub fn new(upstreams: Vec<SocketAddr>) -> Forwarder {
        Forwarder {
            upstreams,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The upstreams, in the order they are asked.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// How many answers the cache holds.
    pub fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Answer `name`/`rtype`/`class` from the cache, or from the first upstream that answers.
    pub async fn resolve(
        &self,
        name: &Name,
        rtype: RecordType,
        class: DNSClass,
    ) -> anyhow::Result<Forwarded> {
        let key = (LowerName::from(name), rtype, class);
        if let Some(hit) = self.cache_get(&key) {
            return Ok(hit);
        }
        if self.upstreams.is_empty() {
            bail!(
                "no upstream resolvers are configured (dns.upstreams, or nameserver lines in /etc/resolv.conf)"
            );
        }
        let mut last = None;
        for upstream in &self.upstreams {
            match ask(*upstream, name, rtype, class).await {
                Ok(m) => {
                    let answer = Forwarded {
                        response_code: m.metadata.response_code,
                        answers: m.answers,
                        authorities: m.authorities,
                        additionals: m
                            .additionals
                            .into_iter()
                            .filter(|r| r.record_type() != RecordType::OPT)
                            .collect(),
                        cached: false,
                    };
                    // A SERVFAIL or REFUSED from one upstream may be a success at the next.
                    if matches!(
                        answer.response_code,
                        ResponseCode::ServFail | ResponseCode::Refused
                    ) && !std::ptr::eq(upstream, self.upstreams.last().unwrap_or(upstream))
                    {
                        last = Some(anyhow::anyhow!(
                            "{upstream} answered {}",
                            answer.response_code
                        ));
                        continue;
                    }
                    self.cache_put(key, &answer);
                    return Ok(answer);
                }
                Err(e) => {
                    tracing::debug!("upstream {upstream}: {e:#}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no upstream answered")))
    }

    fn cache_get(&self, key: &CacheKey) -> Option<Forwarded> {
        let cache = self.cache.lock().ok()?;
        let entry = cache.get(key)?;
        let age = entry.stored.elapsed().as_secs();
        if age >= u64::from(entry.ttl) {
            return None;
        }
        let age = age as u32;
        let mut answer = entry.answer.clone();
        for r in answer
            .answers
            .iter_mut()
            .chain(&mut answer.authorities)
            .chain(&mut answer.additionals)
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        answer.cached = true;
        Some(answer)
    }

    fn cache_put(&self, key: CacheKey, answer: &Forwarded) {
        let ttl = match answer.response_code {
            ResponseCode::NoError if !answer.answers.is_empty() => answer
                .answers
                .iter()
                .chain(&answer.authorities)
                .map(|r| r.ttl)
                .min()
                .unwrap_or(0)
                .min(MAX_TTL),
            ResponseCode::NoError | ResponseCode::NXDomain => answer
                .authorities
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(soa.minimum.min(r.ttl)),
                    _ => None,
                })
                .unwrap_or(0)
                .min(MAX_NEGATIVE_TTL),
            _ => 0,
        };
        if ttl == 0 {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, e| e.stored.elapsed().as_secs() < u64::from(e.ttl));
        }
        if cache.len() >= CACHE_CAPACITY
            && let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, e)| e.stored)
                .map(|(k, _)| k.clone())
        {
            cache.remove(&oldest);
        }
        cache.insert(
            key,
            CacheEntry {
                stored: Instant::now(),
                ttl,
                answer: answer.clone(),
            },
        );
    }
}

/// Ask one upstream (see [`super::exchange`]).
async fn ask(
    upstream: SocketAddr,
    name: &Name,
    rtype: RecordType,
    class: DNSClass,
) -> anyhow::Result<Message> {
    let query = exchange::query(name, rtype, class);
    exchange::exchange(upstream, &query, UPSTREAM_TIMEOUT).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_skip_devenv_and_see_through_the_resolved_stub() {
        let dir = tempfile::tempdir().unwrap();
        let resolv = dir.path().join("resolv.conf");
        let resolved = dir.path().join("resolved.conf");
        std::fs::write(
            &resolv,
            "# x\nnameserver 127.0.0.1\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch lan\n",
        )
        .unwrap();
        let own: SocketAddr = "127.0.0.1:53".parse().unwrap();
        assert_eq!(
            system_upstreams(&resolv, &resolved, &[own]),
            vec!["10.0.0.2:53".parse::<SocketAddr>().unwrap()]
        );
        let other_port: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        assert_eq!(system_upstreams(&resolv, &resolved, &[other_port]).len(), 2);
        std::fs::write(&resolv, "nameserver 127.0.0.53\n").unwrap();
        std::fs::write(&resolved, "nameserver 192.168.1.1\n").unwrap();
        assert_eq!(
            system_upstreams(&resolv, &resolved, &[own]),
            vec!["192.168.1.1:53".parse::<SocketAddr>().unwrap()]
        );
    }
}

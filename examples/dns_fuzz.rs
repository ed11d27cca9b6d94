//! Robustness run for `devenv dns serve`: send mutated and malformed UDP packets (bit flips,
//! byte overwrites, truncations, extensions, random header counts, plain noise) derived from
//! valid queries, check every few hundred packets that a valid query is still answered
//! correctly, and report the server's resident memory before and after.
//!
//! Usage: cargo run --release --example dns_fuzz -- ADDR:PORT [PACKETS] [SERVER_PID]
//! Driven by bench/dns-fuzz.sh. Exits non-zero when the server stops answering or its RSS grows
//! by more than 4 MB after a warm-up of a fifth of the packets (bounded structures fill first).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Packets sent between two probes.
const BATCH: usize = 64;

/// xorshift64*: reproducible noise without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if edns {
        q.extend_from_slice(&[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]);
    }
    q
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut p = seeds[rng.below(seeds.len())].clone();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        match rng.below(9) {
            0 => {
                let i = rng.below(p.len());
                p[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(p.len());
                p[i] = rng.next() as u8;
            }
            2 => p.truncate(rng.below(p.len() + 1)),
            3 => {
                for _ in 0..rng.below(64) {
                    p.push(rng.next() as u8);
                }
            }
            4 if p.len() >= 12 => {
                // Header counts: any of QD/AN/NS/AR.
                let i = 4 + 2 * rng.below(4);
                p[i] = rng.next() as u8;
                p[i + 1] = rng.next() as u8;
            }
            5 if p.len() > 13 => {
                // A compression pointer somewhere in the name.
                let i = 12 + rng.below(p.len() - 13);
                p[i] = 0xC0 | (rng.next() as u8 & 0x3F);
                p[i + 1] = rng.next() as u8;
            }
            6 if p.len() >= 4 => {
                // Opcode, flags, rcode.
                p[2] = rng.next() as u8 & 0x7F;
                p[3] = rng.next() as u8;
            }
            7 => {
                p = (0..rng.below(600)).map(|_| rng.next() as u8).collect();
            }
            _ => {
                let i = rng.below(p.len());
                p[i] = p[i].wrapping_add(1);
            }
        }
        if p.is_empty() {
            break;
        }
    }
    p
}

fn rss_kb(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let server: SocketAddr = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: dns_fuzz ADDR:PORT [PACKETS] [SERVER_PID]");
    let total: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let pid = args.get(3).cloned();

    let seeds: Vec<Vec<u8>> = [
        ("grafana.macula.local", 1, false),
        ("shop.macula.local", 1, true),
        ("macula.local", 6, true),
        ("registry.macula.local", 28, false),
        ("a.b.c.macula.local", 16, true),
        ("upstream.test", 1, true),
        ("example.com", 1, false),
    ]
    .iter()
    .enumerate()
    .map(|(i, (n, t, e))| query(i as u16, n, *t, *e))
    .collect();
    let probe = query(0xBEEF, "shop.macula.local", 1, false);

    let noise = UdpSocket::bind("127.0.0.1:0").expect("bind");
    noise.set_nonblocking(true).expect("nonblocking");
    let check = UdpSocket::bind("127.0.0.1:0").expect("bind");
    check
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");

    let before = pid.as_deref().and_then(rss_kb);
    // The first fifth warms up what is bounded (in-flight queries, the cache, the allocator's
    // arenas); growth after it would be a leak.
    let warm_up = total / 5;
    let mut warm = None;
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut answered = 0u64;
    let mut probes = 0u64;
    let mut lost_probes = 0u64;
    let mut buf = [0u8; 65_535];
    while sent < total {
        for _ in 0..BATCH {
            let p = mutate(&mut rng, &seeds);
            if noise.send_to(&p, server).is_ok() {
                sent += 1;
            }
        }
        while let Ok(n) = noise.recv(&mut buf) {
            if n > 0 {
                answered += 1;
            }
        }
        // Flow control and the liveness check in one: the probe is answered after the batch.
        // A burst can overflow the socket buffer and lose the probe itself, so it is retried;
        // five losses in a row mean the server has stopped answering.
        let mut ok = None;
        for _ in 0..5 {
            check.send_to(&probe, server).expect("send probe");
            match check.recv(&mut buf) {
                Ok(n) if n >= 12 && buf[..2] == [0xBE, 0xEF] => {
                    ok = Some(buf[n - 4..n] == [127, 0, 0, 2]);
                    break;
                }
                _ => lost_probes += 1,
            }
        }
        match ok {
            Some(true) => {}
            Some(false) => {
                eprintln!("dns_fuzz: a wrong answer to the probe after {sent} packets");
                std::process::exit(1);
            }
            None => {
                eprintln!("dns_fuzz: the server stopped answering after {sent} packets");
                std::process::exit(1);
            }
        }
        probes += 1;
        if warm.is_none() && sent >= warm_up {
            std::thread::sleep(Duration::from_millis(300));
            warm = Some(pid.as_deref().and_then(rss_kb));
        }
    }
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let after = pid.as_deref().and_then(rss_kb);
    println!(
        "sent {sent} mutated packets in {:.1}s ({:.0}/s); {answered} answers to them; {probes} probes all answered correctly ({lost_probes} lost in bursts and resent)",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    if let (Some(b), Some(Some(w)), Some(a)) = (before, warm, after) {
        println!(
            "server RSS: {b} kB at start, {w} kB after the warm-up ({warm_up} packets), {a} kB at the end ({:+} kB after the warm-up)",
            a as i64 - w as i64
        );
        if a > w + 4_096 {
            eprintln!("dns_fuzz: RSS grew by more than 4 MB after the warm-up: a leak");
            std::process::exit(1);
        }
    }
}

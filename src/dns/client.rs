//! Asking a resolver, for `devenv dns query` and `status`: build a query, send it over UDP with
//! a TCP retry when the answer is truncated, or answer it in-process from devenv.yaml when no
//! resolver runs.
//!
//! Not for: serving (see [`super::server`]) or forwarding (see [`super::forward`]).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::forward::{self, Forwarder};
use super::handler::Handler;
use super::records::Records;
use super::store::Store;
use crate::config::Config;

/// How long a query waits for an answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// A recursive query for `name` and `rtype`, with EDNS so that answers up to the resolver's
/// payload size come over UDP.
pub fn build_query(name: &Name, rtype: RecordType) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(name.clone(), rtype));
    m.metadata.recursion_desired = true;
    let mut edns = Edns::new();
    edns.set_max_payload(super::fast::EDNS_PAYLOAD);
    m.set_edns(edns);
    m
}

/// Ask `server` over UDP, and over TCP when the answer is truncated.
pub fn ask(server: SocketAddr, query: &Message) -> anyhow::Result<Message> {
    let bytes = query.to_vec().context("encoding the query")?;
    // Loopback servers are asked from loopback, so they give loopback answers.
    let bind = match (server.is_ipv4(), server.ip().is_loopback()) {
        (true, true) => SocketAddr::from(([127, 0, 0, 1], 0)),
        (true, false) => SocketAddr::from(([0, 0, 0, 0], 0)),
        (false, true) => SocketAddr::new(IpAddr::from(Ipv6Addr::LOCALHOST), 0),
        (false, false) => SocketAddr::new(IpAddr::from(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = std::net::UdpSocket::bind(bind)
        .with_context(|| format!("binding a UDP socket to ask {server}"))?;
    socket
        .set_read_timeout(Some(QUERY_TIMEOUT))
        .context("setting a timeout")?;
    socket
        .connect(server)
        .with_context(|| format!("connecting to {server}"))?;
    socket
        .send(&bytes)
        .with_context(|| format!("sending to {server}"))?;
    let mut buf = vec![0u8; 65_535];
    let answer = loop {
        let n = socket
            .recv(&mut buf)
            .with_context(|| format!("{server} did not answer"))?;
        if let Ok(m) = Message::from_vec(&buf[..n])
            && m.metadata.id == query.metadata.id
        {
            break m;
        }
    };
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    let mut tcp = std::net::TcpStream::connect_timeout(&server, QUERY_TIMEOUT)
        .with_context(|| format!("connecting to {server} over TCP"))?;
    tcp.set_read_timeout(Some(QUERY_TIMEOUT))
        .context("setting a timeout")?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    tcp.write_all(&framed)
        .with_context(|| format!("writing to {server} over TCP"))?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len)
        .with_context(|| format!("reading from {server} over TCP"))?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut buf)
        .with_context(|| format!("reading from {server} over TCP"))?;
    Message::from_vec(&buf).with_context(|| format!("decoding the answer of {server}"))
}

/// Answer `query` in-process from `config`'s records, as a resolver started with it would
/// answer a loopback client (names outside the domain forwarded to the usual upstreams).
pub fn answer_in_process(config: &Config, query: &Message) -> anyhow::Result<Message> {
    let store = Arc::new(Store::new(Records::from_config(config), true)?);
    let listen = SocketAddr::new(config.dns.address, config.dns.port);
    let forwarder = Arc::new(Forwarder::new(forward::choose_upstreams(
        config,
        &[],
        listen,
    )));
    let handler = Handler::new(store, Some(forwarder));
    let bytes = super::server::runtime()?.block_on(super::server::answer_in_process(
        &handler,
        query.to_vec().context("encoding the query")?,
        SocketAddr::from(([127, 0, 0, 1], 0)),
    ))?;
    Message::from_vec(&bytes).context("decoding the in-process answer")
}

/// Whether `server` answers authoritatively (NOERROR, AA) for `domain`'s SOA: a resolver of
/// that domain is there, not merely a process.
pub fn answers_for(server: SocketAddr, domain: &str) -> bool {
    let Ok(mut name) = Name::from_ascii(domain) else {
        return false;
    };
    name.set_fqdn(true);
    ask(server, &build_query(&name, RecordType::SOA)).is_ok_and(|m| {
        m.metadata.authoritative && m.metadata.response_code == ResponseCode::NoError
    })
}

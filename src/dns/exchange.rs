//! One DNS exchange with a server: the query over UDP from a fresh port, an answer accepted
//! only when it matches the question, and the same query over TCP when that answer is
//! truncated. The forwarder asks its upstreams this way, and `dns query`/`dns status` ask
//! devenv's own resolver this way.
//!
//! Not for: choosing servers, caching, or serving.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::rr::{DNSClass, LowerName, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::fast::EDNS_PAYLOAD;

/// A recursive query for `name`, `rtype` and `class`, with EDNS so that answers up to devenv's
/// payload size come over UDP.
pub fn query(name: &Name, rtype: RecordType, class: DNSClass) -> Message {
    let mut m = Message::query();
    let mut q = Query::query(name.clone(), rtype);
    q.set_query_class(class);
    m.add_query(q);
    m.metadata.recursion_desired = true;
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    m.set_edns(edns);
    m
}

/// The local address to ask `server` from: loopback for a loopback server (so that devenv's
/// resolver gives its loopback answers), any address otherwise.
fn source_for(server: SocketAddr) -> SocketAddr {
    match (server.is_ipv4(), server.ip().is_loopback()) {
        (true, true) => SocketAddr::from(([127, 0, 0, 1], 0)),
        (true, false) => SocketAddr::from(([0, 0, 0, 0], 0)),
        (false, true) => SocketAddr::new(IpAddr::from(Ipv6Addr::LOCALHOST), 0),
        (false, false) => SocketAddr::new(IpAddr::from(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// Ask `server` `query` (one question): over UDP, and over TCP when the answer is truncated.
/// Each transport gets `timeout`.
pub async fn exchange(
    server: SocketAddr,
    query: &Message,
    timeout: Duration,
) -> anyhow::Result<Message> {
    let bytes = query.to_vec().context("encoding a query")?;
    let id = query.metadata.id;
    let question = query
        .queries
        .first()
        .context("a query without a question")?;
    let accept = |m: &Message| {
        m.metadata.id == id
            && m.metadata.message_type == MessageType::Response
            && m.queries.len() == 1
            && LowerName::from(m.queries[0].name()) == LowerName::from(question.name())
            && m.queries[0].query_type() == question.query_type()
    };
    let udp = tokio::time::timeout(timeout, async {
        let socket = tokio::net::UdpSocket::bind(source_for(server)).await?;
        socket.connect(server).await?;
        socket.send(&bytes).await?;
        let mut buf = vec![0u8; 65_535];
        loop {
            let n = socket.recv(&mut buf).await?;
            // A stray or spoofed datagram is ignored; the right answer may still come.
            if let Ok(m) = Message::from_vec(&buf[..n])
                && accept(&m)
            {
                return Ok::<_, std::io::Error>(m);
            }
        }
    })
    .await
    .with_context(|| {
        format!(
            "{server} did not answer within {}s (UDP)",
            timeout.as_secs_f32()
        )
    })?
    .with_context(|| format!("asking {server} over UDP"))?;
    if !udp.metadata.truncation {
        return Ok(udp);
    }
    let tcp = tokio::time::timeout(timeout, async {
        let mut stream = tokio::net::TcpStream::connect(server).await?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await? as usize;
        let mut buf = vec![0u8; len];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .with_context(|| {
        format!(
            "{server} did not answer within {}s (TCP)",
            timeout.as_secs_f32()
        )
    })?
    .with_context(|| format!("asking {server} over TCP"))?;
    let m = Message::from_vec(&tcp).with_context(|| format!("decoding the answer of {server}"))?;
    if !accept(&m) {
        bail!("{server} answered another question over TCP");
    }
    Ok(m)
}

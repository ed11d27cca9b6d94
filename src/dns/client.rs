//! Asking a resolver, for `devenv dns query` and `status`: build a query and ask it (through
//! [`super::exchange`]: UDP, TCP when the answer is truncated), or answer it in-process from
//! devenv.yaml when no resolver runs. Async: the command builds the runtime.
//!
//! Not for: serving (see [`super::server`]) or forwarding (see [`super::forward`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::exchange;
use super::forward::{self, Forwarder};
use super::handler::Handler;
use super::store::Store;
use crate::config::Config;

/// How long a query waits for an answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// A recursive query for `name` and `rtype`, with EDNS so that answers up to the resolver's
/// payload size come over UDP.
pub fn build_query(name: &Name, rtype: RecordType) -> Message {
    exchange::query(name, rtype, DNSClass::IN)
}

/// Ask `server` over UDP, and over TCP when the answer is truncated.
pub async fn ask(server: SocketAddr, query: &Message) -> anyhow::Result<Message> {
    exchange::exchange(server, query, QUERY_TIMEOUT).await
}

/// Answer `query` in-process from `config`'s records, as a resolver started with it would
/// answer a loopback client (names outside the domain forwarded to the usual upstreams).
pub async fn answer_in_process(config: &Config, query: &Message) -> anyhow::Result<Message> {
    let state_dir = crate::state::dir(&config.name).ok();
    let records = super::routes::records(config, state_dir.as_deref());
    let store = Arc::new(Store::new(records, true)?);
    let listen = SocketAddr::new(config.dns.address, config.dns.port);
    let forwarder = Arc::new(Forwarder::new(forward::choose_upstreams(
        config,
        &[],
        listen,
    )));
    let handler = Handler::new(store, Some(forwarder));
    let bytes = super::server::answer_in_process(
        &handler,
        query.to_vec().context("encoding the query")?,
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await?;
    Message::from_vec(&bytes).context("decoding the in-process answer")
}

/// Whether `server` answers authoritatively (NOERROR, AA) for `domain`'s SOA: a resolver of
/// that domain is there, not merely a process.
pub async fn answers_for(server: SocketAddr, domain: &str) -> bool {
    let Ok(mut name) = Name::from_ascii(domain) else {
        return false;
    };
    name.set_fqdn(true);
    ask(server, &build_query(&name, RecordType::SOA))
        .await
        .is_ok_and(|m| {
            m.metadata.authoritative && m.metadata.response_code == ResponseCode::NoError
        })
}

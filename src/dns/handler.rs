//! devenv's hickory [`RequestHandler`]: the generic path. It answers everything the fast path
//! passes on (TCP, truncation, EDNS versions, odd opcodes and classes) and every name outside
//! the zone: forwarded for loopback clients, REFUSED for anyone else or with `--no-forward`,
//! so devenv is never an open resolver.
//!
//! Not for: sockets (see [`super::server`]) or the records themselves.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::DNSClass;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use hickory_proto::rr::RecordType;

use super::fast::EDNS_PAYLOAD;
use super::forward::Forwarder;
use super::records::is_loopback;
use super::store::Store;

/// Answers queries from the live [`Store`], forwarding the rest through a [`Forwarder`].
#[derive(Debug, Clone)]
pub struct Handler {
    store: Arc<Store>,
    /// `None`: `--no-forward`, names outside the zone are REFUSED.
    forwarder: Option<Arc<Forwarder>>,
    /// Forwarding failures come in floods: one warning per interval says how many.
    failures: Arc<Throttle>,
}

/// At most one warning per this interval for forwarding failures.
const WARN_INTERVAL: Duration = Duration::from_secs(30);

/// Lets one warning through per [`WARN_INTERVAL`] and counts those held back.
#[derive(Debug, Default)]
struct Throttle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// `Some(held back since the last one)` when a warning may be written now.
    fn pass(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match s.0 {
            Some(last) if now.duration_since(last) < WARN_INTERVAL => {
                s.1 += 1;
                None
            }
            _ => {
                let held = s.1;
                *s = (Some(now), 0);
                Some(held)
            }
        }
    }
}

fn failed(request: &Request, code: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    metadata.response_code = code;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

impl Handler {
    /// A handler over `store`, forwarding through `forwarder` when given.
    pub fn new(store: Arc<Store>, forwarder: Option<Arc<Forwarder>>) -> Handler {
        Handler {
            store,
            forwarder,
            failures: Arc::default(),
        }
    }

    /// The live records.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The forwarder, unless forwarding is off.
    pub fn forwarder(&self) -> Option<&Arc<Forwarder>> {
        self.forwarder.as_ref()
    }

    async fn respond<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let mut builder = MessageResponseBuilder::from_message_request(request);
        // RFC 6891: a request with OPT gets a response with OPT.
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        // RFC 3225: the DO bit is copied into the response.
        if let Some(asked) = &request.edns {
            edns.set_dnssec_ok(asked.flags().dnssec_ok);
            builder.edns(&edns);
        }
        let zone = self.store.snapshot();
        let error = |code: ResponseCode| {
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = code;
            metadata.recursion_available = zone.recursion_available();
            metadata
        };

        if request.metadata.message_type != MessageType::Query {
            return failed(request, ResponseCode::FormErr);
        }
        if request.metadata.op_code != OpCode::Query {
            let r = builder.error_msg(&request.metadata, ResponseCode::NotImp);
            return response
                .send_response(r)
                .await
                .unwrap_or_else(|_| failed(request, ResponseCode::ServFail));
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            let r = builder.error_msg(&request.metadata, ResponseCode::BADVERS);
            return response
                .send_response(r)
                .await
                .unwrap_or_else(|_| failed(request, ResponseCode::ServFail));
        }
        let info = match request.request_info() {
            Ok(info) => info,
            Err(_) => {
                let r = builder.error_msg(&request.metadata, ResponseCode::FormErr);
                return response
                    .send_response(r)
                    .await
                    .unwrap_or_else(|_| failed(request, ResponseCode::ServFail));
            }
        };
        let name = info.query.name();
        let qtype = info.query.query_type();
        let class = info.query.query_class();
        let src = info.src;
        let original = hickory_proto::rr::Name::from(name);
        let inside = zone.contains(&original);

        // Refused whatever the name: another class (CH `version.bind`, ...), where devenv has
        // no data; zone transfers; and, outside the zone, a query that does not ask for
        // recursion (devenv is not authoritative there) or that devenv does not forward.
        let refuse = (class != DNSClass::IN && class != DNSClass::ANY)
            || matches!(qtype, RecordType::AXFR | RecordType::IXFR)
            || (!inside
                && (!request.metadata.recursion_desired
                    || self.forwarder.is_none()
                    || !is_loopback(src.ip())));
        if refuse {
            let r = builder.build(error(ResponseCode::Refused), [], [], [], []);
            return response
                .send_response(r)
                .await
                .unwrap_or_else(|_| failed(request, ResponseCode::ServFail));
        }

        if inside {
            let answer = zone
                .lookup(&original, qtype, zone.view_of(src.ip()))
                .unwrap_or_default();
            let mut metadata = error(ResponseCode::NoError);
            metadata.authoritative = true;
            let r = builder.build(
                metadata,
                answer.answers.iter(),
                answer.authorities.iter(),
                [],
                [],
            );
            return response
                .send_response(r)
                .await
                .unwrap_or_else(|_| failed(request, ResponseCode::ServFail));
        }

        // Outside the zone: only loopback clients are resolved for, never the network.
        let Some(forwarder) = &self.forwarder else {
            return failed(request, ResponseCode::Refused);
        };
        let query_name = info.query.original().name().clone();
        match forwarder.resolve(&query_name, qtype, class).await {
            Ok(answer) => {
                let mut metadata = error(answer.response_code);
                metadata.recursion_available = true;
                let r = builder.build(
                    metadata,
                    answer.answers.iter(),
                    answer.authorities.iter(),
                    [],
                    answer.additionals.iter(),
                );
                response
                    .send_response(r)
                    .await
                    .unwrap_or_else(|_| failed(request, ResponseCode::ServFail))
            }
            Err(e) => {
                match self.failures.pass() {
                    Some(0) => tracing::warn!("forwarding {query_name} {qtype}: {e:#}"),
                    Some(held) => tracing::warn!(
                        "forwarding {query_name} {qtype}: {e:#} ({held} more failures in the last {}s not shown)",
                        WARN_INTERVAL.as_secs()
                    ),
                    None => tracing::debug!("forwarding {query_name} {qtype}: {e:#}"),
                }
                let r = builder.error_msg(&request.metadata, ResponseCode::ServFail);
                response
                    .send_response(r)
                    .await
                    .unwrap_or_else(|_| failed(request, ResponseCode::ServFail))
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.respond(request, response_handle).await
    }
}

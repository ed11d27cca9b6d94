//! A scripted Kubernetes API server for tests (the tower-test pattern of kube-rs's
//! controller-rs `fixtures.rs`): each step names the exact request the code must send (method,
//! path, every query parameter, and the JSON body where there is one) and the answer a real API
//! server would give.
//!
//! Not for: anything outside tests. A request the script did not expect fails the test; a
//! script that ends drops the handle, so a further request fails instead of hanging.

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

use super::Kube;

/// The test's side of a mocked API server.
pub(crate) struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
}

/// One request the code under test must send next.
#[derive(Debug, Clone)]
pub(crate) struct Expect {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
}

impl Expect {
    fn new(method: Method, path: &str) -> Self {
        Expect {
            method,
            path: path.to_string(),
            query: Vec::new(),
            body: None,
        }
    }

    /// `GET path` with no query.
    pub fn get(path: &str) -> Self {
        Expect::new(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(path: &str) -> Self {
        Expect::new(Method::POST, path)
    }

    /// `DELETE path`.
    pub fn delete(path: &str) -> Self {
        Expect::new(Method::DELETE, path)
    }

    /// A server-side apply: `PATCH path?fieldManager=devenv&force=true` with the apply patch
    /// content type.
    pub fn apply(path: &str) -> Self {
        Expect::new(Method::PATCH, path)
            .query("fieldManager", "devenv")
            .query("force", "true")
    }

    /// One more query parameter the request must carry (decoded form).
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    /// The JSON body the request must carry, exactly.
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// A request that matched, waiting for its answer.
pub(crate) struct Exchange {
    send: SendResponse<Response<Body>>,
    /// The request's body as JSON (`Null` when it had none).
    pub body: Value,
}

impl Exchange {
    /// Answer with a JSON body.
    pub fn reply(self, code: u16, body: Value) {
        self.reply_text(code, &body.to_string());
    }

    /// Answer with a plain body (logs are text).
    pub fn reply_text(self, code: u16, text: &str) {
        let response = Response::builder()
            .status(code)
            .body(Body::from(text.as_bytes().to_vec()))
            .expect("a valid response");
        self.send.send_response(response);
    }
}

impl ApiServer {
    /// A [`Kube`] whose every request comes to the returned server.
    pub fn start() -> (Kube, ApiServer) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        (Kube::from_client(client), ApiServer { handle })
    }

    /// Wait for the next request and check it is exactly `expected`.
    pub async fn expect(&mut self, expected: Expect) -> Exchange {
        let received = self.next(&format!("{expected:?}")).await;
        received.check(&expected);
        received.exchange
    }

    /// Answer `answer` to every request that is exactly `poll` (a wait reading again and
    /// again), until a request that must be exactly `then`; return how many polls came, and
    /// that request.
    pub async fn polls(&mut self, poll: Expect, answer: Value, then: Expect) -> (usize, Exchange) {
        let mut count = 0;
        loop {
            let received = self.next(&format!("{poll:?} or {then:?}")).await;
            if received.matches(&poll) {
                received.check(&poll);
                received.exchange.reply(200, answer.clone());
                count += 1;
            } else {
                received.check(&then);
                return (count, received.exchange);
            }
        }
    }

    async fn next(&mut self, wanted: &str) -> Received {
        let (request, send) = self
            .handle
            .next_request()
            .await
            .unwrap_or_else(|| panic!("expected {wanted}, but the client sent nothing"));
        let (parts, body) = request.into_parts();
        let uri = parts.uri.to_string();
        let (path, query) = uri.split_once('?').unwrap_or((&uri, ""));
        let mut query = decode_query(query);
        query.sort();
        let bytes = body.collect_bytes().await.expect("a readable request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        Received {
            method: parts.method,
            path: path.to_string(),
            query,
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string()),
            uri,
            exchange: Exchange { send, body },
        }
    }
}

/// A request as the server received it.
struct Received {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    uri: String,
    exchange: Exchange,
}

impl Received {
    fn matches(&self, expected: &Expect) -> bool {
        let mut wanted = expected.query.clone();
        wanted.sort();
        self.method == expected.method && self.path == expected.path && self.query == wanted
    }

    fn check(&self, expected: &Expect) {
        let mut wanted = expected.query.clone();
        wanted.sort();
        assert_eq!(
            (&self.method, self.path.as_str(), &self.query),
            (&expected.method, expected.path.as_str(), &wanted),
            "request {} {}",
            self.method,
            self.uri
        );
        if expected.method == Method::PATCH {
            assert_eq!(
                self.content_type.as_deref(),
                Some("application/apply-patch+yaml"),
                "a server-side apply is sent as an apply patch"
            );
        }
        if let Some(wanted) = &expected.body {
            assert_eq!(
                &self.exchange.body, wanted,
                "body of {} {}",
                self.method, self.uri
            );
        }
    }
}

/// The `Status` object the API server answers a failed request with.
pub(crate) fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code
    })
}

/// A list answer of `kind` (`PodList`, `EventList`...) holding `items`.
pub(crate) fn list(kind: &str, items: Vec<Value>) -> Value {
    let api_version = if kind == "DeploymentList" {
        "apps/v1"
    } else {
        "v1"
    };
    json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"resourceVersion": "1000"},
        "items": items
    })
}

fn decode_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii escape");
                out.push(u8::from_str_radix(hex, 16).expect("a hex escape"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 query")
}

//! The node agent's kubelet endpoint: the one part of a kubelet's HTTPS server the API server
//! calls for what devenv does, `GET /containerLogs/{namespace}/{pod}/{container}`, so that
//! `kubectl logs` and devenv's log reads go through the real API server's `pods/log`.
//!
//! What the real kubelet does, read from Kubernetes v1.20.2 (`pkg/kubelet/server/server.go`
//! `getContainerLogs`, `pkg/kubelet/kubelet_pods.go` `validateContainerLogStatus`), and kept here:
//! which container's log a request gets from the pod's status (the running one, else the last
//! terminated one; `previous` the last terminated one), the 400 with the kubelet's own words
//! when there is none ("is waiting to start: image can't be pulled", "previous terminated
//! container … not found"), 404 for an unknown pod or container, and the query's `tailLines`,
//! `limitBytes`, `timestamps`, `sinceSeconds` and `sinceTime`. The API server reaches it at the
//! Node's InternalIP and `status.daemonEndpoints.kubeletEndpoint.Port`, over TLS that it does
//! not verify without `--kubelet-certificate-authority` (`pkg/kubelet/client/kubelet_client.go`:
//! no CA means `Insecure`), so a self-signed certificate serves.
//!
//! Not done: `follow` returns what the log holds and ends (nothing writes to a log later); the
//! API server is not authenticated (a kubelet checks its client certificate).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One line a container wrote, and when.
type Line = (Timestamp, String);

/// The containers' logs, by the container ID the agent put in the pod's status.
fn logs() -> &'static Mutex<HashMap<String, Vec<Line>>> {
    static LOGS: OnceLock<Mutex<HashMap<String, Vec<Line>>>> = OnceLock::new();
    LOGS.get_or_init(Default::default)
}

/// Record what the container with `id` wrote (each line of `text`, stamped now).
pub fn record(id: &str, text: &str) {
    let now = Timestamp::now();
    let mut logs = logs().lock().unwrap();
    let lines = logs.entry(id.to_string()).or_default();
    lines.extend(text.lines().map(|l| (now, l.to_string())));
}

/// Serve the endpoint on 127.0.0.1 (a free port), for as long as the process runs; the port.
pub async fn serve(client: kube::Client) -> anyhow::Result<u16> {
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?;
    let cert = params.self_signed(&key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, client) = (acceptor.clone(), client.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let response = match read_head(&mut tls).await {
                    Some(target) => answer(&client, &target).await,
                    None => (400, "bad request".to_string()),
                };
                let (code, body) = response;
                let reason = match code {
                    200 => "OK",
                    404 => "Not Found",
                    _ => "Bad Request",
                };
                let head = format!(
                    "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(port)
}

/// The request target of a `GET`, once its head is read.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next()?.split_whitespace();
    (words.next()? == "GET").then_some(())?;
    Some(words.next()?.to_string())
}

/// `%XX` and `+` decoded.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code and body for `target`.
async fn answer(client: &kube::Client, target: &str) -> (u16, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let parts: Vec<String> = path.split('/').map(unescape).collect();
    let [_, "containerLogs", namespace, pod, container] =
        parts.iter().map(String::as_str).collect::<Vec<_>>()[..]
    else {
        return (404, "404 page not found".to_string());
    };
    let query: HashMap<String, String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(Some(found)) = api.get_opt(pod).await else {
        return (404, format!("pod \"{namespace}/{pod}\" does not exist"));
    };
    let spec = found.spec.as_ref();
    let declared = spec.is_some_and(|s| {
        s.containers.iter().any(|c| c.name == container)
            || s.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
    });
    if !declared {
        return (
            404,
            format!("container \"{container}\" not found in pod \"{namespace}/{pod}\""),
        );
    }
    let statuses = found.status.as_ref();
    let status = statuses
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .chain(statuses.and_then(|s| s.init_container_statuses.as_ref()))
        .flatten()
        .find(|s| s.name == container);
    let id = match which_container(pod, container, status, query.contains_key("previous")) {
        Ok(id) => id,
        Err(message) => return (400, message),
    };
    let lines = logs().lock().unwrap().get(&id).cloned().unwrap_or_default();
    (200, render(lines, &query))
}

/// Which container's log the kubelet shows, from the pod's status, as `validateContainerLogStatus`
/// decides; the kubelet's words when it shows none.
fn which_container(
    pod: &str,
    container: &str,
    status: Option<&ContainerStatus>,
    previous: bool,
) -> Result<String, String> {
    let Some(status) = status else {
        return Err(format!(
            "container \"{container}\" in pod \"{pod}\" is not available"
        ));
    };
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.container_id.clone())
        .filter(|id| !id.is_empty());
    let state = status.state.as_ref();
    let terminated = |why: &str| format!("container \"{container}\" in pod \"{pod}\" is {why}");
    if previous {
        return last.ok_or_else(|| {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        });
    }
    if state.and_then(|s| s.running.as_ref()).is_some() {
        return status
            .container_id
            .clone()
            .ok_or_else(|| terminated("running"));
    }
    if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        return t
            .container_id
            .clone()
            .filter(|id| !id.is_empty())
            .or(last)
            .ok_or_else(|| terminated("terminated"));
    }
    if let Some(last) = last {
        return Ok(last);
    }
    let why = match state
        .and_then(|s| s.waiting.as_ref())
        .map(|w| w.reason.clone().unwrap_or_default())
    {
        Some(r) if r == "ErrImagePull" => "waiting to start: image can't be pulled".to_string(),
        Some(r) if r == "ImagePullBackOff" => {
            "waiting to start: trying and failing to pull image".to_string()
        }
        Some(r) => format!("waiting to start: {r}"),
        None => "waiting to start - no logs yet".to_string(),
    };
    Err(terminated(&why))
}

/// The log's lines as the query asks: since a time, the last N, stamped, at most N bytes.
fn render(lines: Vec<Line>, query: &HashMap<String, String>) -> String {
    let since = query
        .get("sinceTime")
        .and_then(|t| t.parse::<Timestamp>().ok())
        .or_else(|| {
            let seconds: i64 = query.get("sinceSeconds")?.parse().ok()?;
            Timestamp::now()
                .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
                .ok()
        });
    let mut lines: Vec<Line> = lines
        .into_iter()
        .filter(|(t, _)| since.is_none_or(|s| *t >= s))
        .collect();
    if let Some(tail) = query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        lines.drain(..lines.len().saturating_sub(tail));
    }
    let stamped = query.get("timestamps").is_some_and(|v| v == "true");
    let mut out = String::new();
    for (t, line) in lines {
        if stamped {
            out.push_str(&format!("{t:.9} "));
        }
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(limit) = query
        .get("limitBytes")
        .and_then(|n| n.parse::<usize>().ok())
        && out.len() > limit
    {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

//! devenv's operations on a cluster's Kubernetes API, through kube-rs: one [`Kube`] handle
//! (connected from a kubeconfig and context), server-side apply of typed objects, explicit waits
//! with timeouts that explain themselves, the CoreDNS zone, an in-cluster lookup check, and the
//! reads behind `devenv status` and `devenv logs ingress`.
//!
//! Not for: building the objects devenv applies (that is `render::cluster`, pure), or creating
//! and starting the cluster itself (the kind wrapper). Nothing here prints: results and errors go
//! back to the caller.

mod apply;
mod coredns;
mod crds;
mod diagnose;
mod httproutes;
mod ingresses;
mod logs;
mod lookup;
mod status;
mod wait;

#[cfg(test)]
pub(crate) mod mock;

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::error::Failure;

pub use apply::ApplyScope;
pub use coredns::{BLOCK_BEGIN, BLOCK_END, ZONE_HASH_ANNOTATION, merge_corefile};
pub use crds::GatewayState;
pub use httproutes::GatewayRoute;
pub use ingresses::{Backend, IngressRoute, ServiceBackend};
pub use logs::{LogLine, LogOptions};
pub use lookup::{LOOKUP_NAMESPACE, LookupResult};
pub use status::{NodeStatus, Replicas};

/// The field manager of every server-side apply devenv makes.
pub use crate::render::cluster::FIELD_MANAGER;

/// How long the TCP (and TLS) connection to the API server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the API server may stay silent while answering one request.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one cluster's API server, and what to call it in messages.
///
/// Cheap to clone (the kube-rs client is a shared service).
#[derive(Clone)]
pub struct Kube {
    /// For requests that answer promptly: reads time out after [`READ_TIMEOUT`].
    client: Client,
    /// For log streams that follow: a quiet controller may write nothing for minutes, so this
    /// one has no read timeout.
    stream_client: Client,
    /// The API server's URL, as the kubeconfig gives it.
    server: String,
    /// The kubeconfig context, when connected from one.
    context: Option<String>,
}

impl fmt::Debug for Kube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kube")
            .field("server", &self.server)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// The names of the contexts in the kubeconfig file at `kubeconfig`, in file order. A file that
/// cannot be read or parsed is the error, with kube-rs's reason.
pub fn contexts(kubeconfig: &Path) -> anyhow::Result<Vec<String>> {
    let file = Kubeconfig::read_from(kubeconfig).map_err(|err| anyhow::anyhow!(chain(&err)))?;
    Ok(file.contexts.into_iter().map(|c| c.name).collect())
}

impl Kube {
    /// Connect to the API server of `context` in the kubeconfig file at `kubeconfig`, and check
    /// that it answers (`GET /version`).
    ///
    /// A kubeconfig that cannot be read, a context it lacks, and an API server that does not
    /// answer or refuses devenv are each a [`Failure::environment`] (exit 3) naming the file,
    /// the server URL and the context, with a hint.
    pub async fn connect(kubeconfig: &Path, context: &str) -> anyhow::Result<Kube> {
        let kube = Kube::open(kubeconfig, context).await?;
        kube.probe().await?;
        Ok(kube)
    }

    /// A handle on the API server of `context` in the kubeconfig file at `kubeconfig`, without
    /// asking it anything yet (then [`Kube::wait_answering`]). The file's and the context's
    /// problems are the errors [`Kube::connect`] gives.
    pub async fn open(kubeconfig: &Path, context: &str) -> anyhow::Result<Kube> {
        let file = Kubeconfig::read_from(kubeconfig).map_err(|err| {
            Failure::environment(
                format!(
                    "cannot read the kubeconfig {}: {}",
                    kubeconfig.display(),
                    chain(&err)
                ),
                Some("`devenv up` writes it when it creates the cluster; `--kubeconfig PATH` names another file".to_string()),
            )
        })?;
        let options = KubeConfigOptions {
            context: Some(context.to_string()),
            ..KubeConfigOptions::default()
        };
        let mut config = Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|err| {
                Failure::environment(
                    format!(
                        "the kubeconfig {} has no usable context {context}: {}",
                        kubeconfig.display(),
                        chain(&err)
                    ),
                    Some(format!(
                        "`kubectl config get-contexts --kubeconfig {}` lists the contexts it has; `devenv up` adds {context} when it creates the cluster",
                        kubeconfig.display()
                    )),
                )
            })?;
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        // Credentials that cannot be used (a broken key or certificate in the kubeconfig) are
        // the environment's problem, like an unreadable file.
        let unusable = |err: kube::Error| {
            Failure::environment(
                format!(
                    "the credentials of context {context} in {} cannot be used for {server}: {}",
                    kubeconfig.display(),
                    chain(&err)
                ),
                Some(format!(
                    "check the context's certificate and key (`kubectl --kubeconfig {} --context {context} version` shows the same problem)",
                    kubeconfig.display()
                )),
            )
        };
        let stream_client = Client::try_from(config.clone()).map_err(unusable)?;
        config.read_timeout = Some(READ_TIMEOUT);
        config.reset_reader_on_write = true;
        let client = Client::try_from(config).map_err(unusable)?;
        Ok(Kube {
            client,
            stream_client,
            server,
            context: Some(context.to_string()),
        })
    }

    /// A handle on an already built client (tests build one over a mock service).
    pub fn from_client(client: Client) -> Kube {
        Kube {
            stream_client: client.clone(),
            client,
            server: "(given client)".to_string(),
            context: None,
        }
    }

    /// The kube-rs client, for operations this module does not offer.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The kubeconfig context this handle was connected from, if any.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// Ask the API server for its version: the cheapest request that proves it answers and
    /// accepts devenv's credentials.
    async fn probe(&self) -> anyhow::Result<()> {
        match self.ask_version().await {
            Answer::Answered => Ok(()),
            Answer::Refused(err) => Err(err),
            Answer::Silent(why) => Err(self.unreachable(&why, None)),
        }
    }

    /// [`Kube::probe`], asked again while the API server is only starting (a connection refused
    /// or reset, no answer, a 5xx or 429: what a server that was just started answers for its
    /// first 10 to 40 s), for up to `wait`. `note` is told each new reason it waits for. A
    /// refusal of devenv's credentials ends the wait at once.
    pub async fn wait_answering(
        &self,
        wait: Duration,
        note: &(dyn Fn(&str) + Sync),
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut said = String::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let why = match self
                .ask_version_within(left.max(Duration::from_secs(1)))
                .await
            {
                Answer::Answered => return Ok(()),
                Answer::Refused(err) => return Err(err),
                Answer::Silent(why) => why,
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(self.unreachable(&why, Some(wait)));
            }
            if why != said {
                note(&format!(
                    "waiting for the API server ({why}), up to {} s",
                    deadline.duration_since(now).as_secs()
                ));
                said = why;
            }
            tokio::time::sleep(ANSWER_RETRY.min(deadline.duration_since(now))).await;
        }
    }

    /// `GET /version`, given at most `limit` (and never more than one request's own limits).
    async fn ask_version_within(&self, limit: Duration) -> Answer {
        let context = self.context.as_deref().unwrap_or("(none)");
        let limit = limit.min(CONNECT_TIMEOUT + READ_TIMEOUT);
        let answer = tokio::time::timeout(limit, self.client.apiserver_version()).await;
        match answer {
            Ok(Ok(_)) => Answer::Answered,
            // Code 0: an error body kube-rs could not read as a `Status` (a proxy in front of
            // a server that is not up yet), so whether it refused devenv is not known.
            Ok(Err(kube::Error::Api(status)))
                if status.code >= 500 || status.code == 429 || status.code == 0 =>
            {
                Answer::Silent(format!(
                    "it answers HTTP {}: {}",
                    status.code,
                    status.message.trim()
                ))
            }
            Ok(Err(kube::Error::Api(status))) => Answer::Refused(
                Failure::environment(
                    format!(
                        "the Kubernetes API server {} (context {context}) refused devenv: {} ({}, HTTP {})",
                        self.server, status.message, status.reason, status.code
                    ),
                    Some(format!(
                        "the credentials of context {context} may be stale: `kubectl --context {context} cluster-info` shows what kubectl sees"
                    )),
                )
                .into(),
            ),
            // Credentials that cannot be had (an exec plugin that fails: expired cloud
            // credentials) or a server certificate the kubeconfig's CA does not vouch for do not
            // get better by waiting.
            Ok(Err(err)) if refuses_for_good(&err) => Answer::Refused(
                Failure::environment(
                    format!(
                        "the Kubernetes API server {} (context {context}) cannot be used with these credentials: {}",
                        self.server,
                        describe(&err)
                    ),
                    Some(format!(
                        "check the context's credentials and certificate authority (`kubectl --context {context} cluster-info` shows the same problem)"
                    )),
                )
                .into(),
            ),
            Ok(Err(err)) => Answer::Silent(describe(&err)),
            Err(_) => Answer::Silent(format!("no answer within {} s", limit.as_secs().max(1))),
        }
    }

    async fn ask_version(&self) -> Answer {
        self.ask_version_within(CONNECT_TIMEOUT + READ_TIMEOUT)
            .await
    }

    /// The API server did not answer: `why`, and for how long it was waited for.
    fn unreachable(&self, why: &str, waited: Option<Duration>) -> anyhow::Error {
        let context = self.context.as_deref().unwrap_or("(none)");
        let message = match waited {
            None => format!(
                "cannot reach the Kubernetes API server {} (context {context}): {why}",
                self.server
            ),
            Some(wait) => format!(
                "the Kubernetes API server {} (context {context}) did not answer within {} s: {why}",
                self.server,
                wait.as_secs()
            ),
        };
        Failure::environment(
            message,
            Some(format!(
                "is the cluster running? `devenv up` starts it; `kubectl --context {context} cluster-info` shows what kubectl sees"
            )),
        )
        .into()
    }
}

impl Kube {
    /// A request that failed while devenv was `doing` something (`applying Deployment
    /// devenv/traefik`), as the error to give: the API server's own words with what they mean
    /// for the user. Every answer the server gives, and every lost connection, is the
    /// environment's (exit 3); what devenv applied before stays, and `up` again applies it
    /// all.
    pub(crate) fn failed(&self, doing: &str, err: &kube::Error) -> anyhow::Error {
        let context = self.context.as_deref().unwrap_or("(none)");
        let again =
            "what devenv applied before this stays, and `devenv up` again applies everything";
        let (message, hint) = match err {
            kube::Error::Api(status) => {
                let causes = status
                    .details
                    .as_ref()
                    .map(|d| d.causes.as_slice())
                    .unwrap_or_default();
                if causes.iter().any(|c| c.reason == "NamespaceTerminating")
                    || status.message.contains("because it is being terminated")
                {
                    (
                        format!("{doing}: {}", describe(err)),
                        format!(
                            "the namespace is being deleted: `kubectl --context {context} get namespace` shows when it is gone, then `devenv up` again makes it anew"
                        ),
                    )
                } else if status.code == 403 {
                    (
                        format!("{doing}: {}", describe(err)),
                        format!(
                            "the user of context {context} lacks that right: `kubectl --context {context} auth can-i --list` shows what it may do; devenv needs cluster-admin on a cluster it sets up; {again}"
                        ),
                    )
                } else if status.code == 422 {
                    let fields: Vec<String> = causes
                        .iter()
                        .filter(|c| !c.field.is_empty())
                        .map(|c| format!("`{}` ({})", c.field, c.message))
                        .collect();
                    let mut message = format!("{doing}: {}", describe(err));
                    if !fields.is_empty() {
                        message.push_str(&format!("; the server refuses {}", fields.join(", ")));
                    }
                    (
                        message,
                        format!(
                            "the API server ({}) does not take that object as devenv wrote it; `kubectl --context {context} version` shows its version (devenv targets Kubernetes 1.34 and later); {again}",
                            self.server
                        ),
                    )
                } else {
                    (
                        format!("{doing}: {}", describe(err)),
                        format!(
                            "`kubectl --context {context} cluster-info` shows what kubectl sees; {again}"
                        ),
                    )
                }
            }
            other => (
                format!(
                    "the Kubernetes API server {} (context {context}) stopped answering while {doing}: {}",
                    self.server,
                    describe(other)
                ),
                format!(
                    "is the cluster still running? `kubectl --context {context} cluster-info` shows what kubectl sees; {again} once it answers"
                ),
            ),
        };
        Failure::environment(message, Some(hint)).into()
    }
}

/// Whether `err` is one that asking again cannot mend: the kubeconfig's credentials could not be
/// had (kube-rs's `Auth`: an exec plugin or token file that fails), or TLS refused the server's
/// certificate.
fn refuses_for_good(err: &kube::Error) -> bool {
    if matches!(err, kube::Error::Auth(_)) {
        return true;
    }
    let text = describe(err).to_lowercase();
    text.contains("invalid peer certificate") || text.contains("certificate verify failed")
}

/// What `GET /version` told.
enum Answer {
    Answered,
    /// It answered, and refused devenv (4xx): the error to give.
    Refused(anyhow::Error),
    /// No usable answer (no connection, no reply, 5xx, 429): why.
    Silent(String),
}

/// How long [`Kube::wait_answering`] sleeps between two questions.
const ANSWER_RETRY: Duration = Duration::from_secs(1);

/// What an object is called in messages: `Deployment kube-system/coredns`, `Node devenv-worker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectName {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectName {
    pub fn new(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjectName {
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A kube-rs error as one line: the API's own message (with reason and code) for an answer,
/// the whole cause chain for anything else.
pub(crate) fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            let mut out = status.message.clone();
            if out.is_empty() {
                out = "the API server refused the request".to_string();
            }
            match (status.reason.is_empty(), status.code) {
                (true, 0) => {}
                (true, code) => out.push_str(&format!(" (HTTP {code})")),
                (false, 0) => out.push_str(&format!(" ({})", status.reason)),
                (false, code) => out.push_str(&format!(" ({}, HTTP {code})", status.reason)),
            }
            out
        }
        kube::Error::Service(inner) => chain(inner.as_ref()),
        kube::Error::HyperError(inner) => chain(inner),
        other => chain(other),
    }
}

/// An error and its sources, joined with `: `.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Several layers repeat their source's text in their own.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{self, exit};

    /// A kubeconfig whose context `kind-devenv` points at `server`, as kind writes one.
    fn kubeconfig(dir: &Path, server: &str) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1
kind: Config
clusters:
- cluster:
    server: {server}
    insecure-skip-tls-verify: true
  name: kind-devenv
contexts:
- context:
    cluster: kind-devenv
    user: kind-devenv
  name: kind-devenv
current-context: kind-devenv
users:
- name: kind-devenv
  user:
    token: not-a-real-token
"
            ),
        )
        .unwrap();
        path
    }

    #[tokio::test]
    async fn an_api_server_with_nothing_listening_is_exit_3_naming_server_and_context() {
        // A port that was just free and has nothing listening on it now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let server = format!("https://127.0.0.1:{port}");
        let path = kubeconfig(dir.path(), &server);
        let err = Kube::connect(&path, "kind-devenv").await.unwrap_err();
        assert_eq!(error::exit_code(&err), exit::ENVIRONMENT);
        let failure = error::failure(&err).unwrap();
        assert!(
            failure.message.starts_with(&format!(
                "cannot reach the Kubernetes API server {server} (context kind-devenv): "
            )),
            "{}",
            failure.message
        );
        assert!(
            failure
                .message
                .to_lowercase()
                .contains("connection refused"),
            "{}",
            failure.message
        );
        assert!(
            failure
                .hint
                .as_deref()
                .unwrap()
                .contains("kubectl --context kind-devenv cluster-info"),
        );
    }

    /// A one-request HTTP server on a free loopback port: answers `status` and `body`, and
    /// hands back the request head it read.
    fn one_answer(status: &str, body: &str) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            (&stream).write_all(response.as_bytes()).unwrap();
            head
        });
        (server, thread)
    }

    /// An HTTP server on a free loopback port that answers its connections with `answers`
    /// (status line, JSON body) in turn, one request a connection, then stops.
    fn answers_in_turn(answers: &[(&str, &str)]) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let answers: Vec<(String, String)> = answers
            .iter()
            .map(|(s, b)| (s.to_string(), b.to_string()))
            .collect();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                    line.clear();
                }
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                (&stream).write_all(response.as_bytes()).unwrap();
            }
        });
        server
    }

    /// A `Status` body, as the API server sends with an error.
    fn failure(code: u16, reason: &str, message: &str) -> String {
        format!(
            r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"{message}","reason":"{reason}","code":{code}}}"#
        )
    }

    const VERSION: &str = r#"{"major":"1","minor":"34","gitVersion":"v1.34.11","gitCommit":"","gitTreeState":"clean","buildDate":"2026-10-01T00:00:00Z","goVersion":"go1.24","compiler":"gc","platform":"linux/amd64"}"#;

    #[tokio::test]
    async fn an_api_server_that_is_starting_is_asked_again_until_it_answers() {
        // What a just-started API server answers before its storage is ready.
        let server = answers_in_turn(&[
            // (kube-rs itself asks again after a 429, 503 or 504.)
            (
                "500 Internal Server Error",
                &failure(500, "InternalError", "etcd is not ready"),
            ),
            ("502 Bad Gateway", &failure(502, "BadGateway", "no backend")),
            ("200 OK", VERSION),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let kube = Kube::open(&kubeconfig(dir.path(), &server), "kind-devenv")
            .await
            .unwrap();
        let notes = std::sync::Mutex::new(Vec::new());
        kube.wait_answering(Duration::from_secs(30), &|l| {
            notes.lock().unwrap().push(l.to_string())
        })
        .await
        .unwrap();
        let notes = notes.into_inner().unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with(
                "waiting for the API server (it answers HTTP 500: etcd is not ready), up to "
            ),
            "{notes:?}"
        );
        assert!(
            notes[1].starts_with("waiting for the API server (it answers HTTP 502: no backend)"),
            "{notes:?}"
        );
    }

    #[tokio::test]
    async fn an_api_server_that_never_answers_is_exit_3_after_the_wait_naming_how_long() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let server = format!("https://127.0.0.1:{port}");
        let kube = Kube::open(&kubeconfig(dir.path(), &server), "kind-devenv")
            .await
            .unwrap();
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let err = kube
            .wait_answering(Duration::from_secs(2), &|_| {
                asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .await
            .unwrap_err();
        assert_eq!(error::exit_code(&err), exit::ENVIRONMENT);
        let failure = error::failure(&err).unwrap();
        assert!(
            failure.message.starts_with(&format!(
                "the Kubernetes API server {server} (context kind-devenv) did not answer within 2 s: "
            )),
            "{}",
            failure.message
        );
        assert!(
            failure
                .message
                .to_lowercase()
                .contains("connection refused"),
            "{}",
            failure.message
        );
        // One note for the one reason, however many times it was asked.
        assert_eq!(asked.into_inner(), 1);
    }

    #[tokio::test]
    async fn credentials_the_api_server_refuses_end_the_wait_at_once() {
        let server = answers_in_turn(&[(
            "401 Unauthorized",
            &failure(401, "Unauthorized", "Unauthorized"),
        )]);
        let dir = tempfile::tempdir().unwrap();
        let kube = Kube::open(&kubeconfig(dir.path(), &server), "kind-devenv")
            .await
            .unwrap();
        // Asked again, the server (which answers once) would refuse the connection and the wait
        // would end with "did not answer" after the whole wait.
        let err = kube
            .wait_answering(Duration::from_secs(600), &|_| {})
            .await
            .unwrap_err();
        assert_eq!(
            error::failure(&err).unwrap().message,
            format!(
                "the Kubernetes API server {server} (context kind-devenv) refused devenv: Unauthorized (Unauthorized, HTTP 401)"
            )
        );
    }

    #[tokio::test]
    async fn connect_asks_the_version_with_the_contexts_credentials() {
        let (server, thread) = one_answer(
            "200 OK",
            r#"{"major":"1","minor":"34","gitVersion":"v1.34.11","gitCommit":"","gitTreeState":"clean","buildDate":"2026-10-01T00:00:00Z","goVersion":"go1.24","compiler":"gc","platform":"linux/amd64"}"#,
        );
        let dir = tempfile::tempdir().unwrap();
        let path = kubeconfig(dir.path(), &server);
        let kube = Kube::connect(&path, "kind-devenv").await.unwrap();
        assert_eq!(kube.server(), server);
        assert_eq!(kube.context(), Some("kind-devenv"));
        let head = thread.join().unwrap().to_lowercase();
        assert!(head.starts_with("get /version http/1.1\r\n"), "{head}");
        assert!(
            head.contains("authorization: bearer not-a-real-token\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn an_api_server_that_refuses_the_credentials_is_exit_3() {
        let (server, thread) = one_answer(
            "401 Unauthorized",
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#,
        );
        let dir = tempfile::tempdir().unwrap();
        let path = kubeconfig(dir.path(), &server);
        let err = Kube::connect(&path, "kind-devenv").await.unwrap_err();
        thread.join().unwrap();
        assert_eq!(error::exit_code(&err), exit::ENVIRONMENT);
        assert_eq!(
            error::failure(&err).unwrap().message,
            format!(
                "the Kubernetes API server {server} (context kind-devenv) refused devenv: Unauthorized (Unauthorized, HTTP 401)"
            )
        );
    }

    #[tokio::test]
    async fn a_context_the_kubeconfig_lacks_is_exit_3_naming_file_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = kubeconfig(dir.path(), "https://127.0.0.1:6443");
        let err = Kube::connect(&path, "kind-other").await.unwrap_err();
        assert_eq!(error::exit_code(&err), exit::ENVIRONMENT);
        let message = &error::failure(&err).unwrap().message;
        assert!(
            message.starts_with(&format!(
                "the kubeconfig {} has no usable context kind-other: ",
                path.display()
            )),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_is_exit_3_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let err = Kube::connect(&path, "kind-devenv").await.unwrap_err();
        assert_eq!(error::exit_code(&err), exit::ENVIRONMENT);
        let message = &error::failure(&err).unwrap().message;
        assert!(
            message.starts_with(&format!("cannot read the kubeconfig {}: ", path.display())),
            "{message}"
        );
    }
}

//! Finding the Docker engine: `DOCKER_HOST` when set (unix, tcp, ssh), otherwise the sockets
//! the usual installations use, each pinged briefly; then the API version is negotiated so an
//! older engine (20.10, API 1.41) is spoken to in its own version.
//!
//! Not for: anything after the connection is made.

use std::path::PathBuf;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};

use crate::env;
use crate::error::Failure;

/// How long one candidate may take to answer a ping before the next is tried.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// Request timeout (response headers; streams such as logs are not cut by it).
const REQUEST_TIMEOUT_S: u64 = 120;

/// Where an engine may be, and why devenv looked there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `unix:///var/run/docker.sock`, `tcp://host:2375`, `ssh://user@host`.
    pub uri: String,
    /// `DOCKER_HOST`, `Docker Engine`, `Docker Desktop`, ...
    pub origin: String,
}

/// The candidates, in the order they are tried: only `DOCKER_HOST` when it is set.
pub fn candidates() -> Vec<Candidate> {
    if let Some(host) = std::env::var(env::DOCKER_HOST)
        .ok()
        .filter(|h| !h.is_empty())
    {
        return vec![Candidate {
            uri: host,
            origin: env::DOCKER_HOST.to_string(),
        }];
    }
    let mut out = Vec::new();
    let mut add = |path: PathBuf, origin: &str| {
        let uri = format!("unix://{}", path.display());
        if !out.iter().any(|c: &Candidate| c.uri == uri) {
            out.push(Candidate {
                uri,
                origin: origin.to_string(),
            });
        }
    };
    add("/var/run/docker.sock".into(), "Docker Engine");
    let home = std::env::var_os(env::HOME).map(PathBuf::from);
    if let Some(home) = &home {
        add(home.join(".docker/run/docker.sock"), "Docker Desktop");
        add(home.join(".docker/desktop/docker.sock"), "Docker Desktop");
        add(home.join(".colima/default/docker.sock"), "colima");
        add(home.join(".colima/docker.sock"), "colima");
        add(home.join(".orbstack/run/docker.sock"), "OrbStack");
        add(home.join(".rd/docker.sock"), "Rancher Desktop");
    }
    if let Some(runtime) = std::env::var_os(env::XDG_RUNTIME_DIR).map(PathBuf::from) {
        add(runtime.join("docker.sock"), "rootless Docker");
        add(runtime.join("podman/podman.sock"), "podman");
    }
    add("/run/podman/podman.sock".into(), "podman");
    out
}

/// A connected engine client and where it was found.
pub struct Connection {
    pub docker: Docker,
    pub candidate: Candidate,
}

/// Connect to the first candidate that answers. None answering is a [`Failure::environment`]
/// (exit 3) that lists every place tried and why each failed.
pub async fn connect() -> anyhow::Result<Connection> {
    let candidates = candidates();
    let mut tried = Vec::new();
    for candidate in &candidates {
        match try_one(candidate).await {
            Ok(docker) => {
                tracing::debug!("Docker engine at {} ({})", candidate.uri, candidate.origin);
                return Ok(Connection {
                    docker,
                    candidate: candidate.clone(),
                });
            }
            Err(why) => tried.push(format!("{} ({}): {why}", candidate.uri, candidate.origin)),
        }
    }
    let from_env = candidates
        .first()
        .is_some_and(|c| c.origin == env::DOCKER_HOST);
    let hint = if from_env {
        format!(
            "start the engine {} points at, or unset {} to use the local one",
            env::DOCKER_HOST,
            env::DOCKER_HOST
        )
    } else {
        format!(
            "start Docker (Docker Engine, Docker Desktop, colima, podman's docker socket), or set {} to where it listens",
            env::DOCKER_HOST
        )
    };
    Err(Failure::environment(
        format!(
            "no Docker engine answered; tried:\n  {}",
            tried.join("\n  ")
        ),
        hint,
    )
    .into())
}

async fn try_one(candidate: &Candidate) -> Result<Docker, String> {
    let uri = candidate.uri.as_str();
    let docker = if let Some(path) = uri.strip_prefix("unix://") {
        if !std::path::Path::new(path).exists() {
            return Err("no such socket".into());
        }
        Docker::connect_with_unix(path, REQUEST_TIMEOUT_S, API_DEFAULT_VERSION)
    } else if uri.starts_with("tcp://") || uri.starts_with("http://") {
        Docker::connect_with_http(uri, REQUEST_TIMEOUT_S, API_DEFAULT_VERSION)
    } else if uri.starts_with("ssh://") {
        Docker::connect_with_ssh(uri, REQUEST_TIMEOUT_S, API_DEFAULT_VERSION, None)
    } else {
        return Err("unsupported scheme (use unix://, tcp:// or ssh://)".into());
    }
    .map_err(|e| e.to_string())?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Err(_) => return Err(format!("no answer within {}s", PING_TIMEOUT.as_secs())),
        Ok(Err(e)) => return Err(short_error(&e)),
        Ok(Ok(_)) => {}
    }
    docker
        .negotiate_version()
        .await
        .map_err(|e| format!("negotiating the API version: {}", short_error(&e)))
}

/// bollard's errors carry their whole source chain in Debug only; the first useful line.
fn short_error(e: &bollard::errors::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_candidates_start_with_the_system_socket() {
        // The environment is shared by the test threads; read it only.
        if std::env::var_os(env::DOCKER_HOST).is_none() {
            let c = candidates();
            assert_eq!(c[0].uri, "unix:///var/run/docker.sock");
            assert!(c.iter().any(|c| c.origin == "podman"));
        }
    }
}

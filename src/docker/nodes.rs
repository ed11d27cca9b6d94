//! kind's node containers as the Docker engine sees them: finding a cluster's nodes by kind's
//! labels, starting and stopping them, putting a file into a container, and attaching a
//! container to a network.
//!
//! kind labels every node container `io.x-k8s.kind.cluster=<cluster>` and
//! `io.x-k8s.kind.role=<role>` (kind `pkg/cluster/internal/providers/docker/constants.go`,
//! `provision.go`); the roles are `control-plane`, `worker` and `external-load-balancer`, the
//! last a load balancer (envoy in current kind, HAProxy before) in front of several control planes that is not a Kubernetes node.
//! Everything here is bollard, no CLI. Not for: creating or deleting clusters (that is the
//! `kind` binary, `cluster::kind`), nor deciding what a node needs (`cluster::registry`).

use std::collections::HashMap;

use anyhow::Context as _;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{EndpointSettings, NetworkConnectRequest};
use bollard::query_parameters::{
    DownloadFromContainerOptions, InspectContainerOptions, ListContainersOptions,
    StartContainerOptions, StopContainerOptions, UploadToContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};

use super::{Engine, is_not_found, is_not_modified, run_state, summary_name};
use crate::docker::observed::RunState;
use crate::error::Failure;

/// The label kind puts on every node container: the cluster's name.
pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// The label kind puts on every node container: its role.
pub const ROLE_LABEL: &str = "io.x-k8s.kind.role";

/// Seconds a node gets to shut down (systemd inside) before it is killed.
const NODE_STOP_TIMEOUT_S: i32 = 30;

/// What a node container is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRole {
    ControlPlane,
    Worker,
    /// The API server's load balancer of a cluster with several control planes: no kubelet,
    /// no containerd.
    ExternalLoadBalancer,
    /// A role this devenv does not know.
    Other(String),
}

impl NodeRole {
    /// The role from kind's label value.
    pub fn from_label(value: &str) -> NodeRole {
        match value {
            "control-plane" => NodeRole::ControlPlane,
            "worker" => NodeRole::Worker,
            "external-load-balancer" => NodeRole::ExternalLoadBalancer,
            other => NodeRole::Other(other.to_string()),
        }
    }

    /// kind's label value.
    pub fn as_str(&self) -> &str {
        match self {
            NodeRole::ControlPlane => "control-plane",
            NodeRole::Worker => "worker",
            NodeRole::ExternalLoadBalancer => "external-load-balancer",
            NodeRole::Other(s) => s,
        }
    }

    /// Whether the node is a Kubernetes node (runs kubelet and containerd).
    pub fn is_kubernetes_node(&self) -> bool {
        matches!(self, NodeRole::ControlPlane | NodeRole::Worker)
    }
}

/// One node container of a kind cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    /// The container's name (`<cluster>-control-plane`), which is also its hostname.
    pub name: String,
    pub role: NodeRole,
    pub state: RunState,
}

/// What a command run in a container returned.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Its exit code (`-1` when the engine did not say).
    pub code: i64,
    /// stdout and stderr, interleaved.
    pub output: String,
}

/// A tar archive holding one regular file `name` (ustar, mode 0644, owned by root).
pub fn tar_one(name: &str, contents: &[u8]) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        !name.is_empty() && name.len() < 100 && !name.contains('/'),
        "a file name for a tar entry must be 1 to 99 bytes without `/`: {name:?}"
    );
    let mut header = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, bytes: &[u8]| {
        h[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", contents.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    put(&mut header, 265, b"root");
    put(&mut header, 297, b"root");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(contents);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    Ok(out)
}

/// The contents of the first regular file in tar archive `tar` (extended headers skipped).
pub fn untar_first(tar: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let mut at = 0;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let size_field = std::str::from_utf8(&header[124..136])
            .context("a tar header's size is not text")?
            .trim_matches(|c: char| c == '\0' || c == ' ');
        let size = usize::from_str_radix(size_field, 8)
            .with_context(|| format!("a tar header's size is not octal: {size_field:?}"))?;
        let data = at + 512;
        anyhow::ensure!(data + size <= tar.len(), "the tar archive is truncated");
        match header[156] {
            b'0' | 0 => return Ok(Some(tar[data..data + size].to_vec())),
            _ => at = data + size.div_ceil(512) * 512,
        }
    }
    Ok(None)
}

impl Engine {
    /// The node containers of kind cluster `cluster`, stopped ones included, by name.
    pub async fn kind_nodes(&self, cluster: &str) -> anyhow::Result<Vec<Node>> {
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![format!("{CLUSTER_LABEL}={cluster}")],
                )])),
                ..Default::default()
            }))
            .await
            .with_context(|| format!("listing the node containers of kind cluster {cluster}"))?;
        let mut nodes: Vec<Node> = list
            .iter()
            .map(|c| Node {
                id: c.id.clone().unwrap_or_default(),
                name: summary_name(c),
                role: NodeRole::from_label(
                    c.labels
                        .as_ref()
                        .and_then(|l| l.get(ROLE_LABEL))
                        .map_or("", String::as_str),
                ),
                state: run_state(c.state.as_ref()),
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    /// When each running node container of kind cluster `cluster` was last started
    /// (`State.StartedAt`, by the engine's clock, which the nodes' kubelets share), by name.
    /// What a node's kubelet said before that is not the present.
    pub async fn nodes_started(
        &self,
        cluster: &str,
    ) -> anyhow::Result<std::collections::BTreeMap<String, k8s_openapi::jiff::Timestamp>> {
        let mut started = std::collections::BTreeMap::new();
        for node in self.kind_nodes(cluster).await? {
            if node.state != RunState::Running {
                continue;
            }
            let inspected = self
                .docker
                .inspect_container(&node.id, None)
                .await
                .with_context(|| format!("inspecting kind node {}", node.name))?;
            let at = inspected
                .state
                .and_then(|s| s.started_at)
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
            if let Some(at) = at {
                started.insert(node.name, at);
            }
        }
        Ok(started)
    }

    /// Start the nodes that are not running. Returns how many were started.
    pub async fn start_nodes(&self, nodes: &[Node]) -> anyhow::Result<usize> {
        let starting: Vec<&Node> = nodes
            .iter()
            .filter(|n| n.state != RunState::Running)
            .collect();
        futures_util::future::try_join_all(starting.iter().map(|n| async move {
            match self
                .docker
                .start_container(&n.id, None::<StartContainerOptions>)
                .await
            {
                Ok(()) => Ok(()),
                Err(e) if is_not_modified(&e) => Ok(()),
                Err(e) => Err(e).with_context(|| format!("starting kind node {}", n.name)),
            }
        }))
        .await?;
        Ok(starting.len())
    }

    /// Stop the nodes that are running (their filesystems and volumes stay, so the cluster
    /// comes back with them). Returns how many were stopped.
    pub async fn stop_nodes(&self, nodes: &[Node]) -> anyhow::Result<usize> {
        let stopping: Vec<&Node> = nodes
            .iter()
            .filter(|n| matches!(n.state, RunState::Running | RunState::Restarting))
            .collect();
        futures_util::future::try_join_all(stopping.iter().map(|n| async move {
            match self
                .docker
                .stop_container(
                    &n.id,
                    Some(StopContainerOptions {
                        t: Some(NODE_STOP_TIMEOUT_S),
                        signal: None,
                    }),
                )
                .await
            {
                Ok(()) => Ok(()),
                Err(e) if is_not_modified(&e) => Ok(()),
                Err(e) => Err(e).with_context(|| format!("stopping kind node {}", n.name)),
            }
        }))
        .await?;
        Ok(stopping.len())
    }

    /// Run `cmd` in running container `container` and wait for it.
    pub async fn exec(&self, container: &str, cmd: &[&str]) -> anyhow::Result<ExecOutput> {
        let context = || format!("running `{}` in container {container}", cmd.join(" "));
        let exec = self
            .docker
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .with_context(context)?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut out, ..
        } = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .with_context(context)?
        {
            while let Some(chunk) = out.next().await {
                let chunk = chunk.with_context(context)?;
                output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
        let code = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .with_context(context)?
            .exit_code
            .unwrap_or(-1);
        Ok(ExecOutput { code, output })
    }

    /// The contents of file `path` in `container` (stopped or running), or `None` when there
    /// is no such file.
    pub async fn read_file(&self, container: &str, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let tar = self
            .docker
            .download_from_container(
                container,
                Some(DownloadFromContainerOptions {
                    path: path.to_string(),
                }),
            )
            .try_fold(Vec::new(), |mut all, chunk| async move {
                all.extend_from_slice(&chunk);
                Ok(all)
            })
            .await;
        let tar = match tar {
            Ok(tar) => tar,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {path} in container {container}"));
            }
        };
        untar_first(&tar).with_context(|| format!("reading {path} in container {container}"))
    }

    /// Write `contents` to absolute path `path` in running container `container`, creating
    /// its directory (`mkdir -p`) first.
    pub async fn write_file(
        &self,
        container: &str,
        path: &str,
        contents: &[u8],
    ) -> anyhow::Result<()> {
        let (dir, name) = path
            .rsplit_once('/')
            .filter(|(_, name)| !name.is_empty())
            .with_context(|| format!("{path} is not a path to a file"))?;
        let dir = if dir.is_empty() { "/" } else { dir };
        let mkdir = self.exec(container, &["mkdir", "-p", dir]).await?;
        anyhow::ensure!(
            mkdir.code == 0,
            "creating {dir} in container {container} failed (exit {}): {}",
            mkdir.code,
            mkdir.output.trim()
        );
        let tar = tar_one(name, contents)?;
        self.docker
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: dir.to_string(),
                    ..Default::default()
                }),
                bollard::body_full(tar.into()),
            )
            .await
            .with_context(|| format!("writing {path} in container {container}"))?;
        Ok(())
    }

    /// Attach `container` to `network` unless it is already. Returns whether it was attached
    /// now.
    pub async fn connect_to_network(&self, container: &str, network: &str) -> anyhow::Result<bool> {
        let inspected = match self
            .docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => {
                return Err(Failure::environment(
                    format!("container {container} does not exist"),
                    None,
                )
                .into());
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting container {container}")),
        };
        let attached = inspected
            .network_settings
            .and_then(|n| n.networks)
            .is_some_and(|n| n.contains_key(network));
        if attached {
            return Ok(false);
        }
        match self
            .docker
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: container.to_string(),
                    endpoint_config: Some(EndpointSettings::default()),
                },
            )
            .await
        {
            Ok(()) => Ok(true),
            // Another run attached it between the look and the request.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 403 | 409,
                message,
            }) if message.contains("already exists") => Ok(false),
            Err(e) => Err(e)
                .with_context(|| format!("attaching container {container} to network {network}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_of_one_file_reads_back() {
        let contents = b"server = \"http://x:5000\"\n";
        let tar = tar_one("hosts.toml", contents).unwrap();
        assert_eq!(tar.len() % 512, 0);
        assert_eq!(&tar[257..263], b"ustar\0");
        // The header's checksum is the sum of its bytes with the field taken as spaces.
        let mut blank = tar[..512].to_vec();
        blank[148..156].copy_from_slice(b"        ");
        let sum: u32 = blank.iter().map(|&b| u32::from(b)).sum();
        let field = std::str::from_utf8(&tar[148..154]).unwrap();
        assert_eq!(u32::from_str_radix(field, 8).unwrap(), sum);
        assert_eq!(untar_first(&tar).unwrap().as_deref(), Some(&contents[..]));
        assert_eq!(untar_first(&[0u8; 1024]).unwrap(), None);
        assert!(tar_one("a/b", b"").is_err());
    }

    #[test]
    fn extended_headers_are_skipped() {
        let mut pax = tar_one("PaxHeader", b"30 mtime=1700000000.123456789\n").unwrap();
        pax[156] = b'x';
        pax.truncate(1024); // header + one data block, no end marker
        pax.extend(tar_one("hosts.toml", b"real").unwrap());
        assert_eq!(untar_first(&pax).unwrap().as_deref(), Some(&b"real"[..]));
    }

    #[test]
    fn roles_follow_kinds_labels() {
        assert_eq!(
            NodeRole::from_label("control-plane"),
            NodeRole::ControlPlane
        );
        assert!(!NodeRole::from_label("external-load-balancer").is_kubernetes_node());
        assert!(NodeRole::from_label("worker").is_kubernetes_node());
        assert_eq!(NodeRole::from_label("etcd").as_str(), "etcd");
    }
}

//! A named volume's content as a tar stream, out of the engine and into it, for snapshots:
//! through a *carrier*, a container that is created but never started, with the volume mounted
//! at [`CARRIER_PATH`]. The engine reads and writes a stopped container's mounts through its
//! archive endpoint, so this needs no shell, no helper image and no program inside: the
//! carrier is made from an image already on this machine (the service's own), whatever is in it.
//!
//! Tar entries are named `devenv-volume/...` (the mount point's name) both ways, with their
//! owners, modes and times: a stream read from one carrier extracts into another as the same
//! tree.
//!
//! Not for: which volumes, in what order, or what happens on failure (that is `snapshot`).

use std::collections::HashMap;

use anyhow::Context as _;
use bollard::models::{ContainerCreateBody, HostConfig, MountType, MountVolumeOptions};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions,
    RemoveContainerOptions, UploadToContainerOptions,
};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};

use super::{Engine, is_not_found};
use crate::config::labels;

/// Where a carrier mounts its volume. No image has it, so nothing of the image is copied in.
pub const CARRIER_PATH: &str = "/devenv-volume";

pub use crate::config::labels::BEFORE_RESTORE_SUFFIX;

/// A created, never started container that holds one volume at [`CARRIER_PATH`].
#[derive(Debug, Clone)]
pub struct Carrier {
    id: String,
    pub name: String,
    pub volume: String,
}

/// A container that mounts a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUser {
    pub id: String,
    pub name: String,
    /// Its `dev.devenv.project` label.
    pub project: Option<String>,
    /// Its `dev.devenv.service` label.
    pub service: Option<String>,
    /// Whether it is a carrier devenv left behind (a run killed mid-copy).
    pub carrier: bool,
    pub running: bool,
}

impl Engine {
    /// The labels of volume `name`, or `None` when there is no such volume.
    pub async fn volume_labels(
        &self,
        name: &str,
    ) -> anyhow::Result<Option<HashMap<String, String>>> {
        match self.docker.inspect_volume(name).await {
            Ok(v) => Ok(Some(v.labels)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("inspecting volume {name}")),
        }
    }

    /// Every container (running or not) that mounts volume `name`.
    pub async fn volume_users(&self, name: &str) -> anyhow::Result<Vec<VolumeUser>> {
        let all = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "volume".to_string(),
                    vec![name.to_string()],
                )])),
                ..Default::default()
            }))
            .await
            .with_context(|| format!("listing the containers that mount volume {name}"))?;
        Ok(all
            .iter()
            .map(|c| {
                let label = |k: &str| c.labels.as_ref().and_then(|l| l.get(k)).cloned();
                VolumeUser {
                    id: c.id.clone().unwrap_or_default(),
                    name: super::summary_name(c),
                    project: label(labels::PROJECT),
                    service: label(labels::SERVICE),
                    carrier: label(labels::CARRIER).is_some(),
                    running: c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
                }
            })
            .collect())
    }

    /// Whether `image` is on this machine.
    pub async fn image_present(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// A carrier of `volume` for environment `project`, made from `image` (which must be on
    /// this machine). A carrier of the same name left by a killed run is removed first.
    pub async fn carrier(
        &self,
        project: &str,
        volume: &str,
        image: &str,
    ) -> anyhow::Result<Carrier> {
        let name = format!("{volume}-devenv-carrier");
        self.remove_container_if_carrier(&name).await?;
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            labels: Some(HashMap::from([
                (labels::PROJECT.to_string(), project.to_string()),
                (labels::CARRIER.to_string(), volume.to_string()),
            ])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(vec![bollard::models::Mount {
                    target: Some(CARRIER_PATH.to_string()),
                    source: Some(volume.to_string()),
                    typ: Some(MountType::VOLUME),
                    volume_options: Some(MountVolumeOptions {
                        no_copy: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        tracing::info!("engine: creating carrier {name} of volume {volume} from {image}");
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    platform: String::new(),
                }),
                body,
            )
            .await
            .with_context(|| {
                format!("creating container {name} to read and write volume {volume}")
            })?;
        Ok(Carrier {
            id: created.id,
            name,
            volume: volume.to_string(),
        })
    }

    /// Remove container `name` when it is a carrier (devenv's); anything else of that name is
    /// an error naming it.
    async fn remove_container_if_carrier(&self, name: &str) -> anyhow::Result<()> {
        match self
            .docker
            .inspect_container(
                name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(c) => {
                let ours = c
                    .config
                    .and_then(|c| c.labels)
                    .is_some_and(|l| l.contains_key(labels::CARRIER));
                if !ours {
                    anyhow::bail!(
                        "a container named {name} exists that devenv did not make; devenv needs the name to copy a volume"
                    );
                }
                self.remove_carrier_by_id(name, name).await
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("inspecting container {name}")),
        }
    }

    /// Remove a carrier; its volume stays (the anonymous volumes its image declared go).
    pub async fn remove_carrier(&self, carrier: &Carrier) -> anyhow::Result<()> {
        self.remove_carrier_by_id(&carrier.id, &carrier.name).await
    }

    /// Remove a carrier a killed run left (a [`VolumeUser`] with `carrier`).
    pub async fn remove_leftover_carrier(&self, id: &str, name: &str) -> anyhow::Result<()> {
        self.remove_carrier_by_id(id, name).await
    }

    async fn remove_carrier_by_id(&self, id: &str, name: &str) -> anyhow::Result<()> {
        match self
            .docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    // Only the anonymous volumes the image declares (`VOLUME`); named
                    // volumes are never removed with a container.
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing container {name}")),
        }
    }

    /// The carrier's volume as a tar stream (entries `devenv-volume/...`).
    pub fn read_volume(
        &self,
        carrier: &Carrier,
    ) -> impl Stream<Item = anyhow::Result<Bytes>> + Send + 'static + use<> {
        let volume = carrier.volume.clone();
        self.docker
            .download_from_container(
                &carrier.id,
                Some(DownloadFromContainerOptions {
                    path: CARRIER_PATH.to_string(),
                }),
            )
            .map_err(move |e| anyhow::Error::new(e).context(format!("reading volume {volume}")))
    }

    /// Extract tar stream `tar` (entries `devenv-volume/...`, as [`Engine::read_volume`] gives)
    /// into the carrier's volume, owners and modes as the entries say.
    pub async fn write_volume(
        &self,
        carrier: &Carrier,
        tar: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!("engine: writing volume {}", carrier.volume);
        self.docker
            .upload_to_container(
                &carrier.id,
                Some(UploadToContainerOptions {
                    path: "/".to_string(),
                    ..Default::default()
                }),
                bollard::body_try_stream(tar),
            )
            .await
            .with_context(|| format!("writing volume {}", carrier.volume))
    }

    /// Copy the content of volume `from` into volume `to` (both of `project`), through two
    /// carriers made from `image`.
    pub async fn copy_volume(
        &self,
        project: &str,
        from: &str,
        to: &str,
        image: &str,
    ) -> anyhow::Result<()> {
        let source = self.carrier(project, from, image).await?;
        let copied = async {
            let target = self.carrier(project, to, image).await?;
            let stream = self
                .read_volume(&source)
                .map_err(|e| std::io::Error::other(format!("{e:#}")));
            let written = self.write_volume(&target, stream).await;
            let removed = self.remove_carrier(&target).await;
            written.and(removed)
        }
        .await;
        let removed = self.remove_carrier(&source).await;
        copied.and(removed)
    }

    /// Remove volume `name` and create it again, empty, with `labels`.
    pub async fn recreate_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> anyhow::Result<()> {
        self.remove_volume(name).await?;
        tracing::info!("engine: creating volume {name} again, empty");
        self.docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating volume {name}"))?;
        Ok(())
    }
}

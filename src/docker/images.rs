//! Images: which are present, and pulling one, telling the caller how many bytes have come.
//!
//! Not for: deciding which images are needed or may be pulled (`preflight` does, with its
//! `PullPolicy`), pulling several at once or drawing progress (the caller does, through its
//! `output::Reporter`).

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;
use futures_util::future::join_all;

use super::{Engine, is_not_found};

impl Engine {
    /// The local image ID of each image reference, `None` where the image is not present.
    pub async fn image_ids(
        &self,
        images: &[String],
    ) -> anyhow::Result<BTreeMap<String, Option<String>>> {
        let checks = images.iter().map(|image| async move {
            tracing::info!("engine: inspecting image {image}");
            match self.docker.inspect_image(image).await {
                Ok(i) => Ok((image.clone(), i.id)),
                Err(e) if is_not_found(&e) => Ok((image.clone(), None)),
                Err(e) => Err(e).with_context(|| format!("inspecting image {image}")),
            }
        });
        join_all(checks).await.into_iter().collect()
    }

    /// Pull `image`. `progress` hears the bytes downloaded so far and the total known so far
    /// (both summed over the image's layers) as they change.
    pub async fn pull(
        &self,
        image: &str,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> anyhow::Result<()> {
        tracing::info!("engine: pulling image {image}");
        let (from_image, tag) = reference(image);
        let mut stream = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(from_image),
                tag,
                ..Default::default()
            }),
            None,
            None,
        );
        // Bytes per layer; the caller hears their sums.
        let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
        while let Some(item) = stream.next().await {
            let info = item.with_context(|| format!("pulling image {image}"))?;
            if let Some(detail) = info.error_detail {
                // The cause on its own, under the image's context, so that callers can tell
                // one cause shared by many images from many causes.
                return Err(anyhow::anyhow!(detail.message.unwrap_or_default()))
                    .with_context(|| format!("pulling image {image}"));
            }
            if let (Some(id), Some(p)) = (info.id, info.progress_detail)
                && info.status.as_deref() == Some("Downloading")
            {
                let entry = layers.entry(id).or_default();
                entry.0 = p.current.unwrap_or(0).max(0) as u64;
                entry.1 = p.total.unwrap_or(0).max(0) as u64;
                progress(
                    layers.values().map(|l| l.0).sum(),
                    layers.values().map(|l| l.1).sum(),
                );
            }
        }
        Ok(())
    }
}

/// Split `repo[:tag]` / `repo@digest` into what the engine's pull takes.
fn reference(image: &str) -> (String, Option<String>) {
    if image.contains('@') {
        return (image.to_string(), None);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_string(),
            Some(image[last_slash + i + 1..].to_string()),
        ),
        None => (image.to_string(), Some("latest".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::reference;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(
            reference("nginx:1.28.0-alpine"),
            ("nginx".into(), Some("1.28.0-alpine".into()))
        );
        assert_eq!(
            reference("localhost:5001/a/b"),
            ("localhost:5001/a/b".into(), Some("latest".into()))
        );
        assert_eq!(
            reference("localhost:5001/a/b:v1"),
            ("localhost:5001/a/b".into(), Some("v1".into()))
        );
        assert_eq!(
            reference("busybox@sha256:abc"),
            ("busybox@sha256:abc".into(), None)
        );
    }
}

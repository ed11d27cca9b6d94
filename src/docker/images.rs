//! Images: which are present, and pulling the missing ones several at once, with a bytes
//! progress bar per image on a terminal and plain lines elsewhere.
//!
//! Not for: deciding which images are needed or may be pulled (`preflight` does, with its
//! `PullPolicy`).

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;
use futures_util::future::join_all;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{Engine, is_not_found};
use crate::output::Printer;

/// The local image ID of each image reference, `None` where the image is not present.
pub async fn image_ids(
    engine: &Engine,
    images: &[String],
) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let checks = images.iter().map(|image| async move {
        match engine.docker.inspect_image(image).await {
            Ok(i) => Ok((image.clone(), i.id)),
            Err(e) if is_not_found(&e) => Ok((image.clone(), None)),
            Err(e) => Err(e).with_context(|| format!("inspecting image {image}")),
        }
    });
    join_all(checks).await.into_iter().collect()
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

/// Pull `images`, all at once. Every failure is reported, not only the first.
pub async fn pull(engine: &Engine, images: &[String], printer: &Printer) -> anyhow::Result<()> {
    let bars = printer.progress_enabled().then(MultiProgress::new);
    let style = ProgressStyle::with_template(
        "{prefix:>10.green.bold} {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes}",
    )
    .expect("a valid progress template")
    .progress_chars("=> ");
    let pulls = images.iter().map(|image| {
        let bar = bars.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(0));
            b.set_style(style.clone());
            b.set_prefix("pulling");
            b.set_message(image.clone());
            b
        });
        if bar.is_none() {
            printer.step("pulling", image);
        }
        async move {
            let result = pull_one(engine, image, bar.as_ref()).await;
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            if result.is_ok() {
                printer.step("pulled", image);
            }
            result
        }
    });
    let failures: Vec<String> = join_all(pulls)
        .await
        .into_iter()
        .filter_map(Result::err)
        .map(|e| format!("{e:#}"))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", failures.join("\n  "))
    }
}

async fn pull_one(engine: &Engine, image: &str, bar: Option<&ProgressBar>) -> anyhow::Result<()> {
    let (from_image, tag) = reference(image);
    let mut stream = engine.docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(from_image),
            tag,
            ..Default::default()
        }),
        None,
        None,
    );
    // Bytes per layer; the bar shows their sums.
    let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("pulling image {image}"))?;
        if let Some(detail) = info.error_detail {
            anyhow::bail!(
                "pulling image {image}: {}",
                detail.message.unwrap_or_default()
            );
        }
        if let (Some(bar), Some(id), Some(p)) = (bar, info.id, info.progress_detail)
            && info.status.as_deref() == Some("Downloading")
        {
            let entry = layers.entry(id).or_default();
            entry.0 = p.current.unwrap_or(0).max(0) as u64;
            entry.1 = p.total.unwrap_or(0).max(0) as u64;
            bar.set_length(layers.values().map(|l| l.1).sum());
            bar.set_position(layers.values().map(|l| l.0).sum());
        }
    }
    Ok(())
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

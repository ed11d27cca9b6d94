//! Provisioning kind: downloading the pinned kind release for this OS and architecture into
//! devenv's data directory (`$XDG_DATA_HOME/devenv/bin`, default `~/.local/share/devenv/bin`),
//! verified against the SHA-256 that devenv carries for each platform, so that a fresh laptop
//! needs only Docker.
//!
//! The file appears under its final name only once verified and executable: it is written to
//! a temporary file in the same directory, checked, made 0755 and renamed. A checksum mismatch,
//! a refused or cut download leaves nothing behind and fails with exit 3.
//!
//! Not for: deciding to download. That is the caller's (a question on a terminal, a flag or an
//! environment variable in CI; never silently); this module only does it when asked. Nor for
//! finding kind ([`super::kind`] looks in [`default_dir`] last).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use crate::env;
use crate::error::Failure;

/// The kind release devenv provisions (and the newest it supports).
pub const PINNED_VERSION: &str = "v0.33.0";

/// SHA-256 of each kind v0.33.0 release binary devenv offers, by (`os`, `arch`) in Go's
/// names, as published with the release (`kind-<os>-<arch>.sha256sum`). Each value was found
/// identically in several independent projects that pin this release. Windows is not offered:
/// devenv does not run there.
pub const PINNED_CHECKSUMS: &[(&str, &str, &str)] = &[
    (
        "linux",
        "amd64",
        "aee6151561422756b764a4ae28e7f44cda5af5a9eead3cc9985112b1de8d8e0d",
    ),
    (
        "linux",
        "arm64",
        "20022bee6cfcd5086cb7234d218e3454e6090022f2a8f55d1fa7fcf42c3867a2",
    ),
    (
        "darwin",
        "amd64",
        "5a99f26f57246dc9319dd294803313197a0f34d33c525b3ea8b655db5916ece0",
    ),
    (
        "darwin",
        "arm64",
        "0c8c7dbe5e23594a198b786c4bc13dacc101fa6196b0cb0b23a1ca44e61f4b4f",
    ),
];

/// Where kind's releases are published.
const DOWNLOAD_BASE: &str = "https://github.com/kubernetes-sigs/kind/releases/download";

/// The binary's file name in the data directory.
pub const BINARY: &str = "kind";

/// A kind binary larger than this is not a kind binary (v0.33.0's are about 10 MiB).
const MAX_SIZE: u64 = 256 * 1024 * 1024;

/// One downloadable kind binary: where it is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The release's version (`v0.33.0`), for messages.
    pub version: String,
    /// The binary's URL.
    pub url: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// The pinned release for `os`/`arch` (Go's names: `linux`, `darwin`; `amd64`, `arm64`), or
/// `None` when devenv carries no checksum for that platform.
pub fn pinned_for(os: &str, arch: &str) -> Option<Release> {
    PINNED_CHECKSUMS
        .iter()
        .find(|(o, a, _)| *o == os && *a == arch)
        .map(|(o, a, sha)| Release {
            version: PINNED_VERSION.to_string(),
            url: format!("{DOWNLOAD_BASE}/{PINNED_VERSION}/kind-{o}-{a}"),
            sha256: sha.to_string(),
        })
}

/// This machine's OS and architecture in Go's names (kind's release files use them).
pub fn platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    (os, arch)
}

/// The pinned release for this machine; exit 3 when it is a platform devenv has no checksum
/// for.
pub fn pinned() -> anyhow::Result<Release> {
    let (os, arch) = platform();
    pinned_for(os, arch).ok_or_else(|| {
        let offered: Vec<String> = PINNED_CHECKSUMS
            .iter()
            .map(|(o, a, _)| format!("{o}/{a}"))
            .collect();
        Failure::environment(
            format!(
                "devenv cannot provision kind {PINNED_VERSION} for {os}/{arch}: it carries \
                 checksums only for {}",
                offered.join(", ")
            ),
            Some(
                "install kind yourself (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) \
                 and put it on PATH, or set DEVENV_KIND to it"
                    .to_string(),
            ),
        )
        .into()
    })
}

/// devenv's own directory for programs it provisions: `$XDG_DATA_HOME/devenv/bin`, else
/// `~/.local/share/devenv/bin`.
pub fn default_dir() -> anyhow::Result<PathBuf> {
    Ok(data_dir()?.join("bin"))
}

/// devenv's data directory: `$XDG_DATA_HOME/devenv`, else `~/.local/share/devenv` (the
/// provisioned kind, the Gateway API CRD bundle).
pub fn data_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os(env::XDG_DATA_HOME).filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os(env::HOME).filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local").join("share"),
            None => anyhow::bail!(
                "neither {} nor {} is set: cannot place devenv's data directory",
                env::XDG_DATA_HOME,
                env::HOME
            ),
        },
    };
    Ok(base.join("devenv"))
}

/// Download `release` into `dir` as [`BINARY`], verify it and make it executable. Returns its
/// path. Blocking (run it off the async runtime). An existing file is replaced only once the
/// new one is verified.
pub fn provision(release: &Release, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = dir.join(BINARY);
    // Removed on drop: whatever goes wrong below leaves nothing under `dir`.
    let mut partial = tempfile::Builder::new()
        .prefix(".kind-download-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let unreachable = |e: &dyn std::fmt::Display| {
        Failure::environment(
            format!(
                "downloading kind {} from {} failed: {e}",
                release.version, release.url
            ),
            Some(format!(
                "check the network and try again, or install kind {} yourself \
                 (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
                release.version
            )),
        )
    };
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_global(Some(Duration::from_secs(600)))
            .build(),
    );
    let mut response = agent
        .get(&release.url)
        .call()
        .map_err(|e| unreachable(&e))?;
    let mut body = response.body_mut().with_config().limit(MAX_SIZE).reader();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreachable(&e).into()),
        };
        hasher.update(&buffer[..n]);
        partial
            .write_all(&buffer[..n])
            .with_context(|| format!("writing {}", partial.path().display()))?;
    }
    let actual = hex::encode(hasher.finalize());
    if !actual.eq_ignore_ascii_case(&release.sha256) {
        return Err(Failure::environment(
            format!(
                "the kind {} downloaded from {} is not the published one: its SHA-256 is {actual}, \
                 expected {}; the file was deleted",
                release.version, release.url, release.sha256
            ),
            Some(
                "try again later (a proxy or mirror may have altered it), or install kind \
                 yourself (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
                    .to_string(),
            ),
        )
        .into());
    }
    partial
        .as_file()
        .sync_all()
        .with_context(|| format!("writing {}", partial.path().display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(partial.path(), std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", partial.path().display()))?;
    }
    partial
        .persist(&target)
        .with_context(|| format!("moving the download to {}", target.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader};
    use std::net::TcpListener;

    const FAKE: &[u8] = b"#!/bin/sh\necho 'kind v0.33.0 go1.26.7 linux/amd64'\n";

    /// How the test server answers.
    #[derive(Clone, Copy)]
    enum Answer {
        /// The whole body.
        Whole,
        /// A `Content-Length` of the whole body, half of it, then the connection closes.
        CutMidBody,
        /// 404.
        Missing,
    }

    /// A one-request HTTP server on 127.0.0.1:0; returns the URL it serves `FAKE` at.
    fn serve(answer: Answer) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/kind-test-amd64", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            let mut out = stream;
            let (status, body): (&str, &[u8]) = match answer {
                Answer::Missing => ("404 Not Found", b"no such release\n"),
                _ => ("200 OK", FAKE),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            out.write_all(head.as_bytes()).unwrap();
            match answer {
                Answer::CutMidBody => out.write_all(&body[..body.len() / 2]).unwrap(),
                _ => out.write_all(body).unwrap(),
            }
            out.flush().unwrap();
            let _ = out.shutdown(std::net::Shutdown::Both);
        });
        (url, server)
    }

    fn release(url: String, sha256: String) -> Release {
        Release {
            version: "v0.33.0".into(),
            url,
            sha256,
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_verified_download_becomes_an_executable_kind() {
        use std::os::unix::fs::PermissionsExt as _;
        let (url, server) = serve(Answer::Whole);
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("devenv").join("bin");
        let sha = hex::encode(Sha256::digest(FAKE));
        let path = provision(&release(url, sha), &bin).unwrap();
        server.join().unwrap();
        assert_eq!(path, bin.join("kind"));
        assert_eq!(std::fs::read(&path).unwrap(), FAKE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(entries(&bin), ["kind"]);
        // devenv finds it there when PATH has no kind.
        let search = crate::cluster::kind::Search {
            explicit: None,
            path: Some(dir.path().join("empty").into()),
            provisioned: Some(bin.clone()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let kind = runtime
            .block_on(crate::cluster::kind::Kind::find(&search))
            .unwrap();
        assert_eq!(kind.path, path);
        assert_eq!(kind.origin, crate::cluster::kind::Origin::Provisioned);
        assert_eq!(kind.version.to_string(), "0.33.0");
    }

    #[test]
    fn a_checksum_mismatch_deletes_the_file_and_fails_with_exit_3() {
        let (url, server) = serve(Answer::Whole);
        let dir = tempfile::tempdir().unwrap();
        // A kind already there stays as it was.
        std::fs::write(dir.path().join("kind"), b"old").unwrap();
        let wrong = hex::encode(Sha256::digest(b"another binary"));
        let err = provision(&release(url.clone(), wrong.clone()), dir.path()).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit::ENVIRONMENT
        );
        let message = format!("{err:#}");
        assert!(message.contains(&wrong), "{message}");
        assert!(
            message.contains(&hex::encode(Sha256::digest(FAKE))),
            "{message}"
        );
        assert!(message.contains(&url), "{message}");
        assert_eq!(entries(dir.path()), ["kind"]);
        assert_eq!(std::fs::read(dir.path().join("kind")).unwrap(), b"old");
    }

    #[test]
    fn a_download_cut_mid_body_leaves_nothing() {
        let (url, server) = serve(Answer::CutMidBody);
        let dir = tempfile::tempdir().unwrap();
        let sha = hex::encode(Sha256::digest(FAKE));
        let err = provision(&release(url, sha), dir.path()).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit::ENVIRONMENT
        );
        assert!(
            format!("{err:#}").contains("downloading kind v0.33.0"),
            "{err:#}"
        );
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    }

    #[test]
    fn a_refused_download_leaves_nothing() {
        let (url, server) = serve(Answer::Missing);
        let dir = tempfile::tempdir().unwrap();
        let sha = hex::encode(Sha256::digest(FAKE));
        let err = provision(&release(url, sha), dir.path()).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit::ENVIRONMENT
        );
        assert!(format!("{err:#}").contains("404"), "{err:#}");
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn offers_the_four_platforms_with_release_urls() {
        let r = pinned_for("linux", "amd64").unwrap();
        assert_eq!(
            r.url,
            "https://github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-linux-amd64"
        );
        assert_eq!(
            r.sha256,
            "aee6151561422756b764a4ae28e7f44cda5af5a9eead3cc9985112b1de8d8e0d"
        );
        assert!(pinned_for("darwin", "arm64").is_some());
        assert!(pinned_for("windows", "amd64").is_none());
        assert!(pinned_for("linux", "ppc64le").is_none());
        for (_, _, sha) in PINNED_CHECKSUMS {
            assert_eq!(sha.len(), 64);
            assert!(
                sha.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }
}

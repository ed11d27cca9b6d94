//! Trust in devenv's CA (`crate::tls`) outside devenv: the OS certificate store (Debian and
//! Ubuntu `update-ca-certificates`; Fedora and Arch p11-kit `trust anchor`; macOS
//! `security add-trusted-cert` into the login keychain; Windows `certutil -user`), the NSS
//! databases Firefox and Chromium read when `certutil` is there, and hints for runtimes that
//! ignore the OS store.
//!
//! As `dns::os` does, an install is a [`Plan`] of exact steps (`--dry-run` prints it), applied
//! under a root directory (`/`, or a throwaway root in tests: only root-aware commands run
//! there), and recorded with the steps that undo it, so `uninstall` removes exactly what was
//! added. Not for: making the CA or the certificate.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::error::Failure;

/// The install record in the state directory.
pub const RECORD_FILE: &str = "trust-install.json";

/// An OS certificate store devenv knows how to add a CA to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Store {
    /// `/usr/local/share/ca-certificates` + `update-ca-certificates` (Debian, Ubuntu).
    Debian,
    /// p11-kit's `trust anchor` (Fedora, RHEL, Arch).
    P11Kit,
    /// The login keychain, `security add-trusted-cert`.
    Macos,
    /// The current user's Root store, `certutil -user`.
    Windows,
}

impl Store {
    /// The store of this host, looked for under `root`.
    pub fn detect(root: &Path) -> Option<Store> {
        if cfg!(target_os = "macos") {
            return Some(Store::Macos);
        }
        if cfg!(windows) {
            return Some(Store::Windows);
        }
        if root.join("usr/sbin/update-ca-certificates").exists()
            || root.join("etc/debian_version").exists()
        {
            return Some(Store::Debian);
        }
        if root.join("usr/bin/trust").exists() || root.join("etc/pki/ca-trust").is_dir() {
            return Some(Store::P11Kit);
        }
        None
    }
}

/// One step of an install or an uninstall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Write a file (mode 0644).
    Write { path: PathBuf, contents: String },
    /// Remove a file devenv wrote.
    Remove { path: PathBuf },
    /// Run a command.
    Run { argv: Vec<String> },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Write { path, .. } => write!(f, "write {}", path.display()),
            Step::Remove { path } => write!(f, "remove {}", path.display()),
            Step::Run { argv } => write!(f, "run {}", argv.join(" ")),
        }
    }
}

/// What an install does and how it is undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub store: Store,
    pub root: PathBuf,
    pub steps: Vec<Step>,
    /// The steps that undo `steps`, in order.
    pub undo: Vec<Step>,
    /// Runtimes that read their own CA list.
    #[serde(default)]
    pub hints: Vec<String>,
}

/// What the plan is made from.
pub struct Inputs<'a> {
    /// The environment's name (names the file and the NSS nickname).
    pub name: &'a str,
    /// The CA certificate, PEM, and where it is on disk.
    pub ca_pem: &'a str,
    pub ca_path: &'a Path,
    /// The NSS databases to add to (`sql:` directories holding `cert9.db`).
    pub nss: Vec<PathBuf>,
    /// The user's home (macOS keychain).
    pub home: PathBuf,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `update-ca-certificates`, its directories under `root` when that is not `/`.
fn update_ca_certificates(root: &Path) -> Vec<String> {
    let mut argv = vec!["update-ca-certificates".to_string()];
    if root != Path::new("/") {
        for (flag, dir) in [
            ("--certsconf", "etc/ca-certificates.conf"),
            ("--certsdir", "usr/share/ca-certificates"),
            ("--localcertsdir", "usr/local/share/ca-certificates"),
            ("--etccertsdir", "etc/ssl/certs"),
            ("--hooksdir", "etc/ca-certificates/update.d"),
        ] {
            argv.push(flag.to_string());
            argv.push(root.join(dir).display().to_string());
        }
    }
    argv
}

/// The nickname of the CA in NSS databases.
pub fn nickname(name: &str) -> String {
    format!("devenv {name} CA")
}

/// The install plan for `store` under `root`.
pub fn plan(store: Store, root: &Path, inputs: &Inputs<'_>) -> Plan {
    let ca = inputs.ca_path.display().to_string();
    let (mut steps, mut undo) = (Vec::new(), Vec::new());
    let mut bundle = None;
    match store {
        Store::Debian => {
            let file = root
                .join("usr/local/share/ca-certificates")
                .join(format!("devenv-{}.crt", inputs.name));
            steps.push(Step::Write {
                path: file.clone(),
                contents: inputs.ca_pem.to_string(),
            });
            steps.push(Step::Run {
                argv: update_ca_certificates(root),
            });
            undo.push(Step::Remove { path: file });
            undo.push(Step::Run {
                argv: update_ca_certificates(root),
            });
            bundle = Some("/etc/ssl/certs/ca-certificates.crt");
        }
        Store::P11Kit => {
            steps.push(Step::Run {
                argv: strings(&["trust", "anchor", "--store", &ca]),
            });
            undo.push(Step::Run {
                argv: strings(&["trust", "anchor", "--remove", &ca]),
            });
            bundle = Some("/etc/pki/tls/certs/ca-bundle.crt");
        }
        Store::Macos => {
            let keychain = inputs
                .home
                .join("Library/Keychains/login.keychain-db")
                .display()
                .to_string();
            steps.push(Step::Run {
                argv: strings(&[
                    "security",
                    "add-trusted-cert",
                    "-r",
                    "trustRoot",
                    "-k",
                    &keychain,
                    &ca,
                ]),
            });
            undo.push(Step::Run {
                argv: strings(&["security", "remove-trusted-cert", &ca]),
            });
            undo.push(Step::Run {
                argv: strings(&[
                    "security",
                    "delete-certificate",
                    "-Z",
                    &sha256_hex(inputs.ca_pem),
                    &keychain,
                ]),
            });
        }
        Store::Windows => {
            steps.push(Step::Run {
                argv: strings(&["certutil", "-user", "-addstore", "Root", &ca]),
            });
            undo.push(Step::Run {
                argv: strings(&[
                    "certutil",
                    "-user",
                    "-delstore",
                    "Root",
                    &serial_hex(inputs.ca_pem),
                ]),
            });
        }
    }
    let nick = nickname(inputs.name);
    for db in &inputs.nss {
        let d = format!("sql:{}", db.display());
        steps.push(Step::Run {
            argv: strings(&[
                "certutil", "-A", "-d", &d, "-t", "C,,", "-n", &nick, "-i", &ca,
            ]),
        });
        undo.push(Step::Run {
            argv: strings(&["certutil", "-D", "-d", &d, "-n", &nick]),
        });
    }
    let mut hints = vec![
        format!("Node.js: export NODE_EXTRA_CA_CERTS={ca}"),
        format!(
            "Java: keytool -importcert -cacerts -alias devenv-{} -file {ca} -storepass changeit -noprompt",
            inputs.name
        ),
    ];
    match bundle {
        Some(b) => hints.push(format!(
            "Python requests, Go, OpenSSL tools that do not read the store: export REQUESTS_CA_BUNDLE={b} SSL_CERT_FILE={b}"
        )),
        None => hints.push(format!(
            "Python requests and OpenSSL tools: export REQUESTS_CA_BUNDLE={ca} (that bundle holds only devenv's CA)"
        )),
    }
    Plan {
        store,
        root: root.to_path_buf(),
        steps,
        undo,
        hints,
    }
}

/// The SHA-256 fingerprint of a PEM certificate, hex uppercase (`security delete-certificate
/// -Z` takes it); empty when the PEM does not parse.
pub fn sha256_hex(pem: &str) -> String {
    use sha2::{Digest, Sha256};
    match x509_parser::pem::parse_x509_pem(pem.as_bytes()) {
        Ok((_, p)) => hex::encode_upper(Sha256::digest(&p.contents)),
        Err(_) => String::new(),
    }
}

/// The serial number of a PEM certificate, hex (`certutil -delstore` takes it).
pub fn serial_hex(pem: &str) -> String {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .ok()
        .and_then(|(_, p)| {
            p.parse_x509()
                .ok()
                .map(|c| hex::encode(c.tbs_certificate.raw_serial()))
        })
        .unwrap_or_default()
}

/// The NSS databases of `home` (Chromium's and every Firefox profile's, snap included).
pub fn nss_databases(home: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let chromium = home.join(".pki/nssdb");
    if chromium.join("cert9.db").is_file() {
        out.push(chromium);
    }
    for profiles in [
        home.join(".mozilla/firefox"),
        home.join("snap/firefox/common/.mozilla/firefox"),
    ] {
        if let Ok(entries) = std::fs::read_dir(&profiles) {
            let mut dirs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cert9.db").is_file())
                .collect();
            dirs.sort();
            out.extend(dirs);
        }
    }
    out
}

/// Apply `steps`; commands are run only when `run_commands` (the real root) or for
/// `update-ca-certificates`, which takes its directories. Stops at the first failure.
pub fn apply(steps: &[Step], run_commands: bool) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    for step in steps {
        match step {
            Step::Write { path, contents } => {
                crate::files::write_atomic(path, contents.as_bytes(), 0o644)?;
            }
            Step::Remove { path } => match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
            },
            Step::Run { argv } => {
                let root_aware = argv.iter().any(|a| a == "--etccertsdir");
                if !run_commands && !root_aware {
                    done.push(format!("skipped under --root: {step}"));
                    continue;
                }
                let out = Command::new(&argv[0])
                    .args(&argv[1..])
                    .output()
                    .with_context(|| format!("running {}", argv.join(" ")))?;
                if !out.status.success() {
                    return Err(Failure::environment(
                        format!(
                            "`{}` failed ({}): {}",
                            argv.join(" "),
                            out.status,
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                        Some("run it with the privilege it needs (sudo devenv trust install), or see --dry-run".to_string()),
                    )
                    .into());
                }
            }
        }
        done.push(step.to_string());
    }
    Ok(done)
}

/// The record of an install in `dir`, if there is one.
pub fn load_record(dir: &Path) -> Option<Plan> {
    let bytes = std::fs::read(dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Write the record of `plan` into `dir`.
pub fn save_record(dir: &Path, plan: &Plan) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(plan)?;
    bytes.push(b'\n');
    crate::files::write_atomic(&dir.join(RECORD_FILE), &bytes, 0o644)
}

/// Whether the CA is in the store an install recorded: for Debian, whether the store's bundle
/// under the root holds it; elsewhere, whether the record exists (the OS tools say more).
pub fn in_store(plan: &Plan, ca_pem: &str) -> Option<bool> {
    match plan.store {
        Store::Debian => {
            let bundle = plan.root.join("etc/ssl/certs/ca-certificates.crt");
            let text = std::fs::read_to_string(bundle).ok()?;
            Some(text.contains(ca_pem.trim()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";

    fn inputs(nss: Vec<PathBuf>) -> Inputs<'static> {
        Inputs {
            name: "macula",
            ca_pem: PEM,
            ca_path: Path::new("/s/tls/ca.crt"),
            nss,
            home: PathBuf::from("/home/u"),
        }
    }

    #[test]
    fn every_store_has_an_undo_for_each_change() {
        let root = Path::new("/");
        let d = plan(Store::Debian, root, &inputs(vec![]));
        assert_eq!(
            d.steps[0],
            Step::Write {
                path: "/usr/local/share/ca-certificates/devenv-macula.crt".into(),
                contents: PEM.into()
            }
        );
        assert_eq!(
            d.steps[1],
            Step::Run {
                argv: strings(&["update-ca-certificates"])
            }
        );
        assert_eq!(
            d.undo[0],
            Step::Remove {
                path: "/usr/local/share/ca-certificates/devenv-macula.crt".into()
            }
        );
        let tmp = plan(Store::Debian, Path::new("/tmp/r"), &inputs(vec![]));
        assert!(
            tmp.steps[1]
                .to_string()
                .contains("--etccertsdir /tmp/r/etc/ssl/certs")
        );

        let p = plan(
            Store::P11Kit,
            root,
            &inputs(vec!["/home/u/.pki/nssdb".into()]),
        );
        assert_eq!(
            p.steps[0].to_string(),
            "run trust anchor --store /s/tls/ca.crt"
        );
        assert_eq!(
            p.undo[0].to_string(),
            "run trust anchor --remove /s/tls/ca.crt"
        );
        assert_eq!(
            p.steps[1].to_string(),
            "run certutil -A -d sql:/home/u/.pki/nssdb -t C,, -n devenv macula CA -i /s/tls/ca.crt"
        );
        assert_eq!(
            p.undo[1].to_string(),
            "run certutil -D -d sql:/home/u/.pki/nssdb -n devenv macula CA"
        );

        let m = plan(Store::Macos, root, &inputs(vec![]));
        assert!(m.steps[0].to_string().contains(
            "security add-trusted-cert -r trustRoot -k /home/u/Library/Keychains/login.keychain-db"
        ));
        assert!(
            m.undo
                .iter()
                .any(|s| s.to_string().contains("delete-certificate -Z"))
        );
        let w = plan(Store::Windows, root, &inputs(vec![]));
        assert_eq!(
            w.steps[0].to_string(),
            "run certutil -user -addstore Root /s/tls/ca.crt"
        );
        assert!(
            w.undo[0]
                .to_string()
                .starts_with("run certutil -user -delstore Root ")
        );
        for p in [d, p, m, w] {
            assert!(
                p.hints
                    .iter()
                    .any(|h| h.contains("NODE_EXTRA_CA_CERTS=/s/tls/ca.crt"))
            );
            assert!(p.hints.iter().any(|h| h.contains("REQUESTS_CA_BUNDLE")));
            assert!(p.hints.iter().any(|h| h.contains("keytool")));
        }
    }
}

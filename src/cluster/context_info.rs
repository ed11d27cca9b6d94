//! devenv's entry in the kubeconfig context of a cluster it created: which registry the
//! nodes push to and which registries they pull through devenv's mirrors, so that
//! `kubectl config view` (and any tool reading the context) shows what the cluster is wired to.
//!
//! It is one named extension of the context (`contexts[].context.extensions[]`, client-go's
//! `NamedExtension`; its value is kept as raw JSON by client-go and kind alike, as minikube's
//! `context_info` is). kind writes the context and replaces it whole when it re-creates the
//! cluster or exports the kubeconfig, so `up` writes the entry again each time; nothing else in
//! the file is touched. The file is locked the way client-go and kind lock it (`<file>.lock`,
//! created exclusively) and written in place as they write it (a symlink, its owner and mode
//! stay); its keys come out sorted, as kubectl writes them.
//!
//! Not for: a context devenv did not create (`cluster.provider: existing` is never written
//! to), nor the hit and miss counts, which change with every pull and are read live by
//! `status`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;

/// The extension's name in the context.
pub const EXTENSION: &str = "devenv";

/// What the extension says: the environment, every name its registry goes by in image
/// references (`localhost:5001`, `registry.<domain>`, …), and each mirrored registry with its
/// mirror and where the registry itself is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Info {
    pub environment: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registry: Vec<String>,
    pub mirrors: Vec<Mirror>,
}

/// One mirrored registry, as the nodes' containerd host file has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mirror {
    /// As image references name it (`docker.io`).
    pub registry: String,
    /// The mirror the nodes pull through (`http://macula-mirror:5000`).
    pub mirror: String,
    /// Where the registry itself is, the fallback (`https://registry-1.docker.io`).
    pub remote: String,
}

/// The extension for `config`'s cluster: the same facts as the nodes' host files.
pub fn info(config: &Config) -> Info {
    Info {
        environment: config.name.clone(),
        registry: crate::render::kind::registry_hosts(config)
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
        mirrors: crate::render::kind::mirror_hosts(config)
            .into_iter()
            .map(|m| Mirror {
                registry: m.registry,
                mirror: m.mirror,
                remote: m.remote,
            })
            .collect(),
    }
}

/// What [`annotate`] did to a kubeconfig's text.
#[derive(Debug, PartialEq)]
pub enum Annotated {
    /// The new text.
    Changed(String),
    /// The context already carries this entry.
    Unchanged,
    /// The file has no such context (nothing to annotate).
    NoContext,
}

/// `text` (a kubeconfig) with `context`'s devenv extension set to `info`, every other
/// extension, context and field left as it was.
pub fn annotate(text: &str, context: &str, info: &Info) -> anyhow::Result<Annotated> {
    let mut doc: Value = serde_saphyr::from_str(text).context("parsing the kubeconfig")?;
    let wanted = serde_json::to_value(info).context("serializing devenv's context entry")?;
    let Some(entry) = doc
        .get_mut("contexts")
        .and_then(Value::as_array_mut)
        .and_then(|all| {
            all.iter_mut()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(context))
        })
        .and_then(|c| c.get_mut("context"))
        .and_then(Value::as_object_mut)
    else {
        return Ok(Annotated::NoContext);
    };
    let key = "extensions";
    let mut extensions = match entry.get(key) {
        Some(Value::Array(list)) => list.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => anyhow::bail!("context {context}'s `extensions` is not a list"),
    };
    let ours = |e: &Value| e.get("name").and_then(Value::as_str) == Some(EXTENSION);
    let named = serde_json::json!({"name": EXTENSION, "extension": wanted});
    if extensions.iter().filter(|e| ours(e)).eq([&named]) {
        return Ok(Annotated::Unchanged);
    }
    match extensions.iter().position(ours) {
        Some(i) => {
            extensions[i] = named;
            let mut seen = false;
            extensions.retain(|e| !ours(e) || !std::mem::replace(&mut seen, true));
        }
        None => extensions.push(named),
    }
    entry.insert(key.to_string(), Value::Array(extensions));
    Ok(Annotated::Changed(
        // Plain scalars, as kubectl writes them: no folded `>` blocks for long certificates.
        serde_saphyr::to_string_with_options(&doc, plain_scalars())
            .context("serializing the kubeconfig")?,
    ))
}

/// serde-saphyr's options with block scalars off.
fn plain_scalars() -> serde_saphyr::SerializerOptions {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    options
}

/// How long [`record`] waits for another writer's lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Set `context`'s devenv extension in the kubeconfig `path` to `info`, under the lock
/// client-go and kind take. Returns what was done.
pub fn record(path: &Path, context: &str, info: &Info) -> anyhow::Result<Annotated> {
    let _lock = Lock::take(path)?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    let done = annotate(&text, context, info).with_context(|| format!("in {}", path.display()))?;
    if let Annotated::Changed(new) = &done {
        // In place, under the lock, as client-go and kind write it: a symlinked kubeconfig
        // stays a link, a bind-mounted one stays mounted, its owner and mode stay.
        std::fs::write(path, new.as_bytes())
            .with_context(|| format!("writing the kubeconfig {}", path.display()))?;
    }
    Ok(done)
}

#[cfg(all(test, unix))]
fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0)
}

/// client-go's kubeconfig lock (`tools/clientcmd/loader.go`, followed by kind's
/// `kubeconfig/lock.go`): `<file>.lock`, created exclusively, removed when done.
struct Lock(PathBuf);

impl Lock {
    fn take(file: &Path) -> anyhow::Result<Lock> {
        let mut name = file.as_os_str().to_owned();
        name.push(".lock");
        let lock = PathBuf::from(name);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock)
            {
                Ok(_) => return Ok(Lock(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if Instant::now() >= deadline {
                        anyhow::bail!(
                            "{} has been held for {} s by another writer of the kubeconfig (kubectl, kind); remove it if none is running",
                            lock.display(),
                            LOCK_WAIT.as_secs()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", lock.display()));
                }
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: QUJD
    server: https://127.0.0.1:40000
    tls-server-name: a-name-long-enough-that-a-yaml-writer-might-fold-it-into-a-block-scalar-of-its-own.example
  name: kind-macula
contexts:
- context:
    cluster: kind-macula
    user: kind-macula
  name: kind-macula
- context:
    cluster: work
    namespace: team
    user: work
  name: work
current-context: kind-macula
kind: Config
preferences: {}
users:
- name: kind-macula
  user:
    client-certificate-data: REVG
";

    fn doc(text: &str) -> Value {
        serde_saphyr::from_str(text).unwrap()
    }

    fn changed(a: Annotated) -> String {
        match a {
            Annotated::Changed(t) => t,
            other => panic!("not changed: {other:?}"),
        }
    }

    #[test]
    fn the_default_names_the_registry_and_docker_hubs_mirror() {
        let info = info(&Config::default());
        assert_eq!(info.environment, "macula");
        assert_eq!(
            info.registry,
            [
                "localhost:5001",
                "registry.macula.local",
                "macula-registry:5000"
            ]
        );
        assert_eq!(
            info.mirrors,
            vec![Mirror {
                registry: "docker.io".into(),
                mirror: "http://macula-mirror:5000".into(),
                remote: "https://registry-1.docker.io".into(),
            }]
        );
    }

    #[test]
    fn the_entry_goes_into_the_named_context_only_and_the_rest_stays() {
        let info = info(&Config::default());
        let text = changed(annotate(KUBECONFIG, "kind-macula", &info).unwrap());
        let before = doc(KUBECONFIG);
        let after = doc(&text);
        // Everything but the one context's extensions is as it was.
        let mut stripped = after.clone();
        let ext = stripped["contexts"][0]["context"]
            .as_object_mut()
            .unwrap()
            .remove("extensions")
            .unwrap();
        assert_eq!(stripped, before);
        assert_eq!(ext[0]["name"], Value::from("devenv"));
        assert_eq!(
            ext[0]["extension"]["mirrors"][0]["mirror"],
            Value::from("http://macula-mirror:5000")
        );
        assert_eq!(
            ext[0]["extension"]["registry"][0],
            Value::from("localhost:5001")
        );
        // Again: nothing to do.
        assert_eq!(
            annotate(&text, "kind-macula", &info).unwrap(),
            Annotated::Unchanged
        );
    }

    #[test]
    fn other_extensions_are_kept_and_a_stale_entry_is_replaced() {
        let with_others = KUBECONFIG.replace(
            "    user: kind-macula\n  name: kind-macula\n",
            "    user: kind-macula\n    extensions:\n    - name: context_info\n      extension:\n        provider: someone\n    - name: devenv\n      extension:\n        environment: old\n        mirrors: []\n  name: kind-macula\n",
        );
        let info = info(&Config::default());
        let text = changed(annotate(&with_others, "kind-macula", &info).unwrap());
        let after = doc(&text);
        let ext = after["contexts"][0]["context"]["extensions"]
            .as_array()
            .unwrap();
        assert_eq!(ext.len(), 2, "{text}");
        assert_eq!(ext[0]["name"], Value::from("context_info"));
        assert_eq!(ext[0]["extension"]["provider"], Value::from("someone"));
        assert_eq!(ext[1]["extension"]["environment"], Value::from("macula"));
    }

    #[test]
    fn without_mirrors_the_entry_says_so_and_a_missing_context_is_left_alone() {
        let mut config = Config::default();
        config.mirror.registries.clear();
        let info = info(&config);
        assert!(info.mirrors.is_empty());
        let text = changed(annotate(KUBECONFIG, "kind-macula", &info).unwrap());
        assert_eq!(
            doc(&text)["contexts"][0]["context"]["extensions"][0]["extension"]["mirrors"],
            Value::Array(Vec::new())
        );
        assert_eq!(
            annotate(KUBECONFIG, "kind-other", &info).unwrap(),
            Annotated::NoContext
        );
        assert!(annotate("contexts: [", "kind-macula", &info).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_kubeconfig_stays_a_link_to_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles-kubeconfig");
        std::fs::write(&real, KUBECONFIG).unwrap();
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        record(&link, "kind-macula", &info(&Config::default())).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            std::fs::read_to_string(&real)
                .unwrap()
                .contains("macula-mirror")
        );
    }

    #[test]
    fn record_keeps_the_mode_takes_the_lock_and_waits_for_anothers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, KUBECONFIG).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let info = info(&Config::default());
        assert!(matches!(
            record(&path, "kind-macula", &info).unwrap(),
            Annotated::Changed(_)
        ));
        #[cfg(unix)]
        assert_eq!(file_mode(&path), 0o600);
        assert!(!dir.path().join("config.lock").exists());
        // A long certificate stays one plain scalar, and the file reads back the same.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(": >"), "{text}");
        // Another writer's lock: waited for, then named.
        std::fs::write(dir.path().join("config.lock"), "").unwrap();
        let err = record(&path, "kind-macula", &info).unwrap_err();
        assert!(format!("{err:#}").contains("config.lock"), "{err:#}");
        assert!(dir.path().join("config.lock").exists());
    }
}

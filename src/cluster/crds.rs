//! The Gateway API CRDs devenv installs: the official standard-channel bundle of a pinned
//! release ([`Pin`]), fetched from the release's URL, verified against the SHA-256 carried
//! here (as kind is), and cached in devenv's data directory, so it is downloaded once per
//! machine. Offline, `up --gateway-crds FILE` takes the same file from disk with the same
//! check. Also here, pure: what devenv's Traefik needs the cluster to serve ([`SERVED`]), and
//! what to do about the CRDs a cluster already has ([`decide`]): another tool's are never
//! replaced or downgraded.
//!
//! Why v1.5.1: the pinned Traefik (v3.7) is built against `sigs.k8s.io/gateway-api v1.5.1`
//! (its go.mod) and its informers read TLSRoute and BackendTLSPolicy at `v1`, which the
//! standard channel serves from v1.5 on (BackendTLSPolicy since v1.4). v1.5.1 is the newest
//! patch release of that minor. The bundle is not in the repository: it is the project's own
//! release asset, 1,024,333 bytes.
//!
//! Not for: talking to the API server (`cluster::kube::crds`) or the objects devenv makes
//! with these kinds (`render::cluster::gateway`).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use sha2::{Digest, Sha256};

use crate::env;
use crate::error::Failure;
use crate::render::cluster::gateway::GROUP;

/// The pinned Gateway API release.
pub const VERSION: &str = "v1.5.1";
/// The release's standard-channel bundle.
pub const URL: &str =
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.5.1/standard-install.yaml";
/// The bundle's SHA-256. Confirmed by independent public pins of this asset (projects that
/// verify it before applying) and by rebuilding the file from the v1.5.1 tag with the
/// project's own `hack/build-install-yaml.sh`.
pub const SHA256: &str = "751002b3b91a87f7ae3bd2517c79a47a8d7ed6702901808a1cf9bd97d284f9b8";
/// The annotation every Gateway API CRD carries with its release.
pub const BUNDLE_VERSION_ANNOTATION: &str = "gateway.networking.k8s.io/bundle-version";
/// The annotation naming its channel (`standard`, `experimental`).
pub const CHANNEL_ANNOTATION: &str = "gateway.networking.k8s.io/channel";
/// The bundle's file name, in the cache as in the release.
pub const FILE: &str = "standard-install.yaml";
/// A bundle larger than this is not one (v1.5.1's is 1 MB).
const MAX_SIZE: u64 = 16 * 1024 * 1024;

/// One kind devenv's Traefik reads: its plural, the version its informer lists, and whether
/// it writes the kind's status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Served {
    pub plural: &'static str,
    pub version: &'static str,
    pub status: bool,
}

/// Every Gateway API kind Traefik v3.7's Gateway provider lists and watches with
/// `experimentalChannel` off, at the version it uses (its `client.go`): a cluster missing one
/// never syncs the provider. TCPRoute (v1alpha2) is experimental only.
pub const SERVED: &[Served] = &[
    Served {
        plural: "gatewayclasses",
        version: "v1",
        status: true,
    },
    Served {
        plural: "gateways",
        version: "v1",
        status: true,
    },
    Served {
        plural: "httproutes",
        version: "v1",
        status: true,
    },
    Served {
        plural: "grpcroutes",
        version: "v1",
        status: true,
    },
    Served {
        plural: "referencegrants",
        version: "v1beta1",
        status: false,
    },
    Served {
        plural: "backendtlspolicies",
        version: "v1",
        status: true,
    },
    Served {
        plural: "tlsroutes",
        version: "v1",
        status: true,
    },
];

/// The CRD name of `plural` (`httproutes.gateway.networking.k8s.io`).
pub fn crd_name(plural: &str) -> String {
    format!("{plural}.{GROUP}")
}

/// The bundle devenv accepts: where it comes from and what it must hash to.
#[derive(Debug, Clone, PartialEq)]
pub struct Pin {
    /// The release, as its CRDs' [`BUNDLE_VERSION_ANNOTATION`] says.
    pub version: String,
    pub url: String,
    pub sha256: String,
    /// The checksum came from [`env::GATEWAY_CRDS_SHA256`], not from devenv's source.
    pub overridden: bool,
}

impl Pin {
    /// The pinned release, or, with [`env::GATEWAY_CRDS_SHA256`] set, the same URL and cache
    /// checked against that checksum instead (a bundle one has reviewed oneself; tests).
    pub fn pinned() -> Pin {
        let own = std::env::var(env::GATEWAY_CRDS_SHA256)
            .ok()
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty());
        Pin {
            version: VERSION.into(),
            url: URL.into(),
            overridden: own.is_some(),
            sha256: own.unwrap_or_else(|| SHA256.into()),
        }
    }

    /// Where the verified bundle is kept: `<data>/gateway-api/<version>/standard-install.yaml`
    /// (`<data>`: `$XDG_DATA_HOME/devenv`, default `~/.local/share/devenv`). Another
    /// checksum is kept under its own name, so the two never mix.
    pub fn cache_path(&self, data: &Path) -> PathBuf {
        let dir = data.join("gateway-api").join(&self.version);
        if self.overridden {
            // Hex digits only: an override that is not a SHA-256 matches no file anyway, and
            // must not lead the name out of the directory.
            let prefix: String = self
                .sha256
                .chars()
                .filter(char::is_ascii_hexdigit)
                .take(16)
                .collect();
            dir.join(format!("{prefix}-{FILE}"))
        } else {
            dir.join(FILE)
        }
    }
}

/// The bundle, parsed: its CRDs and the admission policy (and binding) it ships.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The release its CRDs name.
    pub version: String,
    pub crds: Vec<CustomResourceDefinition>,
    pub policies: Vec<ValidatingAdmissionPolicy>,
    pub bindings: Vec<ValidatingAdmissionPolicyBinding>,
    /// Its schemas carry CEL validation rules (`x-kubernetes-validations`), as the release's
    /// do: see [`RULES_MINOR`].
    pub validation_rules: bool,
}

/// The oldest Kubernetes minor (1.x) that takes CRDs with validation rules: the field exists in
/// the API from 1.23 and the rules are enforced by default from 1.25 (beta). An older server
/// refuses the release's CRDs outright (server-side apply: "x-kubernetes-validations: field not
/// declared in schema", seen on v1.20), and 1.23–1.24 would store them without enforcing
/// what keeps the routes valid.
pub const RULES_MINOR: u32 = 25;

/// Whether a server of minor version `minor` (1.x) can take `bundle`; `None` when it can, else
/// why not.
pub fn too_old(bundle: &Bundle, minor: u32) -> Option<String> {
    (bundle.validation_rules && minor < RULES_MINOR).then(|| {
        format!(
            "the Gateway API CRDs {} carry validation rules, which Kubernetes enforces from 1.{RULES_MINOR}; this API server is 1.{minor}",
            bundle.version
        )
    })
}

/// Whether `value` has an `x-kubernetes-validations` anywhere.
fn has_rules(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(map) => {
            map.contains_key("x-kubernetes-validations") || map.values().any(has_rules)
        }
        serde_json::Value::Array(items) => items.iter().any(has_rules),
        _ => false,
    }
}

/// Where a verified bundle came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    File(PathBuf),
    Cache(PathBuf),
    Download(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Cache(p) => write!(f, "the cache ({})", p.display()),
            Source::Download(url) => write!(f, "{url}"),
        }
    }
}

/// What [`obtain`] found.
#[derive(Debug)]
pub enum Obtained {
    /// The verified bytes.
    Verified(Vec<u8>, Source),
    /// No file was given, nothing is cached and the download failed (offline): the message.
    Unreachable(String),
}

/// The bundle's bytes, verified against `pin`: from `file` when given (`--gateway-crds`),
/// else from the cache under `data`, else downloaded into it. A file or download that does
/// not match is exit 3 and is neither used nor kept; an unreadable `file` is bad input. A
/// cached copy that no longer matches is replaced. Blocking (run it off the async runtime).
pub fn obtain(pin: &Pin, file: Option<&Path>, data: &Path) -> anyhow::Result<Obtained> {
    let cache = pin.cache_path(data);
    if let Some(file) = file {
        let bytes = read_file(pin, file)?;
        verify(pin, &bytes, &file.display().to_string())?;
        store(&cache, &bytes)?;
        return Ok(Obtained::Verified(bytes, Source::File(file.to_path_buf())));
    }
    if let Ok(bytes) = std::fs::read(&cache)
        && sha256(&bytes) == pin.sha256
    {
        return Ok(Obtained::Verified(bytes, Source::Cache(cache)));
    }
    let bytes = match download(&pin.url) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Ok(Obtained::Unreachable(format!(
                "downloading the Gateway API CRDs {} from {} failed: {e}",
                pin.version, pin.url
            )));
        }
    };
    verify(pin, &bytes, &pin.url)?;
    store(&cache, &bytes)?;
    Ok(Obtained::Verified(bytes, Source::Download(pin.url.clone())))
}

/// Check a `--gateway-crds` file against the pin without keeping it: what `up` does before it
/// changes anything, so that a wrong file stops it before kind, Docker or the API see a
/// request (exit 2 when it cannot be read, 3 when it is not the release's).
pub fn check_file(pin: &Pin, file: &Path) -> anyhow::Result<()> {
    let bytes = read_file(pin, file)?;
    verify(pin, &bytes, &file.display().to_string())
}

fn read_file(pin: &Pin, file: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).map_err(|e| {
        Failure::bad_input(
            format!(
                "--gateway-crds {}: cannot read the Gateway API bundle: {e}",
                file.display()
            ),
            Some(format!("pass the release's {FILE} ({})", pin.url)),
        )
        .into()
    })
}

/// Exit 3 unless `bytes` hash to the pin.
fn verify(pin: &Pin, bytes: &[u8], from: &str) -> anyhow::Result<()> {
    let actual = sha256(bytes);
    if actual == pin.sha256 {
        return Ok(());
    }
    let expected = if pin.overridden {
        format!("{} (from {})", pin.sha256, env::GATEWAY_CRDS_SHA256)
    } else {
        format!("{}, the release's", pin.sha256)
    };
    Err(Failure::environment(
        format!(
            "the Gateway API bundle from {from} is not the {} release's {FILE}: its SHA-256 is \
             {actual}, expected {expected}; nothing was applied",
            pin.version
        ),
        Some(format!(
            "download it again from {} (a proxy or mirror may have altered it), or set \
             cluster.gateway_api: false",
            pin.url
        )),
    )
    .into())
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Write `bytes` to `path` atomically (a temporary file beside it, then a rename).
fn store(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut partial = tempfile::Builder::new()
        .prefix(".gateway-api-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    partial
        .write_all(bytes)
        .and_then(|()| partial.as_file().sync_all())
        .with_context(|| format!("writing {}", partial.path().display()))?;
    partial
        .persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn download(url: &str) -> anyhow::Result<Vec<u8>> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_global(Some(Duration::from_secs(300)))
            .build(),
    );
    let mut response = agent.get(url).call()?;
    let mut bytes = Vec::new();
    response
        .body_mut()
        .with_config()
        .limit(MAX_SIZE)
        .reader()
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Parse a verified bundle. Only CRDs of the Gateway API group and admission policies (with
/// their bindings) are accepted: anything else in the file is refused, not applied.
pub fn parse(bytes: &[u8]) -> anyhow::Result<Bundle> {
    let text = std::str::from_utf8(bytes).context("the Gateway API bundle is not UTF-8")?;
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).context("the Gateway API bundle is not YAML")?;
    let mut bundle = Bundle {
        version: String::new(),
        crds: Vec::new(),
        policies: Vec::new(),
        bindings: Vec::new(),
        validation_rules: false,
    };
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "CustomResourceDefinition" => {
                bundle.validation_rules |= has_rules(&doc["spec"]);
                let crd: CustomResourceDefinition = serde_json::from_value(doc)
                    .context("a CustomResourceDefinition in the Gateway API bundle")?;
                if crd.spec.group != GROUP {
                    anyhow::bail!(
                        "the Gateway API bundle holds a CRD of group {}, not {GROUP}",
                        crd.spec.group
                    );
                }
                bundle.crds.push(crd);
            }
            "ValidatingAdmissionPolicy" => bundle.policies.push(
                serde_json::from_value(doc).context("a ValidatingAdmissionPolicy in the bundle")?,
            ),
            "ValidatingAdmissionPolicyBinding" => bundle.bindings.push(
                serde_json::from_value(doc)
                    .context("a ValidatingAdmissionPolicyBinding in the bundle")?,
            ),
            other => anyhow::bail!(
                "the Gateway API bundle holds a {other:?}: only CRDs and admission policies are applied from it"
            ),
        }
    }
    let versions: std::collections::BTreeSet<String> =
        bundle.crds.iter().filter_map(bundle_version).collect();
    bundle.version = match versions.len() {
        1 => versions.into_iter().next().unwrap_or_default(),
        0 => anyhow::bail!("the Gateway API bundle's CRDs name no {BUNDLE_VERSION_ANNOTATION}"),
        _ => anyhow::bail!(
            "the Gateway API bundle mixes releases: {}",
            versions.into_iter().collect::<Vec<_>>().join(", ")
        ),
    };
    let missing = missing(&bundle.crds);
    if !missing.is_empty() {
        anyhow::bail!(
            "the Gateway API bundle {} does not serve what devenv's Traefik reads: {}",
            bundle.version,
            missing.join(", ")
        );
    }
    Ok(bundle)
}

/// The release a CRD names.
pub fn bundle_version(crd: &CustomResourceDefinition) -> Option<String> {
    crd.metadata
        .annotations
        .as_ref()?
        .get(BUNDLE_VERSION_ANNOTATION)
        .cloned()
}

/// What of [`SERVED`] `crds` do not serve, as `plural/version`.
pub fn missing(crds: &[CustomResourceDefinition]) -> Vec<String> {
    SERVED
        .iter()
        .filter(|s| {
            !crds.iter().any(|c| {
                c.metadata.name.as_deref() == Some(crd_name(s.plural).as_str())
                    && c.spec
                        .versions
                        .iter()
                        .any(|v| v.name == s.version && v.served)
            })
        })
        .map(|s| format!("{}/{}", s.plural, s.version))
        .collect()
}

/// What `up` does about the Gateway API CRDs, given the ones the cluster has.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// None there, or devenv's own of an older release or incomplete: install the bundle.
    Install,
    /// devenv's own, of this release or a newer one: nothing to do.
    Keep { version: String },
    /// Another tool's, serving everything Traefik reads: used as they are.
    UseTheirs { version: String, manager: String },
    /// Another tool's, lacking what Traefik reads: a failure naming them and the way out.
    Refuse {
        version: String,
        manager: String,
        missing: Vec<String>,
    },
}

/// Decide from the Gateway API CRDs the cluster has (`live`, any of the group's) and the
/// release devenv would install. A CRD is devenv's when its `app.kubernetes.io/managed-by`
/// label says so; one that is not makes the whole set another tool's, and devenv then
/// changes none of them.
pub fn decide(live: &[CustomResourceDefinition], ours: &str) -> Decision {
    if live.is_empty() {
        return Decision::Install;
    }
    let manager_of = |c: &CustomResourceDefinition| {
        c.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::render::cluster::MANAGED_BY_LABEL))
            .cloned()
    };
    let foreign = live
        .iter()
        .find(|c| manager_of(c).as_deref() != Some("devenv"));
    let versions: Vec<String> = live.iter().filter_map(bundle_version).collect();
    let version = versions
        .iter()
        .max_by(|a, b| compare(a, b))
        .cloned()
        .unwrap_or_else(|| "of an unknown release".into());
    let missing = missing(live);
    match foreign {
        Some(c) => {
            let manager = manager_of(c).unwrap_or_else(|| "an unknown tool".into());
            if missing.is_empty() {
                Decision::UseTheirs { version, manager }
            } else {
                Decision::Refuse {
                    version,
                    manager,
                    missing,
                }
            }
        }
        None if missing.is_empty()
            && versions.len() == live.len()
            && versions
                .iter()
                .all(|v| compare(v, ours) != std::cmp::Ordering::Less) =>
        {
            Decision::Keep { version }
        }
        // devenv's own of a newer release with a kind gone: installing this release would
        // downgrade the rest.
        None if !missing.is_empty() && compare(&version, ours) == std::cmp::Ordering::Greater => {
            Decision::Refuse {
                version,
                manager: "devenv".into(),
                missing,
            }
        }
        None => Decision::Install,
    }
}

/// Compares two release names (`v1.5.1`, `v1.10.0`) by their numbers; a pre-release suffix
/// (`-rc.1`) sorts below its release.
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |v: &str| {
        let v = v.trim_start_matches('v');
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (v, None),
        };
        let numbers: Vec<u64> = core.split('.').map(|n| n.parse().unwrap_or(0)).collect();
        // `rc.10` after `rc.2`: the suffix's parts compare as numbers where they are numbers.
        let pre: Option<Vec<(u64, String)>> = pre.map(|p| {
            p.split('.')
                .map(|part| (part.parse().unwrap_or(0), part.to_string()))
                .collect()
        });
        (numbers, pre.is_none(), pre)
    };
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionNames, CustomResourceDefinitionSpec,
        CustomResourceDefinitionVersion,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A CRD of `plural` serving `versions`, of release `version`, managed by `manager`.
    pub(crate) fn crd(
        plural: &str,
        versions: &[&str],
        version: &str,
        manager: Option<&str>,
    ) -> CustomResourceDefinition {
        CustomResourceDefinition {
            metadata: ObjectMeta {
                name: Some(crd_name(plural)),
                annotations: Some(BTreeMap::from([(
                    BUNDLE_VERSION_ANNOTATION.to_string(),
                    version.to_string(),
                )])),
                labels: manager.map(|m| {
                    BTreeMap::from([(
                        crate::render::cluster::MANAGED_BY_LABEL.to_string(),
                        m.to_string(),
                    )])
                }),
                ..ObjectMeta::default()
            },
            spec: CustomResourceDefinitionSpec {
                group: GROUP.into(),
                names: CustomResourceDefinitionNames {
                    plural: plural.into(),
                    kind: plural.into(),
                    ..Default::default()
                },
                scope: "Namespaced".into(),
                versions: versions
                    .iter()
                    .map(|v| CustomResourceDefinitionVersion {
                        name: v.to_string(),
                        served: true,
                        storage: true,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
            status: None,
        }
    }

    fn full(version: &str, manager: Option<&str>) -> Vec<CustomResourceDefinition> {
        SERVED
            .iter()
            .map(|s| crd(s.plural, &[s.version], version, manager))
            .collect()
    }

    #[test]
    fn none_installs_and_devenvs_own_older_or_incomplete_set_is_upgraded() {
        assert_eq!(decide(&[], VERSION), Decision::Install);
        assert_eq!(
            decide(&full("v1.5.1", Some("devenv")), "v1.5.1"),
            Decision::Keep {
                version: "v1.5.1".into()
            }
        );
        assert_eq!(
            decide(&full("v1.5.0", Some("devenv")), "v1.5.1"),
            Decision::Install
        );
        // A newer release of devenv's own is not downgraded by an older devenv.
        assert_eq!(
            decide(&full("v1.10.0", Some("devenv")), "v1.5.1"),
            Decision::Keep {
                version: "v1.10.0".into()
            }
        );
        let mut some = full("v1.5.1", Some("devenv"));
        some.pop();
        assert_eq!(decide(&some, "v1.5.1"), Decision::Install);
        // Nor is a newer set of devenv's own with a kind gone (the rest would go back).
        let mut newer = full("v1.10.0", Some("devenv"));
        newer.pop();
        match decide(&newer, "v1.5.1") {
            Decision::Refuse {
                version, manager, ..
            } => assert_eq!((version.as_str(), manager.as_str()), ("v1.10.0", "devenv")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_tools_crds_are_used_when_they_serve_enough_and_refused_naming_what_lacks() {
        assert_eq!(
            decide(&full("v1.6.0", Some("Helm")), "v1.5.1"),
            Decision::UseTheirs {
                version: "v1.6.0".into(),
                manager: "Helm".into()
            }
        );
        // v1.3: TLSRoute only at v1alpha2, no BackendTLSPolicy v1.
        let old: Vec<_> = SERVED
            .iter()
            .filter(|s| s.plural != "backendtlspolicies")
            .map(|s| {
                let v = if s.plural == "tlsroutes" {
                    "v1alpha2"
                } else {
                    s.version
                };
                crd(s.plural, &[v], "v1.3.0", None)
            })
            .collect();
        assert_eq!(
            decide(&old, "v1.5.1"),
            Decision::Refuse {
                version: "v1.3.0".into(),
                manager: "an unknown tool".into(),
                missing: vec!["backendtlspolicies/v1".into(), "tlsroutes/v1".into()],
            }
        );
        // One foreign CRD among devenv's makes the set another tool's: nothing is changed.
        let mut mixed = full("v1.5.1", Some("devenv"));
        mixed[0] = crd("gatewayclasses", &["v1"], "v1.5.1", Some("argocd"));
        assert!(matches!(
            decide(&mixed, "v1.5.1"),
            Decision::UseTheirs { manager, .. } if manager == "argocd"
        ));
    }

    #[test]
    fn releases_compare_by_number() {
        use std::cmp::Ordering::*;
        assert_eq!(compare("v1.10.0", "v1.5.1"), Greater);
        assert_eq!(compare("v1.5.1", "v1.5.1"), Equal);
        assert_eq!(compare("v1.5.1-rc.1", "v1.5.1"), Less);
        assert_eq!(compare("v1.4.9", "v1.5.0"), Less);
        assert_eq!(compare("v1.5.0-rc.10", "v1.5.0-rc.2"), Greater);
    }

    /// Another tool's CRD of the group that devenv's Traefik does not read (ListenerSet, new in
    /// v1.5's standard channel) still makes the set another tool's: devenv installs nothing
    /// over it.
    #[test]
    fn another_tools_crd_of_the_group_outside_what_traefik_reads_stops_an_install() {
        let live = vec![crd(
            "listenersets",
            &["v1"],
            "v1.5.1",
            Some("deploy-platform"),
        )];
        match decide(&live, "v1.5.1") {
            Decision::Refuse {
                manager, missing, ..
            } => {
                assert_eq!(manager, "deploy-platform");
                assert_eq!(missing.len(), SERVED.len());
            }
            other => panic!("{other:?}"),
        }
    }

    fn bundle_text(version: &str) -> String {
        let mut out = String::from("# a comment document\n");
        for c in full(version, None) {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(&c).unwrap());
        }
        out
    }

    #[test]
    fn a_bundle_parses_to_its_crds_and_names_its_release() {
        let b = parse(bundle_text("v1.5.1").as_bytes()).unwrap();
        assert_eq!(b.version, "v1.5.1");
        assert_eq!(b.crds.len(), SERVED.len());
        let foreign = format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n",
            bundle_text("v1.5.1")
        );
        let e = parse(foreign.as_bytes()).unwrap_err();
        assert!(format!("{e:#}").contains("ConfigMap"), "{e:#}");
        let mut short = full("v1.5.1", None);
        short.retain(|c| !c.metadata.name.as_deref().unwrap().starts_with("grpc"));
        let text: String = short
            .iter()
            .map(|c| format!("---\n{}", serde_saphyr::to_string(c).unwrap()))
            .collect();
        let e = parse(text.as_bytes()).unwrap_err();
        assert!(format!("{e:#}").contains("grpcroutes/v1"), "{e:#}");
    }

    /// The release's CRDs carry CEL rules deep in their schemas; a server before 1.25 is told
    /// it is too old for them, and a bundle without rules (devenv's test bundle) is not.
    #[test]
    fn a_bundle_with_validation_rules_needs_1_25() {
        let plain = parse(bundle_text("v1.5.1").as_bytes()).unwrap();
        assert!(!plain.validation_rules);
        assert_eq!(too_old(&plain, 20), None);
        let ruled = bundle_text("v1.5.1").replacen(
            "served: true",
            "served: true\n  schema:\n    openAPIV3Schema:\n      type: object\n      properties:\n        spec:\n          type: object\n          x-kubernetes-validations:\n          - rule: self.a == self.b\n            message: no",
            1,
        );
        let ruled = parse(ruled.as_bytes()).unwrap();
        assert!(ruled.validation_rules);
        let why = too_old(&ruled, 20).expect("1.20 is too old");
        assert!(
            why.contains("1.25") && why.contains("1.20") && why.contains("v1.5.1"),
            "{why}"
        );
        assert!(too_old(&ruled, 24).is_some());
        assert_eq!(too_old(&ruled, 25), None);
        assert_eq!(too_old(&ruled, 37), None);
    }

    fn pin(sha: &str) -> Pin {
        Pin {
            version: "v1.5.1".into(),
            url: "http://127.0.0.1:9/standard-install.yaml".into(),
            sha256: sha.into(),
            overridden: false,
        }
    }

    #[test]
    fn a_file_is_checked_and_cached_and_a_wrong_one_is_exit_3_and_kept_out() {
        let dir = tempfile::tempdir().unwrap();
        let text = bundle_text("v1.5.1");
        let file = dir.path().join("bundle.yaml");
        std::fs::write(&file, &text).unwrap();
        let data = dir.path().join("data");
        let good = pin(&sha256(text.as_bytes()));
        match obtain(&good, Some(&file), &data).unwrap() {
            Obtained::Verified(bytes, Source::File(_)) => assert_eq!(bytes, text.as_bytes()),
            other => panic!("{other:?}"),
        }
        // Now cached: no file, no network (the URL is a closed port).
        assert!(matches!(
            obtain(&good, None, &data).unwrap(),
            Obtained::Verified(_, Source::Cache(_))
        ));

        let other = tempfile::tempdir().unwrap();
        let e = obtain(&pin(&"0".repeat(64)), Some(&file), other.path()).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 3);
        assert!(format!("{e:#}").contains("nothing was applied"), "{e:#}");
        assert!(!pin("x").cache_path(other.path()).exists());
        assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 0);

        let e = obtain(&good, Some(&dir.path().join("absent.yaml")), &data).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
    }

    #[test]
    fn offline_with_nothing_cached_is_unreachable_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        match obtain(&pin(SHA256), None, dir.path()).unwrap() {
            Obtained::Unreachable(m) => assert!(m.contains("127.0.0.1:9"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_pin_is_a_release_url_and_a_sha256() {
        let p = Pin::pinned();
        assert!(p.url.contains(&format!("/download/{}/{FILE}", p.version)));
        assert_eq!(SHA256.len(), 64);
        assert!(SHA256.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}

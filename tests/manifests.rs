//! The cluster's objects and files checked by their real consumers: every Kubernetes object
//! devenv renders or applies by `kubernetes-validate --strict` against the Kubernetes version
//! devenv's API types are built for, the CoreDNS zone by BIND's `named-checkzone`, and the
//! local CA's chain by `openssl verify` (with the certificate's names).
//!
//! Each test skips visibly when its tool is missing and fails under DEVENV_REQUIRE_DOCKER=1
//! (`.ci/run` installs them: `bind9-utils`, `openssl`, and `kubernetes-validate` from PyPI).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use devenv::config::{ClusterProvider, Config, DnsRecord, RecordKind};
use devenv::render::cluster;
use support::{devenv, run, tool};

/// The Kubernetes version the objects are validated against: the oldest devenv supports, the
/// one k8s-openapi is built for (feature `v1_34` in Cargo.toml).
const KUBERNETES_VERSION: &str = "1.34.0";

fn rendered(home: &Path) -> PathBuf {
    let out = home.join("out");
    let r = run(devenv(home).args(["render", "--out"]).arg(&out));
    assert_eq!(r.code, 0, "render failed\n{r}");
    out
}

fn validate(tool: &Path, files: &[PathBuf]) -> support::Run {
    run(Command::new(tool)
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .args(files))
}

/// A config that exercises more of the objects: records of every type, another domain.
fn busy_config() -> Config {
    let mut config = Config {
        name: "busy".into(),
        domain: "busy.test".into(),
        ..Config::default()
    };
    let record = |name: &str, kind, value: &str| DnsRecord {
        name: name.into(),
        kind,
        value: value.into(),
    };
    // An existing cluster's ingress: not pinned to a node, no host ports.
    config.cluster.provider = ClusterProvider::Existing;
    config.cluster.context = Some("shared".into());
    config.dns.records = vec![
        record("api", RecordKind::A, "127.0.0.9"),
        record("api", RecordKind::AAAA, "::1"),
        record("grafana", RecordKind::A, "10.1.2.3"),
        record("docs", RecordKind::CNAME, "example.org"),
        record(
            "note",
            RecordKind::TXT,
            &format!("say \"hi\" {}", "x".repeat(300)),
        ),
    ];
    config
}

#[test]
fn every_object_passes_kubernetes_validate_strict() {
    let Some(validator) = tool("kubernetes-validate") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let out = rendered(home.path());
    let manifests = out.join("kind/manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&manifests)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        // Gateway API kinds are not Kubernetes' own: checked against their CRDs' schemas below.
        .filter(|p| !p.ends_with("gateway.yaml"))
        .collect();
    files.sort();
    // The objects `devenv render` never writes: the CA ConfigMaps and the TLS Secret, made
    // from real TLS material, and the objects of a non-default config.
    let config = busy_config();
    let bundle = devenv::tls::ensure(&home.path().join("state"), &config).unwrap();
    let extra = home.path().join("applied.yaml");
    let mut objects = cluster::all(&config, &bundle);
    objects.retain(|o| !o.needs_gateway_api());
    objects.push(cluster::Object::ConfigMap(
        cluster::coredns::zone_config_map(&config),
    ));
    std::fs::write(&extra, cluster::to_documents(&objects).unwrap()).unwrap();
    files.push(extra.clone());

    let r = validate(&validator, &files);
    assert_eq!(r.code, 0, "kubernetes-validate rejects an object\n{r}");
    let documents: usize = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            1 + text.matches("\n---\n").count()
        })
        .sum();
    let passed = format!("{}{}", r.stdout, r.stderr)
        .matches(" passed for resource ")
        .count();
    assert_eq!(passed, documents, "every document is checked\n{r}");
    for kind in [
        "secret/devenv-tls",
        "configmap/devenv-ca",
        "deployment/traefik",
    ] {
        assert!(
            format!("{}{}", r.stdout, r.stderr).contains(kind),
            "{kind} not validated\n{r}"
        );
    }

    // Strict mode really rejects a field the API does not have.
    let ingress = std::fs::read_to_string(manifests.join("ingress.yaml")).unwrap();
    let broken = home.path().join("broken.yaml");
    std::fs::write(
        &broken,
        ingress.replacen("  replicas: 1\n", "  replicas: 1\n  replicaCount: 1\n", 1),
    )
    .unwrap();
    let r = validate(&validator, &[broken]);
    assert_ne!(r.code, 0, "an unknown field must be rejected\n{r}");
}

fn checkzone(tool: &Path, domain: &str, zone: &str, dir: &Path) -> support::Run {
    let file = dir.join(format!("{domain}.db"));
    std::fs::write(&file, zone).unwrap();
    // -k fail: names that are not host names fail; -D: print the zone as BIND reads it.
    run(Command::new(tool)
        .args(["-k", "fail", "-D", domain])
        .arg(&file))
}

#[test]
fn named_checkzone_accepts_the_zone_and_reads_what_devenv_means() {
    let Some(checkzone_bin) = tool("named-checkzone") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let r = checkzone(
        &checkzone_bin,
        "macula.local",
        &cluster::coredns::zone(&Config::default()),
        dir.path(),
    );
    assert_eq!(r.code, 0, "named-checkzone rejects the default zone\n{r}");
    for line in [
        "*.macula.local.\t5\tIN CNAME\ttraefik.devenv.svc.cluster.local.",
        "grafana.macula.local.\t5\tIN CNAME\tmacula-gateway.",
        "registry.macula.local.\t5\tIN CNAME\tmacula-gateway.",
    ] {
        let normal = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            r.stdout.lines().any(|l| normal(l) == normal(line)),
            "{line} missing\n{r}"
        );
    }

    let r = checkzone(
        &checkzone_bin,
        "busy.test",
        &cluster::coredns::zone(&busy_config()),
        dir.path(),
    );
    assert_eq!(
        r.code, 0,
        "named-checkzone rejects the zone with records\n{r}"
    );
    let normal: Vec<String> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for line in [
        "api.busy.test. 5 IN A 127.0.0.9",
        "api.busy.test. 5 IN AAAA ::1",
        "grafana.busy.test. 5 IN A 10.1.2.3",
        "docs.busy.test. 5 IN CNAME example.org.",
        "prometheus.busy.test. 5 IN CNAME busy-gateway.",
    ] {
        assert!(normal.iter().any(|l| l == line), "{line} missing\n{r}");
    }
    assert!(
        normal
            .iter()
            .any(|l| l.starts_with("note.busy.test. 5 IN TXT \"say \\\"hi\\\" xxx")),
        "{r}"
    );
}

#[test]
fn openssl_verifies_the_wildcard_chain_and_its_names() {
    let Some(openssl) = tool("openssl") else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let bundle = devenv::tls::ensure(state.path(), &Config::default()).unwrap();
    let ca = bundle.dir.join(devenv::tls::CA_CERT);
    let cert = bundle.dir.join(devenv::tls::CERT);
    let verify = |host: &str| {
        run(Command::new(&openssl)
            .args([
                "verify",
                "-purpose",
                "sslserver",
                "-verify_hostname",
                host,
                "-CAfile",
            ])
            .arg(&ca)
            .arg(&cert))
    };
    for host in ["app.macula.local", "macula.local"] {
        let r = verify(host);
        assert_eq!(
            r.code, 0,
            "openssl does not accept the chain for {host}\n{r}"
        );
        assert!(r.stdout.contains(": OK"), "{r}");
    }
    // A wildcard covers one label only, and nothing outside the domain.
    for host in ["a.b.macula.local", "example.org"] {
        let r = verify(host);
        assert_ne!(r.code, 0, "{host} must not verify\n{r}");
    }
    // The key on disk is the certificate's.
    let public = |args: &[&str], file: &Path| {
        let r = run(Command::new(&openssl).args(args).arg(file));
        assert_eq!(r.code, 0, "{r}");
        r.stdout
    };
    assert_eq!(
        public(
            &["pkey", "-pubout", "-in"],
            &bundle.dir.join(devenv::tls::KEY)
        ),
        public(&["x509", "-noout", "-pubkey", "-in"], &cert)
    );
}

/// The GatewayClass and Gateway as `devenv render` writes them (and devenv applies them),
/// checked strictly against the v1.5.1 standard-channel schemas (as the `gateway-api` crate's
/// kopium types carry them; see tests/support/gateway_api.rs): no field the schema lacks, every
/// type, required field and enum. A field the schema does not have is caught.
#[test]
fn gateway_objects_fit_the_pinned_releases_schemas_strictly() {
    let home = tempfile::tempdir().unwrap();
    let out = rendered(home.path());
    let text = std::fs::read_to_string(out.join("kind/manifests/gateway.yaml")).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let crds = support::gateway_api::crds(support::gateway_api::VERSION);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["GatewayClass", "Gateway"]);
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap();
        assert_eq!(doc["apiVersion"], "gateway.networking.k8s.io/v1");
        let schema = support::gateway_api::schema(&crds, kind, "v1");
        let problems = support::gateway_api::violations(schema, doc);
        assert!(problems.is_empty(), "{kind}: {problems:#?}");
    }
    // The check is strict: a misspelt field, a wrong enum and a missing required field fail.
    let mut broken = docs[1].clone();
    broken["spec"]["listeners"][0]["hostName"] = serde_json::json!("app.macula.local");
    broken["spec"]["listeners"][1]["tls"]["mode"] = serde_json::json!("Terminated");
    broken["spec"]["listeners"][0]
        .as_object_mut()
        .unwrap()
        .remove("protocol");
    let schema = support::gateway_api::schema(&crds, "Gateway", "v1");
    let problems = support::gateway_api::violations(schema, &broken).join("\n");
    assert!(
        problems.contains(".spec.listeners[0].hostName: not a field"),
        "{problems}"
    );
    assert!(
        problems.contains("\"Terminated\" is not one of"),
        "{problems}"
    );
    assert!(problems.contains("required field protocol"), "{problems}");
}

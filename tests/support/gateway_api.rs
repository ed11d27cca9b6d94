//! A Gateway API CRD bundle for tests, since the release's own `standard-install.yaml` cannot
//! be downloaded here (no GitHub) and is not copied into the repository.
//!
//! The CRDs are generated at test time from the `gateway-api` crate: Rust types that kopium
//! generated from the v1.5.1 standard-channel CRDs, whose `crd()` gives each kind's schema as
//! those types capture it (fields, types, required fields, enums; not the CEL rules, patterns
//! or length limits of the real ones). Each is annotated as the release's are
//! (`gateway.networking.k8s.io/bundle-version: v1.5.1`, channel `standard`, and the
//! `api-approved.kubernetes.io` the API server demands of a `*.k8s.io` group); ReferenceGrant
//! also serves `v1beta1`, its storage version in the release, which Traefik lists.
//!
//! devenv is pointed at the file with `--gateway-crds` and told its checksum through
//! `DEVENV_GATEWAY_CRDS_SHA256` (the seam for a bundle of one's own).

use std::path::{Path, PathBuf};

use gateway_api::apis::standard::{
    backendtlspolicies, gatewayclasses, gateways, grpcroutes, httproutes, referencegrants,
    tlsroutes,
};
use kube_gateway::CustomResourceExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The release the bundle claims.
pub const VERSION: &str = "v1.5.1";

/// The seven CRDs devenv's Traefik reads, as JSON values, annotated with `version`.
pub fn crds(version: &str) -> Vec<Value> {
    let crds = [
        gatewayclasses::GatewayClass::crd(),
        gateways::Gateway::crd(),
        httproutes::HttpRoute::crd(),
        grpcroutes::GrpcRoute::crd(),
        referencegrants::ReferenceGrant::crd(),
        backendtlspolicies::BackendTlsPolicy::crd(),
        tlsroutes::TlsRoute::crd(),
    ];
    crds.iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).expect("a CRD serializes");
            drop_null_enums(&mut v);
            // The API server refuses CRDs of a *.k8s.io group without an approval annotation
            // (KEP-1111); the release's carry the pull request that approved them.
            v["metadata"]["annotations"] = json!({
                "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/4530",
                "gateway.networking.k8s.io/bundle-version": version,
                "gateway.networking.k8s.io/channel": "standard",
            });
            if v["spec"]["names"]["kind"] == "ReferenceGrant" {
                let mut beta = v["spec"]["versions"][0].clone();
                beta["name"] = json!("v1beta1");
                v["spec"]["versions"][0]["storage"] = json!(false);
                v["spec"]["versions"].as_array_mut().unwrap().push(beta);
            }
            v
        })
        .collect()
}

/// kopium writes an optional enum's schema with `null` among its values (`nullable` says it
/// already); the release's CRDs have none, and API servers refuse it (v1.20 with a misleading
/// "per-version schemas may not all be set to identical values", kubectl as "unknown object
/// type nil"). Removed everywhere.
fn drop_null_enums(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(options)) = map.get_mut("enum") {
                options.retain(|o| !o.is_null());
            }
            for (_, child) in map.iter_mut() {
                drop_null_enums(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_enums),
        _ => {}
    }
}

/// The schema (`openAPIV3Schema`) of `kind` at `version` in `crds`.
pub fn schema<'a>(crds: &'a [Value], kind: &str, version: &str) -> &'a Value {
    let crd = crds
        .iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD of kind {kind}"));
    let v = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{kind} serves no {version}"));
    &v["schema"]["openAPIV3Schema"]
}

/// `docs` as one multi-document YAML file (JSON documents, which are YAML).
pub fn bundle_text(docs: &[Value]) -> String {
    let mut out = String::from("# devenv's test bundle of Gateway API CRDs\n");
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string(d).unwrap());
        out.push('\n');
    }
    out
}

/// A bundle file of `docs` in `dir`, and its SHA-256.
pub fn write_bundle(dir: &Path, name: &str, docs: &[Value]) -> (PathBuf, String) {
    let text = bundle_text(docs);
    let path = dir.join(name);
    std::fs::write(&path, &text).unwrap();
    (path, hex::encode(Sha256::digest(text.as_bytes())))
}

/// Every way `value` breaks `schema`, strictly: a field the schema does not name (where it
/// neither preserves unknown fields nor gives `additionalProperties`), a wrong type, a
/// missing required field, a value outside an `enum`. Paths are JSON paths (`.spec.listeners[0]`).
pub fn violations(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(schema, value, String::new(), &mut out);
    out
}

fn walk(schema: &Value, value: &Value, at: String, out: &mut Vec<String>) {
    if value.is_null() {
        if schema["nullable"] != json!(true) {
            out.push(format!("{at}: null where the schema allows none"));
        }
        return;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {options:?}"));
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == json!(true);
    let ok = match schema["type"].as_str() {
        _ if int_or_string => value.is_i64() || value.is_string(),
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !ok {
        out.push(format!("{at}: {value} is not of type {}", schema["type"]));
        return;
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            walk(&schema["items"], item, format!("{at}[{i}]"), out);
        }
    }
    let Some(fields) = value.as_object() else {
        return;
    };
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        if !fields.contains_key(name) {
            out.push(format!("{at}: the required field {name} is missing"));
        }
    }
    let properties = schema["properties"].as_object();
    for (name, field) in fields {
        let path = format!("{at}.{name}");
        match properties.and_then(|p| p.get(name)) {
            Some(s) => walk(s, field, path, out),
            None if schema["additionalProperties"].is_object() => {
                walk(&schema["additionalProperties"], field, path, out)
            }
            None if schema["x-kubernetes-preserve-unknown-fields"] == json!(true)
                || schema["additionalProperties"] == json!(true) => {}
            // The type fields and ObjectMeta are the API server's to check, not the CRD's
            // (kube's derived schemas leave them out).
            None if at.is_empty()
                && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") => {}
            None => out.push(format!("{path}: not a field of the schema")),
        }
    }
}

/// The variables that make devenv install the test bundle (written into `dir`): the file, as
/// `--gateway-crds`, and its checksum.
pub fn vars(dir: &Path) -> Vec<(String, std::ffi::OsString)> {
    let (path, sha) = write_bundle(dir, "gateway-api-test-bundle.yaml", &crds(VERSION));
    vec![
        ("DEVENV_GATEWAY_CRDS".into(), path.into()),
        ("DEVENV_GATEWAY_CRDS_SHA256".into(), sha.into()),
    ]
}

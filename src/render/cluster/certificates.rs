//! The cluster objects made from devenv's TLS material: the CA certificate as ConfigMap
//! `devenv-ca` (key `ca.crt`) in `kube-public` and in devenv's namespace, for pods that want to
//! trust it, and the ingress's default certificate as the Secret `devenv-tls`
//! (`kubernetes.io/tls`).
//!
//! These are never written by `devenv render` (the key is a secret and the certificates are
//! per machine); the rendered manifests say how to create them by hand
//! ([`by_hand_instructions`]). Not for: making the CA or the certificate (`crate::tls`).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::{BY_HAND_FIELD_MANAGER, NAMESPACE, Object, PUBLIC_NAMESPACE, meta, traefik};
use crate::config::Config;
use crate::tls::Bundle;

/// The ConfigMap holding the CA certificate.
pub const CA_CONFIG_MAP: &str = "devenv-ca";
/// Its key.
pub const CA_KEY: &str = "ca.crt";
/// The Secret type of a certificate and its key.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// The CA certificate as a ConfigMap in `namespace`.
pub fn ca_config_map(config: &Config, namespace: &str, bundle: &Bundle) -> ConfigMap {
    ConfigMap {
        metadata: meta(config, CA_CONFIG_MAP, Some(namespace)),
        data: Some(BTreeMap::from([(
            CA_KEY.to_string(),
            bundle.ca_cert_pem.clone(),
        )])),
        ..ConfigMap::default()
    }
}

/// The wildcard certificate and its key, as the ingress's TLS Secret.
pub fn tls_secret(config: &Config, bundle: &Bundle) -> Secret {
    Secret {
        metadata: meta(config, traefik::TLS_SECRET, Some(NAMESPACE)),
        type_: Some(TLS_SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".to_string(),
                ByteString(bundle.cert_pem.clone().into_bytes()),
            ),
            (
                "tls.key".to_string(),
                ByteString(bundle.key_pem().as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

/// The CA ConfigMaps and the TLS Secret, in apply order.
pub fn objects(config: &Config, bundle: &Bundle) -> Vec<Object> {
    vec![
        Object::ConfigMap(ca_config_map(config, PUBLIC_NAMESPACE, bundle)),
        Object::ConfigMap(ca_config_map(config, NAMESPACE, bundle)),
        Object::Secret(tls_secret(config, bundle)),
    ]
}

/// The comment at the head of `kind/manifests/ingress.yaml`: the objects it does not hold,
/// and how to create them by hand.
pub(crate) fn by_hand_instructions(config: &Config) -> String {
    let name = &config.name;
    // `$HOME`, quoted: a `~` is not expanded after `--from-file=<key>=`.
    let dir = format!("$HOME/.local/state/devenv/{name}/{}", crate::tls::DIR);
    let file = |f: &str| {
        format!(
            "\"$HOME/.local/state/devenv/{name}/{}/{f}\"",
            crate::tls::DIR
        )
    };
    format!(
        "#\n\
         # The cluster's ingress (Traefik). Apply with\n\
         #   kubectl apply --server-side --field-manager {BY_HAND_FIELD_MANAGER} -f kind/manifests/ingress.yaml\n\
         # The pod mounts the Secret {NAMESPACE}/{tls} (the certificate for *.{domain} and\n\
         # {domain}), which is not in this file: `devenv up` creates it, with the CA as ConfigMap\n\
         # {CA_CONFIG_MAP} in {PUBLIC_NAMESPACE} and {NAMESPACE}, from {dir}/ (or\n\
         # $DEVENV_STATE_DIR/{tlsdir}/). By hand:\n\
         #   kubectl -n {NAMESPACE} create secret tls {tls} --cert {crt} --key {key}\n\
         #   kubectl -n {PUBLIC_NAMESPACE} create configmap {CA_CONFIG_MAP} --from-file={CA_KEY}={ca}\n\
         #   kubectl -n {NAMESPACE} create configmap {CA_CONFIG_MAP} --from-file={CA_KEY}={ca}\n",
        crt = file("tls.crt"),
        key = file("tls.key"),
        ca = file("ca.crt"),
        tls = traefik::TLS_SECRET,
        domain = config.domain,
        tlsdir = crate::tls::DIR,
    )
}

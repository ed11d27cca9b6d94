//! The cluster's ingress: Traefik v3 from objects devenv builds itself — namespace, service
//! account, RBAC for exactly what its two Ingress providers read, the IngressClasses `traefik`
//! (the default) and `nginx` (served by Traefik's ingress-nginx provider, so Ingresses written
//! for ingress-nginx keep working), its static and dynamic configuration in a ConfigMap, a
//! Deployment on the `ingress-ready=true` node with host ports 80/443 and 4433/udp, and a
//! ClusterIP Service that in-cluster names point at.
//!
//! Traefik's configuration is modelled by the typed structs below and serialized to YAML;
//! the HTTP behaviour matches the host gateway's NGINX: no body limit, no read/write timeouts
//! (WebSockets, streams, large uploads), the same security headers ([`SECURITY_HEADERS`]).
//! Not for: applying the objects or waiting for the pod (that is the cluster driver), or the
//! certificate itself (`crate::tls`; its Secret is built in [`super::certificates`]).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    ExecAction, KeyToPath, Namespace, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{IngressClass, IngressClassSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{NAMESPACE, Object, labels, meta};
use crate::config::{ClusterProvider, Config};
use crate::render::SECURITY_HEADERS;

/// The pinned Traefik image: the newest v3 patch release two public sources confirm, by the
/// digest of its multi-arch index (the official image is Alpine-based, so busybox `wget` and
/// `nslookup` are there for probes and debugging). v3.7.14 is the default of traefik-helm-chart
/// v41.7.1 (2026-10-09), and four unrelated projects pin this tag at this digest. A node finds a
/// copy `kind load` gave it by this digest only when the host's Docker keeps images in its
/// containerd store (Docker 29's default); otherwise the node pulls it.
pub const IMAGE: &str =
    "traefik:v3.7.14@sha256:575fa15b135078fe5e50aa847987d96dbddd7b093c172429618404df73f3fa7c";
/// Name of the Deployment, Service and ServiceAccount.
pub const NAME: &str = "traefik";
/// Name of the ClusterRole and ClusterRoleBinding.
pub const CLUSTER_ROLE: &str = "devenv-traefik";
/// The ConfigMap holding Traefik's static and dynamic configuration.
pub const CONFIG_MAP: &str = "traefik-config";
/// The Secret (kubernetes.io/tls) holding the default certificate.
pub const TLS_SECRET: &str = "devenv-tls";
/// The controller value of IngressClasses served by Traefik's Kubernetes Ingress provider.
pub const TRAEFIK_CONTROLLER: &str = "traefik.io/ingress-controller";
/// The controller value of ingress-nginx's classes, served by Traefik's ingress-nginx provider.
pub const NGINX_CONTROLLER: &str = "k8s.io/ingress-nginx";
/// The default IngressClass.
pub const TRAEFIK_CLASS: &str = "traefik";
/// The IngressClass of Ingresses written for ingress-nginx.
pub const NGINX_CLASS: &str = "nginx";
/// The annotation that makes an IngressClass the default for Ingresses without one.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The node label KinD's config puts on the node that maps the ingress ports.
pub const INGRESS_NODE_LABEL: (&str, &str) = ("ingress-ready", "true");
/// Pod template annotation holding the digest of Traefik's configuration, so a change of the
/// ConfigMap rolls the pod (Traefik reads its static configuration only at start).
pub const CONFIG_DIGEST_ANNOTATION: &str = "dev.devenv/traefik-config-sha256";
/// Pod template annotation holding the digest of the default certificate (set when the
/// objects are built with the TLS material, see `cluster::all`): a renewed certificate
/// replaces the pod, since Traefik reads certificate files only when it loads its config.
pub const CERT_DIGEST_ANNOTATION: &str = "dev.devenv/tls-cert-sha256";
/// The user Traefik runs as: an unprivileged uid/gid of devenv's choice (the official image
/// declares no user, so without this it would run as root). 65532 is the conventional
/// "nonroot" of distroless images; nothing in the image depends on it.
const RUN_AS: i64 = 65532;

/// The directory the static configuration is mounted in, holding only it (a directory mount,
/// not a `subPath`, which would never see an update).
pub const STATIC_DIR: &str = "/etc/traefik/static";
/// The key of the static configuration in [`CONFIG_MAP`].
pub const STATIC_KEY: &str = "traefik.yaml";
/// The directory the dynamic configuration is mounted in (the ConfigMap volume).
pub const DYNAMIC_DIR: &str = "/etc/traefik/dynamic";
/// The file the file provider reads. Not the directory: a ConfigMap volume holds the file
/// twice, as `dynamic.yaml` (a symlink) and inside the timestamped directory `..data` points
/// at, and Traefik's `directory` mode descends into subdirectories, so it read every router
/// and middleware twice ("already configured, skipping").
pub const DYNAMIC_FILE: &str = "/etc/traefik/dynamic/dynamic.yaml";
/// The key of the dynamic configuration in [`CONFIG_MAP`].
pub const DYNAMIC_KEY: &str = "dynamic.yaml";
/// Where the TLS Secret is mounted.
pub const TLS_DIR: &str = "/etc/traefik/tls";
/// The file-provider name of the security-headers middleware.
pub const HEADERS_MIDDLEWARE: &str = "security-headers";

/// An entry point: its name in Traefik's config, the port Traefik listens on inside the pod
/// (unprivileged, as it runs as non-root), and the host port on the node.
#[derive(Debug, Clone, Copy)]
pub struct EntryPointPort {
    pub name: &'static str,
    pub container_port: u16,
    pub host_port: u16,
    /// The Service port in-cluster clients use.
    pub service_port: u16,
}

/// Plain HTTP: node port 80 (KinD maps it to the host's 8080 and 127.0.0.2:80).
pub const WEB: EntryPointPort = EntryPointPort {
    name: "web",
    container_port: 8000,
    host_port: 80,
    service_port: 80,
};
/// HTTPS (TCP) and HTTP/3 (UDP on the same container port): node port 443.
pub const WEBSECURE: EntryPointPort = EntryPointPort {
    name: "websecure",
    container_port: 8443,
    host_port: 443,
    service_port: 443,
};
/// QUIC's node port: KinD maps the host's UDP 4433 to the node's 4433, which leads to
/// websecure's UDP listener.
pub const QUIC_NODE_PORT: u16 = 4433;
/// The probe-only entry point, bound to the pod's loopback: `/ping` is not reachable from
/// outside the pod, and no API or dashboard is enabled at all.
pub const PING: (&str, &str) = ("ping", "127.0.0.1:8082");

// ---- Traefik's static configuration ------------------------------------------------------

/// Traefik's static configuration (`traefik.yaml`), the parts devenv sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StaticConfig {
    pub global: Global,
    pub log: Log,
    pub entry_points: BTreeMap<String, EntryPoint>,
    pub ping: Ping,
    pub providers: Providers,
}

/// `global`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Global {
    pub check_new_version: bool,
    pub send_anonymous_usage: bool,
}

/// `log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Log {
    pub level: String,
}

/// `entryPoints.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntryPoint {
    pub address: String,
    /// Routers that name no entry point (every Ingress) attach to the default ones only, so
    /// nothing but `/ping` is served on the probe entry point.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub as_default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<EntryPointHttp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http3: Option<Http3>,
}

/// `entryPoints.<name>.transport`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Transport {
    pub responding_timeouts: RespondingTimeouts,
}

/// `entryPoints.<name>.transport.respondingTimeouts`: Go durations; `0s` is no timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RespondingTimeouts {
    pub read_timeout: String,
    pub write_timeout: String,
    pub idle_timeout: String,
}

/// `entryPoints.<name>.http`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntryPointHttp {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub middlewares: Vec<String>,
    /// Present (even empty): every router on this entry point terminates TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EntryPointTls>,
}

/// `entryPoints.<name>.http.tls` (defaults: the default TLS store's certificate).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntryPointTls {}

/// `entryPoints.<name>.http3`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Http3 {
    /// The UDP port Traefik names in its `Alt-Svc: h3=":<port>"` answers.
    ///
    /// One entry point serves every HTTPS URL of the cluster — `https://<app>.<domain>` on
    /// 127.0.0.2:443 (split-ip) and `https://<app>.<domain>:8443` on 127.0.0.1 — and names one
    /// port for all of them; an `Alt-Svc` port has no address, so the client uses it on the
    /// address it is already talking to. The port is therefore the design card's
    /// `cluster.quic_port` (4433), and KinD publishes it on both addresses (`render::kind`):
    /// 127.0.0.1:4433/udp and, in split-ip mode, 127.0.0.2:4433/udp, so the advertised port
    /// works whichever URL the user opened. Advertising 443 instead would send the :8443 URL's
    /// clients to 127.0.0.1:443/udp, which the cluster cannot hold (127.0.0.1:443 is the host
    /// gateway's, and a privileged port). 127.0.0.2:443/udp is
    /// published as well, for clients that try HTTP/3 on the URL's own port without waiting
    /// for `Alt-Svc` (`curl --http3-only https://app.macula.local`).
    pub advertised_port: u16,
}

/// `ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ping {
    pub entry_point: String,
}

/// `providers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Providers {
    pub kubernetes_ingress: KubernetesIngress,
    #[serde(rename = "kubernetesIngressNGINX")]
    pub kubernetes_ingress_nginx: KubernetesIngressNginx,
    /// On with `cluster.gateway_api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_gateway: Option<KubernetesGateway>,
    pub file: FileProvider,
}

/// `providers.kubernetesGateway`: standard channel only (`experimentalChannel` off: TCPRoute
/// is the one kind it adds, and the pinned CRDs do not carry it). With the CRDs missing the
/// provider waits for its informers to sync and serves nothing; once they are installed it
/// syncs by itself (client-go's reflectors retry their lists), so no restart is needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesGateway {
    /// What it writes into its Gateways' `status.addresses`.
    pub status_address: IngressEndpoint,
    /// The GatewayClasses it serves, by label (Traefik's `client.go` applies it to its
    /// GatewayClass informer only): devenv's, of this environment, so that a GatewayClass of
    /// another Traefik on the same cluster, which names the same controller, is not taken.
    pub label_selector: String,
}

/// `providers.kubernetesIngress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesIngress {
    /// The IngressClass name it serves (with controller [`TRAEFIK_CONTROLLER`]).
    pub ingress_class: String,
    /// What it writes into its Ingresses' `status.loadBalancer`.
    pub ingress_endpoint: IngressEndpoint,
}

/// `providers.kubernetesIngress.ingressEndpoint`: one address or one name. (Its third form,
/// `publishedService`, copies a ClusterIP Service's `externalIPs` only, and devenv's has none.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// `providers.kubernetesIngressNGINX` (stable since Traefik 3.6: no `experimental` flag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesIngressNginx {
    pub ingress_class: String,
    pub controller_class: String,
    /// Serve Ingresses without a class too (off: those go to the default class, `traefik`).
    pub watch_ingress_without_class: bool,
    /// Seconds between two reads from a backend before the connection is cut (the provider's
    /// default, like ingress-nginx's, is 60); an Ingress's `proxy-read-timeout` still wins.
    pub proxy_read_timeout: u32,
    /// Seconds between two writes to a backend before the connection is cut (default 60).
    pub proxy_send_timeout: u32,
    /// Largest request body in bytes when an Ingress turns request buffering on; 0 is no limit
    /// (the provider's default is 1 MiB).
    pub proxy_body_size: u64,
    /// The entry point of its plain-HTTP routers (by default: every entry point without TLS,
    /// the ping entry point too).
    pub http_entry_point: String,
    /// The entry point of its HTTPS routers (by default: every default entry point).
    pub https_entry_point: String,
    /// What it writes into its Ingresses' `status.loadBalancer` (each an IP, else a
    /// hostname); it wins over `publishService`.
    pub publish_status_address: Vec<String>,
}

/// The backend timeouts of Ingresses of class `nginx`, in seconds: the host gateway's
/// `proxy_read_timeout`/`proxy_send_timeout`, so streams and WebSockets behave the same.
pub const NGINX_PROXY_TIMEOUT_SECONDS: u32 = 3600;

/// `providers.file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileProvider {
    pub filename: String,
    pub watch: bool,
}

// ---- Traefik's dynamic configuration (file provider) -------------------------------------

/// The file provider's dynamic configuration (`dynamic.yaml`): the security-headers middleware
/// and the default certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DynamicConfig {
    pub http: DynamicHttp,
    pub tls: DynamicTls,
}

/// `http`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DynamicHttp {
    pub middlewares: BTreeMap<String, Middleware>,
}

/// `http.middlewares.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Middleware {
    pub headers: Headers,
}

/// The headers middleware, with the response headers set as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Headers {
    pub custom_response_headers: BTreeMap<String, String>,
}

/// `tls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DynamicTls {
    pub stores: BTreeMap<String, TlsStore>,
    pub options: BTreeMap<String, TlsOptions>,
}

/// `tls.stores.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsStore {
    pub default_certificate: CertificateFiles,
}

/// A certificate and its key, as files in the pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateFiles {
    pub cert_file: String,
    pub key_file: String,
}

/// `tls.options.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsOptions {
    pub min_version: String,
}

/// Traefik's static configuration for `config`.
pub fn static_config(config: &Config) -> StaticConfig {
    // No read or write deadline: uploads of any size and long-lived responses (WebSockets,
    // server-sent events, log tails) must not be cut, as on the host gateway. Idle keep-alive
    // connections still close.
    let transport = || Transport {
        responding_timeouts: RespondingTimeouts {
            read_timeout: "0s".into(),
            write_timeout: "0s".into(),
            idle_timeout: "180s".into(),
        },
    };
    let middlewares = vec![format!("{HEADERS_MIDDLEWARE}@file")];
    let entry_points = BTreeMap::from([
        (
            WEB.name.to_string(),
            EntryPoint {
                address: format!(":{}", WEB.container_port),
                as_default: true,
                transport: Some(transport()),
                http: Some(EntryPointHttp {
                    middlewares: middlewares.clone(),
                    tls: None,
                }),
                http3: None,
            },
        ),
        (
            WEBSECURE.name.to_string(),
            EntryPoint {
                address: format!(":{}", WEBSECURE.container_port),
                as_default: true,
                transport: Some(transport()),
                http: Some(EntryPointHttp {
                    middlewares,
                    tls: Some(EntryPointTls::default()),
                }),
                http3: Some(Http3 {
                    advertised_port: config.cluster.quic_port,
                }),
            },
        ),
        (
            PING.0.to_string(),
            EntryPoint {
                address: PING.1.to_string(),
                as_default: false,
                transport: None,
                http: None,
                http3: None,
            },
        ),
    ]);
    StaticConfig {
        global: Global {
            check_new_version: false,
            send_anonymous_usage: false,
        },
        log: Log {
            level: "INFO".into(),
        },
        entry_points,
        ping: Ping {
            entry_point: PING.0.to_string(),
        },
        providers: Providers {
            kubernetes_ingress: KubernetesIngress {
                ingress_class: TRAEFIK_CLASS.into(),
                ingress_endpoint: endpoint(config),
            },
            kubernetes_ingress_nginx: KubernetesIngressNginx {
                ingress_class: NGINX_CLASS.into(),
                controller_class: NGINX_CONTROLLER.into(),
                watch_ingress_without_class: false,
                proxy_read_timeout: NGINX_PROXY_TIMEOUT_SECONDS,
                proxy_send_timeout: NGINX_PROXY_TIMEOUT_SECONDS,
                proxy_body_size: 0,
                http_entry_point: WEB.name.into(),
                https_entry_point: WEBSECURE.name.into(),
                publish_status_address: vec![match published_address(config) {
                    Published::Ip(a) | Published::Hostname(a) => a,
                }],
            },
            kubernetes_gateway: config.cluster.gateway_api.then(|| KubernetesGateway {
                status_address: endpoint(config),
                label_selector: super::labels(config)
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            }),
            file: FileProvider {
                filename: DYNAMIC_FILE.into(),
                // Not watched: a change replaces the pod (CONFIG_DIGEST_ANNOTATION). Traefik's
                // watch of a single file filters events by the file's name, and a ConfigMap
                // update swaps the `..data` symlink, so it would see the first update at most.
                watch: false,
            },
        },
    }
}

/// The address both providers publish in their Ingresses' `status.loadBalancer`, for the tools
/// that wait for one (Argo CD's health, `kubectl wait --for=jsonpath=...`).
enum Published {
    Ip(String),
    Hostname(String),
}

/// Where the applications are reached: on a kind cluster, the host's address for them
/// (127.0.0.2 in split-ip mode, else the one the ingress ports are published on); on an existing
/// cluster, whose ingress holds no host ports, the ingress Service's name in the cluster.
fn published_address(config: &Config) -> Published {
    match config.cluster.provider {
        ClusterProvider::Kind | ClusterProvider::None => {
            Published::Ip(config.applications_address().to_string())
        }
        ClusterProvider::Existing => {
            Published::Hostname(format!("{NAME}.{}.svc.cluster.local", super::NAMESPACE))
        }
    }
}

/// [`published_address`] as the providers' `ingressEndpoint`/`statusAddress`.
fn endpoint(config: &Config) -> IngressEndpoint {
    match published_address(config) {
        Published::Ip(ip) => IngressEndpoint {
            ip: Some(ip),
            hostname: None,
        },
        Published::Hostname(name) => IngressEndpoint {
            ip: None,
            hostname: Some(name),
        },
    }
}

/// Traefik's dynamic configuration: the security headers and the default certificate.
pub fn dynamic_config() -> DynamicConfig {
    let headers = SECURITY_HEADERS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    DynamicConfig {
        http: DynamicHttp {
            middlewares: BTreeMap::from([(
                HEADERS_MIDDLEWARE.to_string(),
                Middleware {
                    headers: Headers {
                        custom_response_headers: headers,
                    },
                },
            )]),
        },
        tls: DynamicTls {
            stores: BTreeMap::from([(
                "default".to_string(),
                TlsStore {
                    default_certificate: CertificateFiles {
                        cert_file: format!("{TLS_DIR}/tls.crt"),
                        key_file: format!("{TLS_DIR}/tls.key"),
                    },
                },
            )]),
            options: BTreeMap::from([(
                "default".to_string(),
                TlsOptions {
                    min_version: "VersionTLS12".into(),
                },
            )]),
        },
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The RBAC rules of the providers, no more: the Kubernetes Ingress provider reads Services,
/// Secrets (TLS sections), EndpointSlices, Ingresses and IngressClasses and, for its
/// cluster-scope lookups, Nodes; the ingress-nginx provider also reads ConfigMaps (annotations
/// that point at them). Both write Ingress status. With `cluster.gateway_api`, the Gateway
/// provider's informers list and watch Namespaces and the seven standard kinds it serves, and
/// it updates the status of six of them (not ReferenceGrants, which have none); it reads the
/// current object from its informers' caches, so no `get` (Traefik's
/// `pkg/provider/kubernetes/gateway/client.go`). No pods (no OpenTelemetry attributes).
pub fn cluster_role_rules(config: &Config) -> Vec<PolicyRule> {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    };
    let mut rules = vec![
        rule(&[""], &["services", "secrets"], &["get", "list", "watch"]),
        rule(&[""], &["nodes"], &["get", "list", "watch"]),
        rule(&[""], &["configmaps"], &["list", "watch"]),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["list", "watch"],
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingressclasses"],
            &["get", "list", "watch"],
        ),
        rule(&["networking.k8s.io"], &["ingresses/status"], &["update"]),
    ];
    if config.cluster.gateway_api {
        let kinds = crate::cluster::crds::SERVED;
        let plurals: Vec<&str> = kinds.iter().map(|k| k.plural).collect();
        let status: Vec<String> = kinds
            .iter()
            .filter(|k| k.status)
            .map(|k| format!("{}/status", k.plural))
            .collect();
        let status: Vec<&str> = status.iter().map(String::as_str).collect();
        rules.push(rule(&[""], &["namespaces"], &["list", "watch"]));
        rules.push(rule(&[super::gateway::GROUP], &plurals, &["list", "watch"]));
        rules.push(rule(&[super::gateway::GROUP], &status, &["update"]));
    }
    rules
}

/// Traefik's pods as a label selector (`kubectl -l`, the logs API).
pub fn pod_selector(config: &Config) -> String {
    selector(config)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The labels that select Traefik's pods.
fn selector(config: &Config) -> BTreeMap<String, String> {
    let mut l = labels(config);
    l.insert("app.kubernetes.io/name".into(), NAME.into());
    l
}

/// The ConfigMap with both configuration files.
pub fn config_map(config: &Config) -> anyhow::Result<ConfigMap> {
    let header = crate::render::generated_header("#");
    let data = BTreeMap::from([
        (
            STATIC_KEY.to_string(),
            crate::render::to_yaml(&header, &static_config(config))?,
        ),
        (
            DYNAMIC_KEY.to_string(),
            crate::render::to_yaml(&header, &dynamic_config())?,
        ),
    ]);
    Ok(ConfigMap {
        metadata: meta(config, CONFIG_MAP, Some(NAMESPACE)),
        data: Some(data),
        ..ConfigMap::default()
    })
}

/// The Deployment: one replica on the ingress node, replaced (not rolled) on change since
/// two pods cannot hold the same host ports on one node.
///
/// On a cluster devenv did not create (`provider: existing`) the pod is neither pinned nor
/// given host ports: no node there is known to carry `ingress-ready=true` (the pod would stay
/// Pending) or to have 80/443 free (another ingress controller may hold them), and devenv never
/// schedules onto someone else's control plane. The ingress is then reached through the Service
/// (`kubectl -n devenv port-forward svc/traefik 8080:80`, or whatever that cluster exposes).
pub fn deployment(config: &Config, config_map: &ConfigMap) -> Deployment {
    let on_devenvs_nodes = config.cluster.provider != ClusterProvider::Existing;
    let mut digest = Sha256::new();
    for (k, v) in config_map.data.iter().flatten() {
        digest.update(k.as_bytes());
        digest.update([0]);
        digest.update(v.as_bytes());
        digest.update([0]);
    }
    let digest = hex::encode(digest.finalize());
    let port = |name: &str, container: u16, host: u16, protocol: &str| ContainerPort {
        name: Some(name.to_string()),
        container_port: container.into(),
        host_port: on_devenvs_nodes.then_some(host.into()),
        protocol: Some(protocol.to_string()),
        ..ContainerPort::default()
    };
    let probe = |period: i32, failures: i32| Probe {
        exec: Some(ExecAction {
            command: Some(strings(&[
                "wget",
                "-q",
                "-O",
                "/dev/null",
                &format!("http://{}/ping", PING.1),
            ])),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let quantity = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect(),
        )
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    let config_volume = |name: &str, key: &str| Volume {
        name: name.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: CONFIG_MAP.to_string(),
            items: Some(vec![KeyToPath {
                key: key.to_string(),
                path: key.to_string(),
                ..KeyToPath::default()
            }]),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    let container = Container {
        name: NAME.to_string(),
        image: Some(IMAGE.to_string()),
        args: Some(vec![format!("--configFile={STATIC_DIR}/{STATIC_KEY}")]),
        ports: Some(vec![
            port(WEB.name, WEB.container_port, WEB.host_port, "TCP"),
            port(
                WEBSECURE.name,
                WEBSECURE.container_port,
                WEBSECURE.host_port,
                "TCP",
            ),
            port(
                "websecure-quic",
                WEBSECURE.container_port,
                QUIC_NODE_PORT,
                "UDP",
            ),
        ]),
        readiness_probe: Some(probe(2, 3)),
        liveness_probe: Some(probe(10, 3)),
        resources: Some(ResourceRequirements {
            requests: quantity(&[("cpu", "100m"), ("memory", "64Mi")]),
            limits: quantity(&[("memory", "256Mi")]),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(strings(&["ALL"])),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("static-config", STATIC_DIR),
            mount("dynamic-config", DYNAMIC_DIR),
            mount("tls", TLS_DIR),
            VolumeMount {
                read_only: None,
                ..mount("tmp", "/tmp")
            },
        ]),
        ..Container::default()
    };
    let (node_label, node_value) = INGRESS_NODE_LABEL;
    let pod = PodSpec {
        service_account_name: Some(NAME.to_string()),
        node_selector: on_devenvs_nodes
            .then(|| BTreeMap::from([(node_label.to_string(), node_value.to_string())])),
        // KinD's control-plane node is the ingress node; with workers it carries this taint.
        tolerations: on_devenvs_nodes.then(|| {
            vec![Toleration {
                key: Some("node-role.kubernetes.io/control-plane".into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Toleration::default()
            }]
        }),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(vec![
            config_volume("static-config", STATIC_KEY),
            config_volume("dynamic-config", DYNAMIC_KEY),
            Volume {
                name: "tls".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(TLS_SECRET.into()),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    };
    Deployment {
        metadata: meta(config, NAME, Some(NAMESPACE)),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector(config)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector(config)),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_DIGEST_ANNOTATION.to_string(),
                        digest,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// Put the certificate's digest on the Deployment's pod template.
pub fn annotate_certificate(deployment: &mut Deployment, bundle: &crate::tls::Bundle) {
    let digest = hex::encode(Sha256::digest(bundle.cert_pem.as_bytes()));
    if let Some(meta) = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.metadata.as_mut())
    {
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(CERT_DIGEST_ANNOTATION.to_string(), digest);
    }
}

/// The ClusterIP Service `traefik`: what application names resolve to inside the cluster.
pub fn service(config: &Config) -> Service {
    let port = |name: &str, port: u16, target: &str, protocol: &str| ServicePort {
        name: Some(name.to_string()),
        port: port.into(),
        target_port: Some(IntOrString::String(target.to_string())),
        protocol: Some(protocol.to_string()),
        ..ServicePort::default()
    };
    Service {
        metadata: meta(config, NAME, Some(NAMESPACE)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector(config)),
            ports: Some(vec![
                port(WEB.name, WEB.service_port, WEB.name, "TCP"),
                port(
                    WEBSECURE.name,
                    WEBSECURE.service_port,
                    WEBSECURE.name,
                    "TCP",
                ),
                port(
                    "websecure-quic",
                    WEBSECURE.service_port,
                    "websecure-quic",
                    "UDP",
                ),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The two IngressClasses: `traefik` (the default) and `nginx`.
pub fn ingress_classes(config: &Config) -> Vec<IngressClass> {
    let class = |name: &str, controller: &str, default: bool| {
        let mut metadata = meta(config, name, None);
        if default {
            metadata.annotations = Some(BTreeMap::from([(
                DEFAULT_CLASS_ANNOTATION.to_string(),
                "true".to_string(),
            )]));
        }
        IngressClass {
            metadata,
            spec: Some(IngressClassSpec {
                controller: Some(controller.to_string()),
                ..IngressClassSpec::default()
            }),
        }
    };
    vec![
        class(TRAEFIK_CLASS, TRAEFIK_CONTROLLER, true),
        class(NGINX_CLASS, NGINX_CONTROLLER, false),
    ]
}

/// Every Traefik object, in apply order (the namespace first).
pub fn objects(config: &Config) -> Vec<Object> {
    let config_map = config_map(config).expect("Traefik's typed configuration serializes");
    let mut out = vec![
        Object::Namespace(Namespace {
            metadata: meta(config, NAMESPACE, None),
            ..Namespace::default()
        }),
        Object::ServiceAccount(ServiceAccount {
            metadata: meta(config, NAME, Some(NAMESPACE)),
            ..ServiceAccount::default()
        }),
        Object::ClusterRole(ClusterRole {
            metadata: meta(config, CLUSTER_ROLE, None),
            rules: Some(cluster_role_rules(config)),
            ..ClusterRole::default()
        }),
        Object::ClusterRoleBinding(ClusterRoleBinding {
            metadata: meta(config, CLUSTER_ROLE, None),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: CLUSTER_ROLE.into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: NAME.into(),
                namespace: Some(NAMESPACE.into()),
                ..Subject::default()
            }]),
        }),
    ];
    out.extend(
        ingress_classes(config)
            .into_iter()
            .map(Object::IngressClass),
    );
    let deployment = deployment(config, &config_map);
    out.push(Object::ConfigMap(config_map));
    out.push(Object::Service(Box::new(service(config))));
    out.push(Object::Deployment(Box::new(deployment)));
    out
}

/// The in-cluster name of the ingress Service (`traefik.devenv.svc.cluster.local`), without
/// the trailing dot.
pub fn service_fqdn() -> String {
    format!("{NAME}.{NAMESPACE}.svc.cluster.local")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(config: &Config) -> BTreeMap<String, String> {
        config_map(config).unwrap().data.unwrap()
    }

    #[test]
    fn the_configmap_parses_back_into_traefiks_typed_config() {
        let config = Config::default();
        let d = data(&config);
        let parsed: StaticConfig = serde_saphyr::from_str(&d[STATIC_KEY]).unwrap();
        assert_eq!(parsed, static_config(&config));
        let parsed: DynamicConfig = serde_saphyr::from_str(&d[DYNAMIC_KEY]).unwrap();
        assert_eq!(parsed, dynamic_config());
    }

    #[test]
    fn no_deadlines_on_requests_or_responses_and_http3_on_the_quic_port() {
        let mut config = Config::default();
        config.cluster.quic_port = 4555;
        let s = static_config(&config);
        for name in [WEB.name, WEBSECURE.name] {
            let t = &s.entry_points[name]
                .transport
                .as_ref()
                .unwrap()
                .responding_timeouts;
            assert_eq!(
                (t.read_timeout.as_str(), t.write_timeout.as_str()),
                ("0s", "0s")
            );
            assert_eq!(
                s.entry_points[name].http.as_ref().unwrap().middlewares,
                ["security-headers@file"]
            );
        }
        let websecure = &s.entry_points[WEBSECURE.name];
        assert_eq!(websecure.address, ":8443");
        assert!(websecure.http.as_ref().unwrap().tls.is_some());
        assert_eq!(websecure.http3.as_ref().unwrap().advertised_port, 4555);
        assert!(
            s.entry_points[WEB.name]
                .http
                .as_ref()
                .unwrap()
                .tls
                .is_none()
        );
        // Ping only on the pod's loopback; no API or dashboard section exists at all.
        assert_eq!(s.entry_points[PING.0].address, "127.0.0.1:8082");
        let defaults: Vec<_> = s
            .entry_points
            .iter()
            .filter(|(_, e)| e.as_default)
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(defaults, ["web", "websecure"]);
        assert_eq!(s.ping.entry_point, "ping");
        let text = &data(&config)[STATIC_KEY];
        assert!(
            !text.contains("api:") && !text.contains("dashboard"),
            "{text}"
        );
    }

    #[test]
    fn both_providers_serve_their_class_and_the_file_provider_the_rest() {
        let p = static_config(&Config::default()).providers;
        assert_eq!(p.kubernetes_ingress.ingress_class, "traefik");
        assert_eq!(p.kubernetes_ingress_nginx.ingress_class, "nginx");
        assert_eq!(
            p.kubernetes_ingress_nginx.controller_class,
            "k8s.io/ingress-nginx"
        );
        assert_eq!(p.file.filename, DYNAMIC_FILE);
        assert!(DYNAMIC_FILE.starts_with(&format!("{DYNAMIC_DIR}/")));
        assert!(DYNAMIC_FILE.ends_with(&format!("/{DYNAMIC_KEY}")));
        let text = &data(&Config::default())[STATIC_KEY];
        assert!(text.contains("\n  kubernetesIngressNGINX:\n"), "{text}");
    }

    /// Traefik's ingress-nginx provider defaults, like ingress-nginx, to 60 s between backend
    /// reads or writes and a 1 MiB buffered body (`ingress-nginx/kubernetes.go` SetDefaults,
    /// `build.go` buildServersTransport): class `nginx` must not cut what class `traefik` and
    /// the host gateway let through.
    #[test]
    fn ingresses_of_class_nginx_get_the_gateways_timeouts_and_no_body_limit() {
        let p = static_config(&Config::default())
            .providers
            .kubernetes_ingress_nginx;
        assert_eq!(
            (
                p.proxy_read_timeout,
                p.proxy_send_timeout,
                p.proxy_body_size
            ),
            (3600, 3600, 0)
        );
        let gateway = include_str!("../../../templates/gateway-nginx.conf.j2");
        assert!(gateway.contains("proxy_read_timeout 3600s;"), "{gateway}");
        assert!(gateway.contains("proxy_send_timeout 3600s;"), "{gateway}");
        assert!(gateway.contains("client_max_body_size 0;"), "{gateway}");
        let text = &data(&Config::default())[STATIC_KEY];
        assert!(text.contains("    proxyReadTimeout: 3600\n"), "{text}");
        assert!(text.contains("    proxySendTimeout: 3600\n"), "{text}");
        assert!(text.contains("    proxyBodySize: 0\n"), "{text}");
    }

    /// Without them the provider puts its HTTP routers on every entry point without TLS, the
    /// ping one included (Traefik `static_config.go` SetEffectiveConfiguration), and its HTTPS
    /// routers on every default entry point (`ingress-nginx/kubernetes.go` Init).
    #[test]
    fn ingresses_of_class_nginx_are_routed_on_web_and_websecure_only() {
        let p = static_config(&Config::default())
            .providers
            .kubernetes_ingress_nginx;
        assert_eq!(
            (p.http_entry_point.as_str(), p.https_entry_point.as_str()),
            ("web", "websecure")
        );
        let text = &data(&Config::default())[STATIC_KEY];
        assert!(text.contains("    httpEntryPoint: web\n"), "{text}");
        assert!(text.contains("    httpsEntryPoint: websecure\n"), "{text}");
    }

    #[test]
    fn the_gateways_security_headers_and_the_mounted_default_certificate() {
        let d = dynamic_config();
        let headers = &d.http.middlewares[HEADERS_MIDDLEWARE]
            .headers
            .custom_response_headers;
        assert_eq!(headers["X-Frame-Options"], "SAMEORIGIN");
        assert_eq!(headers["X-Content-Type-Options"], "nosniff");
        assert_eq!(
            headers["Referrer-Policy"],
            "strict-origin-when-cross-origin"
        );
        assert_eq!(headers.len(), SECURITY_HEADERS.len());
        let cert = &d.tls.stores["default"].default_certificate;
        assert_eq!(cert.cert_file, "/etc/traefik/tls/tls.crt");
        assert_eq!(cert.key_file, "/etc/traefik/tls/tls.key");
        // Those files come from the Secret mounted at TLS_DIR.
        let deployment = deployment(&Config::default(), &config_map(&Config::default()).unwrap());
        let pod = deployment.spec.unwrap().template.spec.unwrap();
        let tls = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "tls")
            .unwrap();
        assert_eq!(tls.secret.unwrap().secret_name.as_deref(), Some(TLS_SECRET));
        let mount = pod.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "tls")
            .unwrap()
            .clone();
        assert_eq!(mount.mount_path, TLS_DIR);
    }

    #[test]
    fn two_ingress_classes_traefik_the_default() {
        let classes = ingress_classes(&Config::default());
        let summary: Vec<_> = classes
            .iter()
            .map(|c| {
                (
                    c.metadata.name.clone().unwrap(),
                    c.spec.as_ref().unwrap().controller.clone().unwrap(),
                    c.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION).cloned()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "traefik".to_string(),
                    "traefik.io/ingress-controller".to_string(),
                    Some("true".to_string())
                ),
                (
                    "nginx".to_string(),
                    "k8s.io/ingress-nginx".to_string(),
                    None
                ),
            ]
        );
    }

    #[test]
    fn both_providers_publish_the_address_the_applications_are_reached_at() {
        let published = |config: &Config| {
            let p = static_config(config).providers;
            (
                p.kubernetes_ingress.ingress_endpoint,
                p.kubernetes_ingress_nginx.publish_status_address,
            )
        };
        let ip = |a: &str| {
            (
                IngressEndpoint {
                    ip: Some(a.into()),
                    hostname: None,
                },
                vec![a.to_string()],
            )
        };
        let mut config = Config::default();
        assert_eq!(published(&config), ip("127.0.0.2"));
        config.routing.mode = crate::config::RoutingMode::Ports;
        assert_eq!(published(&config), ip("127.0.0.1"));
        config.cluster.provider = ClusterProvider::Existing;
        let name = "traefik.devenv.svc.cluster.local";
        assert_eq!(
            published(&config),
            (
                IngressEndpoint {
                    ip: None,
                    hostname: Some(name.into())
                },
                vec![name.to_string()]
            )
        );
    }

    #[test]
    fn rbac_is_exactly_what_the_providers_read() {
        let mut off = Config::default();
        off.cluster.gateway_api = false;
        let described = |config: &Config| -> Vec<String> {
            cluster_role_rules(config)
                .iter()
                .map(|r| {
                    format!(
                        "{:?} {:?} {:?}",
                        r.api_groups.as_ref().unwrap(),
                        r.resources.as_ref().unwrap(),
                        r.verbs
                    )
                })
                .collect()
        };
        let ingress = [
            r#"[""] ["services", "secrets"] ["get", "list", "watch"]"#,
            r#"[""] ["nodes"] ["get", "list", "watch"]"#,
            r#"[""] ["configmaps"] ["list", "watch"]"#,
            r#"["discovery.k8s.io"] ["endpointslices"] ["list", "watch"]"#,
            r#"["networking.k8s.io"] ["ingresses", "ingressclasses"] ["get", "list", "watch"]"#,
            r#"["networking.k8s.io"] ["ingresses/status"] ["update"]"#,
        ];
        assert_eq!(described(&off), ingress);
        let gateway = [
            r#"[""] ["namespaces"] ["list", "watch"]"#,
            r#"["gateway.networking.k8s.io"] ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants", "backendtlspolicies", "tlsroutes"] ["list", "watch"]"#,
            r#"["gateway.networking.k8s.io"] ["gatewayclasses/status", "gateways/status", "httproutes/status", "grpcroutes/status", "backendtlspolicies/status", "tlsroutes/status"] ["update"]"#,
        ];
        let all: Vec<&str> = ingress.iter().chain(&gateway).copied().collect();
        assert_eq!(described(&Config::default()), all);
        let objects = objects(&Config::default());
        let binding = objects
            .iter()
            .find_map(|o| match o {
                Object::ClusterRoleBinding(b) => Some(b),
                _ => None,
            })
            .unwrap();
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (
                subject.kind.as_str(),
                subject.name.as_str(),
                subject.namespace.as_deref()
            ),
            ("ServiceAccount", NAME, Some(NAMESPACE))
        );
        assert_eq!(binding.role_ref.name, CLUSTER_ROLE);
    }

    #[test]
    fn the_pod_runs_unprivileged_on_the_ingress_node_with_the_host_ports() {
        let config = Config::default();
        let d = deployment(&config, &config_map(&config).unwrap());
        let spec = d.spec.unwrap();
        assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.node_selector.unwrap()["ingress-ready"], "true");
        assert_eq!(
            pod.tolerations.unwrap()[0].key.as_deref(),
            Some("node-role.kubernetes.io/control-plane")
        );
        let psc = pod.security_context.unwrap();
        assert_eq!(
            (psc.run_as_non_root, psc.run_as_user),
            (Some(true), Some(65532))
        );
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let ports: Vec<_> = c
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}->{}/{}",
                    p.host_port.unwrap(),
                    p.container_port,
                    p.protocol.as_deref().unwrap()
                )
            })
            .collect();
        assert_eq!(ports, ["80->8000/TCP", "443->8443/TCP", "4433->8443/UDP"]);
        assert!(c.resources.as_ref().unwrap().requests.is_some());
        assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
    }

    #[test]
    fn on_an_existing_cluster_the_pod_is_neither_pinned_nor_given_host_ports() {
        let mut config = Config::default();
        config.cluster.provider = ClusterProvider::Existing;
        config.cluster.context = Some("shared".into());
        let d = deployment(&config, &config_map(&config).unwrap());
        let pod = d.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.node_selector, None);
        assert_eq!(pod.tolerations, None);
        let ports = pod.containers[0].ports.clone().unwrap();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|p| p.host_port.is_none()), "{ports:?}");
    }

    #[test]
    fn a_config_change_changes_the_pod_template() {
        let a = Config::default();
        let mut b = Config::default();
        b.cluster.quic_port = 4555;
        let digest = |c: &Config| {
            deployment(c, &config_map(c).unwrap())
                .spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[CONFIG_DIGEST_ANNOTATION]
                .clone()
        };
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
    }
}

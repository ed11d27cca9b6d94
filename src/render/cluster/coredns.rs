//! Names under the domain for pods: a CoreDNS server block for `<domain>` and the zone file it
//! serves (key [`ZONE_KEY`] of the ConfigMap `kube-system/coredns`), built from devenv's own
//! record table (`dns::Records`, the same table the host's resolver answers from), seen from
//! inside the cluster:
//!
//! - infrastructure names are CNAMEs to the gateway container's name on the `kind` network
//!   (`<name>-gateway.`), which Docker's embedded DNS answers and KinD's nodes forward to;
//! - application names, and every other name under the domain (the wildcard), are CNAMEs to
//!   the ingress Service (`traefik.devenv.svc.cluster.local.`);
//! - `dns.records` are written as they are.
//!
//! CoreDNS's file plugin resolves a CNAME target outside the zone through the server itself
//! (the `.` block's `kubernetes` and `forward` plugins), so the zone is static: nothing in it
//! depends on addresses that change. The SOA serial is a digest of the records, so the same
//! config gives the same file and any change gives a new serial (the file plugin reloads a
//! zone whose serial differs).
//!
//! Not for: applying the ConfigMap, patching CoreDNS's Deployment or restarting it (the
//! cluster driver does that, see `cluster::kube`), or the host's resolver (`dns`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

use super::{BY_HAND_FIELD_MANAGER, traefik};
use crate::config::Config;
use crate::dns::records::{Data, Records};

/// The namespace of the cluster's CoreDNS.
pub const NAMESPACE: &str = "kube-system";
/// The ConfigMap kubeadm creates for CoreDNS.
pub const CONFIG_MAP: &str = "coredns";
/// The ConfigMap key of the Corefile.
pub const COREFILE_KEY: &str = "Corefile";
/// The ConfigMap key of devenv's zone file.
pub const ZONE_KEY: &str = "devenv.db";
/// Where kubeadm's CoreDNS Deployment mounts its ConfigMap.
pub const CONFIG_DIR: &str = "/etc/coredns";
/// The name of the CoreDNS Deployment's volume that holds its ConfigMap.
pub const CONFIG_VOLUME: &str = "config-volume";
/// The address of the cluster DNS Service with KinD's default service subnet (10.96.0.0/16;
/// kubeadm gives DNS the tenth address). Only the zone's NS glue uses it: nothing resolves
/// through it, but a zone's name server must have an address.
pub const CLUSTER_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// How often the file plugin looks for a new serial.
const RELOAD: &str = "10s";
fn domain(config: &Config) -> String {
    config.domain.trim_end_matches('.').to_ascii_lowercase()
}

/// The Corefile server block for the domain. The cluster driver places it between its marker
/// lines (`cluster::kube::merge_corefile`), which let it replace the block on a later run.
pub fn server_block(config: &Config) -> String {
    let domain = domain(config);
    format!(
        "# Names under {domain} for pods, from devenv.yaml ({ZONE_KEY} in this ConfigMap)\n\
         {domain}:53 {{\n    errors\n    file {CONFIG_DIR}/{ZONE_KEY} {domain} {{\n        reload {RELOAD}\n    }}\n}}\n"
    )
}

/// A quoted TXT string, split in pieces of at most 255 bytes.
fn txt(text: &str) -> String {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        let escaped = match c {
            '"' => "\\\"".to_string(),
            '\\' => "\\\\".to_string(),
            c if c.is_control() => format!("\\{:03}", c as u32),
            c => c.to_string(),
        };
        if current.len() + escaped.len() > 255 {
            pieces.push(std::mem::take(&mut current));
        }
        current.push_str(&escaped);
    }
    pieces.push(current);
    pieces
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The zone's records (every line after the SOA), one per line, in a stable order.
fn records(config: &Config) -> Vec<String> {
    let table = Records::from_config(config);
    let domain = table.settings.domain.clone();
    let ttl = table.settings.ttl;
    let ingress = format!("{}.", traefik::service_fqdn());
    let gateway = config
        .services()
        .into_iter()
        .find(|s| s.name == "gateway")
        .map(|s| format!("{}.", s.container_name));
    // All entries of a name, merged across sources; names outside the domain are not ours.
    let mut names: BTreeMap<String, Vec<&Data>> = BTreeMap::new();
    for e in table.entries() {
        if e.name == domain || e.name.ends_with(&format!(".{domain}")) {
            names.entry(e.name.clone()).or_default().push(&e.data);
        }
    }
    let line = |name: &str, rtype: &str, data: &str| format!("{name}. {ttl} IN {rtype} {data}");
    let mut out = vec![
        line(&domain, "NS", &format!("ns.{domain}.")),
        line(&format!("ns.{domain}"), "A", &CLUSTER_DNS.to_string()),
        line(&format!("*.{domain}"), "CNAME", &ingress),
    ];
    for (name, data) in &names {
        let fixed: Vec<&Data> = data
            .iter()
            .copied()
            .filter(|d| !matches!(d, Data::Infrastructure(_) | Data::Applications))
            .collect();
        // A CNAME cannot share its name with other data, nor sit at the apex (SOA, NS).
        let cname_allowed = *name != domain;
        if let Some(Data::Cname(target)) = fixed.iter().find(|d| matches!(d, Data::Cname(_))) {
            if cname_allowed {
                out.push(line(name, "CNAME", &format!("{target}.")));
            }
            continue;
        }
        if !fixed.is_empty() {
            for d in fixed {
                match d {
                    Data::A(ip) => out.push(line(name, "A", &ip.to_string())),
                    Data::Aaaa(ip) => out.push(line(name, "AAAA", &ip.to_string())),
                    Data::Txt(text) => out.push(line(name, "TXT", &txt(text))),
                    Data::Cname(_) | Data::Infrastructure(_) | Data::Applications => {}
                }
            }
            continue;
        }
        if !cname_allowed {
            continue;
        }
        let target = if data.iter().any(|d| matches!(d, Data::Infrastructure(_))) {
            // Without a gateway there is nothing on the `kind` network to reach the service
            // through; the name then falls to the wildcard like any application name.
            match &gateway {
                Some(g) => g.clone(),
                None => continue,
            }
        } else {
            ingress.clone()
        };
        out.push(line(name, "CNAME", &target));
    }
    out
}

/// The zone file for the domain.
pub fn zone(config: &Config) -> String {
    let domain = domain(config);
    let ttl = config.dns.ttl;
    let body = records(config);
    let mut digest = Sha256::new();
    for l in &body {
        digest.update(l.as_bytes());
        digest.update(b"\n");
    }
    let bytes = digest.finalize();
    // A digest, not a counter: deterministic, and different whenever the records differ.
    let serial = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]).max(1);
    let mut out = crate::render::generated_header(";");
    out.push_str(&format!(
        "; Names under {domain} for pods, served by the cluster's CoreDNS (file plugin).\n\
         ; Infrastructure names lead to the host gateway on the `kind` network, everything\n\
         ; else to the ingress Service.\n\
         $ORIGIN {domain}.\n$TTL {ttl}\n\
         {domain}. {ttl} IN SOA ns.{domain}. hostmaster.{domain}. {serial} 3600 600 86400 {ttl}\n"
    ));
    for l in body {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// The ConfigMap `kube-system/coredns` with only the zone key: applied server-side, it adds
/// the zone and leaves the Corefile (kubeadm's) alone. It carries no devenv labels: the
/// ConfigMap is not devenv's.
pub fn zone_config_map(config: &Config) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_MAP.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(ZONE_KEY.to_string(), zone(config))])),
        ..ConfigMap::default()
    }
}

/// The comment at the head of `kind/manifests/coredns-zone.yaml`: how to install the zone by
/// hand.
pub(crate) fn by_hand_instructions(config: &Config) -> String {
    let domain = domain(config);
    format!(
        "#\n\
         # The zone of {domain} for pods. `devenv up` installs it; by hand, from the directory\n\
         # that holds kind/:\n\
         #   kubectl apply --server-side --field-manager {BY_HAND_FIELD_MANAGER} -f kind/manifests/coredns-zone.yaml\n\
         #   # add kind/manifests/coredns-server-block.conf at the end of the Corefile:\n\
         #   kubectl -n {NAMESPACE} edit configmap {CONFIG_MAP}\n\
         #   # let the CoreDNS pods see {ZONE_KEY} (kubeadm projects only the Corefile):\n\
         #   kubectl -n {NAMESPACE} patch deployment coredns --type strategic -p \\\n\
         #     '{{\"spec\":{{\"template\":{{\"spec\":{{\"volumes\":[{{\"name\":\"{CONFIG_VOLUME}\",\"configMap\":{{\"name\":\"{CONFIG_MAP}\",\"items\":[{{\"key\":\"{COREFILE_KEY}\",\"path\":\"{COREFILE_KEY}\"}},{{\"key\":\"{ZONE_KEY}\",\"path\":\"{ZONE_KEY}\"}}]}}}}]}}}}}}}}'\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DnsRecord, RecordKind};

    fn lines(config: &Config) -> Vec<String> {
        zone(config)
            .lines()
            .filter(|l| !l.starts_with(';') && !l.starts_with('$'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn infrastructure_to_the_gateway_applications_to_the_ingress() {
        let z = lines(&Config::default());
        assert!(z.contains(&"grafana.macula.local. 5 IN CNAME macula-gateway.".to_string()));
        assert!(z.contains(&"registry.macula.local. 5 IN CNAME macula-gateway.".to_string()));
        assert!(
            z.contains(&"*.macula.local. 5 IN CNAME traefik.devenv.svc.cluster.local.".to_string())
        );
        assert!(z.contains(&"macula.local. 5 IN NS ns.macula.local.".to_string()));
        assert!(
            z[0].starts_with("macula.local. 5 IN SOA ns.macula.local. hostmaster.macula.local. ")
        );
    }

    #[test]
    fn records_are_written_and_take_precedence_over_the_infrastructure_alias() {
        let mut config = Config::default();
        let record = |name: &str, kind, value: &str| DnsRecord {
            name: name.into(),
            kind,
            value: value.into(),
        };
        config.dns.records = vec![
            record("api", RecordKind::A, "127.0.0.9"),
            record("grafana", RecordKind::A, "10.1.2.3"),
            record("docs", RecordKind::CNAME, "example.org"),
            record("note", RecordKind::TXT, "say \"hi\""),
        ];
        let z = lines(&config);
        assert!(z.contains(&"api.macula.local. 5 IN A 127.0.0.9".to_string()));
        assert!(z.contains(&"grafana.macula.local. 5 IN A 10.1.2.3".to_string()));
        assert!(
            !z.iter()
                .any(|l| l.starts_with("grafana.macula.local. 5 IN CNAME"))
        );
        assert!(z.contains(&"docs.macula.local. 5 IN CNAME example.org.".to_string()));
        assert!(z.contains(&"note.macula.local. 5 IN TXT \"say \\\"hi\\\"\"".to_string()));
    }

    #[test]
    fn the_serial_follows_the_records() {
        let a = zone(&Config::default());
        assert_eq!(a, zone(&Config::default()));
        let mut config = Config::default();
        config.services.insert(
            "grafana".into(),
            crate::config::ServiceSettings {
                hostnames: Some(vec!["metrics".into()]),
                ..Default::default()
            },
        );
        let b = zone(&config);
        let soa = |z: &str| z.lines().find(|l| l.contains(" SOA ")).unwrap().to_string();
        assert_ne!(soa(&a), soa(&b));
    }

    #[test]
    fn long_text_is_split_into_quoted_pieces() {
        let long = "x".repeat(300);
        assert_eq!(
            txt(&long),
            format!("\"{}\" \"{}\"", "x".repeat(255), "x".repeat(45))
        );
    }
}

//! PowerDNS's files: `pdns.conf` (from `templates/pdns.conf.j2`), its secrets template
//! (`templates/pdns-secrets.j2`) and the Postgres schema its database is created with.
//!
//! Secrets never go into these files: PowerDNS's database password and API key reach it
//! through `secrets.j2`, a template of environment variables that the PowerDNS image's startup
//! script renders inside the container into the directory pdns.conf includes (see
//! [`crate::config::PDNS_INCLUDE_DIR`]). Not for: the PowerDNS containers (their definitions in
//! `config`) or devenv's own resolver (`dns`).

use super::{Artifact, generated_header, template_env};
use crate::config::{Config, ConfigFile, PDNS_DB, PDNS_INCLUDE_DIR, Service};

const PDNS_TEMPLATE: &str = include_str!("../../templates/pdns.conf.j2");
const PDNS_SCHEMA: &str = include_str!("../../templates/pdns-schema.pgsql.sql");
const PDNS_SECRETS: &str = include_str!("../../templates/pdns-secrets.j2");

/// A value for pdns.conf: one line, no `#` (pdns.conf has no quoting; `#` starts a comment).
fn pdns_value(value: String) -> Result<String, minijinja::Error> {
    if value.chars().any(|c| c.is_control() || c == '#') || value.trim() != value {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{value:?} cannot go into pdns.conf"),
        ));
    }
    Ok(value)
}

/// The containers PowerDNS's webserver (its API, its keyless `/` and `/metrics`) answers,
/// besides its own loopback: the gateway that routes its hostname to the API, Prometheus
/// when it scrapes the metrics, PowerDNS-Admin which drives the API — those of them that run,
/// each at its fixed address. Not the rest of the subnet: that holds the host's side of the
/// bridge, from which the keyless pages would be reachable.
fn webserver_clients(pdns: &Service, services: &[Service]) -> Vec<String> {
    let api = pdns.port("api");
    services
        .iter()
        .filter(|s| match s.name.as_str() {
            "gateway" => pdns.routes.iter().any(|r| r.container_port == api),
            "prometheus" => pdns.metrics.as_ref().is_some_and(|m| m.port == api),
            "pdns-admin" => true,
            _ => false,
        })
        .map(|s| format!("{}/32", s.address))
        .collect()
}

/// `pdns.conf` for the `pdns` service: the Postgres backend on `pdns-db`, DNS and the API on
/// the service's ports, the API and webserver answering only the containers that use them.
pub fn pdns_conf(config: &Config, pdns: &Service, services: &[Service]) -> anyhow::Result<String> {
    let allow_from = ["127.0.0.1".to_string(), "::1".to_string()]
        .into_iter()
        .chain(webserver_clients(pdns, services))
        .collect::<Vec<_>>()
        .join(",");
    let mut env = template_env();
    env.add_filter("pdns", pdns_value);
    env.add_template("pdns.conf", PDNS_TEMPLATE)?;
    let header = generated_header("#");
    Ok(env.get_template("pdns.conf")?.render(minijinja::context! {
        header => header.trim_end(),
        db_host => "pdns-db",
        db_name => PDNS_DB,
        db_user => PDNS_DB,
        dns_port => pdns.port("dns"),
        api_port => pdns.port("api"),
        include_dir => PDNS_INCLUDE_DIR,
        // The container's own loopback (`pdns_control`, probes) and its clients.
        allow_from => allow_from,
        soa => format!("ns1.{} hostmaster.{} 0 10800 3600 604800 3600", config.domain, config.domain),
    })?)
}

/// `secrets.j2`: PowerDNS's secret settings as `{{ VAR }}` placeholders, which the image's
/// startup script fills from the container's environment. Written verbatim: devenv does not
/// render it, the container does.
pub fn pdns_secrets_template() -> String {
    format!("{}{PDNS_SECRETS}", generated_header("#"))
}

/// pdns.conf and the secrets template when PowerDNS is enabled; the schema when its database is.
pub fn render(config: &Config, services: &[Service]) -> anyhow::Result<Vec<Artifact>> {
    let mut out = Vec::new();
    if let Some(pdns) = services.iter().find(|s| s.name == "pdns") {
        out.push(Artifact::config(
            ConfigFile::PdnsConf,
            pdns_conf(config, pdns, services)?,
        ));
        out.push(Artifact::config(
            ConfigFile::PdnsSecrets,
            pdns_secrets_template(),
        ));
    }
    if services.iter().any(|s| s.name == "pdns-db") {
        out.push(Artifact::config(
            ConfigFile::PdnsSchema,
            format!("{}{PDNS_SCHEMA}", generated_header("--")),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdns_conf_limits_the_api_to_its_clients_and_holds_no_secret() {
        let config = Config::default();
        let services = config.services();
        let pdns = services.iter().find(|s| s.name == "pdns").unwrap();
        let text = pdns_conf(&config, pdns, &services).unwrap();
        let at = |name: &str| crate::config::address_of(&config, name);
        // Not the subnet: the host's side of the bridge (.1) is in it.
        assert!(
            text.contains(&format!(
                "webserver-allow-from=127.0.0.1,::1,{}/32,{}/32,{}/32\n",
                at("pdns-admin"),
                at("prometheus"),
                at("gateway")
            )),
            "{text}"
        );
        assert!(!text.contains("172.30.80.0/24"), "{text}");
        assert!(text.contains("launch=gpgsql\n"));
        assert!(text.contains("local-port=5300\n"));
        assert!(
            text.contains("include-dir=/etc/powerdns/pdns.d\n"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(!line.starts_with("gpgsql-password"), "{line}");
            assert!(!line.starts_with("api-key"), "{line}");
            assert!(!line.contains("0.0.0.0/0"), "{line}");
        }
    }

    #[test]
    fn pdns_answers_only_the_clients_that_run() {
        let mut config = Config::default();
        config.tiers.observability = false;
        config.services.insert(
            "pdns-admin".into(),
            crate::config::ServiceSettings {
                enabled: Some(false),
                ..Default::default()
            },
        );
        let services = config.services();
        let pdns = services.iter().find(|s| s.name == "pdns").unwrap();
        let text = pdns_conf(&config, pdns, &services).unwrap();
        let gateway = crate::config::address_of(&config, "gateway");
        assert!(
            text.contains(&format!(
                "webserver-allow-from=127.0.0.1,::1,{gateway}/32\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn pdns_secrets_template_reads_every_secret_from_the_environment() {
        let text = pdns_secrets_template();
        let settings: Vec<_> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            settings,
            [
                "gpgsql-password={{ PDNS_DB_PASSWORD }}",
                "api-key={{ PDNS_API_KEY }}"
            ],
            "{text}"
        );
        // The variables the template reads are the ones the container is given.
        let vars: Vec<_> = crate::config::PDNS_SECRET_VARS
            .iter()
            .map(|v| v.0)
            .collect();
        assert_eq!(vars, ["PDNS_DB_PASSWORD", "PDNS_API_KEY"]);
        // Jinja comments and blocks would change what the container renders.
        assert!(!text.contains("{#") && !text.contains("{%"), "{text}");
    }
}

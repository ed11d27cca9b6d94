//! The routes file the gateway includes (`routes.conf`): one server per user route, on :80
//! and :443, proxying to the route's target as the gateway sees it, plus a marker server that
//! answers the file's generation: a digest of the routes and of the certificate nginx serves,
//! so that a reload after either changed shows by the generation. Pure. Not for: the infrastructure's servers
//! (`render::nginx`) or putting the file in place (`super`).

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::GATEWAY_HOST_NAME;
use crate::render::nginx::{Layout, quote};
use crate::render::{SECURITY_HEADERS, template_env};
use crate::routes::{Route, Target};

const TEMPLATE: &str = include_str!("../../templates/gateway-routes.conf.j2");

/// The `Host` of the marker server that answers the generation.
pub const GENERATION_HOST: &str = "generation.devenv-gateway.invalid";

/// Each route's server starts with this comment, followed by the route's name.
pub const ROUTE_MARK: &str = "# route: ";

#[derive(Serialize)]
struct Server<'a> {
    name: &'a str,
    host: &'a str,
    upstream: String,
}

/// The rendered file and its generation (a digest of what it serves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutesConf {
    pub text: String,
    pub generation: String,
}

/// `host:port` of `route`'s target as the gateway reaches it. In a container, a target on the
/// host's loopback is reached through [`GATEWAY_HOST_NAME`]: at the route's relay
/// (`routes::relay`) when it has one, else at the target's port (which then reaches only a
/// process listening on the bridge address or on all of them). On the host, as given.
pub fn upstream(route: &Route, in_container: bool) -> String {
    let target: &Target = &route.target;
    match (in_container && target.is_local(), route.relay) {
        (true, Some(relay)) => format!("{GATEWAY_HOST_NAME}:{}", relay.port),
        (true, None) => format!("{GATEWAY_HOST_NAME}:{}", target.port),
        (false, _) => target.to_string(),
    }
}

/// The routes file for `routes`, served with `certificate` (the PEM in the live directory).
/// `redirect`: plain HTTP answers with a redirect to HTTPS on this port suffix
/// (`render::nginx::https_redirect`), as the infrastructure names do. `streams`: the stream
/// servers' file the same reload loads, part of the generation.
pub fn render(
    routes: &[Route],
    layout: &Layout,
    in_container: bool,
    certificate: &str,
    redirect: Option<&str>,
    streams: &str,
) -> anyhow::Result<RoutesConf> {
    let servers: Vec<Server<'_>> = routes
        .iter()
        .map(|r| Server {
            name: &r.name,
            host: &r.host,
            upstream: format!("http://{}", upstream(r, in_container)),
        })
        .collect();
    let generation = {
        let certificate = hex::encode(Sha256::digest(certificate.as_bytes()));
        let streams = hex::encode(Sha256::digest(streams.as_bytes()));
        let digest = Sha256::digest(
            serde_json::to_vec(&(&servers, layout, certificate, redirect, streams))
                .expect("plain data serialises"),
        );
        hex::encode(&digest[..6])
    };
    let mut env = template_env();
    env.add_filter("nginx", |v: String| {
        quote(&v).map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))
    });
    env.add_template("gateway-routes.conf", TEMPLATE)?;
    let text = env
        .get_template("gateway-routes.conf")?
        .render(minijinja::context! {
            generation => &generation,
            generation_host => GENERATION_HOST,
            generation_body => format!("{generation}\n"),
            layout => minijinja::Value::from(minijinja::value::Serde(layout)),
            redirect_port => redirect,
            response_headers => SECURITY_HEADERS,
            routes => minijinja::Value::from(minijinja::value::Serde(&servers)),
        })?;
    Ok(RoutesConf { text, generation })
}

/// The route whose server holds line `line` (1-based) of a rendered routes file.
pub fn route_at_line(text: &str, line: usize) -> Option<String> {
    text.lines()
        .take(line)
        .filter_map(|l| l.strip_prefix(ROUTE_MARK))
        .last()
        .map(|name| name.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::routes::Routes;

    #[test]
    fn one_server_per_route_on_both_ports_and_the_host_through_the_engine() {
        let config = Config::default();
        let mut routes = Routes::default();
        routes.add(&config, "api", "127.0.0.1:3000", None).unwrap();
        routes.add(&config, "box", "10.1.2.3:8080", None).unwrap();
        let conf = render(
            &routes.routes,
            &Layout::container(),
            true,
            "CERT A",
            None,
            "",
        )
        .unwrap();
        let t = &conf.text;
        assert!(t.contains("server_name api.macula.local;"), "{t}");
        assert!(
            t.contains("proxy_pass http://host.docker.internal:3000;"),
            "{t}"
        );
        assert!(t.contains("proxy_pass http://10.1.2.3:8080;"), "{t}");
        assert_eq!(t.matches("listen 443 ssl http2;").count(), 2);
        assert_eq!(t.matches("X-Frame-Options").count(), 2);
        assert!(t.contains(&format!("generation {}", conf.generation)));
        let line = t.lines().position(|l| l.contains("10.1.2.3")).unwrap();
        assert_eq!(route_at_line(t, line + 1).as_deref(), Some("box"));
        assert_eq!(route_at_line(t, 3), None);

        // Outside a container, the target is used as given; the generation follows.
        let host = render(
            &routes.routes,
            &Layout::container(),
            false,
            "CERT A",
            None,
            "",
        )
        .unwrap();
        assert!(host.text.contains("proxy_pass http://127.0.0.1:3000;"));
        assert_ne!(host.generation, conf.generation);
        assert_eq!(
            render(
                &routes.routes,
                &Layout::container(),
                true,
                "CERT A",
                None,
                ""
            )
            .unwrap(),
            conf
        );
        // A renewed certificate is a new generation of the same servers: a reload shows.
        let renewed = render(
            &routes.routes,
            &Layout::container(),
            true,
            "CERT B",
            None,
            "",
        )
        .unwrap();
        assert_ne!(renewed.generation, conf.generation);
        assert_eq!(
            renewed.text.replace(&renewed.generation, "G"),
            conf.text.replace(&conf.generation, "G")
        );
    }

    #[test]
    fn with_the_redirect_each_route_sends_plain_http_to_https_on_the_published_port() {
        let mut config = Config::default();
        let mut routes = Routes::default();
        routes.add(&config, "api", "127.0.0.1:3000", None).unwrap();
        let layout = Layout::container();
        let plain = render(&routes.routes, &layout, true, "CERT", None, "").unwrap();
        assert!(!plain.text.contains("return 308"), "{}", plain.text);

        config.gateway.redirect_http = true;
        let redirect = crate::render::nginx::https_redirect(&config);
        assert_eq!(redirect.as_deref(), Some(""));
        let on = render(
            &routes.routes,
            &layout,
            true,
            "CERT",
            redirect.as_deref(),
            "",
        )
        .unwrap();
        assert_eq!(
            on.text
                .matches("return 308 https://$host$request_uri;")
                .count(),
            1,
            "{}",
            on.text
        );
        assert_ne!(on.generation, plain.generation, "a reload shows the change");

        // HTTPS published elsewhere (CI mode's free ports): the redirect goes there.
        config.services.insert(
            "gateway".into(),
            crate::config::ServiceSettings {
                ports: [("https".to_string(), 8443.into())].into(),
                ..Default::default()
            },
        );
        let redirect = crate::render::nginx::https_redirect(&config);
        let on = render(
            &routes.routes,
            &layout,
            true,
            "CERT",
            redirect.as_deref(),
            "",
        )
        .unwrap();
        assert!(
            on.text
                .contains("return 308 https://$host:8443$request_uri;"),
            "{}",
            on.text
        );
        // HTTPS unpublished: nowhere to send it, so no redirect.
        config.services.get_mut("gateway").unwrap().ports =
            [("https".to_string(), 0.into())].into();
        assert_eq!(crate::render::nginx::https_redirect(&config), None);
    }
}

//! The real-kind suite: `devenv up` from nothing on a machine with Docker, kind, kubectl and
//! access to the public image registries (a laptop, or the hosted runner of
//! `.github/workflows/real-kind.yml`). The machines this project is developed on have no image
//! registry and cannot run kind, so every test here is `#[ignore = "needs kind"]`:
//!
//! ```sh
//! cargo test --locked --test real_kind -- --ignored --test-threads=1
//! ```
//!
//! What it proves, end to end and on the real programs: the cluster is created and wired to the
//! infrastructure; an image pushed to `localhost:<registry port>` runs in a pod; an Ingress is
//! answered on the clean URL (127.0.0.2:80), on the ingress's own port (127.0.0.1:8080), over
//! HTTPS with devenv's CA, and advertises HTTP/3 on a port that answers (QUIC requests where
//! curl has HTTP/3); an Ingress of class `nginx` with an ingress-nginx annotation is honoured
//! by Traefik's ingress-nginx provider; an HTTPRoute on devenv's Gateway answers like an
//! Ingress (the Gateway API CRDs downloaded and verified by `up`, the Gateway Programmed by
//! Traefik); a pod resolves and reaches the infrastructure names;
//! `down`/`up` keeps a deployment; `down --purge` removes the cluster and nothing else.
//! It uses its own environment name (`devenv-e2e`) and kubeconfig, and purges it at the end.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Run, devenv, run};

const NAME: &str = "devenv-e2e";
const DOMAIN: &str = "e2e.macula.local";

struct Env {
    home: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let home = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            home.path().join("devenv.yaml"),
            format!(
                "name: {NAME}\ndomain: {DOMAIN}\nnetwork:\n  subnet: 172.30.99.0/24\n\
                 tiers:\n  data: false\n  tools: false\n"
            ),
        )
        .expect("write devenv.yaml");
        Env { home }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.home.path().join("kubeconfig")
    }

    fn devenv(&self, args: &[&str]) -> Run {
        let mut cmd = devenv(self.home.path());
        cmd.env("DEVENV_KUBECONFIG", self.kubeconfig()).args(args);
        run(&mut cmd)
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.devenv(args);
        assert_eq!(r.code, 0, "devenv {args:?} failed:\n{r}");
        r
    }

    /// A shell command with the environment's kubeconfig and context.
    fn sh(&self, script: &str) -> Run {
        run(Command::new("bash")
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(script)
            .env("KUBECONFIG", self.kubeconfig())
            .current_dir(self.home.path()))
    }

    fn sh_ok(&self, script: &str) -> String {
        let r = self.sh(script);
        assert_eq!(r.code, 0, "`{script}` failed:\n{r}");
        r.stdout
    }

    /// Retry `script` until it succeeds (workloads take a moment to become reachable).
    fn eventually(&self, script: &str, within: Duration) -> String {
        let start = Instant::now();
        loop {
            let r = self.sh(script);
            if r.code == 0 {
                return r.stdout;
            }
            assert!(start.elapsed() < within, "`{script}` never succeeded:\n{r}");
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn ca(&self) -> PathBuf {
        self.home.path().join("state").join("tls").join("ca.crt")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.devenv(&["down", "--purge", "--yes"]);
    }
}

fn app_manifest(image: &str, host: &str, class: &str, annotations: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: hello-{class}, namespace: default}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: hello-{class}}}}}
  template:
    metadata: {{labels: {{app: hello-{class}}}}}
    spec:
      containers:
        - name: web
          image: {image}
          command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
          ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: hello-{class}, namespace: default}}
spec:
  selector: {{app: hello-{class}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: hello-{class}
  namespace: default
  annotations: {{{annotations}}}
spec:
  ingressClassName: {class}
  rules:
    - host: {host}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {{service: {{name: hello-{class}, port: {{number: 80}}}}}}
"#
    )
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("write file");
    p
}

#[test]
#[ignore = "needs kind"]
fn up_from_nothing_serves_an_application_end_to_end() {
    let env = Env::new();
    let dir = env.home.path();

    // 1. Up from nothing: infrastructure and cluster.
    let up = env.ok(&["up", "--timeout", "600"]);
    assert!(up.stdout.contains(&format!("kind-{NAME}")), "{up}");
    env.sh_ok("kubectl get nodes -o name | grep -q control-plane");

    // 2. Push an image to the registry from the host and run it in a pod.
    let image = "localhost:5001/devenv-e2e/hello:1";
    write(dir, "index.html", "hello from the cluster\n");
    write(
        dir,
        "Dockerfile",
        "FROM busybox:1.36\nCOPY index.html /www/index.html\n",
    );
    env.sh_ok(&format!(
        "docker build -q -t {image} . && docker push {image}"
    ));
    let traefik_manifest = write(
        dir,
        "app.yaml",
        &app_manifest(image, &format!("app.{DOMAIN}"), "traefik", ""),
    );
    env.sh_ok(&format!(
        "kubectl apply -f {} && kubectl rollout status deploy/hello-traefik --timeout=180s",
        traefik_manifest.display()
    ));

    // 3. The Ingress answers on the clean URL, the ingress's own port and HTTPS with the CA.
    let host = format!("app.{DOMAIN}");
    for script in [
        format!("curl -fsS --resolve {host}:80:127.0.0.2 http://{host}/"),
        format!("curl -fsS -H 'Host: {host}' http://127.0.0.1:8080/"),
        format!(
            "curl -fsS --cacert {} --resolve {host}:443:127.0.0.2 https://{host}/",
            env.ca().display()
        ),
        format!(
            "curl -fsS --cacert {} --resolve {host}:8443:127.0.0.1 https://{host}:8443/",
            env.ca().display()
        ),
    ] {
        let body = env.eventually(&script, Duration::from_secs(90));
        assert!(body.contains("hello from the cluster"), "{script}: {body}");
    }

    // HTTP/3: Traefik advertises the QUIC port (`Alt-Svc: h3=":4433"`), which answers on the
    // clean URL's address as on 127.0.0.1, and 127.0.0.2:443/udp answers too. The QUIC requests
    // need a curl built with HTTP/3; without one this says so on stderr.
    let headers = env.sh_ok(&format!(
        "curl -fsS -o /dev/null -D - --cacert {} --resolve {host}:443:127.0.0.2 https://{host}/",
        env.ca().display()
    ));
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("alt-svc: h3=\":4433\""),
        "{headers}"
    );
    if env.sh_ok("curl --version").contains("HTTP3") {
        for (port, address) in [(443, "127.0.0.2"), (4433, "127.0.0.2"), (4433, "127.0.0.1")] {
            let script = format!(
                "curl -fsS --http3-only --cacert {} --resolve {host}:{port}:{address} https://{host}:{port}/",
                env.ca().display()
            );
            let body = env.eventually(&script, Duration::from_secs(30));
            assert!(body.contains("hello from the cluster"), "{script}: {body}");
        }
    } else {
        eprintln!("NOTE: this curl has no HTTP/3: only the Alt-Svc advertisement was checked");
    }

    // 4. An Ingress written for ingress-nginx: class `nginx`, basic auth by annotation.
    env.sh_ok(
        "htpasswd_line=$(printf 'dev:%s\\n' \"$(openssl passwd -apr1 secret)\") && \
         kubectl create secret generic hello-auth --from-literal=auth=\"$htpasswd_line\" \
           --dry-run=client -o yaml | kubectl apply -f -",
    );
    let nginx_manifest = write(
        dir,
        "app-nginx.yaml",
        &app_manifest(
            image,
            &format!("legacy.{DOMAIN}"),
            "nginx",
            "nginx.ingress.kubernetes.io/auth-type: basic, \
             nginx.ingress.kubernetes.io/auth-secret: hello-auth",
        ),
    );
    env.sh_ok(&format!(
        "kubectl apply -f {} && kubectl rollout status deploy/hello-nginx --timeout=180s",
        nginx_manifest.display()
    ));
    let legacy = format!("legacy.{DOMAIN}");
    env.eventually(
        &format!(
            "test \"$(curl -s -o /dev/null -w '%{{http_code}}' --resolve {legacy}:80:127.0.0.2 http://{legacy}/)\" = 401"
        ),
        Duration::from_secs(90),
    );
    let body = env.eventually(
        &format!("curl -fsS -u dev:secret --resolve {legacy}:80:127.0.0.2 http://{legacy}/"),
        Duration::from_secs(30),
    );
    assert!(body.contains("hello from the cluster"));

    // 4b. Gateway API: the release's CRDs (downloaded and verified by `up`) are Established,
    // Traefik has Accepted and Programmed devenv's Gateway, and an HTTPRoute to the same
    // Service answers like the Ingress, on the clean URL, :8080 and HTTPS with the CA.
    env.sh_ok(
        "kubectl wait --for=condition=Established --timeout=60s crd/httproutes.gateway.networking.k8s.io && \
         kubectl -n devenv wait --for=condition=Programmed --timeout=120s gateway/devenv",
    );
    let routed = format!("gw.{DOMAIN}");
    let route = write(
        dir,
        "route.yaml",
        &format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: hello, namespace: default}}\n\
             spec:\n  parentRefs: [{{name: devenv, namespace: devenv}}]\n  hostnames: [{routed}]\n\
             \x20 rules:\n  - backendRefs: [{{name: hello-traefik, port: 80}}]\n"
        ),
    );
    env.sh_ok(&format!("kubectl apply -f {}", route.display()));
    for probe in [
        format!("curl -fsS --resolve {routed}:80:127.0.0.2 http://{routed}/"),
        format!("curl -fsS -H 'Host: {routed}' http://127.0.0.1:8080/"),
        format!(
            "curl -fsS --cacert {} --resolve {routed}:443:127.0.0.2 https://{routed}/",
            env.ca().display()
        ),
    ] {
        let body = env.eventually(&probe, Duration::from_secs(90));
        assert!(body.contains("hello from the cluster"), "{probe}: {body}");
    }
    let listed = env.ok(&["routes", "list"]);
    assert!(
        listed.stdout.contains("default/hello") && listed.stdout.contains("[accepted]"),
        "{listed}"
    );
    let status = env.ok(&["status"]);
    assert!(status.stdout.contains("gateway-api"), "{status}");

    // 5. A pod resolves and reaches the infrastructure names.
    let probe = env.eventually(
        &format!(
            "kubectl run dns-probe-$RANDOM --rm -i --restart=Never --image=busybox:1.36 -- \
             sh -c 'wget -qO- http://registry.{DOMAIN}/v2/ && wget -qO- http://grafana.{DOMAIN}/api/health'"
        ),
        Duration::from_secs(120),
    );
    assert!(probe.contains("database"), "grafana health: {probe}");

    // 6. down keeps the cluster's workloads; up brings them back.
    env.ok(&["down"]);
    env.ok(&["up", "--timeout", "600"]);
    env.sh_ok("kubectl rollout status deploy/hello-traefik --timeout=180s");
    env.eventually(
        &format!("curl -fsS --resolve {host}:80:127.0.0.2 http://{host}/"),
        Duration::from_secs(120),
    );
    let status = env.ok(&["status", "-o", "json"]);
    assert!(status.stdout.contains("\"cluster\""), "{status}");

    // 7. --purge removes the cluster.
    env.ok(&["down", "--purge", "--yes"]);
    let clusters = env.sh_ok("kind get clusters 2>/dev/null || true");
    assert!(!clusters.lines().any(|l| l.trim() == NAME), "{clusters}");
}

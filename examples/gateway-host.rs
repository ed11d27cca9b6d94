//! The gateway's config and route pipeline on a real nginx on this host, for
//! `bench/gateway-reload.sh` (the gateway container needs an nginx image; the pipeline is the
//! same, only the [`Nginx`] seam differs).
//!
//! ```text
//! gateway-host setup STATE PREFIX HTTP_PORT HTTPS_PORT   live dir + nginx.conf in PREFIX
//! gateway-host apply STATE PREFIX HTTP_PORT HTTPS_PORT   serve STATE's routes: check, swap, reload, verify
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use devenv::config::Config;
use devenv::gateway::{self, Nginx};
use devenv::render::nginx::{Layout, ROUTES_FILE, conf};

struct HostNginx {
    prefix: PathBuf,
    live: PathBuf,
    http: String,
    https: String,
}

impl HostNginx {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nginx");
        c.arg("-e")
            .arg("stderr")
            .arg("-p")
            .arg(&self.prefix)
            .arg("-g")
            .arg(format!("pid {};", self.prefix.join("nginx.pid").display()));
        if !args.contains(&"-c") {
            c.arg("-c").arg(self.prefix.join("nginx.conf"));
        }
        c.args(args);
        c
    }
}

impl Nginx for HostNginx {
    fn live_dir(&self) -> String {
        self.live.display().to_string()
    }
    fn listen(&self) -> (String, String) {
        (self.http.clone(), self.https.clone())
    }
    fn in_container(&self) -> bool {
        false
    }
    async fn run(&self, args: &[&str]) -> anyhow::Result<(bool, String)> {
        let out = self.command(args).output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
    async fn generation(&self) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", "-H"])
            .arg(format!("Host: {}", gateway::conf::GENERATION_HOST))
            .arg(format!("http://{}/", self.http))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [verb, state, prefix, http, https] = args.as_slice() else {
        anyhow::bail!("usage: gateway-host setup|apply STATE PREFIX HTTP_PORT HTTPS_PORT");
    };
    let state = Path::new(state);
    let config = Config::default();
    let nginx = HostNginx {
        prefix: PathBuf::from(prefix),
        live: gateway::dir(state),
        http: format!("127.0.0.1:{http}"),
        https: format!("127.0.0.1:{https}"),
    };
    match verb.as_str() {
        "setup" => {
            gateway::prepare(&config, state)?;
            std::fs::remove_file(nginx.live.join(ROUTES_FILE))?;
            let layout = Layout::at(&nginx.http, &nginx.https, &nginx.live_dir(), ROUTES_FILE);
            std::fs::create_dir_all(&nginx.prefix)?;
            std::fs::write(nginx.prefix.join("nginx.conf"), conf(&config, &layout)?)?;
        }
        "apply" => {
            let routes = devenv::routes::load(state)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let applied = rt.block_on(gateway::apply(&config, state, &routes.routes, &nginx))?;
            println!("{applied:?}");
        }
        other => anyhow::bail!("unknown verb {other}"),
    }
    Ok(())
}

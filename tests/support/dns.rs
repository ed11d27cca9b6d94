//! The harness of the DNS tests: `devenv dns serve` as a child process on a free loopback
//! port, `dig` against it, a dnsmasq upstream, raw UDP exchanges, and running devenv as an
//! unprivileged user.
//!
//! Not for: assertions; each `tests/dns_*.rs` file holds the tests of one subject.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{devenv, free_port, run, skip, tool};

/// A `devenv dns serve --port 0` process, stopped with SIGTERM on drop.
pub struct Serve {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Serve {
    pub fn start(home: &Path, extra: &[&str]) -> Serve {
        let mut cmd = devenv(home);
        cmd.args(["dns", "serve", "--port", "0"]).args(extra);
        Serve::spawn(cmd)
    }

    /// As [`Serve::start`], in a process whose open-file limit (soft and hard) is `files`.
    pub fn start_limited(home: &Path, extra: &[&str], files: u64) -> Serve {
        use std::os::unix::process::CommandExt;
        let mut cmd = devenv(home);
        cmd.args(["dns", "serve", "--port", "0"]).args(extra);
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: files as libc::rlim_t,
                    rlim_max: files as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Serve::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Serve {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("devenv dns serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        {
            let mut err = child.stderr.take().unwrap();
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let addr = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve printed {line:?} instead of its address; stderr: {}",
                stderr.lock().unwrap()
            )
        });
        Serve {
            child,
            addr,
            stderr,
        }
    }

    /// The serving process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, and the exit code.
    pub fn stop(mut self) -> i32 {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dig` against a port, one try, short timeout; the full output.
pub fn dig(port: &str, args: &[&str]) -> String {
    let dig = tool("dig").expect("checked by the caller");
    let out = Command::new(dig)
        .args(["@127.0.0.1", "-p", port, "+time=2", "+tries=1"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn short(port: &str, args: &[&str]) -> Vec<String> {
    let mut a = vec!["+short"];
    a.extend_from_slice(args);
    dig(port, &a).lines().map(str::to_string).collect()
}

pub fn status_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no status in dig output:\n{out}"))
}

pub fn flags_of(out: &str) -> Vec<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .map(|s| {
            s.split(';')
                .next()
                .unwrap()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub fn home_with(config: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("devenv.yaml"), config).unwrap();
    home
}

pub const CONFIG: &str = "\
services:
  grafana:
    address: 127.0.0.3
dns:
  port: 5399
  views:
    - cidr: 127.0.0.5/32
      infrastructure: 172.30.80.1
      applications: 172.30.80.2
  records:
    - {name: api, type: A, value: 10.1.2.3}
    - {name: www, type: CNAME, value: registry.macula.local}
";

/// A dnsmasq answering `upstream.test` on a loopback port, killed on drop.
pub struct Dnsmasq {
    child: Child,
    pub port: u16,
}

impl Dnsmasq {
    pub fn start() -> Option<Dnsmasq> {
        let bin = tool("dnsmasq")?;
        let port = free_port();
        let child = Command::new(bin)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--except-interface=nonexistent",
                &format!("--port={port}"),
                "--local-ttl=300",
                "--neg-ttl=60",
                "--address=/upstream.test/192.0.2.7",
                "--address=/nothing.example/",
                "--txt-record=txt.upstream.test,hello from dnsmasq",
                "--pid-file=",
                "--user=root",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dnsmasq starts");
        let d = Dnsmasq { child, port };
        // Ready when it answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if short(&port.to_string(), &["upstream.test"]) == ["192.0.2.7"] {
                return Some(d);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dnsmasq did not answer on port {port}");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send `packet` and return the answer, if any arrives within a short wait.
pub fn exchange(socket: &UdpSocket, server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(packet, server).unwrap();
    let mut buf = [0u8; 4096];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

pub fn plain_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The lowest port an unprivileged process may bind (Linux's sysctl; 1024 elsewhere).
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1024)
}

/// `devenv` run as user and group `nobody` (65534) through util-linux's `setpriv`, with no
/// capabilities, in `home` (which nobody must be able to write). When this host lets anyone
/// bind port 53 (`net.ipv4.ip_unprivileged_port_start`, 0 in Docker containers), it runs in a
/// new network namespace, where the limit is back at its default of 1024. `None` after a skip
/// notice when that is not possible.
pub fn devenv_as_nobody(home: &Path) -> Option<Command> {
    let setpriv = tool("setpriv")?;
    let own_netns = unprivileged_port_start() <= 53;
    let unshare = if own_netns {
        Some(tool("unshare")?)
    } else {
        None
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o777)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut cmd = match &unshare {
            Some(unshare) => {
                let mut c = Command::new(unshare);
                c.args(["--net", "--"]).arg(&setpriv);
                c
            }
            None => Command::new(&setpriv),
        };
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(super::devenv_bin())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("DEVENV_STATE_DIR", home.join("state"))
            .env("NO_COLOR", "1")
            .current_dir(home);
        cmd
    };
    let probe = run(&mut as_nobody(&["--version"]));
    if probe.code != 0 {
        skip(&format!(
            "cannot run {} as the user nobody{}: {probe}",
            super::devenv_bin(),
            if own_netns {
                " in a new network namespace"
            } else {
                " (a parent directory closed to others?)"
            }
        ));
        return None;
    }
    Some(as_nobody(&[]))
}

/// Run `cmd` to completion, failing the test (not hanging it) when it is still running after
/// a generous deadline: for commands that used to serve forever.
pub fn run_or_hang(cmd: &mut Command) -> super::Run {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} was still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    super::Run::of(child.wait_with_output().unwrap())
}

//! A throwaway PostgreSQL cluster from the machine's own packages (Debian's
//! /usr/lib/postgresql/<version>/bin), for tests that need a real database: initdb in a temp
//! dir, the server on 127.0.0.1 and a unix socket there, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{Guard, wait_for};
use super::{free_port, is_root, run, skip};

/// A throwaway Postgres 15 cluster on 127.0.0.1 and a unix socket in a temp dir, run as the
/// `postgres` user when the tests run as root (Postgres refuses root).
pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    _server: Guard,
    as_postgres: bool,
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop()
}

impl Postgres {
    /// `bin` run as the cluster's owner.
    pub fn command(&self, bin: &Path) -> Command {
        user_command(self.as_postgres, bin)
    }

    /// Start one in `dir`, or `None` (after a skip notice) without PostgreSQL.
    pub fn start(dir: &Path) -> Option<Postgres> {
        let (Some(initdb), Some(postgres)) = (pg_bin("initdb"), pg_bin("postgres")) else {
            skip("PostgreSQL (initdb, postgres under /usr/lib/postgresql) is not installed");
            return None;
        };
        let as_postgres = is_root();
        std::fs::create_dir_all(dir).unwrap();
        if as_postgres {
            let r = run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir));
            assert_eq!(r.code, 0, "{r}");
            // The temp dir's parents must be traversable by postgres.
            let mut p = dir.parent();
            while let Some(d) = p {
                if d.starts_with(std::env::temp_dir()) && d != std::env::temp_dir() {
                    let _ = run(Command::new("chmod").arg("o+x").arg(d));
                }
                p = d.parent();
            }
        }
        let data = dir.join("data");
        let r = run(user_command(as_postgres, &initdb)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ]));
        assert_eq!(r.code, 0, "initdb failed\n{r}");
        let port = free_port();
        let mut server = Guard::spawn(
            "postgres",
            user_command(as_postgres, &postgres)
                .arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(dir)
                .arg("-p")
                .arg(port.to_string())
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
        );
        let pg_isready = pg_bin("pg_isready").expect("pg_isready is installed with postgres");
        wait_for("postgres", &mut server, || {
            run(Command::new(&pg_isready)
                .arg("-h")
                .arg(dir)
                .arg("-p")
                .arg(port.to_string()))
            .code
                == 0
        });
        Some(Postgres {
            dir: dir.to_path_buf(),
            port,
            _server: server,
            as_postgres,
        })
    }

    /// psql as `user` over TCP (password auth, as PowerDNS connects), stopping on any error.
    pub fn psql(&self, user: &str, password: &str, db: &str) -> Command {
        let psql = pg_bin("psql").or_else(|| Some("psql".into())).unwrap();
        let mut cmd = self.command(&psql);
        cmd.env("PGPASSWORD", password)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                db,
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q"]);
        cmd
    }

    /// psql as the superuser over the unix socket.
    pub fn psql_admin(&self) -> Command {
        let psql = pg_bin("psql").or_else(|| Some("psql".into())).unwrap();
        let mut cmd = self.command(&psql);
        cmd.arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q"]);
        cmd
    }
}

fn user_command(as_postgres: bool, bin: &Path) -> Command {
    if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin);
        cmd
    } else {
        Command::new(bin)
    }
}

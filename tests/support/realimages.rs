//! The real programs of the core tier as local images, for tests that run devenv on them:
//! nginx, the Distribution registry, PostgreSQL, PowerDNS with its pgsql backend and
//! Prometheus, built from Debian packages by `tests/support/realimages/build.sh` (no image
//! registry is involved), and an environment that runs them.
//!
//! Not for: the fast fault tests, which keep the busybox stand-in (`docker::standin_image`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::docker::{Env, SERVICES};
use super::{run, skip, tool};

/// The program image of each devenv service it stands in for (the key is the service).
pub type Images = BTreeMap<String, String>;

/// Which program image each enabled service runs; every other built-in service is disabled
/// (no Debian package exists for registry-ui or PowerDNS-Admin, and the other tiers are not
/// part of the real-program tests).
pub const PROGRAMS: &[(&str, &str)] = &[
    ("gateway", "gateway"),
    ("registry", "registry"),
    ("pdns-db", "postgres"),
    ("pdns", "pdns"),
    ("prometheus", "prometheus"),
];

/// The images, built once per test process (in seconds when the engine already has them), or
/// `None` after a skip notice when they are missing and cannot be built here (no debootstrap,
/// not root). Panics under `DEVENV_REQUIRE_DOCKER=1` instead of skipping.
pub fn images() -> Option<Images> {
    let by_program = programs()?;
    Some(
        PROGRAMS
            .iter()
            .map(|(service, program)| {
                let image = by_program
                    .get(*program)
                    .unwrap_or_else(|| panic!("build.sh did not name {program}: {by_program:?}"));
                (service.to_string(), image.clone())
            })
            .collect(),
    )
}

/// The image of one program of `build.sh` (`named`, say), built as [`images`] says.
pub fn program(name: &str) -> Option<String> {
    let by_program = programs()?;
    Some(
        by_program
            .get(name)
            .unwrap_or_else(|| panic!("build.sh did not name {name}: {by_program:?}"))
            .clone(),
    )
}

/// Every program's image, by program, built once per test process.
fn programs() -> Option<BTreeMap<String, String>> {
    static PROGRAM_IMAGES: OnceLock<Option<BTreeMap<String, String>>> = OnceLock::new();
    PROGRAM_IMAGES
        .get_or_init(|| {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/realimages/build.sh");
            let built = run(Command::new("bash").arg(&script).arg("--check")).code == 0;
            if !built {
                tool("debootstrap")?;
                if !super::is_root() {
                    skip("building the real-program images needs root (debootstrap, chroot)");
                    return None;
                }
            }
            let r = run(Command::new("bash").arg(&script));
            assert_eq!(r.code, 0, "building the real-program images failed:\n{r}");
            Some(
                r.stdout
                    .lines()
                    .filter_map(|l| l.split_once(' '))
                    .map(|(p, i)| (p.to_string(), i.to_string()))
                    .collect(),
            )
        })
        .clone()
}

/// An environment for `test` running the real programs of [`PROGRAMS`], every other service
/// disabled, nothing published (publish what the test reaches with [`Env::publish`]).
pub fn env(test: &str, images: &Images) -> Env {
    let placeholder = images.values().next().expect("at least one image");
    let mut env = Env::new(test, placeholder);
    for (service, _) in SERVICES {
        match images.get(*service) {
            Some(image) => {
                env.image_overrides
                    .insert(service.to_string(), image.clone());
                env.extra
                    .insert(service.to_string(), "    enabled: true\n".into());
            }
            None => {
                env.extra
                    .insert(service.to_string(), "    enabled: false\n".into());
            }
        }
    }
    env.write();
    env
}

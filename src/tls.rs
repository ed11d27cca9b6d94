//! devenv's local certificate authority and the wildcard certificate it issues for
//! `*.<domain>` and the apex: the ingress's default certificate, and the CA pods (and, later,
//! browsers) trust.
//!
//! Both live in `<state dir>/tls/` (mode 0700; keys 0600, written atomically) and are reused
//! across runs. The certificate is issued again when it nears expiry, when the domain's names
//! change, or when it was not signed by the CA on disk. The CA is made once and never replaced
//! behind the user's back: a CA file that is missing its pair, unreadable, not a key, a key
//! that does not match its certificate, or a key others can read is an error (exit 3) saying
//! what to do. Not for: putting the material into the cluster (`render::cluster::certificates`)
//! or into OS trust stores.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::config::Config;
use crate::error::Failure;

/// The directory under the state directory that holds the CA and the certificate.
pub const DIR: &str = "tls";
/// The CA certificate (PEM).
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key (PEM, mode 0600).
pub const CA_KEY: &str = "ca.key";
/// The wildcard certificate (PEM).
pub const CERT: &str = "tls.crt";
/// Its private key (PEM, mode 0600).
pub const KEY: &str = "tls.key";
/// How long a new CA is valid.
const CA_LIFETIME: Duration = Duration::days(3650);
/// How long a new certificate is valid.
const CERT_LIFETIME: Duration = Duration::days(365);
/// A certificate with less than this left is issued again.
pub const RENEW_BEFORE: Duration = Duration::days(30);
/// Backdating of `notBefore`, for clocks a little behind (containers, VMs).
const BACKDATE: Duration = Duration::hours(1);

/// The CA certificate and the current wildcard certificate with its key.
pub struct Bundle {
    /// The directory they were read from or written to.
    pub dir: PathBuf,
    /// The CA certificate, PEM.
    pub ca_cert_pem: String,
    /// The wildcard certificate, PEM.
    pub cert_pem: String,
    key_pem: String,
    /// The names the certificate is for (`*.<domain>`, `<domain>`).
    pub names: Vec<String>,
    /// When the certificate expires.
    pub not_after: OffsetDateTime,
    /// Whether this call made a new CA.
    pub ca_created: bool,
    /// Whether this call issued a new certificate (first run, renewal, new names, new CA).
    pub issued: bool,
}

impl Bundle {
    /// The certificate's private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("dir", &self.dir)
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .field("ca_created", &self.ca_created)
            .field("issued", &self.issued)
            .finish_non_exhaustive()
    }
}

/// The names of the wildcard certificate: `*.<domain>` and the apex.
pub fn names(config: &Config) -> Vec<String> {
    let domain = config.domain.trim_end_matches('.').to_ascii_lowercase();
    vec![format!("*.{domain}"), domain]
}

/// Make or reuse the CA and the certificate in `<state_dir>/tls/`.
pub fn ensure(state_dir: &Path, config: &Config) -> anyhow::Result<Bundle> {
    ensure_at(state_dir, config, OffsetDateTime::now_utc())
}

/// Delete the CA and the certificate (`down --purge`: the environment starts over; anything
/// that trusted the old CA must trust the new one).
pub fn remove(state_dir: &Path) -> anyhow::Result<()> {
    let dir = state_dir.join(DIR);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// [`ensure`] as if the time were `now` (tests use it for renewal).
pub fn ensure_at(state_dir: &Path, config: &Config, now: OffsetDateTime) -> anyhow::Result<Bundle> {
    let dir = state_dir.join(DIR);
    private_dir(&dir)?;
    let (ca_key, ca_pem, ca_created) = ca(&dir, config, now)?;
    let names = names(config);
    let cert_path = dir.join(CERT);
    let key_path = dir.join(KEY);
    let existing = match (exists(&cert_path)?, exists(&key_path)?) {
        (true, true) => current_cert(&cert_path, &key_path, &ca_pem)?,
        _ => None,
    };
    let keep = existing.filter(|c| {
        !ca_created && c.signed_by_ca && c.names == names && c.not_after - now >= RENEW_BEFORE
    });
    let (cert_pem, key_pem, not_after, issued) = match keep {
        Some(c) => (c.cert_pem, c.key_pem, c.not_after, false),
        None => {
            let ca_not_after = read_cert(&dir.join(CA_CERT), &ca_pem)?.not_after;
            let not_after = (now + CERT_LIFETIME).min(ca_not_after);
            let (cert_pem, key_pem) = issue(&names, &ca_pem, &ca_key, now, not_after)?;
            crate::state::write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
            crate::state::write_atomic(&cert_path, cert_pem.as_bytes(), 0o644)?;
            (cert_pem, key_pem, not_after, true)
        }
    };
    Ok(Bundle {
        dir,
        ca_cert_pem: ca_pem,
        cert_pem,
        key_pem,
        names,
        not_after,
        ca_created,
        issued,
    })
}

/// Create `dir` (and any missing parent) with mode 0700; refuse one others can enter.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("reading the mode of {}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Failure::environment(
                format!(
                    "{} holds private keys but its mode is {:o}: others can enter it",
                    dir.display(),
                    mode & 0o777
                ),
                format!("run `chmod 700 {}` and try again", dir.display()),
            )
            .into());
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(())
}

fn exists(path: &Path) -> anyhow::Result<bool> {
    path.try_exists()
        .with_context(|| format!("looking for {}", path.display()))
}

/// Read a private key, refusing one that others can read.
fn read_key(path: &Path, what: &str) -> anyhow::Result<KeyPair> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading the mode of {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Failure::environment(
                format!(
                    "{what} {} has mode {:o}: others can read it",
                    path.display(),
                    mode & 0o777
                ),
                format!(
                    "run `chmod 600 {}`; if others may have copied it, remove {} to start over",
                    path.display(),
                    path.parent().unwrap_or(path).display()
                ),
            )
            .into());
        }
    }
    let unusable = |why: String| -> anyhow::Error {
        Failure::environment(
            format!("{what} {} cannot be used: {why}", path.display()),
            format!(
                "restore it from a backup, or remove {} to start over with a new CA (whatever \
                 trusts the old one must then trust the new one); devenv never replaces a CA \
                 on its own",
                path.parent().unwrap_or(path).display()
            ),
        )
        .into()
    };
    let text = std::fs::read_to_string(path).map_err(|e| unusable(e.to_string()))?;
    KeyPair::from_pem(&text).map_err(|e| unusable(format!("not a private key ({e})")))
}

/// What devenv reads back from a certificate.
struct ReadCert {
    not_after: OffsetDateTime,
    names: Vec<String>,
    /// The subject public key (the raw key bits).
    public_key: Vec<u8>,
}

fn read_cert(path: &Path, pem: &str) -> anyhow::Result<ReadCert> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("{} is not a PEM certificate: {e}", path.display()))?;
    let cert = block
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("{} is not an X.509 certificate: {e}", path.display()))?;
    let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .with_context(|| format!("the expiry date of {}", path.display()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_string());
            }
        }
    }
    Ok(ReadCert {
        not_after,
        names,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// Whether the certificate `pem` carries a signature the CA's key made.
fn signed_by(pem: &str, ca_pem: &str) -> bool {
    let parse = |p: &str| {
        x509_parser::pem::parse_x509_pem(p.as_bytes())
            .ok()
            .map(|r| r.1)
    };
    let (Some(leaf), Some(ca)) = (parse(pem), parse(ca_pem)) else {
        return false;
    };
    let (Ok(leaf), Ok(ca)) = (leaf.parse_x509(), ca.parse_x509()) else {
        return false;
    };
    leaf.issuer() == ca.subject() && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// The CA: read and checked when both files are there, made when neither is, an error
/// otherwise. Returns its key, its certificate and whether it was made now.
fn ca(dir: &Path, config: &Config, now: OffsetDateTime) -> anyhow::Result<(KeyPair, String, bool)> {
    let key_path = dir.join(CA_KEY);
    let cert_path = dir.join(CA_CERT);
    match (exists(&key_path)?, exists(&cert_path)?) {
        (false, false) => {
            let key = KeyPair::generate().context("generating the CA's key")?;
            let params = ca_params(config, now);
            let cert = params
                .self_signed(&key)
                .context("signing the CA certificate")?;
            crate::state::write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
            crate::state::write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)?;
            Ok((key, cert.pem(), true))
        }
        (true, true) => {
            let key = read_key(&key_path, "the CA's key")?;
            let pem = std::fs::read_to_string(&cert_path)
                .with_context(|| format!("reading {}", cert_path.display()))?;
            let cert = read_cert(&cert_path, &pem).map_err(|e| {
                anyhow::Error::new(Failure::environment(
                    format!("{e:#}"),
                    format!(
                        "restore {} from a backup, or remove {} to start over with a new CA",
                        cert_path.display(),
                        dir.display()
                    ),
                ))
            })?;
            if cert.public_key != key.public_key_raw() {
                return Err(Failure::environment(
                    format!(
                        "the CA's key {} does not belong to its certificate {}",
                        key_path.display(),
                        cert_path.display()
                    ),
                    format!(
                        "put the matching pair back, or remove {} to start over with a new CA",
                        dir.display()
                    ),
                )
                .into());
            }
            if cert.not_after - now < RENEW_BEFORE {
                return Err(Failure::environment(
                    format!(
                        "devenv's CA in {} expires on {} (or has expired)",
                        dir.display(),
                        cert.not_after.date()
                    ),
                    format!(
                        "remove {} to make a new CA, and trust the new one where the old one was trusted",
                        dir.display()
                    ),
                )
                .into());
            }
            Ok((key, pem, false))
        }
        (key, _) => {
            let (present, missing) = if key {
                (&key_path, &cert_path)
            } else {
                (&cert_path, &key_path)
            };
            Err(Failure::environment(
                format!(
                    "{} is there but {} is missing: devenv does not replace a CA on its own",
                    present.display(),
                    missing.display()
                ),
                format!(
                    "restore {} from a backup, or remove {} to start over with a new CA",
                    missing.display(),
                    dir.display()
                ),
            )
            .into())
        }
    }
}

/// The certificate on disk with its key, when both are usable. A key that does not match the
/// certificate is an error.
struct Current {
    cert_pem: String,
    key_pem: String,
    names: Vec<String>,
    not_after: OffsetDateTime,
    signed_by_ca: bool,
}

fn current_cert(
    cert_path: &Path,
    key_path: &Path,
    ca_pem: &str,
) -> anyhow::Result<Option<Current>> {
    let key = read_key(key_path, "the certificate's key")?;
    let pem = std::fs::read_to_string(cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?;
    // A certificate that does not parse is issued again: it is derived data.
    let Ok(cert) = read_cert(cert_path, &pem) else {
        return Ok(None);
    };
    if cert.public_key != key.public_key_raw() {
        return Err(Failure::environment(
            format!(
                "the key {} does not belong to the certificate {}",
                key_path.display(),
                cert_path.display()
            ),
            "remove both files; devenv issues a new certificate from its CA on the next run"
                .to_string(),
        )
        .into());
    }
    Ok(Some(Current {
        signed_by_ca: signed_by(&pem, ca_pem),
        cert_pem: pem,
        key_pem: key.serialize_pem(),
        names: cert.names,
        not_after: cert.not_after,
    }))
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    // Positive and without a leading zero byte, as DER integers want.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn ca_params(config: &Config, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("devenv local CA ({})", config.name),
    );
    dn.push(DnType::OrganizationName, "devenv");
    dn.push(
        DnType::OrganizationalUnitName,
        format!("environment {}", config.name),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_LIFETIME;
    params.serial_number = Some(serial());
    params
}

/// Issue a certificate for `names` from the CA; returns (certificate PEM, key PEM).
fn issue(
    names: &[String],
    ca_pem: &str,
    ca_key: &KeyPair,
    now: OffsetDateTime,
    not_after: OffsetDateTime,
) -> anyhow::Result<(String, String)> {
    let mut params = CertificateParams::new(names.to_vec()).context("the certificate's names")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names[0].clone());
    dn.push(DnType::OrganizationName, "devenv");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = not_after;
    params.serial_number = Some(serial());
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).context("reading the CA certificate")?;
    let key = KeyPair::generate().context("generating the certificate's key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FailureKind, failure};
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn environment_failure(err: &anyhow::Error) -> String {
        let f = failure(err).unwrap_or_else(|| panic!("not a Failure: {err:#}"));
        assert_eq!(f.kind, FailureKind::Environment, "{err:#}");
        assert!(f.hint.is_some(), "{err:#}");
        f.message.clone()
    }

    #[test]
    fn first_run_makes_a_private_ca_and_a_wildcard_certificate() {
        let state = tempfile::tempdir().unwrap();
        let b = ensure(state.path(), &Config::default()).unwrap();
        assert!(b.ca_created && b.issued);
        assert_eq!(b.names, ["*.macula.local", "macula.local"]);
        let dir = state.path().join(DIR);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CA_KEY)), 0o600);
        assert_eq!(mode(&dir.join(KEY)), 0o600);
        let ca = read_cert(&dir.join(CA_CERT), &b.ca_cert_pem).unwrap();
        assert!(ca.not_after > OffsetDateTime::now_utc() + Duration::days(3000));
        let leaf = read_cert(&dir.join(CERT), &b.cert_pem).unwrap();
        assert_eq!(leaf.names, b.names);
        assert!(signed_by(&b.cert_pem, &b.ca_cert_pem));
        let (_, ca_block) = x509_parser::pem::parse_x509_pem(b.ca_cert_pem.as_bytes()).unwrap();
        let subject = ca_block.parse_x509().unwrap().subject().to_string();
        assert!(
            subject.contains("devenv local CA (macula)") && subject.contains("environment macula"),
            "{subject}"
        );
        assert!(format!("{b:?}").find("PRIVATE").is_none());
    }

    #[test]
    fn a_second_run_reuses_both() {
        let state = tempfile::tempdir().unwrap();
        let first = ensure(state.path(), &Config::default()).unwrap();
        let second = ensure(state.path(), &Config::default()).unwrap();
        assert!(!second.ca_created && !second.issued);
        assert_eq!(first.cert_pem, second.cert_pem);
        assert_eq!(first.key_pem(), second.key_pem());
    }

    #[test]
    fn renewed_ahead_of_expiry_and_when_the_domain_changes_with_the_same_ca() {
        let state = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let first = ensure_at(state.path(), &Config::default(), now).unwrap();
        let later = now + CERT_LIFETIME - RENEW_BEFORE + Duration::days(1);
        let renewed = ensure_at(state.path(), &Config::default(), later).unwrap();
        assert!(renewed.issued && !renewed.ca_created);
        assert_ne!(renewed.cert_pem, first.cert_pem);
        assert_eq!(renewed.ca_cert_pem, first.ca_cert_pem);
        assert!(renewed.not_after > first.not_after);

        let other = Config {
            domain: "dev.test".into(),
            ..Config::default()
        };
        let moved = ensure_at(state.path(), &other, later).unwrap();
        assert!(moved.issued && !moved.ca_created);
        assert_eq!(moved.names, ["*.dev.test", "dev.test"]);
        assert!(signed_by(&moved.cert_pem, &first.ca_cert_pem));
    }

    #[test]
    fn a_certificate_from_another_ca_is_issued_again() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        ensure(a.path(), &Config::default()).unwrap();
        let from_b = ensure(b.path(), &Config::default()).unwrap();
        for f in [CERT, KEY] {
            std::fs::copy(from_b.dir.join(f), a.path().join(DIR).join(f)).unwrap();
        }
        let again = ensure(a.path(), &Config::default()).unwrap();
        assert!(again.issued);
        assert!(signed_by(&again.cert_pem, &again.ca_cert_pem));
    }

    #[test]
    fn a_readable_key_is_refused_not_replaced() {
        let state = tempfile::tempdir().unwrap();
        ensure(state.path(), &Config::default()).unwrap();
        let key = state.path().join(DIR).join(CA_KEY);
        let before = std::fs::read(&key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ensure(state.path(), &Config::default()).unwrap_err();
        assert!(environment_failure(&err).contains("mode 644"), "{err:#}");
        assert!(format!("{:?}", failure(&err).unwrap().hint).contains("chmod 600"));
        assert_eq!(std::fs::read(&key).unwrap(), before);
    }

    #[test]
    fn an_unusable_or_mismatched_or_half_missing_ca_is_an_error_never_a_new_ca() {
        let state = tempfile::tempdir().unwrap();
        ensure(state.path(), &Config::default()).unwrap();
        let dir = state.path().join(DIR);
        let ca_cert = std::fs::read(dir.join(CA_CERT)).unwrap();

        // Garbage in the key file.
        crate::state::write_atomic(&dir.join(CA_KEY), b"not a key", 0o600).unwrap();
        let err = ensure(state.path(), &Config::default()).unwrap_err();
        assert!(
            environment_failure(&err).contains("cannot be used"),
            "{err:#}"
        );
        assert_eq!(std::fs::read(dir.join(CA_CERT)).unwrap(), ca_cert);

        // Another CA's key.
        let other = tempfile::tempdir().unwrap();
        ensure(other.path(), &Config::default()).unwrap();
        std::fs::copy(other.path().join(DIR).join(CA_KEY), dir.join(CA_KEY)).unwrap();
        let err = ensure(state.path(), &Config::default()).unwrap_err();
        assert!(
            environment_failure(&err).contains("does not belong"),
            "{err:#}"
        );

        // No key at all.
        std::fs::remove_file(dir.join(CA_KEY)).unwrap();
        let err = ensure(state.path(), &Config::default()).unwrap_err();
        assert!(environment_failure(&err).contains("is missing"), "{err:#}");
        assert_eq!(std::fs::read(dir.join(CA_CERT)).unwrap(), ca_cert);
    }

    #[test]
    fn a_certificate_key_that_does_not_match_is_an_error() {
        let state = tempfile::tempdir().unwrap();
        ensure(state.path(), &Config::default()).unwrap();
        let other = tempfile::tempdir().unwrap();
        ensure(other.path(), &Config::default()).unwrap();
        std::fs::copy(
            other.path().join(DIR).join(KEY),
            state.path().join(DIR).join(KEY),
        )
        .unwrap();
        let err = ensure(state.path(), &Config::default()).unwrap_err();
        assert!(
            environment_failure(&err).contains("does not belong"),
            "{err:#}"
        );
    }

    #[test]
    fn an_open_directory_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join(DIR);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure(state.path(), &Config::default()).unwrap_err();
        assert!(
            environment_failure(&err).contains("others can enter"),
            "{err:#}"
        );
        assert!(!dir.join(CA_KEY).exists());
    }
}

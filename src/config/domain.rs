//! Whether a domain takes names away from the real DNS: a public suffix (`dev`, `com`,
//! `github.io`) or a name under one (`google.com`, `dev.example.org`) is answered by devenv for
//! this machine instead of by the world, and the whole `local` is mDNS's (a resolver that
//! answers all of `.local` fights Bonjour and Avahi). devenv's own subdomains of `local`
//! (`macula.local`) and the special-use names (RFC 6761, RFC 8375, ICANN's `.internal`) are
//! what a local domain should be.
//!
//! The public suffixes are Mozilla's Public Suffix List as the `psl` crate carries it (built
//! into the binary: nothing is fetched).

/// Special-use names that are never answered by the real DNS: a domain that is one of them
/// or under one is quiet.
const SPECIAL_USE: &[&str] = &[
    "test",
    "internal",
    "localhost",
    "home.arpa",
    "example",
    "invalid",
];

/// Why `domain` takes names from the real DNS, or `None` when it does not.
pub fn taken_from_real_dns(domain: &str) -> Option<String> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let under = |suffix: &str| domain == suffix || domain.ends_with(&format!(".{suffix}"));
    if SPECIAL_USE.iter().any(|s| under(s)) {
        return None;
    }
    if domain == "local" {
        return Some(
            "it is the whole `local` of mDNS: devenv would answer every `.local` name (printers, other machines) and fight Bonjour or Avahi"
                .to_string(),
        );
    }
    if under("local") {
        return None;
    }
    let suffix = psl::suffix(domain.as_bytes()).filter(|s| s.is_known())?;
    let suffix = std::str::from_utf8(suffix.as_bytes()).ok()?.to_string();
    Some(if suffix == domain {
        format!(
            "it is a public suffix (`{suffix}` names real domains): devenv would answer every name under it for this machine instead of the real DNS"
        )
    } else {
        format!(
            "it is under the public suffix `{suffix}`, so it can be a real domain: devenv would answer its names for this machine instead of the real DNS"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_suffixes_and_names_under_them_are_taken_from_the_real_dns() {
        for d in [
            "google.com",
            "dev",
            "com",
            "example.co.uk",
            "me.github.io",
            "dev.example.org",
            "Google.COM.",
        ] {
            assert!(taken_from_real_dns(d).is_some(), "{d}");
        }
        assert!(
            taken_from_real_dns("dev")
                .unwrap()
                .contains("it is a public suffix (`dev`")
        );
        assert!(
            taken_from_real_dns("google.com")
                .unwrap()
                .contains("under the public suffix `com`")
        );
        assert!(taken_from_real_dns("local").unwrap().contains("mDNS"));
    }

    #[test]
    fn special_use_names_and_subdomains_of_local_are_quiet() {
        for d in [
            "macula.local",
            "dev.local",
            "test",
            "shop.test",
            "internal",
            "corp.internal",
            "localhost",
            "app.localhost",
            "home.arpa",
            "lab.home.arpa",
            "example",
            "x.example",
            "invalid",
        ] {
            assert_eq!(taken_from_real_dns(d), None, "{d}");
        }
    }
}

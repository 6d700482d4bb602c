//! Image references as Docker users write them (`busybox`, `python:3.12-slim`,
//! `127.0.0.1:5000/ml/sklearn:1`, `ghcr.io/org/trainer@sha256:…`), in their full form.

/// A reference in full: registry, repository, and a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Parses a reference with Docker's defaults (registry `docker.io`, `library/` for one-part
/// names on it, tag `latest` when neither tag nor digest is given), through `oci_client`'s
/// parser; this adds only what sluice's store needs (a digest is sha256, in lower-case hex)
/// and says what is wrong in words a user can act on.
pub fn parse(s: &str) -> Result<Reference, String> {
    use oci_client::ParseError as E;
    let bad = |why: &str| format!("invalid image reference `{s}`: {why}");
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it is empty or contains spaces"));
    }
    const DIGEST: &str = "a digest is written sha256:<64 lower-case hex digits>";
    let sha256 = |d: &str| {
        d.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    };
    if s.split_once('@').is_some_and(|(_, d)| !sha256(d)) {
        return Err(bad(DIGEST));
    }
    let r = oci_client::Reference::try_from(s).map_err(|e| {
        bad(match e {
            E::NameEmpty => "it is empty or contains spaces",
            E::NameTooLong => "its repository is longer than 255 characters",
            E::DigestInvalidFormat | E::DigestInvalidLength | E::DigestUnsupported => DIGEST,
            E::TagInvalidFormat => "a tag is letters, digits, `_`, `.` and `-`, not first",
            E::NameContainsUppercase | E::ReferenceInvalidFormat => {
                "a repository is lower-case letters, digits and `._-`, in parts separated by `/`; \
                 a tag is letters, digits, `_`, `.` and `-` after the `:`, not first"
            }
        })
    })?;
    Ok(Reference {
        registry: r.registry().to_string(),
        repository: r.repository().to_string(),
        tag: r.tag().map(str::to_string),
        digest: r.digest().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn docker_defaults_apply() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("python:3.12-slim", "docker.io/library/python:3.12-slim"),
            ("org/trainer", "docker.io/org/trainer:latest"),
            ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
            ("127.0.0.1:5000/ml/sklearn:1", "127.0.0.1:5000/ml/sklearn:1"),
            ("localhost/app", "localhost/app:latest"),
            ("ghcr.io/org/t@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "ghcr.io/org/t@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).unwrap().to_string(), want, "{input}");
        }
    }

    #[test]
    fn bad_references_say_why() {
        for (input, why) in [
            ("", "empty"),
            ("Busybox", "lower-case"),
            ("a b", "spaces"),
            ("x@sha256:12", "64 lower-case"),
            ("x:bad/tag!", "lower-case"),
            ("x:-t", "a tag is"),
        ] {
            let e = parse(input).unwrap_err();
            assert!(e.contains(why), "{input}: {e}");
        }
    }
}

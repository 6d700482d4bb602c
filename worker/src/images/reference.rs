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

/// Parses a reference with Docker's defaults: registry `docker.io`, `library/` for one-part names
/// on it, tag `latest` when neither tag nor digest is given.
pub fn parse(s: &str) -> Result<Reference, String> {
    let bad = |why: &str| format!("invalid image reference `{s}`: {why}");
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it is empty or contains spaces"));
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            let (alg, hex) = d
                .split_once(':')
                .ok_or_else(|| bad("a digest is written sha256:<hex>"))?;
            if alg != "sha256"
                || hex.len() != 64
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return Err(bad("a digest is written sha256:<64 lower-case hex digits>"));
            }
            (r, Some(d.to_string()))
        }
        None => (s, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
        _ => (rest, None),
    };
    if let Some(t) = &tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !t.starts_with(['.', '-']);
        if !ok {
            return Err(bad("a tag is letters, digits, `_`, `.` and `-`"));
        }
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    let registry = if registry == "index.docker.io" {
        "docker.io".to_string()
    } else {
        registry
    };
    let repository = if registry == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && p.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if !repository.split('/').all(ok_part) {
        return Err(bad(
            "a repository is lower-case letters, digits and `._-`, in parts separated by `/`",
        ));
    }
    let tag = if tag.is_none() && digest.is_none() {
        Some("latest".to_string())
    } else {
        tag
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
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

//! Where an artifact's bytes are: the one parser of artifact URIs. Records carry them as text (in
//! the database and on the wire); whoever reads one parses it here.

use std::fmt;
use std::path::{Path, PathBuf};

/// An artifact's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactUri {
    /// `file:///abs/path`: a file or directory on the disk of the worker that produced it.
    File(PathBuf),
    /// Any other scheme (`s3://bucket/key`), kept as written: no artifact store reads it yet.
    Other { scheme: String, uri: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriError {
    pub uri: String,
    pub why: &'static str,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "artifact URI `{}`: {}", self.uri, self.why)
    }
}

impl std::error::Error for UriError {}

impl ArtifactUri {
    pub fn parse(uri: &str) -> Result<ArtifactUri, UriError> {
        let err = |why| UriError {
            uri: uri.to_string(),
            why,
        };
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(err("has no scheme (`file://…`, `s3://…`)"));
        };
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(err("has a malformed scheme"));
        }
        if scheme.eq_ignore_ascii_case("file") {
            if !rest.starts_with('/') {
                return Err(err("a file URI names an absolute path (`file:///…`)"));
            }
            if rest.contains('\0') {
                return Err(err("contains a NUL byte"));
            }
            return Ok(ArtifactUri::File(PathBuf::from(rest)));
        }
        Ok(ArtifactUri::Other {
            scheme: scheme.to_ascii_lowercase(),
            uri: uri.to_string(),
        })
    }

    /// The URI of a file or directory on this host (`path` absolute).
    pub fn file(path: &Path) -> ArtifactUri {
        ArtifactUri::File(path.to_path_buf())
    }

    /// The local path, for a `file://` URI.
    pub fn as_file(&self) -> Option<&Path> {
        match self {
            ArtifactUri::File(p) => Some(p),
            ArtifactUri::Other { .. } => None,
        }
    }
}

impl fmt::Display for ArtifactUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactUri::File(p) => write!(f, "file://{}", p.display()),
            ArtifactUri::Other { uri, .. } => f.write_str(uri),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_in_one_place() {
        assert_eq!(
            ArtifactUri::parse("file:///var/lib/sluice/a/model").unwrap(),
            ArtifactUri::File("/var/lib/sluice/a/model".into())
        );
        assert_eq!(
            ArtifactUri::parse("FILE:///x").unwrap().as_file(),
            Some(Path::new("/x"))
        );
        let s3 = ArtifactUri::parse("s3://bucket/runs/1/model").unwrap();
        assert_eq!(s3.as_file(), None);
        assert_eq!(s3.to_string(), "s3://bucket/runs/1/model");
        for (bad, why) in [
            ("/var/lib/x", "no scheme"),
            ("file://relative/x", "absolute path"),
            ("1x://a", "malformed scheme"),
            ("file:///a\0b", "NUL"),
        ] {
            let e = ArtifactUri::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_file_uri_prints_as_it_parses() {
        let u = ArtifactUri::file(Path::new("/d/run-1/train/model"));
        assert_eq!(u.to_string(), "file:///d/run-1/train/model");
        assert_eq!(ArtifactUri::parse(&u.to_string()).unwrap(), u);
    }
}

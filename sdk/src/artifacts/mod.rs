//! Where artifacts are kept, behind one trait: the server reads them for previews and downloads,
//! the scheduler and the worker ask whether a kept result's artifacts are still there, the worker
//! resolves its inputs through it. A local directory holds what a worker makes; with an object
//! store ([`object::ObjectArtifacts`], S3) the worker uploads there too and records its URI, and
//! [`Artifacts`] answers for both.

pub mod archive;
pub mod object;
pub mod transfer;
pub mod tree;

use crate::beneath::{self, BeneathError, Dir, Kind, Links};
pub use object::ObjectArtifacts;
use sluice_spec::uri::ArtifactUri;
use std::path::{Path, PathBuf};

/// The scheme of the URI of an upload a run was given when the server keeps it itself (no object
/// store): `upload://blake3-HEX`. A worker finds it beneath its own artifact directory
/// (`uploads/blake3-HEX`, where `sluice up`'s server puts it), in its cache, or fetches it from
/// the server.
pub const UPLOAD_SCHEME: &str = "upload";

/// An artifact found in a store: read it beneath `dir` at `rel`, never following a link out.
pub struct Located {
    /// The store's root, opened.
    pub dir: Dir,
    /// The artifact's place beneath it.
    pub rel: PathBuf,
    /// Its path on this host (what a container's bind mount names).
    pub path: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The URI names a place this store does not hold (another host's disk, another scheme).
    #[error("it is at {uri}, {why}")]
    Elsewhere { uri: String, why: String },
    #[error("it is gone from {0}")]
    Gone(String),
    #[error("{path}: {source}")]
    Refused { path: String, source: BeneathError },
    #[error("{0} is not a file or a directory")]
    NotFileOrDir(String),
    /// The object store did not answer, or answered with something that is not an artifact.
    #[error("{uri} cannot be read: {why}")]
    Unreadable { uri: String, why: String },
}

/// A place artifacts are kept.
pub trait ArtifactStore: Send + Sync {
    /// Finds the artifact at `uri`: a file or a directory, reached with no link on the way.
    /// Blocking: call it off the async threads.
    fn locate(&self, uri: &ArtifactUri) -> Result<Located, ArtifactError>;

    /// Whether every artifact is still where its URI says (a result whose artifact was deleted is
    /// not reused, and its step runs again). A URI that does not parse is never present.
    fn contains_all(&self, uris: &mut dyn Iterator<Item = &str>) -> bool {
        for u in uris {
            if !ArtifactUri::parse(u).is_ok_and(|u| self.locate(&u).is_ok()) {
                return false;
            }
        }
        true
    }
}

/// The artifacts a server or a worker can reach: a directory of this host, and the object store
/// when one is configured.
pub struct Artifacts {
    pub local: LocalDir,
    pub object: Option<std::sync::Arc<ObjectArtifacts>>,
}

impl Artifacts {
    pub fn local(root: impl Into<PathBuf>) -> Artifacts {
        Artifacts {
            local: LocalDir::new(root),
            object: None,
        }
    }

    /// Whether every artifact is still where its URI says: `s3://` ones in the object store
    /// (asked), `file://` ones beneath the local directory (looked at off the async threads).
    pub async fn contains_all(self: &std::sync::Arc<Self>, uris: Vec<String>) -> bool {
        let (objects, files): (Vec<String>, Vec<String>) = uris
            .into_iter()
            .partition(|u| u.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("s3://")));
        if !objects.is_empty() {
            match &self.object {
                Some(o) if o.contains_all(&objects).await => {}
                _ => return false,
            }
        }
        if files.is_empty() {
            return true;
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            me.local.contains_all(&mut files.iter().map(String::as_str))
        })
        .await
        .unwrap_or(false)
    }
}

/// Artifacts as files and directories beneath a directory of this host.
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// A store of the artifacts beneath `root` (canonical: URIs are compared with it as written).
    pub fn new(root: impl Into<PathBuf>) -> LocalDir {
        LocalDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl ArtifactStore for LocalDir {
    fn locate(&self, uri: &ArtifactUri) -> Result<Located, ArtifactError> {
        let elsewhere = |why: String| ArtifactError::Elsewhere {
            uri: uri.to_string(),
            why,
        };
        let Some(path) = uri.as_file() else {
            return Err(elsewhere("which this store cannot reach".into()));
        };
        let rel = beneath::strip_root(path, &self.root)
            .ok_or_else(|| elsewhere(format!("outside {}", self.root.display())))?;
        let dir = Dir::open(&self.root).map_err(|e| ArtifactError::Refused {
            path: self.root.display().to_string(),
            source: e,
        })?;
        let kind = match dir.entry(rel, Links::Never) {
            Ok((kind @ (Kind::File | Kind::Dir), _)) => kind,
            Ok(_) => return Err(ArtifactError::NotFileOrDir(path.display().to_string())),
            Err(BeneathError::NotFound(_)) => {
                return Err(ArtifactError::Gone(path.display().to_string()))
            }
            Err(e) => {
                return Err(ArtifactError::Refused {
                    path: path.display().to_string(),
                    source: e,
                })
            }
        };
        Ok(Located {
            dir,
            rel: rel.to_path_buf(),
            path: path.to_path_buf(),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_result_is_reusable_only_while_every_artifact_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::write(root.join("a"), "x").unwrap();
        std::fs::create_dir(root.join("b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        let store = LocalDir::new(&root);
        let uri = |n: &str| format!("file://{}", root.join(n).display());
        let (a, b, gone, link) = (uri("a"), uri("b"), uri("gone"), uri("link"));
        let cases: Vec<(Vec<&str>, bool)> = vec![
            (vec![], true),
            (vec![&a, &b], true),
            // One deleted: the step runs again.
            (vec![&a, &gone], false),
            // A link is not an artifact, and is never followed.
            (vec![&link], false),
            // Not in this store: never assumed present.
            (vec!["s3://bucket/a"], false),
            (vec!["file:///etc/passwd"], false),
            (vec!["not a uri"], false),
        ];
        for (uris, want) in cases {
            assert_eq!(
                store.contains_all(&mut uris.iter().copied()),
                want,
                "{uris:?}"
            );
        }
    }

    #[test]
    fn locate_says_why_an_artifact_is_not_served() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        let store = LocalDir::new(&root);
        let at = |u: &str| store.locate(&ArtifactUri::parse(u).unwrap()).err().unwrap();
        let link = format!("file://{}/link/passwd", root.display());
        assert!(
            matches!(at(&link), ArtifactError::Refused { .. }),
            "{}",
            at(&link)
        );
        assert!(matches!(at("file:///etc"), ArtifactError::Elsewhere { .. }));
        assert!(matches!(at("s3://b/k"), ArtifactError::Elsewhere { .. }));
        let gone = format!("file://{}/gone", root.display());
        assert!(at(&gone).to_string().contains("gone from"));
    }
}

//! Reading what a finished task left behind: output parameter files, and the size and BLAKE3
//! digest of each output artifact (a file, or a directory hashed over its sorted tree). The step
//! after it waits for these digests, so they are quick: BLAKE3 runs at several GB/s on one core,
//! and a large file is hashed through a read-only map rather than copied into a buffer. The step controls
//! every name under its output directories, so they are read only through [`beneath::Dir`]: a
//! link is never followed, an artifact that is itself a link is refused, and links inside a
//! directory artifact are recorded as links.

use sluice_sdk::api::{ArtifactRecord, TaskSpec};
use sluice_sdk::beneath::{self, BeneathError, Kind, Links};
use sluice_spec::uri::ArtifactUri;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Output parameter values larger than this are refused: they belong in an artifact.
pub const MAX_PARAM_BYTES: u64 = 256 * 1024;

pub use sluice_sdk::artifacts::tree::{hash_tree, MAX_ARTIFACT_ENTRIES};

/// The output parameters the task wrote. Unwritten ones are left out (the server says what is missing).
pub fn params(spec: &TaskSpec, dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if spec.output_params.is_empty() {
        return Ok(out);
    }
    let root = beneath::Dir::open(dir)
        .map_err(|e| format!("worker cannot read the output parameters: {e}"))?;
    for p in &spec.output_params {
        let name = Path::new(&p.name);
        let kind = match root.entry(name, Links::Never) {
            Ok((kind, st)) => (kind, st.st_size as u64),
            Err(BeneathError::NotFound(_)) => continue,
            Err(e) => return Err(format!("cannot read output parameter `{}`: {e}", p.name)),
        };
        match kind {
            (Kind::File, size) if size > MAX_PARAM_BYTES => {
                return Err(format!("output parameter `{}` is {size} bytes; parameters hold at most {MAX_PARAM_BYTES} bytes, use an artifact", p.name));
            }
            (Kind::File, _) => {}
            _ => {
                return Err(format!(
                    "output parameter `{}` at {} is not a regular file",
                    p.name, p.path
                ))
            }
        }
        let mut text = Vec::new();
        root.file(name, Links::Never)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                f.take(MAX_PARAM_BYTES + 1)
                    .read_to_end(&mut text)
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("cannot read output parameter `{}`: {e}", p.name))?;
        out.insert(p.name.clone(), String::from_utf8_lossy(&text).into_owned());
    }
    Ok(out)
}

/// Records for the output artifacts that exist under `dir` (a directory the worker made, named
/// by its canonical path, so that the recorded URIs need no resolving).
pub fn artifacts(spec: &TaskSpec, dir: &Path) -> Result<Vec<ArtifactRecord>, String> {
    let mut out = Vec::new();
    if spec.output_artifacts.is_empty() {
        return Ok(out);
    }
    let root = beneath::Dir::open(dir)
        .map_err(|e| format!("worker cannot read the output artifacts: {e}"))?;
    for a in &spec.output_artifacts {
        let (size, digest) = match hash_tree(&root, Path::new(&a.name)) {
            Ok(h) => h,
            Err(BeneathError::NotFound(_)) => continue,
            Err(BeneathError::Link(_)) => {
                return Err(format!(
                    "output artifact `{}` at {} is a symbolic link: an artifact must be a file or a directory (links are kept only inside a directory artifact)",
                    a.name, a.path
                ))
            }
            Err(e) => return Err(format!("cannot read output artifact `{}`: {e}", a.name)),
        };
        out.push(ArtifactRecord {
            name: a.name.clone(),
            uri: ArtifactUri::file(&dir.join(&a.name)).to_string(),
            size,
            digest,
            metadata: None,
            kind: a.kind.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::api::{OutputArtifact, OutputParam};
    use std::os::unix::fs::symlink;

    fn hash(dir: &Path, rel: &str) -> Result<(u64, String), BeneathError> {
        hash_tree(&beneath::Dir::open(dir).unwrap(), Path::new(rel))
    }

    #[test]
    fn equal_trees_hash_equal_and_content_matters() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::create_dir_all(d.join("m/sub")).unwrap();
            std::fs::write(d.join("m/sub/w.bin"), b"weights").unwrap();
            std::fs::write(d.join("m/meta.json"), b"{}").unwrap();
        }
        let ha = hash(a.path(), "m").unwrap();
        assert_eq!(ha, hash(b.path(), "m").unwrap());
        assert_eq!(ha.0, 9);
        std::fs::write(b.path().join("m/meta.json"), b"{1}").unwrap();
        assert_ne!(ha.1, hash(b.path(), "m").unwrap().1);
        // BLAKE3's own test vector for "abc".
        std::fs::write(a.path().join("file"), b"abc").unwrap();
        assert_eq!(
            hash(a.path(), "file").unwrap().1,
            "blake3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
    }

    fn spec() -> TaskSpec {
        TaskSpec {
            output_artifacts: ["x", "tree", "up"]
                .iter()
                .map(|n| OutputArtifact {
                    name: n.to_string(),
                    path: format!("/sluice/outputs/artifacts/{n}"),
                    kind: None,
                })
                .collect(),
            output_params: vec![OutputParam {
                name: "p".into(),
                ty: sluice_spec::ParamType::String,
                path: "/sluice/outputs/params/p".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn an_artifact_that_is_a_link_is_refused_and_nothing_outside_is_read() {
        let d = tempfile::tempdir().unwrap();
        symlink("/etc", d.path().join("x")).unwrap();
        let e = artifacts(&spec(), d.path()).unwrap_err();
        assert!(
            e.contains("output artifact `x`") && e.contains("symbolic link"),
            "{e}"
        );
        std::fs::remove_file(d.path().join("x")).unwrap();
        symlink("../../../../..", d.path().join("up")).unwrap();
        let e = artifacts(&spec(), d.path()).unwrap_err();
        assert!(e.contains("output artifact `up`"), "{e}");
    }

    #[test]
    fn links_inside_a_directory_artifact_are_kept_as_links() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("tree")).unwrap();
        std::fs::write(d.path().join("tree/model.bin"), b"weights").unwrap();
        symlink("/etc/shadow", d.path().join("tree/shadow")).unwrap();
        symlink("/etc", d.path().join("tree/etc")).unwrap();
        let recs = artifacts(&spec(), d.path()).unwrap();
        assert_eq!(recs.len(), 1);
        // Only the file's bytes count: the links were recorded, not read.
        assert_eq!(recs[0].size, 7);
        assert_eq!(recs[0].uri, format!("file://{}/tree", d.path().display()));
        // A link's target is part of what the artifact is.
        std::fs::remove_file(d.path().join("tree/shadow")).unwrap();
        symlink("/etc/passwd", d.path().join("tree/shadow")).unwrap();
        assert_ne!(
            artifacts(&spec(), d.path()).unwrap()[0].digest,
            recs[0].digest
        );
    }

    #[test]
    fn a_fifo_in_an_artifact_fails_it_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("tree")).unwrap();
        nix::unistd::mkfifo(
            &d.path().join("tree/pipe"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let e = artifacts(&spec(), d.path()).unwrap_err();
        assert!(e.contains("FIFO"), "{e}");
    }

    #[test]
    fn an_output_parameter_that_is_a_link_is_refused() {
        let d = tempfile::tempdir().unwrap();
        symlink("/etc/hostname", d.path().join("p")).unwrap();
        let e = params(&spec(), d.path()).unwrap_err();
        assert!(e.contains("output parameter `p`"), "{e}");
        std::fs::remove_file(d.path().join("p")).unwrap();
        std::fs::write(d.path().join("p"), b"value").unwrap();
        assert_eq!(params(&spec(), d.path()).unwrap()["p"], "value");
    }
}

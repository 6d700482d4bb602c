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

/// Most entries a directory artifact may hold.
pub const MAX_ARTIFACT_ENTRIES: usize = 1_000_000;

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

/// Total size and content digest (`blake3:HEX`) of the file or directory `rel` beneath `root`. For a directory the
/// hash covers each entry's relative path, kind and content (a link's target, as written), in
/// sorted order, so equal trees hash equal. A link at `rel` itself is refused, and so is a
/// FIFO, socket or device anywhere in the tree.
pub fn hash_tree(root: &beneath::Dir, rel: &Path) -> Result<(u64, String), BeneathError> {
    let (kind, _) = root.entry(rel, Links::Never)?;
    let special = |p: &Path| BeneathError::Io {
        path: p.display().to_string(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a FIFO, socket or device node: artifacts hold only files, directories and links",
        ),
    };
    match kind {
        Kind::File => {
            let (size, digest) = hash_file(root.file(rel, Links::Never)?, rel)?;
            return Ok((size, sluice_spec::digest::blake3(&hex::encode(digest))));
        }
        Kind::Link => return Err(BeneathError::Link(rel.display().to_string())),
        Kind::Special => return Err(special(rel)),
        Kind::Dir => {}
    }
    let dir = root.dir(rel, Links::Never)?;
    let entries = dir
        .walk(MAX_ARTIFACT_ENTRIES)?
        .ok_or_else(|| BeneathError::Io {
            path: rel.display().to_string(),
            source: std::io::Error::other(format!(
                "more than {MAX_ARTIFACT_ENTRIES} entries in one artifact"
            )),
        })?;
    let mut h = blake3::Hasher::new();
    let mut total = 0u64;
    for e in entries {
        let name = e.path.to_string_lossy();
        match e.kind {
            Kind::File => {
                let (size, digest) = hash_file(dir.file(&e.path, Links::Never)?, &e.path)?;
                total += size;
                h.update(format!("f {name}\0").as_bytes());
                h.update(&digest);
            }
            Kind::Link => {
                let target = e.target.unwrap_or_default();
                h.update(format!("l {name}\0{}\0", target.display()).as_bytes());
            }
            Kind::Dir => {
                h.update(format!("d {name}\0").as_bytes());
            }
            Kind::Special => return Err(special(&rel.join(&e.path))),
        }
    }
    Ok((total, sluice_spec::digest::blake3(&h.finalize().to_hex())))
}

/// Files at least this large are hashed through a map of their pages, not read into a buffer.
const MAP_AT: u64 = 1 << 20;
/// How much of a file is mapped at once: what the step wrote decides a file's length (a sparse
/// file can claim terabytes), so the map, and the page tables behind it, are bounded here.
const MAP_WINDOW: u64 = 256 << 20;

fn hash_file(mut f: std::fs::File, rel: &Path) -> Result<(u64, [u8; 32]), BeneathError> {
    let io = |source| BeneathError::Io {
        path: rel.display().to_string(),
        source,
    };
    let mut h = blake3::Hasher::new();
    let len = f.metadata().map_err(io)?.len();
    if len >= MAP_AT {
        hash_mapped(&f, len, MAP_WINDOW, &mut h).map_err(io)?;
        return Ok((len, *h.finalize().as_bytes()));
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, *h.finalize().as_bytes()))
}

/// Hashes the first `len` bytes of `f` through read-only maps of `window` bytes at a time, each
/// filled up front (MAP_POPULATE: one pass over the page cache instead of a fault a page).
fn hash_mapped(
    f: &std::fs::File,
    len: u64,
    window: u64,
    h: &mut blake3::Hasher,
) -> std::io::Result<()> {
    let mut offset = 0;
    while offset < len {
        let n = window.min(len - offset);
        // SAFETY: the map is read-only and dropped before the next. The file is in the task's
        // own output area and its container has exited: nothing else writes there (the steps
        // after it get it read-only), so it does not change or shrink while it is hashed.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(n as usize)
                .populate()
                .map(f)
        }?;
        h.update(&map);
        offset += n;
    }
    Ok(())
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
        // Mapped in windows: the same digest across their edges.
        let bytes: Vec<u8> = (0..3 * 4096 + 5).map(|i| (i * 7 % 253) as u8).collect();
        std::fs::write(a.path().join("windows"), &bytes).unwrap();
        let f = std::fs::File::open(a.path().join("windows")).unwrap();
        let mut h = blake3::Hasher::new();
        hash_mapped(&f, bytes.len() as u64, 4096, &mut h).unwrap();
        assert_eq!(h.finalize(), blake3::hash(&bytes));
        // Read, or mapped (at 1 MiB and beyond): the same digest as of the bytes themselves.
        for len in [
            MAP_AT as usize - 1,
            MAP_AT as usize,
            3 * MAP_AT as usize + 7,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(a.path().join("big"), &bytes).unwrap();
            assert_eq!(
                hash(a.path(), "big").unwrap(),
                (
                    len as u64,
                    format!("blake3:{}", blake3::hash(&bytes).to_hex())
                )
            );
        }
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

//! An artifact's size and content digest: a file's BLAKE3, or for a directory a BLAKE3 over its
//! sorted tree, so that equal trees hash equal wherever they are (a worker's outputs, a copy
//! fetched from the object store, an upload the server received, a directory the CLI sends).
//! Everything is read beneath its root, never through a link.

use crate::beneath::{self, BeneathError, Kind, Links};
use std::io::Read;
use std::path::Path;

/// Most entries a directory artifact may hold.
pub const MAX_ARTIFACT_ENTRIES: usize = 1_000_000;

/// Total size and content digest (`blake3:HEX`) of the file or directory `rel` beneath `root`. For a directory the
/// hash covers each entry's relative path, kind and content (a link's target, as written), in
/// sorted order, so equal trees hash equal. A link at `rel` itself is refused, and so is a
/// FIFO, socket or device anywhere in the tree.
pub fn hash_tree(root: &beneath::Dir, rel: &Path) -> Result<(u64, String), BeneathError> {
    hash_tree_with(root, rel, true)
}

/// As [`hash_tree`]; with `mapped` false every file is read through a buffer, never mapped:
/// for files someone else may shorten meanwhile (a user's own, as the CLI sends them), where a
/// map would fault.
pub fn hash_tree_with(
    root: &beneath::Dir,
    rel: &Path,
    mapped: bool,
) -> Result<(u64, String), BeneathError> {
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
            let (size, digest) = hash_file(root.file(rel, Links::Never)?, rel, mapped)?;
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
                let (size, digest) = hash_file(dir.file(&e.path, Links::Never)?, &e.path, mapped)?;
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

fn hash_file(
    mut f: std::fs::File,
    rel: &Path,
    mapped: bool,
) -> Result<(u64, [u8; 32]), BeneathError> {
    let io = |source| BeneathError::Io {
        path: rel.display().to_string(),
        source,
    };
    let mut h = blake3::Hasher::new();
    let len = f.metadata().map_err(io)?.len();
    if mapped && len >= MAP_AT {
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
        // SAFETY: the map is read-only and dropped before the next. Only files nothing else
        // writes are mapped (see `hash_tree_with`): a task's own output area once its container
        // has exited (the steps after it get it read-only), a copy fetched into a worker's cache,
        // an upload the server unpacked into a directory of its own. None changes or shrinks
        // while it is hashed.
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

    #[test]
    fn files_hash_alike_read_or_mapped() {
        let a = tempfile::tempdir().unwrap();
        let hash = |rel: &str, mapped: bool| {
            hash_tree_with(
                &beneath::Dir::open(a.path()).unwrap(),
                Path::new(rel),
                mapped,
            )
        };
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
                hash("big", true).unwrap(),
                (
                    len as u64,
                    format!("blake3:{}", blake3::hash(&bytes).to_hex())
                )
            );
            assert_eq!(hash("big", false).unwrap(), hash("big", true).unwrap());
        }
    }
}

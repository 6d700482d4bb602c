//! Reading what a finished task left behind: output parameter files, and the size and sha256 of
//! each output artifact (a file, or a directory hashed over its sorted tree).

use sha2::{Digest, Sha256};
use sluice_sdk::api::{ArtifactRecord, TaskSpec};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Output parameter values larger than this are refused: they belong in an artifact.
pub const MAX_PARAM_BYTES: u64 = 256 * 1024;

/// The output parameters the task wrote. Unwritten ones are left out (the server says what is missing).
pub fn params(spec: &TaskSpec, dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for p in &spec.output_params {
        let path = dir.join(&p.name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            return Err(format!(
                "output parameter `{}` at {} is not a regular file",
                p.name, p.path
            ));
        }
        if meta.len() > MAX_PARAM_BYTES {
            return Err(format!("output parameter `{}` is {} bytes; parameters hold at most {MAX_PARAM_BYTES} bytes, use an artifact", p.name, meta.len()));
        }
        let text = std::fs::read(&path)
            .map_err(|e| format!("cannot read output parameter `{}`: {e}", p.name))?;
        out.insert(p.name.clone(), String::from_utf8_lossy(&text).into_owned());
    }
    Ok(out)
}

/// Records for the output artifacts that exist under `dir`.
pub fn artifacts(spec: &TaskSpec, dir: &Path) -> Result<Vec<ArtifactRecord>, String> {
    let mut out = Vec::new();
    for a in &spec.output_artifacts {
        let path = dir.join(&a.name);
        if std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        let (size, sha256) = hash_tree(&path)
            .map_err(|e| format!("cannot read output artifact `{}`: {e}", a.name))?;
        let uri = format!("file://{}", path.canonicalize().unwrap_or(path).display());
        out.push(ArtifactRecord {
            name: a.name.clone(),
            uri,
            size,
            sha256,
        });
    }
    Ok(out)
}

/// Total size and content hash of a file or directory tree. For a directory the hash covers each
/// entry's relative path, kind and content, in sorted order, so equal trees hash equal.
pub fn hash_tree(path: &Path) -> std::io::Result<(u64, String)> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_file() {
        let (size, digest) = hash_file(path)?;
        return Ok((size, hex::encode(digest)));
    }
    let mut h = Sha256::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    let mut entries = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                stack.push(p.clone());
            }
            entries.push(p);
        }
    }
    entries.sort();
    for p in entries {
        let rel = p
            .strip_prefix(path)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        let m = std::fs::symlink_metadata(&p)?;
        if m.is_file() {
            let (size, digest) = hash_file(&p)?;
            total += size;
            h.update(format!("f {rel}\0").as_bytes());
            h.update(digest);
        } else if m.is_symlink() {
            h.update(format!("l {rel}\0{}\0", std::fs::read_link(&p)?.display()).as_bytes());
        } else if m.is_dir() {
            h.update(format!("d {rel}\0").as_bytes());
        }
    }
    Ok((total, hex::encode(h.finalize())))
}

fn hash_file(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, h.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_trees_hash_equal_and_content_matters() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::create_dir_all(d.join("m/sub")).unwrap();
            std::fs::write(d.join("m/sub/w.bin"), b"weights").unwrap();
            std::fs::write(d.join("m/meta.json"), b"{}").unwrap();
        }
        let ha = hash_tree(&a.path().join("m")).unwrap();
        assert_eq!(ha, hash_tree(&b.path().join("m")).unwrap());
        assert_eq!(ha.0, 9);
        std::fs::write(b.path().join("m/meta.json"), b"{1}").unwrap();
        assert_ne!(ha.1, hash_tree(&b.path().join("m")).unwrap().1);
        let f = a.path().join("file");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            hash_tree(&f).unwrap().1,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

//! Unpacking one image layer (a tar, plain or gzip) into its own directory, in the form overlayfs
//! stacks: a whiteout (`.wh.NAME`) becomes a 0/0 character device, an opaque directory
//! (`.wh..wh..opq`) gets `trusted.overlay.opaque=y`. Device nodes are skipped. Any entry that
//! would land outside the directory — `..`, an absolute path, a path through a symlink, a hard
//! link to outside — fails the whole layer, and nothing half-written is kept.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry `{path}` {why}")]
    Unsafe { path: String, why: &'static str },
    #[error("layer is compressed with zstd, which this version cannot read")]
    Zstd,
    #[error("layer content is {got}, but the image says {want}")]
    DiffId { want: String, got: String },
    #[error("cannot read the layer: {0}")]
    Read(std::io::Error),
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
    pub skipped_devices: u64,
    /// `sha256:<hex>` of the uncompressed tar (the image config's `diff_id`).
    pub diff_id: String,
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: sha2::Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks a layer into `dest`, which must not exist yet; it is created only when every entry
/// unpacked and, when `diff_id` is given, the uncompressed content hashed to it (the work happens
/// in a sibling directory that is renamed at the end).
pub fn unpack_layer(
    reader: impl Read,
    dest: &Path,
    diff_id: Option<&str>,
) -> Result<Unpacked, UnpackError> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|source| UnpackError::Write {
        path: tmp.display().to_string(),
        source,
    })?;
    let result = unpack_into(reader, &tmp).and_then(|stats| {
        if let Some(want) = diff_id {
            if want != stats.diff_id {
                return Err(UnpackError::DiffId {
                    want: want.to_string(),
                    got: stats.diff_id,
                });
            }
        }
        std::fs::rename(&tmp, dest).map_err(|source| UnpackError::Write {
            path: dest.display().to_string(),
            source,
        })?;
        Ok(stats)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Unpacks into an existing directory (plain or gzip tar, told apart by their first bytes).
pub fn unpack_into(reader: impl Read, root: &Path) -> Result<Unpacked, UnpackError> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let head = buf.fill_buf().map_err(UnpackError::Read)?;
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(UnpackError::Zstd);
    }
    let plain: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(buf))
    } else {
        Box::new(buf)
    };
    let mut hashing = Hashing {
        inner: plain,
        hash: sha2::Digest::new(),
    };
    let mut stats = unpack_tar(&mut hashing, root)?;
    // The tar reader stops at the end-of-archive marker; the digest covers the padding after it.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(UnpackError::Read)?;
    stats.diff_id = format!(
        "sha256:{}",
        hex::encode(sha2::Digest::finalize(hashing.hash))
    );
    Ok(stats)
}

fn unsafe_entry(path: &Path, why: &'static str) -> UnpackError {
    UnpackError::Unsafe {
        path: path.display().to_string(),
        why,
    }
}

/// The entry's path relative to the layer root, refusing anything that could leave it.
fn relative(raw: &Path) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_entry(raw, "climbs out with `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(raw, "is an absolute path"))
            }
        }
    }
    Ok(out)
}

/// Makes sure no directory on the way to `rel` (below `root`) is a symlink, creating missing ones.
fn safe_parent(root: &Path, rel: &Path) -> Result<PathBuf, UnpackError> {
    let mut at = root.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            at.push(c);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(unsafe_entry(rel, "goes through a symlink"))
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(unsafe_entry(
                        rel,
                        "goes through something that is not a directory",
                    ))
                }
                Err(_) => std::fs::create_dir(&at).map_err(|source| UnpackError::Write {
                    path: at.display().to_string(),
                    source,
                })?,
            }
        }
    }
    Ok(root.join(rel))
}

/// Clears the way for an entry at `path`, as Docker's unpacker does: a directory over an existing
/// directory keeps its contents; anything else replaces what was there, a whole directory too.
fn remove_existing(path: &Path, dir: bool) {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.is_dir() {
            if !dir {
                let _ = std::fs::remove_dir_all(path);
            }
            return;
        }
        let _ = std::fs::remove_file(path);
    }
}

/// Sets a directory's mode through a handle that refuses links, so that a directory a later
/// entry replaced with a link is not followed to wherever that link points.
fn chmod_dir(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        // Replaced since (by a link or a file): its own entry set its mode.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ELOOP | libc::ENOTDIR | libc::ENOENT)
            ) =>
        {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Write {
        path: path.display().to_string(),
        source,
    }
}

fn mknod_whiteout(path: &Path) -> std::io::Result<()> {
    let c = cpath(path);
    // SAFETY: `c` is a valid NUL-terminated path; mknod reads it and nothing else.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn set_opaque(dir: &Path) -> std::io::Result<()> {
    let c = cpath(dir);
    // Root's overlays read `trusted.`; an overlay an ordinary user mounts in its own user
    // namespace (`userxattr`) reads `user.`, which is all that user may write.
    // SAFETY: geteuid has no preconditions.
    let name = match unsafe { libc::geteuid() } {
        0 => c"trusted.overlay.opaque",
        _ => c"user.overlay.opaque",
    };
    // SAFETY: valid NUL-terminated strings and a one-byte value buffer that outlives the call.
    if unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn chown(path: &Path, uid: u64, gid: u64) {
    // Only root may give files away; others keep their own ids (as rootless unpackers do).
    let _ = std::os::unix::fs::lchown(path, Some(uid as u32), Some(gid as u32));
}

fn unpack_tar(reader: impl Read, root: &Path) -> Result<Unpacked, UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut stats = Unpacked::default();
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    // Where each directory is in `dirs`, so that a layer of many directories unpacks in linear time.
    let mut dir_index: std::collections::HashMap<PathBuf, usize> = Default::default();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        let raw = entry.path().map_err(UnpackError::Read)?.into_owned();
        let rel = relative(&raw)?;
        if rel.as_os_str().is_empty() {
            continue; // the root itself
        }
        stats.entries += 1;
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let header = entry.header().clone();
        let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
        let mode = header.mode().unwrap_or(0o644) & 0o7777;

        if name == ".wh..wh..opq" {
            let dir = safe_parent(root, &rel)?;
            let dir = dir.parent().unwrap_or(root);
            set_opaque(dir).map_err(io_err(dir))?;
            stats.whiteouts += 1;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let target = safe_parent(root, &rel.with_file_name(hidden))?;
            remove_existing(&target, false);
            mknod_whiteout(&target).map_err(io_err(&target))?;
            stats.whiteouts += 1;
            continue;
        }
        let path = safe_parent(root, &rel)?;
        match header.entry_type() {
            tar::EntryType::Directory => {
                remove_existing(&path, true);
                if !path.is_dir() {
                    std::fs::create_dir(&path).map_err(io_err(&path))?;
                }
                chown(&path, uid, gid);
                // The last entry for a directory decides its mode.
                match dir_index.get(&path) {
                    Some(&i) => dirs[i].1 = mode,
                    None => {
                        dir_index.insert(path.clone(), dirs.len());
                        dirs.push((path, mode));
                    }
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_existing(&path, false);
                let mut f = std::fs::File::create(&path).map_err(io_err(&path))?;
                stats.bytes += std::io::copy(&mut entry, &mut f).map_err(UnpackError::Read)?;
                chown(&path, uid, gid);
                f.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(io_err(&path))?;
                if let Ok(mtime) = header.mtime() {
                    let _ = f.set_modified(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime),
                    );
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| unsafe_entry(&rel, "is a symlink without a target"))?;
                remove_existing(&path, false);
                std::os::unix::fs::symlink(&target, &path).map_err(io_err(&path))?;
                chown(&path, uid, gid);
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| unsafe_entry(&rel, "is a hard link without a target"))?;
                let target_rel = relative(&target)?;
                let target_path = safe_parent(root, &target_rel)?;
                match std::fs::symlink_metadata(&target_path) {
                    Ok(m) if m.is_file() => {}
                    _ => {
                        return Err(unsafe_entry(
                            &rel,
                            "is a hard link to something that is not a file of this layer",
                        ))
                    }
                }
                remove_existing(&path, false);
                std::fs::hard_link(&target_path, &path).map_err(io_err(&path))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => stats.skipped_devices += 1,
            tar::EntryType::Fifo => {
                // A named pipe is harmless and some images ship one; keep it.
                remove_existing(&path, false);
                let c = cpath(&path);
                // SAFETY: valid NUL-terminated path.
                if unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) } != 0 {
                    return Err(io_err(&path)(std::io::Error::last_os_error()));
                }
                chown(&path, uid, gid);
            }
            // PAX and GNU long-name headers are folded into entries by the tar reader.
            _ => {}
        }
    }
    // Directory modes last, so that a read-only directory does not stop its own contents.
    for (dir, mode) in dirs.into_iter().rev() {
        chmod_dir(&dir, mode).map_err(io_err(&dir))?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests;

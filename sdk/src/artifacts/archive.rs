//! A directory artifact as one stream: the CLI packs a directory it uploads into a tar stream,
//! read beneath the directory (links are sent as links, never followed); the server unpacks what
//! it receives into a new directory of its own, refusing anything that is not a plain relative
//! path to a file, a directory or a link, and making links only once everything else is written,
//! so nothing is ever written through one. What came is then hashed as a tree
//! ([`super::tree`]): the digest the sender claimed is checked against the content, not the tar.

use crate::beneath::{Dir, Entry, Kind, Links};
use bytes::Bytes;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Writes the entries of `dir` (from [`Dir::walk`]) as a tar stream to `out`.
pub fn pack<W: Write>(dir: &Dir, entries: &[Entry], out: W) -> std::io::Result<W> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        match e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, &e.path, std::io::empty())?;
            }
            Kind::File => {
                let f = dir
                    .file(&e.path, Links::Never)
                    .map_err(|err| std::io::Error::other(err.to_string()))?;
                let meta = f.metadata()?;
                let exec = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if exec != 0 { 0o755 } else { 0o644 });
                h.set_size(meta.len());
                // A file that shrinks while it is sent ends the stream short: the tar is then
                // malformed and the upload fails rather than carrying other bytes.
                b.append_data(&mut h, &e.path, f.take(meta.len()))?;
            }
            Kind::Link => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                let target = e.target.clone().unwrap_or_default();
                b.append_link(&mut h, &e.path, &target)?;
            }
            Kind::Special => {
                return Err(std::io::Error::other(format!(
                    "`{}` is a FIFO, socket or device node: a directory sent as an artifact holds only files, directories and links",
                    e.path.display()
                )))
            }
        }
    }
    b.into_inner()
}

/// Why a stream could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// What was sent is not a directory artifact sluice accepts (named).
    #[error("{0}")]
    Refused(String),
    /// Reading the stream failed: the connection, a limit its reader enforces, or a stream
    /// that is not tar.
    #[error("{0}")]
    Read(std::io::Error),
    /// Writing here failed.
    #[error("{0}")]
    Write(String),
}

/// Unpacks the tar stream `input` into `dest`, a directory that must not exist yet (it is made
/// here), with at most `max_entries` entries. Only regular files, directories and symbolic
/// links are accepted, each at a plain relative path, each once.
pub fn unpack<R: Read>(input: R, dest: &Path, max_entries: usize) -> Result<u64, UnpackError> {
    let refused = |m: String| UnpackError::Refused(m);
    let write = |p: &Path, e: std::io::Error| UnpackError::Write(format!("{}: {e}", p.display()));
    std::fs::create_dir(dest).map_err(|e| write(dest, e))?;
    let mut archive = tar::Archive::new(input);
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0u64;
    let entries = archive.entries().map_err(UnpackError::Read)?;
    for entry in entries {
        let mut entry = entry.map_err(read_error)?;
        if seen.len() >= max_entries {
            return Err(refused(format!(
                "more than {max_entries} entries: an artifact holds at most {max_entries}"
            )));
        }
        let raw = entry.path().map_err(read_error)?.into_owned();
        let rel = plain(&raw).ok_or_else(|| {
            refused(format!(
                "`{}` is not a plain relative path (no `..`, no leading `/`)",
                raw.display()
            ))
        })?;
        if !seen.insert(rel.clone()) {
            return Err(refused(format!("`{}` appears twice", rel.display())));
        }
        let at = dest.join(&rel);
        let kind = entry.header().entry_type();
        if let Some(parent) = at.parent() {
            // Only directories made here are on the way: links are made last.
            std::fs::create_dir_all(parent).map_err(|e| write(parent, e))?;
        }
        match kind {
            tar::EntryType::Directory => match std::fs::create_dir(&at) {
                Ok(()) => {}
                // Made already as the parent of an earlier entry.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && at.is_dir() => {}
                Err(e) => return Err(write(&at, e)),
            },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let exec = entry.header().mode().unwrap_or(0o644) & 0o111 != 0;
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags_nofollow()
                    .mode(if exec { 0o755 } else { 0o644 })
                    .open(&at)
                    .map_err(|e| write(&at, e))?;
                let n = std::io::copy(&mut entry, &mut out).map_err(UnpackError::Read)?;
                total += n;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(read_error)?
                    .ok_or_else(|| refused(format!("the link `{}` has no target", rel.display())))?
                    .into_owned();
                links.push((rel, target));
            }
            other => {
                return Err(refused(format!(
                    "`{}` is a {other:?} entry: a directory artifact holds only files, directories and symbolic links",
                    rel.display()
                )))
            }
        }
    }
    // A link is made only where nothing else goes through it: none may be a parent of another
    // entry, so that making the links cannot write anywhere but their own place.
    for (rel, _) in &links {
        if seen
            .range(rel.clone()..)
            .skip(1)
            .take_while(|p| p.starts_with(rel))
            .next()
            .is_some()
        {
            return Err(refused(format!(
                "the link `{}` is also a directory of other entries",
                rel.display()
            )));
        }
    }
    for (rel, target) in links {
        let at = dest.join(&rel);
        std::os::unix::fs::symlink(&target, &at).map_err(|e| write(&at, e))?;
    }
    Ok(total)
}

/// A failure to read the stream: the caller's reader says whether it was the connection or a
/// limit; anything else is a malformed stream.
fn read_error(e: std::io::Error) -> UnpackError {
    UnpackError::Read(e)
}

/// `p` as plain relative components (a leading `./` dropped), or `None`.
fn plain(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// `O_NOFOLLOW` and a mode on [`std::fs::OpenOptions`].
trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
    fn mode(&mut self, mode: u32) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, nix::libc::O_NOFOLLOW)
    }
    fn mode(&mut self, mode: u32) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, mode)
    }
}

/// Writes what `input` carries to `at`, a new path in a directory of the caller's own (a file,
/// or with `tar` a directory unpacked from the stream), and returns its size and digest as
/// [`super::tree::hash_tree`] gives them.
pub fn land<R: Read>(mut input: R, at: &Path, tar: bool) -> Result<(u64, String), UnpackError> {
    let write = |e: std::io::Error| UnpackError::Write(format!("{}: {e}", at.display()));
    let (Some(parent), Some(name)) = (at.parent(), at.file_name()) else {
        return Err(UnpackError::Write(format!(
            "{} has no parent",
            at.display()
        )));
    };
    if tar {
        unpack(&mut input, at, super::tree::MAX_ARTIFACT_ENTRIES)?;
    } else {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(at)
            .map_err(write)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input.read(&mut buf).map_err(UnpackError::Read)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(write)?;
        }
    }
    let d = Dir::open(parent).map_err(|e| UnpackError::Write(e.to_string()))?;
    super::tree::hash_tree(&d, Path::new(name)).map_err(|e| UnpackError::Refused(e.to_string()))
}

/// Bytes moved between an async body and a blocking thread at once.
const CHUNK: usize = 1 << 20;

/// What a blocking thread writes, handed to an async stream (a request or response body)
/// [`CHUNK`] bytes at a time.
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub fn new(tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("the other end stopped reading"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The body's chunks, as a [`Read`] for a blocking thread; an error sent in is the reader's.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::tree::hash_tree;

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn entry(
        b: &mut tar::Builder<Vec<u8>>,
        kind: tar::EntryType,
        path: &str,
        data: &[u8],
        link: Option<&str>,
    ) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        // Written raw: the builder's own checks would refuse some of these names.
        let name = h.as_old_mut();
        name.name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(l) = link {
            name.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    #[test]
    fn a_packed_directory_unpacks_to_the_same_tree() {
        let src = tempfile::tempdir().unwrap();
        let d = src.path().join("data");
        std::fs::create_dir_all(d.join("sub/empty")).unwrap();
        std::fs::write(d.join("rows.csv"), b"a,b\n1,2\n").unwrap();
        std::fs::write(d.join("sub/w.bin"), vec![7u8; 100_000]).unwrap();
        std::os::unix::fs::symlink("../rows.csv", d.join("sub/rows")).unwrap();
        let root = Dir::open(src.path()).unwrap();
        let want = hash_tree(&root, Path::new("data")).unwrap();
        let dir = root.dir(Path::new("data"), Links::Never).unwrap();
        let entries = dir.walk(100).unwrap().unwrap();
        let bytes = pack(&dir, &entries, Vec::new()).unwrap();
        let out = tempfile::tempdir().unwrap();
        let n = unpack(&bytes[..], &out.path().join("got"), 100).unwrap();
        assert_eq!(n, want.0);
        let got = hash_tree(&Dir::open(out.path()).unwrap(), Path::new("got")).unwrap();
        assert_eq!(got, want);
        assert_eq!(
            std::fs::read_link(out.path().join("got/sub/rows")).unwrap(),
            Path::new("../rows.csv")
        );
    }

    #[test]
    fn hostile_streams_are_refused_by_name_and_write_nothing_outside() {
        use tar::EntryType as T;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "dotdot",
                tar_of(|b| entry(b, T::Regular, "../escape", b"x", None)),
                "`../escape` is not a plain relative path",
            ),
            (
                "absolute",
                tar_of(|b| entry(b, T::Regular, "/tmp/abs-escape", b"x", None)),
                "is not a plain relative path",
            ),
            (
                "twice",
                tar_of(|b| {
                    entry(b, T::Regular, "a", b"x", None);
                    entry(b, T::Regular, "a", b"y", None);
                }),
                "`a` appears twice",
            ),
            (
                "device",
                tar_of(|b| entry(b, T::Char, "dev", b"", None)),
                "`dev` is a Char entry",
            ),
            (
                "hardlink",
                tar_of(|b| entry(b, T::Link, "h", b"", Some("/etc/passwd"))),
                "`h` is a Link entry",
            ),
            // A link first, then a file through it: the file would land outside.
            (
                "through a link",
                tar_of(|b| {
                    entry(b, T::Symlink, "l", b"", Some("/tmp"));
                    entry(b, T::Regular, "l/planted", b"x", None);
                }),
                "the link `l` is also a directory of other entries",
            ),
            ("not tar", vec![0xffu8; 1024], ""),
        ];
        for (what, bytes, want) in cases {
            let out = tempfile::tempdir().unwrap();
            let e = unpack(&bytes[..], &out.path().join("got"), 100)
                .err()
                .unwrap_or_else(|| panic!("{what}: unpacked"));
            assert!(e.to_string().contains(want), "{what}: {e}");
        }
        assert!(!Path::new("/tmp/abs-escape").exists());
        assert!(!Path::new("/tmp/planted").exists());
        let many = tar_of(|b| {
            for i in 0..5 {
                entry(b, T::Regular, &format!("f{i}"), b"x", None);
            }
        });
        let out = tempfile::tempdir().unwrap();
        let e = unpack(&many[..], &out.path().join("got"), 4).unwrap_err();
        assert!(e.to_string().contains("more than 4 entries"), "{e}");
    }
}

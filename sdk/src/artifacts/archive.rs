//! A directory artifact as one stream: the CLI packs a directory it uploads into a tar stream,
//! read beneath the directory (links are sent as links, never followed); the server unpacks what
//! it receives into a new directory of its own, refusing anything that is not a plain relative
//! path to a file, a directory or a link, and making links only once everything else is written,
//! so nothing is ever written through one. What came is then hashed as a tree
//! ([`super::tree`]): the digest the sender claimed is checked against the content, not the tar.

use crate::beneath::{Dir, Entry, Kind, Links};
use bytes::Bytes;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
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

/// Longest name or link target a GNU long-name entry may give, and most bytes of pax extended
/// headers before one entry: the stream says how long they are, so they are bounded here
/// rather than read into memory whatever they claim.
const MAX_LONG_NAME: u64 = 4096;
const MAX_PAX: u64 = 64 << 10;
const BLOCK: usize = 512;

/// One header block's fields, as ustar and GNU tar write them.
struct Header {
    kind: u8,
    size: u64,
    mode: u32,
    name: Vec<u8>,
    link: Vec<u8>,
}

impl Header {
    fn parse(b: &[u8; BLOCK]) -> Result<Header, String> {
        let stored = octal(&b[148..156]).ok_or("a header's checksum field is not a number")?;
        let sum: u64 = b
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(c)
                }
            })
            .sum();
        if sum != stored {
            return Err("a header's checksum does not match it".into());
        }
        let field = |r: std::ops::Range<usize>| {
            let f = &b[r];
            f[..f.iter().position(|&c| c == 0).unwrap_or(f.len())].to_vec()
        };
        let mut name = field(0..100);
        // ustar's prefix (not GNU's, which keeps other fields there).
        if &b[257..263] == b"ustar\0" {
            let prefix = field(345..500);
            if !prefix.is_empty() {
                name = [prefix, b"/".to_vec(), name].concat();
            }
        }
        let size = if b[124] & 0x80 != 0 {
            // GNU's base-256 for sizes past octal's 8 GiB.
            b[125..136]
                .iter()
                .try_fold(0u64, |n, &c| n.checked_mul(256).map(|n| n + u64::from(c)))
                .ok_or("a header's size overflows")?
        } else {
            octal(&b[124..136]).ok_or("a header's size is not a number")?
        };
        Ok(Header {
            kind: b[156],
            size,
            mode: octal(&b[100..108]).unwrap_or(0o644) as u32,
            name,
            link: field(157..257),
        })
    }
}

fn octal(f: &[u8]) -> Option<u64> {
    let t: Vec<u8> = f
        .iter()
        .copied()
        .skip_while(|c| *c == b' ')
        .take_while(|c| (b'0'..=b'7').contains(c))
        .collect();
    if t.is_empty() {
        return f.iter().all(|c| *c == 0 || *c == b' ').then_some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&t).ok()?, 8).ok()
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` when the stream ended before the first.
fn fill<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<bool, UnpackError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(UnpackError::Refused(
                    "the stream ends inside a tar block".into(),
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(UnpackError::Read(e)),
        }
    }
    Ok(true)
}

/// Copies `size` bytes of an entry (and skips its padding to the next block) into `out`.
fn entry_data<R: Read, W: Write>(input: &mut R, size: u64, out: &mut W) -> Result<(), UnpackError> {
    let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
    let mut left = padded;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let n = (left.min(buf.len() as u64)) as usize;
        if !fill(input, &mut buf[..n])? {
            return Err(UnpackError::Refused(
                "the stream ends inside an entry".into(),
            ));
        }
        let done = padded - left;
        if done < size {
            let useful = ((size - done).min(n as u64)) as usize;
            out.write_all(&buf[..useful])
                .map_err(|e| UnpackError::Write(e.to_string()))?;
        }
        left -= n as u64;
    }
    Ok(())
}

/// An extension entry's bytes, refused past `max`.
fn small<R: Read>(input: &mut R, size: u64, max: u64, what: &str) -> Result<Vec<u8>, UnpackError> {
    if size > max {
        return Err(UnpackError::Refused(format!(
            "{what} of {size} bytes: at most {max}"
        )));
    }
    let mut v = Vec::with_capacity(size as usize);
    entry_data(input, size, &mut v)?;
    Ok(v)
}

/// A name and a link target an extension entry gives the entry after it.
type Names = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A pax extended header's `path` and `linkpath`, if it sets them.
fn pax(records: &[u8]) -> Result<Names, UnpackError> {
    let bad = || UnpackError::Refused("a pax extended header is malformed".into());
    let (mut path, mut link, mut rest) = (None, None, records);
    while !rest.is_empty() {
        let sp = rest.iter().position(|&c| c == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|l| l.parse().ok())
            .filter(|&l| l > sp + 1 && l <= rest.len())
            .ok_or_else(bad)?;
        let record = &rest[sp + 1..len - 1];
        let eq = record.iter().position(|&c| c == b'=').ok_or_else(bad)?;
        match &record[..eq] {
            b"path" => path = Some(record[eq + 1..].to_vec()),
            b"linkpath" => link = Some(record[eq + 1..].to_vec()),
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok((path, link))
}

/// Unpacks the tar stream `input` (ustar or GNU, with pax path extensions) into `dest`, a
/// directory that must not exist yet (it is made here), with at most `max_entries` entries. Only
/// regular files, directories and symbolic links are accepted, each at a plain relative path,
/// each once. Read block by block here, so that nothing the stream claims is allocated.
pub fn unpack<R: Read>(mut input: R, dest: &Path, max_entries: usize) -> Result<u64, UnpackError> {
    let refused = |m: String| UnpackError::Refused(m);
    let write = |p: &Path, e: std::io::Error| UnpackError::Write(format!("{}: {e}", p.display()));
    std::fs::create_dir(dest).map_err(|e| write(dest, e))?;
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0u64;
    let (mut long_name, mut long_link): Names = (None, None);
    let mut block = [0u8; BLOCK];
    loop {
        if !fill(&mut input, &mut block)? || block.iter().all(|&c| c == 0) {
            break;
        }
        let h = Header::parse(&block).map_err(|e| refused(format!("not a tar stream: {e}")))?;
        match h.kind {
            b'L' => {
                long_name = Some(small(&mut input, h.size, MAX_LONG_NAME, "a long name")?);
                continue;
            }
            b'K' => {
                long_link = Some(small(
                    &mut input,
                    h.size,
                    MAX_LONG_NAME,
                    "a long link target",
                )?);
                continue;
            }
            b'x' => {
                let (p, l) = pax(&small(&mut input, h.size, MAX_PAX, "a pax header")?)?;
                long_name = p.or(long_name);
                long_link = l.or(long_link);
                continue;
            }
            b'g' => {
                small(&mut input, h.size, MAX_PAX, "a pax global header")?;
                continue;
            }
            _ => {}
        }
        let trim = |mut v: Vec<u8>| {
            while v.last() == Some(&0) {
                v.pop();
            }
            v
        };
        let raw = PathBuf::from(std::ffi::OsString::from_vec(trim(
            long_name.take().unwrap_or(h.name),
        )));
        let target = PathBuf::from(std::ffi::OsString::from_vec(trim(
            long_link.take().unwrap_or(h.link),
        )));
        if seen.len() >= max_entries {
            return Err(refused(format!(
                "more than {max_entries} entries: an artifact holds at most {max_entries}"
            )));
        }
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
        if let Some(parent) = at.parent() {
            // Only directories made here are on the way: links are made last.
            std::fs::create_dir_all(parent).map_err(|e| write(parent, e))?;
        }
        match h.kind {
            b'5' => {
                match std::fs::create_dir(&at) {
                    Ok(()) => {}
                    // Made already as the parent of an earlier entry.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && at.is_dir() => {}
                    Err(e) => return Err(write(&at, e)),
                }
                entry_data(&mut input, h.size, &mut std::io::sink())?;
            }
            b'0' | 0 | b'7' => {
                let exec = h.mode & 0o111 != 0;
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags_nofollow()
                    .mode(if exec { 0o755 } else { 0o644 })
                    .open(&at)
                    .map_err(|e| write(&at, e))?;
                entry_data(&mut input, h.size, &mut out)?;
                total += h.size;
            }
            b'2' => {
                if target.as_os_str().is_empty() {
                    return Err(refused(format!(
                        "the link `{}` has no target",
                        rel.display()
                    )));
                }
                entry_data(&mut input, h.size, &mut std::io::sink())?;
                links.push((rel, target));
            }
            other => {
                let what = match other {
                    b'1' => "hard link".to_string(),
                    b'3' => "character device".into(),
                    b'4' => "block device".into(),
                    b'6' => "FIFO".into(),
                    c => format!("type `{}`", c.escape_ascii()),
                };
                return Err(refused(format!(
                    "`{}` is a {what} entry: a directory artifact holds only files, directories and symbolic links",
                    rel.display()
                )));
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
        // Past ustar's 100 bytes: GNU long-name and long-link entries.
        let deep = format!("{}/{}", "d".repeat(90), "f".repeat(90));
        std::fs::create_dir_all(d.join(&deep).parent().unwrap()).unwrap();
        std::fs::write(d.join(&deep), b"deep").unwrap();
        std::os::unix::fs::symlink(format!("../{deep}"), d.join("sub/deep")).unwrap();
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
                "`dev` is a character device entry",
            ),
            (
                "hardlink",
                tar_of(|b| entry(b, T::Link, "h", b"", Some("/etc/passwd"))),
                "`h` is a hard link entry",
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
        // A long name that claims a terabyte is refused, not read into memory.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(1 << 40);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_cksum();
        let mut claim = h.as_bytes().to_vec();
        claim.extend_from_slice(&[b'a'; 1024]);
        let out = tempfile::tempdir().unwrap();
        let e = unpack(&claim[..], &out.path().join("got"), 100).unwrap_err();
        assert!(
            e.to_string()
                .contains("a long name of 1099511627776 bytes: at most 4096"),
            "{e}"
        );
        // A pax header's path is the entry's.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        let record = b"22 path=from-pax/name\n";
        h.set_size(record.len() as u64);
        h.set_cksum();
        b.append(&h, &record[..]).unwrap();
        entry(&mut b, T::Regular, "ignored", b"pax", None);
        let out = tempfile::tempdir().unwrap();
        unpack(&b.into_inner().unwrap()[..], &out.path().join("got"), 100).unwrap();
        assert_eq!(
            std::fs::read(out.path().join("got/from-pax/name")).unwrap(),
            b"pax"
        );
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

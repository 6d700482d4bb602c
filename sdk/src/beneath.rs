//! Opening what a step left behind without ever leaving the directory it must be in. A step
//! controls the names and links under its output directory, so every reader of an artifact (the
//! worker that hashes and mounts it, the server that previews it) opens paths relative to a
//! directory handle with `openat2(RESOLVE_BENEATH)`, and never follows a link out of it. Where
//! the kernel has no `openat2` (before Linux 5.6) the path is walked one component at a time with
//! `O_NOFOLLOW`, which refuses every link.

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Which links a path may pass through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// None at all: a link anywhere on the path is refused (a link as the last component can
    /// still be looked at with [`Dir::entry`]).
    Never,
    /// Links that resolve to somewhere beneath the directory; one that leads out (`..` past the
    /// top, or an absolute target) is refused.
    Inside,
    /// Links followed as if the directory were `/` (a container's root filesystem seen from
    /// outside it): an absolute target starts at the directory, `..` stops there.
    InRoot,
}

/// Why a path could not be opened beneath its directory.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("`{0}` is not a relative path inside the directory (no `..`, no leading `/`)")]
    NotRelative(String),
    #[error("`{0}` passes through a symbolic link")]
    Link(String),
    #[error("`{0}` leads outside the directory")]
    Escapes(String),
    #[error("`{0}` does not exist")]
    NotFound(String),
    #[error("`{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl BeneathError {
    fn of(path: &Path, e: Errno) -> BeneathError {
        let p = path.display().to_string();
        match e {
            Errno::ELOOP => BeneathError::Link(p),
            Errno::EXDEV => BeneathError::Escapes(p),
            Errno::ENOENT | Errno::ENOTDIR => BeneathError::NotFound(p),
            e => BeneathError::Io {
                path: p,
                source: std::io::Error::from(e),
            },
        }
    }
}

/// What a path names, as `lstat` sees it (a link is not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    /// A FIFO, socket or device node: never read.
    Special,
}

impl Kind {
    fn of(st: &FileStat) -> Kind {
        match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFREG => Kind::File,
            SFlag::S_IFDIR => Kind::Dir,
            SFlag::S_IFLNK => Kind::Link,
            _ => Kind::Special,
        }
    }
}

/// An open directory that paths are resolved beneath.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Where it is, for messages and for mounts (`/proc/self/fd` is used for those).
    path: PathBuf,
}

/// One entry of a directory tree walked with [`Dir::walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the walked directory.
    pub path: PathBuf,
    pub kind: Kind,
    /// Bytes, for files.
    pub size: u64,
    /// Where a link points, as written (never followed).
    pub target: Option<PathBuf>,
}

/// Checks that `rel` is a plain relative path (no `..`, no root, not empty).
pub fn relative(rel: &Path) -> Result<&Path, BeneathError> {
    let ok = !rel.as_os_str().is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(rel)
    } else {
        Err(BeneathError::NotRelative(rel.display().to_string()))
    }
}

/// Whether `p` is a plain absolute path: from `/`, with no `..` (and no NUL byte).
pub fn plain_absolute(p: &Path) -> bool {
    p.is_absolute()
        && !p.as_os_str().as_encoded_bytes().contains(&0)
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// Set once `openat2` was found missing (a kernel before 5.6).
static NO_OPENAT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn openat2_missing() -> bool {
    #[cfg(test)]
    if tests::FALLBACK.with(|f| f.get()) {
        return true;
    }
    NO_OPENAT2.load(std::sync::atomic::Ordering::Relaxed)
}

fn note_openat2_missing() {
    NO_OPENAT2.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Opens `rel` beneath `dir` with `flags` (`O_CLOEXEC`, and `O_NOCTTY` where it applies, added).
fn open_at(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlag,
    links: Links,
) -> Result<OwnedFd, BeneathError> {
    let rel = relative(rel)?;
    // `openat2` refuses flags that mean nothing with `O_PATH`.
    let flags = match flags.contains(OFlag::O_PATH) {
        true => flags | OFlag::O_CLOEXEC,
        false => flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
    };
    if !openat2_missing() {
        let mut resolve = ResolveFlag::RESOLVE_NO_MAGICLINKS;
        resolve |= match links {
            Links::Never => ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
            Links::Inside => ResolveFlag::RESOLVE_BENEATH,
            Links::InRoot => ResolveFlag::RESOLVE_IN_ROOT,
        };
        let how = OpenHow::new().flags(flags).resolve(resolve);
        loop {
            match nix::fcntl::openat2(dir, rel, how) {
                Ok(fd) => return Ok(fd),
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(Errno::ENOSYS) => {
                    note_openat2_missing();
                    break;
                }
                Err(e) => return Err(BeneathError::of(rel, e)),
            }
        }
    }
    // One component at a time, refusing every link (stricter than `Inside` and `InRoot`).
    let parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        return nix::fcntl::openat(dir, ".", flags, Mode::empty())
            .map_err(|e| BeneathError::of(rel, e));
    }
    let mut cur: Option<OwnedFd> = None;
    for (k, part) in parts.iter().enumerate() {
        let last = k + 1 == parts.len();
        let f = if last {
            flags | OFlag::O_NOFOLLOW
        } else {
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
        };
        let at = cur.as_ref().map(|c| c.as_fd()).unwrap_or(dir);
        let next = nix::fcntl::openat(at, *part, f, Mode::empty()).map_err(|e| {
            // O_NOFOLLOW on a link gives ELOOP (or ENOTDIR with O_DIRECTORY).
            let probe =
                nix::sys::stat::fstatat(at, *part, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
            match probe {
                Ok(st)
                    if Kind::of(&st) == Kind::Link && !(last && flags.contains(OFlag::O_PATH)) =>
                {
                    BeneathError::Link(rel.display().to_string())
                }
                _ => BeneathError::of(rel, e),
            }
        })?;
        cur = Some(next);
    }
    cur.ok_or_else(|| BeneathError::NotRelative(rel.display().to_string()))
}

impl Dir {
    /// Opens a directory the caller trusts (its own data directory, say) as a root to resolve
    /// beneath.
    pub fn open(path: &Path) -> Result<Dir, BeneathError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BeneathError::of(path, e))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// What `rel` is, without following a link at its end (links on the way follow `links`).
    pub fn entry(&self, rel: &Path, links: Links) -> Result<(Kind, FileStat), BeneathError> {
        let fd = open_at(self.fd(), rel, OFlag::O_PATH | OFlag::O_NOFOLLOW, links)?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| BeneathError::of(rel, e))?;
        Ok((Kind::of(&st), st))
    }

    /// A directory beneath this one (a link to one is refused or followed inside, as `links` says).
    pub fn dir(&self, rel: &Path, links: Links) -> Result<Dir, BeneathError> {
        let fd = open_at(self.fd(), rel, OFlag::O_PATH | OFlag::O_DIRECTORY, links)?;
        Ok(Dir {
            fd,
            path: self.path.join(rel),
        })
    }

    /// A regular file beneath this one, open for reading. FIFOs, sockets and devices are refused
    /// without being opened for reading (a FIFO would block the reader).
    pub fn file(&self, rel: &Path, links: Links) -> Result<File, BeneathError> {
        let fd = open_at(self.fd(), rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK, links)?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| BeneathError::of(rel, e))?;
        if Kind::of(&st) != Kind::File {
            return Err(BeneathError::Io {
                path: rel.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
        // Reads block as usual from here on.
        let fl = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| BeneathError::of(rel, e))?;
        let fl = OFlag::from_bits_truncate(fl) & !OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(fl))
            .map_err(|e| BeneathError::of(rel, e))?;
        Ok(File::from(fd))
    }

    /// An `O_PATH` handle on `rel` itself (no link followed anywhere on the way), for bind
    /// mounts through `/proc/self/fd`.
    pub fn handle(&self, rel: &Path) -> Result<(OwnedFd, Kind), BeneathError> {
        let fd = open_at(
            self.fd(),
            rel,
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
            Links::Never,
        )?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| BeneathError::of(rel, e))?;
        Ok((fd, Kind::of(&st)))
    }

    /// `target` (an absolute path as seen inside a root filesystem this directory is the top of),
    /// resolved with [`Links::InRoot`] and made if missing: the directories on the way, and the
    /// last component as a directory or an empty file. Returns an `O_PATH` handle on it, for
    /// mounts through `/proc/self/fd`. Nothing is ever made outside this directory, whatever
    /// links the image holds.
    pub fn make_in_root(&self, target: &str, dir: bool) -> Result<OwnedFd, BeneathError> {
        let parts: Vec<&str> = target
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(BeneathError::NotRelative(target.to_string()));
        }
        let open =
            |prefix: &str| open_at(self.fd(), Path::new(prefix), OFlag::O_PATH, Links::InRoot);
        let mut parent = open_at(
            self.fd(),
            Path::new("."),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Links::Never,
        )?;
        for k in 0..parts.len() {
            let prefix = parts[..=k].join("/");
            let last = k + 1 == parts.len();
            match open(&prefix) {
                Ok(fd) => parent = fd,
                Err(BeneathError::NotFound(_)) => {
                    let name = parts[k];
                    let made = if last && !dir {
                        nix::fcntl::openat(
                            &parent,
                            name,
                            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                            Mode::from_bits_truncate(0o644),
                        )
                        .map(drop)
                    } else {
                        nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o755))
                    };
                    match made {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(BeneathError::of(Path::new(&prefix), e)),
                    }
                    parent = open(&prefix)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(parent)
    }

    /// Every entry beneath this directory, sorted by path, with at most `max` entries (`None` when
    /// there are more). Links are listed as links, never followed; directories are entered
    /// through handles, so nothing outside is ever read.
    pub fn walk(&self, max: usize) -> Result<Option<Vec<Entry>>, BeneathError> {
        let mut out = Vec::new();
        // Directories still to read, by path: each is opened (beneath, no link followed) only
        // when its turn comes, so a walk holds one directory open at a time however wide the
        // tree.
        let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let at_rel = match rel.as_os_str().is_empty() {
                true => Path::new("."),
                false => rel.as_path(),
            };
            let fd = open_at(
                self.fd(),
                at_rel,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                Links::Never,
            )?;
            let mut d = nix::dir::Dir::from_fd(fd).map_err(|e| BeneathError::of(&rel, e))?;
            let dfd = d.as_raw_fd();
            // SAFETY: `d` owns the fd and outlives every use of this borrow below.
            let at = unsafe { BorrowedFd::borrow_raw(dfd) };
            let mut names = Vec::new();
            for e in d.iter() {
                let e = e.map_err(|e| BeneathError::of(&rel, e))?;
                let name = OsStr::from_bytes(e.file_name().to_bytes()).to_os_string();
                if name == "." || name == ".." {
                    continue;
                }
                names.push(name);
            }
            for name in names {
                let path = rel.join(&name);
                let st = nix::sys::stat::fstatat(
                    at,
                    name.as_os_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| BeneathError::of(&path, e))?;
                let kind = Kind::of(&st);
                let target = match kind {
                    Kind::Link => Some(PathBuf::from(
                        nix::fcntl::readlinkat(at, name.as_os_str())
                            .map_err(|e| BeneathError::of(&path, e))?,
                    )),
                    _ => None,
                };
                if kind == Kind::Dir {
                    stack.push(path.clone());
                }
                if out.len() == max {
                    return Ok(None);
                }
                out.push(Entry {
                    path,
                    kind,
                    size: if kind == Kind::File {
                        st.st_size as u64
                    } else {
                        0
                    },
                    target,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Some(out))
    }
}

/// `path` as a plain relative path beneath `root`, decided on the text alone (`root` is assumed
/// to be canonical: it is the caller's own directory).
pub fn strip_root<'a>(path: &'a Path, root: &Path) -> Option<&'a Path> {
    let rel = path.strip_prefix(root).ok()?;
    relative(rel).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    thread_local! {
        /// Makes this thread's calls walk paths as on a kernel without `openat2`.
        pub(super) static FALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("art/sub")).unwrap();
        std::fs::write(r.join("art/sub/file"), b"inside").unwrap();
        std::fs::write(r.join("secret"), b"outside").unwrap();
        symlink("/etc", r.join("art/abs")).unwrap();
        symlink("../secret", r.join("art/up")).unwrap();
        symlink("sub/file", r.join("art/in")).unwrap();
        symlink("/etc", r.join("escape")).unwrap();
        t
    }

    fn read(f: File) -> String {
        let mut s = String::new();
        std::io::BufReader::new(f).read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn links_out_of_the_directory_are_never_followed() {
        let t = tree();
        let root = Dir::open(t.path()).unwrap();
        let art = root.dir(Path::new("art"), Links::Never).unwrap();
        assert_eq!(
            read(art.file(Path::new("sub/file"), Links::Never).unwrap()),
            "inside"
        );
        // A link inside that stays inside is followed only when asked.
        assert_eq!(
            read(art.file(Path::new("in"), Links::Inside).unwrap()),
            "inside"
        );
        assert!(matches!(
            art.file(Path::new("in"), Links::Never),
            Err(BeneathError::Link(_))
        ));
        for out in ["abs", "up", "abs/passwd"] {
            let e = art.file(Path::new(out), Links::Inside).unwrap_err();
            assert!(
                matches!(e, BeneathError::Escapes(_) | BeneathError::Link(_)),
                "{out}: {e}"
            );
        }
        assert!(matches!(
            root.dir(Path::new("escape"), Links::Never),
            Err(BeneathError::Link(_))
        ));
        for bad in ["../secret", "/etc/passwd", ""] {
            assert!(
                matches!(
                    art.file(Path::new(bad), Links::Inside),
                    Err(BeneathError::NotRelative(_))
                ),
                "{bad}"
            );
        }
        // A link at the end can be looked at, not through.
        assert_eq!(
            root.entry(Path::new("escape"), Links::Never).unwrap().0,
            Kind::Link
        );
        assert_eq!(root.handle(Path::new("escape")).unwrap().1, Kind::Link);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let t = tree();
        nix::unistd::mkfifo(&t.path().join("art/pipe"), Mode::from_bits_truncate(0o644)).unwrap();
        let art = Dir::open(&t.path().join("art")).unwrap();
        assert!(art.file(Path::new("pipe"), Links::Never).is_err());
        assert_eq!(
            art.entry(Path::new("pipe"), Links::Never).unwrap().0,
            Kind::Special
        );
    }

    #[test]
    fn a_walk_holds_no_handle_per_directory_it_has_yet_to_read() {
        // A tree of many sibling directories (a dataset with a folder per class) is walked under
        // a small limit on open files.
        let t = tempfile::tempdir().unwrap();
        for i in 0..1000 {
            std::fs::create_dir_all(t.path().join(format!("class{i}/x"))).unwrap();
        }
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 256, hard)
            .unwrap();
        let walked = Dir::open(t.path()).unwrap().walk(10_000);
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, soft, hard)
            .unwrap();
        assert_eq!(walked.unwrap().unwrap().len(), 2000);
    }

    #[test]
    fn a_walk_lists_links_as_links() {
        let t = tree();
        let art = Dir::open(&t.path().join("art")).unwrap();
        let all = art.walk(100).unwrap().unwrap();
        let names: Vec<(String, Kind)> = all
            .iter()
            .map(|e| (e.path.display().to_string(), e.kind))
            .collect();
        assert_eq!(
            names,
            [
                ("abs".to_string(), Kind::Link),
                ("in".to_string(), Kind::Link),
                ("sub".to_string(), Kind::Dir),
                ("sub/file".to_string(), Kind::File),
                ("up".to_string(), Kind::Link),
            ]
        );
        assert_eq!(all[0].target.as_deref(), Some(Path::new("/etc")));
        assert_eq!(all[3].size, 6);
        assert_eq!(art.walk(2).unwrap(), None, "more than the limit");
    }

    #[test]
    fn mount_targets_are_made_inside_the_root_whatever_its_links_say() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        let outside = t.path().join("host");
        std::fs::create_dir_all(&outside).unwrap();
        // An image whose links point at host paths, absolute and relative.
        symlink(&outside, root.join("abs")).unwrap();
        symlink("../../../../../../tmp", root.join("up")).unwrap();
        let r = Dir::open(&root).unwrap();
        // `..` past the top stays at the top: `up` is the root's own /tmp.
        r.make_in_root("/up/made/here", true).unwrap();
        assert!(root.join("tmp/made/here").is_dir());
        r.make_in_root("/up/file", false).unwrap();
        assert!(root.join("tmp/file").is_file());
        // An absolute link means the root's path, which does not exist: nothing is made.
        assert!(r.make_in_root("/abs/etc/cron.d/x", false).is_err());
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing made outside"
        );
        assert!(r.make_in_root("/a/../../b", true).is_err());
        // What exists is opened as it is.
        let fd = r.make_in_root("/tmp", true).unwrap();
        let st = nix::sys::stat::fstat(&fd).unwrap();
        assert_eq!(Kind::of(&st), Kind::Dir);
    }

    #[test]
    fn without_openat2_every_link_is_refused() {
        FALLBACK.with(|f| f.set(true));
        let t = tree();
        let art = Dir::open(&t.path().join("art")).unwrap();
        assert_eq!(
            read(art.file(Path::new("sub/file"), Links::Never).unwrap()),
            "inside"
        );
        for l in ["in", "abs", "up", "abs/passwd"] {
            assert!(art.file(Path::new(l), Links::Inside).is_err(), "{l}");
        }
        assert_eq!(
            art.entry(Path::new("abs"), Links::Never).unwrap().0,
            Kind::Link
        );
        assert_eq!(art.walk(100).unwrap().unwrap().len(), 5);
    }

    #[test]
    fn paths_are_stripped_of_their_root_only_when_plainly_inside() {
        let root = Path::new("/data/artifacts");
        assert_eq!(
            strip_root(Path::new("/data/artifacts/r/t/1/m"), root),
            Some(Path::new("r/t/1/m"))
        );
        assert_eq!(
            strip_root(Path::new("/data/artifacts/../sluice.db"), root),
            None
        );
        assert_eq!(strip_root(Path::new("/etc"), root), None);
        assert_eq!(strip_root(root, root), None);
    }
}

//! Unpacking generated layers: contents, metadata, whiteouts, and every way out of the directory.

use super::*;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32, u64),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Dev(&'a str),
    Fifo(&'a str),
}

fn raw_header(
    name: &str,
    kind: tar::EntryType,
    size: u64,
    mode: u32,
    uid: u64,
    link: Option<&str>,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    h
}

/// A layer tar; names are written raw, so malicious ones are possible.
fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match *e {
            E::Dir(n, mode) => b
                .append(
                    &raw_header(n, tar::EntryType::Directory, 0, mode, 0, None),
                    &[][..],
                )
                .unwrap(),
            E::File(n, data, mode, uid) => b
                .append(
                    &raw_header(
                        n,
                        tar::EntryType::Regular,
                        data.len() as u64,
                        mode,
                        uid,
                        None,
                    ),
                    data,
                )
                .unwrap(),
            E::Sym(n, t) => b
                .append(
                    &raw_header(n, tar::EntryType::Symlink, 0, 0o777, 0, Some(t)),
                    &[][..],
                )
                .unwrap(),
            E::Hard(n, t) => b
                .append(
                    &raw_header(n, tar::EntryType::Link, 0, 0o644, 0, Some(t)),
                    &[][..],
                )
                .unwrap(),
            E::Dev(n) => b
                .append(
                    &raw_header(n, tar::EntryType::Char, 0, 0o666, 0, None),
                    &[][..],
                )
                .unwrap(),
            E::Fifo(n) => b
                .append(
                    &raw_header(n, tar::EntryType::Fifo, 0, 0o600, 0, None),
                    &[][..],
                )
                .unwrap(),
        }
    }
    b.into_inner().unwrap()
}

/// Fails a test that needs root where there is none (sluice's tests run as root: scripts/test),
/// rather than letting it pass having checked nothing.
fn require_root(why: &str) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() == 0 };
    assert!(
        root,
        "this test needs root ({why}); run the tests as root, as scripts/test does"
    );
}

#[test]
fn contents_and_metadata_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layer");
    let tar = layer(&[
        E::Dir("etc/", 0o755),
        E::File("etc/os-release", b"ID=sluice\n", 0o644, 0),
        E::File("usr/bin/tool", b"#!/bin/sh\n", 0o4755, 0),
        E::File("home/user/data", b"x", 0o600, 1234),
        E::Sym("usr/bin/alias", "tool"),
        E::Sym("etc/abs-link", "/etc/os-release"),
        E::Hard("usr/bin/tool2", "usr/bin/tool"),
        E::Dev("dev/null"),
        E::Fifo("run/pipe"),
        E::Dir("ro/", 0o555),
        E::File("ro/inside", b"ok", 0o444, 0),
    ]);
    let stats = unpack_layer(&tar[..], &dest, None).unwrap();
    assert_eq!(stats.skipped_devices, 1);
    assert_eq!(
        std::fs::read(dest.join("etc/os-release")).unwrap(),
        b"ID=sluice\n"
    );
    let tool = std::fs::metadata(dest.join("usr/bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid bit kept");
    assert_eq!(tool.mtime(), 1_600_000_000);
    assert_eq!(
        std::fs::read_link(dest.join("usr/bin/alias")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        std::fs::read_link(dest.join("etc/abs-link")).unwrap(),
        Path::new("/etc/os-release"),
        "symlink targets are kept as written, never followed"
    );
    assert_eq!(
        std::fs::metadata(dest.join("usr/bin/tool2")).unwrap().ino(),
        tool.ino(),
        "hard link shares the inode"
    );
    assert!(!dest.join("dev/null").exists(), "device nodes are skipped");
    assert!(std::fs::symlink_metadata(dest.join("run/pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        std::fs::metadata(dest.join("ro")).unwrap().mode() & 0o777,
        0o555
    );
    assert_eq!(std::fs::read(dest.join("ro/inside")).unwrap(), b"ok");
    require_root("to give files away");
    assert_eq!(
        std::fs::metadata(dest.join("home/user/data"))
            .unwrap()
            .uid(),
        1234,
        "ownership kept"
    );
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    require_root("overlay whiteouts need mknod and trusted.* xattrs");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layer");
    let tar = layer(&[
        E::File("etc/.wh.passwd", b"", 0o644, 0),
        E::Dir("opt/app/", 0o755),
        E::File("opt/app/.wh..wh..opq", b"", 0o644, 0),
        E::File("opt/app/new", b"n", 0o644, 0),
    ]);
    let stats = unpack_layer(&tar[..], &dest, None).unwrap();
    assert_eq!(stats.whiteouts, 2);
    let w = std::fs::symlink_metadata(dest.join("etc/passwd")).unwrap();
    assert!(
        w.file_type().is_char_device() && w.rdev() == 0,
        "`.wh.passwd` is a 0/0 character device"
    );
    assert!(!dest.join("etc/.wh.passwd").exists());
    let mut buf = [0u8; 4];
    let c = cpath(&dest.join("opt/app"));
    // SAFETY: valid path and name, buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n.max(0) as usize], b"y");
    assert!(dest.join("opt/app/new").exists());
}

#[test]
fn every_escape_is_refused_and_nothing_is_kept() {
    let cases: &[(&str, Vec<u8>, &str)] = &[
        (
            "dot-dot",
            layer(&[E::File("../evil", b"x", 0o644, 0)]),
            "climbs out with `..`",
        ),
        (
            "nested dot-dot",
            layer(&[E::Dir("a/", 0o755), E::File("a/../../evil", b"x", 0o644, 0)]),
            "climbs out",
        ),
        (
            "absolute",
            layer(&[E::File("/evil", b"x", 0o644, 0)]),
            "is an absolute path",
        ),
        (
            "through a symlink",
            layer(&[E::Sym("link", "/tmp"), E::File("link/evil", b"x", 0o644, 0)]),
            "goes through a symlink",
        ),
        (
            "through a relative symlink",
            layer(&[E::Sym("up", ".."), E::File("up/evil", b"x", 0o644, 0)]),
            "goes through a symlink",
        ),
        (
            "whiteout through a symlink",
            layer(&[
                E::Sym("link", "/etc"),
                E::File("link/.wh.passwd", b"", 0o644, 0),
            ]),
            "goes through a symlink",
        ),
        (
            "hard link out",
            layer(&[E::Hard("pw", "../../../../etc/passwd")]),
            "climbs out",
        ),
        (
            "hard link to absolute",
            layer(&[E::Hard("pw", "/etc/passwd")]),
            "is an absolute path",
        ),
        (
            "hard link through a symlink",
            layer(&[E::Sym("etc", "/etc"), E::Hard("pw", "etc/passwd")]),
            "goes through a symlink",
        ),
    ];
    for (name, tar, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/layer");
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let err = unpack_layer(&tar[..], &dest, None)
            .expect_err(name)
            .to_string();
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            !dest.exists(),
            "{name}: a refused layer leaves no directory"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert!(left.is_empty(), "{name}: partial files were kept");
        assert!(
            !dir.path().join("evil").exists() && !dir.path().join("sub/evil").exists(),
            "{name}: wrote outside"
        );
    }
}

#[test]
fn gzip_layers_unpack_and_zstd_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let plain = layer(&[E::File("a", b"hello", 0o644, 0)]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let diff_id = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&plain))
    );
    let stats = unpack_layer(&gz[..], &dir.path().join("l1"), Some(&diff_id)).unwrap();
    assert_eq!(
        stats.diff_id, diff_id,
        "the diff id is the digest of the uncompressed tar"
    );
    let wrong = unpack_layer(&gz[..], &dir.path().join("l3"), Some("sha256:00")).unwrap_err();
    assert!(matches!(wrong, UnpackError::DiffId { .. }), "{wrong}");
    assert!(
        !dir.path().join("l3").exists(),
        "a layer that does not match its diff id is not kept"
    );
    assert_eq!(std::fs::read(dir.path().join("l1/a")).unwrap(), b"hello");
    let zstd = [0x28u8, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
    assert!(matches!(
        unpack_layer(&zstd[..], &dir.path().join("l2"), None),
        Err(UnpackError::Zstd)
    ));
    assert!(!dir.path().join("l2").exists());
}

#[test]
fn later_entries_replace_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layer");
    let tar = layer(&[
        E::File("x", b"first", 0o644, 0),
        E::Sym("x", "target"),
        E::File("y", b"1", 0o644, 0),
        E::File("y", b"2", 0o644, 0),
    ]);
    unpack_layer(&tar[..], &dest, None).unwrap();
    assert_eq!(
        std::fs::read_link(dest.join("x")).unwrap(),
        Path::new("target")
    );
    assert_eq!(std::fs::read(dest.join("y")).unwrap(), b"2");
}

#[test]
fn a_link_that_replaces_a_directory_takes_its_place_and_its_mode_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    // Outside the layer: a directory whose mode must stay as it is.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    let dest = dir.path().join("layer");
    let out = outside.display().to_string();
    let tar = layer(&[
        E::Dir("dev", 0o777),
        E::File("dev/null-ish", b"x", 0o644, 0),
        E::Sym("dev", &out),
        E::Dir("keep", 0o750),
        E::Dir("keep", 0o755),
    ]);
    unpack_layer(&tar[..], &dest, None).unwrap();
    assert_eq!(std::fs::read_link(dest.join("dev")).unwrap(), outside);
    let mode = std::fs::metadata(&outside).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700, "the directory's mode went through the link");
    assert_eq!(
        std::fs::metadata(dest.join("keep")).unwrap().mode() & 0o7777,
        0o755
    );
}

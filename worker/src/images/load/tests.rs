//! Loading generated images: a `docker save` archive and an OCI layout of the same image give the
//! same layers; tampering is refused; names, removal and pruning.

use super::*;
use std::io::Write;

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

struct Image {
    layers: Vec<Vec<u8>>,
    config: Vec<u8>,
}

fn image() -> Image {
    let l1 = tar_of(&[("etc/os-release", b"ID=demo\n"), ("a", b"old")]);
    let l2 = tar_of(&[("a", b"new"), ("bin/tool", b"#!/bin/sh\n")]);
    let diff_ids: Vec<String> = [&l1, &l2].iter().map(|l| sha256_hex(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "MODE=demo"], "Cmd": ["/bin/tool"], "WorkingDir": "/work", "User": "1000"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    Image {
        layers: vec![l1, l2],
        config,
    }
}

fn docker_save(img: &Image, path: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("cfg.json", &img.config);
    add("one/layer.tar", &img.layers[0]);
    add("two/layer.tar", &img.layers[1]);
    let manifest = json!([{"Config": "cfg.json", "RepoTags": ["demo:1"], "Layers": ["one/layer.tar", "two/layer.tar"]}]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.finish().unwrap();
}

/// An OCI layout with gzip layers; returns the directory.
fn oci_layout(img: &Image, dir: &Path, name: Option<&str>) -> Vec<String> {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |data: &[u8]| {
        let d = sha256_hex(data);
        std::fs::write(dir.join("blobs/sha256").join(&d[7..]), data).unwrap();
        d
    };
    let cfg = put(&img.config);
    let layers: Vec<(String, usize)> = img
        .layers
        .iter()
        .map(|l| gzip(l))
        .map(|g| (put(&g), g.len()))
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": img.config.len()},
        "layers": layers.iter().map(|(d, s)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let m = put(&manifest);
    let mut desc = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": manifest.len()});
    if let Some(n) = name {
        desc["annotations"] = json!({"io.containerd.image.name": n});
    }
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [desc]})).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    layers.into_iter().map(|(d, _)| d).collect()
}

fn layer_dirs(root: &Path) -> usize {
    std::fs::read_dir(root.join("layers/sha256"))
        .unwrap()
        .count()
}

#[test]
fn docker_save_and_oci_layout_give_the_same_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let img = image();
    let archive = dir.path().join("demo.tar");
    docker_save(&img, &archive);
    let recs = load(&store, &archive, None).unwrap();
    assert_eq!(recs.len(), 1);
    let docker = &recs[0];
    assert_eq!(docker.reference, "docker.io/library/demo:1");
    assert_eq!(docker.config.cmd, Some(vec!["/bin/tool".to_string()]));
    assert_eq!(docker.config.env, ["PATH=/bin", "MODE=demo"]);
    assert_eq!(
        (
            docker.config.working_dir.as_deref(),
            docker.config.user.as_deref()
        ),
        (Some("/work"), Some("1000"))
    );
    assert_eq!(layer_dirs(&dir.path().join("images")), 2);
    let top = store.layer_path(&docker.layers[1]).unwrap();
    assert_eq!(std::fs::read(top.join("a")).unwrap(), b"new");
    assert_eq!(
        std::fs::read(
            store
                .layer_path(&docker.layers[0])
                .unwrap()
                .join("etc/os-release")
        )
        .unwrap(),
        b"ID=demo\n"
    );

    let layout = dir.path().join("layout");
    oci_layout(&img, &layout, Some("127.0.0.1:5000/ml/demo:2"));
    let oci = load(&store, &layout, None).unwrap().remove(0);
    assert_eq!(oci.reference, "127.0.0.1:5000/ml/demo:2");
    assert_eq!(
        oci.layers, docker.layers,
        "the same uncompressed layers, whatever the packaging"
    );
    assert_eq!(oci.config, docker.config);
    assert_eq!(
        layer_dirs(&dir.path().join("images")),
        2,
        "layers are unpacked once and shared"
    );
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn tampered_blobs_are_refused_and_nothing_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let layout = dir.path().join("layout");
    let layers = oci_layout(&image(), &layout, Some("demo:bad"));
    let victim = layout.join("blobs/sha256").join(&layers[1][7..]);
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let err = load(&store, &layout, None).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(store.list().unwrap().is_empty());
    assert!(
        std::fs::read_dir(dir.path().join("images/tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no partial blob kept"
    );
}

#[test]
fn unnamed_layouts_need_a_tag_and_bad_files_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let layout = dir.path().join("layout");
    oci_layout(&image(), &layout, None);
    assert!(load(&store, &layout, None)
        .unwrap_err()
        .to_string()
        .contains("--tag"));
    assert_eq!(
        load(&store, &layout, Some("mine:v1")).unwrap()[0].reference,
        "docker.io/library/mine:v1"
    );
    let junk = dir.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    assert!(load(&store, &junk, None)
        .unwrap_err()
        .to_string()
        .contains("neither a `docker save` archive"));
}

#[test]
fn import_remove_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    let store = ImageStore::open(&root).unwrap();
    let rootfs = dir.path().join("rootfs.tar.gz");
    std::fs::write(
        &rootfs,
        gzip(&tar_of(&[
            ("bin/busybox", b"\x7fELF"),
            ("etc/os-release", b"ID=busybox\n"),
        ])),
    )
    .unwrap();
    let rec = import(&store, &rootfs, "127.0.0.1:5000/sluice/busybox:1").unwrap();
    assert_eq!(rec.layers.len(), 1);
    assert_eq!(
        std::fs::read(
            store
                .layer_path(&rec.layers[0])
                .unwrap()
                .join("etc/os-release")
        )
        .unwrap(),
        b"ID=busybox\n"
    );
    let archive = dir.path().join("demo.tar");
    docker_save(&image(), &archive);
    let demo = load(&store, &archive, None).unwrap().remove(0);
    store
        .tag(ImageRecord {
            reference: "docker.io/library/demo:alias".into(),
            ..demo.clone()
        })
        .unwrap();
    assert_eq!(layer_dirs(&root), 3);

    store.remove(&demo.reference).unwrap();
    assert_eq!(
        store.prune(&[]).unwrap(),
        0,
        "the alias still uses every layer"
    );
    store.remove("docker.io/library/demo:alias").unwrap();
    assert!(matches!(
        store.remove("docker.io/library/demo:alias"),
        Err(ImageError::NotFound(_))
    ));
    assert!(store.prune(&demo.layers).unwrap() > 0);
    assert_eq!(
        layer_dirs(&root),
        3,
        "layers of running tasks survive a prune"
    );
    store.prune(&[]).unwrap();
    assert_eq!(
        layer_dirs(&root),
        1,
        "only the imported image's layer is left"
    );
    assert!(store.layer_path(&rec.layers[0]).unwrap().is_dir());
    assert!(store.read_blob(&rec.digest).is_ok());
}

#[test]
fn import_changes_make_the_config_as_docker_import_does() {
    let c = import_config(&[
        "ENTRYPOINT [\"/bin/sh\", \"-c\"]".into(),
        "CMD echo $GREETING".into(),
        "WORKDIR /work".into(),
        "USER trainer".into(),
        "ENV GREETING=hi there".into(),
        "env PATH=/opt/bin".into(),
    ])
    .unwrap();
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "echo $GREETING"])
    );
    assert_eq!(c["WorkingDir"], "/work");
    assert_eq!(c["User"], "trainer");
    assert_eq!(
        c["Env"],
        serde_json::json!(["GREETING=hi there", "PATH=/opt/bin"])
    );
    for bad in ["EXPOSE 80", "WORKDIR relative", "CMD [1, 2]", "ENV NOVALUE"] {
        let e = import_config(&[bad.into()]).unwrap_err().to_string();
        assert!(e.contains(bad), "{bad}: {e}");
    }
}

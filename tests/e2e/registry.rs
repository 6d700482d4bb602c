//! Images against a real registry (Debian's `docker-registry` on a free loopback port, started
//! here, with and without htpasswd auth): push then pull round-trips, tampering is refused, a
//! wrong password is named, concurrent pulls download once.

use crate::harness::*;
use sluice_worker::images::load::import;
use sluice_worker::images::registry::Registries;
use sluice_worker::images::store::{ImageError, ImageStore};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Registry {
    _proc: Proc,
    addr: String,
    data: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Registry {
    /// How many times each blob was fetched (`GET /v2/…/blobs/DIGEST` answered), from the
    /// registry's own request log.
    fn blob_gets(&self) -> std::collections::HashMap<String, usize> {
        let mut out = std::collections::HashMap::new();
        for line in std::fs::read_to_string(&self.log).unwrap().lines() {
            if !line.contains("msg=\"response completed\"")
                || !line.contains("http.request.method=GET ")
            {
                continue;
            }
            let Some(uri) = line
                .split(' ')
                .find_map(|f| f.strip_prefix("http.request.uri="))
            else {
                continue;
            };
            if let Some((_, digest)) = uri.trim_matches('"').split_once("/blobs/") {
                *out.entry(digest.to_string()).or_insert(0) += 1;
            }
        }
        out
    }
}

fn start_registry(dir: &Path, htpasswd: Option<&Path>) -> Registry {
    assert!(
        Path::new("/usr/bin/docker-registry").exists(),
        "these tests need Debian's docker-registry (scripts/test installs it)"
    );
    let port = free_port();
    let data = dir.join("registry-data");
    let auth = htpasswd
        .map(|p| {
            format!(
                "auth:\n  htpasswd:\n    realm: sluice\n    path: {}\n",
                p.display()
            )
        })
        .unwrap_or_default();
    // At `info`, the registry logs every request it answers: the tests count blob fetches there.
    let cfg = format!("version: 0.1\nlog: {{level: info}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}", data.display());
    let cfg_path = dir.join("registry.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let log = dir.join("registry.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = std::process::Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&cfg_path)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "registry did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Registry {
        _proc: Proc(child),
        addr,
        data,
        log,
    }
}

fn rootfs(dir: &Path) -> std::path::PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("etc/os-release", &b"ID=sluice-test\n"[..]),
        ("bin/hello", &b"#!/bin/sh\necho hello\n"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    let path = dir.join("rootfs.tar.gz");
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    path
}

fn store(dir: &Path, name: &str) -> Arc<ImageStore> {
    Arc::new(ImageStore::open(&dir.join(name)).unwrap())
}

/// A registry with a one-layer test image pushed to it: the registry, the image's name, the store
/// it was pushed from, its record and its layer blob's digest.
async fn pushed(
    dir: &Path,
    repo: &str,
) -> (
    Registry,
    String,
    Arc<ImageStore>,
    sluice_worker::images::store::ImageRecord,
    String,
) {
    let reg = start_registry(dir, None);
    let name = format!("{}/sluice/{repo}:1", reg.addr);
    let a = store(dir, "a");
    let rec = import(&a, &rootfs(dir), &name).unwrap();
    Registries::new(a.clone(), vec![])
        .push(&name, None)
        .await
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&a.read_blob(&rec.digest).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    (reg, name, a, rec, layer)
}

#[tokio::test]
async fn push_then_pull_round_trips_and_a_second_pull_costs_only_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start_registry(dir.path(), None);
    let name = format!("{}/sluice/test:1", reg.addr);
    let a = store(dir.path(), "a");
    let pushed = import(&a, &rootfs(dir.path()), &name).unwrap();
    Registries::new(a.clone(), vec![])
        .push(&name, None)
        .await
        .unwrap();

    let manifest: serde_json::Value =
        serde_json::from_slice(&a.read_blob(&pushed.digest).unwrap()).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let layer_blob = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let before = reg.blob_gets();
    let b = store(dir.path(), "b");
    let regs = Arc::new(Registries::new(b.clone(), vec![]));
    // Several tasks asking at once download the image once.
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let regs = regs.clone();
            let name = name.clone();
            tokio::spawn(async move { regs.ensure(&name).await })
        })
        .collect();
    for p in pulls {
        let rec = p.await.unwrap().unwrap();
        assert_eq!(
            rec.digest, pushed.digest,
            "the pulled image is exactly the pushed one"
        );
    }
    let fetched = |gets: &std::collections::HashMap<String, usize>, d: &str| {
        gets.get(d).copied().unwrap_or(0) - before.get(d).copied().unwrap_or(0)
    };
    let after_first = reg.blob_gets();
    assert_eq!(
        fetched(&after_first, &layer_blob),
        1,
        "the layer was fetched once"
    );
    assert_eq!(
        fetched(&after_first, &config),
        1,
        "the config was fetched once"
    );
    let layer = b.layer_path(&pushed.layers[0]).unwrap();
    assert_eq!(
        std::fs::read(layer.join("etc/os-release")).unwrap(),
        b"ID=sluice-test\n"
    );
    assert!(
        std::fs::read_dir(dir.path().join("b/tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no partial downloads left"
    );

    // The same image under another name: layers are not fetched again.
    let other = format!("{}/sluice/other:2", reg.addr);
    Registries::new(a.clone(), vec![])
        .push(&name, Some(&other))
        .await
        .unwrap();
    let stored = std::fs::read_dir(dir.path().join("b/blobs/sha256"))
        .unwrap()
        .count();
    let rec = regs.pull(&other).await.unwrap();
    assert_eq!(rec.digest, pushed.digest);
    assert_eq!(
        std::fs::read_dir(dir.path().join("b/blobs/sha256"))
            .unwrap()
            .count(),
        stored,
        "nothing new was stored"
    );
    let after_second = reg.blob_gets();
    assert_eq!(
        (
            fetched(&after_second, &layer_blob),
            fetched(&after_second, &config)
        ),
        (1, 1),
        "the second name's layer and config were not fetched again"
    );
}

#[tokio::test]
async fn a_tampered_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, name, _a, _rec, layer) = pushed(dir.path(), "tamper").await;
    let layer = layer.as_str();
    let hex = &layer[7..];
    let data = reg.data.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&data, bytes).unwrap();

    let b = store(dir.path(), "b");
    let err = Registries::new(b.clone(), vec![])
        .pull(&name)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::DigestMismatch { .. }) || err.to_string().contains("digest"),
        "{err}"
    );
    assert!(b.list().unwrap().is_empty(), "nothing named");
    assert!(
        !b.blob_path(layer).unwrap().exists(),
        "the bad blob is not kept"
    );
}

#[tokio::test]
async fn registry_credentials_come_from_the_docker_config() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let out = std::process::Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .expect("htpasswd (apache2-utils) is needed");
    std::fs::write(&htpasswd, out.stdout).unwrap();
    let reg = start_registry(dir.path(), Some(&htpasswd));
    let name = format!("{}/sluice/private:1", reg.addr);
    let a = store(dir.path(), "a");
    import(&a, &rootfs(dir.path()), &name).unwrap();
    let config = |user: &str, pass: &str| {
        use base64::Engine;
        let p = dir.path().join(format!("docker-{user}-{pass}.json"));
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        std::fs::write(
            &p,
            format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, reg.addr),
        )
        .unwrap();
        p
    };
    let anonymous =
        Registries::new(a.clone(), vec![]).with_docker_config(dir.path().join("none.json"));
    let refused = anonymous.push(&name, None).await.unwrap_err().to_string();
    assert!(
        refused.contains("401") || refused.to_lowercase().contains("unauthorized"),
        "an anonymous push is refused for want of credentials: {refused}"
    );
    let wrong = Registries::new(a.clone(), vec![]).with_docker_config(config("alice", "wrong"));
    let err = wrong.push(&name, None).await.unwrap_err().to_string();
    assert!(
        err.contains("cannot log in to")
            || err.contains("401")
            || err.to_lowercase().contains("unauthorized"),
        "a wrong password is named: {err}"
    );
    let right = Registries::new(a.clone(), vec![]).with_docker_config(config("alice", "s3cret"));
    right.push(&name, None).await.unwrap();
    let b = store(dir.path(), "b");
    let rec = Registries::new(b, vec![])
        .with_docker_config(config("alice", "s3cret"))
        .pull(&name)
        .await
        .unwrap();
    assert_eq!(rec.layers.len(), 1);
}

#[tokio::test]
async fn an_interrupted_pull_resumes_from_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let (_reg, name, a, rec, layer) = pushed(dir.path(), "resume").await;
    let whole = a.read_blob(&layer).unwrap();

    // Half a download left behind by an earlier, interrupted pull.
    let b = store(dir.path(), "b");
    let partial = dir
        .path()
        .join("b/tmp")
        .join(format!("{}.partial", &layer[7..]));
    std::fs::write(&partial, &whole[..whole.len() / 2]).unwrap();
    let got = Registries::new(b.clone(), vec![])
        .pull(&name)
        .await
        .unwrap();
    assert_eq!(got.digest, rec.digest);
    assert_eq!(
        b.read_blob(&layer).unwrap(),
        whole,
        "the rest was fetched and the blob verified whole"
    );
    assert!(!partial.exists());

    // A partial file that is wrong is found out by the digest and thrown away; the next pull works.
    let c = store(dir.path(), "c");
    let bad = dir
        .path()
        .join("c/tmp")
        .join(format!("{}.partial", &layer[7..]));
    std::fs::write(&bad, vec![0u8; whole.len() / 2]).unwrap();
    let regs = Registries::new(c.clone(), vec![]);
    assert!(matches!(
        regs.pull(&name).await,
        Err(ImageError::DigestMismatch { .. })
    ));
    assert!(!bad.exists(), "the bad partial download is removed");
    assert_eq!(regs.pull(&name).await.unwrap().digest, rec.digest);
}

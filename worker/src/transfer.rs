//! Artifacts to and from the object store: a task's outputs uploaded after it exits (streamed,
//! multipart for large files, each request retried by `object_store`), and inputs made on other
//! hosts downloaded before a step starts, into a cache kept per worker by content digest and
//! verified against the digest the producer recorded. A step on its producer's host reads the
//! producer's own copy and nothing is downloaded.

use crate::outputs;
use futures_util::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path as Key;
use sluice_sdk::artifacts::object::{self, Manifest, ManifestFile, ManifestLink, Stat};
use sluice_sdk::artifacts::ObjectArtifacts;
use sluice_sdk::beneath::{Dir, Kind, Links};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// How much of a file is buffered before it becomes one part of a multipart upload (a smaller
/// file is one PUT), and how many parts are in flight at once.
const PART_BYTES: usize = 16 << 20;
const PARTS_IN_FLIGHT: usize = 4;
/// Files of a directory artifact moved at once.
const FILES_IN_FLIGHT: usize = 4;
/// Ranges of one object read ahead of the one being written.
const RANGES_AHEAD: usize = 4;

/// Uploads the artifact `name` beneath `area` (the attempt's output directory) to `uri`. A file
/// is one object; a directory is its files and then its manifest. Nothing is followed out of the
/// area: files are opened beneath it, links inside a directory are recorded in the manifest.
pub async fn upload(
    store: &ObjectArtifacts,
    area: &Path,
    name: &str,
    uri: &str,
) -> Result<(), String> {
    let (area, n) = (area.to_path_buf(), name.to_string());
    let opened = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let root = Dir::open(&area).map_err(|e| e.to_string())?;
        let (kind, _) = root
            .entry(Path::new(&n), Links::Never)
            .map_err(|e| e.to_string())?;
        match kind {
            Kind::File => Ok(Opened::File(
                root.file(Path::new(&n), Links::Never)
                    .map_err(|e| e.to_string())?,
            )),
            Kind::Dir => {
                let dir = root
                    .dir(Path::new(&n), Links::Never)
                    .map_err(|e| e.to_string())?;
                let entries = dir
                    .walk(outputs::MAX_ARTIFACT_ENTRIES)
                    .map_err(|e| e.to_string())?
                    .ok_or("too many entries")?;
                Ok(Opened::Dir(Arc::new(dir), entries))
            }
            _ => Err("not a file or a directory".into()),
        }
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot upload artifact `{name}`: {e}"))?;
    let fail = |e: String| format!("cannot upload artifact `{name}` to {uri}: {e}");
    match opened {
        Opened::File(f) => {
            let key = store.key_of(uri, None).map_err(|e| fail(e.to_string()))?;
            put_file(store, key, f).await.map_err(fail)
        }
        Opened::Dir(dir, entries) => {
            let mut m = Manifest::default();
            let mut files = Vec::new();
            for e in entries {
                let path = object::store_path(&e.path).map_err(fail)?;
                match e.kind {
                    Kind::File => {
                        files.push((e.path, path.clone()));
                        m.files.push(ManifestFile { path, size: e.size });
                    }
                    Kind::Dir => m.dirs.push(path),
                    Kind::Link => m.links.push(ManifestLink {
                        path,
                        target: e
                            .target
                            .and_then(|t| t.to_str().map(str::to_string))
                            .ok_or_else(|| {
                                fail(format!(
                                    "the link `{}` has no UTF-8 target",
                                    e.path.display()
                                ))
                            })?,
                    }),
                    Kind::Special => {
                        return Err(fail(format!(
                            "`{}` is a FIFO, socket or device node",
                            e.path.display()
                        )))
                    }
                }
            }
            let mut puts = Vec::with_capacity(files.len());
            for (rel, path) in files {
                let dir = dir.clone();
                let key = store
                    .key_of(uri, Some(&path))
                    .map_err(|e| fail(e.to_string()))?;
                puts.push(async move {
                    let f = tokio::task::spawn_blocking(move || dir.file(&rel, Links::Never))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    put_file(store, key, f).await
                });
            }
            futures_util::stream::iter(puts)
                .buffer_unordered(FILES_IN_FLIGHT)
                .try_collect::<Vec<()>>()
                .await
                .map_err(fail)?;
            store.put_manifest(uri, &m).await.map_err(fail)
        }
    }
}

enum Opened {
    File(std::fs::File),
    Dir(Arc<Dir>, Vec<sluice_sdk::beneath::Entry>),
}

/// Streams one file to `key`: one PUT when it is small, a multipart upload when it is not.
async fn put_file(store: &ObjectArtifacts, key: Key, f: std::fs::File) -> Result<(), String> {
    let mut f = tokio::fs::File::from_std(f);
    let mut w = BufWriter::with_capacity(store.store().clone(), key, PART_BYTES)
        .with_max_concurrency(PARTS_IN_FLIGHT);
    match tokio::io::copy_buf(
        &mut tokio::io::BufReader::with_capacity(1 << 20, &mut f),
        &mut w,
    )
    .await
    {
        Ok(_) => w.shutdown().await.map_err(|e| e.to_string()),
        Err(e) => {
            let _ = w.abort().await;
            Err(e.to_string())
        }
    }
}

/// Where the input at `uri` (with the recorded `digest` and `size`) is on this host, fetched
/// into `cache` (a directory of this worker's) when it is not there yet.
pub async fn fetch(
    store: &ObjectArtifacts,
    uri: &str,
    digest: Option<&str>,
    size: Option<u64>,
    cache: &Path,
) -> Result<PathBuf, String> {
    let Some(hex) = digest.and_then(|d| d.strip_prefix("blake3:")) else {
        return Err(format!(
            "{uri} has no BLAKE3 digest recorded, so a copy could not be verified"
        ));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{uri} has a malformed digest"));
    }
    let kept = cache.join(format!("blake3-{}", hex.to_ascii_lowercase()));
    if let Ok(m) = std::fs::symlink_metadata(&kept) {
        if m.is_file() || m.is_dir() {
            return Ok(kept);
        }
    }
    let stat = store.stat(uri).await.map_err(|e| e.to_string())?;
    let declared = match &stat {
        Stat::File { size } => *size,
        Stat::Dir(m) => m.files.iter().map(|f| f.size).sum(),
    };
    if let Some(want) = size {
        if want != declared {
            return Err(format!(
                "{uri} holds {declared} bytes in the store; its producer recorded {want}"
            ));
        }
    }
    let partial = cache.join(format!(".partial-{}", uuid::Uuid::new_v4().simple()));
    let got = match &stat {
        Stat::File { size } => {
            let key = store.key_of(uri, None).map_err(|e| e.to_string())?;
            get_file(store, key, *size, &partial, true).await
        }
        Stat::Dir(m) => get_dir(store, uri, m, &partial).await,
    };
    let verified = match got {
        Ok(Some(d)) => Ok(d),
        Ok(None) => {
            // A directory is hashed as the producer hashed it, over its tree.
            let (cache, name) = (cache.to_path_buf(), partial.file_name().map(PathBuf::from));
            tokio::task::spawn_blocking(move || -> Result<String, String> {
                let root = Dir::open(&cache).map_err(|e| e.to_string())?;
                let name = name.ok_or("no name")?;
                outputs::hash_tree(&root, &name)
                    .map(|(_, d)| d)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
        }
        Err(e) => Err(e),
    };
    let outcome = match verified {
        Ok(d) if d.strip_prefix("blake3:") == Some(hex) => {
            match std::fs::rename(&partial, &kept) {
                Ok(()) => Ok(kept),
                // Another task fetched the same content meanwhile: that copy serves both.
                Err(_) if kept.exists() => Ok(kept),
                Err(e) => Err(format!("cannot keep {}: {e}", kept.display())),
            }
        }
        Ok(d) => Err(format!(
            "the copy of {uri} read from the store has digest {d}, not the {} its producer recorded",
            digest.unwrap_or_default()
        )),
        Err(e) => Err(format!("cannot fetch {uri}: {e}")),
    };
    if outcome.is_err() || partial.exists() {
        let _ = std::fs::remove_dir_all(&partial).or_else(|_| std::fs::remove_file(&partial));
    }
    outcome
}

/// Writes the object at `key` (`size` bytes) to a new file at `dest`; with `hash`, returns its
/// digest, computed as the bytes arrive.
async fn get_file(
    store: &ObjectArtifacts,
    key: Key,
    size: u64,
    dest: &Path,
    hash: bool,
) -> Result<Option<String>, String> {
    let mut out = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .await
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut h = hash.then(blake3::Hasher::new);
    let mut got = 0u64;
    let mut body = store.read(key, size, RANGES_AHEAD);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        got += chunk.len() as u64;
        if got > size {
            return Err(format!(
                "the store sent more than the {size} bytes it listed"
            ));
        }
        if let Some(h) = &mut h {
            h.update(&chunk);
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    if got != size {
        return Err(format!("the store sent {got} of {size} bytes"));
    }
    out.flush().await.map_err(|e| e.to_string())?;
    Ok(h.map(|h| sluice_spec::digest::blake3(&h.finalize().to_hex())))
}

/// Recreates a directory artifact from its manifest beneath a new directory `dest`: its
/// directories, its files (fetched a few at a time), and last its links, so that nothing is
/// ever written through one.
async fn get_dir(
    store: &ObjectArtifacts,
    uri: &str,
    m: &Manifest,
    dest: &Path,
) -> Result<Option<String>, String> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    tokio::fs::create_dir(dest).await.map_err(|e| io(dest, e))?;
    let parents = m
        .dirs
        .iter()
        .map(String::as_str)
        .chain(
            m.files
                .iter()
                .filter_map(|f| f.path.rsplit_once('/').map(|(d, _)| d)),
        )
        .chain(
            m.links
                .iter()
                .filter_map(|l| l.path.rsplit_once('/').map(|(d, _)| d)),
        );
    for d in parents {
        let p = dest.join(d);
        tokio::fs::create_dir_all(&p).await.map_err(|e| io(&p, e))?;
    }
    let mut gets = Vec::with_capacity(m.files.len());
    for f in &m.files {
        let key = store
            .key_of(uri, Some(&f.path))
            .map_err(|e| e.to_string())?;
        let (size, path) = (f.size, dest.join(&f.path));
        gets.push(async move { get_file(store, key, size, &path, false).await });
    }
    futures_util::stream::iter(gets)
        .buffer_unordered(FILES_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    for l in &m.links {
        let p = dest.join(&l.path);
        tokio::fs::symlink(&l.target, &p)
            .await
            .map_err(|e| io(&p, e))?;
    }
    Ok(None)
}

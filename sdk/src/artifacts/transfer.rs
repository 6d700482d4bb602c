//! Artifacts to and from the object store: a task's outputs uploaded after it exits, and the
//! files a run is given uploaded as the server receives them (streamed, multipart for large
//! files, each request retried by `object_store`), and inputs made on other
//! hosts downloaded before a step starts, into a cache kept per worker by content digest and
//! verified against the digest the producer recorded. A step on its producer's host reads the
//! producer's own copy and nothing is downloaded.

use super::object::{self, Manifest, ManifestFile, ManifestLink, Stat};
use super::tree as outputs;
use super::ObjectArtifacts;
use crate::beneath::{Dir, Kind, Links};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, WriteMultipart};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The size of one part of a multipart upload (a smaller file is one PUT), and how many parts
/// are in flight at once: larger parts in fewer requests went faster against Garage than 8 or
/// 16 MiB ones four at a time.
const PART_BYTES: usize = 32 << 20;
const PARTS_IN_FLIGHT: usize = 2;
/// How much of a large file is mapped at once while it is sent (a multiple of a part): what the
/// step wrote decides a file's length, so the maps, and the page tables behind them, are bounded.
const MAP_WINDOW: u64 = 256 << 20;
/// Files of a directory artifact moved at once.
const FILES_IN_FLIGHT: usize = 4;
/// What a download hands its writer at once, and how many such batches may wait.
const WRITE_BYTES: usize = 8 << 20;
const BATCHES_QUEUED: usize = 4;
/// Times in a row a download that ended early is resumed with no byte gained in between.
const RESUMES: u32 = 5;

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
    Dir(Arc<Dir>, Vec<crate::beneath::Entry>),
}

/// Sends one file to `key`: one PUT when it is smaller than a part, else a multipart upload of
/// parts that are slices of read-only maps of the file ([`MAP_WINDOW`] at a time), so its bytes
/// go from the page cache to the socket with no copy in between.
async fn put_file(store: &ObjectArtifacts, key: Key, f: std::fs::File) -> Result<(), String> {
    let f = Arc::new(f);
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if len < PART_BYTES as u64 {
        let f2 = f.clone();
        let body = tokio::task::spawn_blocking(move || {
            let mut v = Vec::with_capacity(len as usize);
            std::io::Read::read_to_end(&mut std::io::Read::take(&*f2, len), &mut v).map(|_| v)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        return store
            .store()
            .put(&key, object_store::PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let upload = store
        .store()
        .put_multipart(&key)
        .await
        .map_err(|e| e.to_string())?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let sent = async {
        let mut offset = 0u64;
        while offset < len {
            let n = MAP_WINDOW.min(len - offset);
            let f = f.clone();
            // SAFETY: the map is read-only; the file is in the task's own output area and its
            // container has exited, so nothing writes to it or shrinks it while it is sent
            // (the same ground as its hashing in `outputs`).
            let map = tokio::task::spawn_blocking(move || unsafe {
                memmap2::MmapOptions::new()
                    .offset(offset)
                    .len(n as usize)
                    .map(&*f)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            let window = bytes::Bytes::from_owner(map);
            let mut at = 0;
            while at < window.len() {
                let end = (at + PART_BYTES).min(window.len());
                w.wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| e.to_string())?;
                w.put(window.slice(at..end));
                at = end;
            }
            offset += n;
        }
        Ok::<_, String>(())
    }
    .await;
    match sent {
        Ok(()) => w.finish().await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => {
            let _ = w.abort().await;
            Err(e)
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
/// digest. The bytes arrive on this task and are written and hashed on a blocking thread,
/// [`WRITE_BYTES`] at a time, a few batches queued between them.
async fn get_file(
    store: &ObjectArtifacts,
    key: Key,
    size: u64,
    dest: &Path,
    hash: bool,
) -> Result<Option<String>, String> {
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(BATCHES_QUEUED);
    let shown = dest.display().to_string();
    let writer = tokio::task::spawn_blocking(move || -> Result<Option<String>, String> {
        let mut out = out;
        let mut h = hash.then(blake3::Hasher::new);
        while let Some(batch) = rx.blocking_recv() {
            for chunk in batch {
                if let Some(h) = &mut h {
                    h.update(&chunk);
                }
                std::io::Write::write_all(&mut out, &chunk).map_err(|e| format!("{shown}: {e}"))?;
            }
        }
        Ok(h.map(|h| sluice_spec::digest::blake3(&h.finalize().to_hex())))
    });
    let received = receive(store, &key, size, tx).await;
    let written = writer.await.map_err(|e| e.to_string())?;
    received?;
    written
}

/// Sends the `size` bytes of the object at `key` to `tx` in batches. A response that ends early
/// (a connection cut, a request's time limit) is resumed from where it stopped, a few times in a
/// row at most with nothing gained in between.
async fn receive(
    store: &ObjectArtifacts,
    key: &Key,
    size: u64,
    tx: tokio::sync::mpsc::Sender<Vec<bytes::Bytes>>,
) -> Result<(), String> {
    let mut got = 0u64;
    let (mut batch, mut batched) = (Vec::new(), 0);
    let mut fruitless = 0;
    while got < size {
        let before = got;
        let mut body = store.read_from(key, got).await.map_err(|e| e.to_string())?;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, got, size, "an object's download broke off");
                    break;
                }
            };
            got += chunk.len() as u64;
            if got > size {
                return Err(format!(
                    "the store sent more than the {size} bytes it listed"
                ));
            }
            batched += chunk.len();
            batch.push(chunk);
            if batched >= WRITE_BYTES {
                batched = 0;
                if tx.send(std::mem::take(&mut batch)).await.is_err() {
                    return Ok(()); // the writer failed: its error is the one to tell
                }
            }
        }
        if got < size {
            fruitless = if got > before { 0 } else { fruitless + 1 };
            if fruitless >= RESUMES {
                return Err(format!("the store sent {got} of {size} bytes"));
            }
            tracing::warn!(got, size, "an object's download ended early; resuming");
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
    Ok(())
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

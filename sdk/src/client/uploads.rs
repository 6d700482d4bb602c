//! Sending a local file or directory to be a run's input artifact: hashed here as the server and
//! the workers hash it (a file's BLAKE3, a directory's over its sorted tree), sent only when the
//! server does not hold that content yet, streamed (a directory as a tar stream of its tree), and
//! checked by the server against the digest before it is kept.

use super::{enc, Client, ClientError, Result};
use crate::api::{UploadInfo, UPLOAD_TAR};
use crate::artifacts::archive::{self, ChannelWriter};
use crate::artifacts::tree;
use crate::beneath::{Dir, Kind, Links};
use std::path::{Path, PathBuf};

/// How long an upload is sent again while the server says it is busy.
const BUSY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// What became of a local path sent as an input.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub info: UploadInfo,
    /// Whether its bytes were sent (`false`: the server held that content already).
    pub sent: bool,
}

fn local(path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::Local(format!("{}: {e}", path.display()))
}

impl Client {
    /// The upload with this digest, if the server holds it.
    pub async fn upload_info(&self, digest: &str) -> Result<Option<UploadInfo>> {
        match self.get(&format!("/uploads/{}", enc(digest))).await {
            Ok(i) => Ok(Some(i)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends the file or directory at `path` (a path the caller names, followed to what it
    /// names; nothing beneath a directory is followed) unless the server holds its content.
    pub async fn upload_path(&self, path: &Path) -> Result<Uploaded> {
        let real = std::fs::canonicalize(path).map_err(|e| local(path, e))?;
        let (parent, name) = match (real.parent(), real.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), PathBuf::from(n)),
            _ => return Err(local(path, "not a file or a directory")),
        };
        let (p, n) = (parent.clone(), name.clone());
        let (kind, size, digest) = tokio::task::spawn_blocking(move || {
            let d = Dir::open(&p).map_err(|e| e.to_string())?;
            let (kind, _) = d.entry(&n, Links::Never).map_err(|e| e.to_string())?;
            if !matches!(kind, Kind::File | Kind::Dir) {
                return Err("not a file or a directory".to_string());
            }
            // Read, never mapped: the files are the caller's, and may change meanwhile.
            let (size, digest) = tree::hash_tree_with(&d, &n, false).map_err(|e| e.to_string())?;
            Ok((kind, size, digest))
        })
        .await
        .map_err(|e| local(path, e))?
        .map_err(|e| local(path, e))?;
        if let Some(info) = self.upload_info(&digest).await? {
            return Ok(Uploaded { info, sent: false });
        }
        // A server taking as many uploads as it takes says so: sent again, backing off, for
        // a while.
        let mut wait = std::time::Duration::from_millis(250);
        let start = std::time::Instant::now();
        loop {
            match self
                .send_upload(path, &parent, &name, kind, size, &digest)
                .await
            {
                Err(ClientError::Api { error, .. })
                    if error.code == crate::api::ErrorCode::Busy
                        && start.elapsed() < BUSY_PATIENCE =>
                {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                sent => return sent,
            }
        }
    }

    /// Sends one file or directory once.
    async fn send_upload(
        &self,
        path: &Path,
        parent: &Path,
        name: &Path,
        kind: Kind,
        size: u64,
        digest: &str,
    ) -> Result<Uploaded> {
        let (parent, name) = (parent.to_path_buf(), name.to_path_buf());
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let shown = path.display().to_string();
        let reader = tokio::task::spawn_blocking(move || -> std::result::Result<(), String> {
            let d = Dir::open(&parent).map_err(|e| e.to_string())?;
            let mut out = ChannelWriter::new(tx);
            match kind {
                Kind::Dir => {
                    let dir = d.dir(&name, Links::Never).map_err(|e| e.to_string())?;
                    let entries = dir
                        .walk(tree::MAX_ARTIFACT_ENTRIES)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| {
                            format!("more than {} entries", tree::MAX_ARTIFACT_ENTRIES)
                        })?;
                    out = archive::pack(&dir, &entries, out).map_err(|e| e.to_string())?;
                }
                _ => {
                    let mut f = d.file(&name, Links::Never).map_err(|e| e.to_string())?;
                    std::io::copy(&mut f, &mut out).map_err(|e| e.to_string())?;
                }
            }
            std::io::Write::flush(&mut out).map_err(|e| e.to_string())
        });
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        }));
        let mut req = self
            .req(reqwest::Method::PUT, &format!("/uploads/{}", enc(digest)))
            .body(body);
        req = match kind {
            Kind::Dir => req.header(reqwest::header::CONTENT_TYPE, UPLOAD_TAR),
            _ => req
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, size),
        };
        let sent = self.send::<UploadInfo>(req).await;
        let read = reader.await.map_err(|e| local(path, e))?;
        match (sent, read) {
            (Ok(info), _) => Ok(Uploaded { info, sent: true }),
            // The server's refusal says more than the reader stopped by it.
            (Err(e @ ClientError::Api { .. }), _) => Err(e),
            (Err(_), Err(e)) => Err(ClientError::Local(format!("{shown}: {e}"))),
            (Err(e), Ok(())) => Err(e),
        }
    }
}

impl Client {
    /// Fetches the upload `digest` a run was given, as the worker `worker`, into `cache` (kept
    /// as `blake3-HEX`, verified against the digest; a copy there already is used as it is).
    pub async fn fetch_upload(
        &self,
        worker: &crate::api::WorkerIdentity,
        digest: &str,
        cache: &Path,
    ) -> Result<PathBuf> {
        let hex = digest
            .strip_prefix("blake3:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                ClientError::Protocol(format!("`{digest}` is not an upload's digest"))
            })?;
        let kept = cache.join(format!("blake3-{}", hex.to_ascii_lowercase()));
        if std::fs::symlink_metadata(&kept).is_ok_and(|m| m.is_file() || m.is_dir()) {
            return Ok(kept);
        }
        std::fs::create_dir_all(cache).map_err(|e| local(cache, e))?;
        let path = format!(
            "/workers/{}/uploads/{}",
            enc(worker.id.as_str()),
            enc(digest)
        );
        let req = self
            .http
            .get(self.url(&path))
            .bearer_auth(&worker.credential);
        let resp = self.answered(req).await?;
        let tar = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(UPLOAD_TAR));
        let partial = cache.join(format!(".partial-{}", uuid::Uuid::new_v4().simple()));
        let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<bytes::Bytes, String>>(8);
        let at = partial.clone();
        let job = tokio::task::spawn_blocking(move || {
            archive::land(archive::ChannelReader::new(rx), &at, tar)
        });
        let mut body = resp.bytes_stream();
        while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
            let msg = chunk.map_err(|e| format!("the download broke off: {e}"));
            let stop = msg.is_err();
            if tx.send(msg).await.is_err() || stop {
                break;
            }
        }
        drop(tx);
        let landed = job.await.map_err(|e| local(&partial, e));
        let outcome = match landed {
            Ok(Ok((_, d))) if d == digest => match std::fs::rename(&partial, &kept) {
                Ok(()) => Ok(kept.clone()),
                // Another task fetched the same content meanwhile: that copy serves both.
                Err(_) if kept.exists() => Ok(kept.clone()),
                Err(e) => Err(local(&kept, e)),
            },
            Ok(Ok((_, d))) => Err(ClientError::Protocol(format!(
                "the server sent content with digest {d} for upload {digest}"
            ))),
            Ok(Err(e)) => Err(ClientError::Protocol(format!("upload {digest}: {e}"))),
            Err(e) => Err(e),
        };
        if partial.exists() {
            let _ = std::fs::remove_dir_all(&partial).or_else(|_| std::fs::remove_file(&partial));
        }
        outcome
    }
}

//! `/uploads`: files and directories a run is given as its input artifacts (`sluice submit
//! --input NAME=PATH`), kept by their content's digest. `GET /uploads/{digest}` says whether the
//! server holds one (so a client sends only what is new); `PUT /uploads/{digest}` streams one
//! in — a file as its bytes, a directory as a tar stream of its tree — hashed as it lands and kept
//! only if its content has the digest the path names. A body past the server's limit is a 413
//! naming the limit, announced or not; a stream that is not a plain tree is refused by name and
//! leaves nothing behind.
//!
//! Uploads are kept beneath the built-in worker's artifact directory (`DATA/worker/artifacts/
//! uploads`), where `sluice up` reads them in place, and with an object store
//! (`--artifacts s3://…`) in the store too, where every worker fetches them as it fetches another
//! host's outputs, verified against the digest.

use super::error::{ApiErr, ApiResult};
use super::App;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use sluice_engine::ArtifactRecord;
use sluice_sdk::api::{ErrorCode, UploadInfo, UPLOAD_TAR};
use sluice_sdk::artifacts::archive::{self, ChannelReader, ChannelWriter, UnpackError};
use sluice_sdk::artifacts::object::Stat;
use sluice_sdk::artifacts::tree::MAX_ARTIFACT_ENTRIES;
use sluice_sdk::artifacts::UPLOAD_SCHEME;
use sluice_sdk::beneath::{Dir, Kind, Links};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The largest upload a server takes unless told otherwise (`--max-upload`).
pub const DEFAULT_MAX_UPLOAD: u64 = 16 << 30;

/// What bounds the uploads in flight: each holds a blocking thread while its body arrives, so
/// only so many are taken at once, and one whose body stops arriving is given up.
pub struct Limits {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    at_once: usize,
    idle: std::time::Duration,
}

impl Limits {
    pub fn new(idle: Option<std::time::Duration>, at_once: Option<usize>) -> Limits {
        let at_once = at_once.unwrap_or(32).max(1);
        Limits {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(at_once)),
            at_once,
            idle: idle.unwrap_or(std::time::Duration::from_secs(60)),
        }
    }
}

/// The name an upload is kept under: `blake3-HEX`, from its digest `blake3:HEX`.
fn kept_name(digest: &str) -> ApiResult<String> {
    let hex = digest
        .strip_prefix("blake3:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(|| {
            ApiErr::bad_request(
                ErrorCode::InvalidBody,
                format!(
                    "`{digest}` is not an upload's digest: `blake3:` and 64 lowercase hex digits"
                ),
            )
        })?;
    Ok(format!("blake3-{hex}"))
}

/// Where uploads are kept on this host.
fn dir(app: &App) -> PathBuf {
    uploads_in(app.artifacts.local.root())
}

fn uploads_in(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("worker/artifacts/uploads")
}

/// Removes what uploads cut off by the server's last exit left half-written.
pub fn sweep(data_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(uploads_in(data_dir)) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(".partial-") {
            let p = e.path();
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
}

/// Where the upload `name` is for workers: its object-store URI with a store, else its path here.
fn uri_of(app: &App, name: &str) -> String {
    match &app.artifacts.object {
        Some(o) => o.uri_of(&["uploads", name]),
        None => format!("{UPLOAD_SCHEME}://{name}"),
    }
}

/// The upload with `digest`, if the server holds it.
async fn info(app: &App, digest: &str) -> ApiResult<Option<UploadInfo>> {
    let name = kept_name(digest)?;
    let uri = uri_of(app, &name);
    let found = match &app.artifacts.object {
        Some(o) => match o.stat(&uri).await {
            Ok(Stat::File { size }) => Some((size, "file")),
            Ok(Stat::Dir(m)) => Some((m.files.iter().map(|f| f.size).sum(), "directory")),
            Err(sluice_sdk::artifacts::ArtifactError::Gone(_)) => None,
            Err(e) => {
                return Err(ApiErr::new(
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::Internal,
                    format!("the object store: {e}"),
                ))
            }
        },
        None => {
            let root = dir(app);
            tokio::task::spawn_blocking(move || -> Option<(u64, &'static str)> {
                let d = Dir::open(&root).ok()?;
                let (kind, st) = d.entry(std::path::Path::new(&name), Links::Never).ok()?;
                match kind {
                    Kind::File => Some((st.st_size as u64, "file")),
                    Kind::Dir => {
                        let sub = d.dir(std::path::Path::new(&name), Links::Never).ok()?;
                        let entries = sub.walk(MAX_ARTIFACT_ENTRIES).ok()??;
                        Some((entries.iter().map(|e| e.size).sum(), "directory"))
                    }
                    _ => None,
                }
            })
            .await
            .ok()
            .flatten()
        }
    };
    Ok(found.map(|(size, kind)| UploadInfo {
        digest: digest.to_string(),
        size,
        kind: kind.into(),
    }))
}

/// `GET /uploads/{digest}`: the upload, or 404.
pub async fn get(
    State(app): State<App>,
    Path(digest): Path<String>,
) -> ApiResult<Json<UploadInfo>> {
    info(&app, &digest)
        .await?
        .map(Json)
        .ok_or_else(|| ApiErr::not_found(format!("no upload has digest `{digest}`")))
}

fn too_large(limit: u64) -> ApiErr {
    ApiErr::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
        format!(
            "the upload is over the server's limit of {limit} bytes ({}; `sluice serve --max-upload`)",
            sluice_spec::format_bytes(limit)
        ),
    )
}

fn refused(m: impl Into<String>) -> ApiErr {
    ApiErr::bad_request(ErrorCode::InvalidBody, m)
}

/// `PUT /uploads/{digest}`: a file (any content type) or a directory (`application/x-tar`).
/// 201 with what was kept; 200 when it was held already.
pub async fn put(
    State(app): State<App>,
    Path(digest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<UploadInfo>)> {
    let name = kept_name(&digest)?;
    let limit = app.max_upload;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    if let Some(held) = info(&app, &digest).await? {
        return Ok((StatusCode::OK, Json(held)));
    }
    let Ok(_slot) = app.uploads.slots.clone().try_acquire_owned() else {
        return Err(ApiErr::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            format!(
                "the server is taking {} uploads at once already; send it again shortly",
                app.uploads.at_once
            ),
        ));
    };
    let tar = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.split(';').next().map(str::trim) == Some(UPLOAD_TAR));
    let root = dir(&app);
    tokio::fs::create_dir_all(&root)
        .await
        .map_err(|e| internal(format!("{}: {e}", root.display())))?;
    let partial = root.join(format!(".partial-{}", uuid::Uuid::new_v4().simple()));

    // The body goes to a blocking thread that writes and hashes it (or unpacks the tar and
    // hashes the tree) as it comes, a few chunks queued between them.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(8);
    let at = partial.clone();
    let job = tokio::task::spawn_blocking(move || land(ChannelReader::new(rx), &at, tar));
    let mut stream = body.into_data_stream();
    let mut got = 0u64;
    let (mut over, mut idle) = (false, false);
    loop {
        let Ok(next) = tokio::time::timeout(app.uploads.idle, stream.next()).await else {
            idle = true;
            let _ = tx.send(Err("the upload stopped arriving".into())).await;
            break;
        };
        let Some(chunk) = next else { break };
        let msg = match chunk {
            Ok(b) => {
                got += b.len() as u64;
                if got > limit {
                    over = true;
                    Err("over the limit".to_string())
                } else {
                    Ok(b)
                }
            }
            Err(e) => Err(format!("the upload broke off: {e}")),
        };
        let stop = msg.is_err();
        if tx.send(msg).await.is_err() || stop {
            break; // the writer has stopped: its error is the one to tell
        }
    }
    drop(tx);
    let landed = job.await.map_err(|e| internal(e.to_string()))?;
    let outcome = match (over, landed) {
        (true, _) => Err(too_large(limit)),
        (false, _) if idle => Err(ApiErr::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Timeout,
            format!(
                "the upload sent nothing for {}; nothing was kept",
                humantime::format_duration(app.uploads.idle)
            ),
        )),
        (false, Err(e)) => Err(e),
        (false, Ok((_, d))) if d != digest => Err(refused(format!(
            "the content sent has digest {d}, not the {digest} its path names"
        ))),
        (false, Ok((size, _))) => Ok(size),
    };
    let size = match outcome {
        Ok(s) => s,
        Err(e) => {
            remove(&partial).await;
            return Err(e);
        }
    };
    let kept = root.join(&name);
    if let Err(e) = tokio::fs::rename(&partial, &kept).await {
        remove(&partial).await;
        // Another upload of the same content finished first: that copy serves.
        if tokio::fs::symlink_metadata(&kept).await.is_err() {
            return Err(internal(format!("cannot keep {}: {e}", kept.display())));
        }
    }
    if let Some(store) = &app.artifacts.object {
        let uri = uri_of(&app, &name);
        sluice_sdk::artifacts::transfer::upload(store, &root, &name, &uri)
            .await
            .map_err(|e| ApiErr::new(StatusCode::BAD_GATEWAY, ErrorCode::Internal, e))?;
    }
    tracing::info!(%digest, size, directory = tar, "upload kept");
    Ok((
        StatusCode::CREATED,
        Json(UploadInfo {
            digest,
            size,
            kind: if tar { "directory" } else { "file" }.into(),
        }),
    ))
}

fn internal(m: String) -> ApiErr {
    ApiErr::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, m)
}

async fn remove(p: &std::path::Path) {
    if tokio::fs::remove_dir_all(p).await.is_err() {
        let _ = tokio::fs::remove_file(p).await;
    }
}

/// Writes what `input` carries to `at` (a file, or a tar unpacked into a directory) and
/// returns its size and digest; what is wrong with what was sent is a 400 naming it.
fn land(input: ChannelReader, at: &std::path::Path, tar: bool) -> ApiResult<(u64, String)> {
    let what = if tar {
        "the directory sent"
    } else {
        "the file sent"
    };
    archive::land(input, at, tar).map_err(|e| match e {
        UnpackError::Refused(m) => refused(format!("{what}: {m}")),
        UnpackError::Read(e) if tar => {
            refused(format!("{what} is not a tar stream sluice reads: {e}"))
        }
        UnpackError::Read(e) => refused(format!("{what}: {e}")),
        UnpackError::Write(m) => internal(m),
    })
}

/// `GET /workers/{id}/uploads/{digest}`: an upload's content, for a worker with no object store
/// between it and the server: a file's bytes, or a directory as a tar stream of its tree.
pub async fn content(
    State(app): State<App>,
    Path((_worker, digest)): Path<(String, String)>,
) -> ApiResult<Response> {
    let name = kept_name(&digest)?;
    let root = dir(&app);
    let n = name.clone();
    let opened = tokio::task::spawn_blocking(move || -> Option<(Kind, Dir)> {
        let d = Dir::open(&root).ok()?;
        let (kind, _) = d.entry(std::path::Path::new(&n), Links::Never).ok()?;
        Some((kind, d))
    })
    .await
    .map_err(|e| internal(e.to_string()))?;
    let gone = || ApiErr::not_found(format!("no upload has digest `{digest}`"));
    let (kind, d) = opened.ok_or_else(gone)?;
    let rel = PathBuf::from(&name);
    match kind {
        Kind::File => {
            let f = d
                .file(&rel, Links::Never)
                .map_err(|e| internal(e.to_string()))?;
            let len = f.metadata().map_err(|e| internal(e.to_string()))?.len();
            let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(f));
            Ok((
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_LENGTH, len.to_string()),
                ],
                Body::from_stream(stream),
            )
                .into_response())
        }
        Kind::Dir => {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
            tokio::task::spawn_blocking(move || {
                let err = tx.clone();
                let sent = (|| -> std::io::Result<()> {
                    let dir = d
                        .dir(&rel, Links::Never)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    let entries = dir
                        .walk(MAX_ARTIFACT_ENTRIES)
                        .map_err(|e| std::io::Error::other(e.to_string()))?
                        .ok_or_else(|| std::io::Error::other("too many entries"))?;
                    let mut out = archive::pack(&dir, &entries, ChannelWriter::new(tx))?;
                    std::io::Write::flush(&mut out)
                })();
                if let Err(e) = sent {
                    // The body ends in an error: the worker sees a broken download, not a short one.
                    let _ = err.blocking_send(Err(e));
                }
            });
            let body = futures_util::stream::unfold(rx, |mut rx| async {
                rx.recv().await.map(|item| (item, rx))
            });
            Ok((
                [(header::CONTENT_TYPE, UPLOAD_TAR.to_string())],
                Body::from_stream(body),
            )
                .into_response())
        }
        _ => Err(gone()),
    }
}

/// The records of a new run's input artifacts: each the pipeline declares, given as the digest
/// of an upload the server holds (or, for a clone given none, the one the cloned run had).
pub(super) async fn run_inputs(
    app: &App,
    pipeline: &sluice_spec::Pipeline,
    given: &BTreeMap<String, String>,
    inherited: &[ArtifactRecord],
) -> ApiResult<Vec<ArtifactRecord>> {
    let unprocessable = |m: String| {
        ApiErr::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidParams,
            m,
        )
    };
    let declared: Vec<&str> = pipeline.artifacts.iter().map(|a| a.name.as_str()).collect();
    if let Some(extra) = given.keys().find(|k| !declared.contains(&k.as_str())) {
        return Err(unprocessable(if declared.is_empty() {
            format!("input artifact `{extra}`: the pipeline declares no input artifacts")
        } else {
            format!(
                "input artifact `{extra}`: the pipeline declares {}",
                declared.join(", ")
            )
        }));
    }
    let mut out = Vec::with_capacity(declared.len());
    for decl in &pipeline.artifacts {
        let Some(digest) = given.get(&decl.name) else {
            match inherited.iter().find(|a| a.name == decl.name) {
                Some(a) => out.push(a.clone()),
                None => {
                    return Err(unprocessable(format!(
                        "the pipeline's input artifact `{0}` was not given (`sluice submit --input {0}=PATH`)",
                        decl.name
                    )))
                }
            }
            continue;
        };
        let held = info(app, digest).await?.ok_or_else(|| {
            unprocessable(format!(
                "input artifact `{}`: no upload has digest `{digest}` (send it first: PUT /api/v1/uploads/{digest})",
                decl.name
            ))
        })?;
        out.push(ArtifactRecord {
            name: decl.name.clone(),
            uri: uri_of(app, &kept_name(digest)?),
            size: held.size,
            digest: held.digest,
            metadata: None,
            kind: decl.kind.clone(),
        });
    }
    Ok(out)
}

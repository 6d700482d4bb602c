//! `GET /runs/{id}/tasks/{task}/artifacts/{name}`: an artifact's bytes, for downloads and the UI's
//! previews. A file artifact is served as is; a directory artifact lists its files, and `?path=`
//! serves one of them. Only artifacts under the server's data directory (where the built-in
//! worker keeps them) can be reached; others live on a worker's disk. Everything is opened
//! beneath that directory through `sluice_sdk::beneath`: a link a step left is never followed
//! out of its artifact.

use super::error::{ApiErr, ApiResult, Query};
use super::{runs, App};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;
use sluice_sdk::api::ErrorCode;
use sluice_sdk::artifacts::object::{self, Stat};
use sluice_sdk::artifacts::{ArtifactError, ArtifactStore, Located, ObjectArtifacts};
use sluice_sdk::beneath::{self, BeneathError, Kind, Links};
use sluice_spec::uri::ArtifactUri;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactQuery {
    /// A file inside a directory artifact.
    path: Option<String>,
    /// Ask the browser to save it rather than show it.
    #[serde(default)]
    download: bool,
}

const MAX_LISTED: usize = 1000;

pub async fn download(
    State(app): State<App>,
    Path((run_id, task, name)): Path<(String, String, String)>,
    Query(q): Query<ArtifactQuery>,
) -> ApiResult<Response> {
    let run = runs::find(&app, &run_id).await?;
    let row = run
        .tasks
        .iter()
        .find(|t| t.stat.name == task)
        .ok_or_else(|| ApiErr::not_found(format!("run `{run_id}` has no task `{task}`")))?;
    let art = row
        .task
        .outputs
        .artifacts
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiErr::not_found(format!("task `{task}` has no artifact `{name}`")))?
        .clone();
    if let Some(object) = object_store_of(&app, &art.uri) {
        return serve_object(&object, &art, &name, q).await;
    }
    let store = app.artifacts.clone();
    // Opening and walking are blocking file-system work.
    let opened =
        tokio::task::spawn_blocking(move || open(&store.local, &art, &name, q.path.as_deref()))
            .await
            .map_err(|e| {
                ApiErr::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    e.to_string(),
                )
            })??;
    let (file, fname) = match opened {
        Opened::Listing(v) => return Ok(Json(v).into_response()),
        Opened::File(f, n) => (f, n),
    };
    let mut f = tokio::fs::File::from_std(file);
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mut head = vec![0u8; 512];
    let n = f.read(&mut head).await.unwrap_or(0);
    head.truncate(n);
    let rest = tokio_util::io::ReaderStream::with_capacity(f, 64 * 1024);
    Ok(respond(bytes_of(head), rest, len, &fname, q.download))
}

/// The object store `uri` is in, when it names one and the server has it.
fn object_store_of(app: &App, uri: &str) -> Option<Arc<ObjectArtifacts>> {
    match ArtifactUri::parse(uri) {
        Ok(ArtifactUri::Other { .. }) => app.artifacts.object.clone(),
        _ => None,
    }
}

/// An artifact kept in the object store, streamed from it range by range: a file, a
/// directory's listing (from its manifest), or one file of a directory.
async fn serve_object(
    store: &ObjectArtifacts,
    art: &sluice_engine::ArtifactRecord,
    name: &str,
    q: ArtifactQuery,
) -> ApiResult<Response> {
    let unreachable = |e: ArtifactError| {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ArtifactUnreachable,
            format!("artifact `{name}` cannot be served: {e}"),
        )
    };
    let stat = store.stat(&art.uri).await.map_err(unreachable)?;
    let (key, size, fname) = match (stat, q.path.as_deref()) {
        (Stat::File { size }, _) => (
            store.key_of(&art.uri, None).map_err(unreachable)?,
            size,
            name.to_string(),
        ),
        (Stat::Dir(m), None) => return Ok(Json(object_listing(&m)).into_response()),
        (Stat::Dir(m), Some(sub)) => {
            if !object::plain_relative(sub) {
                return Err(ApiErr::bad_request(
                    ErrorCode::InvalidQuery,
                    "path must be relative, without `..`",
                ));
            }
            if m.links.iter().any(|l| l.path == sub) {
                return Err(ApiErr::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::ArtifactRefused,
                    format!(
                        "artifact `{name}` is not served: `{sub}` is a link, which is not followed"
                    ),
                ));
            }
            let Some(f) = m.files.iter().find(|f| f.path == sub) else {
                return Err(ApiErr::not_found(format!(
                    "artifact `{name}` has no file `{sub}`"
                )));
            };
            let fname = sub.rsplit('/').next().unwrap_or(sub).to_string();
            (
                store.key_of(&art.uri, Some(sub)).map_err(unreachable)?,
                f.size,
                fname,
            )
        }
    };
    let mut body = store.read(&key).await.map_err(unreachable)?;
    let first = match body.next().await {
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            return Err(unreachable(ArtifactError::Unreadable {
                uri: art.uri.clone(),
                why: e.to_string(),
            }))
        }
        None => Default::default(),
    };
    Ok(respond(first, body, size, &fname, q.download))
}

/// A directory artifact's files and links from its manifest, as [`listing`] shows a local one.
fn object_listing(m: &object::Manifest) -> serde_json::Value {
    let files = m.files.iter().map(|f| {
        (
            f.path.as_str(),
            serde_json::json!({"path": f.path, "size": f.size}),
        )
    });
    let links = m.links.iter().map(|l| {
        (
            l.path.as_str(),
            serde_json::json!({"path": l.path, "link": l.target}),
        )
    });
    let mut all: Vec<_> = files.chain(links).collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    let truncated = all.len() > MAX_LISTED;
    let files: Vec<_> = all.into_iter().take(MAX_LISTED).map(|(_, v)| v).collect();
    serde_json::json!({"kind": "directory", "files": files, "truncated": truncated})
}

/// The response for a file's bytes: typed by its name or its first bytes, never run in the UI's
/// origin, saved rather than shown when asked.
fn respond(
    first: axum::body::Bytes,
    rest: impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send + 'static,
    len: u64,
    fname: &str,
    download: bool,
) -> Response {
    let ctype = content_type(std::path::Path::new(fname), &first[..first.len().min(512)]);
    // The sniffed head first, then the rest as it is read.
    let head = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) });
    let stream = head.chain(rest);
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Whatever a step wrote runs with no access to the UI's origin, even when opened directly.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    if download {
        let fname = fname.replace(['"', '\\', '\r', '\n'], "");
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{fname}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

enum Opened {
    Listing(serde_json::Value),
    /// A regular file and its name.
    File(std::fs::File, String),
}

/// Opens what an artifact record points at, through the server's artifact store (beneath its
/// data directory, with no link followed on the way); inside a directory artifact, `path` may pass
/// through links that stay inside it, never out.
fn open(
    store: &dyn ArtifactStore,
    art: &sluice_engine::ArtifactRecord,
    name: &str,
    path: Option<&str>,
) -> ApiResult<Opened> {
    let unreachable = || {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ArtifactUnreachable,
            format!(
                "artifact `{name}` is at {}, which the server cannot read (it is on a worker's disk)",
                art.uri
            ),
        )
    };
    let refused = |e: &dyn std::fmt::Display| {
        ApiErr::new(
            StatusCode::FORBIDDEN,
            ErrorCode::ArtifactRefused,
            format!("artifact `{name}` is not served: {e}"),
        )
    };
    let uri = ArtifactUri::parse(&art.uri).map_err(|_| unreachable())?;
    let Located {
        dir: root,
        rel,
        kind,
        ..
    } = match store.locate(&uri) {
        Ok(l) => l,
        Err(ArtifactError::Elsewhere { .. } | ArtifactError::Gone(_)) => return Err(unreachable()),
        Err(e @ (ArtifactError::NotFileOrDir(_) | ArtifactError::Unreadable { .. })) => {
            return Err(refused(&e))
        }
        Err(ArtifactError::Refused { source, .. }) => return Err(refused(&source)),
    };
    let rel = rel.as_path();
    let refused = |e: BeneathError| refused(&e);
    let base = rel
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    match (kind, path) {
        (Kind::File, _) => {
            let f = root.file(rel, Links::Never).map_err(refused)?;
            Ok(Opened::File(f, base))
        }
        (Kind::Dir, None) => {
            let dir = root.dir(rel, Links::Never).map_err(refused)?;
            let (entries, truncated) = match dir.walk(MAX_LISTED).map_err(refused)? {
                Some(e) => (e, false),
                None => (Vec::new(), true),
            };
            Ok(Opened::Listing(listing(entries, truncated)))
        }
        (Kind::Dir, Some(sub)) => {
            let sub = std::path::Path::new(sub);
            if beneath::relative(sub).is_err() {
                return Err(ApiErr::bad_request(
                    ErrorCode::InvalidQuery,
                    "path must be relative, without `..`",
                ));
            }
            let dir = root.dir(rel, Links::Never).map_err(refused)?;
            match dir.file(sub, Links::Inside) {
                Ok(f) => Ok(Opened::File(
                    f,
                    sub.file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or(base),
                )),
                Err(BeneathError::NotFound(_)) => Err(ApiErr::not_found(format!(
                    "artifact `{name}` has no file `{}`",
                    sub.display()
                ))),
                Err(e) => Err(refused(e)),
            }
        }
        _ => Err(refused(BeneathError::Link(art.uri.clone()))),
    }
}

fn bytes_of(v: Vec<u8>) -> axum::body::Bytes {
    axum::body::Bytes::from(v)
}

/// A directory artifact's files (and its links, shown with their targets but never followed).
fn listing(entries: Vec<beneath::Entry>, truncated: bool) -> serde_json::Value {
    let files: Vec<serde_json::Value> = entries
        .into_iter()
        .filter_map(|e| {
            let path = e.path.to_string_lossy().into_owned();
            match e.kind {
                Kind::File => Some(serde_json::json!({"path": path, "size": e.size})),
                Kind::Link => Some(serde_json::json!({
                    "path": path,
                    "link": e.target.map(|t| t.to_string_lossy().into_owned()),
                })),
                _ => None,
            }
        })
        .collect();
    serde_json::json!({"kind": "directory", "files": files, "truncated": truncated})
}

/// The content type from the extension, or from the first bytes when there is none.
fn content_type(path: &std::path::Path, head: &[u8]) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => "application/json",
        "csv" => "text/csv; charset=utf-8",
        "tsv" => "text/tab-separated-values; charset=utf-8",
        "txt" | "log" => "text/plain; charset=utf-8",
        "md" | "markdown" => "text/markdown; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        _ => {
            // Images by their magic bytes, HTML by its opening tag.
            if head.starts_with(b"\x89PNG\r\n\x1a\n") {
                return "image/png";
            }
            if head.starts_with(&[0xff, 0xd8, 0xff]) {
                return "image/jpeg";
            }
            if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
                return "image/gif";
            }
            if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
                return "image/webp";
            }
            let start = String::from_utf8_lossy(&head[..head.len().min(64)])
                .trim_start()
                .to_ascii_lowercase();
            if start.starts_with("<!doctype html") || start.starts_with("<html") {
                return "text/html; charset=utf-8";
            }
            let text = std::str::from_utf8(head).is_ok() && !head.contains(&0);
            let trimmed = head.iter().find(|b| !b.is_ascii_whitespace());
            match (text, trimmed) {
                (true, Some(b'{') | Some(b'[')) => "application/json",
                (true, _) if looks_like_csv(head) => "text/csv; charset=utf-8",
                (true, _) => "text/plain; charset=utf-8",
                _ => "application/octet-stream",
            }
        }
    }
}

/// Two or more complete lines with the same number (one or more) of commas.
fn looks_like_csv(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<&str> = text.lines().collect();
    if !text.ends_with('\n') {
        lines.pop(); // the last line may be cut short
    }
    let commas: Vec<usize> = lines.iter().map(|l| l.matches(',').count()).collect();
    commas.len() >= 2 && commas[0] > 0 && commas.iter().all(|c| *c == commas[0])
}

/// Removes what a deleted run's own steps made (not what they reused from another run's
/// cache): its objects in the object store, and its directory in this server's data directory
/// (where the built-in worker keeps artifacts). Returns how many artifacts it left, being on a
/// worker's disk this server cannot reach.
pub async fn remove_run_artifacts(app: &App, run: &crate::store::StoredRun) -> usize {
    let id = run.row.id.as_str();
    let mut left = 0;
    let mut dirs = std::collections::BTreeSet::new();
    let records = run
        .tasks
        .iter()
        .filter(|t| t.task.cached_from.is_none())
        .flat_map(|t| &t.task.outputs.artifacts);
    for a in records {
        match (ArtifactUri::parse(&a.uri), &app.artifacts.object) {
            (Ok(ArtifactUri::Other { .. }), Some(o)) => {
                if o.parts_of(&a.uri).ok().and_then(|p| p.first().copied()) != Some(id) {
                    continue;
                }
                match o.delete(&a.uri).await {
                    Ok(()) | Err(ArtifactError::Gone(_)) => {}
                    Err(e) => {
                        tracing::warn!(run = id, uri = %a.uri, error = %e, "could not delete an artifact of a deleted run")
                    }
                }
            }
            (Ok(u), _) => match u.as_file().and_then(|p| run_dir(app, p, id)) {
                Some(dir) => {
                    dirs.insert(dir);
                }
                None => left += 1,
            },
            (Err(_), _) => left += 1,
        }
    }
    for dir in dirs {
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            tracing::warn!(run = id, dir = %dir.display(), error = %e, "could not delete a deleted run's artifacts");
        }
    }
    left
}

/// The run's own directory (`…/RUN`) on the way to `path`, when it is beneath this server's
/// data directory with no link on the way.
fn run_dir(app: &App, path: &std::path::Path, run: &str) -> Option<std::path::PathBuf> {
    let root = app.artifacts.local.root();
    let rel = beneath::strip_root(path, root)?;
    let mut dir = root.to_path_buf();
    for c in rel.components() {
        dir.push(c);
        if !std::fs::symlink_metadata(&dir).ok()?.is_dir() {
            return None;
        }
        if c.as_os_str() == run {
            return Some(dir);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn content_types_come_from_the_name_then_from_the_first_bytes() {
        let none = Path::new("artifact");
        let cases: &[(&str, &[u8], &str)] = &[
            ("m.json", b"{}", "application/json"),
            ("a.md", b"# hi", "text/markdown; charset=utf-8"),
            ("artifact", b"\x89PNG\r\n\x1a\n\0\0", "image/png"),
            ("artifact", &[0xff, 0xd8, 0xff, 0xe0], "image/jpeg"),
            ("artifact", b"GIF89a..", "image/gif"),
            ("artifact", b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
            (
                "artifact",
                b"  <!DOCTYPE html><p>x",
                "text/html; charset=utf-8",
            ),
            ("artifact", b"<HTML><body>", "text/html; charset=utf-8"),
            ("artifact", b"{\"a\": 1}", "application/json"),
            ("artifact", b"a,b\n1,2\n", "text/csv; charset=utf-8"),
            ("artifact", b"plain words\n", "text/plain; charset=utf-8"),
            ("artifact", &[0, 1, 2, 3], "application/octet-stream"),
        ];
        for (name, head, want) in cases {
            let p = if *name == "artifact" {
                none
            } else {
                Path::new(name)
            };
            assert_eq!(content_type(p, head), *want, "{name} {head:?}");
        }
    }
}

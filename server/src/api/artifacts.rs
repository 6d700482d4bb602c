//! `GET /runs/{id}/tasks/{task}/artifacts/{name}`: an artifact's bytes, for downloads and the UI's
//! previews. A file artifact is served as is; a directory artifact lists its files, and `?path=`
//! serves one of them. Only artifacts under the server's data directory (where the built-in
//! worker keeps them) can be reached; others live on a worker's disk.

use super::error::{ApiErr, ApiResult, Query};
use super::{runs, App};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::path::{Component, PathBuf};
use tokio::io::AsyncReadExt;

#[derive(Deserialize)]
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
        .ok_or_else(|| ApiErr::not_found(format!("task `{task}` has no artifact `{name}`")))?;
    let unreachable = || {
        ApiErr::new(
            StatusCode::NOT_FOUND,
            "artifact_unreachable",
            format!(
                "artifact `{name}` is at {}, which the server cannot read (it is on a worker's disk)",
                art.uri
            ),
        )
    };
    let root = art
        .uri
        .strip_prefix("file://")
        .and_then(|p| std::fs::canonicalize(p).ok())
        .filter(|p| p.starts_with(&*app.files_root))
        .ok_or_else(unreachable)?;
    let file = if root.is_dir() {
        match &q.path {
            None => return Ok(Json(listing(&root)).into_response()),
            Some(rel) => {
                let rel = PathBuf::from(rel);
                if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
                    return Err(ApiErr::bad_request(
                        "invalid_query",
                        "path must be relative, without `..`",
                    ));
                }
                let p = std::fs::canonicalize(root.join(&rel))
                    .ok()
                    .filter(|p| p.starts_with(&root) && p.is_file())
                    .ok_or_else(|| {
                        ApiErr::not_found(format!(
                            "artifact `{name}` has no file `{}`",
                            rel.display()
                        ))
                    })?;
                p
            }
        }
    } else {
        root
    };
    let mut f = tokio::fs::File::open(&file)
        .await
        .map_err(|_| unreachable())?;
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mut head = vec![0u8; 512];
    let n = f.read(&mut head).await.unwrap_or(0);
    head.truncate(n);
    let ctype = content_type(&file, &head);
    let stream = futures_util::stream::unfold((f, Some(head)), |(mut f, head)| async move {
        if let Some(h) = head {
            if !h.is_empty() {
                return Some((Ok::<_, std::io::Error>(bytes_of(h)), (f, None)));
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes_of(buf)), (f, None)))
            }
            Err(e) => Some((Err(e), (f, None))),
        }
    });
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
    if q.download {
        let fname = file
            .file_name()
            .map(|f| f.to_string_lossy().replace('"', ""))
            .unwrap_or_else(|| name.clone());
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{fname}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(resp)
}

fn bytes_of(v: Vec<u8>) -> axum::body::Bytes {
    axum::body::Bytes::from(v)
}

fn listing(root: &std::path::Path) -> serde_json::Value {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() && files.len() < MAX_LISTED => {
                    let rel = p
                        .strip_prefix(root)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .into_owned();
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    files.push(serde_json::json!({"path": rel, "size": size}));
                }
                _ => {}
            }
        }
    }
    serde_json::json!({"kind": "directory", "files": files, "truncated": files.len() >= MAX_LISTED})
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

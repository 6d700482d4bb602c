//! The web UI: the assets under `web/` (plain HTML, CSS and ES modules, one per view; no build
//! step), embedded in the binary at build time and served at `/` beside the API. Every path
//! outside `/api` and `/assets` gets the page, which routes itself, so deep links (`/runs/ID`,
//! `/runs/ID/tasks/TASK`, `/pipelines/NAME`, `/workers`) work.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../../../web/index.html");

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        /// Every asset, by its path under `/assets/`.
        const ASSETS: &[(&str, &str)] = &[$(($path, include_str!(concat!("../../../web/", $path)))),*];
    };
}

assets!(
    "app.css",
    "js/main.js",
    "js/lib.js",
    "js/graph.js",
    "js/runs.js",
    "js/run.js",
    "js/artifacts.js",
    "js/compare.js",
    "js/pipelines.js",
    "js/kfp.js",
    "js/log.js",
    "js/task.js",
    "js/form.js",
    "js/lineage.js",
    "js/workers.js",
    "js/schedules.js",
    "vendor/d3-dag-1.2.2.min.js",
);

fn asset(body: &'static str, ctype: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn serve_asset(Path(path): Path<String>) -> Response {
    let Some((_, body)) = ASSETS.iter().find(|(p, _)| *p == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let ctype = match path.rsplit_once('.').map(|(_, e)| e) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    };
    let mut r = asset(body, ctype);
    // A vendored library's file is named by its version: it never changes under that name.
    if path.starts_with("vendor/") {
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    r
}

pub fn router() -> Router {
    Router::new()
        .route("/assets/{*path}", get(serve_asset))
        .fallback(get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
}

#[cfg(test)]
mod tests {
    /// Every module a view imports is embedded: a file added under `web/js/` and not listed in
    /// `assets!` would be a 404 in the browser.
    #[test]
    fn every_module_under_web_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/js");
        for e in std::fs::read_dir(dir).unwrap() {
            let name = format!("js/{}", e.unwrap().file_name().to_string_lossy());
            assert!(
                super::ASSETS.iter().any(|(p, _)| *p == name),
                "{name} is not embedded"
            );
        }
        for (p, body) in super::ASSETS {
            for import in body.lines().filter(|l| l.starts_with("import ")) {
                let target = match import.rsplit_once("\"../") {
                    Some((_, t)) => t.trim_end_matches("\";").to_string(),
                    None => format!(
                        "js/{}",
                        import
                            .rsplit_once("\"./")
                            .map(|(_, t)| t.trim_end_matches("\";"))
                            .unwrap()
                    ),
                };
                assert!(
                    super::ASSETS.iter().any(|(q, _)| *q == target),
                    "{p} imports {target}, which is not embedded"
                );
            }
        }
    }
}

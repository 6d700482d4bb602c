//! The web UI: one page of plain HTML, CSS and JavaScript, embedded in the binary and served at `/`
//! beside the API. Every path outside `/api` gets the page, which routes itself, so deep links
//! (`/runs/ID`, `/runs/ID/tasks/TASK`, `/pipelines/NAME`) work.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

fn asset(body: &'static str, ctype: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub fn router() -> Router {
    Router::new()
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .fallback(get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
}

//! The UI's login: a token given once, kept by the browser in an `HttpOnly`, `SameSite=Strict`
//! cookie (scripts cannot read it; other sites' pages do not send it).

use super::auth::{self, Caller, COOKIE};
use super::error::{ApiErr, ApiResult, Body};
use super::App;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sluice_sdk::api::{ErrorCode, Login, Whoami};

/// How long the login cookie lasts.
const MAX_AGE_SECS: u64 = 7 * 24 * 3600;

fn whoami_of(app: &App, c: &Caller) -> Whoami {
    let (name, role) = match c {
        Caller::Anonymous => ("anonymous".to_string(), "admin".to_string()),
        Caller::Token { name, role, .. } => (name.clone(), role.as_str().to_string()),
        Caller::Worker(id) => (id.to_string(), "worker".to_string()),
    };
    Whoami {
        name,
        role,
        auth_required: app.auth.required(),
    }
}

fn cookie(app: &App, value: &str, max_age: u64) -> HeaderValue {
    let secure = if app.auth.tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `POST /login`: checks the token and sets the cookie.
pub async fn login(
    State(app): State<App>,
    headers: HeaderMap,
    Body(req): Body<Login>,
) -> ApiResult<Response> {
    // A page of another site must not log a browser in with its own token either.
    if headers.contains_key(header::ORIGIN) {
        auth::same_origin(&headers)?;
    }
    if !app.auth.required() {
        return Ok(Json(whoami_of(&app, &Caller::Anonymous)).into_response());
    }
    let token = req.token.trim();
    let valid = token.len() <= 256 && token.bytes().all(|b| b.is_ascii_graphic());
    let caller = match valid {
        true => app.auth.token(&app, token).await?,
        false => None,
    };
    let Some(caller) = caller else {
        return Err(ApiErr::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "the token is unknown or revoked",
        ));
    };
    let mut resp = Json(whoami_of(&app, &caller)).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&app, token, MAX_AGE_SECS));
    Ok(resp)
}

/// `POST /logout`: clears the cookie.
pub async fn logout(State(app): State<App>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&app, "", 0));
    resp
}

/// `GET /whoami`.
pub async fn whoami(State(app): State<App>, Extension(c): Extension<Caller>) -> Json<Whoami> {
    Json(whoami_of(&app, &c))
}

//! `/secrets`: set, list and delete secrets (admins only). A value goes in and never comes back
//! out through the API: only workers running a step that names the secret receive it.

use super::error::{ApiErr, ApiResult, Body};
use super::App;
use crate::secrets::MAX_VALUE;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sluice_sdk::api::{format_ts, ErrorCode, SecretInfo, SetSecret};

fn check(name: &str) -> ApiResult<()> {
    if !sluice_spec::is_name(name) {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            format!(
                "`{}` is not a secret name: letters, digits, `_` and `-`, starting with a letter (at most 63)",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

pub async fn set(
    State(app): State<App>,
    Path(name): Path<String>,
    Body(req): Body<SetSecret>,
) -> ApiResult<(StatusCode, Json<SecretInfo>)> {
    check(&name)?;
    if req.value.is_empty() || req.value.len() > MAX_VALUE || req.value.contains('\0') {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            format!("a secret's value is 1 to {MAX_VALUE} bytes, with no NUL byte"),
        ));
    }
    let now = crate::scheduler::now_ms();
    let boxed = app.secrets.clone();
    let (n, value) = (name.clone(), req.value);
    let seal = move |version: u32| boxed.seal(&n, version, value.as_bytes());
    let version = app.store().put_secret(&name, &seal, now).await?;
    tracing::info!(secret = %name, version, "secret set");
    Ok((
        StatusCode::OK,
        Json(SecretInfo {
            name,
            version,
            updated_at: format_ts(now),
        }),
    ))
}

pub async fn list(State(app): State<App>) -> ApiResult<Json<Vec<SecretInfo>>> {
    Ok(Json(
        app.store()
            .list_secrets()
            .await?
            .into_iter()
            .map(|(name, version, at)| SecretInfo {
                name,
                version,
                updated_at: format_ts(at),
            })
            .collect(),
    ))
}

pub async fn delete(State(app): State<App>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    check(&name)?;
    if !app.store().delete_secret(&name).await? {
        return Err(ApiErr::not_found(format!("no secret named `{name}`")));
    }
    tracing::info!(secret = %name, "secret deleted");
    Ok(StatusCode::NO_CONTENT)
}

//! `/tokens`: make, list and revoke API tokens (admins only). A token's secret is shown once,
//! when it is made; the server keeps its hash.

use super::auth::{self, Role};
use super::error::{check_name, ApiErr, ApiResult, Body};
use super::App;
use crate::store::TokenRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sluice_sdk::api::{format_ts, CreateToken, CreatedToken, ErrorCode, TokenInfo};

fn info(t: &TokenRow) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        name: t.name.clone(),
        role: t.role.clone(),
        pipelines: t.pipelines.clone(),
        created_at: format_ts(t.created_at),
        revoked_at: t.revoked_at.map(format_ts),
    }
}

/// Makes a token and keeps its hash. Shared by the API and `sluice tokens create --data-dir`.
pub async fn make(
    store: &crate::store::DynStore,
    req: &CreateToken,
    now: i64,
) -> ApiResult<CreatedToken> {
    check_name("name", &req.name, 100)?;
    let Some(role) = Role::parse(&req.role) else {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            format!(
                "`role` must be one of admin, submit, read, worker (not `{}`)",
                req.role
            ),
        ));
    };
    if let Some(ps) = &req.pipelines {
        if role != Role::Submit {
            return Err(ApiErr::bad_request(
                ErrorCode::InvalidBody,
                "`pipelines` limits a `submit` token only",
            ));
        }
        if ps.is_empty() || ps.len() > 100 {
            return Err(ApiErr::bad_request(
                ErrorCode::InvalidBody,
                "`pipelines` names 1 to 100 pipelines",
            ));
        }
        for p in ps {
            if !sluice_spec::is_name(p) {
                return Err(ApiErr::bad_request(
                    ErrorCode::InvalidBody,
                    format!("`pipelines`: `{p}` is not a pipeline name"),
                ));
            }
        }
    }
    let secret = auth::new_secret("slc_");
    let row = TokenRow {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        name: req.name.clone(),
        role: role.as_str().to_string(),
        pipelines: req.pipelines.clone(),
        created_at: now,
        revoked_at: None,
    };
    store.create_token(&row, &auth::hash(&secret)).await?;
    Ok(CreatedToken {
        token: secret,
        info: info(&row),
    })
}

pub async fn create(
    State(app): State<App>,
    Body(req): Body<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let made = make(app.store(), &req, crate::scheduler::now_ms()).await?;
    // The first token locks a server that was open.
    app.auth.require();
    tracing::info!(id = %made.info.id, name = %made.info.name, role = %made.info.role, "token created");
    Ok((StatusCode::CREATED, Json(made)))
}

pub async fn list(State(app): State<App>) -> ApiResult<Json<Vec<TokenInfo>>> {
    Ok(Json(
        app.store().list_tokens().await?.iter().map(info).collect(),
    ))
}

pub async fn revoke(
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    let gone = app
        .store()
        .revoke_token(&id, crate::scheduler::now_ms())
        .await?;
    if gone.is_empty() {
        return Err(ApiErr::not_found(format!(
            "no live token has the id or name `{id}`"
        )));
    }
    app.auth.forget_tokens();
    tracing::info!(token = %id, "token revoked");
    Ok(Json(gone.iter().map(info).collect()))
}

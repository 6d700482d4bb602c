//! Kubeflow's pipelines and pipeline versions over sluice's: a pipeline is sluice's pipeline of
//! that name; a version is one of its immutable versions, named as the client named it.

use super::{bad, listed, spec_json, ListQuery};
use crate::api::auth::Caller;
use crate::api::error::{check_name, ApiErr, ApiResult};
use crate::api::{pipelines as sluice_pipelines, App};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_sdk::api::{ErrorCode, PipelineSummary, PipelineVersion};

pub(super) fn pipeline_json(p: &PipelineSummary) -> Value {
    json!({
        "pipeline_id": p.id,
        "display_name": p.name,
        "name": p.name,
        "description": p.description.clone().unwrap_or_default(),
        "created_at": p.created_at,
    })
}

/// A version's name: the one it was given, else `v` and its number.
fn version_name(v: &PipelineVersion, name: Option<&str>) -> String {
    name.map(str::to_string)
        .unwrap_or_else(|| format!("v{}", v.version))
}

pub(super) fn version_json(v: &PipelineVersion, name: Option<&str>, with_spec: bool) -> Value {
    let name = version_name(v, name);
    let mut out = json!({
        "pipeline_id": v.pipeline_id,
        "pipeline_version_id": v.id,
        "display_name": name,
        "name": name,
        "description": "",
        "created_at": v.created_at,
    });
    if with_spec {
        out["pipeline_spec"] = spec_json(&v.yaml);
    }
    out
}

#[derive(Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
    display_name: Option<String>,
    description: Option<String>,
    pipelineid: Option<String>,
}

/// The file of a multipart upload (`uploadfile`), as text; a body past the server's limit is a
/// 413 naming it.
async fn uploaded(app: &App, mut form: Multipart) -> ApiResult<String> {
    let refused = |e: axum::extract::multipart::MultipartError, what: &str| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            crate::api::error::too_large(app.max_body)
        } else {
            bad(format!("{what}: {e}"))
        }
    };
    while let Some(f) = form
        .next_field()
        .await
        .map_err(|e| refused(e, "the upload is not a multipart form sluice reads"))?
    {
        if f.name() == Some("uploadfile") {
            let bytes = f
                .bytes()
                .await
                .map_err(|e| refused(e, "the upload broke off"))?;
            return String::from_utf8(bytes.to_vec())
                .map_err(|_| bad("the uploaded pipeline file is not UTF-8 text"));
        }
    }
    Err(bad("the upload has no `uploadfile` field"))
}

/// Keeps an uploaded file as a version of pipeline `name`.
async fn keep(
    app: &App,
    caller: &Caller,
    name: &str,
    description: Option<&str>,
    yaml: &str,
) -> ApiResult<PipelineVersion> {
    check_name("name", name, 200)?;
    let pipeline = sluice_pipelines::load(app, None, yaml)?;
    sluice_pipelines::admit(app, caller, &pipeline)?;
    caller.may_submit(name)?;
    let digest = sluice_spec::digest(yaml);
    Ok(app
        .store()
        .put_pipeline_version(
            name,
            description.or(pipeline.description.as_deref()),
            yaml,
            &digest,
            crate::scheduler::now_ms(),
        )
        .await?)
}

/// `POST /pipelines/upload`: a new pipeline, its file its first version.
pub async fn upload(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<UploadQuery>,
    form: Multipart,
) -> ApiResult<Json<Value>> {
    let yaml = uploaded(&app, form).await?;
    let name = match q.display_name.or(q.name) {
        Some(n) => n,
        None => sluice_pipelines::load(&app, None, &yaml)?.name,
    };
    if app.store().get_pipeline(&name).await?.is_some() {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("a pipeline named `{name}` exists already: upload a version of it"),
        ));
    }
    let v = keep(&app, &caller, &name, q.description.as_deref(), &yaml).await?;
    app.store().set_version_name(&v.id, &name).await?;
    let p = sluice_pipelines::find(&app, &v.pipeline_id).await?;
    Ok(Json(pipeline_json(&p)))
}

/// `POST /pipelines/upload_version`: a new version of a pipeline.
pub async fn upload_version(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<UploadQuery>,
    form: Multipart,
) -> ApiResult<Json<Value>> {
    let yaml = uploaded(&app, form).await?;
    let id = q
        .pipelineid
        .ok_or_else(|| bad("give the pipeline to add a version to as `pipelineid`"))?;
    let p = sluice_pipelines::find(&app, &id).await?;
    let v = keep(&app, &caller, &p.name, q.description.as_deref(), &yaml).await?;
    let name = q.display_name.or(q.name);
    if !v.created {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "this file is already version {} of pipeline `{}`: versions are immutable, and each file is kept once",
                v.version, p.name
            ),
        ));
    }
    if let Some(n) = &name {
        check_name("name", n, 200)?;
        app.store().set_version_name(&v.id, n).await?;
    }
    Ok(Json(version_json(&v, name.as_deref(), false)))
}

pub async fn list(State(app): State<App>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let all: Vec<Value> = app
        .store()
        .list_pipelines()
        .await?
        .iter()
        .map(pipeline_json)
        .collect();
    let keys = ["display_name", "pipeline_id", "created_at", "description"];
    listed("pipelines", all, "pipelines", &keys, &q)
}

pub async fn get(State(app): State<App>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(pipeline_json(
        &sluice_pipelines::find(&app, &id).await?,
    )))
}

pub async fn get_by_name(
    State(app): State<App>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(pipeline_json(
        &sluice_pipelines::find(&app, &name).await?,
    )))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    cascade: Option<bool>,
}

/// `DELETE /pipelines/{id}`: a pipeline with versions left is refused, unless `cascade=true`;
/// one a schedule runs is refused.
pub async fn delete(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Json<Value>> {
    let p = sluice_pipelines::find(&app, &id).await?;
    caller.may_submit(&p.name)?;
    let used = app.store().schedules_using(&p.id, None).await?;
    if used > 0 {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "{used} schedule(s) run pipeline `{}`: delete them first",
                p.name
            ),
        ));
    }
    let versions = app.store().list_versions(&p.id).await?;
    if !versions.is_empty() && q.cascade != Some(true) {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "pipeline `{}` has {} version(s): delete them first, or pass cascade=true",
                p.name,
                versions.len()
            ),
        ));
    }
    for v in versions {
        app.store().delete_version(&v.id).await?;
    }
    app.store().delete_pipeline(&p.id).await?;
    Ok(Json(json!({})))
}

/// A version of pipeline `id` by its id, with its name.
pub(super) async fn find_version(
    app: &App,
    id: &str,
    version: &str,
) -> ApiResult<(PipelineVersion, Option<String>)> {
    let p = sluice_pipelines::find(app, id).await?;
    let v = app
        .store()
        .list_versions(&p.id)
        .await?
        .into_iter()
        .find(|v| v.id == version)
        .ok_or_else(|| {
            ApiErr::not_found(format!("pipeline `{}` has no version `{version}`", p.name))
        })?;
    let name = app.store().version_name(&v.id).await?;
    Ok((v, name))
}

pub async fn versions(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let p = sluice_pipelines::find(&app, &id).await?;
    let mut all = Vec::new();
    for v in app.store().list_versions(&p.id).await? {
        let name = app.store().version_name(&v.id).await?;
        all.push(version_json(&v, name.as_deref(), false));
    }
    let keys = ["display_name", "pipeline_version_id", "created_at"];
    listed("pipeline_versions", all, "pipeline versions", &keys, &q)
}

pub async fn version(
    State(app): State<App>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (v, name) = find_version(&app, &id, &version).await?;
    Ok(Json(version_json(&v, name.as_deref(), true)))
}

/// `DELETE /pipelines/{id}/versions/{version}`: runs of it keep their file; one a schedule runs
/// is refused.
pub async fn delete_version(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (v, _) = find_version(&app, &id, &version).await?;
    caller.may_submit(&v.pipeline_name)?;
    let used = app
        .store()
        .schedules_using(&v.pipeline_id, Some(&v.id))
        .await?;
    if used > 0 {
        return Err(ApiErr::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("{used} schedule(s) run this version: delete them first"),
        ));
    }
    app.store().delete_version(&v.id).await?;
    Ok(Json(json!({})))
}

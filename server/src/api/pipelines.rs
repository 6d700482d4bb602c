//! `/pipelines`: upload a pipeline file as a new immutable version, list, read.

use super::auth::Caller;
use super::error::{ApiErr, ApiResult, Body};
use super::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use sluice_sdk::api::ErrorCode;
use sluice_sdk::api::{
    PipelineList, PipelineSummary, PipelineVersion, UploadPipeline, VersionList,
};
use sluice_spec::diag::Diagnostics;
use sluice_spec::{self as spec, Pipeline};

/// Parses and validates a pipeline file, or a 422 carrying every diagnostic.
pub fn load(app: &App, file_name: Option<&str>, yaml: &str) -> ApiResult<Pipeline> {
    if let Some(f) = file_name {
        super::error::check_name("file_name", f, 255)?;
    }
    let file = file_name.unwrap_or("pipeline.yaml");
    spec::load_with(file, yaml, &app.sched.config().limits).map_err(|d: Diagnostics| {
        ApiErr::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidPipeline,
            format!("the pipeline has {} error(s):\n{d}", d.len()),
        )
        .with_details(serde_json::to_value(&d).unwrap_or_default())
    })
}

/// Checks a pipeline against the server's admission policy, and that the caller may submit it:
/// a 403 naming each broken rule and its step.
pub fn admit(app: &App, caller: &Caller, p: &Pipeline) -> ApiResult<()> {
    caller.may_submit(&p.name)?;
    let denied = app.policy.check(p);
    if denied.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = denied.iter().map(|d| d.to_string()).collect();
    Err(ApiErr::new(
        StatusCode::FORBIDDEN,
        ErrorCode::PolicyDenied,
        format!(
            "this server's admission policy denies pipeline `{}`:\n{}",
            p.name,
            list.join("\n")
        ),
    )
    .with_details(serde_json::to_value(&denied).unwrap_or_default()))
}

/// Every secret the pipeline's steps use must be set on the server: a 422 naming each missing
/// one and its step.
pub async fn secrets_exist(app: &App, p: &Pipeline) -> ApiResult<()> {
    let mut missing = Vec::new();
    let mut known = std::collections::HashMap::new();
    for step in p.steps.iter().chain(&p.on_exit) {
        let Some(t) = p.template_of(step) else {
            continue;
        };
        for r in &t.secrets {
            let set = match known.get(&r.secret) {
                Some(s) => *s,
                None => {
                    let s = app.store().get_secret(&r.secret).await?.is_some();
                    known.insert(r.secret.clone(), s);
                    s
                }
            };
            if !set {
                missing.push(format!(
                    "step `{}` (line {}) uses secret `{}`, which is not set (`sluice secrets set {}`)",
                    step.name, r.span.line, r.secret, r.secret
                ));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiErr::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidPipeline,
        missing.join("\n"),
    ))
}

pub async fn upload(
    State(app): State<App>,
    Extension(caller): Extension<Caller>,
    Body(req): Body<UploadPipeline>,
) -> ApiResult<(StatusCode, Json<PipelineVersion>)> {
    let pipeline = load(&app, req.file_name.as_deref(), &req.yaml)?;
    admit(&app, &caller, &pipeline)?;
    let digest = spec::digest(&req.yaml);
    let now = crate::scheduler::now_ms();
    let v = app
        .store()
        .put_pipeline_version(
            &pipeline.name,
            pipeline.description.as_deref(),
            &req.yaml,
            &digest,
            now,
        )
        .await?;
    let status = if v.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(v)))
}

pub async fn list(State(app): State<App>) -> ApiResult<Json<PipelineList>> {
    Ok(Json(PipelineList {
        pipelines: app.store().list_pipelines().await?,
    }))
}

/// A stored pipeline (by name or id) and its version `version`, or its latest; a 404 naming
/// what is missing.
pub(super) async fn version_of(
    app: &App,
    name: &str,
    version: Option<u32>,
) -> ApiResult<(PipelineSummary, PipelineVersion)> {
    let p = find(app, name).await?;
    let v = app
        .store()
        .get_version(&p.id, version)
        .await?
        .ok_or_else(|| {
            ApiErr::not_found(format!(
                "pipeline `{name}` has no version {}",
                version.map(|v| v.to_string()).unwrap_or_default()
            ))
        })?;
    Ok((p, v))
}

pub(super) async fn find(app: &App, name: &str) -> ApiResult<PipelineSummary> {
    app.store()
        .get_pipeline(name)
        .await?
        .ok_or_else(|| ApiErr::not_found(format!("no pipeline named `{name}`")))
}

pub async fn get(
    State(app): State<App>,
    Path(name): Path<String>,
) -> ApiResult<Json<PipelineSummary>> {
    Ok(Json(find(&app, &name).await?))
}

pub async fn versions(
    State(app): State<App>,
    Path(name): Path<String>,
) -> ApiResult<Json<VersionList>> {
    let p = find(&app, &name).await?;
    Ok(Json(VersionList {
        versions: app.store().list_versions(&p.id).await?,
    }))
}

pub async fn version(
    State(app): State<App>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let p = find(&app, &name).await?;
    let n = if version == "latest" {
        None
    } else {
        Some(version.parse::<u32>().map_err(|_| {
            ApiErr::bad_request(
                ErrorCode::InvalidVersion,
                format!("version must be a number or `latest`, found `{version}`"),
            )
        })?)
    };
    let v =
        app.store().get_version(&p.id, n).await?.ok_or_else(|| {
            ApiErr::not_found(format!("pipeline `{name}` has no version {version}"))
        })?;
    let mut body = serde_json::to_value(&v).map_err(|e| {
        ApiErr::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        )
    })?;
    body["outline"] = outline(&v.yaml);
    Ok(Json(body))
}

/// What step `i` is drawn waiting for: a group after the steps that end it (its exit handlers,
/// if it has any), a group's exit handlers after its other steps, a group's first steps after
/// what the group waits for.
fn shown_deps(p: &sluice_spec::Pipeline, deps: &[Vec<String>], i: usize) -> Vec<String> {
    // The steps of `level` that no other step of it waits for.
    let ends = |level: &[usize]| -> Vec<String> {
        level
            .iter()
            .filter(|&&m| !level.iter().any(|&o| deps[o].contains(&p.steps[m].name)))
            .map(|&m| p.steps[m].name.clone())
            .collect()
    };
    let step = &p.steps[i];
    if let Some(g) = step.group() {
        return ends(if g.on_exit.is_empty() {
            &g.steps
        } else {
            &g.on_exit
        });
    }
    if !deps[i].is_empty() {
        return deps[i].clone();
    }
    if step.handler {
        let group = step.parent.and_then(|g| p.steps[g].group());
        return group.map(|g| ends(&g.steps)).unwrap_or_default();
    }
    let mut at = step.parent;
    while let Some(g) = at {
        if !deps[g].is_empty() {
            return deps[g].clone();
        }
        at = p.steps[g].parent;
    }
    Vec::new()
}

/// What a form and a graph need of a stored pipeline: its parameters and its steps' dependencies.
fn outline(yaml: &str) -> serde_json::Value {
    let Ok(p) = sluice_spec::load("pipeline.yaml", yaml) else {
        return serde_json::Value::Null;
    };
    let params: Vec<_> = p
        .params
        .iter()
        .map(|d| {
            serde_json::json!({
                "name": d.name, "type": d.ty.to_string(),
                "default": d.default.clone(),
                "description": d.description,
            })
        })
        .collect();
    let deps: Vec<Vec<String>> = p
        .steps
        .iter()
        .map(|s| sluice_spec::dependencies(&p, s))
        .collect();
    let steps: Vec<_> = (0..p.steps.len())
        .map(|i| {
            let step = &p.steps[i];
            let control = p.control(step);
            let image = p.template_of(step).map(|t| t.image.value.clone());
            serde_json::json!({
                "name": step.name,
                "display_name": step.display_name,
                "group": step.group().is_some(),
                "kind": if control.for_each.is_some() { "loop" } else if step.group().is_some() { "group" } else { "step" },
                "when": control.when.map(|w| w.value),
                "for_each": control.for_each.map(|f| f.value),
                "exit_handler": step.handler,
                "image": image,
                "description": step.description,
                "line": step.span.line,
                "depends_on": shown_deps(&p, &deps, i),
            })
        })
        .collect();
    serde_json::json!({"description": p.description, "params": params, "steps": steps})
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_outline_draws_groups_after_their_last_steps_and_their_first_steps_after_what_they_wait_for(
    ) {
        let yaml = r#"
name: o
steps:
  - name: data
    image: busybox
    outputs: {params: {n: int}}
  - name: g
    steps:
      - name: a
        image: busybox
        command: [echo, "{{steps.data.outputs.params.n}}"]
      - name: b
        image: busybox
        dependsOn: [a]
      - name: c
        image: busybox
    onExit:
      - name: h
        image: busybox
  - name: after
    image: busybox
    dependsOn: [g]
"#;
        let o = super::outline(yaml);
        let deps: Vec<(String, Vec<String>)> = o["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    serde_json::from_value(s["depends_on"].clone()).unwrap(),
                )
            })
            .collect();
        let want: Vec<(&str, Vec<&str>)> = vec![
            ("data", vec![]),
            ("g", vec!["g.h"]),
            ("g.a", vec!["data"]),
            ("g.b", vec!["g.a"]),
            ("g.c", vec!["data"]),
            ("g.h", vec!["g.b", "g.c"]),
            ("after", vec!["g"]),
        ];
        let got: Vec<(&str, Vec<&str>)> = deps
            .iter()
            .map(|(n, d)| (n.as_str(), d.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(got, want);
    }
}

//! Training from CI (in-process server and worker, fake runtime; the real binary as the CLI):
//! a signed GitHub push delivery starts a run with its commit and branch, once however often it
//! is delivered; an unsigned or badly signed one starts nothing; GitLab's token; quality gates
//! against the latest run on main, side by side, with the Markdown and JUnit CI systems read.

use crate::harness::*;
use serde_json::{json, Value};
use sluice_sdk::api::{CreateHook, RunState};
use std::time::Duration;

const PIPELINE: &str = r#"
name: train
params:
  commit: {type: string, default: none}
  branch: {type: string, default: none}
  acc: {type: float, default: 0.9}
steps:
  - name: train
    image: busybox
    env: {FAKE_OUT_accuracy: "{{params.acc}}", FAKE_LOG: "training {{params.commit}}|done"}
    outputs: {params: {accuracy: float}}
"#;

const SECRET: &str = "it-is-a-secret";

fn sign(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

/// Posts a delivery; its status and answer.
async fn deliver(url: &str, hook: &str, headers: &[(&str, String)], body: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/api/v1/hooks/{hook}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn push(branch: &str, commit: &str, acc: f64) -> Value {
    json!({"ref": format!("refs/heads/{branch}"), "after": commit, "acc": acc,
           "repository": {"full_name": "me/models"}, "head_commit": {"id": commit}})
}

fn github(body: &Value, delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", "push".into()),
        ("x-github-delivery", delivery.into()),
        ("x-hub-signature-256", sign(body.to_string().as_bytes())),
    ]
}

async fn runs(env: &InProcess) -> usize {
    env.client
        .list_runs_where(&[("archived", "all".into())])
        .await
        .unwrap()
        .runs
        .len()
}

#[tokio::test]
async fn a_signed_push_starts_one_run_and_the_gate_compares_it_with_main() {
    let env = InProcess::start().await;
    let c = &env.client;
    c.upload_pipeline(PIPELINE, None).await.unwrap();
    c.set_secret("gh-hook", SECRET).await.unwrap();
    let hook = CreateHook {
        name: "models".into(),
        pipeline: "train".into(),
        kind: "github".into(),
        secret: "gh-hook".into(),
        params: [
            ("commit".to_string(), "after".to_string()),
            ("branch".to_string(), "$branch".to_string()),
            ("acc".to_string(), "acc".to_string()),
        ]
        .into(),
        labels: [
            ("commit".to_string(), "head_commit.id".to_string()),
            ("branch".to_string(), "$branch".to_string()),
            ("repo".to_string(), "repository.full_name".to_string()),
        ]
        .into(),
        ..Default::default()
    };
    c.create_hook(&hook).await.unwrap();

    // The push to main: one run, with the commit and branch as parameters and labels.
    let main = push("main", "c0ffee1", 0.90);
    let (status, got) = deliver(&env.url, "models", &github(&main, "d-1"), &main).await;
    assert_eq!(status, 201, "{got}");
    let main_run = got["run_id"].as_str().unwrap().to_string();
    let d = wait_run(c, &main_run, Duration::from_secs(30)).await;
    assert_eq!(d.summary.state, RunState::Succeeded);
    assert_eq!(d.summary.params["commit"], json!("c0ffee1"));
    assert_eq!(d.summary.params["branch"], json!("main"));
    assert_eq!(d.summary.labels["branch"], "main");
    assert_eq!(d.summary.labels["repo"], "me/models");
    assert_eq!(d.summary.labels["hook"], "models");
    // Delivered again (GitHub retries, a redelivery): the same run, nothing new.
    let (status, again) = deliver(&env.url, "models", &github(&main, "d-1"), &main).await;
    assert_eq!(
        (status, again["duplicate"].clone()),
        (200, json!(true)),
        "{again}"
    );
    assert_eq!(again["run_id"], json!(main_run));
    assert_eq!(runs(&env).await, 1);

    // Unsigned, signed with another secret, or tampered with after signing: 401, no run.
    let (status, e) = deliver(
        &env.url,
        "models",
        &[("x-github-event", "push".into())],
        &main,
    )
    .await;
    assert_eq!(status, 401, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not signed"),
        "{e}"
    );
    let mut forged = github(&main, "d-9");
    forged[2].1 = {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"another secret");
        format!(
            "sha256={}",
            hex::encode(ring::hmac::sign(&key, main.to_string().as_bytes()))
        )
    };
    assert_eq!(deliver(&env.url, "models", &forged, &main).await.0, 401);
    let tampered = push("main", "c0ffee1", 0.99);
    assert_eq!(
        deliver(&env.url, "models", &github(&main, "d-10"), &tampered)
            .await
            .0,
        401
    );
    assert_eq!(runs(&env).await, 1, "a bad delivery started a run");
    // GitHub's ping when the hook is made: acknowledged, nothing started.
    let ping = json!({"zen": "Keep it logically awesome."});
    let mut h = github(&ping, "d-ping");
    h[0].1 = "ping".into();
    let (status, got) = deliver(&env.url, "models", &h, &ping).await;
    assert_eq!(status, 202, "{got}");
    assert!(got["ignored"].as_str().unwrap().contains("ping"));
    // A payload without what a parameter comes from: 422 naming the path, no run.
    let bare = json!({"ref": "refs/heads/main", "acc": 0.9});
    let (status, got) = deliver(&env.url, "models", &github(&bare, "d-bare"), &bare).await;
    assert_eq!(status, 422, "{got}");
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`after`"),
        "{got}"
    );
    assert_eq!(runs(&env).await, 1);

    // A branch a little worse than main passes the gate; a branch much worse fails it.
    let gate = "accuracy >= baseline.accuracy - 0.01";
    let base = "latest succeeded run of this pipeline with label branch=main";
    let mut feature_runs = Vec::new();
    for (i, acc) in [0.895, 0.85].into_iter().enumerate() {
        let p = push("feature", &format!("fea{i}"), acc);
        let (status, got) = deliver(&env.url, "models", &github(&p, &format!("f-{i}")), &p).await;
        assert_eq!(status, 201, "{got}");
        let id = got["run_id"].as_str().unwrap().to_string();
        wait_run(c, &id, Duration::from_secs(30)).await;
        feature_runs.push(id);
    }
    let dir = tempfile::tempdir().unwrap();
    let (md, xml) = (dir.path().join("summary.md"), dir.path().join("junit.xml"));
    let (code, _, err) = cli(
        &env.url,
        &[
            "runs",
            "check",
            &feature_runs[0],
            "--require",
            gate,
            "--baseline",
            base,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&main_run) && err.contains("ok"), "{err}");
    let (code, _, err) = cli(
        &env.url,
        &[
            "runs",
            "check",
            &feature_runs[1],
            "--require",
            gate,
            "--require",
            "accuracy > 0.5",
            "--baseline",
            base,
            "--summary",
            md.to_str().unwrap(),
            "--junit",
            xml.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    // Side by side: the gate, the run's side, what it needed, and that it failed.
    let row = err.lines().find(|l| l.starts_with(gate)).unwrap();
    assert!(
        row.contains("0.85") && row.contains("0.89") && row.ends_with("FAILED"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("accuracy > 0.5") && l.ends_with("ok")),
        "{err}"
    );
    let summary = std::fs::read_to_string(&md).unwrap();
    assert!(summary.contains("succeeded"), "{summary}");
    assert!(
        summary.contains(&format!("{}/runs/{}", env.url, feature_runs[1])),
        "{summary}"
    );
    assert!(summary.contains("| `train.accuracy` | 0.85 |"), "{summary}");
    assert!(
        summary.contains(&format!("| `{gate}` |")) && summary.contains("❌"),
        "{summary}"
    );
    let junit = std::fs::read_to_string(&xml).unwrap();
    assert!(junit.contains("tests=\"3\" failures=\"1\""), "{junit}");
    assert!(junit.contains("classname=\"quality gates\""), "{junit}");
    // No baseline: the gate fails unless told it may pass.
    let nothing = "latest succeeded run of this pipeline with label branch=nowhere";
    let (code, _, err) = cli(
        &env.url,
        &[
            "runs",
            "check",
            &feature_runs[0],
            "--require",
            gate,
            "--baseline",
            nothing,
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no baseline run matches"), "{err}");
    let (code, _, err) = cli(
        &env.url,
        &[
            "runs",
            "check",
            &feature_runs[0],
            "--require",
            gate,
            "--baseline",
            nothing,
            "--if-no-baseline",
            "pass",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // A gate that does not parse is exit 2, naming it.
    let (code, _, err) = cli(
        &env.url,
        &[
            "runs",
            "check",
            &feature_runs[0],
            "--require",
            "accuracy >> 1",
        ],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("accuracy >> 1"), "{err}");
}

#[tokio::test]
async fn gitlab_deliveries_carry_their_token_and_a_failed_step_is_a_junit_failure() {
    let env = InProcess::start().await;
    let c = &env.client;
    c.upload_pipeline(PIPELINE, None).await.unwrap();
    c.set_secret("gl-hook", SECRET).await.unwrap();
    c.create_hook(&CreateHook {
        name: "gl".into(),
        pipeline: "train".into(),
        kind: "gitlab".into(),
        secret: "gl-hook".into(),
        params: [("commit".to_string(), "checkout_sha".to_string())].into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let body = json!({"object_kind": "push", "ref": "refs/heads/main", "checkout_sha": "beef"});
    let headers = |token: &str| {
        vec![
            ("x-gitlab-event", "Push Hook".to_string()),
            ("x-gitlab-event-uuid", "u-1".to_string()),
            ("x-gitlab-token", token.to_string()),
        ]
    };
    assert_eq!(
        deliver(&env.url, "gl", &headers("wrong"), &body).await.0,
        401
    );
    let (status, got) = deliver(&env.url, "gl", &headers(SECRET), &body).await;
    assert_eq!(status, 201, "{got}");
    let d = wait_run(c, got["run_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(d.summary.params["commit"], json!("beef"));
    // A bad hook is refused naming what is wrong.
    let e = c
        .create_hook(&CreateHook {
            name: "bad/name".into(),
            pipeline: "train".into(),
            kind: "gitlab".into(),
            secret: "gl-hook".into(),
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad/name"), "{e}");
    let e = c
        .create_hook(&CreateHook {
            name: "nosecret".into(),
            pipeline: "train".into(),
            kind: "github".into(),
            secret: "unset".into(),
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("`unset` is not set"), "{e}");

    // `submit --wait --junit --summary`: a failed step's log tail is its failure.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fail.yaml");
    std::fs::write(
        &file,
        "name: breaks\nsteps:\n  - name: ok\n    image: busybox\n  - name: boom\n    image: busybox\n    dependsOn: [ok]\n    env: {FAKE_EXIT: \"3\", FAKE_LOG: \"loading data|Traceback: <bad & worse>\"}\n  - name: after\n    image: busybox\n    dependsOn: [boom]\n",
    )
    .unwrap();
    let (xml, md) = (dir.path().join("j.xml"), dir.path().join("s.md"));
    std::fs::write(&md, "earlier step's summary\n").unwrap();
    let (code, _, err) = cli(
        &env.url,
        &[
            "submit",
            file.to_str().unwrap(),
            "--wait",
            "--junit",
            xml.to_str().unwrap(),
            "--summary",
            md.to_str().unwrap(),
            "--label",
            "commit=abc",
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    let junit = std::fs::read_to_string(&xml).unwrap();
    assert!(junit.contains("tests=\"3\" failures=\"1\""), "{junit}");
    assert!(junit.contains("name=\"ok\""), "{junit}");
    let failure = junit.split("name=\"boom\"").nth(1).unwrap();
    assert!(
        failure.contains("<failure message=\"exited with code 3\""),
        "{junit}"
    );
    assert!(
        failure.contains("Traceback: &lt;bad &amp; worse&gt;"),
        "{junit}"
    );
    assert!(
        junit.contains("name=\"after\"") && junit.contains("<skipped"),
        "{junit}"
    );
    let summary = std::fs::read_to_string(&md).unwrap();
    assert!(
        summary.starts_with("earlier step's summary\n"),
        "appended: {summary}"
    );
    assert!(
        summary.contains("failed") && summary.contains("`commit=abc`"),
        "{summary}"
    );
    // Without --wait, what needs the run's end is refused.
    let (code, _, err) = cli(
        &env.url,
        &["submit", file.to_str().unwrap(), "--junit", "x.xml"],
    )
    .await;
    assert_eq!(code, 2, "{err}");
}

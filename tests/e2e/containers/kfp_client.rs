//! Kubeflow's own client (`kfp.Client` of the pinned kfp SDK, installed from PyPI by
//! `scripts/test`) against a sluice server that requires a token, driven by `kfp_client.py`:
//! its calls end to end with steps in real containers, and a recurring run across a server
//! that is killed and started again.

use super::*;

/// The Python of the kfp SDK's virtual environment.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_KFP_PYTHON") {
        return PathBuf::from(p);
    }
    let version = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/images/python/kfp-version"),
    )
    .unwrap();
    let p = PathBuf::from(format!(
        "/var/cache/sluice/kfp-venv-{}/bin/python",
        version.trim()
    ));
    assert!(
        p.exists(),
        "no kfp SDK at {}: run scripts/test (it installs it)",
        p.display()
    );
    p
}

/// Runs `kfp_client.py MODE` against `url`; its output, or a failure showing it.
fn kfp(mode: &str, url: &str, token: &str, state: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/containers/kfp_client.py");
    let out = std::process::Command::new(python())
        .arg(&script)
        .args([mode, url, token])
        .arg(state)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kfp_client.py {mode} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const TOKEN: &str = "kfp-client-admin-token";

async fn cluster() -> Cluster {
    let mirror = format!("docker.io=http://{}", registry());
    Cluster::start_custom(
        "2s",
        &["--registry-mirror", &mirror, "--token", TOKEN],
        &["--token", TOKEN],
        Vec::new(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeflows_client_works_against_sluice_unchanged() {
    let c = cluster().await;
    let state = c.dir.path().join("state");
    let url = c.url.clone();
    let out = tokio::task::spawn_blocking(move || kfp("flow", &url, TOKEN, &state))
        .await
        .unwrap();
    assert!(out.contains("kfp client flow: ok"), "{out}");

    // What sluice does not serve is said in Kubeflow's error shape, naming it.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/apis/v2beta1/visualizations/ns", c.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], 12, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("does not serve POST /apis/v2beta1/visualizations/ns"),
        "{msg}"
    );
    let r = http
        .get(format!("{}/apis/v2beta1/runs/none-such", c.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], 5, "{body}");
    assert!(body["message"].as_str().unwrap().contains("none-such"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recurring_run_catches_up_after_a_restart_and_never_fires_a_due_time_twice() {
    let mut c = cluster().await;
    let state = c.dir.path().join("state");
    let (url, st) = (c.url.clone(), state.clone());
    tokio::task::spawn_blocking(move || kfp("schedule", &url, TOKEN, &st))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Down for three due times.
    c.server.kill9();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(7)).await;
    c.restart_server().await;
    let restarted = down.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (url, st) = (c.url.clone(), state.clone());
    let out = tokio::task::spawn_blocking(move || kfp("fired", &url, TOKEN, &st))
        .await
        .unwrap();
    let times: Vec<f64> = serde_json::from_str(out.trim()).unwrap();
    // Every 2 s from its creation to now, the time it was down included, each once.
    assert!(
        times.len() >= 7,
        "{} runs fired ({times:?}), down for {restarted:?}",
        times.len()
    );
    for w in times.windows(2) {
        assert!(
            (w[1] - w[0] - 2.0).abs() < 0.01,
            "the due times fired are not each one 2 s after the last: {times:?}"
        );
    }
    let log = std::fs::read_to_string(c.dir.path().join("server.log")).unwrap();
    assert!(log.contains("schedule fired"), "{log}");
}

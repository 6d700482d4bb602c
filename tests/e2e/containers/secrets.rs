//! Secrets in real containers: given as an environment variable and as read-only files, masked
//! in the logs, never in an API answer or the database, and cached by version, not by value.

use super::*;

const VALUE: &str = "s3cr3t-Value-0451";

fn pipeline(img: &str) -> String {
    format!(
        r#"name: secret-use
steps:
  - name: use
    image: {img}
    env:
      API_KEY: {{secret: api-key}}
    secrets: [api-key, {{name: api-key, path: /etc/app/key}}]
    outputs:
      params: {{same: string}}
    script: |
      echo "env $API_KEY"
      echo "file $(cat /run/secrets/api-key)"
      cat /etc/app/key; echo
      echo "to stderr $API_KEY" >&2
      [ "$API_KEY" = "$(cat /run/secrets/api-key)" ] && echo yes > {{{{outputs.params.same}}}}
      ! echo changed > /run/secrets/api-key 2>/dev/null
"#
    )
}

#[tokio::test]
async fn a_secret_reaches_its_step_and_nowhere_else() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let yaml = pipeline(&img);

    // A run naming a secret that is not set is refused at submit, naming the step.
    let e = c
        .client
        .create_run(&sluice_sdk::api::CreateRun {
            yaml: Some(yaml.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("step `use`") && e.contains("secret `api-key`") && e.contains("not set"),
        "{e}"
    );

    let set = c.client.set_secret("api-key", VALUE).await.unwrap();
    assert_eq!(set.version, 1);
    let first = c.run(&yaml).await;
    assert_eq!(
        first.summary.state,
        RunState::Succeeded,
        "{:?}\n{}",
        first.tasks,
        c.worker_log()
    );
    let t = task(&first, "use");
    assert_eq!(t.outputs["same"], serde_json::json!("yes"));
    // The step saw the value; its log shows it masked, on both streams.
    let logs = c.logs(&first.summary.id, "use").await;
    let text: Vec<&str> = logs.iter().map(|(_, l)| l.as_str()).collect();
    assert!(text.contains(&"env ***"), "{text:?}");
    assert!(text.contains(&"file ***"), "{text:?}");
    assert!(text.contains(&"to stderr ***"), "{text:?}");
    assert_eq!(text.iter().filter(|l| **l == "***").count(), 1, "{text:?}");

    // No API answer holds the value: the run, its events, the secret list.
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", c.url);
    for path in [
        format!("/runs/{}", first.summary.id),
        "/runs".to_string(),
        "/secrets".to_string(),
        format!("/runs/{}/tasks/use/logs", first.summary.id),
    ] {
        let body = http
            .get(format!("{api}{path}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!body.contains(VALUE), "{path}: {body}");
    }
    // Nor the database, where it is kept encrypted, nor the worker's files once the step ended.
    let data = c.dir.path().join("server");
    for f in ["sluice.db", "sluice.db-wal"] {
        let bytes = std::fs::read(data.join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
            "{f}"
        );
    }
    let out = std::process::Command::new("grep")
        .args(["-rlF", VALUE])
        .arg(c.worker_dir())
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The same run again is served from the cache; a new value is a new version, and a miss.
    let second = c.run(&yaml).await;
    assert_eq!(
        task(&second, "use").cached_from.as_deref(),
        Some(first.summary.id.as_str())
    );
    assert_eq!(
        c.client
            .set_secret("api-key", "another")
            .await
            .unwrap()
            .version,
        2
    );
    let third = c.run(&yaml).await;
    assert_eq!(third.summary.state, RunState::Succeeded);
    assert!(task(&third, "use").cached_from.is_none());
}

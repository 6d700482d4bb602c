//! Caching in real containers: reuse, misses on any change, moved tags.

use super::*;

#[tokio::test]
async fn a_second_submit_is_served_from_the_cache_and_any_change_is_a_miss() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let yaml = caching_pipeline(&img);
    let first = c.run(&yaml).await;
    assert_succeeded(&c, &first);
    assert!(first.tasks.iter().all(|t| t.cached_from.is_none()));

    // The same again: every cacheable step reuses the first run's result; no container starts.
    let second = c.run(&yaml).await;
    assert_succeeded(&c, &second);
    for name in ["make", "use"] {
        let t = task(&second, name);
        assert_eq!(
            t.cached_from.as_deref(),
            Some(first.summary.id.as_str()),
            "{name}"
        );
        assert!(
            c.logs(&second.summary.id, name).await.is_empty(),
            "{name} ran"
        );
    }
    assert_eq!(task(&second, "make").outputs["count"], serde_json::json!(3));
    assert_eq!(
        task(&second, "make").artifacts,
        task(&first, "make").artifacts
    );
    // Opted out: it runs every time.
    assert_eq!(task(&second, "fresh").cached_from, None);
    assert_eq!(c.stdout(&second.summary.id, "fresh").await.trim(), "fresh");

    // Another parameter value: a miss for what it changes.
    let req = sluice_sdk::api::CreateRun {
        yaml: Some(yaml.clone()),
        params: [("n".to_string(), serde_json::json!(4))].into(),
        ..Default::default()
    };
    let id = c.client.create_run(&req).await.unwrap().summary.id;
    let third = wait_run(&c.client, &id, Duration::from_secs(60)).await;
    assert_eq!(task(&third, "make").cached_from, None);
    assert_eq!(c.stdout(&id, "use").await.trim(), "4");

    // A run that asks for no cache runs everything.
    let req = sluice_sdk::api::CreateRun {
        yaml: Some(yaml.clone()),
        cache: Some(false),
        ..Default::default()
    };
    let id = c.client.create_run(&req).await.unwrap().summary.id;
    let nocache = wait_run(&c.client, &id, Duration::from_secs(60)).await;
    assert!(nocache.tasks.iter().all(|t| t.cached_from.is_none()));

    // The cached artifact was deleted: the producer runs again.
    for run in [&first, &nocache] {
        let uri = &task(run, "make").artifacts[0].uri;
        std::fs::remove_file(uri.strip_prefix("file://").unwrap()).unwrap();
    }
    let fourth = c.run(&yaml).await;
    assert_succeeded(&c, &fourth);
    assert_eq!(task(&fourth, "make").cached_from, None);
    assert_eq!(c.stdout(&fourth.summary.id, "make").await.trim(), "made");
}

#[tokio::test]
async fn a_tag_that_moved_to_another_image_is_a_cache_miss() {
    // Trust a tag for no time at all, on the server and the worker alike.
    std::env::set_var("SLUICE_TAG_TTL", "0s");
    let c = Cluster::start(&[]).await;
    let name = format!("{}/sluice/cachetest-{}:1", registry(), std::process::id());
    push_marked_busybox(&name, "first", c.dir.path()).await;
    let yaml = format!("name: moved\nsteps:\n  - name: read\n    image: {name}\n    outputs: {{params: {{m: {{type: string}}}}}}\n    command: [sh, -c, \"cat /marker > {{{{outputs.params.m}}}}\"]\n");
    let one = c.run(&yaml).await;
    assert_succeeded(&c, &one);
    let two = c.run(&yaml).await;
    assert_eq!(
        task(&two, "read").cached_from.as_deref(),
        Some(one.summary.id.as_str())
    );
    push_marked_busybox(&name, "second", c.dir.path()).await;
    let three = c.run(&yaml).await;
    assert_succeeded(&c, &three);
    let t = task(&three, "read");
    assert_eq!(t.cached_from, None);
    assert_eq!(t.outputs["m"], serde_json::json!("second"));
    assert_ne!(t.image_digest, task(&one, "read").image_digest);
}

#[tokio::test]
async fn deleting_a_run_deletes_what_its_steps_made_not_what_it_reused() {
    let c = Cluster::start(&[]).await;
    let yaml = caching_pipeline(&image("busybox"));
    let first = c.run(&yaml).await;
    assert_succeeded(&c, &first);
    let second = c.run(&yaml).await;
    assert_succeeded(&c, &second);
    assert_eq!(
        task(&second, "make").cached_from.as_deref(),
        Some(first.summary.id.as_str())
    );
    let made = |run: &RunDetail| {
        PathBuf::from(
            task(run, "make").artifacts[0]
                .uri
                .strip_prefix("file://")
                .unwrap(),
        )
    };
    let first_file = made(&first);
    let run_dir = std::fs::canonicalize(c.worker_dir())
        .unwrap()
        .join("artifacts")
        .join(&first.summary.id);
    assert!(first_file.exists());
    assert!(first_file.starts_with(&run_dir), "{}", first_file.display());
    // The second run reused the first's artifact: deleting it leaves that in place.
    c.client.delete_run(&second.summary.id).await.unwrap();
    assert!(
        first_file.exists(),
        "a reused artifact went with its reuser"
    );
    // Deleting the first takes its own directory, logs and all, and its cached results.
    c.client.delete_run(&first.summary.id).await.unwrap();
    assert!(
        !first_file.exists(),
        "{} is still there",
        first_file.display()
    );
    assert!(!run_dir.exists(), "{} is still there", run_dir.display());
    let third = c.run(&yaml).await;
    assert_succeeded(&c, &third);
    assert_eq!(
        task(&third, "make").cached_from,
        None,
        "a deleted run's result reused"
    );
}

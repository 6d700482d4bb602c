//! Artifacts kept in S3 (a throwaway Garage), with real containers and two worker processes that
//! share nothing but the server and the store: a directory artifact (nested files, an empty
//! directory, a link) and a file large enough to go up in parts cross from one to the other and
//! arrive whole; the server lists and serves them from the store.

use super::*;
use sluice_server::throwaway_s3::ThrowawayS3;

#[tokio::test]
async fn a_directory_and_a_large_file_cross_between_workers_through_s3_and_are_served_from_it() {
    let s3 = ThrowawayS3::start([127, 0, 0, 1].into()).expect("Garage (scripts/test installs it)");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = s3.env();
    let url = s3.url("ml");
    let _server = spawn_server_env(
        port,
        &dir.path().join("server"),
        &dir.path().join("server.log"),
        "2s",
        &["--artifacts", &url],
        &env,
    )
    .await;
    let server = format!("http://127.0.0.1:{port}");
    let worker = |side: &str| {
        let d = dir.path().join(side);
        spawn_env(
            &[
                "worker",
                "--server",
                &server,
                "--data-dir",
                d.to_str().unwrap(),
                "--name",
                side,
                "--label",
                &format!("side={side}"),
            ],
            &dir.path().join(format!("{side}.log")),
            &env,
        )
    };
    let (_a, _b) = (worker("a"), worker("b"));
    let client = Client::new(&server, None);
    let img = image("busybox");
    let yaml = format!(
        r#"name: crossing
steps:
  - name: make
    image: {img}
    nodeSelector: {{side: a}}
    script: |
      set -e
      t={{{{outputs.artifacts.tree}}}}
      mkdir -p $t/sub $t/empty
      echo alpha > $t/a.txt
      printf 'x,y\n1,2\n' > $t/sub/b.csv
      ln -s a.txt $t/link
      dd if=/dev/urandom of={{{{outputs.artifacts.big}}}} bs=1M count=40 2>/dev/null
      sha256sum < {{{{outputs.artifacts.big}}}}
    outputs: {{artifacts: {{tree: {{type: dataset}}, big: {{type: model}}}}}}
  - name: use
    image: {img}
    nodeSelector: {{side: b}}
    inputs: {{artifacts: {{tree: {{type: dataset}}, big: {{type: model}}}}}}
    artifacts:
      tree: "{{{{steps.make.outputs.artifacts.tree}}}}"
      big: "{{{{steps.make.outputs.artifacts.big}}}}"
    script: |
      set -e
      t={{{{inputs.artifacts.tree}}}}
      cat $t/a.txt $t/sub/b.csv
      readlink $t/link
      ls -A $t/empty | wc -l
      sha256sum < {{{{inputs.artifacts.big}}}}
"#
    );
    let id = submit(&client, &yaml).await;
    let run = wait_run(&client, &id, Duration::from_secs(120)).await;
    let logs = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_default();
    assert_eq!(
        run.summary.state,
        RunState::Succeeded,
        "{:?}\na: {}\nb: {}",
        run.tasks
            .iter()
            .map(|t| (&t.name, &t.error))
            .collect::<Vec<_>>(),
        logs("a.log"),
        logs("b.log")
    );
    let stdout = |task: &'static str| {
        let (client, id) = (&client, &id);
        async move {
            let page = client.logs(id, task, 0, 1000).await.unwrap();
            page.lines
                .into_iter()
                .filter(|l| l.stream == Stream::Stdout)
                .map(|l| l.line)
                .collect::<Vec<_>>()
        }
    };
    let made = stdout("make").await;
    let used = stdout("use").await;
    assert_eq!(
        used[..5],
        ["alpha", "x,y", "1,2", "a.txt", "0"],
        "the tree arrived whole, its link and empty directory too: {used:?}"
    );
    assert_eq!(used[5], made[0], "the 40 MiB file arrived unchanged");
    for a in &task(&run, "make").artifacts {
        assert_eq!(a.uri, format!("s3://sluice/ml/{id}/make/1/{}", a.name));
    }
    // Served from the store: the listing from the directory's manifest, one file of it, and
    // the large file's bytes.
    let http = reqwest::Client::new();
    let get = |path: String| {
        let req = http.get(format!(
            "{server}/api/v1/runs/{id}/tasks/make/artifacts/{path}"
        ));
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }
    };
    let (code, listing) = get("tree".into()).await;
    assert_eq!(code, 200);
    let listing: serde_json::Value = serde_json::from_slice(&listing).unwrap();
    assert_eq!(
        listing,
        serde_json::json!({"kind": "directory", "truncated": false, "files": [
            {"path": "a.txt", "size": 6},
            {"path": "link", "link": "a.txt"},
            {"path": "sub/b.csv", "size": 8},
        ]})
    );
    assert_eq!(
        get("tree?path=sub/b.csv".into()).await,
        (200, "x,y\n1,2\n".into())
    );
    assert_eq!(
        get("tree?path=link".into()).await.0,
        403,
        "a link is not followed"
    );
    assert_eq!(get("tree?path=../x".into()).await.0, 400);
    let (code, big) = get("big".into()).await;
    assert_eq!((code, big.len()), (200, 40 << 20));
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&big)),
        made[0].split_whitespace().next().unwrap(),
        "the server's copy is the step's"
    );
    // Deleting the run deletes its objects: the directory's manifest and files, the large file.
    let store =
        sluice_sdk::artifacts::ObjectArtifacts::from_url_with(&url, Some((&s3.key_id, &s3.secret)))
            .unwrap();
    let uris: Vec<String> = task(&run, "make")
        .artifacts
        .iter()
        .map(|a| a.uri.clone())
        .collect();
    assert!(store.contains_all(&uris).await);
    client.delete_run(&id).await.unwrap();
    for u in &uris {
        assert!(
            matches!(
                store.stat(u).await,
                Err(sluice_sdk::artifacts::ArtifactError::Gone(_))
            ),
            "{u} is still in the store"
        );
    }
    let tree_file = store
        .key_of(
            uris.iter().find(|u| u.ends_with("/tree")).unwrap(),
            Some("sub/b.csv"),
        )
        .unwrap();
    assert!(
        object_store::ObjectStoreExt::head(store.store().as_ref(), &tree_file)
            .await
            .is_err(),
        "a file of the directory is left"
    );

    // A run's own input, uploaded: kept in the store, and fetched from it by a worker that
    // shares nothing with the server but the store.
    let given = dir.path().join("given");
    std::fs::create_dir_all(given.join("sub")).unwrap();
    std::fs::write(given.join("sub/rows.csv"), "x,y\n3,4\n").unwrap();
    let up = client.upload_path(&given).await.unwrap();
    assert!(up.sent);
    let at = store.uri_of(&["uploads", &up.info.digest.replace(':', "-")]);
    assert!(store.contains_all(std::slice::from_ref(&at)).await, "{at}");
    let yaml = format!(
        "name: given\nartifacts: {{rows: {{}}}}\nsteps:\n  - name: read\n    image: {img}\n    nodeSelector: {{side: b}}\n    command: [cat, '{{{{artifacts.rows}}}}/sub/rows.csv']\n"
    );
    let id = client
        .create_run(&sluice_sdk::api::CreateRun {
            yaml: Some(yaml),
            inputs: [("rows".to_string(), up.info.digest.clone())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .summary
        .id;
    let run = wait_run(&client, &id, Duration::from_secs(60)).await;
    assert_eq!(
        run.summary.state,
        RunState::Succeeded,
        "{:?}",
        run.tasks[0].error
    );
    assert_eq!(run.inputs[0].uri, at);
    let page = client.logs(&id, "read", 0, 100).await.unwrap();
    let lines: Vec<String> = page.lines.into_iter().map(|l| l.line).collect();
    assert_eq!(lines, ["x,y", "3,4"]);
    assert!(
        logs("b.log").contains("input artifact ready"),
        "{}",
        logs("b.log")
    );
}

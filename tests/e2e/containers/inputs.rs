//! A run's own input artifacts in real containers: `sluice submit --input NAME=PATH` hashes a
//! local file or directory, sends it only when the server lacks that content, and the steps that
//! bind `{{artifacts.NAME}}` read it read-only; what a client sends wrongly is refused by name.

use super::*;
use sluice_sdk::api::UPLOAD_TAR;

fn pipeline(img: &str) -> String {
    format!(
        r#"
name: with-inputs
artifacts:
  dataset: {{type: dataset, description: rows to count}}
  config: {{}}
components:
  count:
    image: {img}
    inputs: {{artifacts: {{rows: {{type: dataset}}}}}}
    outputs: {{params: {{n: int}}}}
    command: [sh, -c, 'cat {{{{inputs.artifacts.rows}}}}/part-*.csv | wc -l > {{{{outputs.params.n}}}}']
steps:
  - name: count
    component: count
    artifacts: {{rows: "{{{{artifacts.dataset}}}}"}}
  - name: show
    image: {img}
    script: |
      cat {{{{artifacts.config}}}}
      readlink {{{{artifacts.dataset}}}}/latest
      touch {{{{artifacts.dataset}}}}/written 2>/dev/null && echo writable || echo read-only
"#
    )
}

fn run_id(stdout: &str) -> String {
    let d: RunDetail = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    d.summary.id
}

#[tokio::test]
async fn local_files_and_directories_become_a_runs_inputs_sent_once_each() {
    // The server and the worker are separate processes with directories of their own: the
    // worker fetches what the server keeps.
    let mut c = Cluster::start_custom("2s", &[], &["--max-upload", "64Ki"], Vec::new()).await;
    c.worker = None;
    let elsewhere = c.dir.path().join("elsewhere/worker");
    c.worker = Some(c.spawn_worker(&elsewhere, "elsewhere.log"));
    let img = image("busybox");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("with-inputs.yaml");
    std::fs::write(&file, pipeline(&img)).unwrap();
    let data = work.path().join("data");
    std::fs::create_dir_all(data.join("more")).unwrap();
    std::fs::write(data.join("part-0.csv"), "a\nb\nc\n").unwrap();
    std::fs::write(data.join("part-1.csv"), "d\ne\n").unwrap();
    std::os::unix::fs::symlink("part-1.csv", data.join("latest")).unwrap();
    let cfg = work.path().join("cfg.json");
    std::fs::write(&cfg, "{\"lr\": 0.1}\n").unwrap();
    let (f, d, k) = (
        file.to_str().unwrap(),
        format!("dataset={}", data.display()),
        format!("config={}", cfg.display()),
    );

    let (code, out, err) = cli(
        &c.url,
        &["submit", f, "--input", &d, "-i", &k, "--wait", "-o", "json"],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("input dataset: directory") && err.contains(") sent"),
        "{err}"
    );
    let first = c.client.get_run(&run_id(&out)).await.unwrap();
    assert_eq!(first.summary.state, RunState::Succeeded);
    assert_eq!(task(&first, "count").outputs["n"], serde_json::json!(5));
    let shown = c.stdout(&first.summary.id, "show").await;
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        [r#"{"lr": 0.1}"#, "part-1.csv", "read-only"],
        "{shown}"
    );
    // The run records what it was given, by content.
    let names: Vec<&str> = first.inputs.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["dataset", "config"]);
    assert_eq!(first.inputs[1].size, 12);
    assert!(first.inputs.iter().all(|a| a.digest.starts_with("blake3:")));
    let (_, shown, _) = cli(&c.url, &["runs", "get", &first.summary.id]).await;
    assert!(
        shown.contains(&format!(
            "input     config (12 bytes, {})",
            first.inputs[1].digest
        )),
        "{shown}"
    );
    // The worker, which shares no directory with the server, fetched both into its cache.
    let cached: Vec<String> = std::fs::read_dir(elsewhere.join("artifacts/.cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for a in &first.inputs {
        assert!(cached.contains(&a.digest.replace(':', "-")), "{cached:?}");
    }

    // The same content again: nothing is sent, and the steps are served from the cache.
    let (code, out, err) = cli(
        &c.url,
        &["submit", f, "--input", &d, "-i", &k, "--wait", "-o", "json"],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(err.matches("on the server already").count(), 2, "{err}");
    let second = c.client.get_run(&run_id(&out)).await.unwrap();
    assert_eq!(
        task(&second, "count").cached_from.as_deref(),
        Some(first.summary.id.as_str())
    );

    // Another row: another digest, sent, and counted afresh.
    std::fs::write(data.join("part-2.csv"), "f\n").unwrap();
    let (code, out, err) = cli(
        &c.url,
        &["submit", f, "--input", &d, "-i", &k, "--wait", "-o", "json"],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let third = c.client.get_run(&run_id(&out)).await.unwrap();
    assert_eq!(task(&third, "count").cached_from, None);
    assert_eq!(task(&third, "count").outputs["n"], serde_json::json!(6));
    assert_ne!(third.inputs[0].digest, first.inputs[0].digest);
    assert_eq!(third.inputs[1].digest, first.inputs[1].digest);

    // A clone keeps the inputs of the run it clones.
    let clone = c
        .client
        .create_run(&sluice_sdk::api::CreateRun {
            clone_of: Some(third.summary.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(clone.inputs, third.inputs);

    // Refused by name, and no run is made.
    let before = c
        .client
        .list_runs(None, None, 200, None)
        .await
        .unwrap()
        .runs
        .len();
    let big = work.path().join("big.bin");
    std::fs::write(&big, vec![1u8; 100 << 10]).unwrap();
    let big_input = format!("dataset={}", big.display());
    // A directory's size is not announced: the server stops its stream at the limit.
    let big_dir = work.path().join("big-dir");
    std::fs::create_dir(&big_dir).unwrap();
    std::fs::write(big_dir.join("part-0.csv"), vec![b'x'; 100 << 10]).unwrap();
    let big_dir_input = format!("dataset={}", big_dir.display());
    let missing = format!("dataset={}", work.path().join("nope").display());
    for (args, code, want) in [
        (
            vec!["submit", f, "-i", &k],
            2,
            "input artifact `dataset` was not given",
        ),
        (
            vec!["submit", f, "-i", &d, "-i", &k, "-i", "extra=/etc/hostname"],
            2,
            "input `extra`: ",
        ),
        (
            vec!["submit", f, "-i", &big_input, "-i", &k],
            2,
            "over the server's limit of 65536 bytes",
        ),
        (
            vec!["submit", f, "-i", &big_dir_input, "-i", &k],
            2,
            "over the server's limit of 65536 bytes",
        ),
        (vec!["submit", f, "-i", &missing, "-i", &k], 2, "nope"),
        (
            vec!["submit", f, "-i", "dataset"],
            2,
            "must be written NAME=PATH",
        ),
    ] {
        let (got, out, err) = cli(&c.url, &args).await;
        assert_eq!(got, code, "{args:?}\n{out}\n{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(
        c.client
            .list_runs(None, None, 200, None)
            .await
            .unwrap()
            .runs
            .len(),
        before
    );
    // What was cut off at the limit left nothing behind, and nothing was sent for an input
    // the file does not declare: two inputs of the first run, one of the third.
    let kept: Vec<String> = std::fs::read_dir(c.dir.path().join("server/worker/artifacts/uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|n| n.starts_with("blake3-")), "{kept:?}");
}

#[tokio::test]
async fn an_upload_is_kept_only_as_the_content_its_digest_names() {
    let mut c = Cluster::start(&[]).await;
    let http = reqwest::Client::new();
    let put = |digest: &str, body: Vec<u8>, tar: bool| {
        let req = http
            .put(format!("{}/api/v1/uploads/{digest}", c.url))
            .header(
                "content-type",
                if tar {
                    UPLOAD_TAR
                } else {
                    "application/octet-stream"
                },
            )
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let good = format!("blake3:{}", blake3::hash(b"rows").to_hex());
    let other = format!("blake3:{}", blake3::hash(b"other").to_hex());
    // Content that is not what the digest names.
    let (status, body) = put(&other, b"rows".to_vec(), false).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(&format!("has digest {good}, not the {other}")),
        "{body}"
    );
    // A malformed digest.
    let (status, body) = put("sha256:abc", b"rows".to_vec(), false).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is not an upload's digest"), "{body}");
    // A tar stream with a path out of its directory.
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(1);
    h.set_mode(0o644);
    h.as_old_mut().name[..15].copy_from_slice(b"../../escape-up");
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"x"[..]).unwrap();
    let (status, body) = put(&good, b.into_inner().unwrap(), true).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is not a plain relative path"), "{body}");
    // Nothing was kept of any of them; the right content is.
    let uploads = c.dir.path().join("server/worker/artifacts/uploads");
    let kept = || -> Vec<String> {
        std::fs::read_dir(&uploads)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(kept().is_empty(), "{:?}", kept());
    assert!(!c.dir.path().join("server/worker/escape-up").exists());
    assert_eq!(c.client.upload_info(&good).await.unwrap(), None);
    let (status, body) = put(&good, b"rows".to_vec(), false).await;
    assert_eq!(status, 201, "{body}");
    let info = c.client.upload_info(&good).await.unwrap().unwrap();
    assert_eq!((info.size, info.kind.as_str()), (4, "file"));
    assert_eq!(kept(), [good.replace(':', "-")]);
    // Sent again: held already.
    assert_eq!(put(&good, b"rows".to_vec(), false).await.0, 200);
    // A run given an input its pipeline does not declare, or one not uploaded, is refused.
    let img = image("busybox");
    for (inputs, want) in [
        (
            vec![("extra", good.clone())],
            "input artifact `extra`: the pipeline declares dataset, config",
        ),
        (
            vec![("dataset", other.clone()), ("config", good.clone())],
            "input artifact `dataset`: no upload has digest",
        ),
    ] {
        let e = c
            .client
            .create_run(&sluice_sdk::api::CreateRun {
                yaml: Some(pipeline(&img)),
                inputs: inputs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    }
    // What an upload cut off by the server's exit left is gone when it starts again.
    let left = uploads.join(".partial-left");
    std::fs::write(&left, b"half").unwrap();
    c.restart_server().await;
    assert!(!left.exists());
    assert!(c.client.upload_info(&good).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn sluice_up_reads_an_upload_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut up, url) = spawn_up(&data, &dir.path().join("up.log")).await;
    let client = Client::new(&url, None);
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, pipeline(&image("busybox"))).unwrap();
    let rows = dir.path().join("rows");
    std::fs::create_dir(&rows).unwrap();
    std::fs::write(rows.join("part-0.csv"), "a\nb\n").unwrap();
    std::os::unix::fs::symlink("part-0.csv", rows.join("latest")).unwrap();
    let cfg = dir.path().join("cfg");
    std::fs::write(&cfg, "{}\n").unwrap();
    let (d, k) = (
        format!("dataset={}", rows.display()),
        format!("config={}", cfg.display()),
    );
    let (code, out, err) = cli(
        &url,
        &[
            "submit",
            file.to_str().unwrap(),
            "-i",
            &d,
            "-i",
            &k,
            "--wait",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let run = client.get_run(&run_id(&out)).await.unwrap();
    assert_eq!(task(&run, "count").outputs["n"], serde_json::json!(2));
    assert!(run
        .inputs
        .iter()
        .all(|a| a.uri.starts_with("upload://blake3-")));
    // Read where the server put it: nothing was fetched into the worker's cache.
    let cache = data.join("worker/artifacts/.cache");
    let fetched: Vec<_> = std::fs::read_dir(&cache)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(fetched.is_empty(), "{fetched:?}");
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(up.0.id() as i32, libc::SIGTERM) };
    assert!(up.0.wait().unwrap().success());
}

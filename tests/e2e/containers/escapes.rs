//! Probes of the trust boundary with real containers: links a step or an image holds must never
//! lead the worker, the next step or the server to a host path.

use super::*;

/// `GET` on an artifact of a run: the status and the body.
async fn fetch(
    c: &Cluster,
    run: &str,
    task: &str,
    name: &str,
    path: Option<&str>,
) -> (u16, String) {
    let mut url = format!("{}/api/v1/runs/{run}/tasks/{task}/artifacts/{name}", c.url);
    if let Some(p) = path {
        url.push_str(&format!("?path={p}"));
    }
    let r = reqwest::get(&url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_symlinked_output_artifact_fails_its_step_and_links_inside_an_artifact_stay_inside() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: links
steps:
  - name: etc
    image: {img}
    outputs: {{artifacts: {{x: {{}}}}}}
    command: [sh, -c, "ln -s /etc {{{{outputs.artifacts.x}}}}"]
  - name: reader
    image: {img}
    command: [sh, -c, "cat {{{{steps.etc.outputs.artifacts.x}}}}/shadow"]
  - name: up
    image: {img}
    outputs: {{artifacts: {{db: {{}}}}}}
    command: [sh, -c, "ln -s ../../../../../.. {{{{outputs.artifacts.db}}}}"]
  - name: tree
    image: {img}
    outputs: {{artifacts: {{t: {{}}}}}}
    script: |
      mkdir -p {{{{outputs.artifacts.t}}}}
      echo weights > {{{{outputs.artifacts.t}}}}/model.bin
      ln -s /etc/shadow {{{{outputs.artifacts.t}}}}/shadow
      ln -s ../../../../../../.. {{{{outputs.artifacts.t}}}}/top
      ln -s model.bin {{{{outputs.artifacts.t}}}}/latest
  - name: consume
    image: {img}
    script: |
      cat {{{{steps.tree.outputs.artifacts.t}}}}/latest
      cat {{{{steps.tree.outputs.artifacts.t}}}}/shadow 2>/dev/null || echo "no shadow here"
      ls {{{{steps.tree.outputs.artifacts.t}}}}/top/sluice.db 2>/dev/null || echo "no database here"
"#
        ))
        .await;
    assert_eq!(run.summary.state, RunState::Failed);
    for (t, a) in [("etc", "x"), ("up", "db")] {
        let e = task(&run, t).error.clone().unwrap_or_default();
        assert!(
            e.contains(&format!("output artifact `{a}`")) && e.contains("symbolic link"),
            "{t}: {e}"
        );
        assert!(
            task(&run, t).artifacts.is_empty(),
            "nothing recorded for {t}"
        );
    }
    assert_eq!(task(&run, "reader").state, TaskState::Skipped);
    // The links inside a directory artifact reached the consumer as links, resolved in its own
    // container: the host's /etc/shadow and the server's database stayed out of reach.
    assert_eq!(task(&run, "consume").state, TaskState::Succeeded);
    let out = c.stdout(&run.summary.id, "consume").await;
    assert_eq!(out, "weights\nno shadow here\nno database here\n");

    // The server lists the links without following them, serves a link that stays inside, and
    // refuses the ones that lead out.
    let id = &run.summary.id;
    let (status, listing) = fetch(&c, id, "tree", "t", None).await;
    assert_eq!(status, 200, "{listing}");
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let links: Vec<(String, String)> = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            Some((
                f["path"].as_str()?.to_string(),
                f["link"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert_eq!(
        links,
        [
            ("latest".to_string(), "model.bin".to_string()),
            ("shadow".to_string(), "/etc/shadow".to_string()),
            ("top".to_string(), "../../../../../../..".to_string())
        ]
    );
    assert_eq!(
        fetch(&c, id, "tree", "t", Some("latest")).await,
        (200, "weights\n".into())
    );
    for p in [
        "shadow",
        "top/sluice.db",
        "top/server/sluice.db",
        "../../../../sluice.db",
    ] {
        let (status, body) = fetch(&c, id, "tree", "t", Some(p)).await;
        assert!(
            status == 403 || status == 400,
            "{p} was answered {status}: {body}"
        );
        assert!(!body.contains("SQLite"), "{p}: {body}");
    }
}

#[tokio::test]
async fn an_artifact_swapped_for_a_link_after_its_step_is_not_served() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            "name: swap\nsteps:\n  - name: make\n    image: {img}\n    outputs: {{artifacts: {{d: {{}}}}}}\n    command: [sh, -c, \"mkdir {{{{outputs.artifacts.d}}}} && echo hi > {{{{outputs.artifacts.d}}}}/f\"]\n"
        ))
        .await;
    assert_succeeded(&c, &run);
    let id = &run.summary.id;
    assert_eq!(
        fetch(&c, id, "make", "d", Some("f")).await,
        (200, "hi\n".into())
    );
    // The recorded place now holds a link to the server's data directory (as a forged record
    // or a racing writer would have it): the server must not walk through it.
    let uri = task(&run, "make").artifacts[0].uri.clone();
    let place = PathBuf::from(uri.strip_prefix("file://").unwrap());
    std::fs::remove_dir_all(&place).unwrap();
    std::os::unix::fs::symlink(c.dir.path().join("server"), &place).unwrap();
    assert!(
        place.join("sluice.db").exists(),
        "the link does lead to the database"
    );
    let (status, body) = fetch(&c, id, "make", "d", Some("sluice.db")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("artifact_refused"), "{body}");
    let (status, body) = fetch(&c, id, "make", "d", None).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn an_images_links_cannot_place_mount_points_on_the_host() {
    let c = Cluster::start(&[]).await;
    let pid = std::process::id();
    // Host directories an image's links point at (as /etc/cron.d would be).
    let abs = PathBuf::from(format!("/tmp/sluice-probe-abs-{pid}"));
    let rel = PathBuf::from(format!("/tmp/sluice-probe-rel-{pid}"));
    for d in [&abs, &rel] {
        std::fs::create_dir_all(d).unwrap();
    }
    let reg = registry();
    // One image whose /sluice is an absolute link to a host directory, one whose /sluice climbs
    // there with a relative link: resolved on the host, either would put the step's mount
    // points (directories and the script's file) into it.
    let img_abs = format!("{reg}/sluice/probe-abs-{pid}:1");
    let img_rel = format!("{reg}/sluice/probe-rel-{pid}:1");
    let target = abs.display().to_string();
    push_busybox_with(&img_abs, c.dir.path(), &["sluice"], |b| {
        tar_symlink(b, "sluice", &target)
    })
    .await;
    let up = format!("../../../../../../../../../../..{}", rel.display());
    push_busybox_with(&img_rel, c.dir.path(), &["sluice"], |b| {
        tar_symlink(b, "sluice", &up)
    })
    .await;
    let step = |name: &str, img: &str| {
        format!(
            "  - name: {name}\n    image: {img}\n    outputs: {{params: {{p: {{type: string}}}}}}\n    script: echo hi > {{{{outputs.params.p}}}}\n"
        )
    };
    let yaml = format!(
        "name: image-links\nsteps:\n{}{}",
        step("abs", &img_abs),
        step("rel", &img_rel)
    );
    let run = c.run(&yaml).await;
    let made: Vec<String> = [&abs, &rel]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
        .map(|e| e.path().display().to_string())
        .collect();
    for d in [&abs, &rel] {
        let _ = std::fs::remove_dir_all(d);
    }
    assert!(made.is_empty(), "made on the host: {made:?}");
    assert_eq!(run.summary.state, RunState::Failed);
    for t in ["abs", "rel"] {
        let e = task(&run, t).error.clone().unwrap_or_default();
        assert!(e.contains("cannot make the mount point"), "{t}: {e}");
    }
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

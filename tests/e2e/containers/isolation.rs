//! Isolation and limits: what a step sees, what it cannot reach or exceed, how it fails.

use super::*;

#[tokio::test]
async fn a_three_step_pipeline_passes_a_parameter_and_an_artifact_in_real_containers() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: three-steps
params:
  greeting: {{type: string, default: hello}}
steps:
  - name: make
    image: {img}
    inputs: {{params: {{greeting: {{type: string}}}}}}
    params: {{greeting: "{{{{params.greeting}}}}"}}
    outputs:
      params: {{count: {{type: int}}}}
      artifacts: {{words: {{type: dataset}}}}
    script: |
      mkdir -p /sluice/outputs/artifacts/words
      for w in {{{{inputs.params.greeting}}}} from a container; do echo $w; done > /sluice/outputs/artifacts/words/list.txt
      wc -l < /sluice/outputs/artifacts/words/list.txt | tr -d ' ' > /sluice/outputs/params/count
      cat /etc/os-release
  - name: read
    image: {img}
    outputs: {{params: {{first: {{type: string}}}}}}
    script: |
      head -n1 {{{{steps.make.outputs.artifacts.words}}}}/list.txt > /sluice/outputs/params/first
      echo "count={{{{steps.make.outputs.params.count}}}}"
      touch {{{{steps.make.outputs.artifacts.words}}}}/tamper 2>&1 || echo "input is read-only"
  - name: report
    image: {img}
    command: [sh, -c]
    args: ["echo first={{{{steps.read.outputs.params.first}}}} host=$(hostname)"]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let make = task(&run, "make");
    assert_eq!(make.outputs["count"], serde_json::json!(4));
    let words = &make.artifacts[0];
    assert_eq!(words.name, "words");
    assert!(
        words.size > 0 && words.digest.starts_with("blake3:") && words.digest.len() == 71,
        "{words:?}"
    );
    // The step saw the image's /etc/os-release (as stored in the image's layer), not the host's.
    let out = c.stdout(&run.summary.id, "make").await;
    let store =
        sluice_worker::images::store::ImageStore::open(&c.worker_dir().join("images")).unwrap();
    let rec = store
        .get(&img)
        .unwrap()
        .expect("the worker stored the image");
    let layer = store.layer_path(rec.layers.last().unwrap()).unwrap();
    let image_release = std::fs::read_to_string(layer.join("etc/os-release")).unwrap();
    let host_release = std::fs::read_to_string("/etc/os-release").unwrap();
    assert_ne!(image_release, host_release, "the control: they differ");
    assert!(out.ends_with(&image_release), "{out}");
    assert!(!out.contains(host_release.lines().next().unwrap()), "{out}");
    // The image's digest is recorded on each task.
    assert!(make
        .image_digest
        .as_deref()
        .unwrap_or("")
        .starts_with("sha256:"));
    let read = c.stdout(&run.summary.id, "read").await;
    assert!(
        read.contains("count=4") && read.contains("input is read-only"),
        "{read}"
    );
    assert_eq!(
        task(&run, "read").outputs["first"],
        serde_json::json!("hello")
    );
    let report = c.stdout(&run.summary.id, "report").await;
    assert_eq!(report.trim(), "first=hello host=report");
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn writes_outside_the_volumes_stay_in_the_container() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let marker = format!("sluice-escape-{}", std::process::id());
    let run = c
        .run(&format!(
            r#"
name: escape
steps:
  - name: write
    image: {img}
    script: |
      echo x > /etc/{marker}
      echo x > /tmp/{marker}
      echo x > /bin/{marker}
      rm -f /bin/ls
      ls /etc/{marker} && echo wrote
      mknod /tmp/disk b 8 0 || echo "no device nodes"
      echo 1 > /proc/sys/kernel/hostname || echo "proc read-only"
      cat /proc/self/status | grep CapBnd
  - name: after
    image: {img}
    dependsOn: [write]
    command: [sh, -c, "ls /bin/ls && ls /etc/{marker} || echo clean"]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let out = c.stdout(&run.summary.id, "write").await;
    assert!(
        out.contains("wrote") && out.contains("no device nodes") && out.contains("proc read-only"),
        "{out}"
    );
    // Docker's bounding set less CAP_MKNOD: 0xa00425fb & !(1 << 27).
    assert!(out.contains("CapBnd:\t00000000a00425fb"), "{out}");
    for dir in ["/etc", "/tmp", "/bin"] {
        assert!(
            !Path::new(dir).join(&marker).exists(),
            "{dir}/{marker} reached the host"
        );
    }
    // The next container starts from the untouched image.
    let after = c.stdout(&run.summary.id, "after").await;
    assert!(
        after.contains("/bin/ls") && after.contains("clean"),
        "{after}"
    );
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_memory_bomb_is_oom_killed_and_reported_so() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: membomb
steps:
  - name: bomb
    image: {img}
    resources: {{memory: 32Mi}}
    command: [dd, if=/dev/zero, of=/dev/null, bs=256M, count=1]
"#
        ))
        .await;
    assert_eq!(run.summary.state, RunState::Failed);
    let t = task(&run, "bomb");
    assert_eq!(t.exit_code, Some(137));
    let err = t.error.clone().unwrap_or_default();
    assert!(
        err.contains("out of memory") && err.contains("32 MiB"),
        "{err}"
    );
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_fork_bomb_is_held_by_the_pids_limit() {
    let c = Cluster::start(&["--pids-limit", "32"]).await;
    let img = image("busybox");
    // The bomb (a background loop starting processes that stay) runs until a fork fails; the
    // step's own shell samples how many processes the container has, with builtins only (it
    // cannot fork either while the bomb holds every PID): until the count comes near the limit
    // (however long that takes on a busy machine), then 300 samples more to catch any overshoot.
    let run = c
        .run(&format!(
            r#"
name: forkbomb
steps:
  - name: bomb
    image: {img}
    script: |
      ( while true; do sleep 100 & done ) 2>/dev/null &
      max=0; i=0; near=0
      while [ $i -lt 50000 ] && [ $near -lt 300 ]; do
        n=0; for p in /proc/[0-9]*; do n=$((n+1)); done
        [ $n -gt $max ] && max=$n
        [ $max -ge 28 ] && near=$((near+1))
        i=$((i+1))
      done
      echo "procs $max"
"#
        ))
        .await;
    let out = c.stdout(&run.summary.id, "bomb").await;
    let n: u32 = out
        .trim()
        .strip_prefix("procs ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out:?} {:?}", run.tasks[0]));
    // The bomb filled the container's PIDs budget, and no more.
    assert!((28..=32).contains(&n), "{n} processes at most");
    assert_eq!(run.summary.state, RunState::Succeeded);
    // Everything it started died with the container.
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_step_without_network_cannot_reach_the_hosts_loopback_services() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Counts connections, closing each at once.
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if conn.is_ok() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let run = c
        .run(&format!(
            r#"
name: network
steps:
  - name: isolated
    image: {img}
    command: [sh, -c, "echo ping | nc -w 2 127.0.0.1 {port} && echo reached || echo unreachable; ip -o link | cut -d: -f2"]
  - name: host
    image: {img}
    dependsOn: [isolated]
    network: host
    command: [sh, -c, "echo ping | nc -w 2 127.0.0.1 {port} && echo reached || echo unreachable"]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    let isolated = c.stdout(&run.summary.id, "isolated").await;
    assert!(isolated.contains("unreachable"), "{isolated}");
    assert_eq!(
        isolated.lines().filter(|l| l.trim() == "lo").count(),
        1,
        "only loopback: {isolated}"
    );
    // The same step with host networking does reach it, so the first result is the namespace's doing.
    let host = c.stdout(&run.summary.id, "host").await;
    assert!(host.contains("reached"), "{host}");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the host-network step connected"
    );
}

#[tokio::test]
async fn a_missing_program_or_image_fails_the_step_with_a_clear_error() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            "name: bad\nsteps:\n  - name: noprog\n    image: {img}\n    command: [train-model]\n  - name: noimage\n    image: {}/sluice/absent:1\n    command: [true]\n",
            registry()
        ))
        .await;
    assert_eq!(run.summary.state, RunState::Failed);
    let e = task(&run, "noprog").error.clone().unwrap_or_default();
    assert!(e.contains("`train-model` not found in $PATH"), "{e}");
    let e = task(&run, "noimage").error.clone().unwrap_or_default();
    assert!(e.contains("sluice/absent:1"), "{e}");
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

/// On a host with an NVIDIA GPU, a step asking for one sees its device and is told which it got;
/// on a host without one, the step is not given to the worker (it has no GPU to offer) and waits,
/// saying why, until it is cancelled. Either way something is checked (scripts/gpu-check shows
/// `nvidia-smi` at work where there is a GPU).
#[tokio::test]
async fn a_step_asking_for_a_gpu_gets_one_or_waits_saying_no_worker_has_one() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    let yaml = format!(
        "name: gpu\nsteps:\n  - name: train\n    image: {img}\n    resources: {{gpu: 1}}\n    command: [sh, -c, \"ls /dev/nvidia0 && echo visible=$NVIDIA_VISIBLE_DEVICES\"]\n"
    );
    if Path::new("/dev/nvidia0").exists() {
        let run = c.run(&yaml).await;
        assert_succeeded(&c, &run);
        let out = c.stdout(&run.summary.id, "train").await;
        assert!(
            out.contains("/dev/nvidia0") && out.contains("visible="),
            "{out}"
        );
    } else {
        let id = submit(&c.client, &yaml).await;
        // Once the worker is up (before, no worker is).
        let d = wait_until(
            &c.client,
            &id,
            Duration::from_secs(30),
            "the reason it waits",
            |d| task(d, "train").waiting.as_deref() == Some("no worker that is up has 1 GPU"),
        )
        .await;
        assert_eq!(task(&d, "train").state, TaskState::Ready);
        c.client.cancel_run(&id).await.unwrap();
        let run = wait_run(&c.client, &id, Duration::from_secs(30)).await;
        assert_eq!(run.summary.state, RunState::Cancelled);
        assert_eq!(task(&run, "train").attempt, 0, "it never ran");
    }
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

//! Disk: a step over its `resources.disk` is stopped, and a worker whose disk runs low stops the
//! step using the most of it before the disk fills.

use super::*;

#[tokio::test]
async fn a_step_over_its_disk_limit_is_stopped_and_says_so() {
    let c = Cluster::start(&["--default-disk", "1Gi"]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: disk
steps:
  - name: layer
    image: {img}
    resources: {{disk: 10Mi}}
    script: |
      dd if=/dev/zero of=/big bs=1M count=40 2>/dev/null
      sleep 60
  - name: output
    image: {img}
    resources: {{disk: 10Mi}}
    outputs: {{artifacts: {{blob: {{}}}}}}
    script: |
      dd if=/dev/zero of={{{{outputs.artifacts.blob}}}} bs=1M count=40 2>/dev/null
      sleep 60
  - name: small
    image: {img}
    script: |
      dd if=/dev/zero of=/small bs=1M count=5 2>/dev/null
      echo fine
"#
        ))
        .await;
    assert_eq!(run.summary.state, RunState::Failed);
    for t in ["layer", "output"] {
        let e = task(&run, t).error.clone().unwrap_or_default();
        assert!(
            e.contains("of disk, over its limit of 10.0 MiB: stopped"),
            "{t}: {e}"
        );
    }
    assert_eq!(task(&run, "small").state, TaskState::Succeeded);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[tokio::test]
async fn a_worker_whose_disk_runs_low_stops_the_biggest_step_before_the_disk_fills() {
    let mut c = Cluster::start(&[]).await;
    c.worker.take().unwrap().kill9();
    // The worker's data on a 96 MiB disk, keeping 32 MiB free.
    let disk = SmallDisk::mount(&c.dir.path().join("small"), "96m");
    let _w = c.spawn_worker_with(
        &c.dir.path().join("small/worker"),
        "small.log",
        &["--disk-reserve", "32Mi"],
    );
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: filler
steps:
  - name: fill
    image: {img}
    script: |
      i=0
      while [ $i -lt 90 ]; do dd if=/dev/zero of=/f$i bs=1M count=1 2>/dev/null || echo "write failed"; i=$((i+1)); usleep 20000; done
      sleep 60
"#
        ))
        .await;
    let e = task(&run, "fill").error.clone().unwrap_or_default();
    assert!(
        e.contains("evicted: the worker's disk had") && e.contains("under its reserve of 32.0 MiB"),
        "{e}"
    );
    // It was stopped before the disk filled: no write of it ever failed.
    let out = c.stdout(&run.summary.id, "fill").await;
    assert!(!out.contains("write failed"), "{out}");
    // Its writes went with it: the next step on that worker runs.
    let next = c
        .run(&format!(
            "name: next\nsteps:\n  - name: a\n    image: {img}\n    command: [echo, after]\n"
        ))
        .await;
    assert_eq!(next.summary.state, RunState::Succeeded, "{:?}", next.tasks);
    drop(disk);
}

//! Steps that print a lot: their logs are shipped in bounded batches and bounded memory, cut
//! with a visible marker past the worker's limit, and never hold up what runs next.

use super::*;

/// Every line of a task's log, page by page.
async fn all_lines(c: &Cluster, run: &str, task: &str) -> Vec<(Stream, String)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = c.client.logs(run, task, after, 10_000).await.unwrap();
        let n = page.lines.len();
        out.extend(page.lines.into_iter().map(|l| (l.stream, l.line)));
        after = page.next_after;
        if n < 10_000 {
            return out;
        }
    }
}

#[tokio::test]
async fn ten_million_lines_are_cut_with_a_marker_and_the_next_step_runs() {
    let c = Cluster::start(&["--log-limit", "1Mi"]).await;
    let img = image("busybox");
    let run = c
        .run(&format!(
            r#"
name: flood
steps:
  - name: flood
    image: {img}
    script: |
      seq 10000000
      echo done >&2
  - name: next
    image: {img}
    dependsOn: [flood]
    command: [echo, next]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    for t in ["flood", "next"] {
        assert_eq!(task(&run, t).attempt, 1, "{t} ran once");
    }
    let lines = all_lines(&c, &run.summary.id, "flood").await;
    // The head up to 1 MiB, the marker, the last thousand lines.
    assert_eq!(lines[0].1, "1");
    let marker = lines
        .iter()
        .position(|(_, l)| l.starts_with("[sluice] "))
        .expect("a marker line");
    let (stream, text) = &lines[marker];
    assert_eq!(*stream, Stream::Stderr);
    assert!(
        text.contains("of this log were dropped here: it passed the worker's log limit of 1.0 MiB; the last 1000 lines follow"),
        "{text}"
    );
    let head: u64 = lines[..marker].iter().map(|(_, l)| l.len() as u64).sum();
    assert!(
        head <= 1 << 20 && head > (1 << 20) - 16,
        "{head} bytes before the marker"
    );
    assert_eq!(lines.len(), marker + 1 + 1000);
    assert_eq!(lines[marker - 1].1, marker.to_string(), "the head is whole");
    // The last line out is in the tail (stderr's `done` may have come through its own pipe
    // before the last of stdout was read, and been dropped from the middle: it is counted).
    let tail = &lines[marker + 1..];
    let last_out = tail
        .iter()
        .rev()
        .find(|(s, _)| *s == Stream::Stdout)
        .unwrap();
    assert_eq!(last_out.1, "10000000");
    let dropped: u64 = text
        .strip_prefix("[sluice] ")
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_eq!(
        dropped as usize + marker + 1000,
        10_000_001,
        "every line is counted"
    );
    assert_eq!(c.stdout(&run.summary.id, "next").await, "next\n");
    let pid = c.worker.as_ref().unwrap().0.id();
    let rss = peak_rss_mib(pid);
    assert!(rss < 300, "the worker peaked at {rss} MiB");
}

#[tokio::test]
async fn a_burst_bigger_than_a_request_is_stored_whole() {
    let c = Cluster::start(&[]).await;
    let img = image("busybox");
    // 200,000 lines of 100 bytes: 20 MB at once, ten times the size of one request.
    let run = c
        .run(&format!(
            r#"
name: burst
steps:
  - name: burst
    image: {img}
    script: |
      line=$(printf '%0100d' 0)
      i=0
      while [ $i -lt 2000 ]; do
        for j in 0 1 2 3 4 5 6 7 8 9; do echo "$line"; echo "$line"; echo "$line"; echo "$line"; echo "$line"; echo "$line"; echo "$line"; echo "$line"; echo "$line"; echo "$line"; done
        i=$((i+1))
      done
      echo end
  - name: next
    image: {img}
    dependsOn: [burst]
    command: [echo, next]
"#
        ))
        .await;
    assert_succeeded(&c, &run);
    assert_eq!(task(&run, "burst").attempt, 1);
    let lines = all_lines(&c, &run.summary.id, "burst").await;
    assert_eq!(lines.len(), 200_001);
    assert!(lines[..200_000].iter().all(|(_, l)| l.len() == 100));
    assert_eq!(lines[200_000].1, "end");
    assert_eq!(c.stdout(&run.summary.id, "next").await, "next\n");
}

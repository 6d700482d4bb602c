//! One attempt's log, from the container's pipes to the reporter: lines numbered from 1 in the
//! order they arrive, the start reported before any of them, and the whole bounded. Past the
//! worker's log limit the middle of the log is dropped: the lines up to the limit are shipped as
//! they come, the last [`TAIL_LINES`] are kept, and at the end a marker line says how much was
//! dropped (as `kubectl logs` keeps a container's latest output, and Kubeflow its head).

use crate::reporter::Reporter;
use sluice_sdk::api::{now_ms, LeaseId, NewLogLine, ReportEvent, Stream};
use sluice_spec::format_bytes;
use std::collections::VecDeque;
use tokio::sync::{mpsc, oneshot};

/// Lines kept from the end of a log that passed its limit.
pub const TAIL_LINES: usize = 1000;
/// Most bytes those lines may hold (lines are cut at 16 KiB each): fewer, longer lines are kept
/// when they would pass it.
pub const TAIL_BYTES: usize = 1 << 20;
/// Most lines sent in one go.
const CHUNK_LINES: usize = 2000;

/// How much of one attempt's log is shipped.
#[derive(Debug, Clone, Copy)]
pub struct LogPolicy {
    /// Bytes of log shipped as it comes; past them only the tail is kept.
    pub limit_bytes: u64,
}

impl Default for LogPolicy {
    fn default() -> Self {
        LogPolicy {
            limit_bytes: 64 << 20,
        }
    }
}

/// What was dropped from the middle of a log.
#[derive(Debug, Default, PartialEq, Eq)]
struct Dropped {
    lines: u64,
    bytes: u64,
}

/// Numbers lines and splits the log into what ships now, the tail kept, and what is dropped.
struct Cutter {
    policy: LogPolicy,
    seq: u64,
    shipped_bytes: u64,
    tail: VecDeque<NewLogLine>,
    /// Bytes of the lines in `tail`.
    tail_bytes: usize,
    dropped: Dropped,
}

impl Cutter {
    fn new(policy: LogPolicy) -> Cutter {
        Cutter {
            policy,
            seq: 0,
            shipped_bytes: 0,
            tail: VecDeque::new(),
            tail_bytes: 0,
            dropped: Dropped::default(),
        }
    }

    /// A line as it arrives: `Some` to ship now, `None` when it goes to the tail.
    fn take(&mut self, stream: Stream, line: String) -> Option<NewLogLine> {
        let len = line.len() as u64;
        if self.tail.is_empty() && self.shipped_bytes + len <= self.policy.limit_bytes {
            self.shipped_bytes += len;
            self.seq += 1;
            return Some(NewLogLine {
                seq: self.seq,
                ts_ms: now_ms(),
                stream,
                line,
            });
        }
        // Past the limit: kept in the tail (numbered when it ships), the oldest dropped.
        self.tail_bytes += line.len();
        self.tail.push_back(NewLogLine {
            seq: 0,
            ts_ms: now_ms(),
            stream,
            line,
        });
        while self.tail.len() > TAIL_LINES || (self.tail_bytes > TAIL_BYTES && self.tail.len() > 1)
        {
            let Some(old) = self.tail.pop_front() else {
                break;
            };
            self.tail_bytes -= old.line.len();
            self.dropped.lines += 1;
            self.dropped.bytes += old.line.len() as u64;
        }
        None
    }

    /// At the end: the marker (when anything was dropped) and the tail, numbered on.
    fn finish(&mut self) -> Vec<NewLogLine> {
        let mut out = Vec::new();
        if self.dropped.lines > 0 {
            self.seq += 1;
            out.push(NewLogLine {
                seq: self.seq,
                ts_ms: self.tail.front().map_or_else(now_ms, |l| l.ts_ms),
                stream: Stream::Stderr,
                line: format!(
                    "[sluice] {} lines ({}) of this log were dropped here: it passed the worker's log limit of {}; the last {} lines follow",
                    self.dropped.lines,
                    format_bytes(self.dropped.bytes),
                    format_bytes(self.policy.limit_bytes),
                    self.tail.len()
                ),
            });
        }
        self.tail_bytes = 0;
        for mut l in self.tail.drain(..) {
            self.seq += 1;
            l.seq = self.seq;
            out.push(l);
        }
        out
    }
}

/// `line` with every text in `mask` (longest first) replaced by `***`.
pub fn masked(line: String, mask: &[String]) -> String {
    let mut line = line;
    for m in mask {
        if line.contains(m.as_str()) {
            line = line.replace(m.as_str(), "***");
        }
    }
    line
}

/// Forwards the start and the log lines of one attempt to the reporter until the container's
/// pipes close.
pub async fn ship(
    lease_id: LeaseId,
    reporter: Reporter,
    started: oneshot::Receiver<crate::runtime::Started>,
    mut lines: mpsc::Receiver<(Stream, String)>,
    image_digest: Option<String>,
    policy: LogPolicy,
    mask: Vec<String>,
) {
    let masked = |line: String| masked(line, &mask);
    let report_start = |reporter: &Reporter| {
        reporter.send(ReportEvent::Started {
            lease_id: lease_id.clone(),
            ts_ms: now_ms(),
            image_digest: image_digest.clone(),
        })
    };
    // The start is reported before any line.
    let mut started = Some(started);
    let mut cut = Cutter::new(policy);
    loop {
        let next = match started.as_mut() {
            Some(s) => tokio::select! {
                biased;
                r = s => {
                    started = None;
                    if r.is_ok() {
                        report_start(&reporter);
                    }
                    continue;
                }
                l = lines.recv() => l,
            },
            None => lines.recv().await,
        };
        let Some(first) = next else { break };
        let mut batch = Vec::new();
        batch.extend(cut.take(first.0, masked(first.1)));
        while batch.len() < CHUNK_LINES {
            match lines.try_recv() {
                Ok((stream, line)) => batch.extend(cut.take(stream, masked(line))),
                Err(_) => break,
            }
        }
        if started.take().is_some() {
            // Lines came before the start signal: report the start first.
            report_start(&reporter);
        }
        if !batch.is_empty() {
            reporter.send_log(lease_id.clone(), batch).await;
        }
    }
    let rest = cut.finish();
    if !rest.is_empty() {
        reporter.send_log(lease_id.clone(), rest).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_masked_exactly_wherever_they_appear() {
        let mask = vec!["hunter2-long".to_string(), "hunter2".to_string()];
        for (line, want) in [
            ("token=hunter2-long;", "token=***;"),
            ("a hunter2 b hunter2", "a *** b ***"),
            ("hunter", "hunter"),
            ("nothing here", "nothing here"),
        ] {
            assert_eq!(masked(line.to_string(), &mask), want);
        }
    }

    #[test]
    fn past_the_limit_the_middle_is_dropped_and_the_tail_kept_behind_a_marker() {
        let mut c = Cutter::new(LogPolicy { limit_bytes: 100 });
        let mut shipped = Vec::new();
        for i in 0..5000u32 {
            shipped.extend(c.take(Stream::Stdout, format!("{i:09}")));
        }
        // Eleven 9-byte lines fit in 100 bytes; the twelfth would not.
        assert_eq!(shipped.len(), 11);
        let end = c.finish();
        assert_eq!(end.len(), TAIL_LINES + 1);
        let marker = &end[0].line;
        assert!(
            marker.starts_with("[sluice] 3989 lines (35.1 KiB) of this log were dropped here"),
            "{marker}"
        );
        assert!(marker.contains("limit of 100 bytes"), "{marker}");
        assert_eq!(end.last().unwrap().line, "000004999");
        assert_eq!(end[1].line, "000004000");
        // Numbered on without a gap.
        let seqs: Vec<u64> = shipped.iter().chain(&end).map(|l| l.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn a_log_just_past_the_limit_loses_nothing() {
        let mut c = Cutter::new(LogPolicy { limit_bytes: 10 });
        let shipped: Vec<_> = (0..5)
            .filter_map(|i| c.take(Stream::Stderr, format!("line {i}")))
            .collect();
        let end = c.finish();
        assert_eq!(shipped.len() + end.len(), 5);
        assert!(end.iter().all(|l| !l.line.starts_with("[sluice]")));
    }

    #[test]
    fn the_tail_of_long_lines_is_held_to_its_bytes() {
        let mut c = Cutter::new(LogPolicy { limit_bytes: 0 });
        for i in 0..TAIL_LINES {
            assert!(c.take(Stream::Stdout, format!("{i:016384}")).is_none());
        }
        let end = c.finish();
        let kept = end.len() - 1;
        assert_eq!(
            kept,
            TAIL_BYTES / 16384,
            "as many 16 KiB lines as 1 MiB holds"
        );
        assert_eq!(
            end.last().unwrap().line,
            format!("{:016384}", TAIL_LINES - 1)
        );
        assert!(
            end[0]
                .line
                .contains(&format!("{} lines", TAIL_LINES - kept)),
            "{}",
            end[0].line
        );
    }
}

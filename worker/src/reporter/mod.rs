//! Ships what tasks report (starts, log lines, results) to the server in batches. Under load the
//! batches grow by themselves: everything queued while one request is in flight goes in the next,
//! up to [`MAX_BATCH_BYTES`]. Log lines wait for room in a queue of at most [`QUEUE_BYTES`], so a
//! flood of output holds its own step back instead of the worker's memory; starts and results
//! always get in, and go out in order behind at most that much log.
//!
//! A batch that fails to send is sent again (the server stores each event once), except when
//! the server refuses it for what it is: one over the server's size limit is split and sent in
//! parts, and one refused as invalid is dropped (its log lines) rather than retried for ever.

pub mod logship;

use sluice_sdk::api::{ErrorCode, LeaseId, NewLogLine, ReportEvent, Stream, WorkerIdentity};
use sluice_sdk::client::{Client, ClientError};
use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Largest batch sent in one request (estimated as JSON).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// Most log bytes queued for the server at once, across the worker's tasks.
pub const QUEUE_BYTES: usize = 8 << 20;

/// An event waiting to be sent, with the queue room its log lines hold.
struct Queued {
    ev: ReportEvent,
    bytes: usize,
    /// Given back (dropped) once the event is sent or given up.
    room: Vec<OwnedSemaphorePermit>,
}

#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<Queued>,
    room: Arc<Semaphore>,
}

impl Queued {
    /// A log event of one lease, holding `room` in the queue.
    fn log(lease_id: LeaseId, lines: Vec<NewLogLine>, room: Vec<OwnedSemaphorePermit>) -> Queued {
        let ev = ReportEvent::Log { lease_id, lines };
        Queued {
            bytes: size_of(&ev),
            ev,
            room,
        }
    }
}

/// About how many bytes an event takes as JSON.
fn size_of(ev: &ReportEvent) -> usize {
    match ev {
        ReportEvent::Log { lines, .. } => 64 + lines.iter().map(line_size).sum::<usize>(),
        ReportEvent::Finished { result, .. } => {
            256 + result.error.as_ref().map_or(0, |e| e.len())
                + result
                    .outputs
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 8)
                    .sum::<usize>()
                + result
                    .artifacts
                    .iter()
                    .map(|a| a.uri.len() + a.name.len() + 160)
                    .sum::<usize>()
        }
        ReportEvent::Started { .. } => 192,
        ReportEvent::Serving { .. } => 128,
    }
}

fn line_size(l: &NewLogLine) -> usize {
    // Control characters are escaped as `\u00XX`.
    let escaped = l
        .line
        .bytes()
        .filter(|b| *b < 0x20 || *b == b'"' || *b == b'\\')
        .count();
    64 + l.line.len() + 5 * escaped
}

impl Reporter {
    /// Ships one attempt's log lines as they come, after its `Started` event, within `policy`
    /// (see [`logship`]), each text in `mask` (secret values) replaced by `***`; the handle ends
    /// once the attempt's lines are all queued.
    pub fn ship_logs(
        &self,
        lease_id: LeaseId,
        started: oneshot::Receiver<crate::runtime::Started>,
        lines: mpsc::Receiver<(Stream, String)>,
        image_digest: Option<String>,
        policy: logship::LogPolicy,
        mask: Vec<String>,
    ) -> JoinHandle<()> {
        tokio::spawn(logship::ship(
            lease_id,
            self.clone(),
            started,
            lines,
            image_digest,
            policy,
            mask,
        ))
    }

    /// A start or a result: queued at once.
    pub fn send(&self, ev: ReportEvent) {
        let bytes = size_of(&ev);
        let _ = self.tx.send(Queued {
            ev,
            bytes,
            room: Vec::new(),
        });
    }

    /// Log lines of one lease, queued once there is room for them (see [`QUEUE_BYTES`]).
    pub async fn send_log(&self, lease_id: LeaseId, lines: Vec<NewLogLine>) {
        let mut q = Queued::log(lease_id, lines, Vec::new());
        let want = q.bytes.min(QUEUE_BYTES) as u32;
        let Ok(room) = self.room.clone().acquire_many_owned(want).await else {
            return;
        };
        q.room.push(room);
        let _ = self.tx.send(q);
    }
}

/// Starts the shipping loop. It ends once every `Reporter` is dropped and the queue is sent.
/// Leases the server says this worker no longer holds are passed to `lost`.
pub fn spawn(
    client: Client,
    worker_id: Arc<RwLock<WorkerIdentity>>,
    lost: mpsc::UnboundedSender<LeaseId>,
) -> (Reporter, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
    let room = Arc::new(Semaphore::new(QUEUE_BYTES));
    let handle = tokio::spawn(async move {
        let mut pending: VecDeque<Vec<Queued>> = VecDeque::new();
        loop {
            let batch = match pending.pop_front() {
                Some(b) => b,
                None => {
                    let Some(first) = rx.recv().await else { break };
                    let mut batch = vec![first];
                    let mut bytes = batch[0].bytes;
                    while bytes < MAX_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(q) => {
                                bytes += q.bytes;
                                push(&mut batch, q);
                            }
                            Err(_) => break,
                        }
                    }
                    batch
                }
            };
            match deliver(&client, &worker_id, &batch, &lost).await {
                Delivery::Sent => {}
                Delivery::TooLarge => match split(batch) {
                    Some((a, b)) => {
                        pending.push_front(b);
                        pending.push_front(a);
                    }
                    None => tracing::error!(
                        "the server refuses a single report event as too large; dropped"
                    ),
                },
                Delivery::Refused(e) => {
                    // Results still matter: they go again alone; log lines are given up.
                    let (logs, rest): (Vec<Queued>, Vec<Queued>) = batch
                        .into_iter()
                        .partition(|q| matches!(q.ev, ReportEvent::Log { .. }));
                    let lines: usize = logs
                        .iter()
                        .map(|q| match &q.ev {
                            ReportEvent::Log { lines, .. } => lines.len(),
                            _ => 0,
                        })
                        .sum();
                    tracing::error!(error = %e, lines, "the server refused a report; its log lines are dropped");
                    if !rest.is_empty() && !logs.is_empty() {
                        pending.push_front(rest);
                    } else if !rest.is_empty() {
                        tracing::error!(error = %e, events = rest.len(), "the server refused starts or results; dropped");
                    }
                }
            }
        }
    });
    (Reporter { tx, room }, handle)
}

enum Delivery {
    Sent,
    /// Over the server's request size limit (413).
    TooLarge,
    /// Refused for what it holds (another 4xx): sending it again would not help.
    Refused(ClientError),
}

/// Sends a batch, retrying with backoff while the server cannot be reached or fails (5xx).
async fn deliver(
    client: &Client,
    worker_id: &RwLock<WorkerIdentity>,
    batch: &[Queued],
    lost: &mpsc::UnboundedSender<LeaseId>,
) -> Delivery {
    let events: Vec<ReportEvent> = batch.iter().map(|q| q.ev.clone()).collect();
    let mut backoff = Duration::from_millis(100);
    loop {
        let id = worker_id.read().map(|g| g.clone()).unwrap_or_default();
        match client.report(&id, events.clone()).await {
            Ok(resp) => {
                for l in resp.lost {
                    let _ = lost.send(l);
                }
                return Delivery::Sent;
            }
            Err(ClientError::Api { status: 413, .. }) => return Delivery::TooLarge,
            Err(e @ ClientError::Api { status, .. })
                if (400..500).contains(&status) && e.code() != Some(&ErrorCode::UnknownWorker) =>
            {
                return Delivery::Refused(e)
            }
            Err(e) => {
                tracing::warn!(error = %e, events = events.len(), "reporting to the server failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Two halves of a batch, in order: by events, or a lone log event by its lines.
fn split(mut batch: Vec<Queued>) -> Option<(Vec<Queued>, Vec<Queued>)> {
    if batch.len() > 1 {
        let b = batch.split_off(batch.len() / 2);
        return Some((batch, b));
    }
    let q = batch.pop()?;
    let ReportEvent::Log {
        lease_id,
        mut lines,
    } = q.ev
    else {
        return None;
    };
    if lines.len() < 2 {
        return None;
    }
    let tail = lines.split_off(lines.len() / 2);
    // The room the whole held goes with the first half.
    Some((
        vec![Queued::log(lease_id.clone(), lines, q.room)],
        vec![Queued::log(lease_id, tail, Vec::new())],
    ))
}

/// Appends an event, folding log lines into the previous event when it is the same lease's log.
fn push(batch: &mut Vec<Queued>, mut q: Queued) {
    if let Some(last) = batch.last_mut() {
        if let (
            ReportEvent::Log {
                lease_id: prev,
                lines,
            },
            ReportEvent::Log {
                lease_id,
                lines: more,
            },
        ) = (&mut last.ev, &mut q.ev)
        {
            if prev == lease_id {
                lines.append(more);
                last.bytes += q.bytes;
                last.room.append(&mut q.room);
                return;
            }
        }
    }
    batch.push(q);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::api::Stream;

    fn log(lease: &str, n: usize, len: usize) -> Queued {
        let lines = (0..n)
            .map(|i| NewLogLine {
                seq: i as u64 + 1,
                ts_ms: 0,
                stream: Stream::Stdout,
                line: "x".repeat(len),
            })
            .collect();
        Queued::log(lease.into(), lines, Vec::new())
    }

    fn lines(q: &[Queued]) -> usize {
        q.iter()
            .map(|q| match &q.ev {
                ReportEvent::Log { lines, .. } => lines.len(),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn a_batch_too_large_splits_down_to_single_lines_and_no_further() {
        let (a, b) = split(vec![log("l", 10, 100), log("m", 4, 100)]).unwrap();
        assert_eq!((lines(&a), lines(&b)), (10, 4));
        let (a, b) = split(a).unwrap();
        assert_eq!((lines(&a), lines(&b)), (5, 5));
        let mut one = a;
        while lines(&one) > 1 {
            one = split(one).unwrap().0;
        }
        assert!(split(one).is_none(), "a single line is not split");
    }

    #[test]
    fn the_same_leases_lines_fold_into_one_event() {
        let mut batch = vec![log("l", 3, 10)];
        push(&mut batch, log("l", 2, 10));
        push(&mut batch, log("m", 1, 10));
        assert_eq!(batch.len(), 2);
        assert_eq!(lines(&batch[..1]), 5);
    }

    #[test]
    fn escaped_characters_count_at_their_escaped_size() {
        let plain = NewLogLine {
            seq: 1,
            ts_ms: 0,
            stream: Stream::Stdout,
            line: "a".repeat(1000),
        };
        let ctl = NewLogLine {
            line: "\u{1}".repeat(1000),
            ..plain.clone()
        };
        for l in [plain, ctl] {
            let json = serde_json::to_string(&l).unwrap().len();
            assert!(line_size(&l) >= json, "{} < {json}", line_size(&l));
        }
    }
}

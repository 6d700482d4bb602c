//! Reads a container's stdout and stderr and hands them on line by line, in one task, so that
//! lines keep the order they were read in: everything one read brought is handed on before the
//! next read, of either pipe. When both pipes hold data at once (the reader was busy), stdout's
//! is taken first, as what a program printed before it failed usually is. A line longer than
//! [`MAX_LINE`] is cut into pieces of that size; bytes that are not UTF-8 are replaced. While
//! the sink is full, nothing more is read: the container waits on its pipes.

use crate::runtime::LogSink;
use sluice_sdk::api::Stream;
use tokio::io::{AsyncRead, AsyncReadExt};

pub const MAX_LINE: usize = 16 * 1024;

/// One pipe: its reader (until it ends) and the line it is in the middle of.
struct Pipe<R> {
    reader: Option<R>,
    stream: Stream,
    line: Vec<u8>,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(reader: Option<R>, stream: Stream) -> Pipe<R> {
        Pipe {
            reader,
            stream,
            line: Vec::new(),
            buf: vec![0; MAX_LINE],
        }
    }

    async fn read(&mut self) -> usize {
        match &mut self.reader {
            Some(r) => r.read(&mut self.buf).await.unwrap_or(0),
            None => std::future::pending().await,
        }
    }

    /// What a read of `n` bytes brought (0: the end), as whole lines, handed on.
    async fn take(&mut self, n: usize, sink: &LogSink) {
        if n == 0 {
            self.reader = None;
            if !self.line.is_empty() {
                let text = finish(&mut self.line);
                sink.line(self.stream, text).await;
            }
            return;
        }
        let mut lines = Vec::new();
        let mut data = &self.buf[..n];
        while !data.is_empty() {
            let window = &data[..data.len().min(MAX_LINE - self.line.len())];
            match window.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.line.extend_from_slice(&window[..i]);
                    lines.push(finish(&mut self.line));
                    data = &data[i + 1..];
                }
                None => {
                    self.line.extend_from_slice(window);
                    data = &data[window.len()..];
                    if self.line.len() >= MAX_LINE {
                        lines.push(finish(&mut self.line));
                    }
                }
            }
        }
        for l in lines {
            sink.line(self.stream, l).await;
        }
    }
}

fn finish(line: &mut Vec<u8>) -> String {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let text = String::from_utf8_lossy(line).into_owned();
    line.clear();
    text
}

/// Pumps both pipes until both have ended.
pub async fn pump<O, E>(stdout: Option<O>, stderr: Option<E>, sink: LogSink)
where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let mut out = Pipe::new(stdout, Stream::Stdout);
    let mut err = Pipe::new(stderr, Stream::Stderr);
    while out.reader.is_some() || err.reader.is_some() {
        tokio::select! {
            biased;
            n = out.read() => out.take(n, &sink).await,
            n = err.read() => err.take(n, &sink).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_cut_and_made_valid() {
        let mut input = b"one\r\ntwo\n\xffbad\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend(b"\nlast");
        let (tx, mut rx) = tokio::sync::mpsc::channel(100);
        pump(None::<&[u8]>, Some(&input[..]), LogSink(tx)).await;
        let mut got = Vec::new();
        while let Ok((s, l)) = rx.try_recv() {
            assert_eq!(s, Stream::Stderr);
            got.push(l);
        }
        assert_eq!(
            got.len(),
            6,
            "{:?}",
            got.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert_eq!(&got[..3], ["one", "two", "\u{fffd}bad"]);
        assert_eq!(got[3].len(), MAX_LINE);
        assert_eq!(got[4], "x".repeat(10));
        assert_eq!(got[5], "last");
    }

    /// A program that prints a lot and then fails: its last stderr line comes after everything
    /// it printed before, however late the reader gets to the pipes.
    #[tokio::test]
    async fn a_failing_programs_last_stderr_line_comes_after_what_it_printed_before() {
        for late in [false, true] {
            let mut child = tokio::process::Command::new("sh")
                .args([
                    "-c",
                    "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done; echo 'Error: it broke' >&2; exit 1",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
            if late {
                // The program has written everything before the reader looks.
                child.wait().await.unwrap();
            }
            let (tx, mut rx) = tokio::sync::mpsc::channel(8);
            let pump = tokio::spawn(pump(stdout, stderr, LogSink(tx)));
            let mut got = Vec::new();
            while let Some(l) = rx.recv().await {
                got.push(l);
            }
            pump.await.unwrap();
            child.wait().await.unwrap();
            assert_eq!(got.len(), 3001, "late: {late}");
            assert_eq!(
                got.last().unwrap(),
                &(Stream::Stderr, "Error: it broke".to_string()),
                "late: {late}"
            );
            assert!(got[..3000]
                .iter()
                .enumerate()
                .all(|(i, (s, l))| *s == Stream::Stdout && *l == format!("line {i}")));
        }
    }
}

//! Reads a container's stdout or stderr and hands it on line by line. A line longer than
//! [`MAX_LINE`] is cut into pieces of that size; bytes that are not UTF-8 are replaced. While the
//! sink is full, nothing more is read: the container waits on its pipe.

use crate::runtime::LogSink;
use sluice_sdk::api::Stream;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

pub const MAX_LINE: usize = 16 * 1024;

pub async fn pump<R: AsyncRead + Unpin>(reader: Option<R>, stream: Stream, sink: LogSink) {
    let Some(reader) = reader else { return };
    let mut reader = BufReader::with_capacity(MAX_LINE, reader);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        let window = &buf[..buf.len().min(MAX_LINE - line.len())];
        let (taken, ended) = match window.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (window.len(), false),
        };
        line.extend_from_slice(&window[..taken]);
        reader.consume(taken);
        if ended || line.len() >= MAX_LINE {
            emit(&mut line, stream, &sink).await;
        }
    }
    if !line.is_empty() {
        emit(&mut line, stream, &sink).await;
    }
}

async fn emit(line: &mut Vec<u8>, stream: Stream, sink: &LogSink) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    let text = String::from_utf8_lossy(line).into_owned();
    line.clear();
    sink.line(stream, text).await;
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
        pump(Some(&input[..]), Stream::Stderr, LogSink(tx)).await;
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
}

//! The protocol between the worker and a container's helper (`sluice __container-shim`): typed
//! messages, one JSON object per line, both ways over the socket that is the helper's fd 0.
//!
//! The helper says what happens to the container ([`FromShim`]); the worker answers only when
//! asked to wire the container's network ([`ToShim`]): the host side of a bridge is set up after
//! the container's namespaces exist and before its process starts, so the helper holds the
//! container's first process between the two until the worker says go on.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// Helper → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum FromShim {
    /// The container's first process exists, as the host numbers it.
    Created { pid: i32 },
    /// Its namespaces exist and it waits, before anything else, for [`ToShim::Proceed`] (sent
    /// only for a container whose config asks for wiring).
    Wire { pid: i32 },
    /// The step's program was exec'd.
    Started,
    /// The container could not start.
    Failed { code: i32, message: String },
    /// It ended (128 + signal when killed).
    Exited { code: i32 },
}

/// Worker → helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum ToShim {
    /// The network is wired: the container goes on.
    Proceed,
    /// It could not be: the container stops before its program starts.
    Abort,
}

/// One message as a line; a message that cannot be encoded is never sent half-written.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(msg).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Writes one message (the helper's side: blocking).
pub fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    w.write_all(&encode(msg))
}

/// Reads one message (the helper's side: blocking); `None` at end of input or on a line that is
/// not one.
pub fn recv<T: for<'de> Deserialize<'de>>(r: &mut impl BufRead) -> Option<T> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    serde_json::from_str(line.trim_end()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_each_and_read_back_as_sent() {
        let msgs = [
            FromShim::Created { pid: 42 },
            FromShim::Wire { pid: 42 },
            FromShim::Started,
            FromShim::Failed {
                code: 127,
                message: "cannot exec `x`:\nnot found".into(),
            },
            FromShim::Exited { code: 137 },
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            send(&mut wire, m).unwrap();
        }
        assert_eq!(wire.iter().filter(|b| **b == b'\n').count(), msgs.len());
        let mut r = std::io::BufReader::new(&wire[..]);
        for m in &msgs {
            assert_eq!(recv::<FromShim>(&mut r).as_ref(), Some(m));
        }
        assert_eq!(recv::<FromShim>(&mut r), None, "end of input");
        let mut r = std::io::BufReader::new(&b"{\"msg\":\"proceed\"}\ngarbage\n"[..]);
        assert_eq!(recv::<ToShim>(&mut r), Some(ToShim::Proceed));
        assert_eq!(recv::<ToShim>(&mut r), None, "not a message");
    }
}

//! The compiler from verdicts to classic BPF, as seccomp runs it: a binary search over ranges
//! of system-call numbers with one verdict, each range ending in the instructions that decide it.

use super::profile::{AF_VSOCK, CLONE_NAMESPACE_FLAGS, PERSONALITIES};
use super::Verdict;
use std::collections::BTreeMap;

// Classic BPF, as seccomp runs it.
pub(super) const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub(super) const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub(super) const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub(super) const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
pub(super) const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
pub(super) const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`: the number, the architecture, the first argument's low word.
pub(super) const NR: u32 = 0;
pub(super) const ARCH: u32 = 4;
pub(super) const ARG0_LOW: u32 = 16;
pub(super) const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub(super) const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
pub(super) const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
pub(super) const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

pub(super) fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

pub(super) fn ret(k: u32) -> libc::sock_filter {
    op(RET, 0, 0, k)
}

/// The instructions that decide a call of one verdict (the number already matched).
pub(super) fn leaf(v: Verdict) -> Vec<libc::sock_filter> {
    match v {
        Verdict::Allow => vec![ret(ALLOW)],
        Verdict::Deny => vec![ret(EPERM)],
        Verdict::NoSys => vec![ret(ENOSYS)],
        Verdict::NotVsock => vec![
            op(LD_W_ABS, 0, 0, ARG0_LOW),
            op(JEQ, 0, 1, AF_VSOCK),
            ret(EPERM),
            ret(ALLOW),
        ],
        Verdict::Personality => {
            let n = PERSONALITIES.len();
            let mut out = vec![op(LD_W_ABS, 0, 0, ARG0_LOW)];
            for (i, p) in PERSONALITIES.iter().enumerate() {
                // On a match, over the remaining tests and the refusal to the allow.
                out.push(op(JEQ, (n - i) as u8, 0, *p));
            }
            out.push(ret(EPERM));
            out.push(ret(ALLOW));
            out
        }
        Verdict::NoNamespaces => vec![
            op(LD_W_ABS, 0, 0, ARG0_LOW),
            op(JSET, 1, 0, CLONE_NAMESPACE_FLAGS),
            ret(ALLOW),
            ret(EPERM),
        ],
    }
}

/// Ranges of numbers `[from, next from)` with one verdict, covering every number: a verdict
/// that looks at arguments gets a range of its own.
pub(super) fn ranges(verdicts: &BTreeMap<u32, Verdict>) -> Vec<(u32, Verdict)> {
    let mut out: Vec<(u32, Verdict)> = Vec::new();
    let push = |out: &mut Vec<(u32, Verdict)>, from: u32, v: Verdict| {
        let plain = matches!(v, Verdict::Allow | Verdict::Deny | Verdict::NoSys);
        if plain && out.last().is_some_and(|&(_, last)| last == v) {
            return; // the previous range goes on
        }
        out.push((from, v));
    };
    let mut next = 0u32;
    for (&n, &v) in verdicts {
        if n > next {
            push(&mut out, next, Verdict::Deny);
        }
        push(&mut out, n, v);
        next = n + 1;
    }
    push(&mut out, next, Verdict::Deny);
    out
}

/// A binary search over `ranges` (each starting where it says, ending where the next starts).
pub(super) fn search(ranges: &[(u32, Verdict)]) -> Vec<libc::sock_filter> {
    if ranges.len() == 1 {
        return leaf(ranges[0].1);
    }
    let mid = ranges.len() / 2;
    let lower = search(&ranges[..mid]);
    let upper = search(&ranges[mid..]);
    let mut out = Vec::with_capacity(lower.len() + upper.len() + 2);
    match u8::try_from(lower.len()) {
        // At or above the middle range's start: over the lower half.
        Ok(skip) => out.push(op(JGE, skip, 0, ranges[mid].0)),
        Err(_) => {
            out.push(op(JGE, 1, 0, ranges[mid].0));
            out.push(op(JA, 0, 0, lower.len() as u32));
        }
    }
    out.extend(lower);
    out.extend(upper);
    out
}

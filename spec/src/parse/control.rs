//! The control settings a step or component may carry: when, forEach, parallelism, retry,
//! timeout, cache, daemon; and durations.

use super::*;

pub(super) fn control(f: &Fields, d: &mut Diagnostics) -> Control {
    Control {
        when: f.string("when", d),
        for_each: f.get("forEach").map(|n| Spanned::new(n.to_json(), n.span)),
        parallelism: f.get("parallelism").and_then(|n| match n.kind {
            Kind::Int(i) if i > 0 => Some(Spanned::new(i as u32, n.span)),
            _ => {
                d.error(n.span, "`parallelism` must be a positive whole number");
                None
            }
        }),
        retry: f.get("retry").and_then(|n| retry(n, d)),
        timeout: f.get("timeout").and_then(|n| duration(n, "timeout", d)),
        cache: f.get("cache").and_then(|n| match &n.kind {
            Kind::Bool(b) => Some(Spanned::new(
                Cache {
                    enabled: *b,
                    max_age_secs: None,
                    key: None,
                },
                n.span,
            )),
            Kind::Map(_) => {
                let c = Fields::new(n, "cache", &[&["enabled", "maxAge"]], d)?;
                let enabled = !matches!(c.get("enabled").map(|n| &n.kind), Some(Kind::Bool(false)));
                let max_age_secs = c
                    .get("maxAge")
                    .and_then(|n| parse_duration_ms(&n.scalar_text().unwrap_or_default()))
                    .map(|ms| ms / 1000);
                Some(Spanned::new(
                    Cache {
                        enabled,
                        max_age_secs,
                        key: None,
                    },
                    n.span,
                ))
            }
            _ => {
                d.error(n.span, "`cache` must be true, false or {enabled, maxAge}");
                None
            }
        }),
        daemon: f.get("daemon").and_then(|n| daemon(n, d)),
    }
}

/// `daemon: true`, `false` or `{port: N}`.
fn daemon(n: &Node, d: &mut Diagnostics) -> Option<Spanned<Daemon>> {
    let shape = "`daemon` must be true, false or {port: N} (the TCP port it serves on, which the steps after it wait for)";
    match &n.kind {
        Kind::Bool(true) => Some(Spanned::new(Daemon::default(), n.span)),
        Kind::Bool(false) => None,
        Kind::Map(_) => {
            let f = Fields::new(n, "daemon", &[&["port"]], d)?;
            let port = match f.get("port") {
                None => None,
                Some(p) => match p.kind {
                    Kind::Int(i) if (1..=65535).contains(&i) => Some(i as u16),
                    _ => {
                        d.error(
                            p.span,
                            format!(
                                "`port` must be a TCP port (1 to 65535), found {}",
                                p.describe()
                            ),
                        );
                        return None;
                    }
                },
            };
            Some(Spanned::new(Daemon { port }, n.span))
        }
        _ => {
            d.error(n.span, format!("{shape}, found {}", n.describe()));
            None
        }
    }
}

pub(super) fn duration(n: &Node, what: &str, d: &mut Diagnostics) -> Option<Spanned<u64>> {
    let text = n.scalar_text().unwrap_or_default();
    let ms = parse_duration_ms(&text);
    if ms.is_none() {
        d.error(
            n.span,
            format!("`{what}` must be a duration such as 30s, 10m or 2h, found `{text}`"),
        );
    }
    ms.map(|ms| Spanned::new(ms, n.span))
}

fn retry(node: &Node, d: &mut Diagnostics) -> Option<Spanned<Retry>> {
    let mut r = Retry {
        limit: 0,
        backoff_initial_ms: 1000,
        backoff_factor: 2.0,
        backoff_max_ms: 60_000,
    };
    let shape = "`retry` must be a number of retries or {limit, backoff}";
    match &node.kind {
        Kind::Int(i) if *i >= 0 => r.limit = *i as u32,
        Kind::Map(_) => {
            let f = Fields::new(node, "retry", &[&["limit", "backoff"]], d)?;
            match f.get("limit").map(|n| (&n.kind, n.span)) {
                Some((Kind::Int(i), _)) if *i >= 0 => r.limit = *i as u32,
                Some((_, span)) => d.error(span, "`limit` must be a number of retries (0 or more)"),
                None => {}
            }
            if let Some(b) = f.get("backoff") {
                let b = Fields::new(b, "backoff", &[&["initial", "factor", "max"]], d)?;
                let dur = |k: &str, d: &mut Diagnostics| {
                    let n = b.get(k)?;
                    let text = n.scalar_text().unwrap_or_default();
                    let v = parse_duration_ms(&text);
                    if v.is_none() {
                        d.error(
                            n.span,
                            format!(
                                "`{k}` must be a duration such as 500ms, 10s or 2m, found `{text}`"
                            ),
                        );
                    }
                    v
                };
                r.backoff_initial_ms = dur("initial", d).unwrap_or(r.backoff_initial_ms);
                r.backoff_max_ms = dur("max", d).unwrap_or(r.backoff_max_ms);
                if let Some(n) = b.get("factor") {
                    match n.to_json().as_f64() {
                        Some(x) if x >= 1.0 => r.backoff_factor = x,
                        _ => d.error(n.span, "`factor` must be a number of at least 1"),
                    }
                }
            }
        }
        _ => {
            d.error(node.span, shape);
            return None;
        }
    }
    Some(Spanned::new(r, node.span))
}

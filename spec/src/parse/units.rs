//! Quantities as people write them: cores, sizes, durations.

/// `2`, `0.5` or `500m` cores, in thousandths of a core.
pub fn parse_cpu(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(m) = s.strip_suffix('m') {
        return m.parse::<u64>().ok().filter(|v| *v > 0);
    }
    let cores = s
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)?;
    Some((cores * 1000.0).round() as u64)
}

/// A size for people to read: `512 bytes`, `1.5 KiB`, `64.0 MiB`, `2.0 GiB`.
pub fn format_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

/// Kubernetes-style quantities: `512Mi`, `2Gi`, `1G`, `1000000`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let units: &[(&str, u64)] = &[
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("K", 1_000),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, mult) in units {
        if let Some(n) = s.strip_suffix(suffix) {
            let n = n.trim();
            // Whole numbers stay exact; fractions (`1.5Gi`) go through f64.
            if let Ok(v) = n.parse::<u64>() {
                return v.checked_mul(*mult).filter(|v| *v > 0);
            }
            let v = n
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)?
                * *mult as f64;
            // Past u64 is not a size (a cast would saturate silently).
            return (v < u64::MAX as f64).then_some(v as u64).filter(|v| *v > 0);
        }
    }
    s.parse::<u64>().ok().filter(|v| *v > 0)
}

/// `500ms`, `30s`, `10m`, `2h`, `1d`, `1h30m` (Go's and Kubernetes' compact form), or a bare number
/// of seconds. One that does not fit in 64 bits of milliseconds is not a duration. The form is
/// checked here, the arithmetic is humantime's.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return secs.checked_mul(1000);
    }
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let unit = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(&rest[digits..], |u| &rest[digits..digits + u]);
        if digits == 0 || !matches!(unit, "ms" | "s" | "m" | "h" | "d") {
            return None;
        }
        rest = &rest[digits + unit.len()..];
    }
    let d = humantime::parse_duration(s).ok()?;
    u64::try_from(d.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_that_overflow_are_refused_not_wrapped() {
        assert_eq!(parse_bytes("512Mi"), Some(512 << 20));
        assert_eq!(parse_bytes("1.5Ki"), Some(1536));
        assert_eq!(parse_bytes("2G"), Some(2_000_000_000));
        assert_eq!(parse_bytes("16777216Ti"), None, "2^64 bytes");
        assert_eq!(parse_bytes("1e30Ti"), None);
        assert_eq!(parse_bytes("0Mi"), None);
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("2d"), Some(172_800_000));
        assert_eq!(parse_duration_ms("30"), Some(30_000));
        assert_eq!(parse_duration_ms("18446744073709552s"), None);
        assert_eq!(parse_duration_ms("18446744073709552"), None);
        assert_eq!(parse_duration_ms("-1s"), None);
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(parse_duration_ms(""), None);
    }
}

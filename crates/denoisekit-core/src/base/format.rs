//! Numbers and sizes as users read and type them.

/// Formats a number the way users type it: `1.5`, `0`, `inf`.
pub fn fmt_num(x: f64) -> String {
    if x == f64::INFINITY {
        "inf".into()
    } else if x == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{x}")
    }
}

/// Parses `123`, `512M`, `8G`, `1.5T` (binary units; a trailing `B`/`iB` is accepted).
///
/// # Errors
/// A description of the accepted form.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let expected = || "a size in bytes such as 4000000000, 512M, 8G or 1.5T".to_string();
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 10),
        Some('M') => (&t[..t.len() - 1], 20),
        Some('G') => (&t[..t.len() - 1], 30),
        Some('T') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let x: f64 = num.trim().parse().map_err(|_| expected())?;
    let bytes = x * (1u64 << shift) as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(expected());
    }
    Ok(bytes as u64)
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `17 bytes`.
pub fn fmt_bytes(b: u64) -> String {
    scaled(b, |x| x)
}

/// [`fmt_bytes`] rounded up, never below `b`: for a size to reach (a limit to set), where
/// rounding to nearest could name one that still falls short.
pub fn fmt_bytes_up(b: u64) -> String {
    scaled(b, |x| (x * 10.0).ceil() / 10.0)
}

/// `b` in the largest binary unit under it, `round` applied before the one decimal shown.
fn scaled(b: u64, round: impl Fn(f64) -> f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} bytes");
    }
    let mut x = b as f64 / 1024.0;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    format!("{:.1} {}", round(x), UNITS[u])
}

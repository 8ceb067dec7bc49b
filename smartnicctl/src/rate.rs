//! Rates with units on the command line, one grammar for `vf set` and `devlink rate`: `10Gbit`,
//! `500Mbit`, `64kbit`, `1000bit`, also `bps`/`Gbps`-style and byte units (`125MB` = 125
//! megabytes per second). Decimal prefixes, as `tc` and `devlink` use them. A plain number keeps
//! the unit the command always had (Mbit/s for `vf set`, bytes/s for `devlink rate`).

/// Bits per second of `s`, or `None` when `s` is a plain number.
fn bits_per_sec(s: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if unit.is_empty() {
        return Ok(None);
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (e.g. 10Gbit, 500Mbit)"))?;
    let unit_l = unit.to_ascii_lowercase();
    let (prefix, rest) = match unit_l.chars().next() {
        Some('k') => (1e3, &unit_l[1..]),
        Some('m') => (1e6, &unit_l[1..]),
        Some('g') => (1e9, &unit_l[1..]),
        Some('t') => (1e12, &unit_l[1..]),
        _ => (1.0, unit_l.as_str()),
    };
    let per_bit = match (rest, unit.ends_with('B') || unit.ends_with("Bps")) {
        (_, true) => 8.0,
        ("bit" | "bps" | "bit/s" | "b", false) => 1.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown rate unit {unit:?} (use bit, kbit, Mbit, Gbit or byte units kB, MB, GB)"
            ));
        }
    };
    Ok(Some((value * prefix * per_bit).round() as u64))
}

/// `vf set --max-tx-rate`: Mbit/s (the kernel's unit for VF rates).
pub(crate) fn parse_mbit(s: &str) -> Result<u32, String> {
    match bits_per_sec(s)? {
        None => s
            .parse()
            .map_err(|_| format!("{s:?} is not a rate (e.g. 10Gbit, 500Mbit)")),
        Some(b) if b % 1_000_000 != 0 => Err(format!("{s:?}: VF rates are set in whole Mbit/s")),
        Some(b) => u32::try_from(b / 1_000_000).map_err(|_| format!("{s:?} is too large")),
    }
}

/// `devlink rate --tx-share/--tx-max`: bytes per second (devlink's unit).
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    match bits_per_sec(s)? {
        None => s
            .parse()
            .map_err(|_| format!("{s:?} is not a rate (e.g. 10Gbit, 500Mbit)")),
        Some(b) => Ok(b / 8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_read_as_tc_reads_them() {
        assert_eq!(parse_mbit("10Gbit"), Ok(10_000));
        assert_eq!(parse_mbit("500Mbit"), Ok(500));
        assert_eq!(parse_mbit("100"), Ok(100));
        assert_eq!(parse_mbit("1.5Gbit"), Ok(1_500));
        assert!(parse_mbit("64kbit").is_err());
        assert!(parse_mbit("10Gfoo").is_err());
        assert_eq!(parse_bytes("10Gbit"), Ok(1_250_000_000));
        assert_eq!(parse_bytes("125MB"), Ok(125_000_000));
        assert_eq!(parse_bytes("1000"), Ok(1000));
    }
}

//! Docker reports times as RFC 3339 strings; berth keeps seconds since the epoch.

/// Parses an RFC 3339 time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`) to Unix
/// seconds. Docker's "never" (`0001-01-01T00:00:00Z`), any time before the
/// epoch and anything unreadable give `None`.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let time: jiff::Timestamp = text.parse().ok()?;
    Some(time.as_second()).filter(|secs| *secs >= 0)
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;

    #[test]
    fn docker_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-21T22:45:00.034954849Z"), Some(1_795_301_100));
        assert_eq!(parse_rfc3339("2026-11-21T23:45:00+01:00"), Some(1_795_301_100));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}

//! RFC 3339 instants: parsing what users type (`--expires-at`, with `Z` or a
//! `±HH:MM` offset) and what the API returns, and formatting in UTC.

use std::time::{Duration, SystemTime};

/// Parses an RFC 3339 timestamp such as `2025-06-01T12:00:00Z`,
/// `2025-06-01T14:00:00+02:00` or `2025-06-01T12:00:00.5Z`.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    let (local, offset_secs) = split_offset(text)
        .ok_or_else(|| format!("{text:?} has no time zone (end it with Z or ±HH:MM)"))?;
    let utc = format!("{local}Z");
    let at =
        humantime::parse_rfc3339(&utc).map_err(|e| format!("{text:?} is not RFC 3339: {e}"))?;
    let shift = Duration::from_secs(offset_secs.unsigned_abs());
    // A local time east of UTC (+02:00) is earlier in UTC.
    let shifted = if offset_secs >= 0 {
        at.checked_sub(shift)
    } else {
        at.checked_add(shift)
    };
    shifted.ok_or_else(|| format!("{text:?} is out of range"))
}

/// Formats `at` as RFC 3339 in UTC with whole seconds: `2025-06-01T12:00:00Z`.
pub fn format_rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Splits `…Z` or `…±HH:MM` into the local part and the offset in seconds east of UTC.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    if let Some(local) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return Some((local, 0));
    }
    if text.len() < 6 || !text.is_char_boundary(text.len() - 6) {
        return None;
    }
    let (local, offset) = text.split_at(text.len() - 6);
    let bytes = offset.as_bytes();
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if bytes[3] != b':' || !local.contains('T') && !local.contains('t') {
        return None;
    }
    let hours: i64 = offset[1..3].parse().ok()?;
    let minutes: i64 = offset[4..6].parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((local, sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn utc_and_offsets_name_the_same_instant() {
        let noon = parse_rfc3339("2025-06-01T12:00:00Z").unwrap();
        assert_eq!(noon, at(1_748_779_200));
        assert_eq!(parse_rfc3339("2025-06-01T14:00:00+02:00").unwrap(), noon);
        assert_eq!(parse_rfc3339("2025-06-01T06:30:00-05:30").unwrap(), noon);
        assert_eq!(
            parse_rfc3339("2025-06-01T12:00:00.250Z").unwrap(),
            noon + Duration::from_millis(250)
        );
    }

    #[test]
    fn rejects_missing_zone_and_garbage() {
        assert!(parse_rfc3339("2025-06-01T12:00:00").is_err());
        assert!(parse_rfc3339("tomorrow").is_err());
        assert!(parse_rfc3339("2025-13-01T12:00:00Z").is_err());
        assert!(parse_rfc3339("2025-06-01T12:00:00+25:00").is_err());
    }

    #[test]
    fn formats_in_utc_with_seconds() {
        assert_eq!(format_rfc3339(at(1_748_779_200)), "2025-06-01T12:00:00Z");
    }
}

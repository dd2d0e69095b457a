//! Human-friendly renderings of sizes, instants and durations for the table
//! output: `12.3 MiB`, `5 minutes ago`, `in 3 hours`.

use std::time::{Duration, SystemTime};

/// A byte count in binary units with one decimal: `0 B`, `512 B`, `8.0 KiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `then` relative to `now`: `just now`, `5 minutes ago`, `in 2 hours`.
pub fn relative(then: SystemTime, now: SystemTime) -> String {
    match now.duration_since(then) {
        Ok(past) if past < Duration::from_secs(1) => "just now".to_string(),
        Ok(past) => format!("{} ago", span(past)),
        Err(future) => {
            let ahead = future.duration();
            if ahead < Duration::from_secs(1) {
                "just now".to_string()
            } else {
                format!("in {}", span(ahead))
            }
        }
    }
}

/// A duration in one unit, rounded to the nearest: `1 second`, `59 seconds`,
/// `2 minutes`, `3 hours`, `3 days`. A unit is used from 1.5 of it upwards
/// (90 seconds, 90 minutes, 36 hours), so `71h59m` reads `3 days`, not `2 days`.
pub fn span(d: Duration) -> String {
    let secs = d.as_secs();
    let unit_secs = match secs {
        0..90 => 1,
        90..5_400 => 60,
        5_400..129_600 => 3_600,
        _ => 86_400,
    };
    let n = (secs + unit_secs / 2) / unit_secs;
    let unit = match unit_secs {
        1 => "second",
        60 => "minute",
        3_600 => "hour",
        _ => "day",
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_binary_units_with_one_decimal() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(8192), "8.0 KiB");
        assert_eq!(bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn relative_times_read_naturally_both_ways() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago = |s| now - Duration::from_secs(s);
        let ahead = |s| now + Duration::from_secs(s);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(ago(1), now), "1 second ago");
        assert_eq!(relative(ago(59), now), "59 seconds ago");
        assert_eq!(relative(ago(60), now), "60 seconds ago");
        assert_eq!(relative(ago(90), now), "2 minutes ago");
        assert_eq!(relative(ago(150), now), "3 minutes ago");
        assert_eq!(relative(ago(3_600), now), "60 minutes ago");
        assert_eq!(relative(ago(7_200), now), "2 hours ago");
        assert_eq!(relative(ago(3 * 86_400 + 5), now), "3 days ago");
        assert_eq!(relative(ahead(72 * 3_600), now), "in 3 days");
        assert_eq!(relative(ahead(72 * 3_600 - 60), now), "in 3 days");
        assert_eq!(relative(ahead(30 * 3_600), now), "in 30 hours");
    }
}

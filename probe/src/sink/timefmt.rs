//! Time formatting shared by the text and JSON outputs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch as a float with microsecond resolution.
#[must_use]
pub fn epoch_seconds(time: SystemTime) -> f64 {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Rounded to whole microseconds so that the printed value stays short and exact.
    #[allow(clippy::cast_precision_loss, reason = "epoch microseconds stay below 2^53 until year 2255")]
    let micros = (d.as_secs() * 1_000_000 + u64::from(d.subsec_micros())) as f64;
    micros / 1e6
}

/// `2026-11-22T00:52:01.123456Z` (UTC, microseconds).
#[must_use]
pub fn rfc3339_micros(time: SystemTime) -> String {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_micros(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_795_308_721_123_456);
        assert_eq!(rfc3339_micros(t), "2026-11-22T00:52:01.123456Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339_micros(leap)[..10], "2000-02-29");
        assert!((epoch_seconds(t) - 1_795_308_721.123_456).abs() < 1e-6);
    }
}

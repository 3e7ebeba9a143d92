//! Time: the Unix epoch in milliseconds and seconds, RFC 3339, instants of epoch times,
//! the Lambda invocation's deadline, and durations as people write them (`30m`). Reads
//! the system clock; instants are `tokio::time` ones, so tests can pause time.

use std::time::Duration;

use tokio::time::Instant;

/// Milliseconds since the Unix epoch, now (0 before 1970).
pub fn epoch_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the Unix epoch, now (0 before 1970).
pub fn epoch_seconds() -> u64 {
    epoch_millis() / 1000
}

/// RFC 3339 of seconds since the Unix epoch.
pub fn rfc3339(epoch_seconds: u64) -> String {
    use aws_sdk_autoscaling::primitives::{DateTime, DateTimeFormat};
    DateTime::from_secs(i64::try_from(epoch_seconds).unwrap_or(i64::MAX))
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default()
}

/// Values of `Lambda-Runtime-Deadline-Ms` below this (2001-09-09) cannot be an epoch
/// deadline of a current invocation.
const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;

/// The instant of a Lambda `Context.deadline`: milliseconds since the Unix epoch, as the
/// Lambda service sends it in `Lambda-Runtime-Deadline-Ms`. A value too small to be an
/// epoch time is read as milliseconds from now: cargo-lambda's local Runtime API (1.9)
/// sends the function timeout there (`600000`).
pub fn invocation_deadline(deadline_ms: u64) -> Instant {
    if deadline_ms < EPOCH_MS_FLOOR {
        return Instant::now() + Duration::from_millis(deadline_ms);
    }
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(epoch_millis()))
}

/// The instant of a time given in milliseconds since the Unix epoch.
pub fn instant_of(epoch_ms: u64) -> Instant {
    let now = Instant::now();
    let now_ms = epoch_millis();
    if epoch_ms >= now_ms {
        now + Duration::from_millis(epoch_ms - now_ms)
    } else {
        now.checked_sub(Duration::from_millis(now_ms - epoch_ms))
            .unwrap_or(now)
    }
}

/// A duration given as `30m`, `90s`, `1h` or a number of seconds.
///
/// # Errors
/// The text, when it is none of these or is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use 90s, 30m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{text:?} is not a duration: use 90s, 30m or 1h")),
    };
    if secs == 0 {
        return Err(format!("{text:?}: the duration must be more than zero"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(1_795_251_600), "2026-11-21T09:00:00Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "m", "0", "10d", "-5m", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_are_read_as_epoch_or_as_a_duration() {
        let now_ms = epoch_millis();
        let epoch = invocation_deadline(now_ms + 900_000) - Instant::now();
        assert!(
            epoch > Duration::from_secs(899) && epoch <= Duration::from_secs(900),
            "{epoch:?}"
        );
        assert_eq!(
            invocation_deadline(600_000) - Instant::now(),
            Duration::from_secs(600)
        );
    }
}

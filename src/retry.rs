//! When a failed upstream call is repeated and how long to wait first: the
//! one policy both the tool loop's client and the transparent path follow.
//!
//! Only before anything reached the client, and only answers that say "not
//! now": no connection at all, 429 and 503 for every request (the upstream
//! did nothing), and 502 and 504 only for requests that may be repeated
//! safely (idempotent methods, and inference calls that create nothing
//! upstream): a file upload, a batch or a fine-tuning job that a gateway
//! answered 502 for may exist all the same. A wait is never longer than
//! [`RetryPolicy::max_delay`]; an upstream whose `Retry-After` asks for
//! longer gets no early retry: its answer goes to the client at once.

use std::time::{Duration, SystemTime};

use http::Method;

use crate::settings::RetryPolicy;

/// POSTs that only compute an answer: repeating one costs tokens, nothing more.
const INFERENCE_PATHS: [&str; 4] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/moderations"];

/// Whether `method` on `path` (the client's path) may be sent twice without harm.
pub fn repeatable(method: &Method, path: &str) -> bool {
    method.is_idempotent() || (method == Method::POST && INFERENCE_PATHS.contains(&path))
}

/// Whether an upstream answer with this status is worth repeating, for a
/// request that is `repeatable` or not.
pub fn retryable_status(status: u16, repeatable: bool) -> bool {
    match status {
        429 | 503 => true,
        502 | 504 => repeatable,
        _ => false,
    }
}

/// The wait before retry number `retry` (0 for the first): the upstream's
/// `Retry-After` when it gave a usable one, else exponential backoff with
/// equal jitter. `None` when the upstream asks for more than
/// `policy.max_delay`: then there is no retry.
pub fn delay(policy: &RetryPolicy, retry: u32, retry_after: Option<&str>) -> Option<Duration> {
    if let Some(asked) = retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())) {
        return (asked <= policy.max_delay).then_some(asked);
    }
    let base = policy.backoff.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX)).min(policy.max_delay);
    // Equal jitter: half the backoff is kept, so a struggling upstream is never
    // hit again at once; the random half spreads clients that failed together.
    let half = base / 2;
    Some(half + half.mul_f64(unit_random()))
}

/// `Retry-After` as delay-seconds or an HTTP-date (IMF-fixdate, the form
/// senders must use); a date in the past means no wait. Other forms: `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_imf_fixdate(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn parse_imf_fixdate(value: &str) -> Option<SystemTime> {
    let rest = value.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<u64> = time.split(':').map(str::parse).collect::<Result<_, _>>().ok()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A number in [0, 1) from the process's random source (uuid's fast RNG).
fn unit_random() -> f64 {
    (uuid::Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff_ms: u64, max_s: u64) -> RetryPolicy {
        RetryPolicy { retries: 2, backoff: Duration::from_millis(backoff_ms), max_delay: Duration::from_secs(max_s) }
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_and_is_capped() {
        let p = policy(500, 10);
        for _ in 0..200 {
            let first = delay(&p, 0, None).unwrap_or_default();
            assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500), "{first:?}");
            let third = delay(&p, 2, None).unwrap_or_default();
            assert!(third >= Duration::from_secs(1) && third <= Duration::from_secs(2), "{third:?}");
            let late = delay(&p, 40, None).unwrap_or_default();
            assert!(late >= Duration::from_secs(5) && late <= Duration::from_secs(10), "{late:?}");
        }
    }

    #[test]
    fn retry_after_wins_and_past_the_cap_means_no_retry() {
        let p = policy(500, 10);
        assert_eq!(delay(&p, 0, Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(delay(&p, 0, Some("10")), Some(Duration::from_secs(10)));
        assert_eq!(delay(&p, 0, Some("3600")), None);
        let d = delay(&p, 0, Some("soon")).unwrap_or(Duration::MAX);
        assert!(d <= Duration::from_millis(500), "an unreadable value falls back to backoff: {d:?}");
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO), "past: no wait");
        assert_eq!(
            parse_retry_after("Thu, 01 Mar 2024 00:00:00 GMT", SystemTime::UNIX_EPOCH).map(|d| d.as_secs()),
            Some(1_709_251_200)
        );
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), None);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 25:49:37 GMT", now), None);
    }

    #[test]
    fn only_not_now_statuses_are_retried_and_502_504_only_when_repeatable() {
        assert!([429, 502, 503, 504].into_iter().all(|s| retryable_status(s, true)));
        assert!([429, 503].into_iter().all(|s| retryable_status(s, false)));
        assert!(![502, 504].into_iter().any(|s| retryable_status(s, false)));
        assert!(![200, 400, 401, 404, 500, 501].into_iter().any(|s| retryable_status(s, true)));
    }

    #[test]
    fn what_may_be_sent_twice() {
        assert!(repeatable(&Method::GET, "/v1/batches/b1"));
        assert!(repeatable(&Method::DELETE, "/v1/files/f1"));
        assert!(repeatable(&Method::POST, "/v1/chat/completions"));
        assert!(repeatable(&Method::POST, "/v1/embeddings"));
        assert!(!repeatable(&Method::POST, "/v1/batches"));
        assert!(!repeatable(&Method::POST, "/v1/files"));
        assert!(!repeatable(&Method::PATCH, "/v1/x"));
    }
}

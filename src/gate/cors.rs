//! CORS: which origins may call the proxy from a browser, and the headers that
//! say so. The proxy answers preflights itself and overrides whatever CORS
//! headers the upstream sends, so the policy is the operator's, not the upstream's.

use http::HeaderValue;
use pingora::http::ResponseHeader;

use crate::settings::AllowedOrigins;

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const DEFAULT_ALLOW_HEADERS: &str = "authorization, content-type, x-request-id, openai-organization, openai-project";
const EXPOSE_HEADERS: &str = "x-request-id, x-session-id, retry-after";

/// The `Access-Control-Allow-Origin` value for a request from `origin`, or
/// `None` when that origin is not allowed (or the request had no `Origin`).
pub fn allow_origin(policy: &AllowedOrigins, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    match policy {
        AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
        AllowedOrigins::List(list) => {
            let origin = origin?;
            let text = origin.to_str().ok()?;
            list.iter().any(|o| o.eq_ignore_ascii_case(text)).then(|| origin.clone())
        }
    }
}

/// Headers on every response: the origin grant, `Vary: Origin` when the grant
/// depends on it, and the headers a browser script may read.
pub fn decorate(resp: &mut ResponseHeader, policy: &AllowedOrigins, allow: Option<&HeaderValue>) {
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-max-age",
    ] {
        resp.remove_header(name);
    }
    if let AllowedOrigins::List(_) = policy {
        let _ = resp.append_header("vary", "Origin");
    }
    if let Some(allow) = allow {
        let _ = resp.insert_header("access-control-allow-origin", allow.clone());
        let _ = resp.insert_header("access-control-expose-headers", EXPOSE_HEADERS);
    }
}

/// Headers of the preflight answer: methods, the headers the browser asked
/// for (echoed, so custom `x-` headers work), and how long to cache it.
pub fn preflight(resp: &mut ResponseHeader, requested_headers: Option<&HeaderValue>, max_age_seconds: u64) {
    let _ = resp.insert_header("access-control-allow-methods", ALLOW_METHODS);
    let headers = requested_headers.cloned().unwrap_or(HeaderValue::from_static(DEFAULT_ALLOW_HEADERS));
    let _ = resp.insert_header("access-control-allow-headers", headers);
    let _ = resp.insert_header("access-control-max-age", max_age_seconds.to_string());
    let _ = resp.append_header("vary", "Access-Control-Request-Headers");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_origin_is_echoed_and_others_refused() {
        let policy = AllowedOrigins::List(vec!["https://app.example".into()]);
        let ok = HeaderValue::from_static("https://app.example");
        let bad = HeaderValue::from_static("https://evil.example");
        assert_eq!(allow_origin(&policy, Some(&ok)), Some(ok.clone()));
        assert_eq!(allow_origin(&policy, Some(&bad)), None);
        assert_eq!(allow_origin(&policy, None), None);
        assert_eq!(allow_origin(&AllowedOrigins::Any, None), Some(HeaderValue::from_static("*")));
    }
}

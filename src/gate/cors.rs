//! CORS: which origins may call the proxy from a browser, and the headers that
//! say so. The proxy answers preflights itself and overrides whatever CORS
//! headers the upstream sends, so the policy is the operator's, not the upstream's.

use http::{header, HeaderValue};
use pingora::http::ResponseHeader;

use crate::settings::AllowedOrigins;

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const DEFAULT_ALLOW_HEADERS: &str = "authorization, content-type, x-request-id, openai-organization, openai-project";
const EXPOSE_HEADERS: &str = "x-request-id, x-session-id, retry-after";

/// The `Access-Control-Allow-Origin` value for a request from `origin`, or
/// `None` when that origin is not allowed or the request had no `Origin`
/// (not a browser's cross-origin call: nothing to grant).
pub fn allow_origin(policy: &AllowedOrigins, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    let origin = origin?;
    match policy {
        AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
        AllowedOrigins::List(list) => {
            let text = origin.to_str().ok()?;
            list.iter().any(|o| o.eq_ignore_ascii_case(text)).then(|| origin.clone())
        }
    }
}

const CORS_HEADERS: [&str; 6] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
];

/// Headers on every response: the origin grant, `Vary: Origin` when the
/// grant depends on it, and the headers a browser script may read. CORS
/// headers from the upstream are dropped: the policy is the operator's.
pub fn decorate(resp: &mut ResponseHeader, policy: &AllowedOrigins, allow: Option<&HeaderValue>) {
    // The common case (no browser, upstream sends no CORS headers) costs one scan.
    let upstream_cors = resp.headers.keys().any(|k| k.as_str().starts_with("access-control-"));
    if upstream_cors {
        for name in CORS_HEADERS {
            resp.remove_header(name);
        }
    }
    if let AllowedOrigins::List(_) = policy {
        let _ = resp.append_header(header::VARY, HeaderValue::from_static("Origin"));
    }
    if let Some(allow) = allow {
        let _ = resp.insert_header(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow.clone());
        let _ = resp.insert_header(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
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
        assert_eq!(allow_origin(&AllowedOrigins::Any, Some(&bad)), Some(HeaderValue::from_static("*")));
        assert_eq!(allow_origin(&AllowedOrigins::Any, None), None);
    }
}

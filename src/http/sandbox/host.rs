//! The sandbox's one guard: every request must name loopback or a configured host in its `Host`
//! header, so a page on another site cannot reach the console by pointing its own name at
//! 127.0.0.1 (DNS rebinding).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Refuses (403) a request whose `Host` is neither loopback nor one of `public_hosts`, before
/// anything reads or changes state: a browser that reached us through a name an attacker's DNS
/// points at 127.0.0.1 sends that name.
pub(super) async fn host_guard(
    State(public_hosts): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    if host_allowed(request.headers(), &public_hosts) {
        next.run(request).await
    } else {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "禁止访问：沙盒控制台只接受本机地址（127.0.0.1、localhost）或配置的访问地址（[dashboard] base_url）",
        )
            .into_response()
    }
}

/// One `Host` header naming loopback (`127.0.0.1`, `localhost`, `[::1]`, any port) or one of
/// `public_hosts`.
fn host_allowed(headers: &HeaderMap, public_hosts: &[String]) -> bool {
    let mut values = headers.get_all(header::HOST).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Some(host) = value.to_str().ok().and_then(host_name) else {
        return false;
    };
    host == "localhost"
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || public_hosts.contains(&host)
}

/// The host of a `Host` header value (`name`, `name:port`, `[v6]`, `[v6]:port`), normalised;
/// None when it is not of that shape.
pub(super) fn host_name(value: &str) -> Option<String> {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || port_suffix(after)) {
            return None;
        }
        inside
    } else {
        match value.split_once(':') {
            Some((name, port)) if port_suffix(&format!(":{port}")) => name,
            Some(_) => return None,
            None => value,
        }
    };
    (!host.is_empty()).then(|| normal_host(host))
}

fn port_suffix(text: &str) -> bool {
    text.strip_prefix(':')
        .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// Lowercase, without IPv6 brackets or a trailing dot, so `Example.GOV.cn.` matches.
pub(super) fn normal_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_host_header_must_name_loopback_or_a_configured_host() {
        let allowed = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(header::HOST, HeaderValue::from_str(v).expect("value"));
            }
            host_allowed(&headers, &["tiaochu.example.gov.cn".to_string()])
        };
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "[::1]",
            "tiaochu.example.gov.cn",
            "Tiaochu.Example.gov.cn.:443",
        ] {
            assert!(allowed(&[ok]), "{ok} is allowed");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "127.0.0.1:80:80",
            "[::1]x",
            "10.0.0.5:8080",
            "",
        ] {
            assert!(!allowed(&[refused]), "{refused} is refused");
        }
        assert!(!allowed(&[]), "no Host at all");
        assert!(!allowed(&["127.0.0.1", "evil.example"]), "two Host headers");
    }
}

//! What stands in front of the dashboard's state-changing POSTs (login, logout): a same-origin
//! check against cross-site forms (login CSRF) and a limit on failed logins per client.
//!
//! Same origin: a browser names where a form was submitted from in `Sec-Fetch-Site` and `Origin`.
//! `Sec-Fetch-Site: cross-site` is refused, and so is an `Origin` whose host is neither the
//! request's `Host` nor the host of `[dashboard] base_url` (a reverse proxy may rewrite `Host`),
//! and the opaque `Origin: null` a sandboxed frame or a `data:` page sends — unless the browser
//! says `Sec-Fetch-Site: same-origin` (Chrome sends `Origin: null` for a same-origin form on a
//! `no-referrer` page). A request with
//! neither header (an old browser, a script) is let through: the one-time token still has to be
//! right, and a script is no forged browser form.
//!
//! Failed logins: a client whose last [`FAILURES_ALLOWED`] logins in [`FAILURE_WINDOW_MINUTES`]
//! minutes all failed is refused (429) until the oldest of them leaves the window; a successful
//! login clears its record. A client is the TCP peer's address, or, when the peer is this host
//! (the reverse proxy of `deploy/`), the address the proxy appended last to `X-Forwarded-For`.
//! Nothing names the account of a wrong token, so failures are counted per client only.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, header};
use jiff::{SignedDuration, Timestamp};

/// Failed logins a client may make within the window before it must wait.
pub const FAILURES_ALLOWED: usize = 5;

/// The window failed logins are counted over, in minutes.
pub const FAILURE_WINDOW_MINUTES: i64 = 10;

/// Clients remembered at most; past it the client whose last failure is oldest is forgotten, so
/// a flood from many addresses cannot grow the map without bound.
const MAX_CLIENTS: usize = 4096;

/// Why a POST was refused as not coming from the dashboard's own pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossSite {
    /// `Sec-Fetch-Site: cross-site`.
    FetchSite,
    /// `Origin` is `null` or names another host.
    Origin,
}

/// Refuses a POST that a browser says came from another site. `base_url` is `[dashboard]
/// base_url`.
pub fn same_origin(headers: &HeaderMap, base_url: &str) -> Result<(), CrossSite> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return Err(CrossSite::FetchSite);
    }
    // The browser's own word, which no page can forge: a same-origin form is let through even
    // with `Origin: null`, which Chrome sends for forms on pages with `Referrer-Policy:
    // no-referrer` — as the dashboard's pages are, so login tokens never leak in a Referer.
    if fetch_site.is_some_and(|s| s.eq_ignore_ascii_case("same-origin")) {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| CrossSite::Origin)?;
    let Some(origin_host) = authority(origin) else {
        // `null` and anything that is not scheme://host.
        return Err(CrossSite::Origin);
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| h.trim().to_ascii_lowercase());
    let base = authority(base_url.trim().trim_end_matches('/'));
    if host.as_deref() == Some(origin_host.as_str())
        || base.as_deref() == Some(origin_host.as_str())
    {
        Ok(())
    } else {
        Err(CrossSite::Origin)
    }
}

/// `host[:port]` of `scheme://host[:port][/…]`, lower case, without the scheme's default port;
/// `None` for anything else.
fn authority(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if host.is_empty() || host.contains('@') {
        return None;
    }
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    Some(host.strip_suffix(default_port).unwrap_or(&host).to_string())
}

/// Who is logging in, as far as the connection tells: see the module doc.
pub fn client(extensions: &Extensions, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())?;
    if !peer.is_loopback() {
        return Some(peer);
    }
    // The proxy appends the address it saw; anything before that the client itself may have
    // written, so only the last entry is believed.
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .next_back();
    Some(forwarded.unwrap_or(peer))
}

/// Failed logins per client (see the module doc). In memory: a restart forgets them, which
/// costs an attacker a restart of the service per window.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    /// Times of each client's recent failures, oldest first. `None` is every client whose
    /// address is unknown, counted together.
    failures: Mutex<HashMap<Option<IpAddr>, VecDeque<Timestamp>>>,
}

impl LoginLimiter {
    pub fn new() -> LoginLimiter {
        LoginLimiter::default()
    }

    /// `Err(when)` while `client` must wait: until `when`, when its oldest counted failure
    /// leaves the window.
    pub fn check(&self, client: Option<IpAddr>, now: Timestamp) -> Result<(), Timestamp> {
        let mut failures = self.lock();
        let Some(times) = failures.get_mut(&client) else {
            return Ok(());
        };
        prune(times, now);
        match times.front() {
            Some(oldest) if times.len() >= FAILURES_ALLOWED => Err(*oldest + window()),
            _ => Ok(()),
        }
    }

    /// Counts a failed login of `client` at `now`.
    pub fn failed(&self, client: Option<IpAddr>, now: Timestamp) {
        let mut failures = self.lock();
        if !failures.contains_key(&client) && failures.len() >= MAX_CLIENTS {
            failures.retain(|_, times| {
                prune(times, now);
                !times.is_empty()
            });
            if failures.len() >= MAX_CLIENTS {
                let stalest = failures
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(key, _)| *key);
                if let Some(key) = stalest {
                    failures.remove(&key);
                }
            }
        }
        let times = failures.entry(client).or_default();
        prune(times, now);
        times.push_back(now);
        // Only the newest FAILURES_ALLOWED matter for the wait.
        while times.len() > FAILURES_ALLOWED {
            times.pop_front();
        }
    }

    /// A successful login clears `client`'s failures.
    pub fn succeeded(&self, client: Option<IpAddr>) {
        self.lock().remove(&client);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, VecDeque<Timestamp>>> {
        // A map of timestamps cannot be left inconsistent by a panic elsewhere.
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn window() -> SignedDuration {
    SignedDuration::from_mins(FAILURE_WINDOW_MINUTES)
}

/// Drops failures that left the window.
fn prune(times: &mut VecDeque<Timestamp>, now: Timestamp) {
    while times.front().is_some_and(|t| *t + window() <= now) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    const BASE: &str = "https://tiaochu.example.gov.cn";

    #[test]
    fn same_origin_forms_pass_and_foreign_ones_do_not() {
        let ok = [
            headers(&[]),
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
            ]),
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin"),
            ]),
            // Behind the proxy: Host rewritten, Origin is the public address.
            headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "https://TIAOCHU.example.gov.cn:443"),
            ]),
            headers(&[("sec-fetch-site", "none")]),
        ];
        for h in &ok {
            assert_eq!(same_origin(h, BASE), Ok(()), "{h:?}");
        }
        let refused = [
            (
                headers(&[("sec-fetch-site", "cross-site")]),
                CrossSite::FetchSite,
            ),
            (
                headers(&[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "https://evil.example"),
                ]),
                CrossSite::Origin,
            ),
            (
                headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]),
                CrossSite::Origin,
            ),
            (
                headers(&[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "http://127.0.0.1:8081"),
                ]),
                CrossSite::Origin,
            ),
            (
                headers(&[
                    ("host", "tiaochu.example.gov.cn"),
                    ("origin", "https://tiaochu.example.gov.cn.evil.example"),
                ]),
                CrossSite::Origin,
            ),
        ];
        for (h, why) in &refused {
            assert_eq!(same_origin(h, BASE), Err(*why), "{h:?}");
        }
    }

    #[test]
    fn a_same_origin_form_on_a_no_referrer_page_passes_with_origin_null() {
        let h = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(same_origin(&h, BASE), Ok(()));
    }

    #[test]
    fn authority_drops_default_ports_only() {
        assert_eq!(authority("https://a.b:443/x").as_deref(), Some("a.b"));
        assert_eq!(authority("http://a.b:80").as_deref(), Some("a.b"));
        assert_eq!(authority("http://a.b:443").as_deref(), Some("a.b:443"));
        assert_eq!(authority("null"), None);
        assert_eq!(authority("ftp://a.b"), None);
        assert_eq!(authority("http://u@a.b"), None);
    }

    #[test]
    fn the_sixth_failure_in_the_window_waits_and_success_clears() {
        let limiter = LoginLimiter::new();
        let ip: Option<IpAddr> = Some([10, 0, 0, 7].into());
        let other: Option<IpAddr> = Some([10, 0, 0, 8].into());
        let t0: Timestamp = "2026-11-02T01:00:00Z".parse().expect("t0");
        for i in 0..FAILURES_ALLOWED {
            assert_eq!(limiter.check(ip, t0), Ok(()), "attempt {i}");
            limiter.failed(ip, t0 + SignedDuration::from_secs(i as i64));
        }
        let later = t0 + SignedDuration::from_mins(1);
        assert_eq!(limiter.check(ip, later), Err(t0 + window()));
        assert_eq!(limiter.check(other, later), Ok(()), "per client");
        // The oldest failure leaves the window: one more try.
        assert_eq!(limiter.check(ip, t0 + window()), Ok(()));
        limiter.succeeded(ip);
        assert_eq!(limiter.check(ip, later), Ok(()));
    }

    #[test]
    fn the_map_stays_bounded() {
        let limiter = LoginLimiter::new();
        let t0: Timestamp = "2026-11-02T01:00:00Z".parse().expect("t0");
        for i in 0..(MAX_CLIENTS as u32 + 10) {
            limiter.failed(Some(IpAddr::from(i.to_be_bytes())), t0);
        }
        assert!(limiter.lock().len() <= MAX_CLIENTS);
    }

    #[test]
    fn only_the_proxys_own_entry_is_believed() {
        let mut ext = Extensions::new();
        ext.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5000))));
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 5.6.7.8")]);
        assert_eq!(client(&ext, &h), Some([5, 6, 7, 8].into()));
        assert_eq!(client(&ext, &HeaderMap::new()), Some([127, 0, 0, 1].into()));
        let mut remote = Extensions::new();
        remote.insert(ConnectInfo(SocketAddr::from(([9, 9, 9, 9], 5000))));
        assert_eq!(client(&remote, &h), Some([9, 9, 9, 9].into()));
        assert_eq!(client(&Extensions::new(), &h), None);
    }
}

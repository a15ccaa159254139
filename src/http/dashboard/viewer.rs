//! Who is looking at the dashboard: the [`Viewer`] extractor and the session cookie.
//!
//! A handler that takes a [`Viewer`] runs only for a live session of a person who is still in the
//! roster with a viewer role; every other request is refused before the handler runs, with the
//! 401 page that says how to log in. The cookie is written and read with the `cookie` crate:
//! `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it),
//! `Path=/dashboard`, `Max-Age` of [`SESSION_HOURS`], and `Secure` when `[dashboard] base_url` is
//! https. The cookie holds the session id; the store keeps only its hash.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

use super::{DashboardError, DashboardState, SESSION_HOURS, may_view};
use crate::roster::Person;
use crate::store::secret_hash;

/// The session cookie's name.
const COOKIE: &str = "tiaochu_dashboard";

/// The logged-in person: a live session whose person is still in the roster with a viewer role.
pub(super) struct Viewer(pub Person);

impl FromRequestParts<DashboardState> for Viewer {
    type Rejection = DashboardError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &DashboardState,
    ) -> Result<Viewer, DashboardError> {
        let hash = session_id(&parts.headers)
            .map(|id| secret_hash(&id))
            .ok_or(DashboardError::NotLoggedIn)?;
        let now = state.clock.now();
        let id = state
            .store()
            .read(move |r| r.session_person(&hash, now))
            .await?
            .ok_or(DashboardError::NotLoggedIn)?;
        state
            .engine
            .roster()
            .person(&id)
            .filter(|p| may_view(p))
            .cloned()
            .map(Viewer)
            .ok_or(DashboardError::NotLoggedIn)
    }
}

/// The session id in the request's cookies, if any.
pub(super) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

/// The `Set-Cookie` value that starts a session with id `session`.
pub(super) fn session_cookie(session: &str, secure: bool) -> Option<HeaderValue> {
    let cookie = base(Cookie::build((COOKIE, session)), secure)
        .max_age(cookie::time::Duration::hours(SESSION_HOURS))
        .build();
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub(super) fn cleared_cookie(secure: bool) -> Option<HeaderValue> {
    let cookie = base(Cookie::build(COOKIE), secure).removal().build();
    HeaderValue::from_str(&cookie.to_string()).ok()
}

fn base(builder: cookie::CookieBuilder<'_>, secure: bool) -> cookie::CookieBuilder<'_> {
    builder
        .path("/dashboard")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tiaochu_dashboard=abc ; b=2"),
        );
        assert_eq!(session_id(&h).as_deref(), Some("abc"));
        assert_eq!(session_id(&HeaderMap::new()), None);
        let mut two = HeaderMap::new();
        two.append(header::COOKIE, HeaderValue::from_static("a=1"));
        two.append(
            header::COOKIE,
            HeaderValue::from_static("tiaochu_dashboard=def"),
        );
        assert_eq!(session_id(&two).as_deref(), Some("def"));
    }

    #[test]
    fn the_cookie_keeps_every_attribute() {
        let set = session_cookie("abc", false).expect("value");
        assert_eq!(
            set,
            "tiaochu_dashboard=abc; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=28800"
        );
        let secure = session_cookie("abc", true).expect("value");
        assert!(
            secure.to_str().expect("text").contains("; Secure;"),
            "{secure:?}"
        );
        let cleared = cleared_cookie(true).expect("value");
        let cleared = cleared.to_str().expect("text");
        assert!(
            cleared.starts_with(
                "tiaochu_dashboard=; HttpOnly; SameSite=Strict; Secure; Path=/dashboard; Max-Age=0"
            ),
            "{cleared}"
        );
    }
}

//! `GET /metrics` (Prometheus text format) and the middleware that times every request for it.
//! The exposition itself is [`crate::metrics`]; this file only gathers the scrape-time inputs
//! (the store's backlog, the Stream state) and counts request latency by matched route.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::{self, TIMER_OVERDUE_AFTER};

/// The exposition; always 200, since a scrape that fails is itself the alert. When the store
/// does not answer, `tiaochu_store_up 0` says so and its gauges are left out.
pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let now = state.clock.now();
    let stream = *state.stream.borrow();
    let backlog = state
        .store
        .read(move |r| r.backlog(now, TIMER_OVERDUE_AFTER))
        .await;
    let backlog = match backlog {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::error!(error = %e, "metrics: store unavailable");
            None
        }
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::global().render(
            backlog.as_ref(),
            &state.store.commit_times(),
            &stream.labels(),
        ),
    )
        .into_response()
}

/// Times the request from routing to the response head. Both labels come from fixed sets, since
/// anyone can send a request: the route is the matched pattern (never the raw path), `other` for a
/// path no route serves, and the method is a standard one or `other` ([`metrics::method_label`]).
pub(super) async fn track(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let method = metrics::method_label(request.method().as_str());
    let response = next.run(request).await;
    metrics::global().observe_request(&route, method, start.elapsed());
    response
}

//! `POST /bench/bare`: the baseline the load bench (`benches/load.rs`, issue 8) measures the
//! robot webhook against. It sits on the same listener, router, middleware and 64 KiB body
//! limit as `POST /dingtalk/robot` and does only what a bare axum endpoint does — read the body,
//! answer 200 with the same small JSON body — so the ratio between the two is the cost of the
//! webhook's own work (signature, dedupe, durable commit, the inbox worker behind it) and
//! nothing else. It exists only when the crate is built with the `bench` feature; release builds
//! without it have no such route and no such code. It logs nothing, as a bare endpoint would not.

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;

/// Reads the whole body (up to the route's limit) and discards it; always 200 `{}`, the body
/// the robot callback acknowledges with.
pub(super) async fn bare(_body: Bytes) -> (StatusCode, Json<serde_json::Value>) {
    (StatusCode::OK, Json(serde_json::json!({})))
}

//! `GET /healthz`: whether the store answers and takes writes, the state of the Stream connection and the outbox
//! backlog, for a load balancer (status code) and an admin (body).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::AppState;

/// 200 when the store answers and its last write did not fail, 503 otherwise, with the reason
/// in `store` (`"ok"` when healthy): a full disk still answers reads, so the write side is asked
/// too ([`crate::store::Store::write_failure`]). `status` is `"degraded"` when the store fails, or
/// dead letters or quarantined rows (`quarantine`: inbound messages and timers set aside after a
/// failure a retry will not fix) wait for an admin, else `"ok"`. Dead letters and quarantined
/// rows keep the code 200: the service still takes and processes everything else, and a load
/// balancer that pulled it would stop that too. `stream` is `"connected"` while a Stream socket
/// is open, `"connecting"` while (re)connecting, `"not_configured"` outside `stream` mode; it does
/// not change the status code, since the HTTP side keeps working without it.
pub(super) async fn healthz(
    State(state): State<Arc<AppState>>,
) -> (StatusCode, Json<serde_json::Value>) {
    let stream = state.stream.borrow().as_str();
    let counts = state
        .store
        .read(|r| Ok::<_, crate::store::StoreError>((r.outbox_backlog()?, r.quarantined_count()?)))
        .await;
    match counts {
        Ok(((pending, dead), quarantined)) => match state.store.write_failure() {
            None => (
                StatusCode::OK,
                Json(json!({
                    "status": if dead == 0 && quarantined == 0 { "ok" } else { "degraded" },
                    "store": "ok",
                    "outbox": { "pending": pending, "dead": dead },
                    "quarantine": quarantined,
                    "stream": stream,
                })),
            ),
            Some(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "degraded",
                    "store": format!("写入失败：{reason}"),
                    "outbox": { "pending": pending, "dead": dead },
                    "quarantine": quarantined,
                    "stream": stream,
                })),
            ),
        },
        Err(e) => {
            tracing::error!(error = %e, "health check: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "degraded",
                    "store": e.to_string(),
                    "outbox": null,
                    "quarantine": null,
                    "stream": stream,
                })),
            )
        }
    }
}

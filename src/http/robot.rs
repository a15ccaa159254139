//! `POST /dingtalk/robot`: the enterprise-internal robot's HTTP callback (§1). Persist, then
//! acknowledge, then work (DESIGN.md): the message is committed to the inbox before the 200, and
//! processing happens later from the inbox. The order of checks is fixed so that a 401 never
//! depends on the body: headers and signature first, the body is read only after.

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::{AppState, HttpError, read_body};
use crate::dingtalk::inbound::RobotMessage;
use crate::dingtalk::sign::verify_callback;
use crate::settings::Secret;
use crate::store::{InboxInsert, NewInbound};

/// The inbox `source` of robot callbacks.
const SOURCE: &str = "robot";

/// Verifies, stores and acknowledges one callback; `secret` is the app secret it must be
/// signed with.
pub(super) async fn robot_callback(
    state: AppState,
    secret: Secret,
    request: Request,
) -> Result<impl IntoResponse, HttpError> {
    let outcome = accept(&state, &secret, request).await;
    match &outcome {
        Ok((msg_id, InboxInsert::Inserted(id))) => {
            tracing::info!(msg_id = %msg_id, inbox_id = id, "robot message stored");
        }
        Ok((msg_id, InboxInsert::Duplicate(id))) => {
            tracing::info!(msg_id = %msg_id, inbox_id = id, "robot message already stored");
        }
        Err(e) => {
            tracing::warn!(status = e.status().as_u16(), reason = %e, "robot callback refused")
        }
    }
    outcome.map(|_| (StatusCode::OK, axum::Json(serde_json::json!({}))))
}

async fn accept(
    state: &AppState,
    secret: &Secret,
    request: Request,
) -> Result<(String, InboxInsert), HttpError> {
    let now = state.clock.now();
    let headers = request.headers();
    let timestamp = single_header(headers, "timestamp")?;
    let sign = single_header(headers, "sign")?;
    verify_callback(timestamp, sign, secret.expose(), now.as_millisecond())?;

    let body = read_body(request, state).await?;
    let message = RobotMessage::from_json(&body)?;
    // The payload column is text; a body that parsed as JSON is UTF-8.
    let payload = String::from_utf8(body.to_vec()).map_err(|_| HttpError::BodyUnreadable)?;
    let msg_id = message.msg_id;
    let key = msg_id.clone();
    let inserted = state
        .store
        .write(move |tx| {
            tx.insert_inbox(&NewInbound {
                source: SOURCE,
                message_id: &key,
                received_at: now,
                payload: &payload,
            })
        })
        .await?;
    Ok((msg_id, inserted))
}

/// The value of a header that must appear exactly once, as text.
fn single_header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, HttpError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value
            .to_str()
            .map_err(|_| HttpError::BadSignatureHeader(name)),
        _ => Err(HttpError::BadSignatureHeader(name)),
    }
}

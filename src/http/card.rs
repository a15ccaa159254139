//! `POST /dingtalk/card`: card-platform callbacks in `http` mode (§6.4; cards created with
//! `callbackType: "HTTP"` and the `callbackRouteKey` registered with `card/callbacks/register`).
//! Unlike robot messages, a tap is processed before the answer, because the answer carries the
//! update of the tapping user's copy: 200 with the bare §6.4 response object.
//!
//! Authentication (§13: how DingTalk authenticates these POSTs is unconfirmed). Safe either way:
//! - when the request carries `timestamp` and `sign` headers they are checked exactly like the
//!   robot callback's (HMAC-SHA256 with the app secret, the same time window) — register the
//!   route with `apiSecret` set to the app secret; a lone, doubled or wrong header is a 401;
//! - in every case the `outTrackId` must be a card this service sent (else 404) and the
//!   `userId` the owner of that copy (else 403): a forged tap can at most do what that owner
//!   could do by tapping, and neither refusal leaves a trace in the inbox.

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::{AppState, HttpError, read_body};
use crate::cards::{CardCallback, CardReply, Refusal};
use crate::dingtalk::sign::verify_callback;
use crate::engine::EngineError;
use crate::inbox::InboxProcessor;
use crate::store::StoreError;

/// Verifies, processes and answers one card callback.
pub(super) async fn card_callback(
    state: AppState,
    processor: InboxProcessor,
    request: Request,
) -> Result<impl IntoResponse, HttpError> {
    let outcome = answer(&state, &processor, request).await;
    if let Err(e) = &outcome {
        tracing::warn!(status = e.status().as_u16(), reason = %e, "card callback refused");
    }
    outcome.map(|body| (StatusCode::OK, axum::Json(body)))
}

async fn answer(
    state: &AppState,
    processor: &InboxProcessor,
    request: Request,
) -> Result<serde_json::Value, HttpError> {
    let now = state.clock.now();
    let headers = request.headers();
    if let Some((timestamp, sign)) = signature_headers(headers)? {
        let Some(secret) = &state.callback_secret else {
            return Err(HttpError::BadSignatureHeader("sign"));
        };
        verify_callback(timestamp, sign, secret.expose(), now.as_millisecond())?;
    }

    let body = read_body(request, state).await?;
    let data = std::str::from_utf8(&body).map_err(|_| HttpError::BodyUnreadable)?;
    let Some(callback) = CardCallback::from_json(data) else {
        return Err(HttpError::NotCardCallback);
    };
    let reply = processor
        .card_callback(data, now)
        .await
        .map_err(|e| match e {
            EngineError::Store(s) => HttpError::Store(s),
            other => HttpError::Store(StoreError::Abort(other.to_string())),
        })?;
    tracing::info!(out_track_id = %callback.out_track_id, action = ?callback.action, "card callback answered");
    match reply {
        CardReply::Refused(Refusal::UnknownCard) => Err(HttpError::UnknownCard),
        CardReply::Refused(Refusal::NotRecipient) => Err(HttpError::NotCardRecipient),
        answer @ CardReply::Answer { .. } => Ok(answer.response().unwrap_or_default()),
    }
}

/// `timestamp` and `sign` when both are present once; `None` when neither is; anything else
/// (one without the other, a doubled or non-text value) is refused.
fn signature_headers(headers: &HeaderMap) -> Result<Option<(&str, &str)>, HttpError> {
    let one = |name: &'static str| -> Result<Option<&str>, HttpError> {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => value
                .to_str()
                .map(Some)
                .map_err(|_| HttpError::BadSignatureHeader(name)),
            (Some(_), Some(_)) => Err(HttpError::BadSignatureHeader(name)),
        }
    };
    match (one("timestamp")?, one("sign")?) {
        (None, None) => Ok(None),
        (Some(timestamp), Some(sign)) => Ok(Some((timestamp, sign))),
        (Some(_), None) => Err(HttpError::BadSignatureHeader("sign")),
        (None, Some(_)) => Err(HttpError::BadSignatureHeader("timestamp")),
    }
}

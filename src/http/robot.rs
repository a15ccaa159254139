//! `POST /dingtalk/robot`: the enterprise-internal robot's HTTP callback (§1). Persist, then
//! acknowledge, then work (docs/architecture.md): the message is committed to the inbox before the 200, and
//! processing happens later from the inbox. The order of checks is fixed so that a 401 never
//! depends on the body: headers and signature first, the body is read only after.
//!
//! Beyond `[inbox] max_backlog` unprocessed messages a verified callback is answered 503 with
//! `Retry-After` and nothing is stored (src/http/shed.rs).
//!
//! With `[dingtalk] callback_aes_key` set, the body must be the encrypted envelope and is opened
//! before it is read as a message; a plain or undecryptable body is refused (400).
//!
//! The signature covers the timestamp only, so a captured (timestamp, sign) pair would verify
//! any body for the hour it is accepted. Each pair is therefore remembered in the database with
//! the msgId it first came with, for that hour: the same pair with another msgId is refused
//! (401) and nothing is stored; with the same msgId it is DingTalk delivering again, answered
//! as any duplicate. Two different messages DingTalk signs in the same millisecond would share a
//! pair too; the second is then refused and left to DingTalk's redelivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::{AppState, HttpError, read_body};
use crate::dingtalk::inbound::{InboundError, RobotMessage, envelope};
use crate::dingtalk::sign::{MAX_AGE_MS, SignError, signature_id, verify_callback};
use crate::settings::Secret;
use crate::store::{InboxInsert, NewInbound, SignatureUse};

/// The inbox `source` of robot callbacks.
const SOURCE: &str = "robot";

/// When the remembered pairs that can no longer verify were last forgotten. Forgetting them is
/// a statement on the writer; once a second is enough (a pair is kept at most a second past its
/// hour), where once a callback cost every acknowledgement that statement under load.
#[derive(Debug, Default)]
pub(super) struct Forgetting {
    /// The last second (of the service's clock, since the epoch) a callback forgot in.
    second: AtomicI64,
}

impl Forgetting {
    /// True for the first callback of each second of `now_ms`: it forgets the expired pairs.
    fn due(&self, now_ms: i64) -> bool {
        let second = now_ms.div_euclid(1000);
        self.second.fetch_max(second, Ordering::Relaxed) < second
    }
}

/// Verifies, stores and acknowledges one callback; `secret` is the app secret it must be
/// signed with.
pub(super) async fn robot_callback(
    state: Arc<AppState>,
    secret: Secret,
    forgetting: Arc<Forgetting>,
    request: Request,
) -> Result<impl IntoResponse, HttpError> {
    let outcome = accept(&state, &secret, &forgetting, request).await;
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
    forgetting: &Forgetting,
    request: Request,
) -> Result<(String, InboxInsert), HttpError> {
    let now = state.clock.now();
    let headers = request.headers();
    let timestamp = single_header(headers, "timestamp")?;
    let sign = single_header(headers, "sign")?;
    verify_callback(timestamp, sign, secret.expose(), now.as_millisecond())?;
    let (timestamp_ms, sign_hash) =
        signature_id(timestamp, sign).ok_or(HttpError::Unauthorized(SignError::BadSign))?;
    // Verified, not yet read or stored: beyond the backlog limit DingTalk is asked to come back
    // later rather than given an acknowledgement the inbox could not honour within minutes.
    if let Some(gate) = &state.backlog
        && let Some(backlog) = gate.full().await
    {
        return Err(HttpError::Overloaded { backlog });
    }

    let body = read_body(request, state).await?;
    let body = match &state.callback_key {
        Some(key) => key.open(&body)?,
        None => body.to_vec(),
    };
    let message = match RobotMessage::from_json(&body) {
        Ok(message) => message,
        // Only a body that is not a message is looked at again (an envelope has no msgId), so
        // the common case is parsed once.
        Err(_) if state.callback_key.is_none() && envelope::is_envelope(&body) => {
            return Err(InboundError::EncryptedWithoutKey.into());
        }
        Err(e) => return Err(e.into()),
    };
    // The payload column is text; a body that parsed as JSON is UTF-8.
    let payload = String::from_utf8(body).map_err(|_| HttpError::BodyUnreadable)?;
    let msg_id = message.msg_id;
    let key = msg_id.clone();
    // A pair older than this can no longer verify, so it need not be remembered.
    let oldest_valid_ms = now.as_millisecond().saturating_sub(MAX_AGE_MS);
    let forget = forgetting.due(now.as_millisecond());
    let stored = state
        .store
        .write(move |tx| {
            if forget {
                tx.forget_signatures_before(oldest_valid_ms)?;
            }
            match tx.use_signature(timestamp_ms, &sign_hash, &key, now)? {
                SignatureUse::OtherMessage => return Ok(None),
                SignatureUse::New | SignatureUse::SameMessage => {}
            }
            tx.insert_inbox(&NewInbound {
                source: SOURCE,
                message_id: &key,
                received_at: now,
                payload: &payload,
            })
            .map(Some)
        })
        .await?;
    let inserted = stored.ok_or(HttpError::Unauthorized(SignError::Replayed))?;
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

#[cfg(test)]
mod tests {
    use super::Forgetting;

    #[test]
    fn expired_pairs_are_forgotten_by_the_first_callback_of_each_second() {
        let forgetting = Forgetting::default();
        assert!(forgetting.due(5_000));
        assert!(!forgetting.due(5_000));
        assert!(!forgetting.due(5_999));
        assert!(forgetting.due(6_000));
        // A clock set back does not make an earlier second due again.
        assert!(!forgetting.due(4_000));
        assert!(forgetting.due(7_500));
    }
}

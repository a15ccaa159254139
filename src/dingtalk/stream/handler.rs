//! What the Stream client does with a robot message or a card callback: the [`FrameHandler`]
//! trait, and [`InboxHandler`], which persists both into the inbox (docs/architecture.md: persist, then ACK,
//! then work). The client acknowledges a frame only after its handler returned `Ok`, so the
//! commit always precedes the ACK; an `Err` leaves the frame unacknowledged for redelivery.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::store::{InboxInsert, NewInbound, Store, StoreError};

/// The boxed future a [`FrameHandler`] returns (no async-trait crate: a plain `Pin<Box<…>>`).
pub type HandlerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, HandlerError>> + Send + 'a>>;

/// Why a frame could not be handled. The frame is then not acknowledged: the gateway redelivers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Handles the two CALLBACK topics the client subscribes to. Called from worker tasks, never
/// from the read loop, with the frame `messageId` and its `data` (JSON text, unparsed).
pub trait FrameHandler: Send + Sync + 'static {
    /// A robot message (`/v1.0/im/bot/messages/get`, §1.3). `Ok` means it is durably stored.
    fn robot_message<'a>(&'a self, message_id: &'a str, data: &'a str) -> HandlerFuture<'a, ()>;

    /// A card action (`/v1.0/card/instances/callback`, §6.4). `Ok` means it is durably stored;
    /// the value is the `response` of the ACK, i.e. the card update DingTalk applies at once
    /// (`cardData` / `userPrivateData` / `cardUpdateOptions`); `None` leaves the card as it is.
    fn card_callback<'a>(
        &'a self,
        message_id: &'a str,
        data: &'a str,
    ) -> HandlerFuture<'a, Option<Value>>;
}

/// The inbox `source` of robot messages that came over Stream.
pub const SOURCE_STREAM: &str = "stream";
/// The inbox `source` of card callbacks. The same as for HTTP card callbacks: the payload and
/// its dedupe key do not depend on the transport (§6.4), so one click delivered twice is one row.
pub const SOURCE_CARD: &str = "card";

/// Writes every frame into the inbox, keyed for deduplication:
/// - robot message: its `msgId`, or the frame `messageId` when the body has none;
/// - card callback: `outTrackId|userId|actionIds|params hash` (docs/architecture.md: card `outTrackId` +
///   user + action), or the frame `messageId` when `outTrackId` or `userId` is missing.
///
/// A duplicate is success (it is stored already). Card callbacks answer `None`: the card update
/// in the ACK belongs to the workflow, so the running service wraps this handler in
/// [`crate::cards::CardStreamHandler`], which processes the callback in the same transaction as
/// its inbox row and returns the update from [`FrameHandler::card_callback`] after the commit.
#[derive(Clone)]
pub struct InboxHandler {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl InboxHandler {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> InboxHandler {
        InboxHandler { store, clock }
    }

    /// The inbox `message_id` of a card callback body: `outTrackId|userId|actionIds|params
    /// hash`, the same whichever transport brought it; `None` without `outTrackId` or `userId`.
    pub fn card_key(data: &str) -> Option<String> {
        card_callback_key(data)
    }

    async fn insert(
        &self,
        source: &'static str,
        key: String,
        payload: &str,
    ) -> Result<InboxInsert, StoreError> {
        let now = self.clock.now();
        let payload = payload.to_string();
        let stored_key = key.clone();
        let outcome = self
            .store
            .write(move |tx| {
                tx.insert_inbox(&NewInbound {
                    source,
                    message_id: &stored_key,
                    received_at: now,
                    payload: &payload,
                })
            })
            .await?;
        match outcome {
            InboxInsert::Inserted(id) => {
                tracing::info!(source, key = %key, inbox_id = id, "stream frame stored");
            }
            InboxInsert::Duplicate(id) => {
                tracing::info!(source, key = %key, inbox_id = id, "stream frame already stored");
            }
        }
        Ok(outcome)
    }
}

impl FrameHandler for InboxHandler {
    fn robot_message<'a>(&'a self, message_id: &'a str, data: &'a str) -> HandlerFuture<'a, ()> {
        Box::pin(async move {
            let key = robot_message_key(data).unwrap_or_else(|| message_id.to_string());
            self.insert(SOURCE_STREAM, key, data).await?;
            Ok(())
        })
    }

    fn card_callback<'a>(
        &'a self,
        message_id: &'a str,
        data: &'a str,
    ) -> HandlerFuture<'a, Option<Value>> {
        Box::pin(async move {
            let key = card_callback_key(data).unwrap_or_else(|| message_id.to_string());
            self.insert(SOURCE_CARD, key, data).await?;
            Ok(None)
        })
    }
}

/// The robot message's `msgId`, when `data` is a JSON object carrying a non-empty one.
fn robot_message_key(data: &str) -> Option<String> {
    let body: Value = serde_json::from_str(data).ok()?;
    let id = body.get("msgId")?.as_str()?.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// `outTrackId|userId|actionIds|params hash` of a card callback, None without `outTrackId` or
/// `userId`. `content` is JSON inside a JSON string (§6.4); an unreadable `content` counts as
/// no action ids and no params, which still separates clicks by card and user.
pub(crate) fn card_callback_key(data: &str) -> Option<String> {
    let body: Value = serde_json::from_str(data).ok()?;
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let out_track_id = field("outTrackId")?;
    let user_id = field("userId")?;
    let private = field("content")
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|c| c.get("cardPrivateData").cloned())
        .unwrap_or(Value::Null);
    let action_ids: Vec<&str> = private
        .get("actionIds")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // serde_json's map is ordered by key, so equal params give equal text whatever their order.
    let params = private
        .get("params")
        .cloned()
        .unwrap_or(Value::Null)
        .to_string();
    let digest = Sha256::digest(params.as_bytes());
    let mut hash = String::with_capacity(16);
    for byte in &digest[..8] {
        // Writing to a String cannot fail.
        let _ = write!(hash, "{byte:02x}");
    }
    Some(format!(
        "{out_track_id}|{user_id}|{}|{hash}",
        action_ids.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(out_track_id: &str, user: &str, content: &str) -> String {
        serde_json::json!({
            "outTrackId": out_track_id, "userId": user, "corpId": "dingcorp",
            "type": "actionCallback", "content": content,
        })
        .to_string()
    }

    #[test]
    fn card_key_names_card_user_action_and_params() {
        let a = card_callback_key(&card(
            "case-A123-inspect-v1",
            "user001",
            r#"{"cardPrivateData":{"actionIds":["agree_btn"],"params":{"action":"agree","n":1}}}"#,
        ))
        .expect("key");
        assert!(
            a.starts_with("case-A123-inspect-v1|user001|agree_btn|"),
            "{a}"
        );
        assert_eq!(a.rsplit('|').next().map(str::len), Some(16));
        let reordered = card_callback_key(&card(
            "case-A123-inspect-v1",
            "user001",
            r#"{"cardPrivateData":{"params":{"n":1,"action":"agree"},"actionIds":["agree_btn"]}}"#,
        ));
        assert_eq!(reordered.as_deref(), Some(a.as_str()));
        let other_params = card_callback_key(&card(
            "case-A123-inspect-v1",
            "user001",
            r#"{"cardPrivateData":{"actionIds":["agree_btn"],"params":{"action":"reject"}}}"#,
        ));
        assert_ne!(other_params.as_deref(), Some(a.as_str()));
        let other_user = card_callback_key(&card(
            "case-A123-inspect-v1",
            "user002",
            r#"{"cardPrivateData":{"actionIds":["agree_btn"],"params":{"action":"agree","n":1}}}"#,
        ));
        assert_ne!(other_user.as_deref(), Some(a.as_str()));
    }

    #[test]
    fn card_key_needs_card_and_user_but_not_a_readable_content() {
        assert_eq!(card_callback_key(&card("", "user001", "{}")), None);
        assert_eq!(card_callback_key(&card("c", " ", "{}")), None);
        assert_eq!(card_callback_key("not json"), None);
        let key = card_callback_key(&card("c", "u", "not json")).expect("key");
        assert!(key.starts_with("c|u||"), "{key}");
    }

    #[test]
    fn robot_key_is_the_msg_id_when_present() {
        assert_eq!(
            robot_message_key(r#"{"msgId":" msgA== ","msgtype":"text"}"#).as_deref(),
            Some("msgA==")
        );
        assert_eq!(robot_message_key(r#"{"msgId":""}"#), None);
        assert_eq!(robot_message_key(r#"{"msgId":5}"#), None);
        assert_eq!(robot_message_key("[]"), None);
    }
}

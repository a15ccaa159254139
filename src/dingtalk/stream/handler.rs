//! What the Stream client does with a robot message or a card callback: the [`FrameHandler`]
//! trait, and [`InboxHandler`], which persists both into the inbox (docs/architecture.md: persist, then ACK,
//! then work). The client acknowledges a frame only after its handler returned `Ok`, so the
//! commit always precedes the ACK; an `Err` leaves the frame unacknowledged for redelivery.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::dingtalk::api::{DingtalkClient, ROOT_DEPARTMENT};
use crate::dingtalk::errors::SendError;
use crate::roster::{Role, RosterInForce};
use crate::store::{InboxInsert, NewInbound, Store, StoreError};

/// The boxed future a [`FrameHandler`] returns (no async-trait crate: a plain `Pin<Box<…>>`).
pub type HandlerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, HandlerError>> + Send + 'a>>;

/// Why a frame could not be handled. The frame is then not acknowledged: the gateway redelivers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Asking DingTalk where a member sits now failed for a passing reason.
    #[error("address-book lookup failed: {0}")]
    Lookup(String),
}

/// Handles the two CALLBACK topics and the EVENTs the client subscribes to. Called from worker tasks, never
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

    /// An organisation event (`EVENT`, §2.3). `Ok` means it is durably stored, or of a type the
    /// service does not act on; the ACK then says `SUCCESS`.
    fn event<'a>(&'a self, message_id: &'a str, event: &'a EventFrame) -> HandlerFuture<'a, ()>;
}

/// An EVENT frame (§2.3): its `event*` headers and `data` (JSON text, unparsed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFrame {
    /// `user_leave_org`, `user_modify_org`, …
    pub event_type: String,
    /// Unique per event; the inbox dedupe key.
    pub event_id: String,
    pub corp_id: String,
    /// Milliseconds since the epoch, as text.
    pub born_time: String,
    pub data: String,
}

/// The address-book event of a member who left the organisation (通讯录用户离职). Its `data`
/// is `{"timeStamp": "…", "userId": ["…", …]}`, as for every contact event.
pub const CONTACT_LEAVE: &str = "user_leave_org";

/// The address-book event of a member whose details changed (通讯录用户更改), a department
/// among them. The event does not say what changed, so the departments are looked up.
pub const CONTACT_MODIFY: &str = "user_modify_org";

/// Where a member sits now, for [`CONTACT_MODIFY`]: the client asks `topapi/v2/user/get` and
/// `topapi/v2/department/get` (the permissions `roster sync` uses) for the roster's liaisons and
/// leaders only; everyone else's changes are none of the service's business.
#[derive(Clone)]
pub struct Directory {
    client: Arc<DingtalkClient>,
    roster: RosterInForce,
}

/// Department chains longer than this are cut (a loop in the data must not spin).
const MAX_DEPTH: usize = 12;

impl Directory {
    pub fn new(client: Arc<DingtalkClient>, roster: RosterInForce) -> Directory {
        Directory { client, roster }
    }

    /// Whether a change of `user_id` may matter: they are a liaison or leader in the roster.
    fn watches(&self, user_id: &str) -> bool {
        (self.roster)()
            .person(user_id)
            .is_some_and(|p| !p.departed && (p.has_role(Role::Liaison) || p.has_role(Role::Leader)))
    }

    /// The member's departments, each as names from the top (below the organisation) down.
    async fn departments(&self, user_id: &str) -> Result<Vec<Vec<String>>, SendError> {
        let user = self.client.user_get(user_id).await?;
        let mut out = Vec::new();
        for dept in user.dept_ids {
            let mut names = Vec::new();
            let mut current = dept;
            for _ in 0..MAX_DEPTH {
                if current == ROOT_DEPARTMENT {
                    break;
                }
                let d = self.client.department_get(current).await?;
                names.push(d.name);
                match d.parent_id {
                    Some(parent) if parent != current => current = parent,
                    _ => break,
                }
            }
            names.reverse();
            out.push(names);
        }
        Ok(out)
    }
}

/// The inbox `source` of organisation events that came over Stream.
pub const SOURCE_EVENT: &str = "event";

/// An address-book event as the inbox stores it: `{"eventType", "eventId", "eventCorpId",
/// "eventBornTime", "data"}`, with `data` the event's own JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEvent {
    pub event_type: String,
    /// The DingTalk userIds the event is about (`data.userId`).
    pub user_ids: Vec<String>,
    /// For [`CONTACT_MODIFY`]: where each looked-up member sits now (userId → department name
    /// chains), as [`Directory`] found it when the event arrived.
    pub departments: BTreeMap<String, Vec<Vec<String>>>,
}

impl ContactEvent {
    /// The stored payload of `event`, with the `departments` looked up for it; `data` that is
    /// not JSON is kept as a string.
    pub fn stored(event: &EventFrame, departments: &BTreeMap<String, Vec<Vec<String>>>) -> String {
        let data: Value =
            serde_json::from_str(&event.data).unwrap_or_else(|_| Value::String(event.data.clone()));
        serde_json::json!({
            "eventType": event.event_type,
            "eventId": event.event_id,
            "eventCorpId": event.corp_id,
            "eventBornTime": event.born_time,
            "data": data,
            "departments": departments,
        })
        .to_string()
    }

    /// The userIds of a frame's `data` (JSON text).
    pub fn user_ids_of(data: &str) -> Vec<String> {
        let body = serde_json::json!({"eventType": "", "data": serde_json::from_str::<Value>(data).unwrap_or(Value::Null)});
        ContactEvent::from_json(&body.to_string())
            .map(|e| e.user_ids)
            .unwrap_or_default()
    }

    /// Reads a stored payload. `userId` is a list; a single string (as some older pushes send
    /// it, and the HTTP callback's `UserId`) is read too.
    pub fn from_json(payload: &str) -> Option<ContactEvent> {
        let body: Value = serde_json::from_str(payload).ok()?;
        let event_type = body.get("eventType")?.as_str()?.to_string();
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        let ids = data.get("userId").or_else(|| data.get("UserId"));
        let user_ids = match ids {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Some(Value::String(one)) if !one.trim().is_empty() => vec![one.trim().to_string()],
            _ => Vec::new(),
        };
        let departments = body
            .get("departments")
            .cloned()
            .and_then(|d| serde_json::from_value(d).ok())
            .unwrap_or_default();
        Some(ContactEvent {
            event_type,
            user_ids,
            departments,
        })
    }

    pub fn is_leave(&self) -> bool {
        self.event_type == CONTACT_LEAVE
    }

    pub fn is_modify(&self) -> bool {
        self.event_type == CONTACT_MODIFY
    }
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
/// [`crate::inbox::CardStreamHandler`], which processes the callback in the same transaction as
/// its inbox row and returns the update from [`FrameHandler::card_callback`] after the commit.
#[derive(Clone)]
pub struct InboxHandler {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Looks up department changes ([`CONTACT_MODIFY`]); without it they are not acted on.
    directory: Option<Directory>,
}

impl InboxHandler {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> InboxHandler {
        InboxHandler {
            store,
            clock,
            directory: None,
        }
    }

    /// Acts on department changes too, looking members up in `directory`.
    pub fn with_directory(mut self, directory: Directory) -> InboxHandler {
        self.directory = Some(directory);
        self
    }

    /// For a department change: where each watched member sits now. A member DingTalk no longer
    /// knows is left out (a leave event follows); a passing failure fails the frame, which the
    /// gateway then redelivers.
    async fn look_up(
        &self,
        directory: &Directory,
        event: &EventFrame,
    ) -> Result<BTreeMap<String, Vec<Vec<String>>>, HandlerError> {
        let mut found = BTreeMap::new();
        for id in ContactEvent::user_ids_of(&event.data) {
            if !directory.watches(&id) {
                continue;
            }
            match directory.departments(&id).await {
                Ok(paths) => {
                    found.insert(id, paths);
                }
                Err(e @ SendError::Permanent { .. }) => {
                    tracing::warn!(error = %e, "department change of a member DingTalk does not describe; ignored");
                }
                Err(e) => return Err(HandlerError::Lookup(e.to_string())),
            }
        }
        Ok(found)
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

    /// Stores the address-book events the service acts on, keyed by `eventId` (else the frame
    /// id): every [`CONTACT_LEAVE`], and a [`CONTACT_MODIFY`] of a liaison or leader with where
    /// they sit now; every other event is acknowledged unstored.
    fn event<'a>(&'a self, message_id: &'a str, event: &'a EventFrame) -> HandlerFuture<'a, ()> {
        Box::pin(async move {
            let departments = match (event.event_type.as_str(), &self.directory) {
                (CONTACT_LEAVE, _) => BTreeMap::new(),
                (CONTACT_MODIFY, Some(directory)) => {
                    let found = self.look_up(directory, event).await?;
                    if found.is_empty() {
                        return Ok(());
                    }
                    found
                }
                _ => {
                    tracing::info!(event_type = %event.event_type, "stream event not acted on");
                    return Ok(());
                }
            };
            let key = if event.event_id.trim().is_empty() {
                message_id.to_string()
            } else {
                event.event_id.trim().to_string()
            };
            self.insert(
                SOURCE_EVENT,
                key,
                &ContactEvent::stored(event, &departments),
            )
            .await?;
            Ok(())
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
    let hash = crate::hex::lower_hex(&digest[..8]);
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

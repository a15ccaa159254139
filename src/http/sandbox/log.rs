//! The sandbox's conversations: every person's chat with the robot, read incrementally from the
//! inbox (what they sent, source `sandbox`) and the outbox (what the service sent them, channel
//! `sandbox`). A card update is a new outbox row with the same card key; it takes the earlier
//! card's place, as DingTalk updates a card. Nothing here is HTML: `pages` shows a chat.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::Deserialize;

use super::{CHANNEL, SOURCE};
use crate::dingtalk::inbound::RobotMessage;
use crate::store::{InboxRow, OutboxRow, Store, StoreError};

/// Every person's sandbox chat, built from the rows read so far.
///
/// Rows are read by ascending id from where the last refresh stopped. This is complete because
/// both tables use SQLite rowids assigned by the one writer, one commit after another, and no
/// row is ever deleted: the committed ids are exactly 1..=max, and a row past the first missing
/// id is not committed yet.
#[derive(Debug, Default)]
pub(super) struct Log {
    inbox_next: i64,
    outbox_next: i64,
    pub(super) chats: HashMap<String, Chat>,
}

#[derive(Debug, Default)]
pub(super) struct Chat {
    pub(super) items: Vec<Item>,
    /// Card key → index in `items` of the card shown.
    cards: HashMap<String, usize>,
    /// Grows with every change, so a page knows when to redraw.
    pub(super) changes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Item {
    /// When it was said or first sent; cards keep their first place when updated.
    pub(super) at: Timestamp,
    /// Orders items at the same instant: a message before the replies it caused.
    pub(super) rank: (u8, i64),
    pub(super) body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Body {
    /// The person's own message to the robot.
    Said(String),
    /// A message from the robot (DingTalk markdown).
    Told(String),
    Card {
        card: SandboxCard,
        /// When the content shown last changed, if after `at`.
        updated: Option<Timestamp>,
    },
}

/// The `sandbox` outbox payload (dispatch's sandbox rows and the outbox's admin notices).
#[derive(Debug, Deserialize)]
struct SandboxPayload {
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    card: Option<SandboxCard>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(super) struct SandboxCard {
    pub(super) key: String,
    #[serde(default)]
    pub(super) title: String,
    #[serde(default)]
    pub(super) markdown: String,
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) buttons: Vec<SandboxButton>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(super) struct SandboxButton {
    #[serde(default)]
    pub(super) label: String,
    #[serde(default)]
    pub(super) command: String,
}

impl Log {
    /// Reads the rows committed since the last refresh.
    pub(super) async fn refresh(&mut self, store: &Store) -> Result<(), StoreError> {
        let (inbox_from, outbox_from) = (self.inbox_next.max(1), self.outbox_next.max(1));
        let (inbox, outbox) = store
            .read(move |r| -> Result<_, StoreError> {
                let mut inbox = Vec::new();
                while let Some(row) = r.inbox(inbox_from + len(&inbox))? {
                    inbox.push(row);
                }
                let mut outbox = Vec::new();
                while let Some(row) = r.outbox(outbox_from + len(&outbox))? {
                    outbox.push(row);
                }
                Ok((inbox, outbox))
            })
            .await?;
        self.inbox_next = inbox_from + len(&inbox);
        self.outbox_next = outbox_from + len(&outbox);
        for row in &inbox {
            self.add_inbox(row);
        }
        for row in &outbox {
            self.add_outbox(row);
        }
        Ok(())
    }

    pub(super) fn add_inbox(&mut self, row: &InboxRow) {
        if row.source != SOURCE {
            return;
        }
        let Ok(message) = RobotMessage::from_json(row.payload.as_bytes()) else {
            return;
        };
        let (Some(sender), Some(text)) = (message.sender_staff_id(), message.text()) else {
            return;
        };
        let chat = self.chats.entry(sender.to_string()).or_default();
        chat.items.push(Item {
            at: row.received_at,
            rank: (0, row.id),
            body: Body::Said(text),
        });
        chat.changes += 1;
    }

    pub(super) fn add_outbox(&mut self, row: &OutboxRow) {
        if row.channel != CHANNEL {
            return;
        }
        let Ok(payload) = serde_json::from_slice::<SandboxPayload>(&row.payload) else {
            tracing::warn!(outbox = row.id, "sandbox row is not a sandbox payload");
            return;
        };
        // A sandbox row is never retried, so its next attempt is the instant it was queued.
        let at = row.next_attempt_at;
        for to in &payload.to {
            let chat = self.chats.entry(to.clone()).or_default();
            chat.changes += 1;
            let Some(card) = payload.card.clone() else {
                chat.items.push(Item {
                    at,
                    rank: (1, row.id),
                    body: Body::Told(payload.text.clone()),
                });
                continue;
            };
            match chat.cards.get(&card.key).copied() {
                Some(i) => {
                    chat.items[i].body = Body::Card {
                        card,
                        updated: Some(at),
                    }
                }
                None => {
                    chat.cards.insert(card.key.clone(), chat.items.len());
                    chat.items.push(Item {
                        at,
                        rank: (1, row.id),
                        body: Body::Card {
                            card,
                            updated: None,
                        },
                    });
                }
            }
        }
    }

    /// `<started>.<changes>`: the start instant makes a page loaded before a restart redraw,
    /// since the counts start over.
    pub(super) fn version(&self, person: &str, started: Timestamp) -> String {
        let changes = self.chats.get(person).map_or(0, |c| c.changes);
        format!("{}.{changes}", started.as_millisecond())
    }
}

fn len<T>(v: &[T]) -> i64 {
    i64::try_from(v.len()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_card_update_replaces_the_card_in_place() {
        let mut log = Log::default();
        let row = |id: i64, ms: i64, payload: serde_json::Value| OutboxRow {
            id,
            idem_key: format!("k{id}"),
            channel: CHANNEL.into(),
            target: "a".into(),
            payload: payload.to_string().into_bytes(),
            state: crate::store::OutboxState::Sent,
            attempts: 1,
            next_attempt_at: Timestamp::from_millisecond(ms).expect("ms"),
            lease_until: None,
            last_error: None,
            sent_at: None,
            response: None,
            dead_at: None,
        };
        let card = |status: &str| json!({"to": ["a"], "title": "t", "text": "x", "card": {"key": "c1", "title": "卡片", "markdown": "m", "status": status, "buttons": []}});
        log.add_outbox(&row(1, 1_000, card("")));
        log.add_outbox(&row(
            2,
            2_000,
            json!({"to": ["a", "b"], "title": "t", "text": "通知", "card": null}),
        ));
        log.add_outbox(&row(3, 3_000, card("已审核")));
        let a = &log.chats["a"];
        assert_eq!(a.items.len(), 2, "the update took the card's place");
        assert_eq!(a.changes, 3);
        match &a.items[0].body {
            Body::Card { card, updated } => {
                assert_eq!(card.status, "已审核");
                assert_eq!(updated.map(|t| t.as_millisecond()), Some(3_000));
            }
            other => panic!("expected the card first: {other:?}"),
        }
        assert_eq!(a.items[0].at.as_millisecond(), 1_000);
        assert_eq!(
            log.chats["b"].items.len(),
            1,
            "a notice reaches everyone in `to`"
        );
        let mut other = row(4, 4_000, card("z"));
        other.channel = "robot_batch".into();
        log.add_outbox(&other);
        assert_eq!(
            log.chats["a"].changes, 3,
            "other channels are not the sandbox's"
        );
    }
}

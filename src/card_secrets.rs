//! What makes a card tap hard to forge (security issue 13; protocol §6.4 and §13, where how
//! DingTalk authenticates an HTTP card callback is unconfirmed). Two secrets, generated once by
//! the service and kept in the database (`store::secrets`), so a backup carries them:
//! - the card instance ids (`outTrackId`s) carry an HMAC of the card and its recipient under a
//!   key only this service holds, so knowing a case number, a card key and a staff id is not
//!   enough to name a card copy;
//! - the HTTP card callback is served at `POST /dingtalk/card/<segment>`, a path nobody can
//!   guess, which the admin registers with `card/callbacks/register` (`tiaochu check-config`
//!   shows it).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha2::Sha256;

use crate::store::{Store, StoreError, random_bytes};

/// The stored secret's name for the `outTrackId` HMAC key.
const ID_KEY: &str = "card_ids";
/// The stored secret's name for the callback path segment.
const CALLBACK_SEGMENT: &str = "card_callback_path";
/// The path of the HTTP card callback, before its secret segment.
pub const CALLBACK_PATH_PREFIX: &str = "/dingtalk/card/";
/// Bytes of the HMAC kept in an `outTrackId` (80 bits: far beyond online guessing, and the id
/// stays short).
const TAG_BYTES: usize = 10;

/// The two card secrets. `Debug` never shows them.
#[derive(Clone)]
pub struct CardSecrets {
    id_key: Vec<u8>,
    callback_segment: String,
}

impl CardSecrets {
    /// The stored secrets, generated and stored now when this database has none yet.
    pub fn load_or_create(store: &Store, now: Timestamp) -> Result<CardSecrets, StoreError> {
        store.write_blocking(move |tx| {
            Ok(CardSecrets::from_bytes(
                tx.service_secret(ID_KEY, now)?,
                &tx.service_secret(CALLBACK_SEGMENT, now)?,
            ))
        })
    }

    /// The stored secrets without creating any (for `check-config`, which changes nothing);
    /// None before the service first started on this database.
    pub fn stored(store: &Store) -> Result<Option<CardSecrets>, StoreError> {
        store.read_blocking(|tx| {
            Ok(
                match (
                    tx.stored_secret(ID_KEY)?,
                    tx.stored_secret(CALLBACK_SEGMENT)?,
                ) {
                    (Some(id_key), Some(segment)) => {
                        Some(CardSecrets::from_bytes(id_key, &segment))
                    }
                    _ => None,
                },
            )
        })
    }

    /// Fresh secrets that are stored nowhere: for a decision engine run outside the service
    /// (tests, tools whose cards are never tapped).
    pub fn ephemeral() -> CardSecrets {
        // The operating system's randomness failing is not recoverable in any useful way.
        let random = || random_bytes().expect("operating system randomness");
        CardSecrets::from_bytes(random().to_vec(), &random())
    }

    fn from_bytes(id_key: Vec<u8>, segment: &[u8]) -> CardSecrets {
        CardSecrets {
            id_key,
            callback_segment: URL_SAFE_NO_PAD.encode(segment),
        }
    }

    /// The card-platform instance id (`outTrackId`) of `card_key` as delivered to `staff_id`:
    /// one instance per person, since a robot 1:1 space holds one user. It starts with the card
    /// key (so the case number, which holds no `_`, leads it) in characters safe in any id, and
    /// carries the HMAC of the whole key and the recipient, which also keeps apart keys that
    /// differ only in Chinese unit names.
    pub fn instance_id(&self, card_key: &str, staff_id: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.id_key).expect("HMAC accepts keys of any length");
        mac.update(card_key.as_bytes());
        // A separator no card key holds, so ("a", "bc") and ("ab", "c") sign differently.
        mac.update(&[0]);
        mac.update(staff_id.as_bytes());
        let tag = crate::hex::lower_hex(&mac.finalize().into_bytes()[..TAG_BYTES]);
        format!("{}-{tag}__{}", id_safe(card_key), id_safe(staff_id))
    }

    /// The secret path segment of the HTTP card callback.
    pub fn callback_segment(&self) -> &str {
        &self.callback_segment
    }

    /// `/dingtalk/card/<segment>`: the path to register with DingTalk.
    pub fn callback_path(&self) -> String {
        format!("{CALLBACK_PATH_PREFIX}{}", self.callback_segment)
    }

    /// Whether `segment` is the callback's, compared in constant time so the answer's timing
    /// tells nothing about how much of a guess was right.
    pub fn is_callback_segment(&self, segment: &str) -> bool {
        let (a, b) = (segment.as_bytes(), self.callback_segment.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for CardSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardSecrets(***)")
    }
}

/// Only characters safe in any id are kept; everything else becomes `_`.
fn id_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_of_different_units_and_people_differ() {
        let s = CardSecrets::ephemeral();
        let a = s.instance_id("TC-2026-0001/coord/区住建局", "u1");
        let b = s.instance_id("TC-2026-0001/coord/区财政局", "u1");
        let c = s.instance_id("TC-2026-0001/coord/区住建局", "u2");
        assert!(a != b && a != c && b != c);
        assert!(
            a.starts_with("TC-2026-0001_coord_") && a.ends_with("__u1"),
            "{a}"
        );
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn instance_ids_depend_on_the_secret() {
        let (s, t) = (CardSecrets::ephemeral(), CardSecrets::ephemeral());
        let key = "TC-2026-0001/review/v1";
        assert_eq!(s.instance_id(key, "u1"), s.clone().instance_id(key, "u1"));
        assert_ne!(s.instance_id(key, "u1"), t.instance_id(key, "u1"));
    }

    #[test]
    fn the_separator_keeps_key_and_recipient_apart() {
        let s = CardSecrets::ephemeral();
        let tag = |id: String| id.split("__").next().map(str::to_string);
        assert_ne!(tag(s.instance_id("a", "bc")), tag(s.instance_id("ab", "c")));
    }

    #[test]
    fn only_the_exact_segment_matches() {
        let s = CardSecrets::ephemeral();
        let seg = s.callback_segment().to_string();
        assert!(seg.len() >= 40, "{seg}");
        assert!(s.is_callback_segment(&seg));
        assert!(!s.is_callback_segment(&seg[..seg.len() - 1]));
        assert!(!s.is_callback_segment(""));
        let mut wrong = seg.clone().into_bytes();
        wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
        assert!(!s.is_callback_segment(&String::from_utf8(wrong).expect("ascii")));
        assert_eq!(s.callback_path(), format!("/dingtalk/card/{seg}"));
        assert_eq!(format!("{s:?}"), "CardSecrets(***)");
    }
}

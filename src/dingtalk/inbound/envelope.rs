//! The encrypted callback envelope some tenants turn on (docs/dingtalk-protocol.md §1.2): the
//! body is `{"encrypt":"<Base64>"}` instead of the message. The crypto is DingTalk's event
//! subscription scheme, as its own open-source helpers implement it (DingCallbackCrypto):
//!
//! - key = Base64-decode(`aes_key` + "="): the 43-character key from the console gives 32 bytes,
//!   so AES-256; the IV is the key's first 16 bytes;
//! - plaintext = 16 random bytes ‖ message length (4 bytes, big-endian) ‖ message ‖ receiver id
//!   (the app's key or corp id, possibly absent), padded PKCS#7-style to a multiple of 32 bytes
//!   (pad value 1..=32); AES-CBC without further padding; Base64.
//!
//! The receiver id is not checked: which id a robot callback carries is not documented, and the
//! secret key is what authenticates. CBC has no integrity of its own, but the body is only taken
//! after the callback signature verified, and a signature carries one message only (see
//! `http/robot.rs`).

use aes::Aes256;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

use super::InboundError;
use crate::settings::Secret;

/// The console's `aes_key`: 43 Base64 characters.
const KEY_TEXT_LEN: usize = 43;
const BLOCK: usize = 16;
/// Padding goes to a multiple of this (DingTalk's helpers pad to 32, not to the AES block).
const PAD_TO: usize = 32;
const RANDOM_LEN: usize = 16;
const LEN_LEN: usize = 4;

/// The console's key is 43 characters whose last one carries 2 bits beyond the 32 bytes; they
/// need not be zero (DingTalk's helpers decode leniently, and so must we).
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// `[dingtalk] callback_aes_key` is not a key DingTalk gives out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "[dingtalk] callback_aes_key 应为钉钉开发者后台生成的 43 位加密密钥（aes_key，Base64 字符），请核对后重新填写；不使用回调加密时留空"
)]
pub struct CallbackKeyError;

/// The decryption key of the envelope. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct CallbackKey {
    key: [u8; 32],
}

impl std::fmt::Debug for CallbackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackKey(***)")
    }
}

/// The envelope's JSON: the one field it has.
#[derive(Deserialize)]
struct Envelope {
    encrypt: String,
}

impl CallbackKey {
    /// The key of `[dingtalk] callback_aes_key`; `None` when it is empty (encryption off).
    pub fn from_setting(aes_key: &Secret) -> Result<Option<CallbackKey>, CallbackKeyError> {
        let text = aes_key.expose().trim();
        if text.is_empty() {
            return Ok(None);
        }
        if text.len() != KEY_TEXT_LEN {
            return Err(CallbackKeyError);
        }
        let bytes = KEY_BASE64
            .decode(format!("{text}="))
            .map_err(|_| CallbackKeyError)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CallbackKeyError)?;
        Ok(Some(CallbackKey { key }))
    }

    fn cipher(&self) -> Aes256 {
        Aes256::new(GenericArray::from_slice(&self.key))
    }

    fn iv(&self) -> [u8; BLOCK] {
        let mut iv = [0u8; BLOCK];
        iv.copy_from_slice(&self.key[..BLOCK]);
        iv
    }

    /// The message inside the envelope `body`. Anything but an envelope that decrypts to the
    /// layout above is refused: a plain message ([`InboundError::NotEncrypted`]), or a body that
    /// does not decrypt ([`InboundError::Undecryptable`]).
    pub fn open(&self, body: &[u8]) -> Result<Vec<u8>, InboundError> {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|_| InboundError::NotEncrypted)?;
        self.decrypt(&envelope.encrypt)
            .ok_or(InboundError::Undecryptable)
    }

    /// The message in `encrypt` (Base64; whitespace, as line-wrapping encoders leave it, is
    /// ignored); `None` when it does not decrypt to the layout.
    pub fn decrypt(&self, encrypt: &str) -> Option<Vec<u8>> {
        let compact: String = encrypt
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let mut data = STANDARD.decode(compact).ok()?;
        if data.is_empty() || data.len() % BLOCK != 0 {
            return None;
        }
        let cipher = self.cipher();
        let mut previous = self.iv();
        for chunk in data.chunks_exact_mut(BLOCK) {
            let mut this = [0u8; BLOCK];
            this.copy_from_slice(chunk);
            let block = GenericArray::from_mut_slice(chunk);
            cipher.decrypt_block(block);
            for (byte, prev) in chunk.iter_mut().zip(previous) {
                *byte ^= prev;
            }
            previous = this;
        }
        let pad = usize::from(*data.last()?);
        if pad == 0 || pad > PAD_TO || pad > data.len() {
            return None;
        }
        let unpadded = data.len() - pad;
        if data[unpadded..].iter().any(|&b| usize::from(b) != pad) {
            return None;
        }
        let rest = data.get(RANDOM_LEN..unpadded)?;
        let (len, rest) = rest.split_at_checked(LEN_LEN)?;
        let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
        rest.get(..len).map(<[u8]>::to_vec)
    }

    /// The envelope DingTalk would send for `message` to `receiver`, with `random` as its first
    /// 16 bytes: `{"encrypt":"…"}`. For tests and the fake DingTalk, which must speak it too.
    pub fn seal(&self, random: [u8; RANDOM_LEN], message: &[u8], receiver: &str) -> String {
        let mut data = Vec::with_capacity(RANDOM_LEN + LEN_LEN + message.len() + PAD_TO);
        data.extend_from_slice(&random);
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        data.extend_from_slice(&len.to_be_bytes());
        data.extend_from_slice(message);
        data.extend_from_slice(receiver.as_bytes());
        let pad = PAD_TO - data.len() % PAD_TO;
        // pad is 1..=32, so it fits a byte.
        data.extend(std::iter::repeat_n(pad as u8, pad));
        serde_json::json!({ "encrypt": self.encrypt_blocks(data) }).to_string()
    }

    /// AES-CBC over `data` (a multiple of 16 bytes), Base64.
    fn encrypt_blocks(&self, mut data: Vec<u8>) -> String {
        let cipher = self.cipher();
        let mut previous = self.iv();
        for chunk in data.chunks_exact_mut(BLOCK) {
            for (byte, prev) in chunk.iter_mut().zip(previous) {
                *byte ^= prev;
            }
            cipher.encrypt_block(GenericArray::from_mut_slice(chunk));
            previous.copy_from_slice(chunk);
        }
        STANDARD.encode(&data)
    }
}

/// Whether `body` is an envelope (a JSON object with a string `encrypt`), whatever its content.
pub fn is_envelope(body: &[u8]) -> bool {
    serde_json::from_slice::<Envelope>(body).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> CallbackKey {
        CallbackKey::from_setting(&Secret::new(text))
            .expect("valid key")
            .expect("set")
    }

    /// Published with DingTalk's own Rust helper (open-dingtalk/DingTalk-Callback-Crypto,
    /// `dingtalk_callback_crypto.rs`, test_msg_decrypt): a suite check event, 16-byte padded.
    const PUBLISHED_KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";
    const PUBLISHED_ENCRYPT: &str = "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==";
    const PUBLISHED_PLAIN: &str = r#"{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}"#;

    #[test]
    fn the_published_vector_decrypts() {
        let plain = key(PUBLISHED_KEY)
            .decrypt(PUBLISHED_ENCRYPT)
            .expect("decrypts");
        assert_eq!(String::from_utf8(plain).expect("utf-8"), PUBLISHED_PLAIN);
        // Line-wrapped Base64 (Python's encodebytes) is the same envelope.
        let wrapped: String = PUBLISHED_ENCRYPT
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        assert!(key(PUBLISHED_KEY).decrypt(&wrapped).is_some());
    }

    #[test]
    fn a_sealed_message_opens_again_with_the_32_byte_padding() {
        let k = key(PUBLISHED_KEY);
        let message = r#"{"msgId":"m1","msgtype":"text","text":{"content":"调处"}}"#;
        let body = k.seal(*b"0123456789abcdef", message.as_bytes(), "dingappkey");
        assert!(is_envelope(body.as_bytes()));
        let encrypt: serde_json::Value = serde_json::from_str(&body).expect("json");
        let raw = STANDARD
            .decode(encrypt["encrypt"].as_str().expect("encrypt"))
            .expect("base64");
        assert_eq!(raw.len() % PAD_TO, 0, "padded to 32 bytes");
        assert_eq!(k.open(body.as_bytes()).expect("opens"), message.as_bytes());
        // With no receiver id, and a message that fills the last block exactly.
        let exact = "x".repeat(2 * PAD_TO - RANDOM_LEN - LEN_LEN);
        let body = k.seal([7; 16], exact.as_bytes(), "");
        assert_eq!(k.open(body.as_bytes()).expect("opens"), exact.as_bytes());
    }

    #[test]
    fn a_known_ciphertext_for_our_own_layout() {
        // Fixed input, so a change in the layout or the padding shows here (cross-checked with
        // Python's `cryptography` AES-256-CBC on the same bytes).
        let k = key(PUBLISHED_KEY);
        let body = k.seal(*b"AAAAAAAAAAAAAAAA", b"{}", "dingkey");
        assert_eq!(
            body,
            r#"{"encrypt":"mhYs5Rd3+mv2gl7sk+AJGb89SF+WWB78Da9GENnC7d4="}"#
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let k = key(PUBLISHED_KEY);
        assert_eq!(
            k.open(br#"{"msgId":"m","msgtype":"text"}"#),
            Err(InboundError::NotEncrypted)
        );
        let other = key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG");
        let sealed = other.seal([1; 16], b"{}", "");
        assert_eq!(
            k.open(sealed.as_bytes()),
            Err(InboundError::Undecryptable),
            "another key"
        );
        for bad in [
            r#"{"encrypt":""}"#,
            r#"{"encrypt":"not base64!"}"#,
            r#"{"encrypt":"AAAA"}"#,
        ] {
            assert_eq!(
                k.open(bad.as_bytes()),
                Err(InboundError::Undecryptable),
                "{bad}"
            );
        }
        // Well encrypted, wrong inside: a length past the end, and broken padding.
        let mut long = vec![0u8; RANDOM_LEN];
        long.extend_from_slice(&1000u32.to_be_bytes());
        long.extend_from_slice(b"{}");
        long.resize(PAD_TO, 10);
        let mut zero_pad = vec![0u8; PAD_TO];
        zero_pad[PAD_TO - 1] = 0;
        let mut uneven_pad = vec![0u8; PAD_TO];
        uneven_pad[PAD_TO - 2..].copy_from_slice(&[3, 2]);
        let mut big_pad = vec![0u8; 2 * PAD_TO];
        big_pad.iter_mut().for_each(|b| *b = 33);
        for data in [long, zero_pad, uneven_pad, big_pad] {
            let encrypt = k.encrypt_blocks(data.clone());
            assert_eq!(k.decrypt(&encrypt), None, "{data:?}");
        }
    }

    #[test]
    fn keys_must_be_the_consoles_43_characters() {
        assert!(matches!(
            CallbackKey::from_setting(&Secret::new("")),
            Ok(None)
        ));
        for bad in [
            "short",
            &"a".repeat(44),
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert_eq!(
                CallbackKey::from_setting(&Secret::new(bad)).map(|k| k.is_some()),
                Err(CallbackKeyError),
                "{bad}"
            );
        }
        let shown = format!("{:?}", key(PUBLISHED_KEY));
        assert!(!shown.contains(PUBLISHED_KEY), "{shown}");
    }
}

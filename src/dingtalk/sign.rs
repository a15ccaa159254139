//! The two DingTalk signatures (docs/dingtalk-protocol.md §1.2, §5.1, §10). Both are
//! `HMAC-SHA256(key = secret, msg = timestamp + "\n" + secret)`, but they are encoded
//! differently where they bite: the robot callback's `sign` header is plain Base64, while the
//! custom group robot's `sign` query parameter is URL-encoded Base64.
//!
//! Whitespace: the callback headers are trimmed of ASCII whitespace once, and that one trimmed
//! string is used for both the HMAC and the time window, so the two checks can never disagree.
//! A timestamp header with a trailing newline or space therefore verifies exactly as the bare
//! digits do; a `sign` computed over the untrimmed text does not match.
//!
//! The callback signature covers only the timestamp, not the body: a verified pair is
//! remembered with its message ([`signature_id`]) so that it carries one message only.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

/// How far in the past a callback timestamp may lie: 1 hour, in milliseconds (§1.2).
pub const MAX_AGE_MS: i64 = 3_600_000;

/// How far in the future a callback timestamp may lie: 5 minutes, in milliseconds. Tighter
/// than DingTalk's ±1 hour because only clock skew explains a future timestamp (§1.2 hardening).
pub const MAX_FUTURE_MS: i64 = 300_000;

/// The length of an HMAC-SHA256 tag in bytes.
const TAG_LEN: usize = 32;

/// Why a robot callback signature was refused. Holds no header values, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("timestamp 请求头不是毫秒数")]
    BadTimestamp,
    #[error("sign 请求头不是有效的 Base64 签名")]
    BadSign,
    #[error("timestamp 已超过 1 小时（早了 {age_ms} 毫秒）")]
    Expired { age_ms: i64 },
    #[error("timestamp 超前当前时间超过 5 分钟（超前 {ahead_ms} 毫秒）")]
    Future { ahead_ms: i64 },
    #[error("签名不匹配")]
    Mismatch,
    /// The (timestamp, sign) pair already came with another message: the signature covers the
    /// timestamp only, so a captured pair would otherwise carry any body for an hour.
    #[error("该签名已随另一条消息使用过（疑似重放），已拒绝")]
    Replayed,
}

fn mac(timestamp: &str, secret: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(secret.as_bytes());
    mac
}

fn tag_base64(timestamp: &str, secret: &str) -> String {
    STANDARD.encode(mac(timestamp, secret).finalize().into_bytes())
}

/// The `sign` header DingTalk sends with a robot callback: standard padded Base64, not
/// URL-encoded. `timestamp` is signed verbatim (milliseconds since the epoch, as text).
pub fn callback_sign(timestamp: &str, secret: &str) -> String {
    tag_base64(timestamp, secret)
}

/// Checks a robot callback's `timestamp` and `sign` headers against `secret` at `now_ms`
/// (milliseconds since the epoch). Accepted iff the timestamp is digits only, at most
/// [`MAX_AGE_MS`] old and at most [`MAX_FUTURE_MS`] ahead (both edges inclusive), and the
/// decoded `sign` equals the HMAC, compared in constant time.
pub fn verify_callback(
    timestamp_header: &str,
    sign_header: &str,
    secret: &str,
    now_ms: i64,
) -> Result<(), SignError> {
    let timestamp = timestamp_header.trim_ascii();
    // Digits only: `i64::from_str` would also take "+123", which DingTalk never sends.
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignError::BadTimestamp);
    }
    let ts: i64 = timestamp.parse().map_err(|_| SignError::BadTimestamp)?;
    let tag = STANDARD
        .decode(sign_header.trim_ascii())
        .map_err(|_| SignError::BadSign)?;
    if tag.len() != TAG_LEN {
        return Err(SignError::BadSign);
    }
    let age_ms = now_ms.saturating_sub(ts);
    if age_ms > MAX_AGE_MS {
        return Err(SignError::Expired { age_ms });
    }
    if age_ms < -MAX_FUTURE_MS {
        return Err(SignError::Future {
            ahead_ms: age_ms.saturating_neg(),
        });
    }
    mac(timestamp, secret)
        .verify_slice(&tag)
        .map_err(|_| SignError::Mismatch)
}

/// What identifies a robot callback signature, to remember it while it can verify: the
/// timestamp in milliseconds and the SHA-256 (hex) of the decoded tag — never the tag itself,
/// which is a credential for that hour. `None` for headers [`verify_callback`] would refuse as
/// malformed; call it after verifying.
pub fn signature_id(timestamp_header: &str, sign_header: &str) -> Option<(i64, String)> {
    use sha2::Digest as _;
    let timestamp = timestamp_header.trim_ascii();
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ts: i64 = timestamp.parse().ok()?;
    let tag = STANDARD.decode(sign_header.trim_ascii()).ok()?;
    let digest = Sha256::digest(&tag);
    Some((ts, crate::hex::lower_hex(&digest)))
}

/// The `sign` query parameter of a custom group robot webhook (§5.1): the Base64 tag,
/// percent-encoded (`+` → `%2B`, `/` → `%2F`, `=` → `%3D`). Raw Base64 would turn `+` into a
/// space on DingTalk's side and fail with `310000 sign not match`.
pub fn custom_robot_sign(timestamp_ms: i64, secret: &str) -> String {
    let b64 = tag_base64(&timestamp_ms.to_string(), secret);
    utf8_percent_encode(&b64, NON_ALPHANUMERIC).to_string()
}

/// The webhook URL with `timestamp` and `sign` appended; `webhook` is the robot's URL as
/// configured (normally already carrying `?access_token=`).
pub fn custom_robot_url(webhook: &str, secret: &str, timestamp_ms: i64) -> String {
    let sep = if webhook.contains('?') { '&' } else { '?' };
    format!(
        "{webhook}{sep}timestamp={timestamp_ms}&sign={}",
        custom_robot_sign(timestamp_ms, secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §10.1: (timestamp, appSecret, sign).
    const CALLBACK_VECTORS: [(&str, &str, &str); 4] = [
        (
            "1577262236757",
            "this is a secret",
            "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA=",
        ),
        (
            "1700000000000",
            "secret",
            "OuzzJR5+xZ4/EYwqtNt6sMYZQMTa/HEGvc9miJe7XzY=",
        ),
        (
            "1735689600000",
            "Zq3b9sVt1-xK8mP0wLr7_eYhC2uNd5fGaJ4kQ6iT9oB1cXzR3vW8yE0pS7lU2nM5",
            "4WaaT3upDv3jNeFYdk0q8u0UYtJlyqPbc29K1nVTnMY=",
        ),
        (
            "1767225600000",
            "dingtalk-app-secret-中文",
            "yezwYjzsz7KU7AhdqJLB5ObTdgKjdrzm6EYONwwXVjQ=",
        ),
    ];

    /// §10.2: (timestamp, secret, URL-encoded sign).
    const ROBOT_VECTORS: [(i64, &str, &str); 4] = [
        (
            1577262236757,
            "this is secret",
            "hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D",
        ),
        (
            1700000000000,
            "secret",
            "OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D",
        ),
        (
            1735689600000,
            "SECb1e5d8f0a7c64d3e9f2a1b0c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f",
            "yzomZPkMcGhWi8d7fB4fnwlO15MdogJ%2FGhxIcUMz8EQ%3D",
        ),
        (
            1767225600000,
            "SEC000000000000000000000000000000000000000000000000000000000000000",
            "qr%2BpmveWE06Pok6mEzgoPOb3e0LOmNWYJKaAh52WQ1U%3D",
        ),
    ];

    fn ms(ts: &str) -> i64 {
        ts.parse().expect("vector timestamp")
    }

    #[test]
    fn callback_known_answers() {
        for (ts, secret, sign) in CALLBACK_VECTORS {
            assert_eq!(callback_sign(ts, secret), sign, "vector {ts}");
            assert_eq!(
                verify_callback(ts, sign, secret, ms(ts)),
                Ok(()),
                "vector {ts}"
            );
        }
    }

    #[test]
    fn custom_robot_known_answers() {
        // The reference describes #4's secret as "SEC + 64×0", but its published sign is the
        // one for SEC + 63 zeros (checked with Python's hmac); with 64 zeros the sign is
        // T%2BV9nlHbUSitpwTtwGPRGW8kvPQ6y193e%2BHACSZHzqQ%3D. The sign is what we pin.
        assert_eq!(ROBOT_VECTORS[3].1.len(), 3 + 63);
        assert_eq!(
            custom_robot_sign(1767225600000, &format!("SEC{}", "0".repeat(64))),
            "T%2BV9nlHbUSitpwTtwGPRGW8kvPQ6y193e%2BHACSZHzqQ%3D"
        );
        for (ts, secret, sign) in ROBOT_VECTORS {
            assert_eq!(custom_robot_sign(ts, secret), sign, "vector {ts}");
        }
        // The base64 of §10.2 #2 equals §10.1 #2: same recipe, different encoding.
        assert_eq!(
            callback_sign("1700000000000", "secret"),
            "OuzzJR5+xZ4/EYwqtNt6sMYZQMTa/HEGvc9miJe7XzY="
        );
    }

    #[test]
    fn custom_robot_url_matches_the_documented_one() {
        assert_eq!(
            custom_robot_url(
                "https://oapi.dingtalk.com/robot/send?access_token=ACCESS_TOKEN",
                "this is secret",
                1577262236757
            ),
            "https://oapi.dingtalk.com/robot/send?access_token=ACCESS_TOKEN\
             &timestamp=1577262236757&sign=hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D"
        );
        assert!(
            custom_robot_url("http://fake.test/send", "s", 1)
                .starts_with("http://fake.test/send?timestamp=1&sign=")
        );
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let (ts, _, sign) = CALLBACK_VECTORS[0];
        assert_eq!(
            verify_callback(ts, sign, "this is secret", ms(ts)),
            Err(SignError::Mismatch)
        );
    }

    #[test]
    fn window_edges() {
        let (ts, secret, sign) = CALLBACK_VECTORS[0];
        let t = ms(ts);
        assert_eq!(verify_callback(ts, sign, secret, t + MAX_AGE_MS), Ok(()));
        assert_eq!(
            verify_callback(ts, sign, secret, t + MAX_AGE_MS + 1),
            Err(SignError::Expired {
                age_ms: MAX_AGE_MS + 1
            })
        );
        assert_eq!(verify_callback(ts, sign, secret, t - MAX_FUTURE_MS), Ok(()));
        assert_eq!(
            verify_callback(ts, sign, secret, t - MAX_FUTURE_MS - 1),
            Err(SignError::Future {
                ahead_ms: MAX_FUTURE_MS + 1
            })
        );
        // The window is checked even with a valid signature; extremes do not overflow.
        assert!(matches!(
            verify_callback(ts, sign, secret, i64::MAX),
            Err(SignError::Expired { .. })
        ));
        assert!(matches!(
            verify_callback(ts, sign, secret, i64::MIN),
            Err(SignError::Future { .. })
        ));
    }

    #[test]
    fn flipping_any_byte_fails() {
        let (ts, secret, sign) = CALLBACK_VECTORS[1];
        let now = ms(ts);
        for i in 0..ts.len() {
            let mut b = ts.as_bytes().to_vec();
            b[i] ^= 1;
            let flipped = String::from_utf8(b).expect("ascii stays ascii");
            assert!(
                verify_callback(&flipped, sign, secret, now).is_err(),
                "timestamp byte {i}"
            );
        }
        for i in 0..sign.len() {
            let mut b = sign.as_bytes().to_vec();
            b[i] ^= 1;
            let flipped = String::from_utf8(b).expect("ascii stays ascii");
            assert!(
                verify_callback(ts, &flipped, secret, now).is_err(),
                "sign byte {i}"
            );
        }
    }

    #[test]
    fn malformed_headers() {
        let (ts, secret, sign) = CALLBACK_VECTORS[1];
        let now = ms(ts);
        for bad in [
            "",
            " ",
            "+1700000000000",
            "-1",
            "17000000000x0",
            "1.7e12",
            "99999999999999999999",
        ] {
            assert_eq!(
                verify_callback(bad, sign, secret, now),
                Err(SignError::BadTimestamp),
                "{bad:?}"
            );
        }
        let short = STANDARD.encode([0u8; 31]);
        let long = STANDARD.encode([0u8; 33]);
        let unpadded = sign.trim_end_matches('=');
        let url_encoded = "OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D";
        for bad in ["", "not base64!", &short, &long, unpadded, url_encoded] {
            assert_eq!(
                verify_callback(ts, bad, secret, now),
                Err(SignError::BadSign),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_once_for_both_checks() {
        let (ts, secret, sign) = CALLBACK_VECTORS[1];
        let now = ms(ts);
        assert_eq!(
            verify_callback(&format!("{ts}\n"), sign, secret, now),
            Ok(())
        );
        assert_eq!(
            verify_callback(&format!(" {ts} "), &format!("{sign} "), secret, now),
            Ok(())
        );
        // A sign made over the untrimmed text is not DingTalk's and does not match.
        let over_newline = callback_sign(&format!("{ts}\n"), secret);
        assert_eq!(
            verify_callback(&format!("{ts}\n"), &over_newline, secret, now),
            Err(SignError::Mismatch)
        );
        // Whitespace inside the value is not trimmed.
        assert_eq!(
            verify_callback("1700000 000000", sign, secret, now),
            Err(SignError::BadTimestamp)
        );
    }

    #[test]
    fn a_signature_is_remembered_by_its_hash() {
        let (ts, _, sign) = CALLBACK_VECTORS[1];
        let (ms, hash) = signature_id(&format!(" {ts}\n"), &format!("{sign} ")).expect("id");
        assert_eq!(ms, 1_700_000_000_000);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(sign));
        assert_eq!(signature_id(ts, sign), Some((ms, hash.clone())));
        let (_, _, other) = CALLBACK_VECTORS[2];
        assert_ne!(signature_id(ts, other).map(|(_, h)| h), Some(hash));
        assert_eq!(signature_id("x", sign), None);
        assert_eq!(signature_id(ts, "not base64!"), None);
    }

    #[test]
    fn errors_do_not_carry_header_values() {
        let (ts, _, sign) = CALLBACK_VECTORS[1];
        let err = verify_callback(ts, sign, "other", ms(ts)).expect_err("mismatch");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(sign) && !shown.contains(ts), "{shown}");
    }
}

//! The robot message DingTalk delivers (docs/dingtalk-protocol.md §1.3): the body of the HTTP
//! callback and the `data` of a Stream frame. Deserialization is tolerant because DingTalk adds
//! fields without notice and is loose about types: unknown keys are ignored, every field may be
//! absent or `null`, and `createAt` / `sessionWebhookExpiredTime` come as numbers or strings.
//! Only `msgId` and `msgtype` are required ([`RobotMessage::from_json`]): without them the
//! message can neither be deduplicated nor understood. A tenant may have DingTalk encrypt the
//! HTTP callback body: [`envelope`] opens it.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

pub mod envelope;

pub use envelope::{CallbackKey, CallbackKeyError};

/// Why a body is not a robot message. The messages are short Chinese text for the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("请求体不是钉钉机器人消息（JSON 对象）")]
    NotRobotMessage,
    #[error("机器人消息缺少 msgId")]
    MissingMsgId,
    #[error("机器人消息缺少 msgtype")]
    MissingMsgType,
    #[error(
        "已配置回调加密（[dingtalk] callback_aes_key），但请求体不是加密格式 {{\"encrypt\":…}}"
    )]
    NotEncrypted,
    #[error("加密的请求体无法解密（密钥不符或内容损坏）")]
    Undecryptable,
    #[error("请求体已加密，但未配置 [dingtalk] callback_aes_key，无法解密")]
    EncryptedWithoutKey,
}

/// Whether the message came from a 1:1 chat or a group (`conversationType` "1" / "2").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    OneToOne,
    Group,
}

/// A robot message as received. Strings DingTalk left out are empty.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RobotMessage {
    /// `text`, `richText`, `picture`, `audio`, `video`, `file`, `unknownMsgType`, …
    #[serde(deserialize_with = "nullable")]
    pub msgtype: String,
    /// Idempotency key: unique per message.
    #[serde(deserialize_with = "nullable")]
    pub msg_id: String,
    /// Milliseconds since the epoch.
    #[serde(deserialize_with = "millis")]
    pub create_at: Option<i64>,
    /// `"1"` 1:1, `"2"` group; see [`RobotMessage::conversation_kind`].
    #[serde(deserialize_with = "nullable")]
    pub conversation_type: String,
    /// `cid…==`; equals the openConversationId used by group sends.
    #[serde(deserialize_with = "nullable")]
    pub conversation_id: String,
    #[serde(deserialize_with = "nullable")]
    pub conversation_title: String,
    /// Encrypted; never an identity (use [`RobotMessage::sender_staff_id`]).
    #[serde(deserialize_with = "nullable")]
    pub sender_id: String,
    #[serde(deserialize_with = "nullable")]
    pub sender_nick: String,
    #[serde(deserialize_with = "nullable")]
    sender_staff_id: String,
    #[serde(deserialize_with = "nullable")]
    pub sender_corp_id: String,
    #[serde(deserialize_with = "nullable")]
    pub chatbot_user_id: String,
    #[serde(deserialize_with = "nullable")]
    pub robot_code: String,
    pub is_admin: Option<bool>,
    pub is_in_at_list: Option<bool>,
    #[serde(deserialize_with = "nullable")]
    at_users: Vec<AtUser>,
    #[serde(deserialize_with = "nullable")]
    session_webhook: String,
    /// Milliseconds since the epoch.
    #[serde(deserialize_with = "millis")]
    session_webhook_expired_time: Option<i64>,
    /// Set for `msgtype = "text"`.
    pub text: Option<TextBody>,
    /// Set for the other types; kept as JSON because its shape depends on `msgtype` and a
    /// shape we do not know must not make the whole message unreadable.
    pub content: Option<serde_json::Value>,
}

/// `text` of a text message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TextBody {
    #[serde(deserialize_with = "nullable")]
    pub content: String,
}

/// A user @-mentioned in a group message; the robot itself is among them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AtUser {
    #[serde(deserialize_with = "nullable")]
    pub dingtalk_id: String,
    /// Org user id; absent for the robot and for users outside the org.
    pub staff_id: Option<String>,
}

/// Where a reply to this very conversation can be posted without a token (§1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWebhook<'a> {
    pub url: &'a str,
    /// None when DingTalk did not say; treat as expired after ~90 minutes from `createAt`.
    pub expires_at: Option<Timestamp>,
}

impl SessionWebhook<'_> {
    /// True when the webhook is still valid at `now` (unknown expiry counts as valid).
    pub fn usable_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

impl RobotMessage {
    /// Parses a callback body. Fails unless it is a JSON object with a non-empty `msgId` and
    /// `msgtype`; every other field is optional.
    pub fn from_json(body: &[u8]) -> Result<RobotMessage, InboundError> {
        let msg: RobotMessage =
            serde_json::from_slice(body).map_err(|_| InboundError::NotRobotMessage)?;
        if msg.msg_id.trim().is_empty() {
            return Err(InboundError::MissingMsgId);
        }
        if msg.msgtype.trim().is_empty() {
            return Err(InboundError::MissingMsgType);
        }
        Ok(msg)
    }

    /// None for a `conversationType` other than "1" or "2".
    pub fn conversation_kind(&self) -> Option<ConversationKind> {
        match self.conversation_type.as_str() {
            "1" => Some(ConversationKind::OneToOne),
            "2" => Some(ConversationKind::Group),
            _ => None,
        }
    }

    /// The text the user typed, as the Python SDK reads it (`get_text_list`): `text.content`,
    /// or every `text` item of a `richText` concatenated in order. Trimmed in both cases, since
    /// a group message keeps a leading space where the @robot was cut out. None for pictures,
    /// audio, files and other types without text.
    pub fn text(&self) -> Option<String> {
        match self.msgtype.as_str() {
            "text" => self.text.as_ref().map(|t| t.content.trim().to_string()),
            "richText" => {
                let items = self.content.as_ref()?.get("richText")?.as_array()?;
                let joined: String = items
                    .iter()
                    .filter_map(|item| item.get("text")?.as_str())
                    .collect();
                Some(joined.trim().to_string())
            }
            _ => None,
        }
    }

    /// The users @-mentioned (group messages; empty in 1:1 chats).
    pub fn at_users(&self) -> &[AtUser] {
        &self.at_users
    }

    /// The sender's org user id, the identity every action is authorised by; None for a
    /// sender outside the org.
    pub fn sender_staff_id(&self) -> Option<&str> {
        Some(self.sender_staff_id.as_str()).filter(|s| !s.is_empty())
    }

    /// The reply webhook of this conversation, if DingTalk sent one.
    pub fn session_webhook(&self) -> Option<SessionWebhook<'_>> {
        if self.session_webhook.is_empty() {
            return None;
        }
        Some(SessionWebhook {
            url: &self.session_webhook,
            expires_at: self
                .session_webhook_expired_time
                .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
        })
    }

    /// `createAt` as an instant, when present and in range.
    pub fn created_at(&self) -> Option<Timestamp> {
        self.create_at
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
    }
}

/// `null` reads as the type's default, as an absent key does.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Milliseconds given as a JSON number or as a string of digits (§1.3: the doc table says
/// String, captured payloads carry numbers). Anything else reads as absent rather than
/// rejecting the message over a timestamp we only use for display.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §1.3 group text example (developerpedia), with an unknown key added.
    const GROUP: &str = r#"{"conversationId":"cidAsXSBLnA==","atUsers":[{"dingtalkId":"$:LWCP_v1:$4abc"},{"dingtalkId":"$:LWCP_v1:$5def","staffId":"user001"}],
 "chatbotCorpId":"ding9f","chatbotUserId":"$:LWCP_v1:$xyz","msgId":"msgLICYe12==",
 "senderNick":"用户","isAdmin":true,"senderStaffId":"16650698",
 "sessionWebhookExpiredTime":1690367502152,"createAt":1690362101894,
 "senderCorpId":"ding9","conversationType":"2","senderId":"$:LWCP_v1:$s",
 "conversationTitle":"测试群","isInAtList":true,
 "sessionWebhook":"https://oapi.dingtalk.com/robot/sendBySession?session=76da",
 "text":{"content":" 测试数据"},"robotCode":"dingrobot","msgtype":"text","someFutureField":{"x":1}}"#;

    /// §1.3 1:1 shape: string `createAt`, `openThreadId`, `senderPlatform`, no group fields.
    const ONE_TO_ONE: &str = r#"{"conversationId":"cid1to1==","chatbotCorpId":"ding9f",
 "chatbotUserId":"$:LWCP_v1:$xyz","msgId":"msg1to1==","senderNick":"张三","isAdmin":false,
 "senderStaffId":"","sessionWebhookExpiredTime":"1690367502152","createAt":"1690362101894",
 "senderCorpId":"ding9","conversationType":"1","senderId":"$:LWCP_v1:$s",
 "sessionWebhook":"https://oapi.dingtalk.com/robot/sendBySession?session=1to1",
 "text":{"content":"工单编号：DH2026110001\n"},"robotCode":"dingrobot","msgtype":"text",
 "openThreadId":"cid1to1==","senderPlatform":"Mac","conversationTitle":null,"atUsers":null}"#;

    const RICH: &str = r#"{"msgId":"msgRich==","msgtype":"richText","conversationType":"1",
 "content":{"richText":[{"text":" 工单编号：DH1\n"},{"type":"picture","pictureDownloadCode":"p","downloadCode":"d"},{"text":"工单标题：供暖"},{"text":"\n"}]}}"#;

    #[test]
    fn group_example() {
        let m = RobotMessage::from_json(GROUP.as_bytes()).expect("group message");
        assert_eq!(m.msg_id, "msgLICYe12==");
        assert_eq!(m.conversation_kind(), Some(ConversationKind::Group));
        assert_eq!(m.text().as_deref(), Some("测试数据"));
        assert_eq!(m.sender_staff_id(), Some("16650698"));
        assert_eq!(m.create_at, Some(1690362101894));
        assert_eq!(m.conversation_title, "测试群");
        assert_eq!(m.is_in_at_list, Some(true));
        assert_eq!(m.at_users().len(), 2);
        assert_eq!(m.at_users()[1].staff_id.as_deref(), Some("user001"));
        let hook = m.session_webhook().expect("webhook");
        assert!(hook.url.ends_with("session=76da"));
        let expiry = hook.expires_at.expect("expiry");
        assert_eq!(expiry.as_millisecond(), 1690367502152);
        assert!(hook.usable_at(m.created_at().expect("createAt")));
        assert!(!hook.usable_at(expiry));
    }

    #[test]
    fn one_to_one_example_with_string_times_and_nulls() {
        let m = RobotMessage::from_json(ONE_TO_ONE.as_bytes()).expect("1:1 message");
        assert_eq!(m.conversation_kind(), Some(ConversationKind::OneToOne));
        assert_eq!(m.create_at, Some(1690362101894));
        assert_eq!(
            m.session_webhook()
                .and_then(|h| h.expires_at)
                .map(|t| t.as_millisecond()),
            Some(1690367502152)
        );
        assert_eq!(m.text().as_deref(), Some("工单编号：DH2026110001"));
        assert_eq!(
            m.sender_staff_id(),
            None,
            "empty staff id means outside the org"
        );
        assert!(m.at_users().is_empty());
        assert_eq!(m.conversation_title, "");
    }

    #[test]
    fn rich_text_concatenates_text_items() {
        let m = RobotMessage::from_json(RICH.as_bytes()).expect("richText message");
        assert_eq!(m.text().as_deref(), Some("工单编号：DH1\n工单标题：供暖"));
        assert_eq!(m.session_webhook(), None);
        assert_eq!(m.created_at(), None);
    }

    #[test]
    fn non_text_types_have_no_text() {
        let m = RobotMessage::from_json(
            br#"{"msgId":"p","msgtype":"picture","content":{"downloadCode":"d"}}"#,
        )
        .expect("picture");
        assert_eq!(m.text(), None);
        let m = RobotMessage::from_json(br#"{"msgId":"t","msgtype":"text"}"#).expect("bare text");
        assert_eq!(m.text(), None);
    }

    #[test]
    fn what_is_not_a_robot_message() {
        for (body, want) in [
            (&b"not json"[..], InboundError::NotRobotMessage),
            (b"[1,2]", InboundError::NotRobotMessage),
            (b"\"text\"", InboundError::NotRobotMessage),
            (
                br#"{"msgId":5,"msgtype":"text"}"#,
                InboundError::NotRobotMessage,
            ),
            (br#"{"msgtype":"text"}"#, InboundError::MissingMsgId),
            (
                br#"{"msgId":" ","msgtype":"text"}"#,
                InboundError::MissingMsgId,
            ),
            (
                br#"{"msgId":null,"msgtype":"text"}"#,
                InboundError::MissingMsgId,
            ),
            (br#"{"msgId":"m"}"#, InboundError::MissingMsgType),
        ] {
            assert_eq!(
                RobotMessage::from_json(body),
                Err(want),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn odd_timestamps_read_as_absent() {
        let m = RobotMessage::from_json(
            br#"{"msgId":"m","msgtype":"text","createAt":"soon","sessionWebhookExpiredTime":1.5}"#,
        )
        .expect("tolerated");
        assert_eq!(m.create_at, None);
        assert_eq!(m.session_webhook(), None);
    }
}

//! The exact request bodies DingTalk receives (docs/dingtalk-protocol.md §1.5, §4, §5.2, §6.3,
//! §6.5). The engine renders a message once, stores these bytes in the outbox, and the worker
//! sends them unchanged, so what the audit trail shows is what DingTalk got.
//!
//! Quirks handled here, where they bite: `msgParam` is a JSON *string* inside the JSON body;
//! every `cardParamMap` value is a string (the map type makes anything else unrepresentable);
//! batchSend takes at most 20 users; ActionCard buttons pick the msgKey by their count; markdown
//! @-mentions only notify when the text itself contains `@userId`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// batchSend accepts at most this many `userIds` per call (§4.1).
pub const MAX_BATCH_USERS: usize = 20;

/// groupMessages/send refuses a `msgParam` longer than this many bytes (§4.2).
pub const MAX_GROUP_MSG_PARAM_BYTES: usize = 15_000;

/// The most vertical buttons an ActionCard message has (`sampleActionCard5`, §4.3).
pub const MAX_ACTION_CARD_BUTTONS: usize = 5;

/// Why a body could not be built. A bug in the caller, never a DingTalk answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("接收人为空")]
    NoUsers,
    #[error("单次最多发给 {MAX_BATCH_USERS} 人，实际 {0} 人")]
    TooManyUsers(usize),
    #[error("按钮数量应为 1–{MAX_ACTION_CARD_BUTTONS} 个，实际 {0} 个")]
    ButtonCount(usize),
    #[error("群消息参数超过 {MAX_GROUP_MSG_PARAM_BYTES} 字节（{0} 字节）")]
    TooLong(usize),
    #[error("不是有效的单聊批量发送请求体：{0}")]
    BadBody(String),
}

/// The body of `POST /v1.0/robot/oToMessages/batchSend` (§4.1). `msg_param` is the JSON text
/// of the message parameters, not an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchSend {
    pub robot_code: String,
    pub user_ids: Vec<String>,
    pub msg_key: String,
    pub msg_param: String,
}

impl BatchSend {
    /// Reads a stored body back and checks the user count (1..=20).
    pub fn from_slice(payload: &[u8]) -> Result<BatchSend, PayloadError> {
        let body: BatchSend =
            serde_json::from_slice(payload).map_err(|e| PayloadError::BadBody(e.to_string()))?;
        check_users(&body.user_ids)?;
        Ok(body)
    }

    pub fn to_vec(&self) -> Vec<u8> {
        to_vec(self)
    }
}

fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("plain structs and string maps always serialize")
}

fn check_users(user_ids: &[String]) -> Result<(), PayloadError> {
    match user_ids.len() {
        0 => Err(PayloadError::NoUsers),
        n if n > MAX_BATCH_USERS => Err(PayloadError::TooManyUsers(n)),
        _ => Ok(()),
    }
}

fn batch(
    robot_code: &str,
    user_ids: &[String],
    msg_key: &str,
    msg_param: &Value,
) -> Result<Vec<u8>, PayloadError> {
    check_users(user_ids)?;
    Ok(BatchSend {
        robot_code: robot_code.to_string(),
        user_ids: user_ids.to_vec(),
        msg_key: msg_key.to_string(),
        // §4.1: msgParam is a JSON-encoded string, not an object.
        msg_param: msg_param.to_string(),
    }
    .to_vec())
}

/// 1:1 plain text to at most 20 users (`sampleText`).
pub fn batch_send_text(
    robot_code: &str,
    user_ids: &[String],
    content: &str,
) -> Result<Vec<u8>, PayloadError> {
    batch(
        robot_code,
        user_ids,
        "sampleText",
        &json!({ "content": content }),
    )
}

/// 1:1 markdown to at most 20 users (`sampleMarkdown`); `title` is what the chat list shows.
pub fn batch_send_markdown(
    robot_code: &str,
    user_ids: &[String],
    title: &str,
    text: &str,
) -> Result<Vec<u8>, PayloadError> {
    batch(
        robot_code,
        user_ids,
        "sampleMarkdown",
        &json!({ "title": title, "text": text }),
    )
}

/// The template-free fallback for actions (§6.5): an ActionCard whose buttons, when tapped,
/// make the user's client send `command_text` as an ordinary chat message, which the robot
/// then receives like a typed command. Works in 1:1 chats only (in groups the text would not @
/// the robot). `buttons` are `(label, command_text)`; one button uses `sampleActionCard`
/// (`singleTitle`/`singleURL`), 2–5 use `sampleActionCard2`…`5` (vertical). `sampleActionCard6`
/// is not "six buttons" but two horizontal ones, so it is not used.
pub fn batch_send_action_card(
    robot_code: &str,
    user_ids: &[String],
    title: &str,
    markdown: &str,
    buttons: &[(&str, &str)],
) -> Result<Vec<u8>, PayloadError> {
    let mut param = BTreeMap::new();
    param.insert("title".to_string(), title.to_string());
    param.insert("text".to_string(), markdown.to_string());
    let msg_key = match buttons {
        [] => return Err(PayloadError::ButtonCount(0)),
        [(label, command)] => {
            param.insert("singleTitle".to_string(), (*label).to_string());
            param.insert("singleURL".to_string(), dtmd_send_message(command));
            "sampleActionCard".to_string()
        }
        _ if buttons.len() > MAX_ACTION_CARD_BUTTONS => {
            return Err(PayloadError::ButtonCount(buttons.len()));
        }
        _ => {
            for (i, (label, command)) in buttons.iter().enumerate() {
                let n = i + 1;
                param.insert(format!("actionTitle{n}"), (*label).to_string());
                param.insert(format!("actionURL{n}"), dtmd_send_message(command));
            }
            format!("sampleActionCard{}", buttons.len())
        }
    };
    batch(robot_code, user_ids, &msg_key, &json!(param))
}

/// Characters left as they are in a `dtmd://` content parameter: RFC 3986 unreserved. Everything
/// else, including every byte of a Chinese character, is percent-encoded (§6.5 example).
const DTMD_CONTENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `dtmd://dingtalkclient/sendMessage?content=<percent-encoded UTF-8>`: tapping it sends
/// `text` as a chat message from the user (§6.5).
pub fn dtmd_send_message(text: &str) -> String {
    format!(
        "dtmd://dingtalkclient/sendMessage?content={}",
        utf8_percent_encode(text, DTMD_CONTENT)
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupSend<'a> {
    robot_code: &'a str,
    open_conversation_id: &'a str,
    msg_key: &'a str,
    msg_param: String,
}

fn group(
    robot_code: &str,
    open_conversation_id: &str,
    msg_key: &str,
    msg_param: &Value,
) -> Result<Vec<u8>, PayloadError> {
    let msg_param = msg_param.to_string();
    if msg_param.len() > MAX_GROUP_MSG_PARAM_BYTES {
        return Err(PayloadError::TooLong(msg_param.len()));
    }
    Ok(to_vec(&GroupSend {
        robot_code,
        open_conversation_id,
        msg_key,
        msg_param,
    }))
}

/// Group message from the app robot (`POST /v1.0/robot/groupMessages/send`, `sampleText`);
/// `open_conversation_id` is the `conversationId` of a message the robot received there.
pub fn group_send_text(
    robot_code: &str,
    open_conversation_id: &str,
    content: &str,
) -> Result<Vec<u8>, PayloadError> {
    group(
        robot_code,
        open_conversation_id,
        "sampleText",
        &json!({ "content": content }),
    )
}

/// Group markdown from the app robot (`sampleMarkdown`).
pub fn group_send_markdown(
    robot_code: &str,
    open_conversation_id: &str,
    title: &str,
    text: &str,
) -> Result<Vec<u8>, PayloadError> {
    group(
        robot_code,
        open_conversation_id,
        "sampleMarkdown",
        &json!({ "title": title, "text": text }),
    )
}

/// Where a card-platform card goes (§6.3).
#[derive(Debug, Clone, Copy)]
pub enum CardSpace<'a> {
    /// A group the robot is in. `at` maps userId → nick (`{"@ALL":"@ALL"}` is @all);
    /// `recipients`, when not empty, restricts who sees the card.
    Group {
        open_conversation_id: &'a str,
        at: &'a BTreeMap<String, String>,
        recipients: &'a [String],
    },
    /// The robot's 1:1 chat with one user.
    Robot { user_id: &'a str },
}

/// How card button clicks come back (§6.4): over the Stream socket, or posted to the HTTP
/// callback registered under `route_key`.
#[derive(Debug, Clone, Copy)]
pub enum CardCallback<'a> {
    Stream,
    Http { route_key: &'a str },
}

/// Everything `createAndDeliver` needs. String-only maps are the wire's rule (§6.3); encode
/// other values with [`card_param`].
#[derive(Debug, Clone, Copy)]
pub struct CardCreate<'a> {
    /// `<uuid>.schema` from the card platform console.
    pub template_id: &'a str,
    /// Our unique id of this card instance; updates name it, a second create with it fails.
    pub out_track_id: &'a str,
    pub robot_code: &'a str,
    pub space: CardSpace<'a>,
    pub callback: CardCallback<'a>,
    pub params: &'a BTreeMap<String, String>,
    /// Per-user values (userId → cardParamMap); empty for none.
    pub private: &'a BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CardData<'a> {
    card_param_map: &'a BTreeMap<String, String>,
}

fn private_data(
    private: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<&str, CardData<'_>> {
    private
        .iter()
        .map(|(user, map)| {
            (
                user.as_str(),
                CardData {
                    card_param_map: map,
                },
            )
        })
        .collect()
}

/// The body of `POST /v1.0/card/instances/createAndDeliver` (§6.3): `openSpaceId`
/// `dtv1.card//IM_GROUP.<cid>` with the group space and deliver models, or
/// `dtv1.card//IM_ROBOT.<userId>` with the robot ones; `userIdType` 1 (userId).
pub fn card_create(c: &CardCreate<'_>) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    body.insert("cardTemplateId".into(), json!(c.template_id));
    body.insert("outTrackId".into(), json!(c.out_track_id));
    body.insert(
        "cardData".into(),
        json!(CardData {
            card_param_map: c.params
        }),
    );
    if !c.private.is_empty() {
        body.insert("privateData".into(), json!(private_data(c.private)));
    }
    match c.callback {
        CardCallback::Stream => {
            body.insert("callbackType".into(), json!("STREAM"));
        }
        CardCallback::Http { route_key } => {
            body.insert("callbackType".into(), json!("HTTP"));
            body.insert("callbackRouteKey".into(), json!(route_key));
        }
    }
    match c.space {
        CardSpace::Group {
            open_conversation_id,
            at,
            recipients,
        } => {
            body.insert(
                "openSpaceId".into(),
                json!(format!("dtv1.card//IM_GROUP.{open_conversation_id}")),
            );
            body.insert(
                "imGroupOpenSpaceModel".into(),
                json!({ "supportForward": false }),
            );
            let mut deliver = serde_json::Map::new();
            deliver.insert("robotCode".into(), json!(c.robot_code));
            if !at.is_empty() {
                deliver.insert("atUserIds".into(), json!(at));
            }
            if !recipients.is_empty() {
                deliver.insert("recipients".into(), json!(recipients));
            }
            body.insert("imGroupOpenDeliverModel".into(), Value::Object(deliver));
        }
        CardSpace::Robot { user_id } => {
            body.insert(
                "openSpaceId".into(),
                json!(format!("dtv1.card//IM_ROBOT.{user_id}")),
            );
            body.insert(
                "imRobotOpenSpaceModel".into(),
                json!({ "supportForward": false }),
            );
            body.insert(
                "imRobotOpenDeliverModel".into(),
                json!({ "spaceType": "IM_ROBOT", "robotCode": c.robot_code }),
            );
        }
    }
    body.insert("userIdType".into(), json!(1));
    to_vec(&body)
}

/// The body of `PUT /v1.0/card/instances` (§6.3): replaces the shared card data with `params`
/// (`updateCardDataByKey: false`), leaving private data as it is.
pub fn card_update(out_track_id: &str, params: &BTreeMap<String, String>) -> Vec<u8> {
    to_vec(&json!({
        "outTrackId": out_track_id,
        "cardData": CardData { card_param_map: params },
        // The whole public data is replaced, so button slots a re-render no longer has vanish.
        "cardUpdateOptions": { "updateCardDataByKey": false, "updatePrivateDataByKey": false },
        "userIdType": 1,
    }))
}

/// A `cardParamMap` value: strings as they are, anything else (numbers, booleans, arrays,
/// objects) JSON-encoded (§6.3, §9) — `true` becomes `"true"`.
pub fn card_param<T: Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// `@userId` for each id `text` does not mention yet: a markdown @ only notifies when the text
/// carries it (§1.5, §5.2).
fn with_mentions(text: &str, at_user_ids: &[String]) -> String {
    let missing: Vec<String> = at_user_ids
        .iter()
        .filter(|id| !text.contains(&format!("@{id}")))
        .map(|id| format!("@{id}"))
        .collect();
    if missing.is_empty() {
        text.to_string()
    } else {
        format!("{text}\n\n{}", missing.join(" "))
    }
}

/// A custom-robot / sessionWebhook text message (§5.2, §1.5).
pub fn custom_robot_text(content: &str, at_user_ids: &[String]) -> Vec<u8> {
    to_vec(&json!({
        "msgtype": "text",
        "text": { "content": content },
        "at": { "atUserIds": at_user_ids, "isAtAll": false },
    }))
}

/// A custom-robot / sessionWebhook markdown message; each `at_user_ids` entry is also written
/// into the text when missing, or DingTalk would not notify them.
pub fn custom_robot_markdown(title: &str, text: &str, at_user_ids: &[String]) -> Vec<u8> {
    to_vec(&json!({
        "msgtype": "markdown",
        "markdown": { "title": title, "text": with_mentions(text, at_user_ids) },
        "at": { "atUserIds": at_user_ids, "isAtAll": false },
    }))
}

/// The reply through a message's `sessionWebhook`: the custom-robot markdown body (§1.5).
pub fn session_reply_markdown(title: &str, text: &str, at_user_ids: &[String]) -> Vec<u8> {
    custom_robot_markdown(title, text, at_user_ids)
}

/// The outbox `target` of a `session_reply` row: `<expiry ms>|<sessionWebhook URL>`. The expiry
/// (`sessionWebhookExpiredTime`) travels with the URL because the payload must stay the exact
/// body; the worker refuses to post after it.
pub fn session_target(url: &str, expires_at: Timestamp) -> String {
    format!("{}|{url}", expires_at.as_millisecond())
}

/// Splits a `session_reply` target back into (expiry, URL); None when malformed.
pub fn parse_session_target(target: &str) -> Option<(Timestamp, &str)> {
    let (ms, url) = target.split_once('|')?;
    let ms: i64 = ms.parse().ok()?;
    Some((Timestamp::from_millisecond(ms).ok()?, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("user{i:03}")).collect()
    }

    fn value(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("json")
    }

    #[test]
    fn batch_markdown_has_msg_param_as_a_string() {
        let body = value(
            &batch_send_markdown("dingbot", &users(2), "催办", "**工单 A123** 请于今日处理")
                .expect("body"),
        );
        assert_eq!(body["robotCode"], "dingbot");
        assert_eq!(body["userIds"], json!(["user000", "user001"]));
        assert_eq!(body["msgKey"], "sampleMarkdown");
        let param = body["msgParam"].as_str().expect("msgParam is a string");
        assert_eq!(
            value(param.as_bytes()),
            json!({"title": "催办", "text": "**工单 A123** 请于今日处理"})
        );
    }

    #[test]
    fn user_count_is_checked() {
        assert!(batch_send_text("r", &users(20), "x").is_ok());
        assert_eq!(
            batch_send_text("r", &users(21), "x"),
            Err(PayloadError::TooManyUsers(21))
        );
        assert_eq!(batch_send_text("r", &[], "x"), Err(PayloadError::NoUsers));
        let ok = batch_send_text("r", &users(3), "x").expect("body");
        let mut parsed = BatchSend::from_slice(&ok).expect("parse");
        parsed.user_ids = users(21);
        assert_eq!(
            BatchSend::from_slice(&parsed.to_vec()),
            Err(PayloadError::TooManyUsers(21))
        );
    }

    #[test]
    fn action_card_keys_follow_the_button_count() {
        let one = value(
            &batch_send_action_card("r", &users(1), "t", "m", &[("查询", "查询 DH1")]).expect("1"),
        );
        assert_eq!(one["msgKey"], "sampleActionCard");
        let p = value(one["msgParam"].as_str().expect("s").as_bytes());
        assert_eq!(p["singleTitle"], "查询");
        assert_eq!(
            p["singleURL"],
            "dtmd://dingtalkclient/sendMessage?content=%E6%9F%A5%E8%AF%A2%20DH1"
        );
        for n in 2..=5 {
            let buttons: Vec<(&str, &str)> = (0..n).map(|_| ("按钮", "帮助")).collect();
            let body =
                value(&batch_send_action_card("r", &users(1), "t", "m", &buttons).expect("body"));
            assert_eq!(body["msgKey"], format!("sampleActionCard{n}"));
            let p = value(body["msgParam"].as_str().expect("s").as_bytes());
            let keys: Vec<&String> = p.as_object().expect("obj").keys().collect();
            assert_eq!(keys.len(), 2 + 2 * n, "{keys:?}");
            assert!(p.get(format!("actionURL{n}")).is_some());
        }
        assert_eq!(
            batch_send_action_card("r", &users(1), "t", "m", &[]),
            Err(PayloadError::ButtonCount(0))
        );
        assert_eq!(
            batch_send_action_card("r", &users(1), "t", "m", &[("a", "b"); 6]),
            Err(PayloadError::ButtonCount(6))
        );
    }

    #[test]
    fn dtmd_matches_the_reference_example() {
        // §6.5: 同意联办 A123.
        assert_eq!(
            dtmd_send_message("同意联办 A123"),
            "dtmd://dingtalkclient/sendMessage?content=%E5%90%8C%E6%84%8F%E8%81%94%E5%8A%9E%20A123"
        );
        assert_eq!(
            dtmd_send_message("a&b=c?"),
            "dtmd://dingtalkclient/sendMessage?content=a%26b%3Dc%3F"
        );
    }

    #[test]
    fn group_body_and_length_limit() {
        let body = value(&group_send_text("r", "cid1==", "请确认").expect("body"));
        assert_eq!(
            body,
            json!({"robotCode":"r","openConversationId":"cid1==","msgKey":"sampleText",
                   "msgParam":"{\"content\":\"请确认\"}"})
        );
        let long = "字".repeat(5001);
        assert!(matches!(
            group_send_text("r", "c", &long),
            Err(PayloadError::TooLong(_))
        ));
    }

    #[test]
    fn card_bodies_match_the_reference() {
        let mut params = BTreeMap::new();
        params.insert("caseNo".to_string(), "A123".to_string());
        params.insert("urgent".to_string(), card_param(&true));
        params.insert("units".to_string(), card_param(&["区住建局", "区城管局"]));
        let none = BTreeMap::new();
        let group = value(&card_create(&CardCreate {
            template_id: "tpl.schema",
            out_track_id: "case-A123-v1",
            robot_code: "dingbot",
            space: CardSpace::Group {
                open_conversation_id: "cidX==",
                at: &none,
                recipients: &[],
            },
            callback: CardCallback::Stream,
            params: &params,
            private: &BTreeMap::new(),
        }));
        assert_eq!(
            group,
            json!({"cardTemplateId":"tpl.schema","outTrackId":"case-A123-v1",
                   "cardData":{"cardParamMap":{"caseNo":"A123","urgent":"true",
                                               "units":"[\"区住建局\",\"区城管局\"]"}},
                   "callbackType":"STREAM","openSpaceId":"dtv1.card//IM_GROUP.cidX==",
                   "imGroupOpenSpaceModel":{"supportForward":false},
                   "imGroupOpenDeliverModel":{"robotCode":"dingbot"},"userIdType":1})
        );
        let robot = value(&card_create(&CardCreate {
            space: CardSpace::Robot { user_id: "user001" },
            callback: CardCallback::Http {
                route_key: "hotline_cb",
            },
            template_id: "tpl.schema",
            out_track_id: "case-A123-v1-user001",
            robot_code: "dingbot",
            params: &params,
            private: &BTreeMap::new(),
        }));
        assert_eq!(robot["openSpaceId"], "dtv1.card//IM_ROBOT.user001");
        assert_eq!(robot["callbackType"], "HTTP");
        assert_eq!(robot["callbackRouteKey"], "hotline_cb");
        assert_eq!(
            robot["imRobotOpenDeliverModel"],
            json!({"spaceType":"IM_ROBOT","robotCode":"dingbot"})
        );
        let update = value(&card_update("case-A123-v1", &params));
        assert_eq!(update["cardUpdateOptions"]["updateCardDataByKey"], false);
        assert_eq!(update["cardData"]["cardParamMap"]["urgent"], "true");
    }

    #[test]
    fn markdown_mentions_are_written_into_the_text() {
        let body = value(&custom_robot_markdown(
            "超时",
            "### 工单 A123\n@user001 请处理",
            &["user001".to_string(), "user002".to_string()],
        ));
        assert_eq!(
            body["markdown"]["text"],
            "### 工单 A123\n@user001 请处理\n\n@user002"
        );
        assert_eq!(body["at"]["atUserIds"], json!(["user001", "user002"]));
    }

    #[test]
    fn session_target_round_trips() {
        let at = Timestamp::from_millisecond(1_690_367_502_152).expect("ts");
        let url = "https://oapi.dingtalk.com/robot/sendBySession?session=76da|x";
        let target = session_target(url, at);
        assert_eq!(parse_session_target(&target), Some((at, url)));
        assert_eq!(parse_session_target("no-expiry"), None);
    }
}

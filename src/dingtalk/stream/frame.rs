//! The Stream wire format (docs/dingtalk-protocol.md §2.3–§2.5, §10.3): the JSON text frames the
//! gateway pushes and the ACK frames we answer with. Pure functions, so the reference frames are
//! unit-tested without a socket.

use serde::Deserialize;
use serde_json::json;

/// The CALLBACK topic of robot messages (§2.6).
pub const TOPIC_ROBOT_MESSAGE: &str = "/v1.0/im/bot/messages/get";
/// The CALLBACK topic of card action callbacks (§2.6, §6.4).
pub const TOPIC_CARD_CALLBACK: &str = "/v1.0/card/instances/callback";

/// A downstream frame as far as we read it. Unknown headers and fields are ignored (§2.3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Frame {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub headers: Headers,
    /// A JSON document encoded as a string (§12, pitfall 3), empty when absent.
    #[serde(default)]
    pub data: String,
}

/// The headers we act on; DingTalk sends every header value as a string. EVENT frames add the
/// `event*` headers (§2.3): `eventType` says what happened (`user_leave_org` …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Headers {
    pub message_id: String,
    pub topic: String,
    pub event_type: String,
    pub event_id: String,
    pub event_corp_id: String,
    #[serde(deserialize_with = "string_or_number")]
    pub event_born_time: String,
}

/// A header value as text: DingTalk documents `eventBornTime` as a Long although headers travel
/// as strings, so both are read.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Why a text frame was not understood; without a `messageId` it cannot even be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("not a Stream frame (JSON object expected)")]
    NotJson,
    #[error("Stream frame without headers.messageId")]
    MissingMessageId,
}

/// What a frame asks of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// SYSTEM `ping`: echo `data` at once.
    Ping,
    /// SYSTEM `disconnect`: the gateway will close this socket soon; connect anew now.
    Disconnect,
    /// Other SYSTEM topics (`CONNECTED`, `REGISTERED`, `KEEPALIVE`, …): nothing to do.
    OtherSystem,
    RobotMessage,
    CardCallback,
    /// An organisation event (`EVENT`, topic `*`; which ones is chosen in the developer console).
    Event,
    /// A CALLBACK topic we did not subscribe to.
    Unsubscribed,
}

impl Frame {
    /// Parses a text frame; fails without a non-empty `headers.messageId`.
    pub fn parse(text: &str) -> Result<Frame, FrameError> {
        let frame: Frame = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
        if frame.headers.message_id.is_empty() {
            return Err(FrameError::MissingMessageId);
        }
        Ok(frame)
    }

    pub fn kind(&self) -> FrameKind {
        match (self.kind.as_str(), self.headers.topic.as_str()) {
            ("SYSTEM", "ping") => FrameKind::Ping,
            ("SYSTEM", "disconnect") => FrameKind::Disconnect,
            ("SYSTEM", _) => FrameKind::OtherSystem,
            ("CALLBACK", TOPIC_ROBOT_MESSAGE) => FrameKind::RobotMessage,
            ("CALLBACK", TOPIC_CARD_CALLBACK) => FrameKind::CardCallback,
            ("EVENT", _) => FrameKind::Event,
            _ => FrameKind::Unsubscribed,
        }
    }
}

/// The upstream ACK frame (§2.4). `data` is itself JSON text, sent as a string.
pub(crate) fn ack(message_id: &str, code: u16, message: &str, data: &str) -> String {
    json!({
        "code": code,
        "headers": {"messageId": message_id, "contentType": "application/json"},
        "message": message,
        "data": data,
    })
    .to_string()
}

/// The `data` of an EVENT ACK (§2.4): the event was taken; `LATER` would ask for redelivery,
/// which an unacknowledged frame gets anyway.
pub(crate) fn event_ack_data() -> String {
    json!({"status": "SUCCESS", "message": "success"}).to_string()
}

/// The `data` of a CALLBACK ACK: `{"response": …}`. For a card callback `response` is the card
/// update DingTalk applies (§6.4); `null` changes nothing. Robot messages ignore it.
pub(crate) fn callback_ack_data(response: Option<&serde_json::Value>) -> String {
    json!({ "response": response }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("JSON")
    }

    #[test]
    fn ping_of_the_reference_is_echoed_as_its_ack() {
        // §10.3, first pair.
        let frame = Frame::parse(
            r#"{"specVersion":"1.0","type":"SYSTEM","headers":{"topic":"ping","messageId":"m-1",
            "contentType":"application/json","time":"1690106592000"},"data":"{\"opaque\":\"o-1\"}"}"#,
        )
        .expect("frame");
        assert_eq!(frame.kind(), FrameKind::Ping);
        assert_eq!(
            parsed(&ack(&frame.headers.message_id, 200, "OK", &frame.data)),
            parsed(
                r#"{"code":200,"headers":{"messageId":"m-1","contentType":"application/json"},
                "message":"OK","data":"{\"opaque\":\"o-1\"}"}"#
            )
        );
    }

    #[test]
    fn card_callback_of_the_reference_is_acked_with_the_card_update() {
        // §10.3, second pair.
        let frame = Frame::parse(
            r#"{"specVersion":"1.0","type":"CALLBACK","headers":{"topic":"/v1.0/card/instances/callback","messageId":"m-2","contentType":"application/json","time":"1690106592000"},"data":"{\"outTrackId\":\"case-A123-inspect-v1\",\"corpId\":\"dingcorp\",\"userId\":\"user001\",\"type\":\"actionCallback\",\"content\":\"{\\\"cardPrivateData\\\":{\\\"actionIds\\\":[\\\"agree_btn\\\"],\\\"params\\\":{\\\"action\\\":\\\"agree\\\"}}}\"}"}"#,
        )
        .expect("frame");
        assert_eq!(frame.kind(), FrameKind::CardCallback);
        let update = json!({"cardUpdateOptions":{"updateCardDataByKey":true},
                            "cardData":{"cardParamMap":{"status":"已同意"}}});
        let text = ack("m-2", 200, "OK", &callback_ack_data(Some(&update)));
        let expected = parsed(
            r#"{"code":200,"headers":{"messageId":"m-2","contentType":"application/json"},"message":"OK",
            "data":"{\"response\":{\"cardUpdateOptions\":{\"updateCardDataByKey\":true},\"cardData\":{\"cardParamMap\":{\"status\":\"已同意\"}}}}"}"#,
        );
        let got = parsed(&text);
        assert_eq!(got["headers"], expected["headers"]);
        assert_eq!(got["code"], expected["code"]);
        // `data` is compared as JSON: key order inside the string is not part of the protocol.
        assert_eq!(
            parsed(got["data"].as_str().expect("data is a string")),
            parsed(expected["data"].as_str().expect("data is a string"))
        );
        assert_eq!(callback_ack_data(None), r#"{"response":null}"#);
    }

    #[test]
    fn topics_and_types_select_the_kind() {
        let kind = |t: &str, topic: &str| {
            Frame::parse(
                &json!({"type": t, "headers": {"messageId": "x", "topic": topic}}).to_string(),
            )
            .expect("frame")
            .kind()
        };
        assert_eq!(kind("SYSTEM", "disconnect"), FrameKind::Disconnect);
        assert_eq!(kind("SYSTEM", "KEEPALIVE"), FrameKind::OtherSystem);
        assert_eq!(
            kind("CALLBACK", TOPIC_ROBOT_MESSAGE),
            FrameKind::RobotMessage
        );
        assert_eq!(kind("EVENT", "*"), FrameKind::Event);
        assert_eq!(
            kind("CALLBACK", "/v1.0/graph/api/invoke"),
            FrameKind::Unsubscribed
        );
    }

    #[test]
    fn an_address_book_event_carries_its_type_and_is_acked_success() {
        // The contact events' Stream pages: topic `*`, the event headers, `data` a JSON string.
        let frame = Frame::parse(
            r#"{"specVersion":"1.0","type":"EVENT","headers":{"appId":"a","connectionId":"c",
            "contentType":"application/json","messageId":"m-3","time":"1780000000000","topic":"*",
            "eventType":"user_leave_org","eventId":"ev-1","eventCorpId":"dingcorp",
            "eventBornTime":"1780000000000","eventUnifiedAppId":"u"},
            "data":"{\"timeStamp\":\"1780000000000\",\"userId\":[\"u-1\"]}"}"#,
        )
        .expect("frame");
        assert_eq!(frame.kind(), FrameKind::Event);
        assert_eq!(frame.headers.event_type, "user_leave_org");
        assert_eq!(frame.headers.event_id, "ev-1");
        assert_eq!(frame.headers.event_born_time, "1780000000000");
        let numeric = Frame::parse(
            r#"{"type":"EVENT","headers":{"messageId":"m-4","eventBornTime":1780000000000}}"#,
        )
        .expect("a numeric eventBornTime is read too");
        assert_eq!(numeric.headers.event_born_time, "1780000000000");
        assert_eq!(
            parsed(&event_ack_data()),
            json!({"status": "SUCCESS", "message": "success"})
        );
    }

    #[test]
    fn frames_without_message_id_or_json_are_refused_and_extra_headers_ignored() {
        assert_eq!(Frame::parse("not json"), Err(FrameError::NotJson));
        assert_eq!(
            Frame::parse(r#"{"type":"CALLBACK","headers":{"topic":"t"}}"#),
            Err(FrameError::MissingMessageId)
        );
        let frame = Frame::parse(
            r#"{"type":"EVENT","headers":{"messageId":"e","eventBornTime":"1","x":{"y":1}},"extra":[1]}"#,
        )
        .expect("tolerant");
        assert_eq!(frame.data, "");
    }
}

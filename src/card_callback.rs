//! Card-platform callbacks (protocol §6.4): a tap on a review or coordination card, delivered
//! over HTTP (`POST /dingtalk/card`) or Stream, becomes the same workflow [`Input`] as the
//! matching text command, and the answer DingTalk applies at once to the tapping user's copy.
//! This module owns the mapping — callback → card copy → sender → input — and the answer's
//! shape; [`crate::inbox::InboxProcessor::card_callback`] runs it (and [`crate::inbox::CardStreamHandler`] brings it Stream's taps) in one store transaction with
//! the decision, because the answer carries the update and so must follow the commit.
//!
//! Each person has their own instance of a card (`outTrackId` =
//! [`CardSecrets::instance_id`]`(card_key, staff_id)`, which carries an HMAC under the service's
//! own secret), so a copy has exactly one owner and only that owner may act on it.
//!
//! # The template's callback params
//!
//! Every button is a 回传请求 (callback) button whose params carry `action` = the button id of
//! [`crate::messages::card::CardButton`] (`claim`, `decide_joint`, `decide_independent`, `return`,
//! `escalate_city`, `accept`, `object`; the first `actionIds` entry is used when `action` is
//! absent), plus the inputs of that action:
//! - `decide_joint`: `units`, the final cooperating units with each unit's 协同方向及重点, as text
//!   `单位：方向；单位：方向` or a JSON list `[{"unit": "区住建局", "direction": "…"}]` (also
//!   accepted as a JSON string);
//! - `decide_independent`: `path_and_basis` (解决路径及政策依据);
//! - `return`: `reason`; `escalate_city`: `note`; `object`: `reason`;
//! - `accept`: `contact_name`, `position`, `phone`, `help` (text `现场核查、政策解释` or a list
//!   of the chosen items; `其他：…` for other help).
//!
//! The inputs are read by the text-command parser ([`parse_command`]), so a card and a typed
//! command accept and refuse exactly the same things, with the same Chinese messages.

use serde_json::{Map, Value, json};

use crate::card_secrets::CardSecrets;
use crate::domain::{CaseNo, PersonId, TicketNo};
use crate::engine::{EngineError, decode};
use crate::messages::card::{CardContent, card_params};
use crate::parse::UnitMatcher;
use crate::parse::command::{Command, Verb, parse_command, syntax};
use crate::roster::Roster;
use crate::store::ReadTx;
use crate::workflow::{CardKind, CardRef, Case, Input};

/// The template variable (private to the tapping user) that carries a refusal or a mistake in
/// the inputs; empty after a successful action.
pub const ERROR_PARAM: &str = "error";
/// `"true"` while [`ERROR_PARAM`] is non-empty, to show or hide the error block.
pub const HAS_ERROR_PARAM: &str = "has_error";

/// One card callback as DingTalk sends it (§6.4): `content` is JSON inside a JSON string.
#[derive(Debug, Clone, PartialEq)]
pub struct CardCallback {
    pub out_track_id: String,
    /// The staff id of the person who tapped.
    pub user_id: String,
    /// The button id: `params.action`, else the first `actionIds` entry; `None` when neither.
    pub action: Option<String>,
    pub params: Map<String, Value>,
}

impl CardCallback {
    /// Reads a callback body; `None` without `outTrackId` or `userId`. An unreadable `content`
    /// counts as no action and no params (the callback is then refused as unrecognised).
    pub fn from_json(data: &str) -> Option<CardCallback> {
        let body: Value = serde_json::from_str(data).ok()?;
        let field = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let out_track_id = field("outTrackId")?;
        let user_id = field("userId")?;
        let private = field("content")
            .and_then(|c| serde_json::from_str::<Value>(&c).ok())
            .and_then(|c| c.get("cardPrivateData").cloned())
            .unwrap_or(Value::Null);
        let params = private
            .get("params")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let nonempty = |v: &Value| {
            v.as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let action = params.get("action").and_then(nonempty).or_else(|| {
            private
                .get("actionIds")
                .and_then(Value::as_array)
                .and_then(|ids| ids.iter().find_map(nonempty))
        });
        Some(CardCallback {
            out_track_id,
            user_id,
            action,
            params,
        })
    }
}

/// The copy of a card a callback names, with its case.
#[derive(Debug, Clone)]
pub struct CardCopy {
    pub case: Case,
    pub card: CardRef,
    /// The roster id of the person this copy was delivered to.
    pub owner: PersonId,
    /// The owner's DingTalk staff id (the `userId` allowed to act on it).
    pub owner_staff_id: String,
}

/// Why a callback was not even looked at as an action. Nothing is stored for either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unreadable, or no card of ours has this `outTrackId`.
    UnknownCard,
    /// The card exists, but this copy was delivered to someone else.
    NotRecipient,
}

/// Finds the copy `callback` names: the case from the `outTrackId`'s case-number prefix (case
/// numbers, `TC-2026-0001`, hold no `_`), then the card and recipient whose [`instance_id`] is
/// that `outTrackId`, and the card's row in the store. An id that was not made with `secrets`
/// names no card, whatever case number it starts with.
pub fn locate(
    tx: &ReadTx<'_>,
    roster: &Roster,
    secrets: &CardSecrets,
    callback: &CardCallback,
) -> Result<Result<CardCopy, Refusal>, EngineError> {
    let case_no = callback.out_track_id.split('_').next().unwrap_or_default();
    let Ok(case_no) = CaseNo::parse(case_no) else {
        return Ok(Err(Refusal::UnknownCard));
    };
    let Some(row) = tx.case_by_no(&case_no)? else {
        return Ok(Err(Refusal::UnknownCard));
    };
    let case = decode(&row)?;
    let found = case.cards.iter().find_map(|card| {
        card.recipients.iter().find_map(|id| {
            let person = roster.person(id).filter(|p| p.reachable() && !p.departed)?;
            (secrets.instance_id(&card.key, &person.staff_id) == callback.out_track_id)
                .then(|| (card.clone(), PersonId::of(person), person.staff_id.clone()))
        })
    });
    let Some((card, owner, owner_staff_id)) = found else {
        return Ok(Err(Refusal::UnknownCard));
    };
    if tx.card(&card.key)?.is_none() {
        return Ok(Err(Refusal::UnknownCard));
    }
    if owner_staff_id != callback.user_id {
        return Ok(Err(Refusal::NotRecipient));
    }
    Ok(Ok(CardCopy {
        case,
        card,
        owner,
        owner_staff_id,
    }))
}

/// The workflow input a tap asks for, as (ticket number, input), or what is wrong with it
/// (Chinese, for the tapping user): an unknown button, a card that no longer applies (an older
/// application version, a superseded coordination request), or inputs the command parser
/// refuses (missing phone, unknown unit…).
pub fn input(
    copy: &CardCopy,
    callback: &CardCallback,
    units: &UnitMatcher,
) -> Result<(TicketNo, Input), String> {
    let case = &copy.case;
    let t = &case.ticket_no;
    let Some(action) = callback.action.as_deref() else {
        return Err(
            "没有识别出您点的按钮。请更新钉钉后重试，或发送文字命令（发送“帮助”查看）。".into(),
        );
    };
    let verb = match (&copy.card.kind, action) {
        (CardKind::Review { .. }, "claim") => Verb::Claim,
        (CardKind::Review { .. }, "decide_joint") => Verb::Joint,
        (CardKind::Review { .. }, "decide_independent") => Verb::Independent,
        (CardKind::Review { .. }, "return") => Verb::Return,
        (CardKind::Review { .. }, "escalate_city") => Verb::City,
        (CardKind::Coordination { .. }, "accept") => Verb::Accept,
        (CardKind::Coordination { .. }, "object") => Verb::Object,
        _ => return Err(format!("这张卡片没有“{action}”操作，未处理。")),
    };
    match &copy.card.kind {
        CardKind::Review { version } if *version != case.version => {
            return Err(format!(
                "已失效：这是工单 {t} 第 {version} 版申请的审核卡片，申请已更新为第 {} 版，请在新卡片上操作。",
                case.version
            ));
        }
        CardKind::Coordination { unit }
            if case.request(unit).map(|r| r.card_key.as_str()) != Some(copy.card.key.as_str()) =>
        {
            return Err(format!(
                "已失效：这张协办卡片已被工单 {t} 新的协办请求取代，请在新卡片上操作。"
            ));
        }
        _ => {}
    }
    let p = &callback.params;
    let args = match verb {
        Verb::Joint => units_text(p.get("units")),
        Verb::Independent => text(p.get("path_and_basis")),
        Verb::Return | Verb::Object => text(p.get("reason")),
        Verb::City => text(p.get("note")),
        Verb::Accept => {
            let parts: Vec<String> = [
                ("联系人", text(p.get("contact_name"))),
                ("职务", text(p.get("position"))),
                ("电话", text(p.get("phone"))),
                ("协助", text(p.get("help"))),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(label, v)| format!("{label}：{v}"))
            .collect();
            parts.join(" ")
        }
        _ => String::new(),
    };
    let line = format!("{} {t} {args}", syntax(verb).word);
    match parse_command(&line, units) {
        Some(Ok(command)) => match (command, &copy.card.kind) {
            (Command::Act { ticket_no, input }, _) => Ok((ticket_no, input)),
            // The card is the unit's: act for it, whatever else the sender belongs to.
            (Command::Answer { ticket_no, answer }, CardKind::Coordination { unit }) => {
                Ok((ticket_no, answer.by(unit.clone())))
            }
            _ => Err("无法识别填写的内容，请发送文字命令（发送“帮助”查看）。".into()),
        },
        Some(Err(e)) => Err(e.message),
        None => Err("无法识别填写的内容，请发送文字命令（发送“帮助”查看）。".into()),
    }
}

/// A param as one line of text: strings trimmed, a list joined with `、`, numbers as written;
/// line breaks become spaces, since the command parser reads one line.
fn text(value: Option<&Value>) -> String {
    let joined = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| text(Some(v)))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("、"),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    joined.replace(['\r', '\n'], " ").trim().to_string()
}

/// `units` as the 联合 command's `单位：方向；单位：方向`: text as it is, or a JSON list (possibly
/// inside a string) of `{"unit", "direction"}` objects or `单位：方向` strings. Separators inside
/// a direction are softened to `，` so one item cannot split into two.
fn units_text(value: Option<&Value>) -> String {
    let list = match value {
        Some(Value::Array(items)) => Some(items.clone()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s.trim()) {
            Ok(Value::Array(items)) => Some(items),
            _ => None,
        },
        _ => None,
    };
    let Some(items) = list else {
        return text(value);
    };
    items
        .iter()
        .map(|item| match item {
            Value::Object(o) => {
                let unit = text(o.get("unit"));
                let direction = text(o.get("direction")).replace([';', '；'], "，");
                format!("{unit}：{direction}")
            }
            other => text(Some(other)),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("；")
}

/// What a callback gets back.
#[derive(Debug, Clone, PartialEq)]
pub enum CardReply {
    /// Not one of our cards (or not for this user): nothing was stored.
    Refused(Refusal),
    /// The tapping user's copy as it is now (after the action, if one was taken), and a
    /// message for that user alone when the tap changed nothing (refused or invalid inputs).
    Answer {
        content: CardContent,
        error: Option<String>,
    },
    /// The tap could not be processed for a reason a retry will not fix; it was stored
    /// quarantined for an operator, and the tapping user is told so. The card stays as it is.
    Failed,
}

impl CardReply {
    /// The body DingTalk applies to the tapping user's copy (§6.4): `None` for an unknown card
    /// (there is nothing to update).
    pub fn response(&self) -> Option<Value> {
        match self {
            CardReply::Refused(Refusal::UnknownCard) => None,
            CardReply::Refused(Refusal::NotRecipient) => Some(json!({
                "cardUpdateOptions": {"updatePrivateDataByKey": true},
                "userPrivateData": {"cardParamMap": private_params(Some(NOT_YOURS))},
            })),
            CardReply::Answer { content, error } => Some(response(content, error.as_deref())),
            CardReply::Failed => Some(json!({
                "cardUpdateOptions": {"updatePrivateDataByKey": true},
                "userPrivateData": {"cardParamMap": private_params(Some(NOT_PROCESSED))},
            })),
        }
    }
}

/// What the tapping user is told when the tap was quarantined ([`CardReply::Failed`]).
pub const NOT_PROCESSED: &str =
    "系统处理这次操作时出错，操作已记录并已通知管理员；管理员排除故障后会补办，无需重复操作。";

/// What a non-recipient who taps someone else's copy is told.
pub const NOT_YOURS: &str = "这张卡片不是发给您的，您不能在这张卡片上操作。";

/// The callback answer (§6.4) showing `content` on the tapping user's copy, and `error` to that
/// user alone. The public data is replaced whole (`updateCardDataByKey: false`), so button slots
/// of actions that are gone do not linger.
pub fn response(content: &CardContent, error: Option<&str>) -> Value {
    json!({
        "cardUpdateOptions": {"updateCardDataByKey": false, "updatePrivateDataByKey": true},
        "cardData": {"cardParamMap": card_params(content)},
        "userPrivateData": {"cardParamMap": private_params(error)},
    })
}

fn private_params(error: Option<&str>) -> Value {
    let error = error.unwrap_or_default();
    json!({ERROR_PARAM: error, HAS_ERROR_PARAM: (!error.is_empty()).to_string()})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(content: &str) -> String {
        json!({"outTrackId": " TC-2026-0001_review_v1__u1 ", "userId": "u1", "content": content})
            .to_string()
    }

    #[test]
    fn callback_reads_action_from_params_then_action_ids() {
        let cb = CardCallback::from_json(&body(
            r#"{"cardPrivateData":{"actionIds":["btn_1"],"params":{"action":" claim ","reason":"x"}}}"#,
        ))
        .expect("callback");
        assert_eq!(cb.out_track_id, "TC-2026-0001_review_v1__u1");
        assert_eq!(cb.action.as_deref(), Some("claim"));
        assert_eq!(cb.params["reason"], "x");
        let by_id = CardCallback::from_json(&body(
            r#"{"cardPrivateData":{"actionIds":["","object"],"params":{}}}"#,
        ))
        .expect("callback");
        assert_eq!(by_id.action.as_deref(), Some("object"));
        let unreadable = CardCallback::from_json(&body("not json")).expect("callback");
        assert_eq!((unreadable.action, unreadable.params.len()), (None, 0));
        assert_eq!(CardCallback::from_json(r#"{"outTrackId":"a"}"#), None);
        assert_eq!(CardCallback::from_json("[]"), None);
    }

    #[test]
    fn params_become_one_line_of_command_text() {
        assert_eq!(
            text(Some(&json!(" 现场核查\n政策解释 "))),
            "现场核查 政策解释"
        );
        assert_eq!(
            text(Some(&json!(["现场核查", "", "政策解释"]))),
            "现场核查、政策解释"
        );
        assert_eq!(text(Some(&json!(13900000000_i64))), "13900000000");
        assert_eq!(text(Some(&json!({"a": 1}))), "");
        assert_eq!(text(None), "");
    }

    #[test]
    fn units_accept_text_a_list_or_a_list_in_a_string() {
        let text_form = json!("区住建局：核查；区城市管理局：巡查");
        assert_eq!(
            units_text(Some(&text_form)),
            "区住建局：核查；区城市管理局：巡查"
        );
        let list = json!([
            {"unit": "区住建局", "direction": "核查审批；工程款"},
            "区城市管理局：巡查",
        ]);
        let expected = "区住建局：核查审批，工程款；区城市管理局：巡查";
        assert_eq!(units_text(Some(&list)), expected);
        assert_eq!(units_text(Some(&Value::String(list.to_string()))), expected);
    }

    #[test]
    fn answers_replace_the_public_data_and_set_the_private_error() {
        let content = CardContent {
            title: "联合调处申请 DH1".into(),
            markdown: "正文".into(),
            status: "孟艳秋 开始审核".into(),
            buttons: Vec::new(),
            input_defaults: Default::default(),
        };
        let ok = CardReply::Answer {
            content: content.clone(),
            error: None,
        }
        .response()
        .expect("answer");
        assert_eq!(ok["cardUpdateOptions"]["updateCardDataByKey"], false);
        assert_eq!(ok["cardData"]["cardParamMap"]["status"], "孟艳秋 开始审核");
        assert_eq!(ok["cardData"]["cardParamMap"]["button_count"], "0");
        assert_eq!(
            ok["userPrivateData"]["cardParamMap"],
            json!({"error": "", "has_error": "false"})
        );
        let refused = response(&content, Some("已处理"));
        assert_eq!(
            refused["userPrivateData"]["cardParamMap"],
            json!({"error": "已处理", "has_error": "true"})
        );
        let not_yours = CardReply::Refused(Refusal::NotRecipient)
            .response()
            .expect("answer");
        assert!(not_yours.get("cardData").is_none());
        assert_eq!(
            not_yours["userPrivateData"]["cardParamMap"]["error"],
            NOT_YOURS
        );
        assert_eq!(CardReply::Refused(Refusal::UnknownCard).response(), None);
    }
}

//! Interactive card content (docs/spec.md → Messages and cards): the review card every inspector gets
//! and the coordination card a cooperating unit's liaisons get. A card is re-rendered from the
//! case after every action, so it always shows the current state: `status` says who did what and
//! when, and the buttons of an action already taken are gone. Every button has the equivalent
//! text command, so the service works without the card template too.
//!
//! The card platform template (created once in the DingTalk console) is string-only; its
//! variables are those of [`card_params`]. `markdown` is markdown: whatever people wrote enters
//! it through [`md_text`]. `status` and `title` are plain text: people's text in them is kept on
//! its own line ([`plain_line`]), so a reason cannot add a status line of its own.

use std::collections::BTreeMap;

use serde::Serialize;

use super::escape::{md_text, plain_line};
use super::notify::{
    cmd, contact_summary, due_text, green_mark, mask_phones, person_name, short_time,
    supervised_clock,
};
use crate::calendar::Calendar;
use crate::parse::command::Verb;
use crate::roster::Roster;
use crate::workflow::{Case, ClockKind, DecisionKind, Due, RequestStatus, State};

/// What a card shows. `status` is empty while nobody has acted on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardContent {
    pub title: String,
    /// The body, DingTalk markdown.
    pub markdown: String,
    pub status: String,
    /// Only the actions valid now, in display order.
    pub buttons: Vec<CardButton>,
    /// What the template's input components start with, by input variable name (the
    /// `<name>_default` card variable): the 联合调处 `units` input comes with the units the
    /// application asks for, so the inspector edits the directions instead of typing the units.
    pub input_defaults: BTreeMap<String, String>,
}

/// A card button and the text command that does the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardButton {
    /// Stable action id the callback carries (`claim`, `decide_joint`, …, `accept`, `object`).
    pub id: String,
    pub label: String,
    /// The equivalent text command; arguments the user must supply are written as in 帮助.
    pub command: String,
}

/// The review card of the case's latest application version (四(二), 五(一)).
///
/// Buttons: 开始审核 while unclaimed; 联合调处, 独立办理, 退回补充, 提请市级协调 for the claimer
/// while under review; none once decided.
pub fn review_card(case: &Case, roster: &Roster, calendar: &Calendar) -> CardContent {
    let t = &case.ticket_no;
    let app = &case.application;
    let mut body = vec![format!(
        "案件 {} · 工单 **{}**",
        md_text(&case.case_no),
        md_text(t)
    )];
    let mut item = |label: &str, value: &str| {
        body.push(format!("- {label}：{}", md_text(&mask_phones(value))))
    };
    item("工单标题", &app.title);
    // The submitter is of the first unit: the name alone, so no bracket sits in a bracket.
    let submitter = roster
        .person(&case.submitted_by)
        .filter(|p| p.unit == case.first_unit)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| person_name(roster, &case.submitted_by));
    item(
        "首接单位",
        &format!("{}（提交人 {submitter}）", case.first_unit),
    );
    if case.version > 1 {
        item("申请版本", &format!("第 {} 版", case.version));
    }
    item("疑难类型", app.category.label());
    item(
        "紧急程度",
        if case.green_channel {
            "紧急（绿色通道）"
        } else {
            "一般"
        },
    );
    item("已采取措施", &app.measures_taken);
    item("办理难点", &app.difficulties);
    item("需协调部门及事由", &app.coordination);
    if !app.requested_units.is_empty() {
        item("识别出的协调单位", &app.requested_units.join("、"));
    }
    if !app.unresolved_mentions.is_empty() {
        item("待确定", &app.unresolved_mentions.join("、"));
    }
    if app.city_level {
        item("市级协调", "涉及市级或跨区县单位");
    }
    item("分管领导意见", &app.leader_approval);
    if let Some(deadline) = app.deadline {
        item("工单办理时限", &deadline.to_string());
    }
    let clocks = [
        (ClockKind::ReviewStart, "启动审核"),
        (ClockKind::Decision, "研判截止"),
        (ClockKind::GreenCoordination, "绿色通道协调完成"),
    ];
    for (kind, label) in clocks {
        if let Some(clock) = case.clock(&kind).filter(|c| c.started >= case.received_at) {
            body.push(format!(
                "- {label}：{}",
                due_text(&Due::from(clock), calendar)
            ));
        }
    }
    body.extend(super::similar::review_lines(case));

    let who = |id: &str| plain_line(&person_name(roster, id));
    let mut status = Vec::new();
    if let Some(claim) = &case.claim {
        status.push(format!(
            "{} {} 开始审核",
            who(&claim.by),
            short_time(claim.at, calendar)
        ));
    }
    if let Some(d) = case.last_decision().filter(|d| d.version == case.version) {
        let what = match &d.kind {
            DecisionKind::Joint { units } => {
                format!("决定联合调处（{}）", plain_line(&units.join("、")))
            }
            DecisionKind::Independent { .. } => "建议独立办理".to_string(),
            DecisionKind::Returned { .. } => "退回补充".to_string(),
            DecisionKind::City { .. } => "提请市级协调".to_string(),
        };
        status.push(format!(
            "{} {} {what}",
            who(&d.by),
            short_time(d.at, calendar)
        ));
    }

    let mut input_defaults = BTreeMap::new();
    let buttons = match case.state {
        State::Submitted => vec![button("claim", "开始审核", cmd(Verb::Claim, t))],
        State::UnderReview => {
            let joint = if app.requested_units.is_empty() {
                cmd(Verb::Joint, t)
            } else {
                let asks: Vec<String> = app
                    .requested_units
                    .iter()
                    .map(|u| format!("{u}：协同方向及重点"))
                    .collect();
                input_defaults.insert("units".to_string(), asks.join("；"));
                format!("联合 {t} {}", asks.join("；"))
            };
            vec![
                button("decide_joint", "联合调处", joint),
                button("decide_independent", "独立办理", cmd(Verb::Independent, t)),
                button("return", "退回补充", cmd(Verb::Return, t)),
                button("escalate_city", "提请市级协调", cmd(Verb::City, t)),
            ]
        }
        State::AwaitingLeader
        | State::Returned
        | State::Independent
        | State::CityEscalated
        | State::Coordinating
        | State::JointHandling
        | State::Completed
        | State::Closed => Vec::new(),
    };
    CardContent {
        title: format!("{}联合调处申请 {t}", green_mark(case)),
        markdown: body.join("\n\n"),
        status: status.join("\n"),
        buttons,
        input_defaults,
    }
}

/// The coordination card of `unit` (四(三)): the case, the direction and focus asked of the unit,
/// the first unit's contact and the response deadline.
///
/// Buttons: 接受协办 and 提出异议 while the request is unanswered (pending or overdue); only
/// 接受协办 after an objection (a unit may still come round); none once accepted or withdrawn,
/// or when the case is over. A unit never asked gets a card that says so, with no buttons.
pub fn coordination_card(
    case: &Case,
    unit: &str,
    roster: &Roster,
    calendar: &Calendar,
) -> CardContent {
    let t = &case.ticket_no;
    let title = format!("{}协办请求 {} · {t}", green_mark(case), plain_line(unit));
    let Some(request) = case.request(unit) else {
        return CardContent {
            title,
            markdown: format!("案件 {} · 工单 **{}**", md_text(&case.case_no), md_text(t)),
            status: format!("工单 {t} 没有请{}协办。", plain_line(unit)),
            buttons: Vec::new(),
            input_defaults: BTreeMap::new(),
        };
    };
    let mut body = vec![
        format!("案件 {} · 工单 **{}**", md_text(&case.case_no), md_text(t)),
        format!(
            "- 工单标题：{}",
            md_text(&mask_phones(&case.application.title))
        ),
        format!("- 首接单位：{}", md_text(&case.first_unit)),
        format!(
            "- 协同方向及重点：{}",
            md_text(&mask_phones(&request.direction))
        ),
        // 四(一)/四(三): what the first unit already did and why it cannot finish alone, so the
        // unit can judge the request (principle 8).
        format!(
            "- 已采取措施：{}",
            md_text(&mask_phones(&case.application.measures_taken))
        ),
        format!(
            "- 办理难点：{}",
            md_text(&mask_phones(&case.application.difficulties))
        ),
    ];
    let contact = std::iter::once(case.submitted_by.as_str())
        .filter_map(|id| roster.person(id))
        .next();
    if let Some(p) = contact {
        let phone = &p.phone;
        body.push(format!(
            "- 首接单位联系人：{}",
            md_text(&format!("{}（{}）{phone}", p.name, p.unit))
        ));
    }
    let due = case
        .clocks
        .iter()
        .find(|c| c.id == request.clock_id)
        .map(|c| due_text(&Due::from(c), calendar))
        .unwrap_or_else(|| calendar.display(request.due));
    // Principle 6: once a 书面督办 is issued, the card shows the deadline it set instead (the
    // original one stays in the status line of an overdue request).
    let issued = case
        .supervisions
        .iter()
        .rev()
        .find(|s| s.unit == request.unit);
    match issued.and_then(|s| supervised_clock(case, s).map(|c| (s, c))) {
        Some((s, clock)) => body.push(format!(
            "- 第 {} 号书面督办答复期限：{}",
            s.number,
            due_text(&Due::from(clock), calendar)
        )),
        None => body.push(format!("- 答复期限：{due}")),
    }

    let who = |id: &str| plain_line(&person_name(roster, id));
    let when = |at| short_time(at, calendar);
    let objection = request.objection.as_ref().map(|o| {
        format!(
            "{} {} 提出异议：{}",
            who(&o.by),
            when(o.at),
            plain_line(&mask_phones(&o.reason))
        )
    });
    let status = match &request.status {
        RequestStatus::Pending => String::new(),
        RequestStatus::Accepted(a) => format!(
            "{} {} 接受协办，联系人 {}",
            who(&a.by),
            when(a.at),
            plain_line(&contact_summary(&a.contact))
        ),
        RequestStatus::Objected => format!(
            "{}；待质检专员处理",
            objection.unwrap_or_else(|| "已提出异议".into())
        ),
        RequestStatus::Insisted { by, at } => {
            let mut lines = format!(
                "{}\n{} {} 决定继续请求协办，转书面督办",
                objection.unwrap_or_else(|| "已提出异议".into()),
                who(by),
                when(*at)
            );
            if let Some(s) = issued {
                lines.push_str(&format!(
                    "\n{} {} 下发第 {} 号书面督办",
                    who(&s.by),
                    when(s.at),
                    s.number
                ));
            }
            lines
        }
        // Facts only (principle 4): "书面督办" is named once one was issued to this unit;
        // until then the miss has been reported to the supervisor (四(三)).
        RequestStatus::Overdue => match issued {
            Some(s) => format!(
                "超过答复期限 {} 未答复，{} 已下发第 {} 号书面督办",
                calendar.display(request.due),
                when(s.at),
                s.number
            ),
            None => format!(
                "超过答复期限 {} 未答复，已报督办专员",
                calendar.display(request.due)
            ),
        },
        RequestStatus::Withdrawn { by, at } => {
            format!("{} {} 撤回协办请求，无需再配合", who(by), when(*at))
        }
    };
    let open = !case.state.is_terminal();
    let accept = || button("accept", "接受协办", cmd(Verb::Accept, t));
    let buttons = match &request.status {
        RequestStatus::Pending | RequestStatus::Overdue if open => {
            vec![accept(), button("object", "提出异议", cmd(Verb::Object, t))]
        }
        RequestStatus::Objected | RequestStatus::Insisted { .. } if open => vec![accept()],
        _ => Vec::new(),
    };
    CardContent {
        title,
        markdown: body.join("\n\n"),
        status,
        buttons,
        input_defaults: BTreeMap::new(),
    }
}

/// The review card of an earlier application version once a newer one is registered: no
/// buttons, and where to act instead, so each inspector has one live review card per case.
pub fn superseded_review_card(case: &Case, version: u32) -> CardContent {
    CardContent {
        title: format!(
            "{}联合调处申请 {}（第 {version} 版，已失效）",
            green_mark(case),
            case.ticket_no
        ),
        markdown: format!(
            "案件 {} · 工单 **{}**\n\n首接单位已补充后重新提交，申请已更新为**第 {} 版**，请在新的审核卡片上操作。",
            md_text(&case.case_no),
            md_text(&case.ticket_no),
            case.version
        ),
        status: format!("已由第 {} 版取代", case.version),
        buttons: Vec::new(),
        input_defaults: BTreeMap::new(),
    }
}

fn button(id: &str, label: &str, command: String) -> CardButton {
    CardButton {
        id: id.to_string(),
        label: label.to_string(),
        command,
    }
}

/// The card template's `cardParamMap` (every value a string, as the card platform requires).
///
/// Template variables:
/// - `title`: the card title, with 【绿色通道】 for green-channel cases;
/// - `markdown`: the body (DingTalk markdown);
/// - `status`: who did what and when, one line each; empty while open;
/// - `has_status`: `"true"` / `"false"`, to hide the status block while empty;
/// - `buttons`: a JSON string, an array of `{"id", "label", "command"}` in display order;
/// - `button_count`: the number of buttons, as a decimal string;
/// - `button_<n>_id`, `button_<n>_label` (`n` from 1): each button flat, for templates that bind
///   fixed button slots (a slot with no variable is hidden).
pub fn card_params(content: &CardContent) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    params.insert("title".to_string(), content.title.clone());
    params.insert("markdown".to_string(), content.markdown.clone());
    params.insert("status".to_string(), content.status.clone());
    params.insert(
        "has_status".to_string(),
        (!content.status.is_empty()).to_string(),
    );
    params.insert(
        "buttons".to_string(),
        serde_json::to_string(&content.buttons)
            .expect("buttons are plain strings and always serialise"),
    );
    params.insert(
        "button_count".to_string(),
        content.buttons.len().to_string(),
    );
    for (n, b) in content.buttons.iter().enumerate() {
        params.insert(format!("button_{}_id", n + 1), b.id.clone());
        params.insert(format!("button_{}_label", n + 1), b.label.clone());
    }
    for (input, value) in &content.input_defaults {
        params.insert(format!("{input}_default"), value.clone());
    }
    params
}

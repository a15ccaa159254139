//! Rendering through the public API: cases driven by `workflow::transition` (the shipped roster
//! plus liaisons, the shipped calendar, default SLAs), every `Message` that occurs rendered with
//! `messages::notify::render`, and the cards and the 查询 reply rendered at each step. Each
//! rendering must carry the case and ticket numbers, the green-channel mark on green cases, the
//! key facts of its message, and no citizen's phone number.

use std::collections::BTreeSet;

use jiff::Timestamp;
use tiaochu::calendar::Calendar;
use tiaochu::domain::CaseNo;
use tiaochu::messages::card::{card_params, coordination_card, review_card};
use tiaochu::messages::help::{help_all, help_text};
use tiaochu::messages::notify::{Rendered, render};
use tiaochu::messages::timeline::{TimelineEntry, render_query};
use tiaochu::parse::{self, Category};
use tiaochu::roster::{Person, Role, Roster};
use tiaochu::settings::SlaSettings;
use tiaochu::workflow::{
    Actor, Case, ClockKind, CoordinationAsk, Ctx, Effect, HelpItem, Input, Message, Phase,
    SatisfactionLevel, Subject, transition,
};

use crate::support;

const RS_LIAISON: &str = "rs-liaison";
const ZJ_LIAISON: &str = "zj-liaison";
const CG_LIAISON: &str = "cg-liaison";
const INSPECTOR: &str = "local:区12345热线:孟艳秋";
const SUPERVISOR: &str = "local:区12345热线:姚雪婷";
const SYSTEM: &str = "system";
const FIRST: &str = "区人社局";
const ZJ: &str = "区住建局";
const CG: &str = "区城市管理局";
/// The citizen's mobile, written into the application's free text; it must never be shown.
const CITIZEN_PHONE: &str = "13912345678";
/// The same number masked, as the markdown writes it: the mask's asterisks are escaped so they
/// show as written instead of pairing up into emphasis.
const CITIZEN_MASKED: &str = r"139\*\*\*\*5678";
const CONTACT_PHONE: &str = "13800000009";

struct World {
    roster: Roster,
    units: tiaochu::parse::UnitMatcher,
    calendar: Calendar,
    sla: SlaSettings,
}

impl World {
    fn new() -> World {
        let mut builder = support::world();
        for (name, unit, id, phone) in [
            ("人社联络员", FIRST, RS_LIAISON, "13800000001"),
            ("住建联络员", ZJ, ZJ_LIAISON, "13800000002"),
            ("城管联络员", CG, CG_LIAISON, "13800000003"),
        ] {
            builder = builder.person(Person::new(
                name,
                unit,
                "股长",
                vec![Role::Liaison],
                id,
                phone,
            ));
        }
        let core = builder.core();
        World {
            units: tiaochu::parse::UnitMatcher::new(&core.roster),
            roster: core.roster,
            calendar: core.calendar,
            sla: core.sla,
        }
    }
}

/// One case driven step by step; every message sent is rendered and checked, and kept.
struct Run<'w> {
    w: &'w World,
    /// The number the first submission registers the case under.
    case_no: CaseNo,
    case: Option<Case>,
    now: Timestamp,
    events: Vec<TimelineEntry>,
    /// (recipient, message, rendering), in order.
    sent: Vec<(String, Message, Rendered)>,
}

impl<'w> Run<'w> {
    fn new(w: &'w World, ticket: &str, urgent: bool) -> Run<'w> {
        let mut run = Run {
            w,
            case_no: CaseNo::new(2026, ticket[ticket.len() - 4..].parse().expect("digits")),
            case: None,
            now: "2026-11-02T09:00:00+08:00".parse().expect("timestamp"),
            events: Vec::new(),
            sent: Vec::new(),
        };
        run.step(
            Input::Submit {
                application: support::registrable(&w.roster, &application(ticket, urgent)),
            },
            RS_LIAISON,
        );
        run
    }

    fn case(&self) -> &Case {
        self.case.as_ref().expect("a case")
    }

    fn minutes(&mut self, n: i64) -> &mut Self {
        self.now = self
            .now
            .checked_add(jiff::SignedDuration::from_mins(n))
            .expect("time");
        self
    }

    /// Applies `input`; returns the messages it sent.
    fn step(&mut self, input: Input, actor: &str) -> Vec<Message> {
        let actor_ref = match actor {
            SYSTEM => Actor::System,
            id => Actor::Person(crate::support::person_id(id)),
        };
        let ctx = Ctx {
            roster: &self.w.roster,
            calendar: &self.w.calendar,
            sla: &self.w.sla,
            require_leader_confirmation: false,
        };
        let subject = match &self.case {
            Some(case) => Subject::Case(case),
            None => Subject::New {
                case_no: &self.case_no,
            },
        };
        let d = transition(subject, &input, &actor_ref, self.now, &ctx)
            .unwrap_or_else(|r| panic!("{input:?} by {actor} refused: {}", r.message));
        self.events.extend(d.events.iter().map(TimelineEntry::from));
        let mut out = Vec::new();
        for effect in &d.effects {
            if let Effect::Notify { to, message } = effect {
                let roles = self
                    .w
                    .roster
                    .person(to)
                    .map(|p| p.roles.clone())
                    .unwrap_or_default();
                let r = render(
                    &d.case,
                    message,
                    &roles,
                    &self.w.roster,
                    &self.w.units,
                    &self.w.calendar,
                );
                check(&d.case, message, &r, &roles);
                self.sent.push((to.to_string(), message.clone(), r));
                out.push(message.clone());
            }
        }
        check_cards(&d.case, self.w);
        self.case = Some(d.case);
        out
    }

    /// Fires the timers of the latest `kind` clock up to and including `phase`, at their due times.
    fn fire(&mut self, kind: &ClockKind, phase: Phase) -> Vec<Message> {
        let clock = self.case().clock(kind).expect("clock").clone();
        let mut out = Vec::new();
        for timer in &clock.timers {
            self.now = timer.due_at;
            out.extend(self.step(
                Input::TimerFired {
                    key: timer.key.clone(),
                },
                SYSTEM,
            ));
            if timer.phase == phase {
                break;
            }
        }
        out
    }

    /// The renderings sent to `to` for messages of serde tag `tag`.
    fn rendered(&self, to: &str, tag: &str) -> Vec<&Rendered> {
        self.sent
            .iter()
            .filter(|(t, m, _)| t == to && variant(m) == tag)
            .map(|(_, _, r)| r)
            .collect()
    }

    fn one(&self, to: &str, tag: &str) -> &Rendered {
        let found = self.rendered(to, tag);
        assert!(!found.is_empty(), "no {tag} to {to}: {:?}", self.tags());
        found[found.len() - 1]
    }

    fn tags(&self) -> BTreeSet<String> {
        self.sent.iter().map(|(_, m, _)| variant(m)).collect()
    }

    fn query(&self) -> String {
        render_query(self.case(), &self.events, &self.w.roster, &self.w.calendar)
    }
}

fn variant(m: &Message) -> String {
    serde_json::to_value(m).expect("message serialises")["message"]
        .as_str()
        .expect("tagged")
        .to_string()
}

/// What every message must have, and what it must not: a command its recipient (`roles`) may
/// not send.
fn check(case: &Case, message: &Message, r: &Rendered, roles: &[tiaochu::roster::Role]) {
    let all = format!("{}\n{}", r.title, r.markdown);
    assert!(
        r.title.contains(case.ticket_no.as_str()),
        "{message:?}: {}",
        r.title
    );
    assert!(
        r.markdown.contains(case.case_no.as_str()),
        "{message:?}: {all}"
    );
    assert_eq!(
        r.title.contains("【绿色通道】") && r.markdown.contains("【绿色通道】"),
        case.green_channel,
        "{message:?}: {all}"
    );
    assert!(
        !all.contains(CITIZEN_PHONE),
        "{message:?} shows the citizen's phone: {all}"
    );
    let wrong = crate::support::suggestions_not_for(&r.markdown, &[], roles);
    assert!(
        wrong.is_empty(),
        "{message:?} suggests {wrong:?} to {roles:?}: {all}"
    );
}

/// Every card of the case renders, with the ticket and without the citizen's phone.
fn check_cards(case: &Case, w: &World) {
    let mut cards = vec![review_card(case, &w.roster, &w.calendar)];
    for r in &case.requests {
        cards.push(coordination_card(case, &r.unit, &w.roster, &w.calendar));
    }
    for card in cards {
        let all = format!("{}{}{}", card.title, card.markdown, card.status);
        assert!(card.title.contains(case.ticket_no.as_str()), "{all}");
        assert_eq!(
            card.title.contains("【绿色通道】"),
            case.green_channel,
            "{all}"
        );
        assert!(!all.contains(CITIZEN_PHONE), "{all}");
        for b in &card.buttons {
            assert!(b.command.contains(case.ticket_no.as_str()), "{b:?}");
        }
        let params = card_params(&card);
        let buttons: serde_json::Value =
            serde_json::from_str(&params["buttons"]).expect("buttons are JSON");
        assert_eq!(buttons.as_array().map(Vec::len), Some(card.buttons.len()));
        assert_eq!(params["has_status"], (!card.status.is_empty()).to_string());
    }
}

fn application(ticket: &str, urgent: bool) -> parse::Application {
    parse::Application {
        ok: true,
        ticket_no: Some(ticket.into()),
        title: format!("反映某企业拖欠薪资的问题（诉求人电话 {CITIZEN_PHONE}）"),
        first_unit: Some(FIRST.into()),
        measures_taken: format!("已联系企业核实，诉求人 {CITIZEN_PHONE} 反映属实"),
        difficulties: "涉及国企项目，单方难以协调".into(),
        coordination: "请区住建局、区城市管理局协同".into(),
        requested_units: vec![ZJ.into(), CG.into()],
        unresolved_mentions: vec!["具体国企".into()],
        city_level: false,
        leader_approval: "已向分管领导汇报，分管领导已同意".into(),
        leader_approved: true,
        urgent,
        category: if urgent {
            Category::UrgentPublic
        } else {
            Category::LacksCapacity
        },
        deadline: None,
        missing: vec![],
        errors: vec![],
    }
}

fn joint(units: &[&str]) -> Input {
    Input::DecideJoint {
        units: units
            .iter()
            .map(|u| CoordinationAsk {
                unit: crate::support::unit_named(u),
                direction: format!("{u}核实项目情况，诉求人 {CITIZEN_PHONE}"),
            })
            .collect(),
    }
}

fn accept(unit: &str) -> Input {
    Input::Accept {
        unit: crate::support::unit_named(unit),
        contact_name: "张三".into(),
        position: "股长".into(),
        phone: CONTACT_PHONE.into(),
        help: vec![HelpItem::SiteCheck, HelpItem::Other("人员调配".into())],
    }
}

fn has(r: &Rendered, parts: &[&str]) {
    let all = format!("{}\n{}", r.title, r.markdown);
    for p in parts {
        assert!(all.contains(p), "missing {p:?} in:\n{all}");
    }
}

#[test]
fn a_green_joint_case_from_receipt_to_close() {
    let w = World::new();
    let t = "DH2026110200001";
    let mut run = Run::new(&w, t, true);
    has(
        run.one(RS_LIAISON, "receipt"),
        &[
            "申请已登记",
            "TC-2026-0001",
            "区人社局",
            "区住建局、区城市管理局",
            "待质检专员确定：具体国企",
            Category::UrgentPublic.label(),
            "绿色通道",
            "质检专员启动审核",
            "研判确定处置方式",
            "绿色通道协调完成",
            "截止",
            "`查询 DH2026110200001`",
            CITIZEN_MASKED,
        ],
    );
    let card = review_card(run.case(), &w.roster, &w.calendar);
    let before_claim = run.case().clone();
    assert_eq!(card.status, "");
    assert_eq!(
        card.buttons
            .iter()
            .map(|b| b.label.as_str())
            .collect::<Vec<_>>(),
        ["开始审核"]
    );
    assert_eq!(card.buttons[0].command, format!("审核 {t}"));

    run.minutes(5).step(Input::Claim, INSPECTOR);
    has(
        run.one(RS_LIAISON, "claimed"),
        &["孟艳秋", "已开始审核", "研判确定处置方式"],
    );
    let card = review_card(run.case(), &w.roster, &w.calendar);
    assert!(
        card.status.contains("孟艳秋") && card.status.contains("11-02 09:05 开始审核"),
        "{}",
        card.status
    );
    assert_eq!(
        card.buttons
            .iter()
            .map(|b| b.label.as_str())
            .collect::<Vec<_>>(),
        ["联合调处", "独立办理", "退回补充", "提请市级协调"]
    );
    // The template's 联合调处 input starts with the units the application asks for, in the
    // form the 联合 command reads, like the text button's command.
    let units = format!("{ZJ}：协同方向及重点；{CG}：协同方向及重点");
    assert_eq!(card_params(&card)["units_default"], units);
    assert_eq!(card.buttons[0].command, format!("联合 {t} {units}"));
    assert!(
        !card_params(&review_card(&before_claim, &w.roster, &w.calendar))
            .contains_key("units_default")
    );
    assert_eq!(
        card.buttons[0].command,
        format!("联合 {t} 区住建局：协同方向及重点；区城市管理局：协同方向及重点")
    );

    run.minutes(10).step(joint(&[ZJ, CG]), INSPECTOR);
    has(
        run.one(RS_LIAISON, "decided_joint"),
        &["联合调处", "区住建局", "区城市管理局", CITIZEN_MASKED],
    );
    assert!(
        review_card(run.case(), &w.roster, &w.calendar)
            .buttons
            .is_empty()
    );
    let zj_leader = "local:区住建局:保国钰";
    has(
        run.one(zj_leader, "coordination_request"),
        &[
            "区住建局",
            "协同方向及重点",
            "区住建局核实项目情况",
            "人社联络员",
            "答复期限",
            "`接受 DH2026110200001 联系人：",
        ],
    );
    let card = coordination_card(run.case(), ZJ, &w.roster, &w.calendar);
    assert_eq!(card.status, "");
    assert_eq!(
        card.buttons
            .iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>(),
        ["accept", "object"]
    );

    run.minutes(10).step(accept(ZJ), ZJ_LIAISON);
    has(
        run.one(INSPECTOR, "unit_accepted"),
        &[
            "区住建局",
            "张三（股长）",
            CONTACT_PHONE,
            "现场核查、其他（人员调配）",
            "尚待答复：区城市管理局",
        ],
    );
    let card = coordination_card(run.case(), ZJ, &w.roster, &w.calendar);
    assert!(card.buttons.is_empty());
    assert!(
        card.status.contains("住建联络员") && card.status.contains("接受协办"),
        "{}",
        card.status
    );

    run.minutes(5).step(
        Input::Object {
            unit: crate::support::unit_named(CG),
            reason: "不属于本单位职责".into(),
        },
        CG_LIAISON,
    );
    has(
        run.one(INSPECTOR, "objection_raised"),
        &[
            "区城市管理局",
            "不属于本单位职责",
            "`撤回 DH2026110200001 区城市管理局`",
            "`坚持 DH2026110200001 区城市管理局`",
        ],
    );
    let card = coordination_card(run.case(), CG, &w.roster, &w.calendar);
    assert!(
        card.status.contains("提出异议：不属于本单位职责"),
        "{}",
        card.status
    );
    assert_eq!(card.buttons.len(), 1);

    run.minutes(5).step(
        Input::Insist {
            unit: crate::support::unit_named(CG),
            reason: "现场秩序维护属城管职责".into(),
        },
        INSPECTOR,
    );
    has(
        run.one(CG_LIAISON, "request_insisted"),
        &[
            "继续请求协办",
            "不属于本单位职责",
            "不采纳理由：现场秩序维护属城管职责",
        ],
    );
    // Principle 6: the supervisor gets the drafted 书面督办, with both reasons, not a blank.
    has(
        run.one(SUPERVISOR, "supervision_requested"),
        &[
            "区城市管理局",
            "经研判未予采纳",
            "`督办 DH2026110200001 区城市管理局 区城市管理局对本工单联合调处协作请求提出的异议（不属于本单位职责）经质检专员研判未予采纳，理由：现场秩序维护属城管职责。",
        ],
    );
    run.minutes(5).step(
        Input::Supervise {
            unit: crate::support::unit_named(CG),
            content: "请立即明确联系人并到岗履职".into(),
        },
        SUPERVISOR,
    );
    has(
        run.one(CG_LIAISON, "supervision"),
        &["书面督办（第 1 号）", "请立即明确联系人并到岗履职", "`接受"],
    );

    run.minutes(5).step(accept(CG), CG_LIAISON);
    has(
        run.one(RS_LIAISON, "contacts_ready"),
        &[
            "区住建局：张三（股长）",
            "区城市管理局：张三（股长）",
            CONTACT_PHONE,
            "办结期限",
            "`进展 DH2026110200001",
            "`办结 DH2026110200001 过程：",
        ],
    );
    has(
        run.one(ZJ_LIAISON, "joint_handling_started"),
        &["区人社局", "牵头", "办结期限", "人社联络员"],
    );

    run.minutes(60).step(
        Input::Progress {
            text: format!("已约谈企业负责人，诉求人电话 {CITIZEN_PHONE}"),
        },
        RS_LIAISON,
    );
    has(
        run.one(ZJ_LIAISON, "progress"),
        &["区人社局", "已约谈企业负责人", CITIZEN_MASKED],
    );

    run.minutes(60).step(
        Input::Complete {
            process: "联合约谈".into(),
            measures: "企业分期支付".into(),
            citizen_feedback: "表示认可".into(),
        },
        RS_LIAISON,
    );
    has(
        run.one(INSPECTOR, "completed"),
        &[
            "联合约谈",
            "企业分期支付",
            "表示认可",
            "按期办结",
            "`满意度 DH2026110200001",
        ],
    );
    run.minutes(30).step(
        Input::Satisfaction {
            level: SatisfactionLevel::Satisfied,
        },
        INSPECTOR,
    );
    has(
        run.one(RS_LIAISON, "closed"),
        &["已结案", "群众满意度：满意"],
    );

    let query = run.query();
    for part in [
        "【绿色通道】工单 DH2026110200001",
        "状态：已结案",
        "11-02 09:00 提交申请（区人社局） — 人社联络员（区人社局）",
        "11-02 09:05 开始审核",
        "孟艳秋（区12345热线）",
        "接受协办（区住建局）",
        "书面督办（区城市管理局）",
        "记录满意度",
        "启动审核（即收即审）：已完成（11-02 09:05，按期）",
        "联合处置办结",
    ] {
        assert!(query.contains(part), "missing {part:?} in:\n{query}");
    }
    assert!(
        !query.contains("已提醒 0 次"),
        "a clock nobody was reminded on says nothing of reminders:\n{query}"
    );
    assert!(!query.contains(CITIZEN_PHONE), "{query}");
}

#[test]
fn reminders_differ_and_breaches_escalate() {
    let w = World::new();
    let t = "DH2026110200002";
    let mut run = Run::new(&w, t, false);
    assert!(
        run.fire(&ClockKind::ReviewStart, Phase::Half)
            .iter()
            .any(|m| matches!(m, Message::Reminder { .. }))
    );
    run.minutes(1).step(Input::Claim, INSPECTOR);
    run.fire(&ClockKind::Decision, Phase::Due);
    let reminders = run.rendered(INSPECTOR, "reminder");
    // One on the review-start clock, two on the decision clock.
    assert_eq!(reminders.len(), 3, "{:?}", run.tags());
    let (half, soon) = (reminders[1], reminders[2]);
    assert_ne!(half.title, soon.title);
    assert_ne!(half.markdown, soon.markdown);
    has(
        half,
        &[
            "第 1 次提醒",
            "研判确定处置方式",
            "已过半",
            "剩余",
            "`联合 DH2026110200002",
        ],
    );
    has(
        soon,
        &[
            "第 2 次提醒",
            "即将到期",
            "剩余 30 分钟工作时间",
            "`独立 DH2026110200002",
        ],
    );
    assert!(!half.title.contains("【绿色通道】"));
    has(
        run.one(INSPECTOR, "breach"),
        &["研判确定处置方式", "已超过期限"],
    );
    let head = "local:区12345热线:李小燕";
    has(
        run.one(head, "escalation"),
        &["研判确定处置方式", "责任人：孟艳秋（区12345热线）"],
    );
    assert!(run.query().contains("已提醒 2 次"), "{}", run.query());
    assert!(run.query().contains("已超期"), "{}", run.query());

    // A unit that does not answer: breach, escalation to its leader, supervision requested.
    run.minutes(1).step(joint(&[ZJ]), INSPECTOR);
    run.fire(
        &ClockKind::UnitResponse {
            unit: crate::support::unit_named(ZJ),
        },
        Phase::Due,
    );
    has(
        run.one(ZJ_LIAISON, "breach"),
        &["区住建局答复协调请求", "`接受 DH2026110200002"],
    );
    has(
        run.one("local:区住建局:保国钰", "escalation"),
        &["区住建局答复协调请求", "住建联络员"],
    );
    has(
        run.one(SUPERVISOR, "supervision_requested"),
        &["区住建局", "未在期限内答复"],
    );
    let card = coordination_card(run.case(), ZJ, &w.roster, &w.calendar);
    assert!(card.status.contains("超过答复期限"), "{}", card.status);

    // Withdrawing the only unit reopens the decision.
    run.minutes(1).step(
        Input::Withdraw {
            unit: crate::support::unit_named(ZJ),
        },
        INSPECTOR,
    );
    has(
        run.one(ZJ_LIAISON, "request_withdrawn"),
        &["撤回", "区住建局"],
    );
    has(
        run.one(INSPECTOR, "decision_reopened"),
        &["区住建局", "重新研判", "研判确定处置方式"],
    );
    assert!(
        coordination_card(run.case(), ZJ, &w.roster, &w.calendar)
            .buttons
            .is_empty()
    );

    run.minutes(1).step(
        Input::DecideIndependent {
            path_and_basis: "依据《保障农民工工资支付条例》责令限期支付".into(),
        },
        INSPECTOR,
    );
    has(
        run.one(RS_LIAISON, "decided_independent"),
        &["独立办理", "保障农民工工资支付条例"],
    );
    assert!(run.query().contains("已转独立办理"), "{}", run.query());
}

#[test]
fn return_and_city_escalation() {
    let w = World::new();
    let mut returned = Run::new(&w, "DH2026110200003", false);
    returned.minutes(5).step(Input::Claim, INSPECTOR);
    returned.minutes(5).step(
        Input::Return {
            reason: "已采取措施不具体".into(),
        },
        INSPECTOR,
    );
    has(
        returned.one(RS_LIAISON, "returned"),
        &["退回补充", "已采取措施不具体", "`模板`"],
    );
    let card = review_card(returned.case(), &w.roster, &w.calendar);
    assert!(
        card.status.contains("退回补充") && card.buttons.is_empty(),
        "{card:?}"
    );

    let mut city = Run::new(&w, "DH2026110200004", false);
    city.minutes(5).step(Input::Claim, INSPECTOR);
    city.minutes(5).step(
        Input::EscalateCity {
            note: "需市交通运输局协调".into(),
        },
        INSPECTOR,
    );
    has(
        city.one(RS_LIAISON, "decided_city"),
        &["提请市12345热线协调", "需市交通运输局协调"],
    );
    has(
        city.one("local:市12345热线:杨琳", "city_escalation"),
        &[
            "市12345热线",
            "区人社局",
            "请区住建局、区城市管理局协同",
            "`市级结果 DH2026110200004",
        ],
    );
    city.minutes(60).step(
        Input::RecordCityOutcome {
            outcome: "市交通运输局已批复".into(),
        },
        INSPECTOR,
    );
    has(
        city.one(RS_LIAISON, "closed"),
        &["市级协调结果：市交通运输局已批复"],
    );
}

#[test]
fn every_message_variant_is_rendered_somewhere() {
    let w = World::new();
    // The flows of the other tests, replayed here only for the variant census.
    let mut tags = BTreeSet::new();
    let mut green = Run::new(&w, "DH2026110200005", true);
    green.minutes(5).step(Input::Claim, INSPECTOR);
    green.step(joint(&[ZJ, CG]), INSPECTOR);
    green.step(accept(ZJ), ZJ_LIAISON);
    green.step(
        Input::Object {
            unit: crate::support::unit_named(CG),
            reason: "职责不符".into(),
        },
        CG_LIAISON,
    );
    green.step(
        Input::Insist {
            unit: crate::support::unit_named(CG),
            reason: String::new(),
        },
        INSPECTOR,
    );
    green.step(
        Input::Supervise {
            unit: crate::support::unit_named(CG),
            content: "请配合".into(),
        },
        SUPERVISOR,
    );
    green.step(accept(CG), CG_LIAISON);
    green.step(
        Input::Progress {
            text: "进展".into(),
        },
        RS_LIAISON,
    );
    green.step(
        Input::Complete {
            process: "过程".into(),
            measures: "措施".into(),
            citizen_feedback: "认可".into(),
        },
        RS_LIAISON,
    );
    green.step(
        Input::Satisfaction {
            level: SatisfactionLevel::BasicallySatisfied,
        },
        INSPECTOR,
    );
    tags.extend(green.tags());
    let mut late = Run::new(&w, "DH2026110200006", false);
    late.fire(&ClockKind::ReviewStart, Phase::Due);
    late.minutes(1).step(Input::Claim, INSPECTOR);
    late.step(joint(&[ZJ]), INSPECTOR);
    late.fire(
        &ClockKind::UnitResponse {
            unit: crate::support::unit_named(ZJ),
        },
        Phase::Due,
    );
    late.minutes(1).step(
        Input::Withdraw {
            unit: crate::support::unit_named(ZJ),
        },
        INSPECTOR,
    );
    late.step(
        Input::EscalateCity {
            note: "市级".into(),
        },
        INSPECTOR,
    );
    late.step(
        Input::RecordCityOutcome {
            outcome: "已解决".into(),
        },
        INSPECTOR,
    );
    tags.extend(late.tags());
    let mut other = Run::new(&w, "DH2026110200007", false);
    other.minutes(5).step(Input::Claim, INSPECTOR);
    other.step(
        Input::Return {
            reason: "补充".into(),
        },
        INSPECTOR,
    );
    tags.extend(other.tags());
    let mut independent = Run::new(&w, "DH2026110200008", false);
    independent.minutes(5).step(Input::Claim, INSPECTOR);
    independent.step(
        Input::DecideIndependent {
            path_and_basis: "依据".into(),
        },
        INSPECTOR,
    );
    tags.extend(independent.tags());
    let expected: BTreeSet<String> = [
        "receipt",
        "claimed",
        "decided_joint",
        "decided_independent",
        "returned",
        "decided_city",
        "city_escalation",
        "coordination_request",
        "unit_accepted",
        "objection_raised",
        "request_withdrawn",
        "request_insisted",
        "supervision_requested",
        "supervision",
        "coordination_update",
        "decision_reopened",
        "contacts_ready",
        "joint_handling_started",
        "progress",
        "progress_shared",
        "completed",
        "completion_recorded",
        "closed",
        "reminder",
        "breach",
        "escalation",
        "done",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(tags, expected);
}

#[test]
fn help_lists_commands_for_the_senders_role() {
    let text = help_text(&[Role::Inspector]);
    assert!(text.starts_with("【联合调处助手】"), "{text}");
    assert!(text.contains("您的命令（质检专员）"), "{text}");
    assert!(text.contains("联合 DH… 单位：协同方向及重点"), "{text}");
    assert!(text.contains("帮助 全部"), "{text}");
    assert!(text.lines().count() <= 12, "{text}");
    let all = help_all(&[Role::Inspector]);
    assert!(all.contains("您常用的命令（质检专员）"), "{all}");
    assert!(all.contains("联合 DH2026110300017 区住建局："), "{all}");
    assert!(all.contains("发送“模板”"), "{all}");
}

//! Notifications (docs/spec.md → Messages and cards): one DingTalk markdown message per workflow
//! [`Message`], rendered with the case it belongs to. Short, Chinese and specific: case number,
//! 工单编号, what is asked, by when (with the deadline's explanation), and the next command to
//! type in a code span. Every message of a green-channel case carries 【绿色通道】; a provisional
//! deadline says so.
//!
//! Citizens' phone numbers never appear: every free text that came from users (application
//! fields, reasons, notes, progress) goes through [`mask_phones`]. Contacts' phones are the units'
//! work contacts (四(三): 联系方式) and are shown as given.
//!
//! Everything not written here — people's text, names, units — enters the markdown through the
//! [`Md`] builder's `item` and `quote`, which escape it ([`md_text`]), or through [`md_text`] at
//! the one `format!` that puts it in a `line`; commands go in code spans ([`md_code`]).

use std::borrow::Borrow;

use jiff::Timestamp;

use super::escape::{md_code, md_text};
use super::help::is_for;
use crate::calendar::Calendar;
use crate::parse::UnitMatcher;
use crate::parse::command::{Verb, normalize_phone, syntax, verb_of};
use crate::roster::{Role, Roster};
use crate::workflow::{
    Case, ClockKind, ClosedHow, Contact, CoordinationUpdate, Done, Due, HelpItem, Message,
    PersonRef, Phase, SupervisionGround,
};

/// A rendered notification: `title` is what DingTalk shows in the chat list and the push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub title: String,
    pub markdown: String,
}

/// Renders `message` about `case` for its recipient, who holds `roles`: a message suggests only
/// the commands those roles may send (docs/spec.md → Text commands).
pub fn render(
    case: &Case,
    message: &Message,
    roles: &[Role],
    roster: &Roster,
    units: &UnitMatcher,
    calendar: &Calendar,
) -> Rendered {
    let mut m = Md::new(case, roles);
    let headline = body(&mut m, case, message, roster, units, calendar);
    m.finish(&headline)
}

/// Fills `m` with what `message` says below the case line; returns the headline.
fn body(
    m: &mut Md,
    case: &Case,
    message: &Message,
    roster: &Roster,
    units: &UnitMatcher,
    calendar: &Calendar,
) -> String {
    let t = &case.ticket_no;
    let headline = match message {
        Message::Receipt {
            version,
            first_unit,
            requested_units,
            unresolved_mentions,
            city_level,
            category,
            review_due,
            decision_due,
            coordination_due,
        } => {
            if *version > 1 {
                m.item("申请版本", &format!("第 {version} 版（补充后重新提交）"));
            }
            m.item("工单标题", &mask_phones(&case.application.title));
            m.item("首接单位", first_unit);
            // Principle 3: every unit mention comes back. A name matching nothing in the
            // roster is named with what it may mean, as the 联合 command does; city-level ones
            // are named as such (principle 7).
            let (cities, rest): (Vec<String>, Vec<String>) = unresolved_mentions
                .iter()
                .cloned()
                .partition(|x| units.is_city_level(x));
            let empty = if cities.is_empty() {
                "未写明具体单位，由质检专员确定"
            } else {
                "无区级单位"
            };
            m.item("拟协调单位", &list_or(requested_units, empty));
            if !cities.is_empty() {
                m.item(
                    "市级或跨区县单位",
                    &format!("{}（由市区12345热线先行对接）", cities.join("、")),
                );
            }
            let mut others = Vec::new();
            for mention in &rest {
                match units.unknown_unit_suggestions(mention) {
                    Some(s) if s.is_empty() => m.item(
                        "未在名单中的单位",
                        &format!("{mention}（质检专员研判时确定）"),
                    ),
                    Some(s) => m.item(
                        "未在名单中的单位",
                        &format!(
                            "{mention}，您是否指：{}？（质检专员研判时确定）",
                            s.join("、")
                        ),
                    ),
                    None => others.push(mention.clone()),
                }
            }
            if !others.is_empty() {
                m.item("待质检专员确定", &others.join("、"));
            }
            if *city_level && cities.is_empty() {
                // 四(一): city-level or cross-county units are arranged through the city 12345.
                m.item(
                    "市级协调",
                    "涉及市级或跨区县单位，将由市区12345热线先行对接",
                );
            }
            m.item("疑难类型", category.label());
            m.item(
                "紧急程度",
                if case.green_channel {
                    "紧急（绿色通道：即时研判，1 个工作日内完成协调）"
                } else {
                    "一般"
                },
            );
            m.due("质检专员启动审核", review_due, calendar);
            m.due("研判确定处置方式", decision_due, calendar);
            if let Some(due) = coordination_due {
                m.due("绿色通道协调完成", due, calendar);
            }
            m.next("等待质检专员审核。查看进度", &[cmd(Verb::Query, t)]);
            "申请已登记"
        }
        Message::AwaitingLeader { version, leaders } => {
            if *version > 1 {
                m.item("申请版本", &format!("第 {version} 版（补充后重新提交）"));
            }
            m.item("工单标题", &mask_phones(&case.application.title));
            m.item("首接单位", &case.first_unit);
            let names: Vec<String> = leaders.iter().map(|p| p.name.clone()).collect();
            m.item("待确认", &format!("分管领导 {}", names.join("、")));
            // 四(一): the mechanism clocks start when the leader agrees, not at registration.
            m.line("申请已登记，**须经本单位分管领导确认同意**后才推送质检专员审核，各项期限自领导确认时起算。");
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "申请待分管领导确认"
        }
        Message::LeaderConfirmationRequest {
            version,
            submitted_by,
        } => {
            if *version > 1 {
                m.item("申请版本", &format!("第 {version} 版（补充后重新提交）"));
            }
            if let Some(p) = submitted_by {
                m.item("提交人", &format!("{}（{}）", p.name, p.unit));
            }
            m.item("工单标题", &mask_phones(&case.application.title));
            m.item("已采取措施", &mask_phones(&case.application.measures_taken));
            m.item("存在困难", &mask_phones(&case.application.difficulties));
            m.item("需协调事项", &mask_phones(&case.application.coordination));
            m.item(
                "拟协调单位",
                &list_or(&case.application.requested_units, "未写明具体单位"),
            );
            m.line("本单位联络员提交了联合调处申请，请您确认是否同意发起（四(一) 经本单位分管领导同意）。");
            m.next(
                "同意请发送；需修改请退回联络员并写明原因",
                &[cmd(Verb::LeaderApprove, t), cmd(Verb::LeaderReturn, t)],
            );
            "请确认联合调处申请"
        }
        Message::LeaderReturned { leader, reason } => {
            let who = leader
                .as_ref()
                .map(|p| format!("分管领导 {} ", md_text(&p.name)))
                .unwrap_or_else(|| "分管领导".to_string());
            m.line(&format!("申请被{who}**退回联络员**，未推送质检专员。"));
            m.item("退回原因", &mask_phones(reason));
            m.next(
                "请修改后重新发送完整申请（工单编号不变），将再次送分管领导确认。获取申请格式",
                &[cmd(Verb::Template, t)],
            );
            "申请被分管领导退回"
        }
        Message::Claimed { inspector } => {
            m.line(&format!(
                "质检专员 {} 已开始审核本申请。",
                md_text(&inspector.name)
            ));
            if let Some(clock) = case.clock(&ClockKind::Decision) {
                m.due("研判确定处置方式", &Due::from(clock), calendar);
            }
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "已开始审核"
        }
        Message::DecidedJoint { units } => {
            m.line("质检专员研判决定：**联合调处**。已请以下单位配合：");
            for ask in units {
                m.item(&ask.unit, &mask_phones(&ask.direction));
            }
            if let Some(request) = units.first().and_then(|a| case.request(&a.unit)) {
                m.line(&format!(
                    "各单位须于 {}前答复；全部接受后，各单位联系人将汇总发给您。",
                    calendar.display(request.due)
                ));
            }
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "决定联合调处"
        }
        Message::DecidedIndependent { path_and_basis } => {
            m.line("质检专员研判认为无需其他单位配合，建议**由首接单位独立办理**。");
            m.item("解决路径及政策依据", &mask_phones(path_and_basis));
            m.line("本联合调处案件已结案（独立办理），请继续按工单时限办结。");
            m.next("查看办理经过", &[cmd(Verb::Query, t)]);
            "建议独立办理"
        }
        Message::Returned { reason } => {
            m.line("申请被质检专员**退回补充**。");
            m.item("退回原因", &mask_phones(reason));
            m.next(
                "请补充后重新发送完整申请（工单编号不变）。获取申请格式",
                &[cmd(Verb::Template, t)],
            );
            "申请已退回补充"
        }
        Message::DecidedCity { note, due } => {
            m.line("质检专员已**提请市12345热线协调**市级或跨区县单位。");
            m.item("说明", &mask_phones(note));
            if let Some(due) = due {
                m.due("市级协调结果预计反馈", due, calendar);
            }
            m.next("协调结果将另行通知。查看进度", &[cmd(Verb::Query, t)]);
            "已提请市级协调"
        }
        Message::CityEscalation {
            note,
            first_unit,
            title,
            coordination,
            due,
        } => {
            m.line("甘州区12345热线提请市12345热线统筹协调市级部门或跨区县单位参与处置。");
            m.item("工单标题", &mask_phones(title));
            m.item("首接单位", first_unit);
            m.item("需协调部门及事由", &mask_phones(coordination));
            m.item("说明", &mask_phones(note));
            if let Some(due) = due {
                m.due("请反馈协调结果", due, calendar);
            }
            m.next(
                "协调结果请告知区12345热线，由热线记录",
                &[cmd(Verb::CityOutcome, t)],
            );
            "提请市级协调"
        }
        Message::CoordinationRequest {
            unit,
            direction,
            due,
            first_unit_contact,
        } => {
            m.line(&format!(
                "区12345热线请**{}**配合首接单位 {} 联合调处本工单。",
                md_text(unit),
                md_text(&case.first_unit)
            ));
            m.item("工单标题", &mask_phones(&case.application.title));
            m.item("协同方向及重点", &mask_phones(direction));
            m.item("已采取措施", &mask_phones(&case.application.measures_taken));
            m.item("办理难点", &mask_phones(&case.application.difficulties));
            if let Some(p) = first_unit_contact {
                m.item("首接单位联系人", &person_contact(p));
            }
            m.due("答复期限", due, calendar);
            m.next(
                "请组织本单位联络员答复：接受协办，或提出异议",
                &[cmd(Verb::Accept, t), cmd(Verb::Object, t)],
            );
            "协办请求"
        }
        Message::UnitAccepted { contact } => {
            m.line(&format!("**{}** 已接受协办。", md_text(&contact.unit)));
            contact_items(m, contact);
            let waiting: Vec<&str> = case
                .active_requests()
                .filter(|r| !r.status.is_settled())
                .map(|r| r.unit.as_str())
                .collect();
            if !waiting.is_empty() {
                m.item("尚待答复", &waiting.join("、"));
            } else if let Some(clock) = case.clock(&ClockKind::Handling) {
                // The last answer started the joint handling (五(二)): say so, once, here.
                m.line(&format!(
                    "各单位均已接受，联合处置开始，由首接单位 {} 牵头。",
                    md_text(&case.first_unit)
                ));
                m.due("办结期限", &Due::from(clock), calendar);
            }
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "配合单位已接受协办"
        }
        Message::ObjectionRaised { unit, reason } => {
            m.line(&format!("**{}** 对协作需求提出异议。", md_text(unit)));
            m.item("异议理由", &mask_phones(reason));
            m.next_or(
                "请研判该异议：采纳则撤回对该单位的请求，不采纳则坚持请求（转书面督办）",
                &[format!("撤回 {t} {unit}"), format!("坚持 {t} {unit}")],
                Some("质检专员将研判该异议：采纳则撤回对该单位的请求，不采纳则由区12345热线书面督办。"),
            );
            "配合单位提出异议"
        }
        Message::RequestWithdrawn { unit } => {
            let unit = md_text(unit);
            m.line(&format!(
                "质检专员已撤回对 **{unit}** 的协办请求，{unit}无需再配合本工单。"
            ));
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "协办请求已撤回"
        }
        Message::RequestInsisted {
            unit,
            objection,
            reason,
        } => {
            m.line(&format!(
                "质检专员研究了 **{}** 的异议，决定**继续请求协办**，区12345热线将书面督办。",
                md_text(unit)
            ));
            m.item("原异议理由", &mask_phones(objection));
            if !reason.is_empty() {
                m.item("不采纳理由", &mask_phones(reason));
            }
            m.next("请尽快接受协办", &[cmd(Verb::Accept, t)]);
            "异议未采纳，继续请求协办"
        }
        Message::SupervisionRequested { unit, ground } => {
            m.line(&format!("请对 **{}** 进行书面督办。", md_text(unit)));
            m.item("督办事由", ground_label(*ground));
            if let Some(r) = case.request(unit) {
                if let Some(o) = &r.objection {
                    m.item("异议理由", &mask_phones(&o.reason));
                }
                if let Some(reason) = &r.insist_reason {
                    m.item("质检专员不采纳理由", &mask_phones(reason));
                }
            }
            match supervision_draft(case, unit, *ground, calendar) {
                // The last rung of the ladder: issued with one command, editable before sending.
                // Its own list item, since it may quote what people wrote (inert in a code span).
                Some(draft) if is_for(Verb::Supervise, m.roles) => m.line(&format!(
                    "- 已拟好督办内容，确认后发送（可修改）：{}",
                    md_code(&format!("督办 {t} {unit} {draft}"))
                )),
                Some(_) => {}
                None => m.next("请督办专员发送", &[format!("督办 {t} {unit} 督办内容")]),
            }
            "待书面督办"
        }
        Message::Supervision {
            number,
            unit,
            content,
            ground,
            due,
        } => {
            m.line(&format!("**书面督办（第 {number} 号）**"));
            m.item("督办单位", unit);
            m.item("督办事由", ground_label(*ground));
            m.item("督办内容", &mask_phones(content));
            // Principle 6: the deadline this 督办 set, not the request's original one.
            if let Some(due) = due {
                m.due(supervised_due_label(*ground), due, calendar);
            }
            let next = match ground {
                SupervisionGround::HandlingOverdue => cmd(Verb::Complete, t),
                SupervisionGround::Insisted | SupervisionGround::Overdue => cmd(Verb::Accept, t),
            };
            m.next("请按督办要求立即办理", &[next]);
            "书面督办"
        }
        Message::CoordinationUpdate { unit, update } => {
            let unit_md = md_text(unit);
            match update {
                CoordinationUpdate::Objected { reason } => {
                    m.line(&format!(
                        "**{unit_md}** 对协作需求提出异议，质检专员正在研判（采纳则撤回该单位，不采纳则书面督办）。"
                    ));
                    m.item("异议理由", &mask_phones(reason));
                }
                CoordinationUpdate::Insisted { reason } => {
                    m.line(&format!(
                        "质检专员未采纳 **{unit_md}** 的异议，继续请其协办，已提请督办专员书面督办。"
                    ));
                    if !reason.is_empty() {
                        m.item("不采纳理由", &mask_phones(reason));
                    }
                }
                CoordinationUpdate::Overdue => m.line(&format!(
                    "**{unit_md}** 未在期限内答复协调请求，视为拒不配合，已提请督办专员书面督办。"
                )),
                CoordinationUpdate::Supervised { number, due } => {
                    m.line(&format!(
                        "区12345热线已对 **{unit_md}** 签发书面督办（第 {number} 号）。"
                    ));
                    if let Some(due) = due {
                        m.due("该单位督办答复期限", due, calendar);
                    }
                }
                CoordinationUpdate::SupervisedOverdue { due } => {
                    m.line(&format!(
                        "**{unit_md}** 未在书面督办期限内答复，已报其分管领导和督办专员。"
                    ));
                    m.due("督办答复期限", due, calendar);
                }
            }
            m.line("其他单位的联系人齐备后将一并发给您。");
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "协办进展"
        }
        Message::DecisionReopened {
            withdrawn,
            decision_due,
        } => {
            m.line(&format!(
                "请求的配合单位已全部撤回（{}），请重新研判处置方式。",
                md_text(&withdrawn.join("、"))
            ));
            m.due("研判确定处置方式", decision_due, calendar);
            m.next("请发送", &[cmd(Verb::Joint, t), cmd(Verb::Independent, t)]);
            "请重新研判"
        }
        Message::ContactsReady {
            contacts,
            handling_due,
        } => {
            m.line("各配合单位均已接受协办，联系人如下，请牵头联合处置（五(二)）：");
            for c in contacts {
                m.item(&c.unit, &contact_summary(c));
            }
            m.due("办结期限", handling_due, calendar);
            m.next(
                "同步进展、反馈结果",
                &[cmd(Verb::Progress, t), cmd(Verb::Complete, t)],
            );
            "配合单位联系人已齐"
        }
        Message::JointHandlingStarted {
            first_unit_contact,
            handling_due,
        } => {
            m.line(&format!(
                "联合处置开始，由首接单位 **{}** 牵头，请按约定到岗履职、形成合力。",
                md_text(&case.first_unit)
            ));
            if let Some(p) = first_unit_contact {
                m.item("首接单位联系人", &person_contact(p));
            }
            m.due("办结期限", handling_due, calendar);
            m.next("同步进展", &[cmd(Verb::Progress, t)]);
            "联合处置开始"
        }
        Message::Progress {
            from_unit,
            by,
            text,
        } => {
            m.line(&format!(
                "**{}**（{}）同步办理进展：",
                md_text(from_unit),
                md_text(&by.name)
            ));
            m.quote(&mask_phones(text));
            m.next("回复进展", &[cmd(Verb::Progress, t)]);
            "办理进展"
        }
        Message::AlreadyRegistered { state } => {
            m.line(&format!(
                "该申请已登记（案件 {}，{}），无需重复发送。",
                md_text(&case.case_no),
                md_text(state)
            ));
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "申请已登记"
        }
        Message::ProgressShared { to_units } => {
            m.line(&format!(
                "您的进展已转给：{}。",
                md_text(&list_or(to_units, "相关单位"))
            ));
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "进展已转达"
        }
        Message::CompletionRecorded { on_time } => {
            m.line(&format!(
                "办结结果已登记（{}），已告知质检专员和各配合单位；区12345热线将回访群众并记录满意度。",
                if *on_time {
                    "按期办结"
                } else {
                    "超过办结期限"
                }
            ));
            m.next("查看办理经过", &[cmd(Verb::Query, t)]);
            "办结已登记"
        }
        Message::Completed {
            process,
            measures,
            citizen_feedback,
            on_time,
        } => {
            m.line(&format!(
                "首接单位 {} 已反馈办理结果（{}）。",
                md_text(&case.first_unit),
                if *on_time {
                    "按期办结"
                } else {
                    "超过办结期限"
                }
            ));
            m.item("处理过程", &mask_phones(process));
            m.item("解决措施", &mask_phones(measures));
            m.item("群众反馈", &mask_phones(citizen_feedback));
            m.next_or(
                "回访群众后记录满意度；可标记典型案例",
                &[cmd(Verb::Satisfaction, t), cmd(Verb::Typical, t)],
                Some("区12345热线将回访群众并记录满意度。"),
            );
            "已办结"
        }
        Message::Closed { how } => {
            match how {
                ClosedHow::Independent => m.line("本案件已结案：由首接单位独立办理。"),
                ClosedHow::City { outcome } => {
                    m.line("本案件已结案：市级协调结果已记录。");
                    m.item("市级协调结果", &mask_phones(outcome));
                }
                ClosedHow::Satisfaction { level } => {
                    m.line("本案件已结案。");
                    m.item("群众满意度", level.label());
                }
            }
            m.line("感谢各单位协同配合。");
            m.next("查看办理经过", &[cmd(Verb::Query, t)]);
            "已结案"
        }
        Message::Reminder {
            clock,
            phase,
            due,
            remaining_minutes,
            count,
        } => {
            let when = match phase {
                Phase::Soon | Phase::Due => "即将到期",
                Phase::Half => "已过半",
                Phase::Start => "请立即开始（绿色通道即时研判，不等工作时间）",
            };
            // The green channel's time left is wall-clock time (it runs at any hour).
            let left = if case.green_channel {
                elapsed(*remaining_minutes)
            } else {
                working_time_in(*remaining_minutes, calendar)
            };
            // `剩余 3 小时…`, `剩余约 5 个工作日`: one space before a number, none before 约.
            let left = if left.starts_with('约') {
                format!("剩余{left}")
            } else {
                format!("剩余 {left}")
            };
            m.line(&format!(
                "**第 {count} 次提醒**：“{}”{when}，{left}。",
                md_text(&clock.label()),
            ));
            m.due(&clock.label(), due, calendar);
            m.next("请及时办理", &next_for_clock(clock, t));
            // DingTalk drops identical repeats: the count and remaining time are in the title.
            return format!("第{count}次提醒：{}（{left}）", clock.label());
        }
        Message::Breach { clock, due } => {
            let own = next_for_clock(clock, t);
            if own
                .iter()
                .any(|c| verb_of(c).is_none_or(|v| is_for(v, m.roles)))
            {
                m.line(&format!(
                    "“{}”**已超过期限**，请立即办理。",
                    md_text(&clock.label())
                ));
                m.due("期限", due, calendar);
                m.next("请立即办理", &own);
            } else {
                // Principle 2: the inspector and the supervisor are told of a unit's breach,
                // which is not theirs to remedy; they get what they can do about it.
                m.line(&format!("“{}”**已超过期限**。", md_text(&clock.label())));
                m.due("期限", due, calendar);
                let (told, withdraw, supervise) = match clock {
                    ClockKind::UnitResponse { unit } => (
                        "已提醒该单位及其分管领导，并报督办专员书面督办。",
                        Some(unit.as_str()),
                        None,
                    ),
                    ClockKind::SupervisedResponse { unit } => (
                        "已提醒该单位，并报其分管领导。",
                        Some(unit.as_str()),
                        Some(unit.as_str()),
                    ),
                    ClockKind::SupervisedHandling => (
                        "已提醒首接单位，并报其分管领导。",
                        None,
                        Some(case.first_unit.as_str()),
                    ),
                    _ => ("已提醒责任人并逐级上报。", None, None),
                };
                m.line(told);
                if let Some(unit) = withdraw {
                    m.next("如需撤回对该单位的请求", &[format!("撤回 {t} {unit}")]);
                }
                if let Some(unit) = supervise {
                    m.next("如需再次书面督办", &[format!("督办 {t} {unit} 督办内容")]);
                }
            }
            "已超期"
        }
        Message::Escalation {
            clock,
            due,
            responsible,
        } => {
            let names: Vec<String> = responsible
                .iter()
                .map(|id| person_name(roster, id))
                .collect();
            m.line(&format!(
                "“{}”已超过期限，请督促落实（五(四) 考核问责）。",
                md_text(&clock.label())
            ));
            m.item("责任人", &list_or(&names, "（名单中无人）"));
            m.due("期限", due, calendar);
            m.next("查看办理经过", &[cmd(Verb::Query, t)]);
            "超期提醒"
        }
        Message::CatchUp {
            scheduled,
            late_minutes,
            items,
        } => {
            let late = elapsed(*late_minutes);
            m.line(&format!(
                "系统服务曾中断，以下事项原定于 {} 起提醒，现补发（迟发 {late}）：",
                short_time(*scheduled, calendar)
            ));
            for item in items {
                let mut part = Md {
                    case,
                    roles: m.roles,
                    body: Vec::new(),
                };
                let headline = body(&mut part, case, item, roster, units, calendar);
                m.line(&format!("**{headline}**"));
                m.body.extend(part.body);
            }
            // Distinct per lateness, since DingTalk drops identical repeats.
            return format!("补发提醒（迟发{late}）");
        }
        Message::DeadlineChanged {
            clock,
            previous,
            due,
        } => {
            m.line(&format!(
                "节假日安排已更新，“{}”的期限重新计算（原截止 {}）。",
                md_text(&clock.label()),
                calendar.display(*previous)
            ));
            m.due("新的期限", due, calendar);
            m.next("请按新期限办理", &next_for_clock(clock, t));
            "期限已重新计算"
        }
        Message::Done { done } => done_body(m, case, done, roster, calendar),
    };
    headline.to_string()
}

/// What the actor's own action did ([`Message::Done`]), read from the case after it.
fn done_body(
    m: &mut Md,
    case: &Case,
    done: &Done,
    roster: &Roster,
    calendar: &Calendar,
) -> &'static str {
    let t = &case.ticket_no;
    let first = md_text(&case.first_unit);
    match done {
        Done::Claimed => {
            m.line("您已认领本申请的审核，首接单位已收到通知。");
            if let Some(clock) = case.clock(&ClockKind::Decision) {
                m.due("研判确定处置方式", &Due::from(clock), calendar);
            }
            m.next(
                "研判后请发送",
                &[
                    cmd(Verb::Joint, t),
                    cmd(Verb::Independent, t),
                    cmd(Verb::Return, t),
                    cmd(Verb::City, t),
                ],
            );
            "已认领审核"
        }
        Done::DecidedJoint => {
            m.line("已决定**联合调处**，协办请求已发给以下单位：");
            for r in case.active_requests() {
                m.item(
                    &r.unit,
                    &format!("答复截止 {}", short_time(r.due, calendar)),
                );
            }
            m.line("各单位接受或提出异议时会通知您。");
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "已发出协办请求"
        }
        Done::DecidedIndependent => {
            m.line(&format!(
                "已决定由 **{first}** 独立办理，解决路径及政策依据已发给首接单位；本联合调处案件已结案。"
            ));
            "已决定独立办理"
        }
        Done::Returned => {
            m.line(&format!(
                "已退回 **{first}** 补充，退回原因已告知首接单位。补充后重新提交的申请会再推送审核卡片。"
            ));
            "已退回补充"
        }
        Done::EscalatedCity => {
            m.line("已提请市12345热线协调，申请和说明已发给市热线督办组。");
            m.next(
                "市级协调有结果后请发送，案件随之结案",
                &[cmd(Verb::CityOutcome, t)],
            );
            "已提请市级协调"
        }
        Done::CityOutcome => {
            m.line("市级协调结果已登记，案件已结案；首接单位和质检专员已收到结果。");
            "市级结果已登记"
        }
        Done::Accepted { unit } => {
            let waiting: Vec<&str> = case
                .active_requests()
                .filter(|r| !r.status.is_settled())
                .map(|r| r.unit.as_str())
                .collect();
            if waiting.is_empty() {
                m.line(&format!(
                    "**{}** 已接受协办，联系人已转告首接单位 {first}。",
                    md_text(unit)
                ));
            } else {
                // Principle 4: the first unit gets every contact at once, when all are in.
                m.line(&format!("**{}** 已接受协办。", md_text(unit)));
                m.item("尚待答复", &waiting.join("、"));
                m.line(&format!(
                    "各单位答复齐后，您的联系人将一并转给首接单位 {first}，联合处置随即开始，届时会发给您首接单位的联系人和办结期限。"
                ));
            }
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "已接受协办"
        }
        Done::Objected { unit } => {
            let inspector = case
                .claim
                .as_ref()
                .map(|c| format!("质检专员{}", md_text(&person_short(roster, &c.by))))
                .unwrap_or_else(|| "质检专员".to_string());
            m.line(&format!(
                "**{}** 的异议已转{inspector}研判：采纳则撤回对本单位的请求，不采纳则由区12345热线书面督办。研判结果会通知您。",
                md_text(unit)
            ));
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "异议已提交"
        }
        Done::Withdrawn { unit } => {
            m.line(&format!(
                "已撤回对 **{}** 的协办请求，该单位及首接单位已收到通知。",
                md_text(unit)
            ));
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "协办请求已撤回"
        }
        Done::Insisted { unit } => {
            m.line(&format!(
                "已坚持对 **{}** 的协办请求：该单位已收到通知，督办专员已收到书面督办的请求。",
                md_text(unit)
            ));
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "已坚持协办请求"
        }
        Done::Supervised { unit } => {
            let issued = case.supervisions.iter().rev().find(|s| &s.unit == unit);
            let number = issued
                .map(|s| format!("（第 {} 号）", s.number))
                .unwrap_or_default();
            m.line(&format!(
                "书面督办{number}已送达 **{}** 的联络员和分管领导，质检专员已收到抄送。",
                md_text(unit)
            ));
            if let Some((ground, clock)) =
                issued.and_then(|s| supervised_clock(case, s).map(|c| (s.ground, c)))
            {
                m.due(supervised_due_label(ground), &Due::from(clock), calendar);
                m.line("到期未办理的，会提醒该单位并逐级上报。");
            }
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "书面督办已发出"
        }
        Done::Satisfaction => {
            m.line("满意度已登记，案件已结案。");
            "满意度已登记"
        }
        Done::Typical => {
            m.line("已标记为典型案例，将列入月度典型案例。");
            "已标记典型案例"
        }
        Done::Other { command } => {
            m.line(&format!("“{}”已办理。", md_text(command)));
            m.next("查看进度", &[cmd(Verb::Query, t)]);
            "已办理"
        }
    }
}

/// A roster person's name alone (their id when they left the roster).
fn person_short(roster: &Roster, id: &str) -> String {
    roster
        .person(id)
        .map_or_else(|| id.to_string(), |p| p.name.clone())
}

/// The written supervision the ladder's last rung drafts for a unit that let its deadline pass
/// (四(三) 拒不配合; 五(二) 规定时限内办结), citing the missed deadline and the 五(四) consequence;
/// `None` for an upheld objection, whose grounds only the supervisor can word.
fn supervision_draft(
    case: &Case,
    unit: &str,
    ground: SupervisionGround,
    calendar: &Calendar,
) -> Option<String> {
    let consequence = "逾期将在月统计、季总结中通报（五(四) 考核问责）";
    match ground {
        SupervisionGround::Overdue => {
            let due = case
                .request(unit)
                .map(|r| format!("答复期限 {}", calendar.display(r.due)))
                .unwrap_or_else(|| "答复期限".to_string());
            Some(format!(
                "{unit}未在{due}前答复本工单联合调处协作请求，请于收到督办后立即明确联系人、到岗履职，{consequence}。"
            ))
        }
        SupervisionGround::HandlingOverdue => {
            let due = case
                .clock(&ClockKind::Handling)
                .map(|c| format!(" {}", calendar.display(c.due)))
                .unwrap_or_default();
            Some(format!(
                "本工单联合处置已超过办结期限{due}，请{unit}牵头立即办结并反馈办理结果，{consequence}。"
            ))
        }
        SupervisionGround::Insisted => {
            // Principle 6: drafted from the objection and the inspector's reason, not blank.
            let request = case.request(unit)?;
            let objection = request
                .objection
                .as_ref()
                .map(|o| format!("（{}）", excerpt(&mask_phones(&o.reason), 40)))
                .unwrap_or_default();
            let reason = request
                .insist_reason
                .as_ref()
                .map(|r| format!("，理由：{}", excerpt(&mask_phones(r), 60)))
                .unwrap_or_default();
            Some(format!(
                "{unit}对本工单联合调处协作请求提出的异议{objection}经质检专员研判未予采纳{reason}。请于收到督办后明确联系人、到岗履职，{consequence}。"
            ))
        }
    }
}

/// At most `max` characters of `text`, with `…` when cut.
fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max).collect::<String>())
    } else {
        text.to_string()
    }
}

/// `2 天 3 小时`, `45 分钟`: wall-clock time, for how late a catch-up goes out.
pub(crate) fn elapsed(minutes: i64) -> String {
    let minutes = minutes.max(0);
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days} 天"));
    }
    if hours > 0 {
        parts.push(format!("{hours} 小时"));
    }
    if mins > 0 || parts.is_empty() {
        parts.push(format!("{mins} 分钟"));
    }
    parts.join(" ")
}

/// One line of the scheduler's digest: a reminder, breach or escalation of one clock. Stored as
/// JSON between the firing and the digest that sends it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DigestLine {
    pub ticket_no: String,
    pub green_channel: bool,
    /// The clock's Chinese label.
    pub clock: String,
    /// `第 2 次提醒`, `已超期`, …
    pub what: String,
}

/// The hotline group's digest of one scheduler pass at `at`: every reminder, breach and
/// escalation in ONE message rather than one each.
pub fn digest(lines: &[DigestLine], at: Timestamp, calendar: &Calendar) -> Rendered {
    let when = short_time(at, calendar);
    let mut markdown = format!("#### 期限提醒汇总（{when}）\n\n本轮共 {} 项：", lines.len());
    for line in lines {
        let green = if line.green_channel {
            "【绿色通道】"
        } else {
            ""
        };
        markdown.push_str(&format!(
            "\n\n- {green}工单 {} · {}：{}",
            line.ticket_no, line.clock, line.what
        ));
    }
    Rendered {
        // The time and count keep successive digests distinct (DingTalk drops identical repeats).
        title: format!("期限提醒汇总 {when}（{} 项）", lines.len()),
        markdown,
    }
}

/// To the admins, weekly from 1 November: `year`'s holiday schedule is not loaded, so deadlines
/// reaching it are provisional (docs/spec.md → Clocks).
pub fn calendar_missing(year: i16, at: Timestamp, calendar: &Calendar) -> Rendered {
    let markdown = format!(
        "#### {year} 年节假日安排尚未载入\n\n涉及 {year} 年的期限目前只按周一至周五计算，在所有消息中标为“暂定”。\n\n\
         国务院办公厅发布 {year} 年部分节假日安排的通知后，请整理为节假日文件，在服务器上执行 \
         `tiaochu calendar load 文件` 载入，然后重启服务；载入时会重新计算未到期的期限。\n\n\
         查看已载入的年份：`tiaochu calendar show {year}`"
    );
    Rendered {
        title: format!(
            "{year} 年节假日安排尚未载入（{}）",
            short_time(at, calendar)
        ),
        markdown,
    }
}

/// Markdown under construction: the case line first, then items, deadlines and the next step.
struct Md<'c> {
    case: &'c Case,
    /// The recipient's roles: what [`Md::next`] may suggest.
    roles: &'c [Role],
    body: Vec<String>,
}

impl<'c> Md<'c> {
    fn new(case: &'c Case, roles: &'c [Role]) -> Md<'c> {
        Md {
            case,
            roles,
            body: vec![format!(
                "案件 {} · 工单 **{}**",
                md_text(&case.case_no),
                md_text(&case.ticket_no)
            )],
        }
    }

    /// A paragraph of markdown written here; whatever it interpolates went through [`md_text`].
    fn line(&mut self, markdown: &str) {
        self.body.push(markdown.to_string());
    }

    /// `- label：value`, both plain text (a label may be a unit), on one line.
    fn item(&mut self, label: &str, value: &str) {
        self.body
            .push(format!("- {}：{}", md_text(label), md_text(value)));
    }

    /// `> text`, plain text on one line: a leading `#` or `>` in it stays text.
    fn quote(&mut self, text: &str) {
        self.body.push(format!("> {}", md_text(text)));
    }

    fn due(&mut self, label: &str, due: &Due, calendar: &Calendar) {
        self.body
            .push(format!("- {}：{}", md_text(label), due_text(due, calendar)));
    }

    /// `what：`command` 或 `command``, with only the commands the recipient may send; nothing
    /// when they may send none of them (principle: instructions only to people who can follow
    /// them).
    fn next(&mut self, what: &str, commands: &[String]) {
        self.next_or(what, commands, None);
    }

    /// As [`Md::next`]; when the recipient may send none of `commands`, the line `otherwise`
    /// (what is happening, for those who wait on someone else's step) instead.
    fn next_or(&mut self, what: &str, commands: &[String], otherwise: Option<&str>) {
        let spans: Vec<String> = commands
            .iter()
            .filter(|c| verb_of(c).is_none_or(|v| is_for(v, self.roles)))
            .map(|c| md_code(c))
            .collect();
        if !spans.is_empty() {
            self.body.push(format!("{what}：{}", spans.join(" 或 ")));
        } else if let Some(line) = otherwise {
            self.body.push(line.to_string());
        }
    }

    fn finish(self, headline: &str) -> Rendered {
        let green = green_mark(self.case);
        let title = format!("{green}{headline} {}", self.case.ticket_no);
        let mut markdown = format!("#### {green}{headline}\n\n");
        markdown.push_str(&self.body.join("\n\n"));
        Rendered { title, markdown }
    }
}

/// 五(一): every card and message of a green-channel case is marked.
pub(crate) fn green_mark(case: &Case) -> &'static str {
    if case.green_channel {
        "【绿色通道】"
    } else {
        ""
    }
}

/// `截止 2026-11-05 18:00（周四），…`: the calendar's explanation (which names the instant), or the
/// instant alone; a provisional deadline is marked as such.
pub(crate) fn due_text(due: &Due, calendar: &Calendar) -> String {
    let mut text = if due.explanation.is_empty() {
        format!("截止 {}", calendar.display(due.at))
    } else {
        due.explanation.clone()
    };
    if due.provisional && !text.contains("暂定") {
        text.push_str("（暂定期限：该年节假日安排尚未载入，载入后将重新计算）");
    }
    text
}

/// `11-02 09:00` in the calendar's zone (Asia/Shanghai).
pub(crate) fn short_time(t: Timestamp, calendar: &Calendar) -> String {
    calendar
        .time_zone()
        .to_datetime(t)
        .strftime("%m-%d %H:%M")
        .to_string()
}

/// `孟艳秋（区12345热线）`, or the id when the person left the roster.
pub(crate) fn person_name(roster: &Roster, id: &str) -> String {
    match roster.person(id) {
        Some(p) => format!("{}（{}）", p.name, p.unit),
        None if id == crate::workflow::SYSTEM_ACTOR => "系统".to_string(),
        None => id.to_string(),
    }
}

/// The command `verb` for ticket `t`, in its written form (`接受 DH… 联系人：…`).
pub(crate) fn cmd(verb: Verb, t: &str) -> String {
    syntax(verb).form.replacen("DH…", t, 1)
}

/// What whoever must act on `clock` types next.
fn next_for_clock(clock: &ClockKind, t: &str) -> Vec<String> {
    match clock {
        ClockKind::ReviewStart => vec![cmd(Verb::Claim, t)],
        ClockKind::Decision => vec![cmd(Verb::Joint, t), cmd(Verb::Independent, t)],
        ClockKind::GreenCoordination => vec![cmd(Verb::Query, t)],
        ClockKind::UnitResponse { .. } => vec![cmd(Verb::Accept, t), cmd(Verb::Object, t)],
        ClockKind::Handling => vec![cmd(Verb::Complete, t)],
        ClockKind::SupervisedResponse { .. } => vec![cmd(Verb::Accept, t)],
        ClockKind::SupervisedHandling => vec![cmd(Verb::Complete, t)],
        ClockKind::CityAnswer => vec![cmd(Verb::CityOutcome, t)],
    }
}

/// What the deadline a 书面督办 sets is for.
pub(crate) fn supervised_due_label(ground: SupervisionGround) -> &'static str {
    match ground {
        SupervisionGround::Insisted | SupervisionGround::Overdue => "督办答复期限",
        SupervisionGround::HandlingOverdue => "督办办结期限",
    }
}

/// The clock `supervision` started: the unit's supervised answer, or the first unit's
/// supervised handling.
pub(crate) fn supervised_clock<'c>(
    case: &'c Case,
    supervision: &crate::workflow::Supervision,
) -> Option<&'c crate::workflow::CaseClock> {
    let kind = match supervision.ground {
        SupervisionGround::Insisted | SupervisionGround::Overdue => ClockKind::SupervisedResponse {
            unit: supervision.unit.clone(),
        },
        SupervisionGround::HandlingOverdue => ClockKind::SupervisedHandling,
    };
    case.clock(&kind)
}

pub(crate) fn ground_label(ground: SupervisionGround) -> &'static str {
    match ground {
        SupervisionGround::Insisted => "对协作需求有异议，经研判未予采纳",
        SupervisionGround::Overdue => "未在期限内答复协调请求（视为拒不配合）",
        SupervisionGround::HandlingOverdue => "联合处置超过办结期限",
    }
}

/// Working time left, phone-sized: `约 5 个工作日` from a working day up (a working day is the
/// calendar's working minutes per day), else as [`working_time`].
pub(crate) fn working_time_in(minutes: i64, calendar: &Calendar) -> String {
    let per_day: i64 = calendar
        .hours()
        .periods()
        .iter()
        .map(|p| i64::from(p.end_minute()) - i64::from(p.start_minute()))
        .sum();
    if per_day > 0 && minutes >= per_day {
        let days = (minutes + per_day / 2) / per_day;
        format!("约 {days} 个工作日")
    } else {
        working_time(minutes)
    }
}

/// `3 小时 20 分钟` of working time; `0 分钟` once due.
pub(crate) fn working_time(minutes: i64) -> String {
    let minutes = minutes.max(0);
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} 分钟工作时间"),
        (h, 0) => format!("{h} 个工作小时"),
        (h, m) => format!("{h} 小时 {m} 分钟工作时间"),
    }
}

fn list_or<S: Borrow<str>>(items: &[S], empty: &str) -> String {
    if items.is_empty() {
        empty.to_string()
    } else {
        items.join("、")
    }
}

fn person_contact(p: &PersonRef) -> String {
    if p.phone.is_empty() {
        format!("{}（{}）", p.name, p.unit)
    } else {
        format!("{}（{}）{}", p.name, p.unit, p.phone)
    }
}

fn help_labels(help: &[HelpItem]) -> String {
    help.iter()
        .map(HelpItem::label)
        .collect::<Vec<_>>()
        .join("、")
}

/// `张三（股长）13900000000，协助：现场核查、政策解释`.
pub(crate) fn contact_summary(c: &Contact) -> String {
    format!(
        "{}（{}）{}，协助：{}",
        c.name,
        c.position,
        c.phone,
        help_labels(&c.help)
    )
}

fn contact_items(m: &mut Md, c: &Contact) {
    m.item("联系人", &format!("{}（{}）", c.name, c.position));
    m.item("电话", &c.phone);
    m.item("可协助事项", &help_labels(&c.help));
}

/// `text` with every phone-number-like digit run (a mainland mobile, or a landline with its area
/// code, as [`normalize_phone`] accepts) masked to `138****5678`. Runs glued to letters
/// (`DH2026…`) are ticket numbers and stay.
pub fn mask_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let digit = |c: char| match c {
        '0'..='9' => Some(c),
        '０'..='９' => char::from_u32(c as u32 - 0xFEE0),
        _ => None,
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if digit(chars[i]).is_none() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A maximal run of digits, with single spaces or dashes between digit groups.
        let mut end = i + 1;
        let mut j = i + 1;
        while j < chars.len() {
            if digit(chars[j]).is_some() {
                j += 1;
                end = j;
            } else if matches!(chars[j], ' ' | '-')
                && chars.get(j + 1).and_then(|c| digit(*c)).is_some()
            {
                j += 1;
            } else {
                break;
            }
        }
        let digits: String = chars[i..end].iter().filter_map(|c| digit(*c)).collect();
        let glued = |c: Option<&char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let is_phone = !glued(i.checked_sub(1).and_then(|p| chars.get(p)))
            && !glued(chars.get(end))
            && normalize_phone(&digits).is_some();
        if is_phone {
            out.push_str(&digits[..3]);
            out.push_str("****");
            out.push_str(&digits[digits.len() - 4..]);
        } else {
            out.extend(&chars[i..end]);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_mobiles_and_landlines_but_not_tickets_or_dates() {
        assert_eq!(
            mask_phones("诉求人电话13912345678，座机 0936-8685841。"),
            "诉求人电话139****5678，座机 093****5841。"
        );
        assert_eq!(mask_phones("手机 139 1234 5678"), "手机 139****5678");
        assert_eq!(
            mask_phones("工单 DH2026110300017 于 2026-11-05 前"),
            "工单 DH2026110300017 于 2026-11-05 前"
        );
        assert_eq!(mask_phones("欠薪 12000 元"), "欠薪 12000 元");
    }

    #[test]
    fn working_time_reads_naturally() {
        assert_eq!(working_time(45), "45 分钟工作时间");
        assert_eq!(working_time(120), "2 个工作小时");
        assert_eq!(working_time(200), "3 小时 20 分钟工作时间");
        assert_eq!(working_time(-5), "0 分钟工作时间");
    }
}

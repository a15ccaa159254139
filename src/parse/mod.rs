//! The tolerant application parser (docs/spec.md → Parsing): from whatever a liaison pasted to an
//! [`Application`] with canonical unit names, category, urgency and a precise list of what is
//! missing or wrong. Pure and linear-time in the input.
//!
//! `fields` splits the text into labelled values, `units` finds units and city-level mentions,
//! `classify` reads single values (ticket number, approval, category, urgency, deadline), and
//! [`parse_application`] combines them and writes one Chinese sentence per problem.
//!
//! Deadlines written without a year (`12月5日`) take the year of the date the ticket number
//! starts with (`DH20261103…`), or the next year when that day is already past by then; the
//! parser never reads the clock, so without such a date the year must be written.

use std::collections::HashSet;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

mod classify;
pub mod command;
mod fields;
mod text;
mod units;

pub use fields::{Field, label_variants};
pub use units::UnitMatcher;

use classify::{Approval, DeadlineError};
use text::{excerpt, placeholder};
use units::Mention;

/// The mechanism's four kinds of difficult tickets (三、联合调处工单范围), in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// 涉及重大公共利益或可能引发群体诉求的紧急工单
    UrgentPublic,
    /// 不满意工单、重复投诉工单
    DissatisfiedRepeat,
    /// 法律法规、政策文件规定不明确，权责不清晰、职能交叉或政策理解偏差
    PolicyUnclear,
    /// 首办后缺乏有效抓手、调处难度大，需补充工作力量
    LacksCapacity,
}

impl Category {
    /// The Chinese name users see.
    pub fn label(self) -> &'static str {
        match self {
            Category::UrgentPublic => "紧急工单（重大公共利益/群体诉求）",
            Category::DissatisfiedRepeat => "不满意/重复投诉工单",
            Category::PolicyUnclear => "政策不明确/权责不清/职能交叉",
            Category::LacksCapacity => "首办缺乏抓手、需补充力量",
        }
    }
}

/// A parsed application. Serialises to exactly the `tiaochu parse --json` contract of docs/spec.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// True when every required field is present and valid: it can be registered.
    pub ok: bool,
    /// Normalised `DH` + digits.
    pub ticket_no: Option<String>,
    pub title: String,
    /// Canonical member-unit name.
    pub first_unit: Option<String>,
    pub measures_taken: String,
    pub difficulties: String,
    /// The raw 需协调部门及事由 text.
    pub coordination: String,
    /// Canonical names, first mention first, no duplicates, never the first unit.
    pub requested_units: Vec<String>,
    /// Generic wording (国企, 相关部门) and names not in the roster, for the inspector to resolve.
    pub unresolved_mentions: Vec<String>,
    /// City-level or cross-county units are named (市X局 not in the roster, 临泽县…).
    pub city_level: bool,
    /// The raw 请示分管领导相关情况 text.
    pub leader_approval: String,
    pub leader_approved: bool,
    pub urgent: bool,
    pub category: Category,
    /// The ticket's own 办理时限, when given.
    pub deadline: Option<Date>,
    /// Chinese labels of required fields that are absent or empty.
    pub missing: Vec<String>,
    /// Human-readable Chinese messages, one per problem.
    pub errors: Vec<String>,
}

/// A 工单编号 as written (`ｄｈ 2026 1125 0099`) normalised to `DH` + 6–20 digits (NFKC, upper
/// case, whitespace removed), or `None` when it is not one. Commands name cases this way too.
pub fn normalize_ticket_no(raw: &str) -> Option<String> {
    classify::ticket_no(raw).ok()
}

/// Longest excerpt of a user's value quoted back in a message.
const QUOTE_CHARS: usize = 30;

/// Parses a pasted application. Pure and linear in `text`; never fails: everything wrong is
/// reported in [`Application::missing`] and [`Application::errors`], and `ok` is true only when
/// nothing is.
pub fn parse_application(text: &str, units: &UnitMatcher) -> Application {
    let fields = fields::segment(text);
    let mut app = Application {
        ok: false,
        ticket_no: None,
        title: String::new(),
        first_unit: None,
        measures_taken: String::new(),
        difficulties: String::new(),
        coordination: String::new(),
        requested_units: Vec::new(),
        unresolved_mentions: Vec::new(),
        city_level: false,
        leader_approval: String::new(),
        leader_approved: false,
        urgent: false,
        category: Category::LacksCapacity,
        deadline: None,
        missing: Vec::new(),
        errors: Vec::new(),
    };
    if !fields.any_required() {
        app.missing = Field::REQUIRED
            .iter()
            .map(|f| f.label().to_string())
            .collect();
        app.errors.push(
            "这不是联合调处申请：没有识别到任何申请字段。请发送“模板”获取申请模板，按模板逐项填写后再发送".into(),
        );
        return app;
    }
    let value = |f: Field| fields.value(f).unwrap_or("");
    app.title = value(Field::Title).to_string();
    app.measures_taken = value(Field::Measures).to_string();
    app.difficulties = value(Field::Difficulties).to_string();
    app.coordination = value(Field::Coordination).to_string();
    app.leader_approval = value(Field::LeaderApproval).to_string();
    app.missing = Field::REQUIRED
        .iter()
        .filter(|f| fields.value(**f).is_none())
        .map(|f| f.label().to_string())
        .collect();

    // A field whose value still holds the template's placeholder is reported and not read further.
    let mut unfilled = HashSet::new();
    for field in Field::ALL {
        if fields.conflicting(field) {
            app.errors.push(format!(
                "“{}”填写了两处且内容不同：一次只提交一份申请，请只保留一处",
                field.label()
            ));
        }
        let Some(v) = fields.value(field) else {
            continue;
        };
        let Some(mark) = placeholder(v) else { continue };
        unfilled.insert(field);
        app.errors.push(if field == Field::TicketNo {
            format!(
                "工单编号仍是模板占位符“{}”，请填写真实工单编号",
                excerpt(v, QUOTE_CHARS)
            )
        } else {
            format!(
                "“{}”中仍有模板占位符“{mark}”，请换成实际内容",
                field.label()
            )
        });
    }
    let readable = |f: Field| fields.value(f).filter(|_| !unfilled.contains(&f));

    if let Some(v) = readable(Field::TicketNo) {
        match classify::ticket_no(v) {
            Ok(t) => app.ticket_no = Some(t),
            Err(()) => app.errors.push(format!(
                "工单编号“{}”格式不正确：应为“DH”加 6–20 位数字，如 DH2026110300017",
                excerpt(v, QUOTE_CHARS)
            )),
        }
    }

    let first_unit = readable(Field::FirstUnit).map(|v| (v, first_member(units, v)));
    match first_unit {
        Some((_, FirstUnit::Member(name))) => app.first_unit = Some(name.to_string()),
        Some((_, FirstUnit::Hotline(name))) => app.errors.push(format!(
            "首接单位不能是热线平台“{name}”：请填写承办该工单、发起申请的成员单位"
        )),
        Some((v, FirstUnit::Unknown)) => {
            let written = excerpt(v, QUOTE_CHARS);
            let suggestions = units.suggest(&written);
            app.errors.push(if suggestions.is_empty() {
                format!("首接单位“{written}”不在成员单位名单中，请填写本单位在成员单位名单中的名称")
            } else {
                format!(
                    "首接单位“{written}”不在成员单位名单中，请填写本单位在成员单位名单中的名称。您是否指：{}？",
                    suggestions.join("、")
                )
            });
        }
        None => {}
    }

    if let Some(v) = readable(Field::Coordination) {
        read_coordination(&mut app, units, v);
    }

    if let Some(v) = fields.value(Field::LeaderApproval) {
        match classify::leader_approval(v) {
            Approval::Approved => app.leader_approved = true,
            // 四(一): report to the leader, and apply only after the leader agrees.
            Approval::NotYet => app.errors.push(
                "分管领导尚未同意：机制要求经分管领导同意后再发起申请，请汇报并经同意后重新提交".into(),
            ),
            Approval::Unstated => app.errors.push(
                "“请示分管领导相关情况”没有写明分管领导是否同意：机制要求经分管领导同意后再发起申请，请写明如“已向分管领导汇报，分管领导已同意”"
                    .into(),
            ),
        }
    }

    app.category = match readable(Field::Category) {
        Some(v) => classify::category_field(v).unwrap_or_else(|| {
            app.errors.push(format!(
                "疑难类型“{}”无法识别：请填写{}之一，或删除该项由系统判断",
                excerpt(v, QUOTE_CHARS),
                [
                    Category::UrgentPublic,
                    Category::DissatisfiedRepeat,
                    Category::PolicyUnclear,
                    Category::LacksCapacity
                ]
                .map(|c| format!("“{}”", c.label()))
                .join("、")
            ));
            Category::LacksCapacity
        }),
        None => {
            let scope = [
                &app.title,
                &app.measures_taken,
                &app.difficulties,
                &app.coordination,
            ];
            let mut joined = String::with_capacity(scope.iter().map(|s| s.len() + 1).sum());
            for part in scope {
                joined.push_str(part);
                joined.push('\n');
            }
            classify::category_by_keywords(&joined)
        }
    };

    // 五(一): urgent tickets (safety accidents, group petitions) take the green channel.
    app.urgent = match readable(Field::Urgency) {
        Some(v) => classify::urgency_field(v).unwrap_or_else(|| {
            app.errors.push(format!(
                "紧急程度“{}”无法识别：请填写“紧急”或“一般”",
                excerpt(v, QUOTE_CHARS)
            ));
            false
        }),
        None => app.category == Category::UrgentPublic,
    };

    if let Some(v) = readable(Field::Deadline) {
        let base = app.ticket_no.as_deref().and_then(classify::ticket_date);
        match classify::deadline(v, base) {
            Ok(d) => app.deadline = Some(d),
            Err(e) => {
                let v = excerpt(v, QUOTE_CHARS);
                app.errors.push(match e {
                    DeadlineError::Unreadable => {
                        format!("办理时限“{v}”无法识别：请写成日期，如 2026-12-05 或 2026年12月5日")
                    }
                    DeadlineError::Invalid => format!("办理时限“{v}”不是有效日期，请核对年月日"),
                    DeadlineError::NoYear => {
                        format!("办理时限“{v}”没有年份：请写完整日期，如 2026-12-05")
                    }
                })
            }
        }
    }

    app.ok = app.missing.is_empty()
        && app.errors.is_empty()
        && app.ticket_no.is_some()
        && app.first_unit.is_some()
        && app.leader_approved;
    app
}

enum FirstUnit<'a> {
    Member(&'a str),
    Hotline(&'a str),
    Unknown,
}

/// The first unit named in the 首接单位 value. A city-level mention is not a member unit.
fn first_member<'a>(units: &'a UnitMatcher, value: &str) -> FirstUnit<'a> {
    for mention in units.scan(value) {
        match mention {
            Mention::Unit(u) if units.is_hotline(u) => return FirstUnit::Hotline(units.name(u)),
            Mention::Unit(u) => return FirstUnit::Member(units.name(u)),
            Mention::CityLevel(_) | Mention::Unknown(_) => return FirstUnit::Unknown,
            Mention::Generic(_) => {}
        }
    }
    FirstUnit::Unknown
}

/// Requested units, unresolved mentions and the city-level flag from 需协调部门及事由.
fn read_coordination(app: &mut Application, units: &UnitMatcher, value: &str) {
    let mut seen_units = HashSet::new();
    let mut seen_mentions = HashSet::new();
    let mut unresolved = |app: &mut Application, text: String| {
        if seen_mentions.insert(text.clone()) {
            app.unresolved_mentions.push(text);
        }
    };
    for mention in units.scan(value) {
        match mention {
            // 四(一): a city-level or cross-county unit is arranged by the city 12345 hotline.
            Mention::Unit(u) if units.is_city_hotline(u) => app.city_level = true,
            Mention::Unit(u) if units.is_hotline(u) => {}
            Mention::Unit(u) => {
                let name = units.name(u);
                if app.first_unit.as_deref() != Some(name) && seen_units.insert(u) {
                    app.requested_units.push(name.to_string());
                }
            }
            // Principle: never drop what someone wrote — a name not in the roster is kept for
            // the receipt to name back with suggestions and for the inspector to resolve.
            Mention::Generic(g) | Mention::Unknown(g) => unresolved(app, g),
            Mention::CityLevel(c) => {
                app.city_level = true;
                unresolved(app, c);
            }
        }
    }
    if app.requested_units.is_empty() && app.unresolved_mentions.is_empty() && !app.city_level {
        app.errors.push(
            "“需协调部门及事由”没有写明需协调的单位：请写明单位名称（如“区住建局”）及需要协助的事项".into(),
        );
    }
}

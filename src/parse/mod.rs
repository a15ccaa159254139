//! The tolerant application parser (SPEC.md → Parsing): from whatever a liaison pasted to an
//! [`Application`] with canonical unit names, category, urgency and a precise list of what is
//! missing or wrong. Pure and linear-time in the input.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

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

/// A parsed application. Serialises to exactly the `tiaochu parse --json` contract of SPEC.md.
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

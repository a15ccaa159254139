//! The inputs of the workflow: one per text command of docs/spec.md → Text commands (card buttons map to
//! the same inputs), plus the scheduler's timer firings. Arguments arrive already parsed; the
//! workflow checks their meaning (roster units, non-empty texts), not their spelling.

use serde::{Deserialize, Serialize};

use super::Application;
use crate::domain::UnitName;

/// One thing that can happen to a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A complete application from the first unit (四(一)). It carries no case number: on a
    /// ticket without a case the engine reserves one and passes it as [`super::Subject::New`].
    /// On an existing case: the same application again is idempotent (the receipt is repeated); a
    /// corrected one on a returned case is a resubmission.
    Submit { application: Application },
    /// The corrected application after a return (same ticket, same first unit).
    Resubmit { application: Application },
    /// 同意: the first unit's leader (or an admin) confirms an application waiting for it
    /// (`[workflow] require_leader_confirmation`); the review starts now.
    LeaderApprove,
    /// 退回联络员: the first unit's leader sends the waiting application back to its liaison.
    LeaderReturn { reason: String },
    /// 审核: an inspector claims the review.
    Claim,
    /// 联合: joint mediation with these cooperating units (四(二)).
    DecideJoint { units: Vec<CoordinationAsk> },
    /// 独立: independent handling, with the resolution path and policy basis (四(二)).
    DecideIndependent { path_and_basis: String },
    /// 退回: back to the first unit for more.
    Return { reason: String },
    /// 市级: escalate to the city 12345 (四(一)).
    EscalateCity { note: String },
    /// The city's outcome, recorded by the hotline.
    RecordCityOutcome { outcome: String },
    /// 接受: a cooperating unit accepts (四(三)).
    Accept {
        unit: UnitName,
        contact_name: String,
        position: String,
        phone: String,
        help: Vec<HelpItem>,
    },
    /// 异议: a cooperating unit objects (四(三)).
    Object { unit: UnitName, reason: String },
    /// 撤回: the inspector drops an objecting, refusing or overdue unit.
    Withdraw { unit: UnitName },
    /// 坚持: the inspector keeps the request despite the objection (→ written supervision).
    Insist {
        unit: UnitName,
        /// Why the objection is not upheld; it reaches the unit and the supervisor.
        #[serde(default)]
        reason: String,
    },
    /// 督办: written supervision to a unit (四(三)).
    Supervise { unit: UnitName, content: String },
    /// 进展: a progress note from the first unit or a cooperating unit (五(二)).
    Progress { text: String },
    /// 办结: the first unit reports the result (五(三)).
    Complete {
        process: String,
        measures: String,
        citizen_feedback: String,
    },
    /// 满意度: the hotline records the citizen's satisfaction.
    Satisfaction { level: SatisfactionLevel },
    /// 典型: mark a typical case (五(五)).
    MarkTypical { summary: String },
    /// The timer with this key fired (only [`super::Actor::System`]). The scheduler does not send
    /// it: it fires a case's due timers together through [`super::fire_timers`], which decides
    /// as one `TimerFired` each would; the input stays for single firings in tests of the pure
    /// core.
    TimerFired { key: String },
}

impl Input {
    /// The command word users type, for messages about this input.
    pub fn command(&self) -> &'static str {
        match self {
            Input::Submit { .. } => "提交申请",
            Input::Resubmit { .. } => "重新提交",
            Input::LeaderApprove => "同意",
            Input::LeaderReturn { .. } => "退回联络员",
            Input::Claim => "审核",
            Input::DecideJoint { .. } => "联合",
            Input::DecideIndependent { .. } => "独立",
            Input::Return { .. } => "退回",
            Input::EscalateCity { .. } => "市级",
            Input::RecordCityOutcome { .. } => "市级结果",
            Input::Accept { .. } => "接受",
            Input::Object { .. } => "异议",
            Input::Withdraw { .. } => "撤回",
            Input::Insist { .. } => "坚持",
            Input::Supervise { .. } => "督办",
            Input::Progress { .. } => "进展",
            Input::Complete { .. } => "办结",
            Input::Satisfaction { .. } => "满意度",
            Input::MarkTypical { .. } => "典型",
            Input::TimerFired { .. } => "定时提醒",
        }
    }
}

/// One cooperating unit of a joint decision and what is asked of it (协同方向及重点).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinationAsk {
    /// Canonical roster name.
    pub unit: UnitName,
    pub direction: String,
}

/// The help a cooperating unit offers (四(三): 现场核查、数据共享、政策解释等).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelpItem {
    /// 现场核查
    SiteCheck,
    /// 数据共享
    DataSharing,
    /// 政策解释
    PolicyExplanation,
    /// 其他, in the unit's words.
    Other(String),
}

impl HelpItem {
    /// The Chinese name users see.
    pub fn label(&self) -> String {
        match self {
            HelpItem::SiteCheck => "现场核查".into(),
            HelpItem::DataSharing => "数据共享".into(),
            HelpItem::PolicyExplanation => "政策解释".into(),
            HelpItem::Other(text) => format!("其他（{text}）"),
        }
    }
}

/// The citizen's satisfaction (docs/spec.md → Result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SatisfactionLevel {
    /// 满意
    Satisfied,
    /// 基本满意
    BasicallySatisfied,
    /// 不满意
    Dissatisfied,
}

impl SatisfactionLevel {
    pub fn label(self) -> &'static str {
        match self {
            SatisfactionLevel::Satisfied => "满意",
            SatisfactionLevel::BasicallySatisfied => "基本满意",
            SatisfactionLevel::Dissatisfied => "不满意",
        }
    }
}

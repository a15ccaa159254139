//! The figures of 五(四) 考核问责, per unit and overall, folded from each touched case's event
//! history. An event counts in the period its instant falls in (a case spanning two months counts
//! its submission in the first and its completion in the second). Definitions:
//!
//! - 申请登记: `submitted` events. A returned and resubmitted case is one application; its
//!   `resubmitted` events are shown apart (重新提交) and never added to it.
//! - 协办请求: `unit_requested`. A request is *answered* by the unit's first `unit_accepted` or
//!   `unit_objected` after it; later answers (accepting after an objection) are not new answers.
//!   按时答复: that first answer's `on_time` (at or before the response deadline — an answer exactly
//!   at the deadline is on time). 逾期答复: first answers after it.
//! - 应答复 (the response-rate denominator): requests whose outcome was settled in the period —
//!   answered on time, or not answered by the deadline (settled when `unit_overdue` is recorded,
//!   or at a late first answer when no `unit_overdue` preceded it). A request withdrawn before its
//!   deadline without an answer is not due. 响应率 = 按时答复 / 应答复.
//! - 拒不配合: `unit_overdue` (docs/spec.md: no answer by the deadline is treated like a refusal).
//! - 异议: `unit_objected`; 撤回异议: `objection_withdrawn` of an objecting or insisted-on unit;
//!   异议未采纳: `objection_upheld`; 书面督办: `supervision_issued`.
//! - 办结: `completed`; 按时/逾期 from its `on_time` (by the handling deadline). 办理超期: a
//!   `breach` of the handling clock. 应办结 (the completion-rate denominator): joint-handling
//!   cases whose handling outcome was settled in the period — completed on time, or past the
//!   handling deadline (settled at the breach, or at a late completion without one).
//!   办结率 = 按时办结 / 应办结. Independent handling and city escalation have no handling clock
//!   here and are not in it.
//! - 满意率 = (满意 + 基本满意) / 已登记满意度, from `satisfaction` events.
//!
//! Attribution: an event counts for the unit it names (`data.unit`: the requested, answering,
//! supervised unit), else for the case's first unit. Every event counts for exactly one unit, so
//! the overall counts are the sums of the unit counts.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::Serialize;

use super::{Loaded, event_unit};
use crate::workflow::{EventData, SatisfactionLevel, WithdrawnFrom};

/// 办结率 target in percent (二: 办结率、响应率达到 100%).
pub const COMPLETION_TARGET: u64 = 100;
/// 响应率 target in percent.
pub const RESPONSE_TARGET: u64 = 100;
/// 满意率 target in percent (二: 满意率达到 90% 以上).
pub const SATISFACTION_TARGET: u64 = 90;

/// A ratio kept as its two counts, so it is exact and shows its basis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub num: u64,
    pub den: u64,
}

impl Rate {
    /// None when nothing was due.
    pub fn value(self) -> Option<f64> {
        (self.den > 0).then(|| self.num as f64 / self.den as f64)
    }

    /// `95.0%（19/20）`, or `—（无数据）`.
    pub fn display(self) -> String {
        match self.value() {
            Some(v) => format!("{:.1}%（{}/{}）", v * 100.0, self.num, self.den),
            None => "—（无数据）".to_string(),
        }
    }
}

/// The figures of one unit, or of all units. Counts of events in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// 申请登记 (first submissions only).
    pub submitted: u64,
    /// 重新提交 after a return (not additional applications).
    pub resubmitted: u64,
    /// 退回补充.
    pub returned: u64,
    /// 联合调处.
    pub decided_joint: u64,
    /// 独立办理.
    pub decided_independent: u64,
    /// 提请市级协调.
    pub decided_city: u64,
    /// 协办请求.
    pub requests: u64,
    /// 按时答复: first answers by the response deadline.
    pub answered_on_time: u64,
    /// 逾期答复: first answers after it.
    pub answered_late: u64,
    /// 应答复: requests whose response outcome was settled in the period.
    pub response_due: u64,
    /// 提出异议.
    pub objections: u64,
    /// 撤回异议 (the inspector dropped an objecting or insisted-on unit).
    pub objections_withdrawn: u64,
    /// 异议未采纳 (the inspector insisted).
    pub objections_upheld: u64,
    /// 拒不配合: no answer by the response deadline.
    pub refusals: u64,
    /// 书面督办.
    pub supervisions: u64,
    /// 办结.
    pub completed: u64,
    pub completed_on_time: u64,
    pub completed_late: u64,
    /// 办理超期: handling deadlines breached.
    pub handling_overdue: u64,
    /// 应办结: handling outcomes settled in the period.
    pub completion_due: u64,
    /// 满意.
    pub satisfied: u64,
    /// 基本满意.
    pub basically_satisfied: u64,
    /// 不满意.
    pub dissatisfied: u64,
    /// Cases first marked 典型 in the period.
    pub typical: u64,
}

impl Counts {
    /// 响应率 = 按时答复 / 应答复.
    pub fn response_rate(&self) -> Rate {
        Rate {
            num: self.answered_on_time,
            den: self.response_due,
        }
    }

    /// 办结率 = 按时办结 / 应办结.
    pub fn completion_rate(&self) -> Rate {
        Rate {
            num: self.completed_on_time,
            den: self.completion_due,
        }
    }

    /// 满意率 = (满意 + 基本满意) / 已登记.
    pub fn satisfaction_rate(&self) -> Rate {
        Rate {
            num: self.satisfied + self.basically_satisfied,
            den: self.satisfied + self.basically_satisfied + self.dissatisfied,
        }
    }

    fn add(&mut self, o: &Counts) {
        let pairs: [(&mut u64, u64); 24] = [
            (&mut self.submitted, o.submitted),
            (&mut self.resubmitted, o.resubmitted),
            (&mut self.returned, o.returned),
            (&mut self.decided_joint, o.decided_joint),
            (&mut self.decided_independent, o.decided_independent),
            (&mut self.decided_city, o.decided_city),
            (&mut self.requests, o.requests),
            (&mut self.answered_on_time, o.answered_on_time),
            (&mut self.answered_late, o.answered_late),
            (&mut self.response_due, o.response_due),
            (&mut self.objections, o.objections),
            (&mut self.objections_withdrawn, o.objections_withdrawn),
            (&mut self.objections_upheld, o.objections_upheld),
            (&mut self.refusals, o.refusals),
            (&mut self.supervisions, o.supervisions),
            (&mut self.completed, o.completed),
            (&mut self.completed_on_time, o.completed_on_time),
            (&mut self.completed_late, o.completed_late),
            (&mut self.handling_overdue, o.handling_overdue),
            (&mut self.completion_due, o.completion_due),
            (&mut self.satisfied, o.satisfied),
            (&mut self.basically_satisfied, o.basically_satisfied),
            (&mut self.dissatisfied, o.dissatisfied),
            (&mut self.typical, o.typical),
        ];
        for (a, b) in pairs {
            *a += b;
        }
    }

    /// `(中文表头, value)` of every count, in the order every export shows them.
    pub fn columns(&self) -> [(&'static str, u64); 24] {
        [
            ("申请登记", self.submitted),
            ("重新提交", self.resubmitted),
            ("退回补充", self.returned),
            ("联合调处", self.decided_joint),
            ("独立办理", self.decided_independent),
            ("提请市级协调", self.decided_city),
            ("协办请求", self.requests),
            ("应答复", self.response_due),
            ("按时答复", self.answered_on_time),
            ("逾期答复", self.answered_late),
            ("拒不配合（超时未答复）", self.refusals),
            ("提出异议", self.objections),
            ("撤回异议", self.objections_withdrawn),
            ("异议未采纳", self.objections_upheld),
            ("书面督办", self.supervisions),
            ("应办结", self.completion_due),
            ("办结", self.completed),
            ("按时办结", self.completed_on_time),
            ("逾期办结", self.completed_late),
            ("办理超期", self.handling_overdue),
            ("满意", self.satisfied),
            ("基本满意", self.basically_satisfied),
            ("不满意", self.dissatisfied),
            ("典型案例", self.typical),
        ]
    }

    /// The three rates against their targets.
    pub fn targets(&self) -> [Target; 3] {
        [
            Target::new("办结率", self.completion_rate(), COMPLETION_TARGET),
            Target::new("响应率", self.response_rate(), RESPONSE_TARGET),
            Target::new("满意率", self.satisfaction_rate(), SATISFACTION_TARGET),
        ]
    }
}

/// A rate against its target (五(四); 二: 办结率、响应率 100%，满意率 90% 以上).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub actual: Rate,
    /// In percent; met when `actual >= target` exactly.
    pub target_percent: u64,
    /// None when nothing was due in the period.
    pub met: Option<bool>,
}

impl Target {
    fn new(name: &'static str, actual: Rate, target_percent: u64) -> Target {
        Target {
            name,
            actual,
            target_percent,
            // On integers, so 100% and 90% are not lost to rounding.
            met: (actual.den > 0).then_some(actual.num * 100 >= target_percent * actual.den),
        }
    }

    /// `100%` / `≥ 90%`.
    pub fn target_label(&self) -> String {
        if self.target_percent >= 100 {
            "100%".to_string()
        } else {
            format!("≥ {}%", self.target_percent)
        }
    }

    /// 达标 / 未达标 / 无数据.
    pub fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "达标",
            Some(false) => "未达标",
            None => "无数据",
        }
    }
}

/// Overall and per-unit figures of a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub overall: Counts,
    /// Units with at least one counted event, by name.
    pub units: BTreeMap<String, Counts>,
}

/// Where one coordination request stands in the fold.
#[derive(Default)]
struct Request {
    answered: bool,
    /// Its response outcome (on time, or not by the deadline) has been counted somewhere.
    settled: bool,
}

/// Folds every loaded case's history, counting the events in `[from, to)`.
pub(crate) fn compute(cases: &[Loaded], from: Timestamp, to: Timestamp) -> Stats {
    let mut units: BTreeMap<String, Counts> = BTreeMap::new();
    for l in cases {
        let mut requests: HashMap<String, Request> = HashMap::new();
        let mut handling_settled = false;
        let mut typical_seen = false;
        for e in &l.events {
            let unit = event_unit(e, &l.row.first_unit).to_string();
            let inside = e.at >= from && e.at < to;
            let mut c = Counts::default();
            match &e.data {
                EventData::Submitted(_) => c.submitted = 1,
                EventData::Resubmitted(_) => c.resubmitted = 1,
                EventData::Returned { .. } => c.returned = 1,
                EventData::DecidedJoint { .. } => c.decided_joint = 1,
                EventData::DecidedIndependent { .. } => c.decided_independent = 1,
                EventData::DecidedCity { .. } => c.decided_city = 1,
                EventData::UnitRequested { .. } => {
                    // A unit asked again after a withdrawal starts a new request.
                    requests.insert(unit.clone(), Request::default());
                    c.requests = 1;
                }
                EventData::UnitAccepted { on_time, .. }
                | EventData::UnitObjected { on_time, .. } => {
                    if let EventData::UnitObjected { .. } = e.data {
                        c.objections = 1;
                    }
                    let on_time = *on_time;
                    let r = requests.entry(unit.clone()).or_default();
                    if !r.answered {
                        r.answered = true;
                        if on_time {
                            c.answered_on_time = 1;
                        } else {
                            c.answered_late = 1;
                        }
                        if !r.settled {
                            r.settled = true;
                            c.response_due = 1;
                        }
                    }
                }
                EventData::UnitOverdue { .. } => {
                    c.refusals = 1;
                    let r = requests.entry(unit.clone()).or_default();
                    if !r.settled {
                        r.settled = true;
                        c.response_due = 1;
                    }
                }
                EventData::ObjectionWithdrawn { status_before } => {
                    if matches!(
                        status_before,
                        WithdrawnFrom::Objected | WithdrawnFrom::Insisted
                    ) {
                        c.objections_withdrawn = 1;
                    }
                }
                EventData::ObjectionUpheld {} => c.objections_upheld = 1,
                EventData::SupervisionIssued { .. } => c.supervisions = 1,
                EventData::Breach { clock, .. } => {
                    if clock.starts_with("handling") {
                        c.handling_overdue = 1;
                        if !handling_settled {
                            handling_settled = true;
                            c.completion_due = 1;
                        }
                    }
                }
                EventData::Completed { on_time } => {
                    c.completed = 1;
                    if *on_time {
                        c.completed_on_time = 1;
                    } else {
                        c.completed_late = 1;
                    }
                    if !handling_settled {
                        handling_settled = true;
                        c.completion_due = 1;
                    }
                }
                EventData::Satisfaction { level } => match level {
                    SatisfactionLevel::Satisfied => c.satisfied = 1,
                    SatisfactionLevel::BasicallySatisfied => c.basically_satisfied = 1,
                    SatisfactionLevel::Dissatisfied => c.dissatisfied = 1,
                },
                EventData::TypicalMarked { .. } => {
                    if !typical_seen {
                        typical_seen = true;
                        c.typical = 1;
                    }
                }
                _ => continue,
            }
            if inside && c != Counts::default() {
                units.entry(unit).or_default().add(&c);
            }
        }
    }
    let mut overall = Counts::default();
    for c in units.values() {
        overall.add(c);
    }
    Stats { overall, units }
}

//! The registrable application: what the workflow registers, resubmits and keeps in the case.
//!
//! The parser's [`parse::Application`] is a *report* — what was read, what is missing, what is
//! wrong, with the ticket and the first unit possibly absent — and stays the `tiaochu parse
//! --json` contract. [`Application`] is made only from a report that is `ok`
//! ([`Application::from_report`]), so it has a ticket number and a first unit, and no
//! `ok`/`missing`/`errors` to consult.
//!
//! Stored form: a case document keeps the application as the complete report it came from
//! (`serde(into)` [`parse::Application`]: `ok: true`, `missing: []`, `errors: []`, the report's
//! field order), exactly as before this type existed, so a database written now still reads in
//! an older release (a restored backup, a rollback). Reading ignores those three fields.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::domain::{DomainError, TicketNo, UnitName};
use crate::parse::{self, Category, UnitMatcher};

/// A complete application (四(一), 附件 2): every required field present and valid, the leader's
/// consent stated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "parse::Application")]
pub struct Application {
    pub ticket_no: TicketNo,
    pub title: String,
    pub first_unit: UnitName,
    pub measures_taken: String,
    pub difficulties: String,
    /// The raw 需协调部门及事由 text.
    pub coordination: String,
    /// First mention first, no duplicates, never the first unit.
    pub requested_units: Vec<UnitName>,
    /// Generic wording (国企, 相关部门) and names not in the roster, for the inspector to resolve.
    pub unresolved_mentions: Vec<String>,
    /// City-level or cross-county units are named.
    pub city_level: bool,
    /// The 请示分管领导相关情况 text, or the leader's confirmation given in DingTalk.
    pub leader_approval: String,
    pub leader_approved: bool,
    pub urgent: bool,
    pub category: Category,
    /// The ticket's own 办理时限, when given.
    pub deadline: Option<Date>,
}

impl Application {
    /// The application a report describes, when it is `ok`; otherwise the Chinese answer listing
    /// what is missing and wrong. Units are looked up again in `units`, so every [`UnitName`]
    /// is a roster unit whoever built the report.
    pub fn from_report(
        report: &parse::Application,
        units: &UnitMatcher,
    ) -> Result<Application, DomainError> {
        let unit = |name: &str| UnitName::parse(name, units);
        let ticket_no = report.ticket_no.as_deref().map(TicketNo::parse);
        let first_unit = report.first_unit.as_deref().map(unit);
        let (true, Some(Ok(ticket_no)), Some(Ok(first_unit))) = (report.ok, ticket_no, first_unit)
        else {
            return Err(incomplete(report));
        };
        Ok(Application {
            ticket_no,
            title: report.title.clone(),
            first_unit,
            measures_taken: report.measures_taken.clone(),
            difficulties: report.difficulties.clone(),
            coordination: report.coordination.clone(),
            requested_units: report
                .requested_units
                .iter()
                .map(|u| unit(u))
                .collect::<Result<_, _>>()?,
            unresolved_mentions: report.unresolved_mentions.clone(),
            city_level: report.city_level,
            leader_approval: report.leader_approval.clone(),
            leader_approved: report.leader_approved,
            urgent: report.urgent,
            category: report.category,
            deadline: report.deadline,
        })
    }
}

/// "申请不完整，未登记：…" with every problem of the report.
fn incomplete(report: &parse::Application) -> DomainError {
    let mut problems: Vec<String> = report
        .missing
        .iter()
        .map(|m| format!("缺少“{m}”"))
        .collect();
    problems.extend(report.errors.iter().cloned());
    if !report.leader_approved && problems.is_empty() {
        problems.push("须先经本单位分管领导同意".into());
    }
    if report.ticket_no.is_none() && problems.is_empty() {
        problems.push("工单编号无效".into());
    }
    if problems.is_empty() {
        problems.push("首接单位不在成员单位名单中".into());
    }
    DomainError {
        message: format!(
            "申请不完整，未登记：{}。请按模板补全后重新发送（发送“模板”获取格式）。",
            problems.join("；")
        ),
    }
}

/// The stored form: the report this application was made from, complete (`ok`, nothing missing).
impl From<Application> for parse::Application {
    fn from(app: Application) -> parse::Application {
        parse::Application {
            ok: true,
            ticket_no: Some(app.ticket_no.into()),
            title: app.title,
            first_unit: Some(app.first_unit.into()),
            measures_taken: app.measures_taken,
            difficulties: app.difficulties,
            coordination: app.coordination,
            requested_units: app.requested_units.into_iter().map(String::from).collect(),
            unresolved_mentions: app.unresolved_mentions,
            city_level: app.city_level,
            leader_approval: app.leader_approval,
            leader_approved: app.leader_approved,
            urgent: app.urgent,
            category: app.category,
            deadline: app.deadline,
            missing: Vec::new(),
            errors: Vec::new(),
        }
    }
}

//! Who may act and who is told: authorisation by role and unit, and the recipient rules. Every
//! recipient comes from the roster, so no effect can address someone outside it.

use super::Actor;
use super::case::{Case, DecisionKind};
use super::effect::PersonRef;
use super::reject::{RejectReason, Rejection};
use crate::domain::{PersonId, UnitName};
use crate::roster::{Person, Role, Roster};

/// The resolved sender of an input.
#[derive(Debug, Clone, Copy)]
pub(super) enum Who<'r> {
    Person(&'r Person),
    System,
}

impl<'r> Who<'r> {
    pub(super) fn resolve(actor: &Actor, roster: &'r Roster) -> Result<Who<'r>, Rejection> {
        match actor {
            Actor::System => Ok(Who::System),
            Actor::Person(id) => roster.person(id).map(Who::Person).ok_or_else(|| {
                Rejection::new(
                    RejectReason::UnknownActor,
                    "您不在疑难工单联合调处工作名单中，无法办理此事项。请联系本单位分管领导或区12345热线管理员将您加入名单。",
                )
            }),
        }
    }

    /// The person behind a person's action; timers cannot take one.
    pub(super) fn person(self) -> Result<&'r Person, Rejection> {
        match self {
            Who::Person(p) => Ok(p),
            Who::System => Err(Rejection::new(
                RejectReason::SystemNotAllowed,
                "该操作须由名单中的具体人员发起，系统定时任务不能代为办理。",
            )),
        }
    }

    /// The id events record.
    pub(super) fn id(self) -> String {
        match self {
            Who::Person(p) => p.id().to_string(),
            Who::System => super::event::SYSTEM_ACTOR.to_string(),
        }
    }
}

/// A liaison or the leader of `unit` acts for it (二、组织领导: 联络员专门对接, 分管领导审核把关).
pub(super) fn speaks_for(person: &Person, unit: &str) -> bool {
    person.unit == unit && (person.has_role(Role::Liaison) || person.has_role(Role::Leader))
}

/// Hotline staff who record outcomes and satisfaction: inspectors, supervisors, the hotline head.
pub(super) fn is_hotline_staff(person: &Person) -> bool {
    [Role::Inspector, Role::Supervisor, Role::HotlineHead]
        .into_iter()
        .any(|r| person.has_role(r))
}

/// The roles that may read the statistics (`统计`; docs/spec.md → Text commands: the hotline and the
/// working-group leaders) — the hotline's staff, the group leaders and the admins who run the
/// service. The web dashboard shows the same figures to the same people.
pub const STATISTICS_ROLES: [Role; 5] = [
    Role::HotlineHead,
    Role::Inspector,
    Role::Supervisor,
    Role::GroupLeader,
    Role::Admin,
];

/// Whether `person` may read the month's figures (`统计`).
pub fn may_see_statistics(person: &Person) -> bool {
    STATISTICS_ROLES.iter().any(|r| person.has_role(*r))
}

/// Whether `person` may read `case` (`查询`; docs/spec.md → Text commands: participants and the
/// hotline): anyone who may see the statistics sees every case; besides them, the people of the
/// first unit and of every unit ever asked to cooperate (a withdrawn unit already received the
/// case on its card), whoever submitted a version, and the city 12345 supervisor once the case
/// was passed to the city. Everyone else learns nothing, not even that the ticket has a case.
pub fn may_view_case(person: &Person, case: &Case) -> bool {
    if may_see_statistics(person) {
        return true;
    }
    let id = person.id();
    if case.submitted_by == id || case.previous_versions.iter().any(|v| v.submitted_by == id) {
        return true;
    }
    if person.unit == case.first_unit || case.requests.iter().any(|r| r.unit == person.unit) {
        return true;
    }
    person.has_role(Role::CitySupervisor)
        && case
            .decisions
            .iter()
            .any(|d| matches!(d.kind, DecisionKind::City { .. }))
}

pub(super) fn require_role(person: &Person, role: Role) -> Result<(), Rejection> {
    if person.has_role(role) {
        return Ok(());
    }
    let (reason, what) = match role {
        Role::Inspector => (
            RejectReason::NotInspector,
            "该操作只能由区12345热线质检专员办理",
        ),
        Role::Supervisor => (
            RejectReason::NotSupervisor,
            "书面督办只能由区12345热线督办专员签发",
        ),
        _ => (
            RejectReason::NotHotlineStaff,
            "该操作只能由区12345热线工作人员办理",
        ),
    };
    Err(Rejection::new(
        reason,
        format!("{what}，您在名单中的角色是{}。", roles_label(person)),
    ))
}

pub(super) fn roles_label(person: &Person) -> String {
    if person.roles.is_empty() {
        return "（未分配角色）".into();
    }
    person
        .roles
        .iter()
        .map(|r| r.label())
        .collect::<Vec<_>>()
        .join("、")
}

/// Who receives a unit's messages and cards: its liaisons, who handle the unit's mediation work
/// day to day (二、组织领导); a unit with no liaison yet is reached through its leader, who names
/// the liaisons (附件1: 人事变动由分管领导依次补充).
pub(super) fn unit_contacts(roster: &Roster, unit: &str) -> Vec<PersonId> {
    let liaisons = ids(roster.people_in_unit_with_role(unit, Role::Liaison));
    if liaisons.is_empty() {
        unit_leaders(roster, unit)
    } else {
        liaisons
    }
}

pub(super) fn unit_leaders(roster: &Roster, unit: &str) -> Vec<PersonId> {
    ids(roster.people_in_unit_with_role(unit, Role::Leader))
}

pub(super) fn with_role(roster: &Roster, role: Role) -> Vec<PersonId> {
    ids(roster.people_with_role(role))
}

fn ids<'a>(people: impl Iterator<Item = &'a Person>) -> Vec<PersonId> {
    people.map(PersonId::of).collect()
}

/// The first unit as a recipient: its liaisons (or leader) and whoever submitted the application.
pub(super) fn first_unit_side(roster: &Roster, case: &Case) -> Vec<PersonId> {
    let mut out = unit_contacts(roster, &case.first_unit);
    out.push(case.submitted_by.clone());
    out
}

/// The inspector who must act: the claimer, or every inspector while nobody has claimed.
pub(super) fn inspectors_on_duty(roster: &Roster, case: &Case) -> Vec<PersonId> {
    match case.inspector() {
        Some(id) if roster.person(id).is_some() => vec![id.clone()],
        _ => with_role(roster, Role::Inspector),
    }
}

/// A roster person as messages name them; `None` once they left the roster.
pub(super) fn person_ref(roster: &Roster, id: &str) -> Option<PersonRef> {
    roster.person(id).map(|p| PersonRef {
        id: PersonId::of(p),
        name: p.name.clone(),
        unit: UnitName::of_person(p),
        phone: p.phone.clone(),
    })
}

/// The first unit's contact for cooperating units: the submitter, else its first liaison or
/// leader; `None` when nobody of the first unit is left in the roster.
pub(super) fn first_unit_contact(roster: &Roster, case: &Case) -> Option<PersonRef> {
    std::iter::once(case.submitted_by.clone())
        .chain(unit_contacts(roster, &case.first_unit))
        .find_map(|id| person_ref(roster, &id))
}

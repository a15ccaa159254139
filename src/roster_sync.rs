//! Matching roster people to the organisation's DingTalk address book (`tiaochu roster sync`).
//! Pure: the command looks each unbound person's name up in DingTalk and hands the members it
//! found here as [`Candidate`]s; this decides who may be bound and reports the rest.
//!
//! The rule: a person is bound only when exactly one member with exactly their name sits in a
//! department of their unit. A department belongs to a unit when its name is the unit's name or
//! one of its aliases, or when one contains the other and no other unit's names fit it the same
//! way — "办公室" or "局" says nothing about which unit. A member's department is taken from the
//! nearest department in its chain (up to, not including, the organisation itself) that belongs
//! to some unit, so 区住建局/办公室 is 区住建局. A namesake in another unit does not stop the
//! binding; everything else is reported, never guessed: several members in the unit, or only
//! members elsewhere, is ambiguous; nobody of that name is not found.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::roster::{Person, PersonChange, Roster, normalize_name};

/// A member of the organisation the address book returned for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// DingTalk userId.
    pub staff_id: String,
    pub name: String,
    pub title: String,
    /// Each department the member sits in, as the names from the top (below the organisation)
    /// down to the department itself; empty for a member placed directly in the organisation.
    pub departments: Vec<Vec<String>>,
}

impl Candidate {
    /// The departments as an admin reads them: `区住建局/办公室`, several joined by `；`.
    pub fn departments_text(&self) -> String {
        if self.departments.is_empty() {
            return "（未分部门）".to_string();
        }
        self.departments
            .iter()
            .map(|path| {
                if path.is_empty() {
                    "（组织根部门）".to_string()
                } else {
                    path.join("/")
                }
            })
            .collect::<Vec<_>>()
            .join("；")
    }
}

/// A person to bind: the roster person and the DingTalk account found for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bound {
    pub name: String,
    pub unit: String,
    pub staff_id: String,
}

/// One member offered for an ambiguous person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offered {
    pub staff_id: String,
    pub dept: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ambiguous {
    pub name: String,
    pub unit: String,
    pub candidates: Vec<Offered>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotFound {
    pub name: String,
    pub unit: String,
}

/// What a sync found, in roster order; serialises to the `--json` shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub bound: Vec<Bound>,
    pub ambiguous: Vec<Ambiguous>,
    pub not_found: Vec<NotFound>,
}

/// The unit a department of this name belongs to (see the module rule), or None.
pub fn unit_of_department<'r>(department: &str, roster: &'r Roster) -> Option<&'r str> {
    let dept = normalize_name(department);
    if dept.is_empty() {
        return None;
    }
    let names = |u: &'r crate::roster::Unit| std::iter::once(&u.name).chain(u.aliases.iter());
    if let Some(unit) = roster
        .units()
        .iter()
        .find(|u| names(u).any(|n| normalize_name(n) == dept))
    {
        return Some(&unit.name);
    }
    let mut fitting = roster.units().iter().filter(|u| {
        names(u).any(|n| {
            let n = normalize_name(n);
            !n.is_empty() && (dept.contains(&n) || n.contains(&dept))
        })
    });
    match (fitting.next(), fitting.next()) {
        (Some(unit), None) => Some(&unit.name),
        _ => None,
    }
}

/// The units a member sits in: for each of their departments, the nearest department of its
/// chain that belongs to a unit.
pub fn candidate_units<'r>(candidate: &Candidate, roster: &'r Roster) -> Vec<&'r str> {
    let mut units: Vec<&str> = Vec::new();
    for path in &candidate.departments {
        if let Some(unit) = path
            .iter()
            .rev()
            .find_map(|d| unit_of_department(d, roster))
            && !units.contains(&unit)
        {
            units.push(unit);
        }
    }
    units
}

/// Decides every looked-up person. `looked_up` pairs each unbound roster person with the members
/// the address book returned for their name (namesakes with other names are ignored here, so
/// the caller may pass the search result as it came). A member whose account another roster
/// person already has is never bound again, and one account found for two people binds neither.
pub fn decide(roster: &Roster, looked_up: &[(Person, Vec<Candidate>)]) -> SyncReport {
    enum Decision<'a> {
        Bind(&'a Candidate),
        Ask(Vec<&'a Candidate>),
        Missing,
    }
    let mut decisions: Vec<(&Person, Decision<'_>)> = Vec::new();
    for (person, found) in looked_up {
        let namesakes: Vec<&Candidate> = found
            .iter()
            .filter(|c| normalize_name(&c.name) == person.name)
            .collect();
        let in_unit: Vec<&Candidate> = namesakes
            .iter()
            .copied()
            .filter(|c| roster.person(&c.staff_id).is_none())
            .filter(|c| candidate_units(c, roster).contains(&person.unit.as_str()))
            .collect();
        let decision = match in_unit.as_slice() {
            [only] => Decision::Bind(only),
            _ if namesakes.is_empty() => Decision::Missing,
            _ => Decision::Ask(namesakes),
        };
        decisions.push((person, decision));
    }
    let mut claims: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, d) in &decisions {
        if let Decision::Bind(c) = d {
            *claims.entry(c.staff_id.as_str()).or_default() += 1;
        }
    }
    let mut report = SyncReport::default();
    for (person, decision) in decisions {
        match decision {
            Decision::Bind(c) if claims.get(c.staff_id.as_str()) == Some(&1) => {
                report.bound.push(Bound {
                    name: person.name.clone(),
                    unit: person.unit.clone(),
                    staff_id: c.staff_id.clone(),
                });
            }
            Decision::Bind(c) => report.ambiguous.push(ambiguous(person, &[c])),
            Decision::Ask(candidates) => report.ambiguous.push(ambiguous(person, &candidates)),
            Decision::Missing => report.not_found.push(NotFound {
                name: person.name.clone(),
                unit: person.unit.clone(),
            }),
        }
    }
    report
}

fn ambiguous(person: &Person, candidates: &[&Candidate]) -> Ambiguous {
    Ambiguous {
        name: person.name.clone(),
        unit: person.unit.clone(),
        candidates: candidates
            .iter()
            .map(|c| Offered {
                staff_id: c.staff_id.clone(),
                dept: c.departments_text(),
                title: c.title.clone(),
            })
            .collect(),
    }
}

/// The roster changes that store `bound` on `roster` (the roster in force), grouped by unit, as
/// the `绑定` command makes them. A binding no longer possible — the person was bound meanwhile,
/// or the account now belongs to someone else — is left out and returned as the second part.
pub fn bindings(
    roster: &Roster,
    bound: &[Bound],
) -> (BTreeMap<String, Vec<PersonChange>>, Vec<Bound>) {
    let mut by_unit: BTreeMap<String, Vec<PersonChange>> = BTreeMap::new();
    let mut stale = Vec::new();
    for b in bound {
        let person = roster
            .people_in_unit(&b.unit)
            .find(|p| p.name == b.name && !p.reachable() && !p.departed);
        match person {
            Some(p) if roster.person(&b.staff_id).is_none() => {
                by_unit
                    .entry(p.unit.clone())
                    .or_default()
                    .push(PersonChange {
                        action: "bind",
                        before: Some(p.clone()),
                        after: Person::new(
                            &p.name,
                            &p.unit,
                            &p.title,
                            p.roles.clone(),
                            &b.staff_id,
                            &p.phone,
                        ),
                    });
            }
            _ => stale.push(b.clone()),
        }
    }
    (by_unit, stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROSTER: &str = r#"
[[unit]]
name = "区住建局"
kind = "department"
aliases = ["区住房和城乡建设局", "住建局"]

[[unit]]
name = "区教育局"
kind = "department"
aliases = ["教育局"]

[[unit]]
name = "西街街道"
kind = "street"
aliases = ["西街街道办事处"]

[[unit]]
name = "东街街道"
kind = "street"
aliases = ["东街街道办事处"]

[[person]]
name = "王伟"
unit = "区住建局"

[[person]]
name = "李 娜"
unit = "区教育局"

[[person]]
name = "陈静"
unit = "区教育局"
staff_id = "taken"
"#;

    fn roster() -> Roster {
        Roster::from_toml_str(ROSTER, "test").expect("roster")
    }

    fn cand(id: &str, name: &str, depts: &[&[&str]]) -> Candidate {
        Candidate {
            staff_id: id.into(),
            name: name.into(),
            title: "科员".into(),
            departments: depts
                .iter()
                .map(|p| p.iter().map(|s| s.to_string()).collect())
                .collect(),
        }
    }

    fn person(r: &Roster, name: &str) -> Person {
        r.person_by_name(name).expect("person").clone()
    }

    #[test]
    fn departments_belong_to_units_by_name_alias_or_unique_containment() {
        let r = roster();
        assert_eq!(unit_of_department("区住建局", &r), Some("区住建局"));
        assert_eq!(unit_of_department("住建局", &r), Some("区住建局"));
        assert_eq!(
            unit_of_department("甘州区住房和城乡建设局", &r),
            Some("区住建局")
        );
        // Contained in the unit's name, and in no other unit's.
        assert_eq!(unit_of_department("教育", &r), Some("区教育局"));
        // Fits two units: says nothing.
        assert_eq!(unit_of_department("街道办事处", &r), None);
        assert_eq!(unit_of_department("局", &r), None);
        assert_eq!(unit_of_department("办公室", &r), None);
        assert_eq!(unit_of_department("", &r), None);
    }

    #[test]
    fn the_nearest_department_of_the_chain_decides() {
        let r = roster();
        let c = cand(
            "u1",
            "王伟",
            &[&["区住建局", "办公室"], &["教育局", "办公室"]],
        );
        assert_eq!(candidate_units(&c, &r), vec!["区住建局", "区教育局"]);
        assert_eq!(c.departments_text(), "区住建局/办公室；教育局/办公室");
        assert!(candidate_units(&cand("u2", "王伟", &[&["办公室"]]), &r).is_empty());
    }

    #[test]
    fn one_member_in_the_unit_is_bound_and_namesakes_elsewhere_do_not_count() {
        let r = roster();
        let found = vec![
            cand("u-elsewhere", "王伟", &[&["区教育局"]]),
            cand("u-here", "王伟", &[&["区住房和城乡建设局", "办公室"]]),
            cand("u-other-name", "王伟伟", &[&["区住建局"]]),
        ];
        let report = decide(&r, &[(person(&r, "王伟"), found)]);
        assert_eq!(
            report.bound,
            vec![Bound {
                name: "王伟".into(),
                unit: "区住建局".into(),
                staff_id: "u-here".into()
            }]
        );
        assert!(report.ambiguous.is_empty() && report.not_found.is_empty());
    }

    #[test]
    fn several_in_the_unit_or_only_elsewhere_is_ambiguous_and_none_is_not_found() {
        let r = roster();
        let two = vec![
            cand("a", "李娜", &[&["区教育局"]]),
            cand("b", "李娜", &[&["区教育局", "基教股"]]),
        ];
        let elsewhere = vec![cand("c", "王伟", &[&["区教育局"]])];
        let report = decide(
            &r,
            &[(person(&r, "李娜"), two), (person(&r, "王伟"), elsewhere)],
        );
        assert!(report.bound.is_empty());
        assert_eq!(report.ambiguous.len(), 2);
        assert_eq!(report.ambiguous[0].name, "李娜");
        assert_eq!(report.ambiguous[0].candidates.len(), 2);
        assert_eq!(report.ambiguous[0].candidates[1].dept, "区教育局/基教股");
        assert_eq!(report.ambiguous[1].candidates[0].staff_id, "c");

        let report = decide(&r, &[(person(&r, "王伟"), vec![])]);
        assert_eq!(
            report.not_found,
            vec![NotFound {
                name: "王伟".into(),
                unit: "区住建局".into()
            }]
        );
    }

    #[test]
    fn an_account_already_in_the_roster_or_found_twice_is_not_bound() {
        let r = roster();
        let taken = vec![cand("taken", "王伟", &[&["区住建局"]])];
        let report = decide(&r, &[(person(&r, "王伟"), taken)]);
        assert!(report.bound.is_empty());
        assert_eq!(report.ambiguous[0].candidates[0].staff_id, "taken");

        let text = format!(
            "{ROSTER}\n[[person]]\nname = \"王伟\"\nunit = \"区住建局\"\ntitle = \"副局长\"\n"
        );
        let r = Roster::from_toml_str(&text, "t").expect("roster");
        let twins: Vec<Person> = r
            .people()
            .iter()
            .filter(|p| p.name == "王伟")
            .cloned()
            .collect();
        let same = vec![cand("u", "王伟", &[&["区住建局"]])];
        let looked: Vec<(Person, Vec<Candidate>)> =
            twins.into_iter().map(|p| (p, same.clone())).collect();
        let report = decide(&r, &looked);
        assert!(report.bound.is_empty());
        assert_eq!(report.ambiguous.len(), 2);
    }

    #[test]
    fn bindings_are_bind_changes_and_skip_what_changed_meanwhile() {
        let r = roster();
        let bound = vec![
            Bound {
                name: "王伟".into(),
                unit: "区住建局".into(),
                staff_id: "u-here".into(),
            },
            Bound {
                name: "李娜".into(),
                unit: "区教育局".into(),
                staff_id: "taken".into(),
            },
        ];
        let (changes, stale) = bindings(&r, &bound);
        let c = &changes["区住建局"][0];
        assert_eq!(c.action, "bind");
        assert_eq!(c.before.as_ref().map(|p| p.staff_id.as_str()), Some(""));
        assert_eq!(c.after.staff_id, "u-here");
        assert_eq!(c.after.id(), "u-here");
        assert_eq!(stale, vec![bound[1].clone()]);
    }
}

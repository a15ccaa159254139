//! Domain values: the identifiers the mechanism passes around, each a type that can only hold a
//! valid value, so a function taking a [`TicketNo`] needs no check and cannot be handed a case
//! number or a unit by mistake.
//!
//! - [`TicketNo`] — a 工单编号, `DH` + 6–20 digits, normalised as the parser reads it.
//! - [`CaseNo`] — a case number the engine allocated, `TC-<year>-<n>` (n at least 4 digits).
//! - [`UnitName`] — the canonical name of a roster unit; made only from the roster (a
//!   [`Unit`], a [`Person`]'s unit, or a member unit the [`UnitMatcher`] resolves), never from
//!   any string.
//! - [`PersonId`] — a roster person's address: a DingTalk staff id or a `local:<unit>:<name>` id.
//!
//! Each is `#[serde(transparent)]`: stored cases, events and `parse --json` hold the same bare
//! strings as before these types existed. Reading stored JSON does not re-validate: the value
//! was checked when it was first made, and a unit since renamed in the roster must still read.
//! `parse` is for text from outside (a user, a command line); its error is Chinese.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::parse::{UnitMatcher, normalize_ticket_no};
use crate::roster::{Person, Unit};

/// A value that is not a valid domain value; `message` is Chinese, for the user who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DomainError {
    pub message: String,
}

impl DomainError {
    fn new(message: String) -> DomainError {
        DomainError { message }
    }
}

/// The read-only string surface every domain value shares: it reads as `str` (never mutably, so
/// the invariant holds), compares with strings, prints as itself and turns back into a `String`.
macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

/// A value the store reads back from a column of its own, where only checked values are written
/// (the same trust as reading stored JSON).
macro_rules! stored_value {
    ($name:ident) => {
        impl $name {
            pub(crate) fn from_stored(value: String) -> $name {
                $name(value)
            }
        }
    };
}

/// A 工单编号: `DH` + 6–20 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketNo(String);
string_value!(TicketNo);
stored_value!(TicketNo);

impl TicketNo {
    /// A ticket number as written (`ｄｈ 2026 1125 0099`, a remark after it), normalised the way
    /// applications and commands read it (NFKC, upper case, whitespace removed).
    pub fn parse(raw: &str) -> Result<TicketNo, DomainError> {
        normalize_ticket_no(raw).map(TicketNo).ok_or_else(|| {
            DomainError::new(format!(
                "工单编号“{}”格式不正确：应为“DH”加 6–20 位数字，如 DH2026110300017",
                raw.trim()
            ))
        })
    }
}

/// A case number the engine allocated: `TC-<year>-<n>`, `n` counted per year from 1 and written
/// with at least four digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaseNo(String);
string_value!(CaseNo);
stored_value!(CaseNo);

impl CaseNo {
    /// The `n`th case number of `year` (the store's per-year counter).
    pub fn new(year: i16, n: i64) -> CaseNo {
        CaseNo(format!("TC-{year}-{n:04}"))
    }

    /// A case number exactly as the engine writes it: case numbers are read back from card ids
    /// and links, never typed, so nothing is normalised.
    pub fn parse(raw: &str) -> Result<CaseNo, DomainError> {
        let valid = raw
            .strip_prefix("TC-")
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(year, n)| {
                year.len() == 4
                    && n.len() >= 4
                    && year.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit())
            });
        if valid {
            Ok(CaseNo(raw.to_string()))
        } else {
            Err(DomainError::new(format!(
                "案件编号“{raw}”格式不正确：应为“TC-年份-序号”，如 TC-2026-0001"
            )))
        }
    }
}

/// The canonical name of a unit of the roster (`units.tsv`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnitName(String);
string_value!(UnitName);
stored_value!(UnitName);

impl UnitName {
    /// The member unit `written` names first (its canonical name or an alias), as the unit
    /// matcher resolves units in applications and commands; a hotline is not a member unit.
    pub fn parse(written: &str, units: &UnitMatcher) -> Result<UnitName, DomainError> {
        units
            .resolve(written.trim())
            .map(|name| UnitName(name.to_string()))
            .ok_or_else(|| {
                DomainError::new(format!(
                    "单位“{}”不在成员单位名单中，请写成员单位名单中的名称（如 区住建局）。",
                    written.trim()
                ))
            })
    }

    /// The unit the matcher found at `index` of its units.
    pub(crate) fn matched(units: &UnitMatcher, index: usize) -> UnitName {
        UnitName(units.name(index).to_string())
    }

    /// The name of a roster unit.
    pub fn of(unit: &Unit) -> UnitName {
        UnitName(unit.name.clone())
    }

    /// The unit a roster person belongs to (the roster only admits people of its units).
    pub fn of_person(person: &Person) -> UnitName {
        UnitName(person.unit.clone())
    }

    /// A name taken on trust, for the crate's unit tests that have no roster at hand.
    #[cfg(test)]
    pub(crate) fn unchecked(name: &str) -> UnitName {
        UnitName(name.to_string())
    }
}

/// A roster person's address ([`Person::id`]): a DingTalk staff id, or `local:<unit>:<name>` for
/// someone without one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(String);
string_value!(PersonId);

impl PersonId {
    /// A person id as written: non-empty, at most 128 characters, no whitespace or control
    /// characters; a `local:` id names a unit and a person (`local:区人社局:任燕`).
    pub fn parse(raw: &str) -> Result<PersonId, DomainError> {
        let id = raw.trim();
        let bad = |why: &str| {
            Err(DomainError::new(format!(
                "人员标识“{id}”无效：{why}。应为钉钉 userId，或“local:单位:姓名”"
            )))
        };
        if id.is_empty() {
            return bad("为空");
        }
        if id.chars().count() > 128 {
            return bad("超过 128 个字符");
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("含有空白或控制字符");
        }
        if let Some(rest) = id.strip_prefix("local:") {
            let named = rest
                .split_once(':')
                .is_some_and(|(unit, name)| !unit.is_empty() && !name.is_empty());
            if !named {
                return bad("local 标识须写明单位和姓名");
            }
        }
        Ok(PersonId(id.to_string()))
    }

    /// The id of a roster person.
    pub fn of(person: &Person) -> PersonId {
        PersonId(person.id().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::{Roster, UnitKind};

    fn roster() -> Roster {
        Roster::from_toml_str(include_str!("../config/roster.toml"), "config/roster.toml")
            .expect("shipped roster")
    }

    #[test]
    fn ticket_numbers_are_normalised_and_checked() {
        let t = TicketNo::parse("ｄｈ 2026 1125 0099").expect("full width");
        assert_eq!(t, "DH202611250099");
        assert_eq!(
            TicketNo::parse(" DH2026110300017（关联工单：DH2025）").expect("remark"),
            "DH2026110300017"
        );
        assert_eq!(TicketNo::parse("DH123456").expect("six digits"), "DH123456");
        for bad in [
            "",
            "DH12345",
            "DH123456789012345678901",
            "XH2026110300017",
            "DH2026A1",
        ] {
            let e = TicketNo::parse(bad).expect_err(bad);
            assert!(e.message.contains("应为“DH”加 6–20 位数字"), "{bad}: {e}");
        }
    }

    #[test]
    fn case_numbers_have_a_year_and_a_counter() {
        let n = CaseNo::new(2026, 7);
        assert_eq!(n, "TC-2026-0007");
        assert_eq!(CaseNo::new(2026, 12345), "TC-2026-12345");
        assert_eq!(CaseNo::parse("TC-2026-0007").expect("as written"), n);
        for bad in [
            "",
            "tc-2026-0007",
            " TC-2026-0007",
            "TC-2026-7",
            "TC-26-0007",
            "2026-0007",
            "TC-2026-00a7",
            "DH2026110300017",
        ] {
            let e = CaseNo::parse(bad).expect_err(bad);
            assert!(e.message.contains("TC-2026-0001"), "{bad}: {e}");
        }
    }

    #[test]
    fn unit_names_come_from_the_roster() {
        let roster = roster();
        let units = UnitMatcher::new(&roster);
        let housing = UnitName::parse("住建局", &units).expect("alias");
        assert_eq!(housing, "区住建局");
        assert_eq!(
            UnitName::parse(" 区住建局 ", &units).expect("canonical"),
            housing
        );
        let unit = roster.unit("区住建局").expect("unit");
        assert_eq!(UnitName::of(unit), housing);
        // The validated application re-reads the report's canonical names: each must read as itself.
        for unit in roster
            .units()
            .iter()
            .filter(|u| u.kind != UnitKind::Hotline)
        {
            assert_eq!(
                UnitName::parse(&unit.name, &units).as_ref(),
                Ok(&UnitName::of(unit))
            );
        }
        let hotline = roster.units().iter().find(|u| u.kind == UnitKind::Hotline);
        assert!(UnitName::parse(&hotline.expect("a hotline").name, &units).is_err());
        let e = UnitName::parse("区火星局", &units).expect_err("unknown");
        assert!(e.message.contains("不在成员单位名单中"), "{e}");
        assert!(UnitName::parse("", &units).is_err());
    }

    #[test]
    fn person_ids_are_staff_ids_or_local_ids() {
        let roster = roster();
        let person = roster.people().first().expect("a person");
        assert_eq!(PersonId::of(person), person.id());
        assert_eq!(
            PersonId::parse(" manager4512 ").expect("staff id"),
            "manager4512"
        );
        assert_eq!(
            PersonId::parse("local:区人社局:任燕").expect("local"),
            "local:区人社局:任燕"
        );
        for bad in [
            "",
            "  ",
            "a b",
            "local:",
            "local:区人社局",
            "local::任燕",
            &"x".repeat(129),
        ] {
            let e = PersonId::parse(bad).expect_err(bad);
            assert!(e.message.contains("人员标识"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn values_serialise_as_bare_strings() {
        let t = TicketNo::parse("DH2026110300017").expect("ticket");
        let json = serde_json::to_string(&t).expect("json");
        assert_eq!(json, "\"DH2026110300017\"");
        assert_eq!(serde_json::from_str::<TicketNo>(&json).expect("read"), t);
        let n: CaseNo = serde_json::from_str("\"TC-2026-0001\"").expect("read");
        assert_eq!(n.to_string(), "TC-2026-0001");
    }
}

//! The roster: member units (with the aliases people write), the people of the working group,
//! and their roles. It is read from `config/roster.toml`, validated as a whole at start-up, and
//! answers "who is this DingTalk user, and what may they do" for every inbound action.
//!
//! A person without a DingTalk `staff_id` still has a stable [`Person::id`] (`local:<unit>:<name>`)
//! so that workflow effects can address them; the sandbox shows those ids, DingTalk cannot reach them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::store::RosterOverride;

/// What a roster command changes (附件1: 人事变动由分管领导依次补充).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterAction {
    /// 设置联络员: the mentioned person becomes a liaison of the unit.
    SetLiaison,
    /// 移除联络员: the mentioned liaison is a liaison no more.
    RemoveLiaison,
    /// 更换分管领导: the mentioned person becomes the unit's leader, replacing the current one.
    ChangeLeader,
}

/// Reads the roster in force (the engine's: the file with the changes made in DingTalk), for
/// parts that outlive one snapshot (the sandbox console, the Stream address-book lookups).
pub type RosterInForce = std::sync::Arc<dyn Fn() -> std::sync::Arc<Roster> + Send + Sync>;

/// What kind of body a unit is. Hotline units are the mechanism's coordinators, not cooperating units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    Town,
    Street,
    Department,
    Court,
    CityBranch,
    Soe,
    Hotline,
}

impl UnitKind {
    const ALL: [(&'static str, UnitKind); 7] = [
        ("town", UnitKind::Town),
        ("street", UnitKind::Street),
        ("department", UnitKind::Department),
        ("court", UnitKind::Court),
        ("city_branch", UnitKind::CityBranch),
        ("soe", UnitKind::Soe),
        ("hotline", UnitKind::Hotline),
    ];

    fn parse(s: &str) -> Option<UnitKind> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("department")
    }
}

/// A role in the mechanism (docs/spec.md → People).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 分管领导
    Leader,
    /// 联络员
    Liaison,
    /// 质检专员
    Inspector,
    /// 督办专员
    Supervisor,
    /// 区热线负责人
    HotlineHead,
    /// 市热线督办
    CitySupervisor,
    /// 工作小组组长、副组长
    GroupLeader,
    Admin,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Leader,
        Role::Liaison,
        Role::Inspector,
        Role::Supervisor,
        Role::HotlineHead,
        Role::CitySupervisor,
        Role::GroupLeader,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Liaison => "liaison",
            Role::Inspector => "inspector",
            Role::Supervisor => "supervisor",
            Role::HotlineHead => "hotline_head",
            Role::CitySupervisor => "city_supervisor",
            Role::GroupLeader => "group_leader",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The Chinese name users see.
    pub fn label(self) -> &'static str {
        match self {
            Role::Leader => "分管领导",
            Role::Liaison => "联络员",
            Role::Inspector => "质检专员",
            Role::Supervisor => "督办专员",
            Role::HotlineHead => "热线负责人",
            Role::CitySupervisor => "市热线督办",
            Role::GroupLeader => "工作小组组长",
            Role::Admin => "管理员",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    /// Canonical name, as in `units.tsv`.
    pub name: String,
    pub kind: UnitKind,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    /// Name without the spaces the seed document pads two-character names with.
    pub name: String,
    /// Canonical unit name.
    pub unit: String,
    pub title: String,
    pub roles: Vec<Role>,
    /// DingTalk userId; empty until an admin fills it in.
    pub staff_id: String,
    pub phone: String,
    /// The address book reported that they left the organisation: they keep their place (so
    /// timelines still name them) but hold no role and receive nothing.
    pub departed: bool,
    id: String,
}

impl Person {
    pub fn new(
        name: &str,
        unit: &str,
        title: &str,
        roles: Vec<Role>,
        staff_id: &str,
        phone: &str,
    ) -> Person {
        let name = normalize_name(name);
        let id = if staff_id.trim().is_empty() {
            format!("local:{unit}:{name}")
        } else {
            staff_id.trim().to_string()
        };
        Person {
            name,
            unit: unit.to_string(),
            title: title.to_string(),
            roles,
            staff_id: staff_id.trim().to_string(),
            phone: phone.to_string(),
            departed: false,
            id,
        }
    }

    /// This person, flagged as having left the organisation (`true`) or not.
    pub fn with_departed(mut self, departed: bool) -> Person {
        self.departed = departed;
        self
    }

    /// The address effects use: the DingTalk `staff_id`, or `local:<unit>:<name>` when unset.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether DingTalk can reach this person (a `staff_id` is configured).
    pub fn reachable(&self) -> bool {
        !self.staff_id.is_empty()
    }
}

/// Removes all whitespace (including U+3000), as the seed writes "何 军" for 何军.
pub fn normalize_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_whitespace()).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("无法读取名单文件 {path}：{source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("名单文件有误：\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<RosterProblem>),
}

/// One problem in a roster file, located by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterProblem {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RosterProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} 第 {} 行：{}", self.file, self.line, self.message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    #[serde(default)]
    unit: Vec<UnitEntry>,
    #[serde(default)]
    person: Vec<PersonEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitEntry {
    name: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonEntry {
    name: Spanned<String>,
    unit: Spanned<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    staff_id: Option<Spanned<String>>,
    #[serde(default)]
    phone: String,
}

/// Units and people, validated, with indexes for the lookups every inbound action makes.
#[derive(Debug, Clone)]
pub struct Roster {
    units: Vec<Unit>,
    people: Vec<Person>,
    unit_index: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
}

impl Roster {
    pub fn load(path: &Path) -> Result<Roster, RosterError> {
        let text = std::fs::read_to_string(path).map_err(|source| RosterError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Roster::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates a roster file's text; `file` names it in error messages.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Roster, RosterError> {
        let line_of =
            |span: Range<usize>| text[..span.start.min(text.len())].matches('\n').count() + 1;
        let problem = |span: Range<usize>, message: String| RosterProblem {
            file: file.to_string(),
            line: line_of(span),
            message,
        };
        let parsed: RosterFile = match toml::from_str(text) {
            Ok(p) => p,
            Err(e) => {
                let line = e.span().map(line_of).unwrap_or(1);
                return Err(RosterError::Invalid(vec![RosterProblem {
                    file: file.to_string(),
                    line,
                    message: format!("格式错误：{}", e.message()),
                }]));
            }
        };

        let mut problems = Vec::new();
        let mut units = Vec::new();
        let mut seen_names: HashMap<String, String> = HashMap::new();
        for entry in parsed.unit {
            let name = entry.name.get_ref().trim().to_string();
            let Some(kind) = UnitKind::parse(entry.kind.get_ref()) else {
                problems.push(problem(
                    entry.kind.span(),
                    format!(
                        "单位“{name}”的类型“{}”无效，应为 town、street、department、court、city_branch、soe 或 hotline 之一",
                        entry.kind.get_ref()
                    ),
                ));
                continue;
            };
            if name.is_empty() {
                problems.push(problem(entry.name.span(), "单位名称不能为空".into()));
                continue;
            }
            let mut aliases = Vec::new();
            for alias in std::iter::once(&entry.name).chain(entry.aliases.iter()) {
                let a = alias.get_ref().trim().to_string();
                if a.is_empty() {
                    continue;
                }
                if let Some(owner) = seen_names.get(&a) {
                    if owner != &name {
                        problems.push(problem(
                            alias.span(),
                            format!("名称或别名“{a}”同时属于“{owner}”和“{name}”，请只保留一个"),
                        ));
                    }
                    continue;
                }
                seen_names.insert(a.clone(), name.clone());
                if a != name {
                    aliases.push(a);
                }
            }
            units.push(Unit {
                name,
                kind,
                aliases,
            });
        }
        let mut people = Vec::new();
        let mut staff_ids: HashMap<String, String> = HashMap::new();
        for entry in parsed.person {
            let name = normalize_name(entry.name.get_ref());
            let unit_written = entry.unit.get_ref().trim();
            // An alias is accepted for convenience; the canonical name is stored.
            let unit = match seen_names.get(unit_written) {
                Some(canonical) => canonical.clone(),
                None => {
                    problems.push(problem(
                        entry.unit.span(),
                        format!("人员“{name}”的单位“{unit_written}”不在单位名单中"),
                    ));
                    continue;
                }
            };
            let mut roles = Vec::new();
            for role in &entry.roles {
                match Role::parse(role.get_ref().trim()) {
                    Some(r) if !roles.contains(&r) => roles.push(r),
                    Some(_) => {}
                    None => problems.push(problem(
                        role.span(),
                        format!(
                            "人员“{name}”的角色“{}”无效，应为 leader、liaison、inspector、supervisor、hotline_head、city_supervisor、group_leader 或 admin",
                            role.get_ref()
                        ),
                    )),
                }
            }
            let staff_id = entry
                .staff_id
                .as_ref()
                .map(|s| s.get_ref().trim())
                .unwrap_or("")
                .to_string();
            if let Some(span) = entry
                .staff_id
                .as_ref()
                .map(|s| s.span())
                .filter(|_| !staff_id.is_empty())
            {
                if let Some(other) = staff_ids.get(&staff_id) {
                    problems.push(problem(
                        span,
                        format!("staff_id “{staff_id}”重复：已用于“{other}”，不能再用于“{name}”"),
                    ));
                    continue;
                }
                staff_ids.insert(staff_id.clone(), name.clone());
            }
            people.push(Person::new(
                &name,
                &unit,
                &entry.title,
                roles,
                &staff_id,
                &entry.phone,
            ));
        }
        if !problems.is_empty() {
            return Err(RosterError::Invalid(problems));
        }
        Ok(Roster::from_parts(units, people))
    }

    /// Builds the indexes over already validated units and people.
    pub fn from_parts(units: Vec<Unit>, people: Vec<Person>) -> Roster {
        let unit_index = units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.clone(), i))
            .collect();
        let by_id = people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id().to_string(), i))
            .collect();
        Roster {
            units,
            people,
            unit_index,
            by_id,
        }
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    pub fn people(&self) -> &[Person] {
        &self.people
    }

    /// A unit by canonical name.
    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.unit_index.get(name).map(|&i| &self.units[i])
    }

    /// A person by DingTalk `staff_id` or by their `local:` id.
    pub fn person(&self, id: &str) -> Option<&Person> {
        self.by_id.get(id).map(|&i| &self.people[i])
    }

    /// A person by name (spaces ignored); `None` when nobody or several people have it.
    pub fn person_by_name(&self, name: &str) -> Option<&Person> {
        let wanted = normalize_name(name);
        let mut found = self.people.iter().filter(|p| p.name == wanted);
        let first = found.next()?;
        if found.next().is_some() {
            None
        } else {
            Some(first)
        }
    }

    pub fn people_with_role(&self, role: Role) -> impl Iterator<Item = &Person> {
        self.people.iter().filter(move |p| p.has_role(role))
    }

    pub fn people_in_unit(&self, unit: &str) -> impl Iterator<Item = &Person> {
        self.people.iter().filter(move |p| p.unit == unit)
    }

    pub fn people_in_unit_with_role(
        &self,
        unit: &str,
        role: Role,
    ) -> impl Iterator<Item = &Person> {
        self.people_in_unit(unit).filter(move |p| p.has_role(role))
    }

    /// Warnings for `check-config`: things that are legal but will stop messages from arriving.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let without_id: Vec<String> = self
            .people
            .iter()
            .filter(|p| !p.reachable() && !p.departed)
            .map(|p| format!("{}（{}）", p.name, p.unit))
            .collect();
        if !without_id.is_empty() {
            out.push(format!(
                "{} 人未填写 staff_id（钉钉 userId），钉钉中无法给他们发消息：{}",
                without_id.len(),
                without_id.join("、")
            ));
        }
        let with_liaison: HashSet<&str> = self
            .people_with_role(Role::Liaison)
            .map(|p| p.unit.as_str())
            .collect();
        let without_liaison: Vec<&str> = self
            .units
            .iter()
            .filter(|u| u.kind != UnitKind::Hotline && !with_liaison.contains(u.name.as_str()))
            .map(|u| u.name.as_str())
            .collect();
        if !without_liaison.is_empty() {
            out.push(format!(
                "{} 个单位没有联络员（由分管领导在钉钉中“设置联络员 @某人”或管理员在名单中补充）：{}",
                without_liaison.len(),
                without_liaison.join("、")
            ));
        }
        let mut counts: BTreeMap<Role, usize> = BTreeMap::new();
        for p in &self.people {
            for r in &p.roles {
                *counts.entry(*r).or_default() += 1;
            }
        }
        for role in [
            Role::Inspector,
            Role::Supervisor,
            Role::HotlineHead,
            Role::Admin,
        ] {
            if counts.get(&role).copied().unwrap_or(0) == 0 {
                out.push(format!("名单中没有{}（{}）", role.label(), role.as_str()));
            }
        }
        out
    }

    /// The roster in the file format, so that `roster.toml` can be regenerated from what is in force.
    pub fn to_toml(&self) -> String {
        fn q(s: &str) -> String {
            toml::Value::String(s.to_string()).to_string()
        }
        let mut out = String::new();
        for u in &self.units {
            out.push_str(&format!(
                "[[unit]]\nname = {}\nkind = \"{}\"\naliases = [{}]\n\n",
                q(&u.name),
                u.kind.as_str(),
                u.aliases
                    .iter()
                    .map(|a| q(a))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for p in &self.people {
            out.push_str(&format!(
                "[[person]]\nname = {}\nunit = {}\ntitle = {}\nroles = [{}]\nstaff_id = {}\nphone = {}\n\n",
                q(&p.name),
                q(&p.unit),
                q(&p.title),
                p.roles.iter().map(|r| format!("\"{}\"", r.as_str())).collect::<Vec<_>>().join(", "),
                q(&p.staff_id),
                q(&p.phone)
            ));
        }
        out
    }
}

/// A person's roles as the roster file writes them (`["leader","liaison"]`).
pub fn roles_json(roles: &[Role]) -> String {
    serde_json::to_string(&roles.iter().map(|r| r.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

impl Person {
    /// This person as a stored DingTalk change leaves them (`at`, `by`: when and who).
    pub fn to_override(&self, at: jiff::Timestamp, by: &str) -> RosterOverride {
        RosterOverride {
            unit: self.unit.clone(),
            name: self.name.clone(),
            title: self.title.clone(),
            roles_json: roles_json(&self.roles),
            staff_id: self.staff_id.clone(),
            phone: self.phone.clone(),
            updated_at: at,
            updated_by: by.to_string(),
            departed_at: self.departed.then_some(at),
        }
    }

    /// The person a stored change describes; `Err` names what cannot be read.
    pub fn from_override(row: &RosterOverride) -> Result<Person, String> {
        let names: Vec<String> = serde_json::from_str(&row.roles_json)
            .map_err(|e| format!("{}（{}）的角色无法读取：{e}", row.name, row.unit))?;
        let mut roles = Vec::new();
        for n in names {
            let role = Role::parse(&n)
                .ok_or_else(|| format!("{}（{}）的角色“{n}”无效", row.name, row.unit))?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        Ok(Person::new(
            &row.name,
            &row.unit,
            &row.title,
            roles,
            &row.staff_id,
            &row.phone,
        )
        .with_departed(row.departed_at.is_some()))
    }
}

impl Roster {
    /// The roster in force: this one (the file) with `changed` people replacing the file's person
    /// of the same unit and name, or added when the file has none. A staff id a change gave
    /// someone is taken from any file person who still has it, so ids stay unique.
    pub fn with_overrides(&self, changed: &[Person]) -> Roster {
        let key = |p: &Person| (p.unit.clone(), p.name.clone());
        let changed_keys: HashSet<(String, String)> = changed.iter().map(key).collect();
        let claimed: HashSet<&str> = changed
            .iter()
            .map(|p| p.staff_id.as_str())
            .filter(|s| !s.is_empty())
            .collect();
        let mut people: Vec<Person> = Vec::with_capacity(self.people.len() + changed.len());
        let mut pending: Vec<&Person> = changed.iter().collect();
        for p in &self.people {
            if changed_keys.contains(&key(p)) {
                if let Some(i) = pending.iter().position(|c| key(c) == key(p)) {
                    people.push(pending.remove(i).clone());
                }
            } else if claimed.contains(p.staff_id.as_str()) {
                people.push(Person::new(
                    &p.name,
                    &p.unit,
                    &p.title,
                    p.roles.clone(),
                    "",
                    &p.phone,
                ));
            } else {
                people.push(p.clone());
            }
        }
        people.extend(pending.into_iter().cloned());
        Roster::from_parts(self.units.clone(), people)
    }

    /// How `effective` (the roster in force) differs from this one (the file), one line per
    /// person, in Chinese for `check-config`.
    pub fn differences(&self, effective: &Roster) -> Vec<String> {
        let describe = |p: &Person| {
            let roles: Vec<&str> = p.roles.iter().map(|r| r.label()).collect();
            format!(
                "角色 {}，staff_id {}",
                if roles.is_empty() {
                    "（无）".to_string()
                } else {
                    roles.join("、")
                },
                if p.staff_id.is_empty() {
                    "（未填）"
                } else {
                    p.staff_id.as_str()
                }
            )
        };
        let mut out = Vec::new();
        for p in &effective.people {
            let in_file = self
                .people
                .iter()
                .find(|f| f.unit == p.unit && f.name == p.name);
            match in_file {
                None => out.push(format!(
                    "{}（{}）：文件中没有，钉钉中新增（{}）",
                    p.name,
                    p.unit,
                    describe(p)
                )),
                Some(f) if f.roles != p.roles || f.staff_id != p.staff_id => out.push(format!(
                    "{}（{}）：文件 {}；现行 {}",
                    p.name,
                    p.unit,
                    describe(f),
                    describe(p)
                )),
                Some(_) => {}
            }
        }
        out
    }
}

/// Someone `@`-mentioned in a roster command: the staff id DingTalk's `atUsers` gave, and the
/// nick written after `@` (their name when they are new to the roster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mentioned {
    pub staff_id: String,
    pub nick: String,
}

/// One person changed by a roster command: `before` is `None` when the command adds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonChange {
    /// `set_liaison`, `remove_liaison`, `set_leader`, `drop_leader`, `bind`, `left_org` or
    /// `left_unit`.
    pub action: &'static str,
    pub before: Option<Person>,
    pub after: Person,
}

impl PersonChange {
    /// The change as the people told read it.
    pub fn describe(&self) -> String {
        let p = &self.after;
        match self.action {
            "set_liaison" => format!("{}（{}）设为联络员", p.name, p.unit),
            "remove_liaison" => format!("{}（{}）不再担任联络员", p.name, p.unit),
            "set_leader" => format!("{}（{}）任分管领导", p.name, p.unit),
            "drop_leader" => format!("{}（{}）不再担任分管领导", p.name, p.unit),
            "left_org" => format!("{}（{}）已从钉钉组织离职，角色取消", p.name, p.unit),
            "left_unit" => format!("{}（{}）已调离本单位，角色取消", p.name, p.unit),
            _ => format!("{}（{}）绑定钉钉账号 {}", p.name, p.unit, p.staff_id),
        }
    }
}

impl Roster {
    /// Plans 设置联络员 / 移除联络员 / 更换分管领导 sent by `sender` for `unit` (`None`: their own):
    /// a unit's leader changes their own unit only, an admin names any unit (附件1: 人事变动由
    /// 负责本部门热线工作的分管领导依次补充). `Err` is the Chinese refusal.
    pub fn plan_change(
        &self,
        sender: &Person,
        action: RosterAction,
        unit: Option<&str>,
        target: &Mentioned,
    ) -> Result<(String, Vec<PersonChange>), String> {
        let what = match action {
            RosterAction::SetLiaison => "设置联络员",
            RosterAction::RemoveLiaison => "移除联络员",
            RosterAction::ChangeLeader => "更换分管领导",
        };
        let unit = if sender.has_role(Role::Admin) {
            match unit {
                Some(u) => u.to_string(),
                None if sender.has_role(Role::Leader) => sender.unit.clone(),
                None => {
                    return Err(format!(
                        "管理员{what}时请写明单位，例如：{what} 区住建局 @某人"
                    ));
                }
            }
        } else if !sender.has_role(Role::Leader) {
            let roles: Vec<&str> = sender.roles.iter().map(|r| r.label()).collect();
            return Err(format!(
                "只有本单位分管领导可以{what}，您在名单中的角色是{}。如需调整，请联系{}分管领导。",
                if roles.is_empty() {
                    "（未分配角色）".to_string()
                } else {
                    roles.join("、")
                },
                sender.unit
            ));
        } else {
            match unit {
                Some(u) if u != sender.unit => {
                    return Err(format!(
                        "您是{}的分管领导，只能调整本单位的名单，不能调整{u}的名单。",
                        sender.unit
                    ));
                }
                _ => sender.unit.clone(),
            }
        };
        let existing = self.person(&target.staff_id);
        if let Some(p) = existing.filter(|p| p.unit != unit) {
            return Err(format!(
                "{}是{}的人员，不能{what}为{unit}的人员。",
                p.name, p.unit
            ));
        }
        // Someone the file lists without a staff id is bound by the same @, not duplicated.
        let existing = existing.or_else(|| {
            self.people_in_unit(&unit)
                .find(|p| !p.reachable() && !p.departed && p.name == normalize_name(&target.nick))
        });
        let with_roles = |p: &Person, roles: Vec<Role>| {
            Person::new(
                &p.name,
                &p.unit,
                &p.title,
                roles,
                &target.staff_id,
                &p.phone,
            )
        };
        let mut changes = Vec::new();
        match action {
            RosterAction::SetLiaison | RosterAction::ChangeLeader => {
                let (role, label, code) = match action {
                    RosterAction::ChangeLeader => (Role::Leader, "分管领导", "set_leader"),
                    _ => (Role::Liaison, "联络员", "set_liaison"),
                };
                match existing {
                    Some(p) if p.has_role(role) && p.reachable() => {
                        return Err(format!("{}已是{unit}的{label}，无需重复设置。", p.name));
                    }
                    Some(p) => {
                        let mut roles = p.roles.clone();
                        if !roles.contains(&role) {
                            roles.push(role);
                        }
                        changes.push(PersonChange {
                            action: code,
                            before: Some(p.clone()),
                            after: with_roles(p, roles),
                        });
                    }
                    None => {
                        let nick = normalize_name(&target.nick);
                        if nick.is_empty() {
                            return Err("无法识别被@人员的姓名，请在命令中 @该人员。".into());
                        }
                        changes.push(PersonChange {
                            action: code,
                            before: None,
                            after: Person::new(&nick, &unit, "", vec![role], &target.staff_id, ""),
                        });
                    }
                }
                if role == Role::Leader {
                    let new_id = changes.first().map(|c| c.after.id().to_string());
                    for old in self.people_in_unit_with_role(&unit, Role::Leader) {
                        if Some(old.id()) != new_id.as_deref() {
                            let roles = old.roles.iter().copied().filter(|r| *r != Role::Leader);
                            changes.push(PersonChange {
                                action: "drop_leader",
                                before: Some(old.clone()),
                                after: Person::new(
                                    &old.name,
                                    &old.unit,
                                    &old.title,
                                    roles.collect(),
                                    &old.staff_id,
                                    &old.phone,
                                ),
                            });
                        }
                    }
                }
            }
            RosterAction::RemoveLiaison => match existing {
                Some(p) if p.has_role(Role::Liaison) && p.reachable() => {
                    let roles = p.roles.iter().copied().filter(|r| *r != Role::Liaison);
                    changes.push(PersonChange {
                        action: "remove_liaison",
                        before: Some(p.clone()),
                        after: with_roles(p, roles.collect()),
                    });
                }
                _ => {
                    return Err(format!(
                        "{}不是{unit}的联络员，无需移除。",
                        existing.map_or(target.nick.as_str(), |p| p.name.as_str())
                    ));
                }
            },
        }
        Ok((unit, changes))
    }

    /// Plans 设置联络员 written with a name instead of an `@` (the onboarding buttons, the
    /// sandbox, where nobody can be mentioned): the name must be exactly one person of the unit
    /// the sender may change (their own; an admin names it). `allow_unbound` lets a person
    /// without a DingTalk account be chosen (the sandbox reaches everyone); otherwise such a
    /// person is named with an `@`, which binds the account at the same time.
    pub fn plan_liaison_by_name(
        &self,
        sender: &Person,
        unit: Option<&str>,
        name: &str,
        allow_unbound: bool,
    ) -> Result<(String, Vec<PersonChange>), String> {
        let wanted = normalize_name(name);
        let unit = match unit {
            Some(u) if sender.has_role(Role::Admin) || u == sender.unit => u.to_string(),
            None if sender.has_role(Role::Leader) => sender.unit.clone(),
            // Not theirs to change: plan_change gives the refusal, before any name is looked up.
            _ => {
                let nobody = Mentioned {
                    staff_id: String::new(),
                    nick: wanted,
                };
                return self.plan_change(sender, RosterAction::SetLiaison, unit, &nobody);
            }
        };
        let found: Vec<&Person> = self
            .people_in_unit(&unit)
            .filter(|p| p.name == wanted && !p.departed)
            .collect();
        let target = match found.as_slice() {
            [p] if p.has_role(Role::Liaison) => {
                return Err(format!("{}已是{unit}的联络员，无需重复设置。", p.name));
            }
            [p] if p.reachable() || allow_unbound => Mentioned {
                staff_id: p.staff_id.clone(),
                nick: p.name.clone(),
            },
            [p] => {
                return Err(format!(
                    "{}尚未绑定钉钉账号，机器人无法给他发消息。请在钉钉中发送“设置联络员 @{}”（输入 @ 后从列表选择此人），设置的同时绑定账号。",
                    p.name, p.name
                ));
            }
            [] => {
                return Err(format!(
                    "{unit}名单中没有名为“{wanted}”的人员。请核对姓名（发送“名单”查看本单位人员）；新同事请用“设置联络员 @某人”在钉钉中 @ 选择。"
                ));
            }
            _ => {
                return Err(format!(
                    "{unit}名单中有多位名为“{wanted}”的人员，请用“设置联络员 @某人”在钉钉中 @ 选择。"
                ));
            }
        };
        self.plan_change(sender, RosterAction::SetLiaison, Some(&unit), &target)
    }

    /// Plans 绑定: an admin gives the roster person `name` the mentioned staff id.
    pub fn plan_bind(
        &self,
        sender: &Person,
        name: &str,
        target: &Mentioned,
    ) -> Result<PersonChange, String> {
        if !sender.has_role(Role::Admin) {
            return Err("只有管理员可以绑定钉钉账号。".into());
        }
        let Some(p) = self.person_by_name(name) else {
            return Err(format!(
                "名单中没有唯一名为“{name}”的人员，请核对姓名（发送“名单 单位”查看）。"
            ));
        };
        if p.reachable() {
            return Err(format!("{}已绑定钉钉账号 {}。", p.name, p.staff_id));
        }
        if let Some(other) = self.person(&target.staff_id) {
            return Err(format!(
                "该钉钉账号已属于{}（{}），不能再绑定给{}。",
                other.name, other.unit, p.name
            ));
        }
        Ok(PersonChange {
            action: "bind",
            before: Some(p.clone()),
            after: Person::new(
                &p.name,
                &p.unit,
                &p.title,
                p.roles.clone(),
                &target.staff_id,
                &p.phone,
            ),
        })
    }

    /// 名单: a unit's people and roles, as the chat shows them.
    pub fn unit_listing(&self, unit: &str) -> String {
        let mut out = format!("{unit}现有人员：\n");
        let mut any = false;
        for p in self.people_in_unit(unit) {
            any = true;
            let roles: Vec<&str> = p.roles.iter().map(|r| r.label()).collect();
            out.push_str(&format!(
                "· {}：{}{}\n",
                p.name,
                if roles.is_empty() {
                    "（无角色）".to_string()
                } else {
                    roles.join("、")
                },
                if p.departed {
                    "（已离职）"
                } else if p.reachable() {
                    ""
                } else {
                    "（未绑定钉钉账号）"
                }
            ));
        }
        if !any {
            out.push_str("（暂无人员）\n");
        }
        if self
            .people_in_unit_with_role(unit, Role::Liaison)
            .next()
            .is_none()
        {
            out.push_str("\n本单位尚无联络员，请分管领导发送“设置联络员 @某人”。");
        }
        out.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../config/roster.toml");

    #[test]
    fn shipped_roster_is_valid_and_complete() {
        let r = Roster::from_toml_str(SHIPPED, "config/roster.toml").expect("valid");
        assert_eq!(r.units().len(), 68);
        assert_eq!(r.people_with_role(Role::Inspector).count(), 2);
        let ren = r.person_by_name("任 燕").expect("任燕");
        assert_eq!(ren.unit, "区人社局");
        assert!(ren.has_role(Role::Leader));
        assert_eq!(ren.id(), "local:区人社局:任燕");
        assert!(r.person(ren.id()).is_some());
        assert_eq!(
            r.unit("区人社局").map(|u| u.kind),
            Some(UnitKind::Department)
        );
    }

    #[test]
    fn problems_carry_file_and_line() {
        let text = "[[unit]]\nname = \"A局\"\nkind = \"department\"\n\n[[person]]\nname = \"甲\"\nunit = \"B局\"\nroles = [\"leader\"]\n\n[[person]]\nname = \"乙\"\nunit = \"A局\"\nroles = [\"boss\"]\nstaff_id = \"u1\"\n\n[[person]]\nname = \"丙\"\nunit = \"A局\"\nstaff_id = \"u1\"\n";
        let err = Roster::from_toml_str(text, "roster.toml").expect_err("invalid");
        let RosterError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![7, 13, 19], "{err}");
        assert!(err.to_string().contains("不在单位名单中"));
        assert!(err.to_string().contains("角色“boss”无效"));
        assert!(err.to_string().contains("重复"));
    }

    #[test]
    fn export_round_trips() {
        let r = Roster::from_toml_str(SHIPPED, "a").expect("valid");
        let again = Roster::from_toml_str(&r.to_toml(), "b").expect("valid");
        assert_eq!(r.units(), again.units());
        assert_eq!(r.people(), again.people());
    }
}

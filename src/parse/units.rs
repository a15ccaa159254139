//! Finding units in free text: roster names and aliases (leftmost-longest, so 区市场监管局 beats
//! 市场监管局 and 市场监管局 beats 监管局), generic wording the inspector must resolve (国企,
//! 相关部门), and city-level or cross-county bodies (市交通运输局, 临泽县…) that the district
//! cannot task directly (四(一): those go through the city 12345 hotline). Also suggestions for
//! a name that is not in the roster.
//!
//! Linear: one Aho-Corasick pass, plus a bounded look around each 市/省/县 and each match.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};

use super::text::{fold_char, fold_width, is_han, is_space};
use crate::roster::{Roster, UnitKind};

/// Generic wording that names no unit; kept for the inspector (docs/spec.md → Parsing).
const GENERIC: [&str; 16] = [
    "具体国企",
    "相关国企",
    "对应国企",
    "有关国企",
    "国有企业",
    "国企",
    "相关职能部门",
    "有关职能部门",
    "相关部门",
    "有关部门",
    "相关单位",
    "有关单位",
    "属地政府",
    "属地乡镇",
    "属地街道",
    "属地",
];

/// Characters that end a place name when walking back from 市/省/县: verbs and connectives
/// (需市交通运输局 → 市交通运输局; 由临泽县… → 临泽县…).
const STOPS: &str =
    "需请由与和及同向让或的经对将在至到交报并协调配等为是从给被把联系知求商会跨往去";

/// Longest place name kept before 市/省/县 (肃南裕固族自治县 is the longest nearby).
const MAX_PLACE_CHARS: usize = 8;

/// How far after 市/省/县 an organisation suffix is looked for (市文体广电和旅游局).
const MAX_ORG_CHARS: usize = 12;

/// Endings that make "市…"/"县…"/"省…" an organisation; longer ones first.
const ORG_SUFFIXES: [&str; 22] = [
    "委员会",
    "办公室",
    "检察院",
    "部门",
    "中心",
    "公司",
    "政府",
    "集团",
    "单位",
    "大队",
    "支队",
    "热线",
    "医院",
    "法院",
    "局",
    "委",
    "院",
    "厅",
    "所",
    "队",
    "站",
    "联",
];

/// Bodies under a member unit that people name instead of it (the special-equipment inspection
/// institute is supervised by 市场监管局); their names share nothing with the member's, so string
/// similarity alone cannot suggest it. A unit missing from the roster is skipped.
const PARENT_UNITS: [(&str, &str); 16] = [
    ("特种设备", "区市场监管局"),
    ("特检", "区市场监管局"),
    ("电梯", "区市场监管局"),
    ("质监", "区市场监管局"),
    ("工商", "区市场监管局"),
    ("食药", "区市场监管局"),
    ("交警", "市公安局甘州分局"),
    ("劳动监察", "区人社局"),
    ("社保", "区人社局"),
    ("城管执法", "区城市管理局"),
    ("综合执法", "区城市管理局"),
    ("卫生院", "区卫健局"),
    ("疾控", "区卫健局"),
    ("学校", "区教育局"),
    ("供热", "区住建局"),
    ("物业", "区住建局"),
];

/// Most suggestions offered for an unknown unit.
const MAX_SUGGESTIONS: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Target {
    Unit(usize),
    Generic,
}

#[derive(Debug, Clone)]
struct UnitEntry {
    name: String,
    hotline: bool,
}

/// What the scanner found, in text order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mention {
    /// A roster unit (index into the matcher), as the district's own.
    Unit(usize),
    /// Generic wording (国企, 相关部门), as written.
    Generic(String),
    /// A city-level or cross-county body, as written with its place name (临泽县交通运输局).
    CityLevel(String),
    /// A name shaped like a unit (ending in 局, 街道, 镇…) that matches nothing in the roster
    /// (卫键局, a typo): kept so it is named back with suggestions, never silently dropped.
    Unknown(String),
}

/// Built once from the roster: Aho-Corasick (`MatchKind::LeftmostLongest`) over canonical names
/// and aliases of every unit (hotlines included, so they can be recognised and left out), plus the
/// generic wording. Matching is on width-folded text (`区１２３４５热线` finds 区12345热线).
#[derive(Debug, Clone)]
pub struct UnitMatcher {
    ac: AhoCorasick,
    targets: Vec<Target>,
    units: Vec<UnitEntry>,
    /// Folded names and aliases of member units (hotlines excluded), for suggestions.
    names: Vec<(Vec<char>, usize)>,
}

impl UnitMatcher {
    pub fn new(roster: &Roster) -> UnitMatcher {
        let mut patterns: Vec<String> = Vec::new();
        let mut targets = Vec::new();
        let mut units = Vec::new();
        let mut names = Vec::new();
        for (i, unit) in roster.units().iter().enumerate() {
            let hotline = unit.kind == UnitKind::Hotline;
            units.push(UnitEntry {
                name: unit.name.clone(),
                hotline,
            });
            for written in std::iter::once(&unit.name).chain(&unit.aliases) {
                let folded = fold_width(written);
                if !hotline {
                    names.push((folded.chars().collect(), i));
                }
                patterns.push(folded);
                targets.push(Target::Unit(i));
            }
        }
        // Roster patterns come first: on an identical pattern the lowest id wins, so the roster does.
        for generic in GENERIC {
            patterns.push(generic.to_string());
            targets.push(Target::Generic);
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("a roster of a few hundred names always fits an Aho-Corasick automaton");
        UnitMatcher {
            ac,
            targets,
            units,
            names,
        }
    }

    /// The canonical name of unit `index` (from a [`Mention::Unit`]).
    pub(crate) fn name(&self, index: usize) -> &str {
        &self.units[index].name
    }

    /// Whether unit `index` is a hotline (a coordinator, never a cooperating unit).
    pub(crate) fn is_hotline(&self, index: usize) -> bool {
        self.units[index].hotline
    }

    /// Whether unit `index` is the city 12345 hotline: asking it for help is asking for
    /// city-level coordination (四(一)).
    pub(crate) fn is_city_hotline(&self, index: usize) -> bool {
        self.units[index].hotline && self.units[index].name.starts_with('市')
    }

    /// The canonical member unit that `written` names first (the first unit or a unit in a
    /// command argument), or `None` when it names no district member unit.
    pub fn resolve(&self, written: &str) -> Option<&str> {
        self.scan(written).into_iter().find_map(|m| match m {
            Mention::Unit(u) if !self.is_hotline(u) => Some(self.name(u)),
            _ => None,
        })
    }

    /// Every mention in `text`, in order. A roster match right after 市, 省 or 县 (临泽县交通运输局,
    /// 市交通运输局) is a city-level mention, not the district unit; names starting with 市 that the
    /// roster lists whole (市公安局甘州分局) stay district members.
    pub(crate) fn scan(&self, text: &str) -> Vec<Mention> {
        let s = fold_width(text);
        let mut out = Vec::new();
        let mut gap_from = 0;
        for m in self.ac.find_iter(&s) {
            match self.targets[m.pattern().as_usize()] {
                Target::Generic => {
                    scan_gap(&s, gap_from, m.start(), &mut out);
                    out.push(Mention::Generic(s[m.range()].to_string()));
                }
                Target::Unit(u) => match scope_start(&s, m.start()).filter(|_| !self.is_hotline(u))
                {
                    Some(scope) => {
                        let from = walk_back(&s, scope, gap_from);
                        scan_gap(&s, gap_from, from, &mut out);
                        out.push(Mention::CityLevel(s[from..m.end()].to_string()));
                    }
                    None => {
                        scan_gap(&s, gap_from, m.start(), &mut out);
                        out.push(Mention::Unit(u));
                    }
                },
            }
            gap_from = m.end();
        }
        scan_gap(&s, gap_from, s.len(), &mut out);
        out
    }

    /// For a mention the application kept unresolved: the member units it may mean when it is
    /// an unknown unit-shaped name (卫键局 → 区卫健局), `None` when it is generic wording or a
    /// city-level body (those are the inspector's or the city's to resolve, not typos).
    pub fn unknown_unit_suggestions(&self, mention: &str) -> Option<Vec<String>> {
        match self.scan(mention).as_slice() {
            [Mention::Unknown(_)] => Some(self.suggest(mention)),
            _ => None,
        }
    }

    /// Whether a mention the application kept unresolved is a city-level or cross-county body
    /// (市交通运输局, 临泽县).
    pub fn is_city_level(&self, mention: &str) -> bool {
        matches!(self.scan(mention).as_slice(), [Mention::CityLevel(_)])
    }

    /// Up to three member units `written` may mean, best first: the member a named subordinate
    /// body belongs to (特种设备检测所 → 区市场监管局), then names that look alike, ranked by
    /// bigram overlap, shared characters and edit distance, and only ones that share a real part
    /// of the name, so a stray 区 or 局 suggests nothing.
    pub fn suggest(&self, written: &str) -> Vec<String> {
        // Only the start of a long value matters, and it bounds the quadratic edit distance.
        let w: Vec<char> = written
            .chars()
            .map(fold_char)
            .filter(|c| !is_space(*c))
            .take(24)
            .collect();
        let w = strip_home_prefix(&w);
        if w.is_empty() {
            return Vec::new();
        }
        let mut best: HashMap<usize, f64> = HashMap::new();
        for (name, unit) in &self.names {
            let score = similarity(w, name);
            let entry = best.entry(*unit).or_insert(0.0);
            if score > *entry {
                *entry = score;
            }
        }
        let mut ranked: Vec<(usize, f64)> = best.into_iter().filter(|(_, s)| *s >= 0.5).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let top = ranked.first().map(|r| r.1).unwrap_or(0.0);
        let folded: String = w.iter().collect();
        let parents = PARENT_UNITS
            .iter()
            .filter(|(keyword, _)| folded.contains(keyword))
            .filter_map(|(_, parent)| self.units.iter().find(|u| u.name == *parent));
        let similar = ranked
            .into_iter()
            .take_while(|(_, s)| *s >= top * 0.75)
            .map(|(u, _)| &self.units[u]);
        let mut out: Vec<String> = Vec::new();
        for unit in parents.chain(similar) {
            if !out.contains(&unit.name) && out.len() < MAX_SUGGESTIONS {
                out.push(unit.name.clone());
            }
        }
        out
    }
}

/// 甘州区… and 张掖市甘州区… name the district itself; they say nothing about which unit.
fn strip_home_prefix(w: &[char]) -> &[char] {
    for prefix in ["张掖市甘州区", "甘州区"] {
        let p: Vec<char> = prefix.chars().collect();
        if w.starts_with(&p) && w.len() > p.len() {
            return &w[p.len() - 1..];
        }
    }
    w
}

/// Characters every unit name is made of; sharing them says nothing.
fn is_common(c: char) -> bool {
    "区市县镇乡街道局委办公司中心部门所队院站政府".contains(c)
}

/// 0..=1: the best of bigram overlap (Dice), shared distinctive characters and edit distance.
fn similarity(a: &[char], b: &[char]) -> f64 {
    let bigrams =
        |s: &[char]| -> Vec<(char, char)> { s.windows(2).map(|w| (w[0], w[1])).collect() };
    let (ba, bb) = (bigrams(a), bigrams(b));
    let shared_bigrams = ba
        .iter()
        .filter(|g| bb.contains(g) && !(is_common(g.0) && is_common(g.1)))
        .count();
    let dice = if ba.is_empty() || bb.is_empty() {
        0.0
    } else {
        2.0 * shared_bigrams as f64 / (ba.len() + bb.len()) as f64
    };
    let distinctive = |s: &[char]| -> Vec<char> {
        let mut v: Vec<char> = s.iter().copied().filter(|c| !is_common(*c)).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let (da, db) = (distinctive(a), distinctive(b));
    let shared_chars = da.iter().filter(|c| db.contains(c)).count();
    let chars = if da.is_empty() || db.is_empty() || shared_chars < 2 {
        0.0
    } else {
        shared_chars as f64 / da.len().max(db.len()) as f64
    };
    let longest = a.len().max(b.len());
    let edit = 1.0 - edit_distance(a, b) as f64 / longest as f64;
    // An edit ratio only means something when the distinctive part is shared too.
    let edit = if shared_chars == 0 { 0.0 } else { edit };
    dice.max(chars).max(edit)
}

/// Levenshtein distance over chars; both inputs are short (names, a capped written value).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            row[j + 1] = substitute.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[b.len()]
}

/// Where the 市/省/县 scope of a match starting at `start` begins (`临泽县|交通运输局`,
/// `高台县人民|法院`), or `None` when the match is not scoped.
fn scope_start(s: &str, start: usize) -> Option<usize> {
    let before = &s[..start];
    let before = before.strip_suffix("人民").unwrap_or(before);
    let c = before.chars().next_back()?;
    matches!(c, '市' | '省' | '县').then(|| before.len() - c.len_utf8())
}

/// The start of the place name ending at `pos`: back over at most [`MAX_PLACE_CHARS`] Han
/// characters, stopping at punctuation, a verb or connective, or `floor`.
fn walk_back(s: &str, pos: usize, floor: usize) -> usize {
    let mut from = pos;
    for (n, c) in s[floor..pos].chars().rev().enumerate() {
        if n == MAX_PLACE_CHARS || !is_han(c) || STOPS.contains(c) {
            break;
        }
        from -= c.len_utf8();
    }
    from
}

/// Whether the 市/省/县 at `p` is part of an ordinary word (市场, 城市, 县道, 省钱), not a scope.
fn ordinary_word(s: &str, p: usize, c: char) -> bool {
    let prev = s[..p].chars().next_back().unwrap_or(' ');
    let next = s[p + c.len_utf8()..].chars().next().unwrap_or(' ');
    if "内外".contains(next) {
        return true;
    }
    match c {
        '市' => {
            "场民容政值面价井".contains(next)
                || "城超夜集菜上门都街闹股楼黑早开罢全各".contains(prev)
        }
        '县' => "道乡级城域区".contains(next),
        _ => "道钱去略时力事心份".contains(next) || "节反俭自不".contains(prev),
    }
}

/// Endings of unit-shaped names for [`scan_unknown`]; longer ones first. Companies, hospitals
/// and schools are left out: in 需协调部门及事由 they are what the case is about (督促物业公司),
/// rarely a unit to task.
const UNKNOWN_SUFFIXES: [&str; 10] = [
    "办公室",
    "派出所",
    "司法所",
    "街道",
    "大队",
    "中心",
    "分局",
    "局",
    "委",
    "镇",
];

/// Characters before 局 that make an ordinary word (结局, 布局, 格局, 大局…), not a unit.
const NOT_UNIT_BEFORE_JU: &str = "结布格僵全当大时饭赌棋开终残骗败困平变定";

/// Characters before 镇 that make an ordinary word (城镇, 乡镇, 重镇…).
const NOT_UNIT_BEFORE_ZHEN: &str = "城乡重坐";

/// Unit-shaped names in `s[from..to]` that no roster name, generic word or city-level scope
/// covered: a run of at least three Han characters, back from an [`UNKNOWN_SUFFIXES`] ending to
/// a verb, connective or punctuation (as place names are walked back). 委 and 镇 count only
/// when the word ends there (委托, 镇上 are not units).
fn scan_unknown(s: &str, from: usize, to: usize, out: &mut Vec<Mention>) {
    let mut p = from;
    let mut floor = from;
    while p < to {
        let Some(c) = s[p..to].chars().next() else {
            break;
        };
        let hit = UNKNOWN_SUFFIXES
            .iter()
            .find(|x| s[p..to].starts_with(*x))
            .map(|x| p + x.len());
        let Some(end) = hit else {
            p += c.len_utf8();
            continue;
        };
        let prev = s[floor..p].chars().next_back();
        let follower = s[end..to].chars().next();
        let word_ends = follower.is_none_or(|f| !is_han(f) || STOPS.contains(f));
        let ordinary = match c {
            '局' => prev.is_some_and(|x| NOT_UNIT_BEFORE_JU.contains(x)),
            '镇' => !word_ends || prev.is_some_and(|x| NOT_UNIT_BEFORE_ZHEN.contains(x)),
            '委' => !word_ends || prev == Some('原'),
            _ => false,
        };
        let start = walk_back(s, p, floor);
        if !ordinary && s[start..end].chars().count() >= 3 {
            out.push(Mention::Unknown(s[start..end].to_string()));
            floor = end;
        }
        p = end;
    }
}

/// City-level or cross-county bodies in `s[from..to]` that no roster name covers: 市/省/县
/// followed by an organisation ending (省住建厅, 市级部门), or a place name ending in 县/市/省
/// on its own (临泽县); unit-shaped names between them are [`Mention::Unknown`].
fn scan_gap(s: &str, from: usize, to: usize, out: &mut Vec<Mention>) {
    let mut plain = from;
    let mut p = from;
    while p < to {
        let Some(c) = s[p..to].chars().next() else {
            break;
        };
        let next = p + c.len_utf8();
        if !matches!(c, '市' | '省' | '县') || ordinary_word(s, p, c) {
            p = next;
            continue;
        }
        let start = walk_back(s, p, from);
        let end = org_end(s, next, to).or_else(|| {
            let place_chars = s[start..p].chars().count();
            let follower = s[next..to].chars().next();
            let standalone = follower.is_none_or(|f| !is_han(f) || STOPS.contains(f));
            (place_chars >= 2 && standalone).then_some(next)
        });
        match end {
            Some(end) => {
                scan_unknown(s, plain, start.max(plain), out);
                out.push(Mention::CityLevel(s[start..end].to_string()));
                p = end;
                plain = end;
            }
            None => p = next,
        }
    }
    scan_unknown(s, plain, to, out);
}

/// The end of an organisation name starting at `i` (within `to`): the first
/// [`ORG_SUFFIXES`] ending among the next [`MAX_ORG_CHARS`] Han characters.
fn org_end(s: &str, i: usize, to: usize) -> Option<usize> {
    let mut at = i;
    for c in s[i..to].chars().take(MAX_ORG_CHARS) {
        if !is_han(c) {
            return None;
        }
        if let Some(suffix) = ORG_SUFFIXES.iter().find(|x| s[at..to].starts_with(*x)) {
            return Some(at + suffix.len());
        }
        at += c.len_utf8();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> UnitMatcher {
        let roster = Roster::from_toml_str(include_str!("../../config/roster.toml"), "roster.toml")
            .expect("shipped roster");
        UnitMatcher::new(&roster)
    }

    fn describe(m: &UnitMatcher, text: &str) -> Vec<String> {
        m.scan(text)
            .into_iter()
            .map(|x| match x {
                Mention::Unit(u) => m.name(u).to_string(),
                Mention::Generic(g) => format!("?{g}"),
                Mention::CityLevel(c) => format!("^{c}"),
                Mention::Unknown(n) => format!("!{n}"),
            })
            .collect()
    }

    #[test]
    fn district_units_and_aliases() {
        let m = matcher();
        assert_eq!(
            describe(
                &m,
                "市场监管局、公安分局和交通局配合；区市场监督管理局；市公安局甘州分局；生态环境分局"
            ),
            [
                "区市场监管局",
                "市公安局甘州分局",
                "区交通运输局",
                "区市场监管局",
                "市公安局甘州分局",
                "市生态环境局甘州分局"
            ]
        );
        assert_eq!(
            describe(&m, "甘州区交通运输局、区１２３４５热线"),
            ["区交通运输局", "区12345热线"]
        );
    }

    #[test]
    fn scoped_matches_are_city_level() {
        let m = matcher();
        assert_eq!(
            describe(&m, "需市交通运输局统筹协调线路恢复，临泽县交通运输局配合。"),
            ["^市交通运输局", "^临泽县交通运输局"]
        );
        assert_eq!(
            describe(&m, "请张掖市市场监管局、高台县人民法院协助"),
            ["^张掖市市场监管局", "^高台县人民法院"]
        );
        assert_eq!(describe(&m, "市生态环境局"), ["^市生态环境局"]);
    }

    #[test]
    fn unlisted_city_bodies_and_places() {
        let m = matcher();
        assert_eq!(
            describe(
                &m,
                "由省住建厅、市级部门指导，该线路跨甘州区和临泽县，民乐县人民政府配合"
            ),
            ["^省住建厅", "^市级部门", "^临泽县", "^民乐县人民政府"]
        );
        assert!(describe(&m, "夜市、超市、城市道路、县道、市民、市场秩序、全市、节省").is_empty());
    }

    #[test]
    fn unknown_unit_shaped_names_are_kept() {
        let m = matcher();
        assert_eq!(
            describe(&m, "区住建局核查；卫键局协助现场核查；请区国资局协调企业"),
            ["区住建局", "!卫键局", "!区国资局"]
        );
        assert!(
            describe(&m, "形成工作格局，委托城镇居民，统筹大局").is_empty(),
            "{:?}",
            describe(&m, "形成工作格局，委托城镇居民，统筹大局")
        );
        assert_eq!(
            m.unknown_unit_suggestions("卫键局"),
            Some(vec!["区卫健局".to_string()])
        );
        assert_eq!(m.unknown_unit_suggestions("相关国企"), None);
        assert_eq!(m.unknown_unit_suggestions("市交通运输局"), None);
    }

    #[test]
    fn generic_wording() {
        let m = matcher();
        assert_eq!(
            describe(&m, "与对应的具体国企及相关部门、属地"),
            ["?具体国企", "?相关部门", "?属地"]
        );
    }

    #[test]
    fn resolve_and_suggest() {
        let m = matcher();
        assert_eq!(m.resolve("三闸镇人民政府"), Some("三闸镇"));
        assert_eq!(m.resolve("市交通运输局"), None);
        assert_eq!(m.resolve("区12345热线"), None);
        assert_eq!(m.suggest("区住建委"), ["区住建局"]);
        assert_eq!(
            m.suggest("区人设局").first().map(String::as_str),
            Some("区人社局")
        );
        assert!(m.suggest("区局").is_empty());
        assert!(m.suggest("某某公司").is_empty());
        assert_eq!(m.suggest("区特种设备检测所"), ["区市场监管局"]);
        assert_eq!(m.suggest("区交通运输管理局"), ["区交通运输局"]);
        assert_eq!(m.suggest("北街社区"), ["北街街道"]);
        assert_eq!(m.suggest("区卫生局"), ["区卫健局"]);
        assert_eq!(m.suggest("区城投公司").len(), 3);
    }
}

//! Reading individual field values: the ticket number, the leader's approval, the category of
//! difficulty, urgency and the ticket's own deadline. Keyword lists live here, next to the rule
//! they implement; each reader is one pass over its value.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use jiff::civil::Date;
use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::Category;
use super::text::{fold_width, is_space};

/// Shortest and longest digit run after `DH` (docs/spec.md → Parsing).
const TICKET_DIGITS: std::ops::RangeInclusive<usize> = 6..=20;

/// What may open a remark after a ticket number (NFKC has already folded full-width forms).
const REMARK_OPENERS: &str = "([【〔《<{,;、/|:";

/// A 工单编号 value, normalised: NFKC (full-width → ASCII), upper case, whitespace removed and
/// trailing punctuation dropped; a remark after the number is ignored. `Ok` holds `DH` + 6–20
/// digits.
pub(crate) fn ticket_no(raw: &str) -> Result<String, ()> {
    let mut t: String = raw
        .nfkc()
        .filter(|c| !is_space(*c))
        .flat_map(char::to_uppercase)
        .collect();
    while t.ends_with(['.', ',', ';', '。', '，', '；', '、']) {
        t.pop();
    }
    let digits = t.strip_prefix("DH").ok_or(())?;
    // A remark after the number, as the template is pasted in practice
    // ("DH2026…（关联工单：DH2025…）"): the first number is the ticket, the remark is ignored.
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let digits = match digits[end..].chars().next() {
        Some(c) if REMARK_OPENERS.contains(c) => &digits[..end],
        _ => digits,
    };
    let t = format!("DH{digits}");
    let valid = TICKET_DIGITS.contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    if valid { Ok(t) } else { Err(()) }
}

/// The date a ticket number starts with (`DH20261103…` → 2026-11-03), when it is a real date.
pub(crate) fn ticket_date(ticket: &str) -> Option<Date> {
    let digits = ticket.strip_prefix("DH")?;
    let number = |r: std::ops::Range<usize>| digits.get(r)?.parse::<i16>().ok();
    let (y, m, d) = (number(0..4)?, number(4..6)?, number(6..8)?);
    if !(2000..=2099).contains(&y) {
        return None;
    }
    Date::new(y, i8::try_from(m).ok()?, i8::try_from(d).ok()?).ok()
}

/// Whether the leader's answer is stated, and which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Approval {
    Approved,
    NotYet,
    Unstated,
}

/// Wording that says the leader has not (yet) agreed. It wins over any approving word, since
/// 不同意 and 未同意 contain 同意.
const NOT_APPROVED: [&str; 24] = [
    "尚未",
    "还未",
    "暂未",
    "未汇报",
    "未请示",
    "未同意",
    "未批准",
    "未审批",
    "未审核",
    "未经",
    "未能",
    "不同意",
    "不批准",
    "没有汇报",
    "没有请示",
    "没有同意",
    "没同意",
    "待汇报",
    "待请示",
    "待同意",
    "待审批",
    "待批准",
    "正在请示",
    "正在汇报",
];

/// Wording that states the leader agreed.
const APPROVED: [&str; 9] = [
    "同意",
    "已批准",
    "批准",
    "已审核",
    "审核通过",
    "已审批",
    "审批通过",
    "签批",
    "认可",
];

/// 四(一): the first unit reports to its leader and applies only after the leader agrees.
pub(crate) fn leader_approval(value: &str) -> Approval {
    static NEGATIVE: LazyLock<AhoCorasick> = LazyLock::new(|| keywords(&NOT_APPROVED));
    static POSITIVE: LazyLock<AhoCorasick> = LazyLock::new(|| keywords(&APPROVED));
    // 拟下周汇报 / 准备请示: a report that is only planned.
    static PLANNED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(拟|准备).{0,8}(汇报|请示)").expect("a fixed, valid pattern")
    });
    let v = fold_width(value);
    if NEGATIVE.is_match(&v) || PLANNED.is_match(&v) {
        Approval::NotYet
    } else if POSITIVE.is_match(&v) {
        Approval::Approved
    } else {
        Approval::Unstated
    }
}

fn keywords(words: &[&str]) -> AhoCorasick {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(words)
        .expect("a fixed keyword list always builds")
}

/// Keywords of the mechanism's four kinds (三、联合调处工单范围); an earlier kind wins.
const CATEGORY_WORDS: [(Category, &[&str]); 3] = [
    (
        Category::UrgentPublic,
        &[
            "群体",
            "集体上访",
            "上访",
            "聚集",
            "围堵",
            "堵路",
            "安全事故",
            "安全隐患",
            "泄漏",
            "泄露",
            "重大公共利益",
            "公共利益",
            "紧急",
            "人身安全",
            "生命安全",
            "火灾",
            "爆炸",
            "坍塌",
            "中毒",
            "极端",
            "绿色通道",
        ],
    ),
    (
        Category::DissatisfiedRepeat,
        &[
            "不满意",
            "重复投诉",
            "多次投诉",
            "反复投诉",
            "反复来电",
            "多次来电",
            "重复来电",
            "再次来电",
            "屡次",
            "重复件",
        ],
    ),
    (
        Category::PolicyUnclear,
        &[
            "不明确",
            "无明确规定",
            "没有明确规定",
            "权责不清",
            "权责不明",
            "职责不清",
            "职能交叉",
            "职责交叉",
            "政策理解",
            "理解偏差",
            "法律适用",
            "政策不明",
            "规定不明",
        ],
    ),
];

/// Words that, right before a keyword, negate it (不紧急, 无安全隐患, 未发生聚集).
const NEGATORS: [&str; 8] = ["不存在", "未发生", "没有", "暂无", "不", "非", "无", "未"];

/// The category by keywords over title, measures, difficulties and the coordination text:
/// urgent_public > dissatisfied_repeat > policy_unclear > lacks_capacity (the default).
/// "第三次来电" counts as a repeat; negated keywords (不紧急, 无安全隐患) count for nothing.
pub(crate) fn category_by_keywords(text: &str) -> Category {
    static WORDS: LazyLock<(AhoCorasick, Vec<Category>)> = LazyLock::new(|| {
        let (words, kinds): (Vec<&str>, Vec<Category>) = CATEGORY_WORDS
            .iter()
            .flat_map(|(kind, words)| words.iter().map(move |w| (*w, *kind)))
            .unzip();
        (keywords(&words), kinds)
    });
    static NTH_CALL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"第([二三四五六七八九十两][一二三四五六七八九十]*|[2-9]|[1-9][0-9]+)次(来电|投诉|反映|致电|诉求)")
            .expect("a fixed, valid pattern")
    });
    let t = fold_width(text);
    let mut best = Category::LacksCapacity;
    for m in WORDS.0.find_iter(&t) {
        let kind = WORDS.1[m.pattern().as_usize()];
        if rank(kind) < rank(best) && !negated(&t[..m.start()]) {
            best = kind;
        }
    }
    if rank(Category::DissatisfiedRepeat) < rank(best) && NTH_CALL.is_match(&t) {
        best = Category::DissatisfiedRepeat;
    }
    best
}

fn rank(kind: Category) -> u8 {
    match kind {
        Category::UrgentPublic => 0,
        Category::DissatisfiedRepeat => 1,
        Category::PolicyUnclear => 2,
        Category::LacksCapacity => 3,
    }
}

fn negated(before: &str) -> bool {
    NEGATORS.iter().any(|n| before.ends_with(n))
}

/// An explicit 疑难类型 value: the kind its words name, or `None` when it names none or several.
pub(crate) fn category_field(value: &str) -> Option<Category> {
    const WORDS: [(Category, &[&str]); 4] = [
        (
            Category::UrgentPublic,
            &["紧急", "群体", "公共利益", "安全"],
        ),
        (Category::DissatisfiedRepeat, &["不满意", "重复"]),
        (
            Category::PolicyUnclear,
            &["政策", "权责", "职能交叉", "不明确", "法律", "法规"],
        ),
        (Category::LacksCapacity, &["抓手", "力量", "难度大", "缺乏"]),
    ];
    let v = fold_width(value);
    let mut found = WORDS
        .iter()
        .filter(|(_, words)| words.iter().any(|w| v.contains(w)))
        .map(|(k, _)| *k);
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// An explicit 紧急程度 value: `Some(true)` for 紧急/特急/加急/是, `Some(false)` for
/// 一般/普通/否/不紧急, `None` when it says neither or both.
pub(crate) fn urgency_field(value: &str) -> Option<bool> {
    let v = fold_width(value);
    let v = v.trim_matches(is_space);
    let no = ["不紧急", "非紧急", "不急", "一般", "普通", "常规", "否"]
        .iter()
        .any(|w| v.contains(w));
    let yes_words = ["紧急", "特急", "加急", "急"];
    let stripped = ["不紧急", "非紧急", "不急"]
        .iter()
        .fold(v.to_string(), |acc, w| acc.replace(w, ""));
    let yes = yes_words.iter().any(|w| stripped.contains(w)) || v == "是";
    match (yes, no) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// Why a 办理时限 value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadlineError {
    /// No date in it (10个工作日, 尽快).
    Unreadable,
    /// A date that does not exist (2026-02-30).
    Invalid,
    /// 12月5日 with no year, and the ticket number carries no date to take it from.
    NoYear,
}

/// The first date in a 办理时限 value: `2026-12-05`, `2026/12/5`, `2026.12.5`, `2026年12月5日`;
/// or `12月5日`, whose year is the ticket date's (the next year when that day has already passed
/// by the ticket date, as a December ticket with a January deadline).
pub(crate) fn deadline(value: &str, ticket_date: Option<Date>) -> Result<Date, DeadlineError> {
    static FULL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
            .expect("a fixed, valid pattern")
    });
    static MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]").expect("a fixed, valid pattern")
    });
    let v = fold_width(value);
    let number = |s: &str| s.parse::<i16>().map_err(|_| DeadlineError::Invalid);
    let date = |y: i16, m: i16, d: i16| {
        let m = i8::try_from(m).map_err(|_| DeadlineError::Invalid)?;
        let d = i8::try_from(d).map_err(|_| DeadlineError::Invalid)?;
        Date::new(y, m, d).map_err(|_| DeadlineError::Invalid)
    };
    if let Some(c) = FULL.captures(&v) {
        return date(number(&c[1])?, number(&c[2])?, number(&c[3])?);
    }
    let c = MONTH_DAY.captures(&v).ok_or(DeadlineError::Unreadable)?;
    let base = ticket_date.ok_or(DeadlineError::NoYear)?;
    let (m, d) = (number(&c[1])?, number(&c[2])?);
    let same_year = date(base.year(), m, d)?;
    if same_year >= base {
        Ok(same_year)
    } else {
        date(base.year() + 1, m, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn ticket_numbers() {
        assert_eq!(
            ticket_no("ｄｈ 2026 1125 0099"),
            Ok("DH202611250099".into())
        );
        assert_eq!(ticket_no("DH2026110300017。"), Ok("DH2026110300017".into()));
        assert_eq!(ticket_no("DH12345"), Err(()));
        assert_eq!(ticket_no("2026110300017"), Err(()));
        assert_eq!(ticket_no("DH2026-1103"), Err(()));
        assert_eq!(ticket_date("DH2026110300017"), Some(date(2026, 11, 3)));
        assert_eq!(ticket_date("DH9999999999"), None);
    }

    #[test]
    fn approvals() {
        assert_eq!(
            leader_approval("已向分管领导副局长王某汇报, 分管领导已同意。"),
            Approval::Approved
        );
        assert_eq!(leader_approval("尚未汇报，拟下周汇报。"), Approval::NotYet);
        assert_eq!(leader_approval("拟于明日向分管领导汇报"), Approval::NotYet);
        assert_eq!(leader_approval("分管领导不同意"), Approval::NotYet);
        assert_eq!(leader_approval("已审核"), Approval::Approved);
        assert_eq!(leader_approval("已汇报"), Approval::Unstated);
    }

    #[test]
    fn categories() {
        assert_eq!(
            category_by_keywords("诉求人已第三次来电"),
            Category::DissatisfiedRepeat
        );
        assert_eq!(
            category_by_keywords("第一次来电，情况不紧急，无安全隐患"),
            Category::LacksCapacity
        );
        assert_eq!(
            category_by_keywords("权责不清晰；购房户聚集"),
            Category::UrgentPublic
        );
        assert_eq!(
            category_by_keywords("职能交叉，诉求人不满意"),
            Category::DissatisfiedRepeat
        );
        assert_eq!(
            category_field("重复投诉工单"),
            Some(Category::DissatisfiedRepeat)
        );
        assert_eq!(category_field("其他"), None);
    }

    #[test]
    fn urgency() {
        for (v, want) in [
            ("紧急", Some(true)),
            ("是", Some(true)),
            ("特急", Some(true)),
            ("一般", Some(false)),
            ("不紧急", Some(false)),
            ("否", Some(false)),
            ("一般／紧急", None),
            ("待定", None),
        ] {
            assert_eq!(urgency_field(v), want, "{v}");
        }
    }

    #[test]
    fn deadlines() {
        let t = Some(date(2026, 11, 3));
        assert_eq!(deadline("2026-12-05", None), Ok(date(2026, 12, 5)));
        assert_eq!(deadline("2026年12月5日前办结", None), Ok(date(2026, 12, 5)));
        assert_eq!(deadline("２０２６/12/5", None), Ok(date(2026, 12, 5)));
        assert_eq!(deadline("12月5日", t), Ok(date(2026, 12, 5)));
        assert_eq!(deadline("1月5日", t), Ok(date(2027, 1, 5)));
        assert_eq!(deadline("12月5日", None), Err(DeadlineError::NoYear));
        assert_eq!(deadline("2026-02-30", None), Err(DeadlineError::Invalid));
        assert_eq!(deadline("10个工作日", t), Err(DeadlineError::Unreadable));
    }
}

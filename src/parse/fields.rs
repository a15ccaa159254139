//! Splitting pasted text into the application's fields (docs/spec.md → Parsing). Owns the label
//! variants and every layout people paste: plain or bold labels, 【】 labels, numbered labels,
//! values over several lines, several fields on one line, an `@robot` prefix, signature lines.
//!
//! Linear: each line start, each `；`/`;` and each whitespace run is tested against the labels
//! once, and that test looks at a bounded number of characters (labels are indexed by first char).

use std::collections::HashMap;
use std::sync::LazyLock;

use super::text::{is_han, is_space, strip_mentions, trim};

/// A field of the application template (seed 附件2), plus the optional ones docs/spec.md adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    TicketNo,
    Title,
    FirstUnit,
    Measures,
    Difficulties,
    Coordination,
    LeaderApproval,
    Urgency,
    Category,
    Deadline,
}

impl Field {
    /// Every field, in template order.
    pub const ALL: [Field; 10] = [
        Field::TicketNo,
        Field::Title,
        Field::FirstUnit,
        Field::Measures,
        Field::Difficulties,
        Field::Coordination,
        Field::LeaderApproval,
        Field::Urgency,
        Field::Category,
        Field::Deadline,
    ];

    /// The seven fields every application must fill (四(一): measures, units, difficulties, leader).
    pub const REQUIRED: [Field; 7] = [
        Field::TicketNo,
        Field::Title,
        Field::FirstUnit,
        Field::Measures,
        Field::Difficulties,
        Field::Coordination,
        Field::LeaderApproval,
    ];

    /// The template's Chinese label, as `missing` and every message name the field.
    pub fn label(self) -> &'static str {
        match self {
            Field::TicketNo => "工单编号",
            Field::Title => "工单标题",
            Field::FirstUnit => "首接单位",
            Field::Measures => "已采取措施",
            Field::Difficulties => "办理难点",
            Field::Coordination => "需协调部门及事由",
            Field::LeaderApproval => "请示分管领导相关情况",
            Field::Urgency => "紧急程度",
            Field::Category => "疑难类型",
            Field::Deadline => "办理时限",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Every label people write, canonical ones included. Matching tries the longest first.
const VARIANTS: &[(&str, Field)] = &[
    ("工单编号", Field::TicketNo),
    ("工单号码", Field::TicketNo),
    ("工单号", Field::TicketNo),
    ("编号", Field::TicketNo),
    ("单号", Field::TicketNo),
    ("工单标题", Field::Title),
    ("工单名称", Field::Title),
    ("诉求标题", Field::Title),
    ("标题", Field::Title),
    ("首接单位", Field::FirstUnit),
    ("首办单位", Field::FirstUnit),
    ("承办单位", Field::FirstUnit),
    ("首接部门", Field::FirstUnit),
    ("首办部门", Field::FirstUnit),
    ("承办部门", Field::FirstUnit),
    ("申请单位", Field::FirstUnit),
    ("已采取措施", Field::Measures),
    ("已采取的措施", Field::Measures),
    ("已采取的工作措施", Field::Measures),
    ("采取措施", Field::Measures),
    ("已办工作", Field::Measures),
    ("已开展工作", Field::Measures),
    ("已开展的工作", Field::Measures),
    ("办理情况", Field::Measures),
    ("办理难点", Field::Difficulties),
    ("主要难点", Field::Difficulties),
    ("难点", Field::Difficulties),
    ("需协调部门及事由", Field::Coordination),
    ("需协调的部门及事由", Field::Coordination),
    ("需协调部门及理由", Field::Coordination),
    ("需协调单位及事由", Field::Coordination),
    ("拟协调部门及事由", Field::Coordination),
    ("拟协调单位及事由", Field::Coordination),
    ("协调部门及事由", Field::Coordination),
    ("需协调部门", Field::Coordination),
    ("需协调单位", Field::Coordination),
    ("拟协调部门", Field::Coordination),
    ("拟协调单位", Field::Coordination),
    ("协调单位", Field::Coordination),
    ("协调部门", Field::Coordination),
    ("请示分管领导相关情况", Field::LeaderApproval),
    ("请示分管领导情况", Field::LeaderApproval),
    ("请示分管领导", Field::LeaderApproval),
    ("分管领导意见", Field::LeaderApproval),
    ("分管领导审核情况", Field::LeaderApproval),
    ("分管领导审批情况", Field::LeaderApproval),
    ("分管领导情况", Field::LeaderApproval),
    ("领导意见", Field::LeaderApproval),
    ("紧急程度", Field::Urgency),
    ("是否紧急", Field::Urgency),
    ("缓急程度", Field::Urgency),
    ("疑难类型", Field::Category),
    ("疑难工单类型", Field::Category),
    ("工单类型", Field::Category),
    ("工单类别", Field::Category),
    ("办理时限", Field::Deadline),
    ("办结时限", Field::Deadline),
    ("办理期限", Field::Deadline),
    ("办结期限", Field::Deadline),
    ("时限", Field::Deadline),
];

/// Every label variant with its field, for tests and documentation.
pub fn label_variants() -> impl Iterator<Item = (&'static str, Field)> {
    VARIANTS.iter().copied()
}

/// Labels indexed by first char, longest first, so a test at one position costs a hash lookup
/// and a few `starts_with`.
static LABELS: LazyLock<HashMap<char, Vec<(&'static str, Field)>>> = LazyLock::new(|| {
    let mut map: HashMap<char, Vec<(&'static str, Field)>> = HashMap::new();
    for &(label, field) in VARIANTS {
        if let Some(first) = label.chars().next() {
            map.entry(first).or_default().push((label, field));
        }
    }
    for list in map.values_mut() {
        list.sort_by_key(|(label, _)| std::cmp::Reverse(label.chars().count()));
    }
    map
});

/// Separator-free splits (a space between two fields) only trust labels this long, so a short
/// word like 难点 in running text never cuts a value.
const MIN_LABEL_CHARS_AFTER_SPACE: usize = 4;

/// The fields found in a text: every occurrence of each, in order.
#[derive(Debug, Default)]
pub struct Fields {
    occurrences: [Vec<String>; Field::ALL.len()],
}

impl Fields {
    /// Whether the label of any required field was recognised: without one, the text is not an
    /// application (a stray 时限：明天 in a chat message is not enough).
    pub fn any_required(&self) -> bool {
        Field::REQUIRED
            .iter()
            .any(|f| !self.occurrences[f.index()].is_empty())
    }

    /// The field's value: its first non-empty occurrence, trimmed; `None` when absent or empty.
    pub fn value(&self, field: Field) -> Option<&str> {
        self.occurrences[field.index()]
            .iter()
            .map(|v| trim(v))
            .find(|v| !v.is_empty())
    }

    /// Whether the field was filled twice with different content (two applications pasted together).
    pub fn conflicting(&self, field: Field) -> bool {
        let mut filled = self.occurrences[field.index()]
            .iter()
            .map(|v| trim(v))
            .filter(|v| !v.is_empty());
        match filled.next() {
            Some(first) => filled.any(|v| v != first),
            None => false,
        }
    }

    fn open(&mut self, field: Field) -> (Field, usize) {
        let list = &mut self.occurrences[field.index()];
        list.push(String::new());
        (field, list.len() - 1)
    }

    fn push(&mut self, at: Option<(Field, usize)>, text: &str) {
        if let Some((field, n)) = at {
            self.occurrences[field.index()][n].push_str(text);
        }
    }
}

/// Splits `text` into fields. Text before the first label is ignored; a line that starts no
/// label continues the current value; a signature line (联系人：…) ends it.
pub fn segment(text: &str) -> Fields {
    let mut fields = Fields::default();
    let mut current: Option<(Field, usize)> = None;
    for raw in text.split('\n') {
        let line = strip_mentions(raw.strip_suffix('\r').unwrap_or(raw));
        let rest = if let Some((field, offset)) = field_start(line, 1) {
            current = Some(fields.open(field));
            &line[offset..]
        } else if is_signature(line) {
            current = None;
            continue;
        } else {
            fields.push(current, "\n");
            line
        };
        // Indentation and trailing blanks of pasted lines are layout, not content.
        split_line(trim(rest), &mut fields, &mut current);
    }
    fields
}

/// Appends one line's value to the current field, opening a new field wherever a separator
/// (`；`, `;`, or a space before a long label) is followed by a label and its colon.
fn split_line(mut rest: &str, fields: &mut Fields, current: &mut Option<(Field, usize)>) {
    let mut from = 0;
    let mut prev_space = true;
    while let Some((i, c)) = rest[from..]
        .char_indices()
        .next()
        .map(|(i, c)| (i + from, c))
    {
        let after = i + c.len_utf8();
        let start = match c {
            '；' | ';' => field_start(&rest[after..], 1),
            c if is_space(c) && !prev_space => {
                field_start(&rest[after..], MIN_LABEL_CHARS_AFTER_SPACE)
            }
            _ => None,
        };
        prev_space = is_space(c);
        match start {
            Some((field, offset)) => {
                fields.push(*current, &rest[..i]);
                *current = Some(fields.open(field));
                rest = &rest[after + offset..];
                from = 0;
                prev_space = true;
            }
            None => from = after,
        }
    }
    fields.push(*current, rest);
}

/// Byte length of a list marker (`1.`, `1、`, `（一）`, `一、`, `①`, `-`, `#`) and the spaces
/// around it at the start of `s`; 0 when there is none.
fn list_marker_len(s: &str) -> usize {
    let lead = s.len() - s.trim_start_matches(is_space).len();
    let t = &s[lead..];
    let mut chars = t.char_indices().peekable();
    let Some(&(_, first)) = chars.peek() else {
        return lead;
    };
    let is_digit = |c: char| c.is_ascii_digit() || ('０'..='９').contains(&c);
    let is_numeral = |c: char| "一二三四五六七八九十".contains(c);
    let end = if is_digit(first) || is_numeral(first) {
        let digits = first.is_ascii_digit() || ('０'..='９').contains(&first);
        let mut n = 0;
        while let Some(&(_, c)) = chars.peek() {
            if (digits && is_digit(c)) || (!digits && is_numeral(c)) {
                n += 1;
                chars.next();
                if n > 3 {
                    return lead;
                }
            } else {
                break;
            }
        }
        match chars.next() {
            Some((i, c @ ('.' | '、' | '．' | ')' | '）'))) if digits || c != ')' && c != '）' => {
                i + c.len_utf8()
            }
            _ => return lead,
        }
    } else if first == '(' || first == '（' {
        chars.next();
        let mut n = 0;
        while let Some(&(_, c)) = chars.peek() {
            if is_digit(c) || is_numeral(c) {
                n += 1;
                chars.next();
            } else {
                break;
            }
        }
        match chars.next() {
            Some((i, c @ (')' | '）'))) if (1..=3).contains(&n) => i + c.len_utf8(),
            _ => return lead,
        }
    } else if ('①'..='⑳').contains(&first) || "-•·●▪◆■>".contains(first) {
        first.len_utf8()
    } else if first == '*' && !t.starts_with("**") {
        1
    } else if first == '#' {
        t.len() - t.trim_start_matches('#').len()
    } else {
        return lead;
    };
    let after = &t[end..];
    lead + end + (after.len() - after.trim_start_matches(is_space).len())
}

/// Spaces and tabs inside a line.
fn skip_inline_space(s: &str, mut i: usize) -> (usize, bool) {
    let mut tab = false;
    while let Some(c) = s[i..].chars().next() {
        if !is_space(c) {
            break;
        }
        tab |= c == '\t';
        i += c.len_utf8();
    }
    (i, tab)
}

/// If a label starts `s` (after a list marker, bold `**` or an opening 【), the field and the
/// byte offset where its value begins. The label must be closed: by a colon (full-width or ASCII,
/// bold markers around it allowed), by 】 (colon optional), or by a tab. A short note in
/// brackets may sit between label and colon: `工单编号（必填）：`.
fn field_start(s: &str, min_label_chars: usize) -> Option<(Field, usize)> {
    let mut i = list_marker_len(s);
    let bold = s[i..].starts_with("**");
    if bold {
        i = skip_inline_space(s, i + 2).0;
    }
    let open = s[i..].chars().next()?;
    let close = match open {
        '【' => Some('】'),
        '[' => Some(']'),
        '〔' => Some('〕'),
        _ => None,
    };
    if close.is_some() {
        i = skip_inline_space(s, i + open.len_utf8()).0;
    }
    let first = s[i..].chars().next()?;
    let candidates = LABELS.get(&first)?;
    for &(label, field) in candidates {
        if label.chars().count() < min_label_chars || !s[i..].starts_with(label) {
            continue;
        }
        if let Some(end) = label_end(s, i + label.len(), close, bold) {
            return Some((field, end));
        }
    }
    None
}

/// Where the value begins after a label ending at `i`, or `None` when the label is not closed.
fn label_end(s: &str, i: usize, close: Option<char>, bold: bool) -> Option<usize> {
    let (mut i, mut tab) = skip_inline_space(s, i);
    if let Some(open) = s[i..].chars().next().filter(|c| *c == '（' || *c == '(') {
        let shut = if open == '（' { '）' } else { ')' };
        let note = &s[i + open.len_utf8()..];
        let end = note.char_indices().take(20).find(|&(_, c)| c == shut)?.0;
        (i, tab) = skip_inline_space(s, i + open.len_utf8() + end + shut.len_utf8());
    }
    let colon = |s: &str, i: usize| s[i..].chars().next().filter(|c| *c == ':' || *c == '：');
    if let Some(close) = close {
        let c = s[i..].chars().next().filter(|c| *c == close)?;
        i = skip_inline_space(s, i + c.len_utf8()).0;
        if s[i..].starts_with("**") {
            i = skip_inline_space(s, i + 2).0;
        }
        if let Some(c) = colon(s, i) {
            i = skip_inline_space(s, i + c.len_utf8()).0;
        }
        return Some(i);
    }
    let mut closed_bold = false;
    if bold && s[i..].starts_with("**") {
        (i, tab) = skip_inline_space(s, i + 2);
        closed_bold = true;
    }
    if let Some(c) = colon(s, i) {
        i = skip_inline_space(s, i + c.len_utf8()).0;
        if bold && !closed_bold && s[i..].starts_with("**") {
            i = skip_inline_space(s, i + 2).0;
        }
        return Some(i);
    }
    tab.then_some(i)
}

/// A signature or contact line after the fields: an unknown short label and a colon whose label
/// names a person, a contact or a date (联系人：, 联系电话：, 报送人：, 填报日期：).
fn is_signature(line: &str) -> bool {
    const SUFFIXES: [&str; 17] = [
        "人",
        "员",
        "电话",
        "手机",
        "手机号",
        "号码",
        "日期",
        "时间",
        "邮箱",
        "微信",
        "钉钉",
        "方式",
        "签名",
        "落款",
        "单位",
        "职务",
        "姓名",
    ];
    let t = &line[list_marker_len(line)..];
    let Some((label, _)) = t.split_once([':', '：']) else {
        return false;
    };
    let label = trim(label);
    let n = label.chars().count();
    (2..=8).contains(&n) && label.chars().all(is_han) && SUFFIXES.iter().any(|s| label.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<(Field, String)> {
        let f = segment(text);
        Field::ALL
            .iter()
            .filter_map(|&k| f.value(k).map(|v| (k, v.to_string())))
            .collect()
    }

    #[test]
    fn label_forms() {
        for line in [
            "工单编号：A",
            "工单编号:A",
            "**工单编号:** A",
            "**工单编号：**A",
            "** 工单编号 ** ： A",
            "**工单编号**：A",
            "【工单编号】A",
            "【工单编号】：A",
            "[工单编号] A",
            "1. 工单编号：A",
            "1、工单编号：A",
            "一、工单编号：A",
            "（一）工单编号：A",
            "(1) 工单编号：A",
            "① 工单编号：A",
            "- 工单编号：A",
            "### 工单编号：A",
            "工单编号（必填）：A",
            "工单编号\tA",
            "\t工单编号 ：\tA",
            "@联合调处助手 工单编号：A",
            "@联合调处助手\u{2005}工单编号：A",
        ] {
            assert_eq!(
                fields(line),
                vec![(Field::TicketNo, "A".to_string())],
                "{line}"
            );
        }
    }

    #[test]
    fn unclosed_labels_are_text() {
        assert!(!segment("工单编号 A").any_required());
        assert!(!segment("编号码：A").any_required());
        assert!(!segment("十分紧急：A").any_required());
        assert!(!segment("时限：明天").any_required());
    }

    #[test]
    fn fields_on_one_line_split_only_before_labels() {
        let got = fields("工单编号：A；工单标题：B；C；D;办理难点:E 需协调部门及事由：F 难点：G");
        assert_eq!(
            got,
            vec![
                (Field::TicketNo, "A".into()),
                (Field::Title, "B；C；D".into()),
                (Field::Difficulties, "E".into()),
                (Field::Coordination, "F 难点：G".into()),
            ]
        );
    }

    #[test]
    fn multiline_values_and_signatures() {
        let got = fields(
            "您好：\n已采取措施：\n1. 甲；\n2. 乙\n\n办理难点：丙\n联系人：张三\n13800000000\n备注：丁",
        );
        assert_eq!(
            got,
            vec![
                (Field::Measures, "1. 甲；\n2. 乙".into()),
                (Field::Difficulties, "丙".into())
            ]
        );
        let got = fields("办理难点：丙\n区住建局：负责维修\n注：见附件");
        assert_eq!(
            got,
            vec![(
                Field::Difficulties,
                "丙\n区住建局：负责维修\n注：见附件".into()
            )]
        );
    }

    #[test]
    fn crlf_and_conflicts() {
        let f = segment("工单编号：A\r\n工单标题：B\r\n工单编号：A\r\n");
        assert_eq!(f.value(Field::Title), Some("B"));
        assert!(!f.conflicting(Field::TicketNo));
        let f = segment("工单编号：A\n工单编号：C\n");
        assert!(f.conflicting(Field::TicketNo));
        assert_eq!(f.value(Field::TicketNo), Some("A"));
    }

    #[test]
    fn every_variant_is_recognised() {
        for (label, field) in label_variants() {
            assert_eq!(
                fields(&format!("{label}：值")),
                vec![(field, "值".to_string())],
                "{label}"
            );
        }
    }
}

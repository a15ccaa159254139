//! Integration tests: the application parser through its public API. Every case in
//! `tests/fixtures/applications/` (compared as `/work/shared/tools/check-parse-cases` does: only
//! the keys listed, `requested_units` and `missing` as sets), the layouts people paste, the
//! unit rules, property tests for robustness and invariants, and linear time on large input.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::Value;
use tiaochu::parse::{
    Application, Category, Field, UnitMatcher, label_variants, normalize_ticket_no,
    parse_application,
};

static MATCHER: LazyLock<UnitMatcher> =
    LazyLock::new(|| UnitMatcher::new(&crate::support::shipped_roster()));

fn parse(text: &str) -> Application {
    parse_application(text, &MATCHER)
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/applications")
}

/// Every fixture as (name, text), sorted by name.
fn fixtures() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(cases_dir())
        .expect("fixtures folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (stem, std::fs::read_to_string(&p).expect("fixture text"))
        })
        .collect();
    out.sort();
    out
}

fn fixture(name_prefix: &str) -> String {
    fixtures()
        .into_iter()
        .find(|(name, _)| name.starts_with(name_prefix))
        .map(|(_, text)| text)
        .expect("fixture exists")
}

/// The comparison of check-parse-cases: only listed keys; requested_units and missing as sets.
fn differences(got: &Value, expect: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(expect) = expect.as_object() else {
        return vec!["expect file is not an object".into()];
    };
    for (key, want) in expect {
        let have = got
            .get(key)
            .cloned()
            .unwrap_or(Value::String("<absent>".into()));
        let same = if key == "requested_units" || key == "missing" {
            let set = |v: &Value| -> Option<HashSet<String>> {
                v.as_array()
                    .map(|a| a.iter().map(|x| x.to_string()).collect())
            };
            set(&have).is_some() && set(&have) == set(want)
        } else {
            &have == want
        };
        if !same {
            problems.push(format!("{key}: got {have}, expected {want}"));
        }
    }
    problems
}

#[test]
fn every_fixture_matches_its_expectation() {
    let cases = fixtures();
    assert!(cases.len() >= 20, "only {} fixtures found", cases.len());
    let mut failures = Vec::new();
    for (name, text) in &cases {
        let expect_path = cases_dir().join(format!("{name}.expect.json"));
        let expect: Value =
            serde_json::from_str(&std::fs::read_to_string(&expect_path).expect("expect file"))
                .expect("expect json");
        let got = serde_json::to_value(parse(text)).expect("serialises");
        let problems = differences(&got, &expect);
        if !problems.is_empty() {
            failures.push(format!("FAIL {name}\n    {}", problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn json_has_exactly_the_contract_keys() {
    let got = serde_json::to_value(parse(&fixture("001"))).expect("serialises");
    let keys: HashSet<&str> = got
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let want: HashSet<&str> = [
        "ok",
        "ticket_no",
        "title",
        "first_unit",
        "measures_taken",
        "difficulties",
        "coordination",
        "requested_units",
        "unresolved_mentions",
        "city_level",
        "leader_approval",
        "leader_approved",
        "urgent",
        "category",
        "deadline",
        "missing",
        "errors",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, want);
    assert_eq!(got["deadline"], Value::Null);
    assert_eq!(got["category"], "lacks_capacity");
}

#[test]
fn ticket_numbers_are_normalised() {
    assert_eq!(
        normalize_ticket_no("ｄｈ 2026 1125 0099").as_deref(),
        Some("DH202611250099")
    );
    assert_eq!(
        normalize_ticket_no("dh2026110300017。").as_deref(),
        Some("DH2026110300017")
    );
    assert_eq!(normalize_ticket_no("DH12345"), None);
    assert_eq!(normalize_ticket_no("DH123456789012345678901"), None);
    let bad = parse(&fixture("002").replace("DH2026111200421", "DH2026-1112"));
    assert_eq!(bad.ticket_no, None);
    assert!(
        bad.errors
            .iter()
            .any(|e| e.contains("工单编号“DH2026-1112”格式不正确")),
        "{:?}",
        bad.errors
    );
}

#[test]
fn crlf_and_tabs_change_nothing() {
    for (name, text) in fixtures() {
        let variant: String = text
            .lines()
            .map(|l| format!("\t{}\t", l.replacen('：', "：\t", 1)))
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_eq!(parse(&variant), parse(&text), "{name}");
    }
}

#[test]
fn at_mention_prefix_is_dropped() {
    let text = fixture("002");
    let base = parse(&text);
    assert!(base.ok);
    for prefix in [
        "@联合调处助手 ",
        "@联合调处助手\u{2005}",
        "＠机器人 @联合调处助手  ",
    ] {
        assert_eq!(parse(&format!("{prefix}{text}")), base, "{prefix}");
    }
}

#[test]
fn signature_lines_end_the_last_field() {
    let text = fixture("002");
    let base = parse(&text);
    let signed = format!(
        "{text}\n\n联系人：张三\n联系电话：0936-8685841\n13800000000\n报送人：李四\n填报日期：2026年11月12日"
    );
    let got = parse(&signed);
    assert_eq!(got, base);
    assert_eq!(
        got.leader_approval,
        "已向分管副局长汇报，同意发起联合调处。"
    );
}

#[test]
fn city_bureau_is_not_the_district_bureau() {
    let with = |coordination: &str| {
        parse(&format!(
            "工单编号：DH2026112600310\n工单标题：反映客运班线停运的问题\n首接单位：区住建局\n已采取措施：已联系企业。\n\
             办理难点：需上级协调。\n需协调部门及事由：{coordination}\n请示分管领导相关情况：已同意。"
        ))
    };
    let city = with("需市交通运输局统筹协调。");
    assert!(city.city_level);
    assert!(city.requested_units.is_empty());
    assert_eq!(city.unresolved_mentions, ["市交通运输局"]);
    assert!(city.ok, "{:?}", city.errors);

    let district = with("请区交通运输局配合。");
    assert!(!district.city_level);
    assert_eq!(district.requested_units, ["区交通运输局"]);
    assert!(district.unresolved_mentions.is_empty());

    let county = with("临泽县交通运输局、市场监管局配合。");
    assert!(county.city_level);
    assert_eq!(county.requested_units, ["区市场监管局"]);
    assert_eq!(county.unresolved_mentions, ["临泽县交通运输局"]);

    let members = with("市公安局甘州分局、市生态环境局甘州分局配合。");
    assert!(!members.city_level);
    assert_eq!(
        members.requested_units,
        ["市公安局甘州分局", "市生态环境局甘州分局"]
    );

    let city_hotline = with("请市12345热线协调。");
    assert!(city_hotline.city_level);
    assert!(city_hotline.requested_units.is_empty());

    let nobody = with("请协助办理。");
    assert!(!nobody.ok);
    assert!(
        nobody
            .errors
            .iter()
            .any(|e| e.contains("没有写明需协调的单位")),
        "{:?}",
        nobody.errors
    );
}

#[test]
fn unknown_first_unit_gets_suggestions() {
    let app = parse(&fixture("014"));
    assert!(!app.ok);
    assert_eq!(app.first_unit, None);
    let error = app
        .errors
        .iter()
        .find(|e| e.contains("首接单位"))
        .expect("first unit error");
    assert!(
        error.contains("首接单位“区特种设备检测所”不在成员单位名单中"),
        "{error}"
    );
    assert!(error.contains("您是否指：区市场监管局"), "{error}");

    let typo = parse(&fixture("002").replace("首接单位：区住建局", "首接单位：区住建委"));
    assert!(
        typo.errors
            .iter()
            .any(|e| e.contains("您是否指：区住建局？")),
        "{:?}",
        typo.errors
    );

    let hotline = parse(&fixture("002").replace("首接单位：区住建局", "首接单位：区12345热线"));
    assert!(
        hotline.errors.iter().any(|e| e.contains("不能是热线平台")),
        "{:?}",
        hotline.errors
    );
}

#[test]
fn unfilled_template_is_named_field_by_field() {
    let app = parse(&fixture("009"));
    assert!(!app.ok);
    assert_eq!(app.ticket_no, None);
    assert!(app.missing.is_empty());
    assert!(
        app.errors
            .contains(&"工单编号仍是模板占位符“DH*****”，请填写真实工单编号".to_string()),
        "{:?}",
        app.errors
    );
    for label in ["工单标题", "已采取措施", "请示分管领导相关情况"] {
        assert!(
            app.errors
                .iter()
                .any(|e| e.contains(label) && e.contains("占位符")),
            "{label}: {:?}",
            app.errors
        );
    }
    let full_width = parse(&fixture("002").replace("DH2026111200421", "DH＊＊＊＊＊"));
    assert!(!full_width.ok);
    assert!(
        full_width
            .errors
            .iter()
            .any(|e| e.starts_with("工单编号仍是模板占位符"))
    );
}

/// The seven required fields written with a given label for one field.
fn application_with_label(field: Field, label: &str) -> String {
    [
        (Field::TicketNo, "DH2026112500501"),
        (Field::Title, "反映某学校周边交通拥堵的问题"),
        (Field::FirstUnit, "区教育局"),
        (Field::Measures, "已排查培训机构办学资质。"),
        (Field::Difficulties, "查处涉及多部门职能交叉。"),
        (Field::Coordination, "区市场监管局、区交通运输局配合。"),
        (Field::LeaderApproval, "分管副局长已同意。"),
        (Field::Urgency, "紧急"),
        (Field::Category, "重复投诉工单"),
        (Field::Deadline, "2026年12月5日"),
    ]
    .iter()
    .map(|(f, v)| format!("{}：{v}", if *f == field { label } else { f.label() }))
    .collect::<Vec<_>>()
    .join("\n")
}

#[test]
fn every_label_variant_reads_like_the_canonical_label() {
    let base = parse(&application_with_label(Field::TicketNo, "工单编号"));
    assert!(base.ok, "{:?}", base.errors);
    assert!(base.urgent);
    assert_eq!(base.category, Category::DissatisfiedRepeat);
    assert_eq!(
        base.deadline.map(|d| d.to_string()).as_deref(),
        Some("2026-12-05")
    );
    for (label, field) in label_variants() {
        assert_eq!(
            parse(&application_with_label(field, label)),
            base,
            "{label}"
        );
        let bold = application_with_label(field, &format!("**{label}**"));
        assert_eq!(parse(&bold), base, "**{label}**");
    }
}

#[test]
fn layouts_people_paste() {
    let base = parse(&fixture("002"));
    let text = fixture("002");
    let numbered: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{}. {l}\n", i + 1))
        .collect();
    assert_eq!(parse(&numbered), base);
    let chinese_numbered: String = text
        .lines()
        .zip(["一", "二", "三", "四", "五", "六", "七"])
        .map(|(l, n)| format!("（{n}）{l}\n"))
        .collect();
    assert_eq!(parse(&chinese_numbered), base);
    let brackets: String = text
        .lines()
        .map(|l| {
            let (label, value) = l.split_once('：').expect("label line");
            format!("【{label}】{value}\n")
        })
        .collect();
    assert_eq!(parse(&brackets), base);
    let ascii = text.replace('：', ": ");
    assert_eq!(parse(&ascii), base);
    let one_line = text.trim_end().replace('\n', "；");
    assert_eq!(parse(&one_line), base);
    let preamble = format!("各位好，申请如下：\n{text}");
    assert_eq!(parse(&preamble), base);
}

#[test]
fn leader_approval_must_be_stated_and_positive() {
    let with =
        |v: &str| parse(&fixture("002").replace("已向分管副局长汇报，同意发起联合调处。", v));
    let not_yet = parse(&fixture("010"));
    assert!(!not_yet.leader_approved);
    assert!(
        not_yet
            .errors
            .iter()
            .any(|e| e.starts_with("分管领导尚未同意：机制要求经分管领导同意后再发起申请"))
    );
    for v in [
        "分管领导不同意。",
        "暂未请示。",
        "待汇报",
        "拟明日向分管领导汇报",
    ] {
        let app = with(v);
        assert!(!app.ok && !app.leader_approved, "{v}");
    }
    let unstated = with("已汇报。");
    assert!(!unstated.ok && !unstated.leader_approved);
    assert!(
        unstated
            .errors
            .iter()
            .any(|e| e.contains("没有写明分管领导是否同意")),
        "{:?}",
        unstated.errors
    );
    for v in ["已批准", "已审核", "领导同意"] {
        assert!(with(v).ok, "{v}");
    }
}

#[test]
fn urgency_category_and_deadline_fields() {
    let text = fixture("002");
    let with = |extra: &str| parse(&format!("{text}\n{extra}"));
    let urgent = parse(&fixture("006"));
    assert!(urgent.urgent && urgent.category == Category::UrgentPublic);
    let overridden = parse(&format!("{}\n紧急程度：一般", fixture("006")));
    assert!(!overridden.urgent);
    assert_eq!(overridden.category, Category::UrgentPublic);
    assert!(with("是否紧急：是").urgent);
    assert_eq!(
        with("疑难类型：政策不明确").category,
        Category::PolicyUnclear
    );
    let unknown_kind = with("疑难类型：其他");
    assert!(
        !unknown_kind.ok
            && unknown_kind
                .errors
                .iter()
                .any(|e| e.contains("疑难类型“其他”无法识别"))
    );
    assert_eq!(
        with("办理时限：2026/12/5")
            .deadline
            .map(|d| d.to_string())
            .as_deref(),
        Some("2026-12-05")
    );
    assert_eq!(
        with("办结时限：1月10日前")
            .deadline
            .map(|d| d.to_string())
            .as_deref(),
        Some("2027-01-10")
    );
    let bad = with("办理时限：尽快");
    assert!(
        !bad.ok
            && bad
                .errors
                .iter()
                .any(|e| e.contains("办理时限“尽快”无法识别"))
    );
    let calm = parse(&text.replace("办理难点：", "办理难点：情况不紧急，无安全隐患。"));
    assert!(!calm.urgent);
}

#[test]
fn not_an_application() {
    let app = parse(&fixture("019"));
    assert!(!app.ok);
    assert_eq!(app.missing.len(), 7);
    assert!(
        app.errors.iter().any(|e| e.contains("模板")),
        "{:?}",
        app.errors
    );
    assert!(!parse("").ok);
}

#[test]
fn two_applications_pasted_together_are_refused() {
    let app = parse(&format!("{}\n{}", fixture("002"), fixture("003")));
    assert!(!app.ok);
    assert!(
        app.errors
            .iter()
            .any(|e| e.contains("“工单编号”填写了两处")),
        "{:?}",
        app.errors
    );
}

/// Invariants every parse keeps, whatever the input.
fn check_invariants(app: &Application) -> Result<(), TestCaseError> {
    if let Some(first) = &app.first_unit {
        prop_assert!(
            !app.requested_units.contains(first),
            "first unit requested: {app:?}"
        );
    }
    let unique = |v: &[String]| v.iter().collect::<HashSet<_>>().len() == v.len();
    prop_assert!(
        unique(&app.requested_units),
        "duplicate units: {:?}",
        app.requested_units
    );
    prop_assert!(
        unique(&app.unresolved_mentions),
        "duplicate mentions: {:?}",
        app.unresolved_mentions
    );
    prop_assert!(unique(&app.missing), "duplicate missing: {:?}", app.missing);
    let required: Vec<&str> = Field::REQUIRED.iter().map(|f| f.label()).collect();
    prop_assert!(app.missing.iter().all(|m| required.contains(&m.as_str())));
    if app.ok {
        prop_assert!(
            app.missing.is_empty() && app.errors.is_empty(),
            "ok with problems: {app:?}"
        );
        prop_assert!(app.ticket_no.is_some() && app.first_unit.is_some() && app.leader_approved);
    }
    if let Some(t) = &app.ticket_no {
        prop_assert!(
            t.starts_with("DH") && t[2..].bytes().all(|b| b.is_ascii_digit()),
            "{t}"
        );
    }
    Ok(())
}

/// Pieces that stress the parser: labels in every form, separators, units, placeholders.
fn noise() -> impl Strategy<Value = String> {
    let mut pieces: Vec<String> = label_variants().map(|(l, _)| l.to_string()).collect();
    pieces.extend(
        [
            "：",
            ":",
            "；",
            ";",
            "\n",
            "\r\n",
            "\t",
            " ",
            "**",
            "【",
            "】",
            "（",
            "）",
            "1.",
            "一、",
            "@",
            "＠机器人 ",
            "DH",
            "DH*****",
            "***",
            "XXX",
            "市",
            "县",
            "省",
            "临泽县",
            "市交通运输局",
            "区住建局",
            "市场监管局",
            "国企",
            "相关部门",
            "同意",
            "不同意",
            "尚未",
            "紧急",
            "不紧急",
            "第三次来电",
            "2026-13-45",
            "12月5日",
            "联系人：",
            "\u{FEFF}",
            "\u{2005}",
            "ｄｈ１２",
        ]
        .map(String::from),
    );
    prop_oneof![
        4 => proptest::sample::select(pieces),
        1 => any::<String>(),
        1 => any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        check_invariants(&parse(&text))?;
    }

    #[test]
    fn never_panics_on_label_soup(parts in proptest::collection::vec(noise(), 0..60)) {
        check_invariants(&parse(&parts.concat()))?;
    }

    #[test]
    fn never_panics_on_mutated_fixtures(
        which in 0usize..20,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), noise()), 1..12),
    ) {
        let cases = fixtures();
        let mut text = cases[which % cases.len()].1.clone();
        for (at, insert) in edits {
            let boundaries: Vec<usize> =
                text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len())).collect();
            let pos = boundaries[at.index(boundaries.len())];
            text.insert_str(pos, &insert);
        }
        check_invariants(&parse(&text))?;
    }
}

/// About `bytes` of input made of fixtures and label noise: many fields, separators, scope
/// characters, unclosed notes, mentions and placeholders, so every scanner gets work.
fn large_input(bytes: usize) -> String {
    let cases = fixtures();
    let noise = [
        "；工单编；需协调部门及事由（未闭合；【办理难点 无冒号 ",
        "市市县省临泽县市级部门相关部门国企属地 ",
        "@a @b ＠c 1. 2、（一）### - ",
        "需协调部门及事由：区住建局、市场监管局、公安分局、临泽县交通运输局、具体国企；",
        "拟拟拟拟汇报同意不同意第三次来电紧急不紧急XXX***",
        "                                ",
    ];
    let mut out = String::with_capacity(bytes + 4096);
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&cases[i % cases.len()].1);
        out.push('\n');
        out.push_str(noise[i % noise.len()]);
        out.push_str(noise[(i + 3) % noise.len()]);
        if i % 7 == 0 {
            out.push('\n');
        }
        i += 1;
    }
    out
}

/// The fastest parse of `small` and of `large`, measured alternately so that load from tests
/// running in parallel hits both alike.
fn fastest_pair(small: &str, large: &str, rounds: usize) -> (Duration, Duration) {
    let time = |text: &str| {
        let start = Instant::now();
        let app = parse(text);
        let elapsed = start.elapsed();
        assert!(
            !app.errors.is_empty(),
            "noise parsed as a valid application"
        );
        elapsed
    };
    let (mut best_small, mut best_large) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        best_small = best_small.min(time(small));
        best_large = best_large.min(time(large));
        best_small = best_small.min(time(small));
    }
    (best_small.max(Duration::from_micros(100)), best_large)
}

#[test]
fn parsing_is_linear_in_the_input() {
    // 30× for 10× the input is generous for linear work and far below what a quadratic scan
    // (100×) would take; the fastest of alternating runs filters out scheduling noise.
    let (small, large) = fastest_pair(&large_input(100 * 1024), &large_input(1024 * 1024), 3);
    assert!(large < small * 30, "100 KB: {small:?}, 1 MB: {large:?}");
    eprintln!("fixtures and noise: 100 KB {small:?}, 1 MB {large:?}");
    // One line with no newline at all: every separator is tested against the labels.
    let piece = "；工单编号（ 市";
    let (small, large) = fastest_pair(&piece.repeat(5_000), &piece.repeat(50_000), 3);
    assert!(
        large < small * 30,
        "one line of 100 KB: {small:?}, 1 MB: {large:?}"
    );
    eprintln!("one line: 100 KB {small:?}, 1 MB {large:?}");
}

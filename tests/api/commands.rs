//! The chat-command parser through its public API, with the shipped roster: every command of
//! docs/spec.md → Text commands in its canonical form and in sloppy forms, every malformed form answered
//! with a Chinese error that shows the correct form, and texts that are not commands.
//!
//! Chit-chat ("你好") and applications are not commands: `parse_command` returns `None`, the caller
//! tries the text as an application, and a text that is neither gets the help reply.

use std::sync::LazyLock;

use proptest::prelude::*;

use tiaochu::parse::UnitMatcher;
use tiaochu::parse::command::{
    COMMANDS, Command, CommandError, UnitAnswer, Verb, parse_command, syntax,
};
use tiaochu::workflow::{CoordinationAsk, HelpItem, Input, SatisfactionLevel};

const T: &str = "DH2026110300017";

static UNITS: LazyLock<UnitMatcher> =
    LazyLock::new(|| UnitMatcher::new(&crate::support::shipped_roster()));

fn parse(text: &str) -> Option<Result<Command, CommandError>> {
    parse_command(text, &UNITS)
}

fn ok(text: &str) -> Command {
    match parse(text) {
        Some(Ok(c)) => c,
        other => panic!("{text:?} → {other:?}"),
    }
}

fn act(text: &str) -> Input {
    match ok(text) {
        Command::Act { ticket_no, input } => {
            assert_eq!(ticket_no, T, "{text}");
            input
        }
        other => panic!("{text:?} → {other:?}"),
    }
}

/// The unit answer (接受 / 异议) `text` parses to, for ticket `T`.
fn answer(text: &str) -> UnitAnswer {
    match ok(text) {
        Command::Answer { ticket_no, answer } => {
            assert_eq!(ticket_no, T, "{text}");
            answer
        }
        other => panic!("{text:?} → {other:?}"),
    }
}

/// The error for `text`, which must name `problem` and show the form of `verb` with its example.
fn err(text: &str, verb: Verb, problem: &str) -> String {
    let message = match parse(text) {
        Some(Err(e)) => e.message,
        other => panic!("{text:?} → {other:?}"),
    };
    let s = syntax(verb);
    assert!(message.contains(problem), "{text:?}: {message}");
    assert!(message.contains(s.form), "{text:?}: {message}");
    assert!(message.contains(s.example), "{text:?}: {message}");
    message
}

fn asks(pairs: &[(&str, &str)]) -> Input {
    Input::DecideJoint {
        units: pairs
            .iter()
            .map(|(u, d)| CoordinationAsk {
                unit: crate::support::unit_named(u),
                direction: d.to_string(),
            })
            .collect(),
    }
}

#[test]
fn help_template_and_stats() {
    for text in ["帮助", "@调处助手 帮助", "帮助？", " 帮助 ", "命令"] {
        assert_eq!(ok(text), Command::Help, "{text}");
    }
    assert_eq!(ok("模板"), Command::Template);
    assert_eq!(ok("@调处助手\u{3000}模板"), Command::Template);
    assert_eq!(ok("统计"), Command::Stats { month: None });
    for text in [
        "统计 2026-11",
        "统计 ２０２６－１１",
        "统计2026年11月",
        "统计 2026/11",
        "统计 2026.11",
    ] {
        assert_eq!(
            ok(text),
            Command::Stats {
                month: Some((2026, 11))
            },
            "{text}"
        );
    }
    err("统计 11月", Verb::Stats, "月份“11月”无法识别");
    err("统计 2026-13", Verb::Stats, "无法识别");
}

#[test]
fn ticket_numbers_are_read_like_the_application_parser() {
    for text in [
        "查询 DH2026110300017",
        "查询 dh2026110300017",
        "查询DH2026110300017",
        "查询 ＤＨ２０２６１１０３０００１７",
        "查询　 DH 2026 1103 00017 ",
        "查询 工单编号：DH2026110300017",
        "@调处助手 查询 dh2026110300017。",
    ] {
        assert_eq!(
            ok(text),
            Command::Query {
                ticket_no: crate::support::ticket_no(T)
            },
            "{text}"
        );
    }
    assert_eq!(act("审核 DH2026110300017"), Input::Claim);
    assert_eq!(act("开始审核 dh2026110300017"), Input::Claim);
    err("审核", Verb::Claim, "缺少工单编号");
    err("审核 2026110300017", Verb::Claim, "应以“DH”开头");
    err("审核 DH123", Verb::Claim, "格式不正确");
    err("审核 ＤＨ", Verb::Claim, "格式不正确");
    err("审核 ＤＨ号码", Verb::Claim, "格式不正确");
    err("查询 DH2026110300017abc", Verb::Query, "格式不正确");
}

#[test]
fn joint_decision_resolves_units_through_aliases() {
    let expected = asks(&[
        ("区住建局", "核查施工许可"),
        ("区城市管理局", "现场核查占道"),
    ]);
    for text in [
        "联合 DH2026110300017 区住建局：核查施工许可；区城市管理局：现场核查占道",
        "联合 dh2026110300017 住建局:核查施工许可;城管局:现场核查占道",
        "@调处助手 联合　DH2026110300017\n区住建局：核查施工许可\n城管：现场核查占道；",
        "联合调处 DH2026110300017 区住房和城乡建设局 核查施工许可；区城管局 现场核查占道",
    ] {
        assert_eq!(act(text), expected, "{text}");
    }
    // Several units sharing one direction.
    assert_eq!(
        act("联合 DH2026110300017 区住建局、区城市管理局：联合现场核查"),
        asks(&[
            ("区住建局", "联合现场核查"),
            ("区城市管理局", "联合现场核查")
        ])
    );
    err("联合 DH2026110300017", Verb::Joint, "缺少配合单位");
    err(
        "联合 DH2026110300017 区住建局；区城市管理局：现场核查",
        Verb::Joint,
        "区住建局没有写协同方向及重点",
    );
    let unknown = err(
        "联合 DH2026110300017 区住房局：核查",
        Verb::Joint,
        "不在成员单位名单中",
    );
    assert!(unknown.contains("区住建局"), "suggestion: {unknown}");
    err(
        "联合 DH2026110300017 区住建局：核查；住建局：再核查",
        Verb::Joint,
        "区住建局写了两次",
    );
    err(
        "联合 DH2026110300017 市交通运输局：线路审批",
        Verb::Joint,
        "“市级”命令",
    );
}

#[test]
fn free_text_decisions() {
    assert_eq!(
        act("独立 DH2026110300017 依据《保障农民工工资支付条例》责令限期支付"),
        Input::DecideIndependent {
            path_and_basis: "依据《保障农民工工资支付条例》责令限期支付".into()
        }
    );
    assert_eq!(
        act("退回 dh2026110300017 原因：措施不具体"),
        Input::Return {
            reason: "措施不具体".into()
        }
    );
    assert_eq!(
        act("退回补充 DH2026110300017，措施不具体"),
        Input::Return {
            reason: "措施不具体".into()
        }
    );
    assert_eq!(
        act("市级 DH2026110300017 需市交通运输局协调"),
        Input::EscalateCity {
            note: "需市交通运输局协调".into()
        }
    );
    assert_eq!(
        act("市级结果 DH2026110300017 结果：已恢复班线"),
        Input::RecordCityOutcome {
            outcome: "已恢复班线".into()
        }
    );
    assert_eq!(
        act("进展 DH2026110300017 已约谈企业负责人"),
        Input::Progress {
            text: "已约谈企业负责人".into()
        }
    );
    assert_eq!(
        act("典型 DH2026110300017 总结：一周解决欠薪"),
        Input::MarkTypical {
            summary: "一周解决欠薪".into()
        }
    );
    err(
        "独立 DH2026110300017",
        Verb::Independent,
        "缺少解决路径及政策依据",
    );
    err("退回 DH2026110300017 原因：", Verb::Return, "缺少退回原因");
    err("市级 DH2026110300017", Verb::City, "缺少");
    err(
        "市级结果 DH2026110300017",
        Verb::CityOutcome,
        "缺少市级协调结果",
    );
    err("进展 DH2026110300017 ", Verb::Progress, "缺少进展内容");
    err("典型 DH2026110300017", Verb::Typical, "缺少典型案例总结");
}

#[test]
fn accept_reads_labels_phones_and_help_items_and_leaves_the_unit_to_the_caller() {
    let expected = UnitAnswer::Accept {
        contact_name: "张三".into(),
        position: "股长".into(),
        phone: "13800000000".into(),
        help: vec![HelpItem::SiteCheck, HelpItem::PolicyExplanation],
    };
    for text in [
        "接受 DH2026110300017 联系人：张三 职务：股长 电话：13800000000 协助：现场核查、政策解释",
        "接受协办 dh2026110300017 联系人:张三,职务:股长,电话:138 0000 0000,协助:现场核查，政策解释",
        "@调处助手 接受　DH2026110300017　联系人：张三　职务：股长　手机：+86 13800000000　协助事项：现场核查、政策解释",
        "接受 DH2026110300017 张三 股长 13800000000 现场核查、政策解释",
    ] {
        let command = ok(text);
        assert_eq!(
            command,
            Command::Answer {
                ticket_no: crate::support::ticket_no(T),
                answer: expected.clone()
            },
            "{text}"
        );
        let Command::Answer { answer, .. } = command else {
            panic!("{text}")
        };
        assert_eq!(
            answer.by(crate::support::unit_named("区住建局")),
            Input::Accept {
                unit: crate::support::unit_named("区住建局"),
                contact_name: "张三".into(),
                position: "股长".into(),
                phone: "13800000000".into(),
                help: vec![HelpItem::SiteCheck, HelpItem::PolicyExplanation],
            },
            "{text}"
        );
    }
    let landline = answer(
        "接受 DH2026110300017 联系人：李四 职务：主任 电话：0936-8685841 协助：数据共享、其他：人员调配",
    );
    assert_eq!(
        landline,
        UnitAnswer::Accept {
            contact_name: "李四".into(),
            position: "主任".into(),
            phone: "0936-8685841".into(),
            help: vec![HelpItem::DataSharing, HelpItem::Other("人员调配".into())],
        }
    );
    err(
        "接受 DH2026110300017 联系人：张三 职务：股长 电话：8685841 协助：现场核查",
        Verb::Accept,
        "电话“8685841”不是有效的手机号",
    );
    err(
        "接受 DH2026110300017 联系人：张三 电话：13800000000",
        Verb::Accept,
        "缺少职务、协助事项",
    );
    err(
        "接受 DH2026110300017 联系人：张三 职务：股长 电话：13800000000 协助：其他",
        Verb::Accept,
        "请写明具体内容",
    );
    err(
        "接受 DH2026110300017 联系人：张三 联系人：李四 职务：股长 电话：13800000000 协助：现场核查",
        Verb::Accept,
        "“联系人”写了两次",
    );
}

#[test]
fn objection_withdraw_insist_supervise() {
    let objection = answer("异议 DH2026110300017 理由：不属于本单位职责");
    assert_eq!(
        objection.by(crate::support::unit_named("区城市管理局")),
        Input::Object {
            unit: crate::support::unit_named("区城市管理局"),
            reason: "不属于本单位职责".into()
        }
    );
    err("提出异议 DH2026110300017", Verb::Object, "缺少异议理由");

    assert_eq!(
        act("撤回 DH2026110300017 城管局"),
        Input::Withdraw {
            unit: crate::support::unit_named("区城市管理局")
        }
    );
    assert_eq!(
        act("坚持 dh2026110300017 单位：住建局"),
        Input::Insist {
            unit: crate::support::unit_named("区住建局"),
            reason: String::new(),
        }
    );
    assert_eq!(
        act("坚持 DH2026110300017 住建局 审批资料由住建局保管"),
        Input::Insist {
            unit: crate::support::unit_named("区住建局"),
            reason: "审批资料由住建局保管".into(),
        }
    );
    err("撤回 DH2026110300017", Verb::Withdraw, "缺少单位名称");
    let unknown = err(
        "坚持 DH2026110300017 住房局",
        Verb::Insist,
        "不在成员单位名单中",
    );
    assert!(unknown.contains("区住建局"), "{unknown}");

    let expected = Input::Supervise {
        unit: crate::support::unit_named("区住建局"),
        content: "请于11月5日前明确联系人".into(),
    };
    for text in [
        "督办 DH2026110300017 区住建局 请于11月5日前明确联系人",
        "督办 dh2026110300017 住建局：请于11月5日前明确联系人",
        "书面督办 DH2026110300017 区住建局，内容：请于11月5日前明确联系人",
    ] {
        assert_eq!(act(text), expected, "{text}");
    }
    err(
        "督办 DH2026110300017 区住建局",
        Verb::Supervise,
        "缺少督办内容",
    );
    err(
        "督办 DH2026110300017 某某局 请落实",
        Verb::Supervise,
        "不在成员单位名单中",
    );
}

#[test]
fn completion_and_satisfaction() {
    let expected = Input::Complete {
        process: "联合约谈企业".into(),
        measures: "分两期支付欠薪".into(),
        citizen_feedback: "已收到首笔款项".into(),
    };
    for text in [
        "办结 DH2026110300017 过程：联合约谈企业 措施：分两期支付欠薪 群众反馈：已收到首笔款项",
        "办结 dh2026110300017\n处理过程:联合约谈企业；解决措施:分两期支付欠薪；群众反馈:已收到首笔款项",
    ] {
        assert_eq!(act(text), expected, "{text}");
    }
    err(
        "办结 DH2026110300017 过程：联合约谈企业",
        Verb::Complete,
        "缺少措施、群众反馈",
    );
    for (text, level) in [
        ("满意度 DH2026110300017 满意", SatisfactionLevel::Satisfied),
        (
            "满意度 dh2026110300017 基本满意",
            SatisfactionLevel::BasicallySatisfied,
        ),
        (
            "满意度 DH2026110300017 不满意。",
            SatisfactionLevel::Dissatisfied,
        ),
        (
            "满意度 DH2026110300017 评价：非常满意",
            SatisfactionLevel::Satisfied,
        ),
    ] {
        assert_eq!(act(text), Input::Satisfaction { level }, "{text}");
    }
    err(
        "满意度 DH2026110300017 还行",
        Verb::Satisfaction,
        "“还行”无法识别",
    );
    err("满意度 DH2026110300017", Verb::Satisfaction, "缺少满意度");
}

#[test]
fn every_command_example_parses() {
    for s in &COMMANDS {
        assert!(
            matches!(parse(s.example), Some(Ok(_))),
            "{}: {:?}",
            s.example,
            parse(s.example)
        );
    }
}

#[test]
fn applications_and_chit_chat_are_not_commands() {
    for text in [
        "你好",
        "谢谢！",
        "审核进度怎么样了",
        "联合调处申请",
        "DH2026110300017",
        "",
        "工单编号：DH2026110300017\n工单标题：反映拖欠薪资的问题\n首接单位：区人社局",
        // An application that opens with a command-like heading is still an application.
        "联合调处\n工单编号：DH2026110300017\n工单标题：反映拖欠薪资的问题\n首接单位：区人社局",
    ] {
        assert!(parse(text).is_none(), "{text:?} → {:?}", parse(text));
    }
}

proptest! {
    /// Any text after a command word is a command or a Chinese error, never a panic (byte
    /// offsets inside full-width text are the risk).
    #[test]
    fn any_tail_after_a_command_word_is_answered(
        word in prop::sample::select(COMMANDS.iter().map(|s| s.word).collect::<Vec<_>>()),
        tail in "[DdＤｄHhＨｈ0-9０-９ 　:：;；,，、区住建局城管满意联系人电话过程措施反馈\\PC]{0,40}",
    ) {
        let answer = parse(&format!("{word} {tail}"));
        prop_assert!(answer.is_some(), "{word} {tail}");
        if let Some(Err(e)) = answer {
            prop_assert!(e.message.contains("正确格式："), "{}", e.message);
        }
        let _ = parse(&format!("{word}{tail}"));
    }
}

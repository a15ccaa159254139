//! Integration tests: what each person reads (issue 14, principles 3 and 5–9 and the ticket
//! remark). Sandbox-mode conversations driven through the inbox and the scheduler on a manual
//! clock, each person's messages read back from the outbox; every message of every scenario is
//! also scanned for doubled words and brackets, and for commands its recipient may not send.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde_json::{Value, json};
use tiaochu::workflow::{Case, ClockKind};

use crate::support::{CG, RS, World, ZJ, world};

const INSPECTOR: &str = "local:区12345热线:孟艳秋";
const SUPERVISOR: &str = "local:区12345热线:姚雪婷";
const CITY: &str = "local:市12345热线:杨琳";
const CG_LEADER: &str = "local:区城市管理局:武应国";
const RS_LEADER: &str = "local:区人社局:任燕";

/// A sandbox service without HTTP, with a clock the test moves.
struct Talk {
    w: World,
    /// Every message anyone received, as (recipient, text).
    all: Vec<(String, String)>,
}

impl Talk {
    fn new(start: &str) -> Talk {
        Talk {
            w: world().the_liaisons().start(start).build(),
            all: Vec::new(),
        }
    }

    /// `from` sends `text` 1:1; what everyone received, by person id.
    async fn say(&mut self, from: &str, text: &str) -> BTreeMap<String, Vec<String>> {
        self.w.say(from, text).await;
        // Whether the sender is answered is principle 1's test (conversation.rs).
        self.received()
    }

    /// Moves the clock on by `minutes` and fires what came due, as the sandbox panel does.
    async fn wait(&mut self, minutes: i64) -> BTreeMap<String, Vec<String>> {
        self.w.wait(SignedDuration::from_mins(minutes)).await;
        self.received()
    }

    fn received(&mut self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in self.w.new_outbox() {
            let v: Value = serde_json::from_slice(&row.payload).expect("payload");
            let text = format!(
                "{}\n{}",
                v["title"].as_str().unwrap_or(""),
                v["text"].as_str().unwrap_or("")
            );
            let buttons: Vec<String> = v["card"]["buttons"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .filter_map(|b| b["command"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let roles = self
                .w
                .roster
                .person(&row.target)
                .map(|p| p.roles.clone())
                .unwrap_or_default();
            let wrong = crate::support::suggestions_not_for(
                v["text"].as_str().unwrap_or(""),
                &buttons,
                &roles,
            );
            assert!(
                wrong.is_empty(),
                "{} is told {wrong:?}:\n{text}",
                row.target
            );
            self.all.push((row.target.clone(), text.clone()));
            out.entry(row.target.clone()).or_default().push(text);
        }
        out
    }

    fn case(&self, ticket: &str) -> Case {
        self.w.case(ticket)
    }
}

impl Drop for Talk {
    /// Principle 8: no doubled words or brackets in anything anyone read.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let bad = sloppy(&self.all);
        assert!(bad.is_empty(), "sloppy wording:\n{}", bad.join("\n"));
    }
}

/// Doubled words or brackets: `已结案（已结案）`, `反映“反映…”`, `。；`, `（（`.
fn sloppy(all: &[(String, String)]) -> Vec<String> {
    let doubled_marks = ["。；", "；。", "。。", "，，", "（（", "））", "“”", "（）"];
    // A working duration of a working day or more is said in working days (约 5 个工作日).
    let hours = regex::Regex::new(r"(\d+) (?:小时 \d+ 分钟工作时间|个工作小时)").expect("regex");
    let mut bad = Vec::new();
    for (to, text) in all {
        for m in hours.captures_iter(text) {
            if m[1].parse::<u32>().is_ok_and(|h| h >= 7) {
                bad.push(format!("{to}: `{}` in {text}", &m[0]));
            }
        }
        for mark in doubled_marks {
            if text.contains(mark) {
                bad.push(format!("{to}: `{mark}` in {text}"));
            }
        }
        // A word repeated whole in the brackets right after it (`已结案（已结案）`), or at the
        // start of the quote right after it (`反映“反映…”`).
        let chars: Vec<char> = text.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            if !matches!(c, '（' | '“') || i < 2 {
                continue;
            }
            let inside: String = chars[i + 1..]
                .iter()
                .take_while(|c| !matches!(c, '）' | '”'))
                .collect();
            for len in 2..=6.min(i) {
                let before: String = chars[i - len..i].iter().collect();
                let doubled = match c {
                    '（' => inside == before,
                    _ => inside.starts_with(&before),
                };
                if doubled && before.chars().all(|c| c > '\u{2E80}') {
                    bad.push(format!("{to}: doubled `{before}` in {text}"));
                }
            }
        }
    }
    bad
}

fn one(got: &BTreeMap<String, Vec<String>>, to: &str) -> String {
    got.get(to)
        .unwrap_or_else(|| panic!("nothing for {to}: {got:#?}"))
        .join("\n---\n")
}

fn application(ticket: &str, coordination: &str) -> String {
    format!(
        "工单编号：{ticket}
工单标题：反映某建筑公司拖欠薪资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，企业承认拖欠。
办理难点：工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：{coordination}
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。"
    )
}

const T: &str = "DH2026110300017";

#[test]
fn the_sloppy_wording_scan_catches_what_it_is_for() {
    let texts = [
        "已结案（已结案）",
        "反映“反映小区噪音”",
        "请于今日答复。；谢谢",
        "剩余 34 小时 59 分钟工作时间",
    ];
    for t in texts {
        assert!(
            !sloppy(&[("x".into(), t.into())]).is_empty(),
            "not caught: {t}"
        );
    }
    assert!(sloppy(&[("x".into(), "已结案（独立办理）".into())]).is_empty());
}

/// Principle 3, property: over generated applications naming unknown units (typos of roster
/// names and made-up bureaus) among known ones, every unit mention comes back in the receipt.
#[tokio::test]
async fn no_unit_mention_is_lost_between_the_application_and_the_receipt() {
    const KNOWN: [&str; 5] = [
        "区住建局",
        "区城市管理局",
        "区财政局",
        "南街街道",
        "区水务局",
    ];
    const UNKNOWN: [&str; 8] = [
        "卫键局",
        "区住建委局",
        "区机关档案中心",
        "区国资局",
        "区粮食局",
        "区人防办公室",
        "区园林中心",
        "区统计局",
    ];
    const DIRECTIONS: [&str; 4] = ["协助现场核查", "提供数据", "解释政策", "配合调查"];
    let mut talk = Talk::new("2026-11-02T09:00:00+08:00");
    // A fixed linear congruential generator: the same cases every run.
    let mut seed: u64 = 0x1234_5678;
    let mut next = |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        usize::try_from(seed >> 33).unwrap_or(0) % n
    };
    for case in 0..24 {
        let mut parts = Vec::new();
        let mut mentions = Vec::new();
        for _ in 0..=next(3) {
            let name = if next(2) == 0 {
                KNOWN[next(KNOWN.len())]
            } else {
                UNKNOWN[next(UNKNOWN.len())]
            };
            parts.push(format!("{name}{}", DIRECTIONS[next(DIRECTIONS.len())]));
            mentions.push(name);
        }
        if !mentions.iter().any(|m| UNKNOWN.contains(m)) {
            let name = UNKNOWN[next(UNKNOWN.len())];
            parts.push(format!("{name}协助"));
            mentions.push(name);
        }
        let ticket = format!("DH20261102{case:05}");
        let got = talk.say(RS, &application(&ticket, &parts.join("；"))).await;
        let receipt = one(&got, RS);
        assert!(receipt.contains("申请已登记"), "{receipt}");
        for name in &mentions {
            assert!(receipt.contains(name), "{name} lost from {receipt}");
        }
        let suggested = receipt.contains("您是否指");
        if mentions.contains(&"卫键局") {
            assert!(suggested && receipt.contains("区卫健局"), "{receipt}");
        }
    }
}

/// Principle 3: a wrong number is echoed with the sender's own open cases; natural 接受 text.
#[tokio::test]
async fn a_wrong_number_is_named_back_and_natural_acceptances_are_read() {
    let mut talk = Talk::new("2026-11-02T09:00:00+08:00");
    talk.say(RS, &application(T, "区住建局核查审批；卫键局协助"))
        .await;
    let got = talk.say(RS, "进展 DH2026110300071 已约谈企业").await;
    let answer = one(&got, RS);
    assert!(
        answer.contains("DH2026110300071") && answer.contains(T),
        "{answer}"
    );
    talk.say(INSPECTOR, &format!("审核 {T}")).await;
    talk.say(INSPECTOR, &format!("联合 {T} 区住建局：核查审批"))
        .await;
    let got = talk
        .say(
            ZJ,
            &format!("接受 {T} 联系人张丽，疾控中心科长，电话13993601234，协助现场核查"),
        )
        .await;
    let contacts = one(&got, RS);
    assert!(
        contacts.contains("张丽") && contacts.contains("13993601234"),
        "{contacts}"
    );
}

/// Principle 8: the cooperating unit reads what was done and why, and whom to call.
#[tokio::test]
async fn the_coordination_request_shows_measures_difficulties_and_the_first_units_phone() {
    let mut talk = Talk::new("2026-11-02T09:00:00+08:00");
    talk.say(RS, &application(T, "区住建局核查审批")).await;
    talk.say(INSPECTOR, &format!("审核 {T}")).await;
    let got = talk
        .say(INSPECTOR, &format!("联合 {T} 区住建局：核查审批"))
        .await;
    let card = one(&got, ZJ);
    for part in ["已采取措施", "企业承认拖欠", "办理难点", "13800000001"] {
        assert!(card.contains(part), "{part}: {card}");
    }
    let help = talk.say(ZJ, "帮助").await;
    let help = one(&help, ZJ);
    assert!(help.lines().count() <= 13, "{help}");
    assert!(
        help.contains("接受 DH…") && !help.contains("审核 DH…"),
        "{help}"
    );
    let all = talk.say(ZJ, "帮助 全部").await;
    assert!(one(&all, ZJ).contains("审核"), "{all:#?}");
}

/// Principle 5: a green-channel case received at night: the review is due within the hour,
/// the decision no later than the coordination, and the night alert's deadline is that hour.
#[tokio::test]
async fn the_green_channel_is_coherent_at_night() {
    let mut talk = Talk::new("2026-11-02T21:00:00+08:00");
    let urgent = application(T, "区住建局督促企业复工").replace(
        "工单标题：反映某建筑公司拖欠薪资的问题",
        "工单标题：反映工地塌方，工人围堵讨薪，存在群体性事件风险",
    ) + "\n紧急程度：紧急";
    let got = talk.say(RS, &urgent).await;
    let receipt = one(&got, RS);
    assert!(receipt.contains("绿色通道"), "{receipt}");
    let case = talk.case(T);
    let due = |k: ClockKind| case.clock(&k).expect("clock").due;
    let received = case.received_at;
    assert_eq!(
        due(ClockKind::ReviewStart),
        received + SignedDuration::from_hours(1),
        "即时研判: within the hour, on the wall clock"
    );
    assert!(
        due(ClockKind::Decision) <= due(ClockKind::GreenCoordination),
        "the decision is not due after the coordination: {receipt}"
    );
    let alert = talk.wait(1).await;
    let alert = one(&alert, INSPECTOR);
    assert!(
        alert.contains("立即") && alert.contains("11-02 22:00"),
        "{alert}"
    );
    assert!(!alert.contains("0 分钟工作时间"), "{alert}");
}

/// Principle 6: objection → 坚持 with a reason → drafted 督办 → a new answer deadline with its
/// reminders, the first unit told at each step.
#[tokio::test]
async fn the_objection_to_supervision_path_is_complete() {
    let mut talk = Talk::new("2026-11-02T09:00:00+08:00");
    talk.say(
        RS,
        &application(T, "区住建局核查审批；区城市管理局现场核查"),
    )
    .await;
    talk.say(INSPECTOR, &format!("审核 {T}")).await;
    talk.say(
        INSPECTOR,
        &format!("联合 {T} 区住建局：核查审批；区城市管理局：现场核查"),
    )
    .await;
    let got = talk
        .say(CG, &format!("异议 {T} 现场核查不属于本局职责"))
        .await;
    assert!(one(&got, RS).contains("提出异议"), "{got:#?}");
    let got = talk
        .say(
            INSPECTOR,
            &format!("坚持 {T} 区城市管理局 工地占道属城管执法范围"),
        )
        .await;
    assert!(one(&got, CG).contains("工地占道属城管执法范围"), "{got:#?}");
    assert!(one(&got, RS).contains("未采纳"), "{got:#?}");
    let request = one(&got, SUPERVISOR);
    assert!(
        request.contains("工地占道属城管执法范围")
            && request.contains(&format!("督办 {T} 区城市管理局 区城市管理局对本工单")),
        "the drafted 书面督办: {request}"
    );
    // Issued the next morning, so the 督办's own deadline (11-04 18:00, one working day on)
    // differs from the request's (11-03 18:00): everyone it concerns reads the new one.
    talk.wait(24 * 60).await;
    let got = talk
        .say(
            SUPERVISOR,
            &format!("督办 {T} 区城市管理局 请于收到督办后明确联系人并到岗履职"),
        )
        .await;
    let new_due = "2026-11-04 18:00";
    for who in [CG, CG_LEADER, INSPECTOR, RS, SUPERVISOR] {
        let read = one(&got, who);
        assert!(
            read.contains(new_due) && !read.contains("2026-11-03 18:00"),
            "{who} reads the 督办's deadline: {read}"
        );
    }
    let case = talk.case(T);
    let clock = case
        .clock(&ClockKind::SupervisedResponse {
            unit: crate::support::unit_named("区城市管理局"),
        })
        .expect("the 督办 sets a deadline");
    assert!(clock.is_running() && clock.pending_timers().count() >= 2);
    // Half-time, the next morning: a reminder to the unit, like any other clock.
    let got = talk.wait(24 * 60).await;
    assert!(one(&got, CG).contains("按书面督办答复"), "{got:#?}");
    // Past the 督办's deadline: the unit, its leader, the inspector and the supervisor (who
    // may supervise again) and the first unit are told.
    let got = talk.wait(24 * 60).await;
    assert!(one(&got, CG).contains("已超过期限"), "{got:#?}");
    assert!(one(&got, CG_LEADER).contains("请督促落实"), "{got:#?}");
    assert!(
        one(&got, INSPECTOR).contains(&format!("撤回 {T} 区城市管理局")),
        "{got:#?}"
    );
    assert!(one(&got, SUPERVISOR).contains("再次书面督办"), "{got:#?}");
    assert!(one(&got, RS).contains("未在书面督办期限内答复"), "{got:#?}");
}

/// Principle 6 for the first unit: a 督办 for handling past its deadline sets a new deadline to
/// complete (五(四) 限期整改), reminded and escalated like any other clock.
#[tokio::test]
async fn a_supervision_for_overdue_handling_sets_a_deadline_to_complete() {
    let mut talk = Talk::new("2026-11-02T09:00:00+08:00");
    talk.say(RS, &application(T, "区住建局核查审批")).await;
    talk.say(INSPECTOR, &format!("审核 {T}")).await;
    talk.say(INSPECTOR, &format!("联合 {T} 区住建局：核查审批"))
        .await;
    talk.say(
        ZJ,
        &format!("接受 {T} 联系人：赵建 职务：股长 电话：13900000000 协助：现场核查"),
    )
    .await;
    // Ten working days on (due 11-16 18:00), the breach reaches the supervisor next morning.
    let got = talk.wait(15 * 24 * 60).await;
    assert!(
        one(&got, SUPERVISOR).contains("联合处置超过办结期限"),
        "{got:#?}"
    );
    let got = talk
        .say(
            SUPERVISOR,
            &format!("督办 {T} 区人社局 请于收到督办后立即办结并反馈办理结果"),
        )
        .await;
    let case = talk.case(T);
    let clock = case
        .clock(&ClockKind::SupervisedHandling)
        .expect("the 督办 sets a deadline to complete");
    assert!(clock.is_running() && clock.pending_timers().count() >= 2);
    let due = "2026-11-18 18:00";
    for who in [RS, RS_LEADER, INSPECTOR, SUPERVISOR] {
        let read = one(&got, who);
        assert!(
            read.contains(due) && read.contains("督办办结期限"),
            "{who}: {read}"
        );
    }
    let got = talk.wait(2 * 24 * 60).await;
    let rs = one(&got, RS);
    assert!(
        rs.contains("联合处置按书面督办办结") && rs.contains("已超过期限"),
        "{rs}"
    );
    assert!(one(&got, RS_LEADER).contains("请督促落实"), "{got:#?}");
    assert!(one(&got, SUPERVISOR).contains("再次书面督办"), "{got:#?}");
    let got = talk
        .say(
            RS,
            &format!("办结 {T} 过程：联合约谈 措施：督促企业足额支付 群众反馈：满意"),
        )
        .await;
    assert!(one(&got, RS).contains("超过办结期限"), "{got:#?}");
    let case = talk.case(T);
    assert!(
        case.clocks.iter().all(|c| !c.is_running()),
        "办结 stops the 督办's clock too"
    );
}

/// Principle 7: the receipt names the city units; 市级 starts a clock with reminders; the city
/// supervisor hears the outcome. Principle 9: moving the clock sends no downtime catch-up.
#[tokio::test]
async fn city_level_is_a_tracked_stage() {
    let mut talk = Talk::new("2026-11-02T09:00:00+08:00");
    let got = talk
        .say(
            RS,
            &application(T, "需市交通运输局统筹线路；临泽县交通运输局配合"),
        )
        .await;
    let receipt = one(&got, RS);
    assert!(
        receipt.contains("市交通运输局") && !receipt.contains("未写明具体单位"),
        "{receipt}"
    );
    talk.say(INSPECTOR, &format!("审核 {T}")).await;
    let got = talk
        .say(INSPECTOR, &format!("市级 {T} 需市交通运输局统筹线路"))
        .await;
    assert!(one(&got, CITY).contains("请反馈协调结果"), "{got:#?}");
    assert!(one(&got, RS).contains("市级协调结果预计反馈"), "{got:#?}");
    let case = talk.case(T);
    assert!(
        case.clock(&ClockKind::CityAnswer)
            .is_some_and(|c| c.is_running()),
        "市级 starts a clock"
    );
    // Three working days on: the half-time reminder, and no "服务曾中断…补发".
    let got = talk.wait(3 * 24 * 60).await;
    let reminder = one(&got, CITY);
    assert!(reminder.contains("市级协调结果反馈"), "{reminder}");
    assert!(
        !talk.all.iter().any(|(_, t)| t.contains("中断")),
        "a clock move is not downtime"
    );
    let got = talk
        .say(INSPECTOR, &format!("市级结果 {T} 市交通运输局已恢复线路"))
        .await;
    assert!(one(&got, CITY).contains("已恢复线路"), "{got:#?}");
}

/// The ticket field with a remark after the number reads as the first number.
#[tokio::test]
async fn a_ticket_number_with_a_remark_registers_the_first_number() {
    let mut talk = Talk::new("2026-11-02T09:00:00+08:00");
    let text = application(T, "区住建局核查审批").replace(
        &format!("工单编号：{T}"),
        &format!("工单编号：{T}（关联工单：DH2025082100415）"),
    );
    let got = talk.say(RS, &text).await;
    assert!(one(&got, RS).contains(T), "{got:#?}");
    assert_eq!(talk.case(T).ticket_no, T);
}

/// Every path of a case, for the wording scan and the permission check in [`Talk`]: a joint case
/// to its typical-case mark with a late answer on the way (reminders, breach, escalation), an
/// independent one, a returned and resubmitted one, and commands on closed cases.
#[tokio::test]
async fn every_path_reads_cleanly() {
    let mut talk = Talk::new("2026-11-02T09:00:00+08:00");
    talk.say(
        RS,
        &application(T, "区住建局核查审批；区城市管理局现场核查"),
    )
    .await;
    talk.say(
        RS,
        &application(T, "区住建局核查审批；区城市管理局现场核查"),
    )
    .await;
    talk.say(INSPECTOR, &format!("审核 {T}")).await;
    talk.say(
        INSPECTOR,
        &format!("联合 {T} 区住建局：核查审批；区城市管理局：现场核查"),
    )
    .await;
    talk.say(
        ZJ,
        &format!("接受 {T} 联系人：赵建 职务：股长 电话：13900000000 协助：现场核查"),
    )
    .await;
    // 区城市管理局 stays silent past its deadline: reminders, breach, escalation, 督办 draft.
    talk.wait(24 * 60).await;
    let got = talk.wait(2 * 24 * 60).await;
    assert!(got.contains_key(SUPERVISOR), "{got:#?}");
    talk.say(
        CG,
        &format!("接受 {T} 联系人：钱城 职务：队长 电话：13900000001 协助：现场核查"),
    )
    .await;
    talk.say(RS, &format!("进展 {T} 已约谈企业负责人")).await;
    talk.say(
        RS,
        &format!("办结 {T} 过程：联合约谈 措施：督促企业足额支付 群众反馈：满意"),
    )
    .await;
    talk.say(INSPECTOR, &format!("满意度 {T} 满意")).await;
    talk.say(INSPECTOR, &format!("典型 {T} 人社、住建联动解决欠薪"))
        .await;
    let got = talk.say(RS, &format!("进展 {T} 补充")).await;
    assert!(one(&got, RS).contains("已结案"), "{got:#?}");
    talk.say(RS, &format!("查询 {T}")).await;

    let t2 = "DH2026110300018";
    talk.say(RS, &application(t2, "区住建局核查审批")).await;
    talk.say(INSPECTOR, &format!("审核 {t2}")).await;
    talk.say(
        INSPECTOR,
        &format!("独立 {t2} 依据《保障农民工工资支付条例》由人社局处理"),
    )
    .await;
    let got = talk.say(RS, &format!("进展 {t2} 已处理")).await;
    assert!(one(&got, RS).contains("独立办理"), "{got:#?}");
    talk.say(RS, &application(t2, "区住建局核查审批")).await;

    let t3 = "DH2026110300019";
    talk.say(RS, &application(t3, "区住建局核查审批")).await;
    talk.say(INSPECTOR, &format!("审核 {t3}")).await;
    talk.say(INSPECTOR, &format!("退回 {t3} 请补充与企业沟通情况"))
        .await;
    let corrected =
        application(t3, "区住建局核查审批").replace("企业承认拖欠。", "企业承认拖欠，已约谈两次。");
    talk.say(RS, &corrected).await;
    for who in [RS, ZJ, INSPECTOR, SUPERVISOR, CITY] {
        talk.say(who, "帮助").await;
    }
}

/// Principle 9: the 看板 link opens where the sandbox console was reached, not at the shipped
/// default address.
#[tokio::test]
async fn the_sandbox_dashboard_link_opens_where_the_console_is() {
    let app = crate::support::spawn_app(|s| {
        s.dingtalk.mode = tiaochu::settings::DingtalkMode::Sandbox;
    })
    .await;
    let port = app.address.rsplit(':').next().expect("port");
    let response = app
        .client
        .post(format!("{}/sandbox/send", app.address))
        .header(reqwest::header::HOST, format!("localhost:{port}"))
        .json(&json!({"as": INSPECTOR, "text": "看板"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let want = format!("http://localhost:{port}/dashboard/login?token=");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let rows = app
            .store
            .read(|r| r.list_outbox(None, 1000))
            .await
            .expect("outbox");
        let texts: Vec<String> = rows
            .iter()
            .filter(|r| r.target == INSPECTOR)
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect();
        if texts.iter().any(|t| t.contains(&want)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no link to {want}: {texts:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.shutdown.trigger();
}

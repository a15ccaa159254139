//! Integration tests: whole conversations with the robot. [`harness`] runs a service in one of
//! three modes (card template, ActionCard, sandbox) and checks the conversation's principles on
//! every step; [`scenarios`] is the whole life of a case on every path, written once and run in
//! each mode; [`golden`] keeps what each person reads in `docs/conversation/`. The tests below
//! are the earlier sandbox conversations.

use std::collections::BTreeMap;

use tiaochu::store::NewInbound;

use crate::support::robot_text;

mod golden;
mod harness;
pub mod scenarios;

pub use harness::{CG, Chat, INSPECTOR, INSPECTOR_B, RS, ZJ};

/// Everything `to` received in one step, joined.
fn one(got: &BTreeMap<String, Vec<String>>, to: &str) -> String {
    got.get(to)
        .unwrap_or_else(|| panic!("nothing for {to}: {got:#?}"))
        .join("\n---\n")
}

const APPLICATION: &str = "工单编号：DH2026110300017
工单标题：反映某建筑公司拖欠薪资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况，企业方承认存在拖欠行为。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

#[tokio::test]
async fn a_joint_case_from_paste_to_typical_case_in_commands() {
    let mut chat = Chat::new();
    let t = "DH2026110300017";

    let got = chat.say(RS, APPLICATION).await;
    let receipt = one(&got, RS);
    assert!(
        receipt.contains(t) && receipt.contains("TC-2026-0001"),
        "{receipt}"
    );
    assert!(
        got.contains_key(INSPECTOR) && got.contains_key(INSPECTOR_B),
        "review cards to both inspectors"
    );
    assert!(
        one(&got, INSPECTOR).contains("开始审核"),
        "{}",
        one(&got, INSPECTOR)
    );

    // The same paste again: the same receipt, no second case.
    let got = chat.say(RS, APPLICATION).await;
    assert!(one(&got, RS).contains("TC-2026-0001"), "{got:#?}");

    // A liaison cannot claim.
    let got = chat.say(RS, &format!("审核 {t}")).await;
    assert!(one(&got, RS).contains("质检"), "{got:#?}");

    let got = chat.say(INSPECTOR, &format!("审核 {t}")).await;
    assert!(
        got.contains_key(RS),
        "the first unit is told the review started: {got:#?}"
    );
    // Double tap by the other inspector.
    let got = chat.say(INSPECTOR_B, &format!("审核 {t}")).await;
    assert!(one(&got, INSPECTOR_B).contains("孟艳秋"), "{got:#?}");

    let got = chat
        .say(
            INSPECTOR,
            &format!("联合 {t} 区住建局：核查项目审批及工程款拨付；区城市管理局：协助现场核查"),
        )
        .await;
    assert!(
        one(&got, ZJ).contains("接受协办"),
        "coordination card to 区住建局: {got:#?}"
    );
    assert!(one(&got, CG).contains("区城市管理局"), "{got:#?}");

    let got = chat
        .say(CG, &format!("异议 {t} 现场核查不属于本局职责"))
        .await;
    assert!(
        got.contains_key(INSPECTOR),
        "the objection goes to the inspector: {got:#?}"
    );
    chat.say(INSPECTOR, &format!("撤回 {t} 区城市管理局")).await;

    let got = chat
        .say(
            ZJ,
            &format!("接受 {t} 联系人：赵建 职务：股长 电话：13900000000 协助：现场核查、政策解释"),
        )
        .await;
    let contacts = one(&got, RS);
    assert!(
        contacts.contains("赵建") && contacts.contains("13900000000"),
        "contacts to the first unit: {contacts}"
    );

    let got = chat
        .say(RS, &format!("进展 {t} 已约谈企业负责人，承诺本周内付清"))
        .await;
    assert!(one(&got, ZJ).contains("本周内付清"), "{got:#?}");
    let got = chat
        .say(ZJ, &format!("进展 {t} 工程款已拨付至项目账户"))
        .await;
    assert!(one(&got, RS).contains("工程款已拨付"), "{got:#?}");

    let got = chat
        .say(
            RS,
            &format!("办结 {t} 过程：联合约谈 措施：督促企业足额支付 群众反馈：诉求人表示满意"),
        )
        .await;
    assert!(got.contains_key(INSPECTOR), "{got:#?}");
    let got = chat.say(INSPECTOR, &format!("满意度 {t} 满意")).await;
    assert!(
        got.contains_key(RS) && got.contains_key(ZJ),
        "everyone involved is told: {got:#?}"
    );
    chat.say(
        INSPECTOR,
        &format!("典型 {t} 人社、住建联动，一周内解决欠薪"),
    )
    .await;

    // A closed case refuses further actions.
    let got = chat.say(RS, &format!("进展 {t} 补充说明")).await;
    assert!(one(&got, RS).contains("已结案"), "{got:#?}");

    let got = chat.say(RS, &format!("查询 {t}")).await;
    assert!(one(&got, RS).contains("已结案"), "{got:#?}");

    std::fs::create_dir_all("test-artifacts").expect("artifacts dir");
    std::fs::write(
        "test-artifacts/transcript-joint-case.md",
        format!(
            "# 联合调处全过程（沙盒，命令方式）\n{}\n",
            chat.transcript.join("\n")
        ),
    )
    .expect("transcript");
}

#[tokio::test]
async fn malformed_and_unknown_input_get_chinese_answers_and_change_nothing() {
    let mut chat = Chat::new();
    let got = chat.say("stranger-1", "帮助").await;
    assert!(one(&got, "stranger-1").contains("名单"), "{got:#?}");
    let got = chat.say(RS, "你好").await;
    assert!(one(&got, RS).contains("模板"), "{got:#?}");
    let got = chat.say(RS, "审核 DH2026119999999").await;
    assert!(one(&got, RS).contains("没有找到"), "{got:#?}");
    let got = chat.say(INSPECTOR, "联合 DH2026110300017").await;
    assert!(!one(&got, INSPECTOR).is_empty(), "{got:#?}");
    let incomplete =
        "工单编号：DH2026110300099\n工单标题：反映小区养犬扰民的问题\n首接单位：区人社局";
    let got = chat.say(RS, incomplete).await;
    assert!(one(&got, RS).contains("办理难点"), "{got:#?}");
    let cases = chat
        .store
        .read_blocking(|r| r.case_by_ticket(&crate::support::ticket_no("DH2026110300099")))
        .expect("read");
    assert!(
        cases.is_empty(),
        "an incomplete application registers nothing"
    );
}

#[tokio::test]
async fn after_a_claim_only_the_claiming_inspector_keeps_the_decision_buttons() {
    let mut chat = Chat::new();
    chat.say(RS, APPLICATION).await;
    let got = chat.say(INSPECTOR, "审核 DH2026110300017").await;
    assert!(one(&got, INSPECTOR).contains("[按钮：联合调处"), "{got:#?}");
    let other = one(&got, INSPECTOR_B);
    assert!(
        other.contains("开始审核") && !other.contains("[按钮"),
        "{other}"
    );
}

const URGENT: &str = "工单编号：DH2026112100012
工单标题：反映某楼盘逾期交房，购房户拟集体上访的问题
首接单位：区人社局
已采取措施：已约谈开发企业负责人，企业称资金链断裂，无法给出交房时间。
办理难点：涉及购房户200余户，部分购房户在售楼部聚集，存在群体性事件风险，情况紧急。
需协调部门及事由：区住建局督促企业复工；区城市管理局维护现场秩序。
请示分管领导相关情况：已向分管领导汇报，领导同意并要求启动绿色通道。";

#[tokio::test]
async fn a_green_channel_case_is_marked_everywhere_and_runs_on_hour_clocks() {
    let mut chat = Chat::new();
    let t = "DH2026112100012";
    let got = chat.say(RS, URGENT).await;
    let receipt = one(&got, RS);
    assert!(receipt.contains("绿色通道"), "{receipt}");
    assert!(
        one(&got, INSPECTOR).contains("绿色通道"),
        "the review card is marked"
    );
    chat.say(INSPECTOR, &format!("审核 {t}")).await;
    let got = chat
        .say(
            INSPECTOR,
            &format!("联合 {t} 区住建局：督促企业复工；区城市管理局：维护现场秩序"),
        )
        .await;
    let request = one(&got, ZJ);
    assert!(request.contains("绿色通道"), "{request}");
    // 五(一): the green channel's unit response is 2 working hours, not a working day.
    assert!(
        request.contains("11:"),
        "answer due within two working hours of 09:20: {request}"
    );
    let got = chat
        .say(
            ZJ,
            &format!("接受 {t} 联系人：赵建 职务：股长 电话：13900000000 协助：现场核查"),
        )
        .await;
    assert!(
        got.contains_key(RS) || got.contains_key(INSPECTOR),
        "{got:#?}"
    );
    let got = chat
        .say(
            CG,
            &format!("接受 {t} 联系人：钱城 职务：队长 电话：13900000001 协助：其他（现场秩序）"),
        )
        .await;
    let contacts = one(&got, RS);
    assert!(
        contacts.contains("赵建") && contacts.contains("钱城"),
        "all contacts at once: {contacts}"
    );
}

#[tokio::test]
async fn an_independent_handling_case_closes_and_tells_the_first_unit() {
    let mut chat = Chat::new();
    let t = "DH2026110300017";
    chat.say(RS, APPLICATION).await;
    chat.say(INSPECTOR, &format!("审核 {t}")).await;
    let got = chat
        .say(
            INSPECTOR,
            &format!(
                "独立 {t} 依据《保障农民工工资支付条例》第三十条，由人社局责令总包单位先行清偿"
            ),
        )
        .await;
    let told = one(&got, RS);
    assert!(told.contains("保障农民工工资支付条例"), "{told}");
    let got = chat.say(RS, &format!("进展 {t} 已责令清偿")).await;
    assert!(
        one(&got, RS).contains("已结案") || one(&got, RS).contains("独立办理"),
        "{got:#?}"
    );
}

#[tokio::test]
async fn a_returned_application_resubmitted_becomes_version_two() {
    let mut chat = Chat::new();
    let t = "DH2026110300017";
    chat.say(RS, APPLICATION).await;
    chat.say(INSPECTOR, &format!("审核 {t}")).await;
    let got = chat
        .say(INSPECTOR, &format!("退回 {t} 请补充与区城建公司的沟通情况"))
        .await;
    assert!(
        one(&got, RS).contains("请补充与区城建公司的沟通情况"),
        "{got:#?}"
    );
    let corrected = APPLICATION.replace(
        "已采取措施：已向涉事建筑企业取得联系",
        "已采取措施：已与区城建公司沟通，对方称需住建审批；已向涉事建筑企业取得联系",
    );
    let got = chat.say(RS, &corrected).await;
    let receipt = one(&got, RS);
    assert!(receipt.contains("TC-2026-0001"), "the same case: {receipt}");
    let versions = chat
        .store
        .read_blocking(|r| {
            let c = r
                .case_by_no(&crate::support::case_no("TC-2026-0001"))?
                .expect("case");
            r.case_versions(c.id)
        })
        .expect("versions");
    assert_eq!(versions.len(), 2, "version 2 of the same case");
    assert!(
        got.contains_key(INSPECTOR),
        "the inspectors get the new version: {got:#?}"
    );
}

/// The inbox worker submits a whole batch of messages at once (one commit for the batch); they
/// must still be decided in arrival order: each application before its own 审核 right behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_messages_is_decided_in_arrival_order() {
    let chat = Chat::new();
    let now = chat.now;
    let mut messages = Vec::new();
    for i in 0..40 {
        let ticket = format!("DH20261103{i:05}");
        messages.push((RS, APPLICATION.replace("DH2026110300017", &ticket)));
        messages.push((INSPECTOR, format!("审核 {ticket}")));
    }
    let count = messages.len();
    chat.store
        .write(move |tx| -> Result<_, tiaochu::store::StoreError> {
            for (n, (from, text)) in messages.iter().enumerate() {
                let body =
                    robot_text(&format!("batch-{n}"), from, text, now.as_millisecond()).to_string();
                tx.insert_inbox(&NewInbound {
                    source: "sandbox",
                    message_id: &format!("batch-{n}"),
                    received_at: now,
                    payload: &body,
                })?;
            }
            Ok(())
        })
        .await
        .expect("inbox");
    let mut processed = 0;
    loop {
        let n = chat.processor.process_pending(now).await.expect("process");
        if n == 0 {
            break;
        }
        processed += n;
    }
    assert_eq!(processed, count);
    for i in 0..40 {
        let ticket = format!("DH20261103{i:05}");
        let t = ticket.clone();
        let rows = chat
            .store
            .read(move |r| r.case_by_ticket(&crate::support::ticket_no(&t)))
            .await
            .expect("case");
        assert_eq!(rows.len(), 1, "{ticket}");
        assert_eq!(
            rows[0].state, "under_review",
            "{ticket} was claimed after it was registered"
        );
    }
}

//! The whole life of a case on every path, each written once and run in card-template mode,
//! ActionCard mode and the sandbox. The harness checks principles 1, 2 and 4 on every step; the
//! assertions here check what each path must say. Card-template mode also writes (or checks)
//! the golden transcripts in `docs/conversation/`.

use std::collections::BTreeMap;

use serde_json::json;

use super::golden;
use super::harness::{CG, Chat, Mode, RS, ZJ};

pub const T: &str = "DH2026110300017";
pub const MENG: &str = "孟艳秋";
pub const LI: &str = "李德艳";
/// 督办专员.
pub const YAO: &str = "姚雪婷";
/// 市12345热线督办组班长.
pub const YANG: &str = "杨琳";
/// 区城市管理局分管领导.
pub const WU: &str = "武应国";

pub const APPLICATION: &str = "工单编号：DH2026110300017
工单标题：反映某建筑公司拖欠薪资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况，企业方承认存在拖欠行为。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

const URGENT: &str = "工单编号：DH2026112100012
工单标题：反映某楼盘逾期交房，购房户拟集体上访的问题
首接单位：区人社局
已采取措施：已约谈开发企业负责人，企业称资金链断裂，无法给出交房时间。
办理难点：涉及购房户200余户，部分购房户在售楼部聚集，存在群体性事件风险，情况紧急。
需协调部门及事由：区住建局督促企业复工；区城市管理局维护现场秩序。
请示分管领导相关情况：已向分管领导汇报，领导同意并要求启动绿色通道。";

const CITY: &str = "工单编号：DH2026110500031
工单标题：反映跨区县客运班线停运的问题
首接单位：区人社局
已采取措施：已联系客运企业，企业称班线审批在市级部门。
办理难点：班线跨区县运营，审批权限在市交通运输局，区级无法协调。
需协调部门及事由：市交通运输局协调客运线路审批。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

const JOINT_UNITS: &str = "区住建局：核查项目审批及工程款拨付；区城市管理局：协助现场核查";

/// Everything `who` (an id or a name) received in one step, joined; empty when nothing.
pub fn to(chat: &Chat, got: &BTreeMap<String, Vec<String>>, who: &str) -> String {
    got.get(&chat.id(who))
        .map(|v| v.join("\n---\n"))
        .unwrap_or_default()
}

async fn submit_and_claim(chat: &mut Chat, application: &str, t: &str) {
    let got = chat.say(RS, application).await;
    assert!(to(chat, &got, RS).contains(t), "{got:#?}");
    let got = chat
        .tap(MENG, "开始审核", json!({}), &format!("审核 {t}"))
        .await;
    assert!(to(chat, &got, RS).contains(MENG), "{got:#?}");
}

async fn decide_joint(chat: &mut Chat, t: &str, units: &str) -> BTreeMap<String, Vec<String>> {
    chat.tap(
        MENG,
        "联合调处",
        json!({ "units": units }),
        &format!("联合 {t} {units}"),
    )
    .await
}

async fn accept(
    chat: &mut Chat,
    who: &str,
    t: &str,
    name: &str,
    phone: &str,
    help: &str,
) -> BTreeMap<String, Vec<String>> {
    let position = "股长";
    chat.tap(
        who,
        "接受协办",
        json!({"contact_name": name, "position": position, "phone": phone, "help": help}),
        &format!("接受 {t} 联系人：{name} 职务：{position} 电话：{phone} 协助：{help}"),
    )
    .await
}

/// 联合调处 to the end: the re-paste, the claim, both units accepting (the first unit hears once
/// every contact is in), progress both ways, 办结, 满意度 and 典型.
pub async fn joint(chat: &mut Chat) {
    chat.say(RS, "模板").await;
    let got = chat.say(RS, APPLICATION).await;
    let receipt = to(chat, &got, RS);
    assert!(receipt.contains("TC-2026-0001"), "{receipt}");
    assert!(!to(chat, &got, MENG).is_empty() && !to(chat, &got, LI).is_empty());
    // Principle 4: a re-paste is answered 已登记, not with a second receipt.
    let got = chat.say(RS, APPLICATION).await;
    let again = to(chat, &got, RS);
    assert!(
        again.contains("无需重复发送") && !again.contains("拟协调单位"),
        "{again}"
    );
    assert_eq!(got.len(), 1, "nobody else hears of a re-paste: {got:#?}");

    let got = chat
        .tap(MENG, "开始审核", json!({}), &format!("审核 {T}"))
        .await;
    let claimed = to(chat, &got, MENG);
    assert!(
        claimed.contains("已认领") && claimed.contains("研判"),
        "{claimed}"
    );
    assert!(to(chat, &got, RS).contains(MENG), "{got:#?}");

    let got = decide_joint(chat, T, JOINT_UNITS).await;
    assert!(to(chat, &got, MENG).contains("区住建局"), "{got:#?}");
    assert!(!to(chat, &got, ZJ).is_empty() && !to(chat, &got, CG).is_empty());

    // A tap with a required input left empty is refused, and the tapper is told in the chat.
    let got = chat
        .tap(
            ZJ,
            "接受协办",
            json!({"contact_name": "赵建", "position": "股长", "help": "现场核查"}),
            &format!("接受 {T} 联系人：赵建 职务：股长 协助：现场核查"),
        )
        .await;
    assert!(to(chat, &got, ZJ).contains("电话"), "{got:#?}");
    // The first to accept while the other has not answered yet.
    let got = accept(chat, ZJ, T, "赵建", "13900000000", "现场核查、政策解释").await;
    let zj = to(chat, &got, ZJ);
    assert!(
        zj.contains("区城市管理局"),
        "told who is still to answer: {zj}"
    );
    let got = accept(chat, CG, T, "钱城", "13900000001", "现场核查").await;
    let contacts = to(chat, &got, RS);
    assert!(
        contacts.contains("赵建") && contacts.contains("钱城") && contacts.contains("13900000000"),
        "every contact at once: {contacts}"
    );
    assert_eq!(got[&chat.id(RS)].len(), 1, "one message: {contacts}");

    let got = chat
        .say(RS, &format!("进展 {T} 已约谈企业负责人，承诺本周内付清"))
        .await;
    assert!(to(chat, &got, ZJ).contains("本周内付清"), "{got:#?}");
    chat.say(ZJ, &format!("进展 {T} 工程款已拨付至项目账户"))
        .await;
    let got = chat
        .say(
            RS,
            &format!("办结 {T} 过程：联合约谈 措施：督促企业足额支付 群众反馈：诉求人表示满意"),
        )
        .await;
    assert!(!to(chat, &got, MENG).is_empty(), "{got:#?}");
    let got = chat.say(MENG, &format!("满意度 {T} 满意")).await;
    assert!(!to(chat, &got, RS).is_empty() && !to(chat, &got, ZJ).is_empty());
    chat.say(MENG, &format!("典型 {T} 人社、住建联动，一周内解决欠薪"))
        .await;
    let got = chat.say(RS, &format!("查询 {T}")).await;
    assert!(to(chat, &got, RS).contains("已结案"), "{got:#?}");
}

/// 独立办理: the first unit gets the path and basis; the case closes.
pub async fn independent(chat: &mut Chat) {
    submit_and_claim(chat, APPLICATION, T).await;
    let basis = "依据《保障农民工工资支付条例》第三十条，由人社局责令总包单位先行清偿";
    let got = chat
        .tap(
            MENG,
            "独立办理",
            json!({ "path_and_basis": basis }),
            &format!("独立 {T} {basis}"),
        )
        .await;
    assert!(
        to(chat, &got, RS).contains("保障农民工工资支付条例"),
        "{got:#?}"
    );
    let got = chat.say(RS, &format!("进展 {T} 已责令清偿")).await;
    assert!(to(chat, &got, RS).contains("已结案"), "{got:#?}");
}

/// 退回 and the corrected application (version 2): each inspector is left one live card.
pub async fn returned(chat: &mut Chat) {
    submit_and_claim(chat, APPLICATION, T).await;
    let reason = "请补充与区城建公司的沟通情况";
    let got = chat
        .tap(
            MENG,
            "退回补充",
            json!({ "reason": reason }),
            &format!("退回 {T} {reason}"),
        )
        .await;
    assert!(to(chat, &got, RS).contains(reason), "{got:#?}");
    let corrected = APPLICATION.replace(
        "已采取措施：已向涉事建筑企业取得联系",
        "已采取措施：已与区城建公司沟通，对方称需住建审批；已向涉事建筑企业取得联系",
    );
    let got = chat.say(RS, &corrected).await;
    assert!(to(chat, &got, RS).contains("第 2 版"), "{got:#?}");
    if chat.mode != Mode::ActionCard {
        // Principle 4: a resubmission leaves each inspector exactly one live card. (An
        // ActionCard message cannot change after sending; its buttons send commands, which
        // always act on the current version.)
        for who in [MENG, LI] {
            let live = chat.live_cards(who);
            assert_eq!(live.len(), 1, "{who}: {live:?}");
        }
    }
    let got = chat
        .tap(LI, "开始审核", json!({}), &format!("审核 {T}"))
        .await;
    assert!(to(chat, &got, RS).contains(LI), "{got:#?}");
}

/// 市级: the city 12345 supervisor is asked, and told the outcome when it is recorded.
pub async fn city(chat: &mut Chat) {
    let t = "DH2026110500031";
    submit_and_claim(chat, CITY, t).await;
    let note = "需市交通运输局协调客运线路审批";
    let got = chat
        .tap(
            MENG,
            "提请市级协调",
            json!({ "note": note }),
            &format!("市级 {t} {note}"),
        )
        .await;
    assert!(to(chat, &got, YANG).contains(note), "{got:#?}");
    let got = chat
        .say(
            YANG,
            &format!("市级结果 {t} 市交通运输局已批复恢复班线，群众表示满意"),
        )
        .await;
    assert!(to(chat, &got, RS).contains("恢复班线"), "{got:#?}");
}

/// 绿色通道: marked everywhere, hour clocks, all contacts at once.
pub async fn green_channel(chat: &mut Chat) {
    let t = "DH2026112100012";
    let got = chat.say(RS, URGENT).await;
    assert!(to(chat, &got, RS).contains("绿色通道"), "{got:#?}");
    let got = chat
        .tap(MENG, "开始审核", json!({}), &format!("审核 {t}"))
        .await;
    assert!(!to(chat, &got, RS).is_empty());
    let got = decide_joint(
        chat,
        t,
        "区住建局：督促企业复工；区城市管理局：维护现场秩序",
    )
    .await;
    assert!(to(chat, &got, ZJ).contains("绿色通道"), "{got:#?}");
    accept(chat, ZJ, t, "赵建", "13900000000", "现场核查").await;
    let got = accept(chat, CG, t, "钱城", "13900000001", "其他：现场秩序").await;
    let contacts = to(chat, &got, RS);
    assert!(
        contacts.contains("赵建") && contacts.contains("钱城"),
        "{contacts}"
    );
    chat.say(
        RS,
        &format!(
            "办结 {t} 过程：联合约谈开发企业 措施：企业复工并公布交房计划 群众反馈：购房户表示认可"
        ),
    )
    .await;
    chat.say(MENG, &format!("满意度 {t} 基本满意")).await;
}

/// The drafted 书面督办 command in the supervisor's message, as they send it after reading it.
fn drafted_supervision(message: &str) -> String {
    message
        .split('`')
        .find(|span| span.starts_with("督办 DH"))
        .unwrap_or_else(|| panic!("no drafted 督办 in {message}"))
        .to_string()
}

/// 异议 → 坚持 → 书面督办: the unit objects, the inspector insists, the supervisor issues the
/// drafted written supervision the next morning — a new answer deadline, shown to everyone it
/// concerns and reminded like any other — and the unit accepts before it.
pub async fn objection(chat: &mut Chat) {
    submit_and_claim(chat, APPLICATION, T).await;
    decide_joint(chat, T, JOINT_UNITS).await;
    let reason = "现场核查不属于本局职责";
    let got = chat
        .tap(
            CG,
            "提出异议",
            json!({ "reason": reason }),
            &format!("异议 {T} {reason}"),
        )
        .await;
    assert!(to(chat, &got, MENG).contains(reason), "{got:#?}");
    accept(chat, ZJ, T, "赵建", "13900000000", "现场核查").await;
    let got = chat
        .say(
            MENG,
            &format!("坚持 {T} 区城市管理局 工地占道属城管执法范围"),
        )
        .await;
    assert!(!to(chat, &got, CG).is_empty(), "{got:#?}");
    let draft = drafted_supervision(&to(chat, &got, YAO));
    // Issued the next morning: the 督办's deadline (11-04) is not the request's (11-03).
    chat.wait_until("2026-11-03T09:00:00+08:00").await;
    let got = chat.say(YAO, &draft).await;
    let new_due = "2026-11-04 18:00";
    for who in [CG, WU, MENG, RS, YAO] {
        let read = to(chat, &got, who);
        assert!(
            read.contains(new_due) && !read.contains("2026-11-03 18:00"),
            "{who} reads the 督办's own deadline: {read}"
        );
    }
    if chat.mode != Mode::ActionCard {
        let card = chat.card_text(CG, "协办请求");
        assert!(card.contains(new_due), "{card}");
    }
    // Half of the new time gone: the unit is reminded, as for any deadline.
    let got = chat.wait_until("2026-11-04T12:00:00+08:00").await;
    assert!(to(chat, &got, CG).contains("按书面督办答复"), "{got:#?}");
    let got = accept(chat, CG, T, "钱城", "13900000001", "现场核查").await;
    assert!(to(chat, &got, RS).contains("钱城"), "{got:#?}");
}

/// 撤回: the inspector drops a unit after its objection; the others carry on.
pub async fn withdrawal(chat: &mut Chat) {
    submit_and_claim(chat, APPLICATION, T).await;
    decide_joint(chat, T, JOINT_UNITS).await;
    let reason = "现场核查不属于本局职责";
    chat.tap(
        CG,
        "提出异议",
        json!({ "reason": reason }),
        &format!("异议 {T} {reason}"),
    )
    .await;
    let got = chat.say(MENG, &format!("撤回 {T} 区城市管理局")).await;
    assert!(!to(chat, &got, CG).is_empty(), "{got:#?}");
    let got = accept(chat, ZJ, T, "赵建", "13900000000", "现场核查").await;
    assert!(to(chat, &got, RS).contains("赵建"), "{got:#?}");
}

/// A unit that does not answer: reminders, the breach, the escalation to its leader, the
/// drafted 书面督办 with a new answer deadline, its reminders, its breach (the leader and the
/// hotline head told), then the late answer.
pub async fn overdue(chat: &mut Chat) {
    submit_and_claim(chat, APPLICATION, T).await;
    let got = decide_joint(chat, T, JOINT_UNITS).await;
    assert!(
        !to(chat, &got, WU).is_empty(),
        "the unit's leader is told: {got:#?}"
    );
    accept(chat, ZJ, T, "赵建", "13900000000", "现场核查").await;
    let got = chat.wait_until("2026-11-04T09:00:00+08:00").await;
    assert!(!to(chat, &got, CG).is_empty(), "reminded: {got:#?}");
    assert!(
        !to(chat, &got, WU).is_empty(),
        "escalated to the leader: {got:#?}"
    );
    let draft = drafted_supervision(&to(chat, &got, YAO));
    let got = chat.say(YAO, &draft).await;
    // 四(三) 书面督办: a new answer deadline, one working day from the 督办.
    let new_due = "2026-11-05 18:00";
    for who in [CG, WU, MENG, RS, YAO] {
        assert!(
            to(chat, &got, who).contains(new_due),
            "{who}: {}",
            to(chat, &got, who)
        );
    }
    let got = chat.wait_until("2026-11-06T09:00:00+08:00").await;
    assert!(to(chat, &got, CG).contains("按书面督办答复"), "{got:#?}");
    assert!(
        to(chat, &got, WU).contains("超过期限") && to(chat, &got, "李小燕").contains("超期"),
        "the leader and the hotline head: {got:#?}"
    );
    assert!(to(chat, &got, RS).contains("书面督办期限"), "{got:#?}");
    let got = accept(chat, CG, T, "钱城", "13900000001", "现场核查").await;
    assert!(to(chat, &got, RS).contains("钱城"), "{got:#?}");
}

/// The first unit lets the handling deadline pass: reminders, the breach, its leader told, the
/// drafted 书面督办 with a new deadline to complete (五(四) 限期整改), its reminders and breach,
/// then the late 办结.
pub async fn handling_overdue(chat: &mut Chat) {
    submit_and_claim(chat, APPLICATION, T).await;
    decide_joint(chat, T, "区住建局：核查项目审批及工程款拨付").await;
    accept(chat, ZJ, T, "赵建", "13900000000", "现场核查").await;
    let got = chat.wait_until("2026-11-17T09:00:00+08:00").await;
    assert!(to(chat, &got, RS).contains("超过期限"), "{got:#?}");
    let draft = drafted_supervision(&to(chat, &got, YAO));
    let got = chat.say(YAO, &draft).await;
    let new_due = "2026-11-18 18:00";
    for who in [RS, "任燕", MENG, YAO] {
        assert!(
            to(chat, &got, who).contains(new_due),
            "{who}: {}",
            to(chat, &got, who)
        );
    }
    let got = chat.wait_until("2026-11-19T09:00:00+08:00").await;
    assert!(to(chat, &got, RS).contains("按书面督办办结"), "{got:#?}");
    assert!(
        to(chat, &got, "李小燕").contains("超期"),
        "the hotline head: {got:#?}"
    );
    let got = chat
        .say(
            RS,
            &format!("办结 {T} 过程：联合约谈 措施：督促企业足额支付 群众反馈：诉求人表示满意"),
        )
        .await;
    assert!(to(chat, &got, RS).contains("超过办结期限"), "{got:#?}");
}

/// A closed typical case the district already handled, about unpaid wages with 区住建局 and
/// 区城市管理局; driven through the engine like any case.
const PAST: &str = "工单编号：DH2026100800021
工单标题：反映某劳务公司拖欠农民工工资的问题
首接单位：区人社局
已采取措施：已约谈劳务公司负责人，核实拖欠农民工工资的情况，企业以工程款未拨付为由拖延。
办理难点：工程款拨付与住建审批相关，工地现场需城管配合核查，区人社局一家无法办理。
需协调部门及事由：区住建局核查工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

/// 类似案例 (issue 18): with a closed typical case about unpaid wages on record, a new
/// application about the same problem that asks only for 区住建局 shows the inspectors the past
/// case and the unit that helped then; the hotline asks `相似` and `案例`; a liaison may not.
pub async fn similar(chat: &mut Chat) {
    let past = "DH2026100800021";
    submit_and_claim(chat, PAST, past).await;
    decide_joint(
        chat,
        past,
        "区住建局：核查工程款拨付；区城市管理局：协助现场核查",
    )
    .await;
    accept(chat, ZJ, past, "赵建", "13900000000", "数据共享、政策解释").await;
    accept(chat, CG, past, "钱城", "13900000001", "现场核查").await;
    chat.wait_until("2026-11-06T10:00:00+08:00").await;
    chat.say(
        RS,
        &format!("办结 {past} 过程：联合约谈 措施：住建督促拨付工程款 群众反馈：工资已结清"),
    )
    .await;
    chat.say(MENG, &format!("满意度 {past} 满意")).await;
    chat.say(
        MENG,
        &format!("典型 {past} 人社牵头、住建督促拨款，一周内结清欠薪"),
    )
    .await;
    // What people read from here on is the scenario; the past case is its set-up.
    chat.wait_until("2026-11-09T09:00:00+08:00").await;
    chat.forget_so_far();

    let application = APPLICATION.replace(
        "需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。",
        "需协调部门及事由：区住建局核查项目审批及工程款拨付。",
    );
    let got = chat.say(RS, &application).await;
    let card = to(chat, &got, MENG);
    for part in [
        "类似案例",
        past,
        "【典型】",
        "人社牵头、住建督促拨款",
        "类似案例中协办过、本次未列出的单位：区城市管理局",
    ] {
        assert!(card.contains(part), "{part}: {card}");
    }
    assert!(
        !to(chat, &got, RS).contains("类似案例"),
        "the history is the hotline's: {got:#?}"
    );
    let got = chat.say(MENG, &format!("相似 {T}")).await;
    assert!(to(chat, &got, MENG).contains(past), "{got:#?}");
    let got = chat.say(MENG, "案例 拖欠工资").await;
    assert!(to(chat, &got, MENG).contains(past), "{got:#?}");
    let got = chat.say(RS, &format!("相似 {T}")).await;
    let refused = to(chat, &got, RS);
    assert!(
        refused.contains("无法查看相似案例") && !refused.contains(past),
        "{refused}"
    );
    let got = chat
        .tap(MENG, "开始审核", json!({}), &format!("审核 {T}"))
        .await;
    assert!(to(chat, &got, RS).contains(MENG), "{got:#?}");
}

/// Roster commands: a unit's leader lists and changes the unit's roster.
pub async fn roster(chat: &mut Chat) {
    let got = chat.say("任燕", "名单").await;
    assert!(to(chat, &got, "任燕").contains("王联络"), "{got:#?}");
    let got = chat
        .say_in_group("任燕", "@联合调处助手 移除联络员 @王联络", &[RS])
        .await;
    assert!(to(chat, &got, "任燕").contains("王联络"), "{got:#?}");
    let got = chat
        .say_in_group("任燕", "@联合调处助手 设置联络员 @王联络", &[RS])
        .await;
    assert!(to(chat, &got, "任燕").contains("王联络"), "{got:#?}");
}

/// Runs a scenario in every mode; card-template mode's transcripts are the golden ones.
macro_rules! in_every_mode {
    ($name:literal, $scenario:ident) => {
        for mode in Mode::ALL {
            let mut chat = Chat::in_mode(mode);
            $scenario(&mut chat).await;
            chat.assert_principles();
            golden::check($name, &chat);
        }
    };
}

#[tokio::test]
async fn joint_in_every_mode() {
    in_every_mode!("joint", joint);
}

#[tokio::test]
async fn independent_in_every_mode() {
    in_every_mode!("independent", independent);
}

#[tokio::test]
async fn return_and_resubmit_in_every_mode() {
    in_every_mode!("return-resubmit", returned);
}

#[tokio::test]
async fn city_level_in_every_mode() {
    in_every_mode!("city", city);
}

#[tokio::test]
async fn green_channel_in_every_mode() {
    in_every_mode!("green-channel", green_channel);
}

#[tokio::test]
async fn objection_insist_supervision_in_every_mode() {
    in_every_mode!("objection-supervision", objection);
}

#[tokio::test]
async fn withdrawal_in_every_mode() {
    in_every_mode!("withdrawal", withdrawal);
}

#[tokio::test]
async fn overdue_reminders_escalation_in_every_mode() {
    in_every_mode!("overdue", overdue);
}

#[tokio::test]
async fn handling_overdue_supervision_in_every_mode() {
    in_every_mode!("handling-overdue", handling_overdue);
}

#[tokio::test]
async fn similar_cases_in_every_mode() {
    in_every_mode!("similar", similar);
}

#[tokio::test]
async fn roster_commands_in_every_mode() {
    in_every_mode!("roster", roster);
}

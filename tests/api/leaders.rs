//! Integration tests: unit leaders change their unit's roster from DingTalk (设置联络员 @某人 in a
//! group), the change is kept in the store across restarts and in the exported file, open cases
//! follow it (the pending coordination card and the next reminder reach the new liaison), and
//! anyone but the unit's leader or an admin is refused in Chinese. With `[workflow]
//! require_leader_confirmation` on, an application waits for the first unit's leader, who sends
//! it back (退回联络员) or agrees (同意), which starts the mechanism clocks.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde_json::Value;
use tiaochu::roster::{Person, Role, Roster};
use tiaochu::store::TimerState;
use tiaochu::workflow::{Case, ClockKind, State};

use crate::support::{CG, RS, World, WorldBuilder, ZJ, default_settings, world};

const ZJ_LEADER: &str = "local:区住建局:保国钰";
const INSPECTOR: &str = "local:区12345热线:孟艳秋";
/// The new liaison of 区住建局, known to DingTalk but not to the roster file.
const NEW: &str = "zj-new-001";
const ADMIN: &str = "admin-001";

const APPLICATION: &str = "工单编号：DH2026110300017
工单标题：反映某建筑公司拖欠薪资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况，企业方承认存在拖欠行为。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

/// The service's world: the shipped roster with three liaisons and an admin.
fn file_world(confirm: bool) -> WorldBuilder {
    world()
        .the_liaisons()
        .person(Person::new(
            "管理员",
            "区12345热线",
            "系统管理员",
            vec![Role::Admin],
            ADMIN,
            "",
        ))
        .leader_confirmation(confirm)
}

/// The service in sandbox mode, whose people write in a work group. `g.engine`, `g.clock`,
/// `g.calendar`: the world's.
struct Group(World);

impl std::ops::Deref for Group {
    type Target = World;
    fn deref(&self) -> &World {
        &self.0
    }
}

impl Group {
    fn new() -> Group {
        Group::with_confirmation(false)
    }

    /// `confirm`: `[workflow] require_leader_confirmation`.
    fn with_confirmation(confirm: bool) -> Group {
        Group(file_world(confirm).build())
    }

    /// A restart: the file roster, then the stored changes laid over it.
    fn restart(&mut self) {
        self.0.restart();
    }

    /// `from` sends `text` in a group, five minutes after the last message; `at` are the staff
    /// ids DingTalk lists in `atUsers` (the robot's own entry, without one, comes first as
    /// DingTalk sends it).
    async fn say(&mut self, from: &str, text: &str, at: &[&str]) -> BTreeMap<String, Vec<String>> {
        self.0.advance(SignedDuration::from_mins(5));
        let mut message = self.0.message(from, text).in_group("cid-group", at);
        if at.is_empty() {
            message = message.with("conversationType", "1");
        }
        self.0.send(&message).await;
        self.received()
    }

    fn received(&mut self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in self.0.new_outbox() {
            let v: Value = serde_json::from_slice(&row.payload).expect("json");
            let mut text = format!(
                "{}\n{}",
                v["title"].as_str().unwrap_or(""),
                v["text"].as_str().unwrap_or("")
            );
            if v["card"].is_object() {
                text.push_str("\n[卡片]");
            }
            out.entry(row.target).or_default().push(text);
        }
        out
    }
}

fn one(got: &BTreeMap<String, Vec<String>>, to: &str) -> String {
    got.get(to)
        .unwrap_or_else(|| panic!("nothing for {to}: {got:#?}"))
        .join("\n---\n")
}

/// A joint case with a pending coordination request to 区住建局.
async fn pending_request(g: &mut Group) {
    g.say(RS, APPLICATION, &[]).await;
    g.say(INSPECTOR, "审核 DH2026110300017", &[]).await;
    let got = g
        .say(
            INSPECTOR,
            "联合 DH2026110300017 区住建局：核查项目审批及工程款拨付；区城市管理局：协助现场核查",
            &[],
        )
        .await;
    assert!(one(&got, ZJ).contains("[卡片]"), "{got:#?}");
}

#[tokio::test]
async fn a_leader_replaces_the_liaison_and_the_open_request_follows() {
    let mut g = Group::new();
    pending_request(&mut g).await;

    // 保国钰, 区住建局's leader, hands the liaison work from 赵联络 to a newcomer.
    let got = g.say(ZJ_LEADER, "移除联络员 @赵联络", &[ZJ]).await;
    assert!(
        one(&got, ZJ).contains("赵联络（区住建局）不再担任联络员"),
        "{got:#?}"
    );
    let got = g.say(ZJ_LEADER, "设置联络员 @孙新人", &[NEW]).await;
    let new = one(&got, NEW);
    assert!(new.contains("孙新人（区住建局）设为联络员"), "{new}");
    assert!(
        new.contains("[卡片]") && new.contains("区住建局"),
        "the pending card: {new}"
    );
    assert!(one(&got, ZJ_LEADER).contains("名单变更"), "{got:#?}");
    let head = g
        .engine
        .roster()
        .people_with_role(Role::HotlineHead)
        .next()
        .map(|p| p.id().to_string())
        .expect("hotline head");
    assert!(one(&got, &head).contains("孙新人"), "{got:#?}");
    assert!(
        !got.contains_key(ZJ),
        "the old liaison gets no card: {got:#?}"
    );

    let roster = g.engine.roster();
    let p = roster.person(NEW).expect("new liaison in force");
    assert_eq!((p.name.as_str(), p.unit.as_str()), ("孙新人", "区住建局"));
    assert!(!roster.person(ZJ).expect("kept").has_role(Role::Liaison));

    // The timeline records the change on the open case.
    let got = g.say(RS, "查询 DH2026110300017", &[]).await;
    assert!(one(&got, RS).contains("单位联络人变更"), "{got:#?}");

    // The next reminder of 区住建局's answer goes to the new liaison, not the old.
    let timers = g
        .engine
        .store()
        .read_blocking(|r| {
            let case = r.case_by_ticket(&crate::support::ticket_no("DH2026110300017"))?;
            r.timers_for_case(case[0].id)
        })
        .expect("timers");
    let mut pending: Vec<_> = timers
        .into_iter()
        .filter(|t| t.state == TimerState::Pending && t.key.contains("区住建局"))
        .collect();
    pending.sort_by_key(|t| t.due_at);
    let next = pending.first().expect("a pending reminder for 区住建局");
    g.clock.set(next.due_at);
    g.fire_due().await;
    let got = g.received();
    assert!(
        got.contains_key(NEW),
        "reminder to the new liaison: {got:#?}"
    );
    assert!(
        !got.contains_key(ZJ),
        "nothing to the old liaison: {got:#?}"
    );

    // A restart keeps the change; the export writes it in the file format.
    g.restart();
    let roster = g.engine.roster();
    assert!(
        roster
            .person(NEW)
            .is_some_and(|p| p.has_role(Role::Liaison))
    );
    let exported = roster.to_toml();
    let again = Roster::from_toml_str(&exported, "export").expect("export parses");
    assert!(
        again
            .person(NEW)
            .is_some_and(|p| p.has_role(Role::Liaison) && p.unit == "区住建局")
    );
    assert!(exported.contains("name = \"孙新人\""), "{exported}");
    let diff = g.engine.roster_file().differences(&roster);
    assert!(diff.iter().any(|d| d.contains("孙新人")), "{diff:?}");
    let history = g
        .engine
        .store()
        .read_blocking(|r| r.roster_changes())
        .expect("history");
    let actions: Vec<(&str, &str)> = history
        .iter()
        .map(|h| (h.action.as_str(), h.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("remove_liaison", ZJ_LEADER), ("set_liaison", ZJ_LEADER)]
    );
}

#[tokio::test]
async fn others_are_refused_in_chinese() {
    let mut g = Group::new();
    // A liaison of another unit naming 区住建局.
    let got = g.say(CG, "设置联络员 区住建局 @孙新人", &[NEW]).await;
    assert!(
        one(&got, CG).contains("只有本单位分管领导可以设置联络员"),
        "{got:#?}"
    );
    // 区住建局's own liaison is no leader either.
    let got = g.say(ZJ, "设置联络员 @孙新人", &[NEW]).await;
    assert!(
        one(&got, ZJ).contains("您在名单中的角色是联络员"),
        "{got:#?}"
    );
    // A leader of another unit may not change 区住建局.
    let rs_leader = g
        .engine
        .roster()
        .people_in_unit_with_role("区人社局", Role::Leader)
        .next()
        .map(|p| p.id().to_string())
        .expect("leader");
    let got = g
        .say(&rs_leader, "设置联络员 区住建局 @孙新人", &[NEW])
        .await;
    assert!(
        one(&got, &rs_leader).contains("只能调整本单位的名单"),
        "{got:#?}"
    );
    // Someone of another unit cannot become 区住建局's liaison.
    let got = g.say(ZJ_LEADER, "设置联络员 @钱联络", &[CG]).await;
    assert!(
        one(&got, ZJ_LEADER).contains("是区城市管理局的人员"),
        "{got:#?}"
    );
    assert!(g.engine.roster().person(NEW).is_none(), "nothing changed");
    let history = g
        .engine
        .store()
        .read_blocking(|r| r.roster_changes())
        .expect("history");
    assert!(history.is_empty());

    // 名单 shows the unit as it is.
    let got = g.say(ZJ, "名单", &[]).await;
    let list = one(&got, ZJ);
    assert!(
        list.contains("赵联络：联络员") && list.contains("保国钰：分管领导"),
        "{list}"
    );
}

#[tokio::test]
async fn a_new_leader_takes_over_and_an_admin_binds() {
    let mut g = Group::new();
    let got = g
        .say(ZJ_LEADER, "更换分管领导 @周领导", &["zj-lead-2"])
        .await;
    assert!(
        one(&got, "zj-lead-2").contains("周领导（区住建局）任分管领导"),
        "{got:#?}"
    );
    let roster = g.engine.roster();
    assert!(
        roster
            .person("zj-lead-2")
            .is_some_and(|p| p.has_role(Role::Leader))
    );
    assert!(
        !roster
            .person(ZJ_LEADER)
            .expect("kept")
            .has_role(Role::Leader)
    );
    // The former leader may no longer change the unit.
    let got = g.say(ZJ_LEADER, "设置联络员 @孙新人", &[NEW]).await;
    assert!(
        one(&got, ZJ_LEADER).contains("只有本单位分管领导"),
        "{got:#?}"
    );

    let got = g.say(ADMIN, "绑定 任燕 @任燕", &["ry-001"]).await;
    assert!(
        one(&got, "ry-001").contains("任燕（区人社局）绑定钉钉账号 ry-001"),
        "{got:#?}"
    );
    assert_eq!(
        g.engine.roster().person("ry-001").map(|p| p.name.clone()),
        Some("任燕".to_string())
    );
    // Only an admin binds.
    let got = g.say(ZJ, "绑定 何军 @何军", &["hj-001"]).await;
    assert!(one(&got, ZJ).contains("只有管理员可以绑定"), "{got:#?}");
}

/// 任燕, 区人社局's leader in the shipped roster.
const RS_LEADER: &str = "local:区人社局:任燕";

fn stored_case(g: &Group) -> Case {
    let rows = g
        .engine
        .store()
        .read_blocking(|r| r.case_by_ticket(&crate::support::ticket_no("DH2026110300017")))
        .expect("case");
    serde_json::from_str(&rows[0].data_json).expect("case json")
}

#[tokio::test]
async fn with_confirmation_on_the_leader_returns_then_agrees_and_the_clocks_start_then() {
    assert!(
        !default_settings().workflow.require_leader_confirmation,
        "off by default"
    );
    let mut g = Group::with_confirmation(true);

    // The application waits for the leader: nothing reaches the inspectors, no clock runs.
    let got = g.say(RS, APPLICATION, &[]).await;
    let receipt = one(&got, RS);
    assert!(
        receipt.contains("申请待分管领导确认") && receipt.contains("任燕"),
        "{receipt}"
    );
    let ask = one(&got, RS_LEADER);
    assert!(
        ask.contains("同意 DH2026110300017") && ask.contains("退回联络员 DH2026110300017"),
        "{ask}"
    );
    assert!(!got.contains_key(INSPECTOR), "{got:#?}");
    let case = stored_case(&g);
    assert_eq!(case.state, State::AwaitingLeader);
    assert!(case.clocks.is_empty(), "{:?}", case.clocks);

    // Inspectors cannot claim it yet; only 区人社局's leader may decide on it.
    let got = g.say(INSPECTOR, "审核 DH2026110300017", &[]).await;
    assert!(one(&got, INSPECTOR).contains("待分管领导确认"), "{got:#?}");
    let got = g.say(ZJ_LEADER, "同意 DH2026110300017", &[]).await;
    assert!(
        one(&got, ZJ_LEADER).contains("须由首接单位“区人社局”的分管领导确认"),
        "{got:#?}"
    );
    let got = g.say(RS, "同意 DH2026110300017", &[]).await;
    assert!(
        one(&got, RS).contains("您在名单中属于“区人社局”（联络员）"),
        "{got:#?}"
    );
    assert_eq!(stored_case(&g).state, State::AwaitingLeader);

    // 退回联络员: the liaison gets the reason; the inspectors still know nothing.
    let got = g
        .say(
            RS_LEADER,
            "退回联络员 DH2026110300017 请补充与企业约谈的情况",
            &[],
        )
        .await;
    let back = one(&got, RS);
    assert!(
        back.contains("退回联络员") && back.contains("请补充与企业约谈的情况"),
        "{back}"
    );
    assert!(!got.contains_key(INSPECTOR), "{got:#?}");
    assert_eq!(stored_case(&g).state, State::Returned);

    // The corrected application goes to the leader again.
    let corrected = APPLICATION.replace(
        "企业方承认存在拖欠行为。",
        "企业方承认存在拖欠行为，已约谈企业负责人。",
    );
    let got = g.say(RS, &corrected, &[]).await;
    assert!(one(&got, RS_LEADER).contains("第 2 版"), "{got:#?}");
    assert!(!got.contains_key(INSPECTOR), "{got:#?}");
    let waiting = stored_case(&g);
    assert_eq!((waiting.version, waiting.state), (2, State::AwaitingLeader));
    assert!(waiting.clocks.is_empty());

    // 同意: the review card reaches the inspectors and the clocks start at this moment.
    let got = g.say(RS_LEADER, "同意 DH2026110300017", &[]).await;
    let agreed_at = g.now();
    assert!(one(&got, INSPECTOR).contains("[卡片]"), "{got:#?}");
    assert!(one(&got, RS).contains("申请已登记"), "{got:#?}");
    let case = stored_case(&g);
    assert_eq!(case.state, State::Submitted);
    assert_eq!(case.received_at, agreed_at);
    assert!(
        case.application
            .leader_approval
            .starts_with("分管领导 任燕 于 2026-11-02 ")
            && case
                .application
                .leader_approval
                .ends_with("在钉钉中确认同意"),
        "{}",
        case.application.leader_approval
    );
    let calendar = &g.calendar;
    let review = case.clock(&ClockKind::ReviewStart).expect("review clock");
    assert_eq!(review.started, agreed_at);
    assert_eq!(
        review.due,
        calendar.add_working_minutes(agreed_at, 60).due,
        "五(一): one working hour from the confirmation"
    );
    let decision = case.clock(&ClockKind::Decision).expect("decision clock");
    assert_eq!(decision.started, agreed_at);

    // Confirmed once: a second 同意 is refused; the inspector can now claim.
    let got = g.say(RS_LEADER, "同意 DH2026110300017", &[]).await;
    assert!(one(&got, RS_LEADER).contains("待认领审核"), "{got:#?}");
    let got = g.say(INSPECTOR, "审核 DH2026110300017", &[]).await;
    assert!(one(&got, RS).contains("已开始审核"), "{got:#?}");
}

#[tokio::test]
async fn with_confirmation_off_the_pasted_statement_counts() {
    let mut g = Group::new();
    let got = g.say(RS, APPLICATION, &[]).await;
    assert!(one(&got, INSPECTOR).contains("[卡片]"), "{got:#?}");
    assert!(!got.contains_key(RS_LEADER), "{got:#?}");
    let case = stored_case(&g);
    assert_eq!(case.state, State::Submitted);
    let got = g.say(RS_LEADER, "同意 DH2026110300017", &[]).await;
    assert!(
        one(&got, RS_LEADER).contains("只有待分管领导确认的申请"),
        "{got:#?}"
    );
}

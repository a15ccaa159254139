//! Integration tests: one bad row never stops the queue (issue 15). A message about a case whose
//! document does not read, and the timers of a case whose next decision would break an
//! invariant, are quarantined — the admin is told once — while the next application is still
//! registered and answered; `tiaochu quarantine retry` replays a fixed row; a busy database is
//! waited out without quarantine; and a Stream card tap whose store write fails is not
//! acknowledged, so its redelivery is applied, once.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tiaochu::roster::{Person, Role};
use tiaochu::settings::DingtalkMode;
use tiaochu::store::{QuarantinedRow, StoreError, TimerState};

use crate::card_callbacks::{self, INSPECTOR, review, settle, snapshot};
use crate::fake_stream::{FakeStream, callback_frame, card_frame, system_frame};
use crate::support::{RS, START_MS, World, robot_text, spawn_app, world};
const ADMIN: &str = "u-admin";
const NOTICE_TITLE: &str = "处理失败，已隔离";

fn application(ticket: &str, title: &str) -> String {
    format!(
        "工单编号：{ticket}
工单标题：{title}
首接单位：区人社局
已采取措施：已向涉事企业取得联系，核实基本情况，企业方承认存在问题。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。"
    )
}

const T1: &str = "DH2026110300017";
const T2: &str = "DH2026110300018";
const T3: &str = "DH2026110300019";

/// A sandbox-mode service without HTTP, with an admin on the roster to be told about
/// quarantined rows. `desk.store`, `desk.engine`, `desk.clock`: the world's.
struct Desk(World);

impl std::ops::Deref for Desk {
    type Target = World;
    fn deref(&self) -> &World {
        &self.0
    }
}

impl Desk {
    fn new() -> Desk {
        Desk(
            world()
                .the_liaisons()
                .person(Person::new(
                    "孙管理",
                    "区12345热线",
                    "管理员",
                    vec![Role::Admin],
                    ADMIN,
                    "",
                ))
                .build(),
        )
    }

    /// `from` sends `text` in a 1:1 chat, five minutes after the last message; returns the
    /// inbox id. Nothing is processed yet.
    async fn send(&mut self, from: &str, text: &str) -> i64 {
        self.0.advance(SignedDuration::from_mins(5));
        let message = self.0.message(from, text);
        self.0.deliver(&message).await
    }

    async fn step(&self) -> usize {
        self.0.process().await
    }

    /// (title, text) of every sandbox message to `to`, oldest first.
    fn messages_to(&self, to: &str) -> Vec<(String, String)> {
        self.outbox()
            .into_iter()
            .filter(|r| r.target == to)
            .map(|r| {
                let v: Value = serde_json::from_slice(&r.payload).expect("sandbox payload");
                (
                    v["title"].as_str().unwrap_or("").to_string(),
                    v["text"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn admin_notices(&self) -> Vec<String> {
        self.messages_to(ADMIN)
            .into_iter()
            .filter(|(title, _)| title == NOTICE_TITLE)
            .map(|(_, text)| text)
            .collect()
    }

    fn quarantined(&self) -> Vec<QuarantinedRow> {
        self.store
            .read_blocking(|r| r.quarantined(100))
            .expect("quarantine")
    }

    fn case_doc(&self, ticket: &str) -> String {
        let ticket = ticket.to_string();
        self.store
            .read_blocking(move |r| r.case_by_ticket(&crate::support::ticket_no(&ticket)))
            .expect("case")
            .first()
            .expect("a case for the ticket")
            .data_json
            .clone()
    }

    /// Overwrites the case document behind the service's back, as a bad restore or a bug would.
    fn set_case_doc(&self, ticket: &str, doc: &str) {
        let conn = rusqlite::Connection::open(self.db_path()).expect("open");
        let n = conn
            .execute(
                "UPDATE cases SET data_json = ?1 WHERE ticket_no = ?2",
                [doc, ticket],
            )
            .expect("update");
        assert_eq!(n, 1);
    }

    fn timers(&self, ticket: &str) -> Vec<tiaochu::store::TimerRow> {
        let ticket = ticket.to_string();
        self.store
            .read_blocking(move |r| -> Result<_, StoreError> {
                let case = r
                    .case_by_ticket(&crate::support::ticket_no(&ticket))?
                    .remove(0);
                r.timers_for_case(case.id)
            })
            .expect("timers")
    }

    fn registered(&self, ticket: &str) -> bool {
        let ticket = ticket.to_string();
        !self
            .store
            .read_blocking(move |r| r.case_by_ticket(&crate::support::ticket_no(&ticket)))
            .expect("case")
            .is_empty()
    }
}

/// Runs the built `tiaochu` on the desk's database.
fn tiaochu(desk: &Desk, args: &[&str]) -> (i32, String, String) {
    let out = crate::support::cli()
        .args(args)
        .env("TIAOCHU_STORE__PATH", desk.db_path())
        .output()
        .expect("run tiaochu");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_corrupt_case_is_quarantined_the_next_application_answered_and_retry_replays_it() {
    let mut desk = Desk::new();
    desk.send(RS, &application(T1, "反映某建筑公司拖欠薪资的问题"))
        .await;
    assert_eq!(desk.step().await, 1);
    assert!(desk.registered(T1));
    let good = desk.case_doc(T1);
    desk.set_case_doc(T1, r#"{"not":"a case"}"#);

    // A re-paste about the broken case, then another person's… a new application behind it.
    let stuck = desk
        .send(RS, &application(T1, "反映某建筑公司拖欠薪资的问题"))
        .await;
    desk.send(RS, &application(T2, "反映某小区物业拒不退还押金的问题"))
        .await;
    let answers_before = desk.messages_to(RS).len();
    assert_eq!(desk.step().await, 2, "one quarantined, one processed");

    assert!(
        desk.registered(T2),
        "the application behind it is registered"
    );
    let answers = desk.messages_to(RS);
    assert!(
        answers[answers_before..]
            .iter()
            .any(|(_, text)| text.contains(T2)),
        "and answered: {answers:#?}"
    );
    let held = desk.quarantined();
    assert_eq!(held.len(), 1, "{held:#?}");
    assert_eq!(held[0].id.to_string(), format!("inbox:{stuck}"));
    assert_eq!(held[0].attempts, 1);
    assert!(held[0].reason.contains("案件数据无法读取"), "{held:#?}");
    let notices = desk.admin_notices();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert!(
        notices[0].contains(&format!("inbox:{stuck}")) && notices[0].contains("quarantine retry"),
        "{}",
        notices[0]
    );
    let backlog = desk
        .store
        .read_blocking(|r| r.backlog(Timestamp::UNIX_EPOCH, Duration::ZERO))
        .expect("backlog");
    assert_eq!((backlog.quarantined, backlog.inbox_pending), (1, 0));

    // Later steps leave it alone and tell nobody again.
    assert_eq!(desk.step().await, 0);
    assert_eq!(desk.admin_notices().len(), 1);

    // The operator fixes the case and replays the message.
    let (code, out, err) = tiaochu(&desk, &["quarantine", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).expect("JSON list");
    assert_eq!(listed[0]["id"], format!("inbox:{stuck}"), "{out}");
    desk.set_case_doc(T1, &good);
    let (code, out, err) = tiaochu(&desk, &["quarantine", "retry", &format!("inbox:{stuck}")]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = tiaochu(&desk, &["quarantine", "retry", &format!("inbox:{stuck}")]);
    assert_eq!(code, 1, "nothing left to release: {err}");
    assert_eq!(desk.step().await, 1);
    let row = desk
        .store
        .read_blocking(move |r| r.inbox(stuck))
        .expect("read")
        .expect("row");
    assert!(
        row.finished_at.is_some() && row.quarantined_at.is_none(),
        "{row:?}"
    );
    assert_eq!(row.attempts, 2, "the quarantined try and the replay");
    assert!(desk.quarantined().is_empty());
    assert_eq!(desk.admin_notices().len(), 1);
}

#[tokio::test]
async fn timers_of_a_case_breaking_an_invariant_are_quarantined_and_the_rest_fire() {
    let mut desk = Desk::new();
    desk.send(RS, &application(T1, "反映某建筑公司拖欠薪资的问题"))
        .await;
    desk.send(RS, &application(T2, "反映某小区物业拒不退还押金的问题"))
        .await;
    assert_eq!(desk.step().await, 2);
    let good = desk.case_doc(T1);
    let mut broken: Value = serde_json::from_str(&good).expect("case JSON");
    // A version without its previous versions: any decision on this case breaks an invariant.
    broken["version"] = json!(9);
    desk.set_case_doc(T1, &broken.to_string());

    let later: Timestamp = "2026-11-02T17:00:00+08:00".parse().expect("later");
    desk.clock.set(later);
    let report = desk.fire_due().await;
    assert!(report.quarantined > 0, "{report:?}");
    assert!(report.fired > 0, "the other case's timers fire: {report:?}");

    let held: Vec<_> = desk
        .timers(T1)
        .into_iter()
        .filter(|t| t.quarantined_at.is_some())
        .collect();
    assert_eq!(held.len(), report.quarantined);
    assert!(held.iter().all(|t| t.state == TimerState::Pending));
    assert!(
        desk.timers(T2)
            .iter()
            .any(|t| t.state == TimerState::Fired && t.key.contains("review_start")),
        "{:#?}",
        desk.timers(T2)
    );
    let notices = desk.admin_notices();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert!(
        notices[0].contains("TC-2026-0001") && notices[0].contains("内部错误"),
        "{}",
        notices[0]
    );

    // The next application is still registered and answered.
    desk.send(RS, &application(T3, "反映某商户占道经营的问题"))
        .await;
    assert_eq!(desk.step().await, 1);
    assert!(desk.registered(T3));
    assert!(desk.messages_to(RS).iter().any(|(_, t)| t.contains(T3)));

    // The next pass neither fires the quarantined timers nor tells anyone again.
    let again = desk.fire_due().await;
    assert_eq!((again.quarantined, again.fired), (0, 0), "{again:?}");
    assert_eq!(desk.admin_notices().len(), 1);

    // Fixed and released, they fire.
    desk.set_case_doc(T1, &good);
    let (code, out, err) = tiaochu(&desk, &["quarantine", "retry", "--all"]);
    assert_eq!(code, 0, "{out}{err}");
    let replay = desk.fire_due().await;
    assert_eq!(replay.fired + replay.deferred, held.len(), "{replay:?}");
    assert!(desk.timers(T1).iter().all(|t| t.quarantined_at.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_database_is_waited_out_without_quarantine() {
    let mut desk = Desk::new();
    let id = desk
        .send(RS, &application(T1, "反映某建筑公司拖欠薪资的问题"))
        .await;
    // Another process holds the write lock longer than the busy timeout (5 s): the first try
    // fails with SQLITE_BUSY, the retry after the backoff gets through.
    let lock = rusqlite::Connection::open(desk.db_path()).expect("open");
    lock.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5600));
        lock.execute_batch("COMMIT").expect("unlock");
    });
    assert_eq!(desk.step().await, 1);
    holder.join().expect("holder");

    let row = desk
        .store
        .read_blocking(move |r| r.inbox(id))
        .expect("read")
        .expect("row");
    assert_eq!(row.outcome.as_deref(), Some("applied"), "{row:?}");
    assert_eq!(row.attempts, 2, "the busy try counts");
    assert!(row.quarantined_at.is_none());
    assert!(desk.quarantined().is_empty());
    assert!(desk.admin_notices().is_empty());
    assert!(desk.messages_to(RS).iter().any(|(_, t)| t.contains(T1)));
}

#[tokio::test]
async fn a_tap_whose_write_fails_is_not_acknowledged_and_its_redelivery_applies_once() {
    let gateway = FakeStream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = card_callbacks::roster_file(dir.path());
    let api_base = gateway.api_base.clone();
    let app = spawn_app(move |s| {
        s.dingtalk.mode = DingtalkMode::Stream;
        s.dingtalk.api_base = api_base;
        s.dingtalk.app_key = "ding-stream-app".into();
        s.dingtalk.card_template_id = "tpl.schema".into();
        s.roster.path = roster;
    })
    .await;
    gateway.connection(0).await;
    let data = robot_text(
        "msg-q1",
        card_callbacks::RS,
        card_callbacks::APPLICATION,
        START_MS,
    )
    .with("senderNick", "王联络")
    .with("conversationId", "cid-rs")
    .with("robotCode", "ding-stream-app");
    let frame = callback_frame("f-app", "/v1.0/im/bot/messages/get", &data);
    gateway.send(0, frame.to_string());
    gateway.acked("f-app", 1).await;
    settle(&app, false).await;
    assert_eq!(snapshot(&app).await.state, "submitted");

    // A full disk: the tap (padded, so it cannot fit in free pages) cannot be stored.
    app.store.set_max_page_count(1).await.expect("cap");
    let tap = card_frame(
        "f-claim",
        &review(&app, INSPECTOR),
        INSPECTOR,
        "claim_btn",
        json!({"action": "claim", "note": "备".repeat(100_000)}),
    );
    gateway.send(0, tap.clone());
    gateway
        .wait_for("the write failed", Duration::from_secs(10), |_| {
            app.store.write_failure()
        })
        .await;
    // A ping behind the tap is answered, so the tap's answer would have been sent by now.
    gateway.send(0, system_frame("p-1", "ping", &json!({"opaque": "o"})));
    gateway.acked("p-1", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        gateway.acks_for("f-claim").is_empty(),
        "nothing was stored, so nothing is acknowledged"
    );
    assert!(card_callbacks::card_rows(&app).await.is_empty());
    assert_eq!(snapshot(&app).await.state, "submitted");

    // Room again; DingTalk delivers the tap again, and once more (its ACK lost on the way).
    app.store.set_max_page_count(1 << 30).await.expect("lift");
    gateway.send(0, tap.clone());
    let ack = gateway.acked("f-claim", 1).await;
    let answer = &ack[0].data()["response"];
    assert!(
        card_callbacks::card(answer)["status"]
            .as_str()
            .is_some_and(|s| s.contains("开始审核")),
        "{answer}"
    );
    assert_eq!(card_callbacks::error(answer), "");
    gateway.send(0, tap);
    gateway.acked("f-claim", 2).await;

    assert_eq!(snapshot(&app).await.state, "under_review");
    let rows = card_callbacks::card_rows(&app).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].outcome.as_deref(), Some("applied"));
    let claims = app
        .store
        .read(|r| -> Result<_, StoreError> {
            let case = r
                .case_by_ticket(&crate::support::ticket_no(card_callbacks::T))?
                .remove(0);
            Ok(r.events_for_case(case.id)?
                .into_iter()
                .filter(|e| e.kind() == tiaochu::workflow::EventKind::Claimed)
                .count())
        })
        .await
        .expect("events");
    assert_eq!(claims, 1, "applied exactly once");
    app.shutdown.trigger();
}

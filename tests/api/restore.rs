//! The restore rehearsal (issue 8): a live database is backed up with the real `tiaochu backup`
//! command while signed robot callbacks keep arriving, a fresh service is started on the copy,
//! and the case goes on there — its pending timers fire, the outbox rows that were still
//! waiting are delivered to the fake DingTalk, and a new command on the restored case works.
//! Also the shared harness of the operations tests: a roster whose people have staff ids and a
//! service built on a given database file and clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use tiaochu::app::{App, AppError, Shutdown};
use tiaochu::clock::{Clock, ManualClock};
use tiaochu::dingtalk::sign::callback_sign;
use tiaochu::roster::{Person, Role};
use tiaochu::settings::DingtalkMode;
use tiaochu::store::{OutboxState, Store, TimerState};

use crate::fake_dingtalk::{FakeDingtalk, Fault};
use crate::support::{START_MS, hv};

pub const RS: &str = "u-rs-liaison";
pub const INSPECTOR: &str = "u-inspector-meng";
pub const TICKET: &str = "DH2026110300017";

/// An application from 区人社局 for [`TICKET`]; `extra` is appended to the measures taken (the
/// logging test plants a citizen's phone number there).
pub fn application(extra: &str) -> String {
    format!(
        "工单编号：{TICKET}
工单标题：反映某建筑公司拖欠薪资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况。{extra}
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。"
    )
}

/// The shipped roster with staff ids for the inspector 孟艳秋 and a 区人社局 liaison.
pub fn roster_file(dir: &Path) -> PathBuf {
    crate::support::write_roster(
        dir,
        &[("孟艳秋", INSPECTOR)],
        vec![Person::new(
            "王联络",
            "区人社局",
            "科员",
            vec![Role::Liaison],
            RS,
            "13800000001",
        )],
    )
}

/// A running service on a given database file and manual clock, in http mode against `fake`.
pub struct Service {
    pub base: String,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub shutdown: Shutdown,
    pub server: tokio::task::JoinHandle<Result<(), AppError>>,
    pub client: reqwest::Client,
    pub secret: String,
    /// Callbacks signed so far: each is signed a millisecond earlier than the one before, as a
    /// (timestamp, sign) pair carries one message only.
    pub signed: Arc<AtomicI64>,
}

impl Service {
    pub async fn start(db: &Path, roster: &Path, fake: &FakeDingtalk, at_ms: i64) -> Service {
        let mut settings = crate::support::default_settings();
        settings.store.path = db.to_path_buf();
        settings.roster.path = roster.to_path_buf();
        settings.dingtalk = fake.settings();
        settings.dingtalk.mode = DingtalkMode::Http;
        let secret = settings.dingtalk.app_secret.expose().to_string();
        let clock = Arc::new(ManualClock::at_millis(at_ms));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let shared: Arc<dyn Clock> = clock.clone();
        let app = App::build(settings, listener, shared).expect("build app");
        Service {
            base: format!("http://{}", app.address()),
            store: app.store().clone(),
            clock,
            shutdown: app.shutdown_handle(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            server: tokio::spawn(app.run_until_stopped()),
            secret,
            signed: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Posts a signed 1:1 robot message; returns the HTTP status.
    pub async fn say(&self, msg_id: &str, from: &str, text: &str) -> u16 {
        let body =
            crate::support::robot_text(msg_id, from, text, self.clock.now().as_millisecond())
                .to_string();
        let earlier = self.signed.fetch_add(1, Ordering::Relaxed);
        let timestamp = (self.clock.now().as_millisecond() - earlier).to_string();
        let sign = callback_sign(&timestamp, &self.secret);
        self.client
            .post(format!("{}/dingtalk/robot", self.base))
            .header("content-type", "application/json; charset=utf-8")
            .header("timestamp", hv(&timestamp))
            .header("sign", hv(&sign))
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// Waits until the inbox is processed and nothing due is left in the outbox.
    pub async fn settle(&self) {
        for _ in 0..300 {
            let now = self.clock.now();
            // A row being sent is leased, so the lease-aware `next_outbox_due` would call it
            // not due yet: settled means no pending row due at all, in flight or not.
            let (inbox, due) = self
                .store
                .read(move |r| -> Result<_, tiaochu::store::StoreError> {
                    let due = r
                        .list_outbox(Some(OutboxState::Pending), 100_000)?
                        .iter()
                        .any(|row| row.state == OutboxState::Pending && row.next_attempt_at <= now);
                    Ok((r.pending_inbox(10)?.len(), due))
                })
                .await
                .expect("read");
            if inbox == 0 && !due {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stuck = self
            .store
            .read(|r| r.list_outbox(Some(OutboxState::Pending), 20))
            .await
            .expect("read");
        panic!("the service did not settle: {stuck:#?}");
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        self.server.await.expect("server task").expect("clean stop");
    }
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_into_a_service_that_carries_on() {
    // The fake checks the custom robot's signed timestamp against its own clock, which
    // therefore follows the service's.
    let fake_clock = Arc::new(ManualClock::at_millis(START_MS));
    let fake = FakeDingtalk::start(Arc::clone(&fake_clock)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = roster_file(dir.path());
    let live_db = dir.path().join("live.db");
    let live = Service::start(&live_db, &roster, &fake, START_MS).await;

    // The receipt and the review cards fail once, so they wait in the outbox for a retry the
    // live service's clock never reaches: they are pending in the backup.
    fake.fail_next(&[Fault::Status(503); 3]);
    assert_eq!(live.say("app-1", RS, &application("")).await, 200);
    live.settle().await;
    let case = live
        .store
        .read(|r| r.case_by_ticket(&crate::support::ticket_no(TICKET)))
        .await
        .expect("read")
        .pop()
        .expect("the case exists");

    // Load: signed callbacks keep arriving while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, base, secret, client, signed) = (
            Arc::clone(&stop),
            live.base.clone(),
            live.secret.clone(),
            live.client.clone(),
            Arc::clone(&live.signed),
        );
        let clock = Arc::clone(&live.clock);
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = format!("load-{n}");
                let body =
                    crate::support::robot_text(&id, RS, "帮助", clock.now().as_millisecond())
                        .with("conversationId", "cid-load")
                        .without("robotCode")
                        .to_string();
                let earlier = signed.fetch_add(1, Ordering::Relaxed);
                let timestamp = (clock.now().as_millisecond() - earlier).to_string();
                let status = client
                    .post(format!("{base}/dingtalk/robot"))
                    .header("timestamp", hv(&timestamp))
                    .header("sign", hv(&callback_sign(&timestamp, &secret)))
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                if status.is_ok_and(|s| s == 200) {
                    acked.push((id, std::time::Instant::now()));
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let backup_started = std::time::Instant::now();
    let copy = dir.path().join("copy.db");
    let backup = {
        let (live_db, copy) = (live_db.clone(), copy.clone());
        tokio::task::spawn_blocking(move || {
            crate::support::cli()
                .arg("backup")
                .arg(&copy)
                .env("TIAOCHU_STORE__PATH", &live_db)
                .output()
                .expect("run tiaochu backup")
        })
        .await
        .expect("backup task")
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = load.await.expect("load task");
    let stdout = String::from_utf8_lossy(&backup.stdout);
    assert!(
        backup.status.success(),
        "backup failed: {stdout}{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(stdout.contains("完整性检查：通过"), "{stdout}");
    let before: Vec<&String> = acked
        .iter()
        .filter(|(_, at)| *at < backup_started)
        .map(|(id, _)| id)
        .collect();
    assert!(
        before.len() >= 5 && acked.len() > before.len(),
        "load ran before and during the backup: {} before, {} in all",
        before.len(),
        acked.len()
    );
    live.stop().await;

    // What the copy holds before anything runs on it.
    let restored_store = Store::open(&copy).expect("the copy opens");
    let (inbox_ids, pending_out, pending_timers) = restored_store
        .read_blocking(|r| -> Result<_, tiaochu::store::StoreError> {
            let inbox: Vec<String> = r
                .all_inbox(100_000)?
                .into_iter()
                .map(|m| m.message_id)
                .collect();
            let out: Vec<i64> = r
                .list_outbox(Some(OutboxState::Pending), 1000)?
                .into_iter()
                .map(|o| o.id)
                .collect();
            Ok((inbox, out, r.timers_for_case(case.id)?))
        })
        .expect("read the copy");
    drop(restored_store);
    for id in &before {
        assert!(
            inbox_ids.contains(id),
            "{id} was acknowledged before the backup started and is missing from the copy"
        );
    }
    assert!(
        pending_out.len() >= 3,
        "the failed sends wait in the copy: {pending_out:?}"
    );
    let pending: Vec<_> = pending_timers
        .iter()
        .filter(|t| t.state == TimerState::Pending)
        .collect();
    let first_due = pending
        .iter()
        .map(|t| t.due_at)
        .min()
        .expect("the case has pending timers");

    // A fresh service on the copy, its clock just past the first pending timer.
    let sent_before = fake.deliveries().len();
    let restart_at = first_due.as_millisecond() + 1_000;
    fake_clock.set_millis(restart_at);
    let restored = Service::start(&copy, &roster, &fake, restart_at).await;
    let fired: Vec<String> = pending
        .iter()
        .filter(|t| t.due_at <= restored.clock.now())
        .map(|t| t.key.clone())
        .collect();
    let mut all_fired = false;
    for _ in 0..200 {
        let timers = restored
            .store
            .read(move |r| r.timers_for_case(case.id))
            .await
            .expect("timers");
        all_fired = fired.iter().all(|key| {
            timers
                .iter()
                .any(|t| &t.key == key && t.state == TimerState::Fired)
        });
        if all_fired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        all_fired,
        "the due timers {fired:?} fired after the restore"
    );
    restored.settle().await;
    for id in &pending_out {
        let id = *id;
        let row = restored
            .store
            .read(move |r| r.outbox(id))
            .await
            .expect("read")
            .expect("row");
        assert_eq!(
            row.state,
            OutboxState::Sent,
            "outbox row {id} was delivered"
        );
    }
    assert!(fake.deliveries().len() > sent_before);

    // A new command on the restored case.
    let already = fake.deliveries().len();
    assert_eq!(
        restored
            .say("after-restore-1", INSPECTOR, &format!("审核 {TICKET}"))
            .await,
        200
    );
    restored.settle().await;
    let news: Vec<_> = fake.deliveries()[already..].to_vec();
    assert!(
        news.iter()
            .any(|d| d.user.as_deref().is_some_and(|u| u.contains(RS)) && d.text.contains("孟艳秋")),
        "the first unit is told who reviews: {news:#?}"
    );
    let case_now = restored
        .store
        .read(move |r| r.case(case.id))
        .await
        .expect("read")
        .expect("case");
    assert_ne!(case_now.state, case.state, "the command moved the case");
    assert!(
        fake.violations().is_empty(),
        "the fake saw invalid requests: {:?}",
        fake.violations()
    );
    restored.stop().await;
}

//! Integration tests for issue 5 — working-day clocks, reminders and the escalation ladder — with
//! a manual clock: the National Day decision clock (reminders on working days only, breach and
//! escalation on the Monday after the make-up Saturday), the green channel on a Saturday evening,
//! the hotline digest (to the head, or to the group robot), a provisional deadline recomputed by
//! `tiaochu calendar load`, and a restart after downtime that fires every due timer once, in
//! catch-up form.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use tiaochu::app::App;
use tiaochu::clock::{Clock, ManualClock};
use tiaochu::engine::{Engine, Outcome, decode};
use tiaochu::messages::timeline::render_query;
use tiaochu::roster::{Role, Roster};
use tiaochu::settings::DingtalkMode;
use tiaochu::store::{EventRow, OutboxRow, Store, TimerState};
use tiaochu::workflow::{Actor, Application, Case, EventData, EventKind, Input};

use crate::support::{
    World, complete_application, default_settings, repo_root, seed_application_text, world,
};

const LIAISON: &str = "rs-liaison";
const INSPECTOR: &str = "local:区12345热线:孟艳秋";

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn hotline_head(roster: &Roster) -> String {
    roster
        .people_with_role(Role::HotlineHead)
        .next()
        .expect("a hotline head")
        .id()
        .to_string()
}

struct Fixture(World);

/// `f.engine`, `f.store`, `f.roster`, `f.clock`: the world's.
impl std::ops::Deref for Fixture {
    type Target = World;
    fn deref(&self) -> &World {
        &self.0
    }
}

/// An engine over a temporary database and the holiday files in `calendar_dir`.
fn fixture_with(calendar_dir: &Path, start: &str, mode: DingtalkMode, group: bool) -> Fixture {
    Fixture(
        world()
            .liaison("人社联络员", "区人社局", LIAISON)
            .calendar_dir(calendar_dir)
            .mode(mode)
            .group_digest(group)
            .start(start)
            .build(),
    )
}

fn fixture(start: &str) -> Fixture {
    fixture_with(
        &repo_root().join("config/calendar"),
        start,
        DingtalkMode::Sandbox,
        false,
    )
}

fn application(roster: &Roster, ticket: &str, urgent: bool) -> Application {
    let mut app = complete_application(roster, &seed_application_text(ticket));
    app.urgent = urgent;
    app
}

impl Fixture {
    async fn act(&self, ticket: &str, input: Input, who: &str) {
        let out = self
            .engine
            .handle(
                &crate::support::ticket_no(ticket),
                input,
                Actor::Person(crate::support::person_id(who)),
                self.now(),
            )
            .await
            .expect("handle");
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
    }

    async fn submit(&self, ticket: &str, urgent: bool) {
        let app = application(&self.roster, ticket, urgent);
        let input = Input::Submit { application: app };
        self.act(ticket, input, LIAISON).await;
    }

    fn case(&self, ticket: &str) -> (i64, Case) {
        let ticket = ticket.to_string();
        let rows = self
            .store
            .read_blocking(move |r| r.case_by_ticket(&crate::support::ticket_no(&ticket)))
            .expect("read");
        let row = rows.first().expect("case");
        (row.id, decode(row).expect("decode"))
    }

    fn events(&self, case_id: i64) -> Vec<EventRow> {
        self.store
            .read_blocking(move |r| r.events_for_case(case_id))
            .expect("events")
    }

    /// Moves the clock to each next due timer and runs one scheduler step there, until `until`;
    /// returns the instants at which a step fired something.
    async fn walk_until(&self, until: Timestamp) -> Vec<Timestamp> {
        let mut fired_at = Vec::new();
        loop {
            let next = self.store.read(|r| r.next_due()).await.expect("next due");
            let Some(next) = next.filter(|n| *n <= until) else {
                break;
            };
            self.clock.set(next.max(self.now()));
            let report = self.fire_due().await;
            assert_eq!(report.rejected, 0, "{report:?}");
            if report.fired > 0 {
                fired_at.push(self.now());
            }
        }
        self.clock.set(until);
        fired_at
    }
}

/// Sandbox messages (cards and their updates left out) as (recipient, title, text).
fn messages(rows: &[OutboxRow]) -> Vec<(String, String, String)> {
    rows.iter()
        .filter(|r| r.channel == "sandbox")
        .filter_map(|r| {
            let v: Value = serde_json::from_slice(&r.payload).expect("sandbox payload");
            v["card"].is_null().then(|| {
                (
                    r.target.clone(),
                    v["title"].as_str().unwrap_or("").to_string(),
                    v["text"].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect()
}

fn kinds(events: &[EventRow]) -> Vec<EventKind> {
    events.iter().map(EventRow::kind).collect()
}

/// The catch-up fields of a reminder or breach: (late_minutes, skipped phases).
fn catch_up(e: &EventRow) -> (Option<i64>, usize) {
    match &e.data {
        EventData::ReminderSent {
            late_minutes,
            skipped_in_catch_up,
            ..
        }
        | EventData::Breach {
            late_minutes,
            skipped_in_catch_up,
            ..
        } => (*late_minutes, skipped_in_catch_up.len()),
        other => panic!("not a reminder or breach: {other:?}"),
    }
}

#[tokio::test]
async fn a_decision_clock_over_national_day_reminds_on_working_days_and_escalates_on_monday() {
    let f = fixture("2026-09-30T16:00:00+08:00");
    let t = "DH2026093000001";
    f.submit(t, false).await;
    f.clock.set(at("2026-09-30T16:10:00+08:00"));
    f.act(t, Input::Claim, INSPECTOR).await;
    let (id, case) = f.case(t);
    let decision = case
        .clocks
        .iter()
        .find(|c| c.id == "decision")
        .expect("clock");
    // 四(二): 3 working days after Wednesday 09-30 — 10-08, 10-09 and the make-up Saturday.
    assert_eq!(decision.due, at("2026-10-10T18:00:00+08:00"));
    assert!(
        decision.explanation.contains("调休"),
        "{}",
        decision.explanation
    );

    let calendar = f.engine.calendar();
    let fired = f.walk_until(at("2026-10-13T12:00:00+08:00")).await;
    assert!(!fired.is_empty());
    for instant in &fired {
        assert!(
            calendar.is_working_time(*instant),
            "a non-green timer fired outside working hours: {}",
            calendar.display(*instant)
        );
    }
    let events = f.events(id);
    let timed: Vec<&EventRow> = events
        .iter()
        .filter(|e| {
            [
                EventKind::ReminderSent,
                EventKind::Breach,
                EventKind::Escalated,
            ]
            .contains(&e.kind())
        })
        .collect();
    assert_eq!(
        kinds(&timed.iter().map(|e| (*e).clone()).collect::<Vec<_>>()),
        [
            EventKind::ReminderSent,
            EventKind::ReminderSent,
            EventKind::Breach,
            EventKind::Escalated
        ]
    );
    for e in &timed {
        let day = calendar.local_date(e.at);
        assert!(calendar.is_working_day(day), "{:?} on {day}", e.kind());
        if e.kind() != EventKind::Escalated {
            assert_eq!(catch_up(e).0, None, "punctual, not a catch-up");
        }
    }
    // The breach at the end of the make-up Saturday is recorded and escalated at the start of
    // the next working day.
    let breach = timed[2];
    assert_eq!(breach.at, at("2026-10-12T08:30:00+08:00"));
    assert_eq!(timed[3].at, breach.at);

    let rows = f.outbox();
    let sent = messages(&rows);
    let reminders: Vec<&(String, String, String)> = sent
        .iter()
        .filter(|(to, title, _)| to == INSPECTOR && title.contains("提醒："))
        .collect();
    assert_eq!(reminders.len(), 2, "{sent:#?}");
    assert_ne!(
        reminders[0].1, reminders[1].1,
        "each reminder's title differs"
    );
    assert!(reminders[0].1.contains("第1次提醒") && reminders[1].1.contains("第2次提醒"));
    let head = hotline_head(&f.roster);
    let escalation = sent
        .iter()
        .find(|(to, title, _)| *to == head && title.contains("超期提醒"))
        .expect("the hotline head is told");
    assert!(escalation.2.contains("孟艳秋"), "{}", escalation.2);
    // One digest per pass to the hotline head: two reminder passes and the breach pass.
    let digests: Vec<_> = sent
        .iter()
        .filter(|(to, title, _)| *to == head && title.contains("期限提醒汇总"))
        .collect();
    assert_eq!(digests.len(), 3, "{digests:#?}");
    assert!(digests[2].2.contains("已超期"), "{}", digests[2].2);

    // 查询 shows the clock: due, explanation, reminders sent, state.
    let (_, case) = f.case(t);
    let query = render_query(&case, &[], &f.roster, calendar);
    let line = query
        .lines()
        .find(|l| l.contains("研判确定处置方式"))
        .expect("decision clock line");
    assert!(line.contains("2026-10-10"), "{line}");
    assert!(line.contains("已提醒 2 次"), "{line}");
    assert!(line.contains("已超期"), "{line}");
}

#[tokio::test]
async fn a_green_channel_case_on_a_saturday_evening_is_reminded_at_once() {
    let f = fixture("2026-11-07T20:00:00+08:00");
    let t = "DH2026110700001";
    f.submit(t, true).await;
    let report = f.fire_due().await;
    assert_eq!(report.fired, 1, "{report:?}");
    let (id, _) = f.case(t);
    let events = f.events(id);
    let reminder = events
        .iter()
        .find(|e| e.kind() == EventKind::ReminderSent)
        .expect("reminded");
    assert_eq!(reminder.at, at("2026-11-07T20:00:00+08:00"));
    let sent = messages(&f.outbox());
    let to_inspector: Vec<_> = sent
        .iter()
        .filter(|(to, title, _)| to == INSPECTOR && title.contains("提醒"))
        .collect();
    assert_eq!(to_inspector.len(), 1, "{sent:#?}");
    assert!(to_inspector[0].1.starts_with("【绿色通道】"));
    assert!(to_inspector[0].2.contains("立即"), "{}", to_inspector[0].2);

    // A non-green case at the same hour waits for Monday morning.
    let g = fixture("2026-11-07T20:00:00+08:00");
    g.submit("DH2026110700002", false).await;
    let report = g.fire_due().await;
    assert_eq!(report.fired, 0);
    let next = g.store.read(|r| r.next_due()).await.expect("next");
    assert!(next.is_some_and(|n| g.engine.calendar().is_working_time(n)));
}

#[tokio::test]
async fn the_digest_goes_to_the_group_robot_when_one_is_configured() {
    let f = fixture_with(
        &repo_root().join("config/calendar"),
        "2026-11-02T09:00:00+08:00",
        DingtalkMode::Http,
        true,
    );
    f.submit("DH2026110200001", false).await;
    f.submit("DH2026110200002", false).await;
    f.clock.set(at("2026-11-02T09:30:00+08:00"));
    let report = f.fire_due().await;
    assert_eq!(report.fired, 2, "both half-time reminders: {report:?}");
    let group: Vec<OutboxRow> = f
        .outbox()
        .into_iter()
        .filter(|r| r.channel == "group_webhook")
        .collect();
    assert_eq!(group.len(), 1, "one digest for the pass");
    let body: Value = serde_json::from_slice(&group[0].payload).expect("json");
    assert_eq!(body["msgtype"], "markdown");
    let text = body["markdown"]["text"].as_str().expect("text");
    assert!(
        text.contains("DH2026110200001") && text.contains("DH2026110200002"),
        "{text}"
    );
    // A second step at the same instant fires nothing and sends no second digest.
    let again = f.fire_due().await;
    assert_eq!(again, Default::default());
    let count = f
        .outbox()
        .iter()
        .filter(|r| r.channel == "group_webhook")
        .count();
    assert_eq!(count, 1);
}

/// A plausible 2027 schedule for the test only (never shipped): New Year 1/1–1/3, no make-up day.
const TEST_2027: &str = r#"{
 "year": 2027,
 "source": "测试用数据（非官方）",
 "off_days": ["2027-01-01", "2027-01-02", "2027-01-03"],
 "makeup_workdays": []
}"#;

#[tokio::test]
async fn a_provisional_deadline_is_recomputed_when_next_years_data_is_loaded() {
    let calendar_dir = tempfile::tempdir().expect("tempdir");
    for year in ["2025", "2026"] {
        std::fs::copy(
            format!("config/calendar/cn-{year}.json"),
            calendar_dir.path().join(format!("cn-{year}.json")),
        )
        .expect("copy calendar");
    }
    let f = fixture_with(
        calendar_dir.path(),
        "2026-12-30T10:00:00+08:00",
        DingtalkMode::Sandbox,
        false,
    );
    let t = "DH2026123000001";
    f.submit(t, false).await;
    let (id, case) = f.case(t);
    let decision = case
        .clocks
        .iter()
        .find(|c| c.id == "decision")
        .expect("clock");
    // Weekdays only: 12-31, 01-01 (a holiday nobody has loaded yet), 01-04.
    assert_eq!(decision.due, at("2027-01-04T18:00:00+08:00"));
    assert!(decision.provisional);
    let receipt = messages(&f.outbox())
        .into_iter()
        .find(|(to, _, _)| to == LIAISON)
        .expect("receipt");
    assert!(receipt.2.contains("暂定"), "{}", receipt.2);
    let query = render_query(&case, &[], &f.roster, f.engine.calendar());
    assert!(query.contains("暂定"), "{query}");

    // The admin loads the 2027 file with the CLI, against the same database.
    let file = f.dir.path().join("2027.json");
    std::fs::write(&file, TEST_2027).expect("write 2027");
    let config = f.dir.path().join("tiaochu.toml");
    let root = std::env::current_dir().expect("cwd");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n[calendar]\ndir = {:?}\n[roster]\npath = {:?}\n",
            f.dir.path().join("t.db"),
            calendar_dir.path(),
            root.join("config/roster.toml"),
        ),
    )
    .expect("config");
    let out = crate::support::cli()
        .arg("--config")
        .arg(&config)
        .args(["calendar", "load"])
        .arg(&file)
        .output()
        .expect("run tiaochu");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("重新计算 1 个案件的"), "{stdout}");

    let (_, case) = f.case(t);
    let decision = case
        .clocks
        .iter()
        .find(|c| c.id == "decision")
        .expect("clock");
    // 12-31, then 01-04 and 01-05 once New Year's Day is known.
    assert_eq!(decision.due, at("2027-01-05T18:00:00+08:00"));
    assert!(!decision.provisional);
    let due_timer = decision.timers.last().expect("due timer");
    let key = due_timer.key.clone();
    let stored = f
        .store
        .read_blocking(move |r| r.timer_by_key(&key))
        .expect("read")
        .expect("timer");
    assert_eq!(stored.due_at, at("2027-01-06T08:30:00+08:00"));
    assert_eq!(stored.state, TimerState::Pending);
    let recomputed: Vec<EventData> = f
        .events(id)
        .into_iter()
        .filter(|e| e.kind() == EventKind::DeadlineRecomputed)
        .map(|e| e.data)
        .collect();
    assert!(
        recomputed.iter().any(|d| matches!(
            d,
            EventData::DeadlineRecomputed { clock, changed: true, .. } if clock == "decision"
        )),
        "{recomputed:?}"
    );
    let told: Vec<_> = messages(&f.outbox())
        .into_iter()
        .filter(|(_, title, _)| title.contains("期限已重新计算"))
        .collect();
    assert!(
        told.iter()
            .any(|(to, _, text)| to == INSPECTOR && text.contains("2027-01-05")),
        "{told:#?}"
    );

    // Loading the same file again changes nothing and tells nobody.
    let before = f.outbox().len();
    let out = crate::support::cli()
        .arg("--config")
        .arg(&config)
        .args(["calendar", "load"])
        .arg(&file)
        .output()
        .expect("run tiaochu");
    assert!(out.status.success());
    assert_eq!(f.outbox().len(), before);
}

/// Builds and runs the real service (sandbox mode) on `db`; returns its engine and shutdown.
async fn start_service(
    db: &Path,
    clock: &Arc<ManualClock>,
) -> (
    Engine,
    tiaochu::app::Shutdown,
    tokio::task::JoinHandle<Result<(), tiaochu::app::AppError>>,
) {
    let mut settings = default_settings();
    settings.store.path = db.to_path_buf();
    settings.dingtalk.mode = DingtalkMode::Sandbox;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let shared: Arc<dyn Clock> = clock.clone();
    let app = App::build(settings, listener, shared).expect("build app");
    let engine = app.engine().clone();
    let shutdown = app.shutdown_handle();
    (engine, shutdown, tokio::spawn(app.run_until_stopped()))
}

/// Waits until no timer is due at the clock's now.
async fn drained(store: &Store, now: Timestamp) {
    for _ in 0..200 {
        let due = store
            .read(move |r| r.due_timers(now, 10))
            .await
            .expect("due");
        if due.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("due timers were not fired");
}

#[tokio::test]
async fn after_downtime_each_due_timer_fires_once_in_catch_up_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tiaochu.db");
    let clock = Arc::new(ManualClock::new(at("2026-11-02T09:00:00+08:00")));
    let (engine, shutdown, server) = start_service(&db, &clock).await;
    let roster = engine.roster().clone();
    let leader = roster
        .people_in_unit_with_role("区人社局", Role::Leader)
        .next()
        .expect("leader")
        .id()
        .to_string();
    let tickets = ["DH2026110200011", "DH2026110200012"];
    for t in tickets {
        let input = Input::Submit {
            application: application(&roster, t, false),
        };
        let out = engine
            .handle(
                &crate::support::ticket_no(t),
                input,
                Actor::Person(crate::support::person_id(&leader)),
                clock.now(),
            )
            .await
            .expect("submit");
        assert!(matches!(out, Outcome::Applied { .. }));
    }
    let store = engine.store().clone();
    // The scheduler has started (and sent the holiday-data reminder) once that timer waits for
    // next week.
    let key = tiaochu::clock_upkeep::calendar_timer_key(2027);
    let now = clock.now();
    for _ in 0..200 {
        let k = key.clone();
        let timer = store.read(move |r| r.timer_by_key(&k)).await.expect("read");
        if timer.is_some_and(|t| t.state == TimerState::Pending && t.due_at > now) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drained(&store, clock.now()).await;
    shutdown.trigger();
    server.await.expect("join").expect("server");
    let sent_before = store
        .read(|r| r.list_outbox(None, 100_000))
        .await
        .expect("outbox")
        .len();

    // Down from Monday 09:00 to Friday 10:00: the review-start clocks (half, due) and the
    // decision clocks (half, soon, due at Thursday 18:00 → Friday 08:30) all came due.
    let restart = at("2026-11-06T10:00:00+08:00");
    clock.set(restart);
    let (engine, shutdown, server) = start_service(&db, &clock).await;
    let store = engine.store().clone();
    drained(&store, restart).await;
    // Give the scheduler a further chance to (wrongly) fire anything twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.trigger();
    server.await.expect("join").expect("server");

    let head = hotline_head(&roster);
    let rows: Vec<OutboxRow> = store
        .read(|r| r.list_outbox(None, 100_000))
        .await
        .expect("outbox")
        .into_iter()
        .collect();
    let mut rows = rows;
    rows.sort_by_key(|r| r.id);
    let new_messages = messages(&rows[sent_before..]);
    for t in tickets {
        let rows = store
            .read(move |r| r.case_by_ticket(&crate::support::ticket_no(t)))
            .await
            .expect("case");
        let case_id = rows[0].id;
        let timers = store
            .read(move |r| r.timers_for_case(case_id))
            .await
            .expect("timers");
        let due: Vec<_> = timers.iter().filter(|t| t.due_at <= restart).collect();
        assert_eq!(due.len(), 5, "{timers:#?}");
        for timer in &due {
            assert_eq!(timer.state, TimerState::Fired, "{}", timer.key);
            assert_eq!(timer.fired_at, Some(restart), "{}", timer.key);
        }
        let events = store
            .read(move |r| r.events_for_case(case_id))
            .await
            .expect("events");
        let breaches: Vec<&EventRow> = events
            .iter()
            .filter(|e| e.kind() == EventKind::Breach)
            .collect();
        assert_eq!(breaches.len(), 2, "one breach per clock");
        assert!(
            !events.iter().any(|e| e.kind() == EventKind::ReminderSent),
            "reminders made moot by the breach are not sent"
        );
        for b in &breaches {
            let (late_minutes, skipped) = catch_up(b);
            assert!(late_minutes.is_some_and(|m| m > 0), "{b:?}");
            assert!(skipped > 0, "{b:?}");
        }
        // One message per case and person, naming how late it is.
        let mut per_person: BTreeMap<&str, usize> = BTreeMap::new();
        for (to, title, text) in &new_messages {
            if text.contains(t) && !title.contains("期限提醒汇总") {
                *per_person.entry(to.as_str()).or_default() += 1;
                assert!(title.contains("补发提醒（迟发"), "{title}");
                assert!(text.contains("迟发"), "{text}");
            }
        }
        assert_eq!(per_person.get(INSPECTOR), Some(&1), "{per_person:?}");
        assert_eq!(per_person.get(head.as_str()), Some(&1), "{per_person:?}");
        assert!(per_person.values().all(|n| *n == 1), "{per_person:?}");
    }
    // The weekly reminder about the missing 2027 holiday data went out once, at the first start
    // (after 1 November), and waits a week for the next one; the restart did not repeat it.
    let all = messages(&rows);
    let calendar_reminders = all
        .iter()
        .filter(|(_, title, _)| title.contains("2027 年节假日安排尚未载入"))
        .count();
    assert_eq!(calendar_reminders, 1);
    let next = store
        .read(|r| r.timer_by_key(&tiaochu::clock_upkeep::calendar_timer_key(2027)))
        .await
        .expect("read")
        .expect("armed");
    assert_eq!(next.state, TimerState::Pending);
    assert_eq!(next.due_at, at("2026-11-09T09:00:00+08:00"));
    let inspector_text = new_messages
        .iter()
        .find(|(to, _, text)| to == INSPECTOR && text.contains(tickets[0]))
        .map(|(_, _, text)| text.clone())
        .expect("catch-up");
    assert!(
        inspector_text.contains("启动审核") && inspector_text.contains("研判确定处置方式"),
        "both breaches in one message: {inspector_text}"
    );
}

/// A pass killed between a case's firing (committed) and the pass's digest: the firing's digest
/// lines were queued with its decision, so the next pass sends them, once.
#[tokio::test]
async fn a_digest_lost_with_its_pass_is_sent_by_the_next() {
    let f = fixture("2026-11-02T09:00:00+08:00");
    let t = "DH2026110200003";
    f.submit(t, false).await;
    f.clock.set(at("2026-11-02T09:30:00+08:00"));
    let (case_id, _) = f.case(t);
    // What a pass does before its digest, then the "kill": no send_digest.
    let firing = tiaochu::clock_upkeep::fire_case(&f.engine, case_id, f.now())
        .await
        .expect("fire");
    assert_eq!(firing.fired, 1, "{firing:?}");
    let head = hotline_head(&f.roster);
    let digests = |f: &Fixture| -> Vec<String> {
        messages(&f.outbox())
            .into_iter()
            .filter(|(to, title, _)| *to == head && title.contains("期限提醒汇总"))
            .map(|(_, _, text)| text)
            .collect()
    };
    assert!(digests(&f).is_empty(), "the pass died before its digest");

    // The next pass has nothing due, yet sends what the dead one left.
    f.clock.set(at("2026-11-02T09:31:00+08:00"));
    let report = f.fire_due().await;
    assert_eq!(report.fired, 0);
    let sent = digests(&f);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(sent[0].contains(t), "{}", sent[0]);
    // And never again.
    f.fire_due().await;
    assert_eq!(digests(&f).len(), 1);
}

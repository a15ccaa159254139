//! Operations (issue 8): `GET /metrics` against a running service and a store with known
//! contents, and the logs of a whole conversation — captured through the subscriber `tiaochu
//! serve` installs, in JSON — carrying message and case ids but never a secret or an unmasked
//! phone number.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tiaochu::clock::Clock;
use tiaochu::metrics::TIMER_OVERDUE_AFTER;
use tiaochu::settings::LogFormat;
use tiaochu::store::{Backlog, NewInbound, NewOutbound, NewTimer, Store};
use tracing_subscriber::EnvFilter;

use crate::fake_dingtalk::{APP_SECRET, FakeDingtalk, Fault, HOOK_SECRET, HOOK_TOKEN};
use crate::restore::{INSPECTOR, RS, Service, TICKET, application, roster_file};
use crate::support::START_MS;

/// One scrape as series (`name{labels}`) → value; HELP/TYPE lines are checked for shape.
async fn scrape(service: &Service) -> HashMap<String, f64> {
    let response = service
        .client
        .get(format!("{}/metrics", service.base))
        .send()
        .await
        .expect("metrics reachable");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("body");
    let mut series = HashMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        assert!(
            series.insert(name.to_string(), value).is_none(),
            "series twice: {name}"
        );
    }
    series
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("{series} missing from {m:#?}"))
}

/// Sum of every series whose name and labels start with `prefix`.
fn sum(m: &HashMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn metrics_report_backlog_errors_timers_and_latency() {
    let fake = FakeDingtalk::at_start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = roster_file(dir.path());
    let service = Service::start(&dir.path().join("m.db"), &roster, &fake, START_MS).await;

    let before = scrape(&service).await;
    assert_eq!(get(&before, "tiaochu_store_up"), 1.0);
    assert_eq!(get(&before, "tiaochu_inbox_pending"), 0.0);
    assert_eq!(get(&before, "tiaochu_outbox_pending"), 0.0);
    assert_eq!(
        get(&before, "tiaochu_stream_state{state=\"not_configured\"}"),
        1.0
    );
    assert_eq!(
        get(&before, "tiaochu_stream_state{state=\"connected\"}"),
        0.0
    );

    // The first send is throttled by DingTalk's QPS limit: one error by its code, one row waiting.
    fake.fail_next(&[Fault::Throttle]);
    assert_eq!(service.say("m-1", RS, &application("")).await, 200);
    service.settle().await;
    // `settle` returns once nothing is due; a row still leased by the sender is not due either,
    // so wait for the throttled answer to be counted and the other sends to finish.
    let throttled = "tiaochu_dingtalk_errors_total{kind=\"throttled\",code=\"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi\"}";
    let mut after = scrape(&service).await;
    for _ in 0..100 {
        if after.contains_key(throttled) && after.get("tiaochu_outbox_pending") == Some(&1.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = scrape(&service).await;
    }
    let robot =
        "tiaochu_http_request_duration_seconds_count{route=\"/dingtalk/robot\",method=\"POST\"}";
    assert!(get(&after, robot) >= before.get(robot).copied().unwrap_or(0.0) + 1.0);
    let inf = "tiaochu_http_request_duration_seconds_bucket{route=\"/dingtalk/robot\",method=\"POST\",le=\"+Inf\"}";
    assert_eq!(
        get(&after, inf),
        get(&after, robot),
        "+Inf bucket equals count"
    );
    assert!(
        get(&after, throttled) >= before.get(throttled).copied().unwrap_or(0.0) + 1.0,
        "the throttle is counted by its code"
    );
    assert_eq!(
        get(&after, "tiaochu_outbox_pending"),
        1.0,
        "the throttled row waits"
    );
    assert_eq!(get(&after, "tiaochu_timers_due"), 0.0);

    // Two minutes past the first deadline, before the scheduler looks again: due and overdue.
    let first_due = service
        .store
        .read(|r| r.next_due())
        .await
        .expect("read")
        .expect("the case armed timers");
    service.clock.set(first_due + SignedDuration::from_mins(2));
    let late = scrape(&service).await;
    assert!(get(&late, "tiaochu_timers_due") >= 1.0);
    assert!(get(&late, "tiaochu_timers_overdue") >= 1.0);
    assert!(
        sum(
            &late,
            "tiaochu_http_request_duration_seconds_count{route=\"/metrics\""
        ) >= 2.0,
        "scrapes are timed too"
    );
    service.stop().await;
}

#[tokio::test]
async fn the_store_backlog_counts_exactly_what_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("g.db")).expect("store");
    let t0 = Timestamp::from_millisecond(START_MS).expect("t0");
    let at = move |secs: i64| t0 + SignedDuration::from_secs(secs);
    store
        .write(move |tx| -> Result<_, tiaochu::store::StoreError> {
            tx.insert_inbox(&NewInbound {
                source: "robot",
                message_id: "old",
                received_at: at(-5),
                payload: "{}",
            })?;
            let done = tx
                .insert_inbox(&NewInbound {
                    source: "robot",
                    message_id: "done",
                    received_at: at(-60),
                    payload: "{}",
                })?
                .id();
            tx.finish_inbox(done, "ignored", at(-59))?;
            for (key, due) in [("a", -120), ("b", -10), ("c", 3600)] {
                tx.set_timer(&NewTimer {
                    key,
                    case_id: None,
                    kind: "test",
                    due_at: at(due),
                    payload_json: "{}",
                })?;
            }
            for key in ["x", "y"] {
                tx.enqueue_outbox(&NewOutbound {
                    idem_key: key,
                    channel: "robot_1to1",
                    target: "u",
                    payload: b"{}",
                    not_before: at(0),
                })?;
            }
            let dead = tx.enqueue_outbox(&NewOutbound {
                idem_key: "z",
                channel: "robot_1to1",
                target: "u",
                payload: b"{}",
                not_before: at(0),
            })?;
            tx.mark_dead(dead, "permanent", at(0))?;
            Ok(())
        })
        .await
        .expect("write");
    let backlog = store
        .read(move |r| r.backlog(at(0), TIMER_OVERDUE_AFTER))
        .await
        .expect("backlog");
    assert_eq!(
        backlog,
        Backlog {
            inbox_pending: 1,
            inbox_oldest_age: Duration::from_secs(5),
            outbox_pending: 2,
            outbox_dead: 1,
            timers_due: 2,
            timers_overdue: 1,
            quarantined: 0,
            writes_failing: false,
        }
    );
}

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// The planted citizen phone number and the contact's.
const CITIZEN_PHONE: &str = "13912345678";
const CONTACT_PHONE: &str = "13900000000";

/// Set in the child process that runs the conversation: where it writes the captured log.
const LOG_CHILD: &str = "TIAOCHU_TEST_LOG_CHILD";
const LOG_TEST: &str = "observability::a_whole_conversation_logs_ids_but_no_secret_and_no_phone";

#[tokio::test]
async fn a_whole_conversation_logs_ids_but_no_secret_and_no_phone() {
    // The conversation runs in a child process of this test binary running only this test, under
    // a GLOBAL subscriber: a thread-local one shares tracing's per-callsite interest cache with
    // the other tests running in this process and was seen to miss events when they race.
    if let Some(path) = std::env::var_os(LOG_CHILD) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tiaochu::cli::serve::log_subscriber(
            LogFormat::Json,
            EnvFilter::new("info,tiaochu=debug"),
            false,
            move || writer.clone(),
        );
        tracing::subscriber::set_global_default(subscriber).expect("the child's only subscriber");
        logged_conversation().await;
        std::fs::write(path, captured.text()).expect("write the captured log");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("conversation.jsonl");
    let child_path = path.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([LOG_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(LOG_CHILD, &child_path)
            .output()
            .expect("run the child")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "the child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = std::fs::read_to_string(&path).expect("the child wrote its log");
    check_conversation_log(&logs);
}

/// Application, claim, joint decision, garbage with the app secret, a forged callback and a
/// progress note, with one send failing for good; phone numbers planted throughout.
async fn logged_conversation() {
    let fake = FakeDingtalk::at_start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = roster_file(dir.path());
    let service = Service::start(&dir.path().join("l.db"), &roster, &fake, START_MS).await;

    // Failures log reasons: a send fails for good once, a forged callback is refused.
    fake.fail_next(&[Fault::Status(400)]);
    let planted = format!("诉求人电话 {CITIZEN_PHONE}，备用 139-1234-5678。");
    assert_eq!(service.say("log-1", RS, &application(&planted)).await, 200);
    service.settle().await;
    assert_eq!(
        service
            .say("log-2", INSPECTOR, &format!("审核 {TICKET}"))
            .await,
        200
    );
    service.settle().await;
    let joint = format!("联合 {TICKET} 区住建局：核查项目审批，联系 {CITIZEN_PHONE}");
    assert_eq!(service.say("log-3", INSPECTOR, &joint).await, 200);
    service.settle().await;
    let garbage = format!("随便说说 {CITIZEN_PHONE} {APP_SECRET}");
    assert_eq!(service.say("log-4", RS, &garbage).await, 200);
    service.settle().await;
    let forged = service
        .client
        .post(format!("{}/dingtalk/robot", service.base))
        .header(
            "timestamp",
            service.clock.now().as_millisecond().to_string(),
        )
        .header("sign", "forged")
        .body(format!(
            "{{\"msgId\":\"{CITIZEN_PHONE}\",\"text\":\"{CONTACT_PHONE}\"}}"
        ))
        .send()
        .await
        .expect("reachable");
    assert_eq!(forged.status(), 401);
    service.clock.advance(SignedDuration::from_hours(48));
    assert_eq!(
        service
            .say(
                "log-5",
                RS,
                &format!("进展 {TICKET} 已约谈 {CONTACT_PHONE}")
            )
            .await,
        200
    );
    service.settle().await;
    service.stop().await;
}

/// Every line JSON, no secret, no unmasked phone, and the ids an operator needs.
fn check_conversation_log(logs: &str) {
    let lines: Vec<&str> = logs.lines().collect();
    assert!(lines.len() >= 10, "the conversation was logged:\n{logs}");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            value.get("level").is_some() && value.get("message").is_some(),
            "{line}"
        );
    }
    for secret in [APP_SECRET, HOOK_SECRET, HOOK_TOKEN] {
        assert!(!logs.contains(secret), "a secret reached the log:\n{logs}");
    }
    let phone = regex::Regex::new(r"(^|[^0-9])1[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}([^0-9]|$)")
        .expect("regex");
    for line in &lines {
        assert!(!phone.is_match(line), "an unmasked phone number: {line}");
    }
    assert!(
        logs.contains("\"msg_id\":\"log-1\""),
        "message ids are logged:\n{logs}"
    );
    assert!(
        logs.contains("TC-2026-0001"),
        "the case number is logged with what was sent for it:\n{logs}"
    );
    assert!(
        logs.contains("dead-lettered"),
        "the failed send was logged:\n{logs}"
    );
}

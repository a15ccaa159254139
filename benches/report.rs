//! The monthly report over 100,000 cases and 2,000,000 events in a temporary SQLite database
//! (issue 7). One real case is driven through the engine to get a genuine case document; the
//! synthetic cases copy it under their own numbers, and each gets 20 events spread over 2026
//! (a case runs for about two weeks). Prints the time to seed, the time of the November report
//! (the cases a month touches) and of a report over the whole year (every case and every event),
//! each with the process's peak resident memory (VmHWM). Plain `main`; run with
//! `cargo bench --bench report`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tiaochu::calendar::{Calendar, WorkingHours};
use tiaochu::card_secrets::CardSecrets;
use tiaochu::dispatch::Dispatch;
use tiaochu::domain::{CaseNo, PersonId, TicketNo, UnitName};
use tiaochu::engine::{Engine, Outcome};
use tiaochu::parse::Category;
use tiaochu::parse::{UnitMatcher, parse_application};
use tiaochu::report::{self, Period};
use tiaochu::roster::{Person, Role, Roster, UnitKind};
use tiaochu::settings::Settings;
use tiaochu::store::{NewCase, Store};
use tiaochu::workflow::{
    Actor, ClosedBy, CoordinationAsk, Event, EventData, HelpItem, Input, Phase, Registration,
    SatisfactionLevel,
};

const CASES: usize = 100_000;
const EVENTS_PER_CASE: usize = 20;
/// Cases per write transaction while seeding.
const CHUNK: usize = 5_000;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("instant")
}

/// A closed joint case, driven through the engine: its document is the template.
fn template(engine: &Engine, roster: &Roster) -> Value {
    let text = std::fs::read_to_string("tests/fixtures/applications/001-seed-template.txt")
        .expect("fixture");
    let app = parse_application(&text, &UnitMatcher::new(roster));
    let ticket = TicketNo::parse(app.ticket_no.as_deref().expect("ticket")).expect("ticket");
    let steps: Vec<(&str, &str, Input)> = vec![
        (
            "rs",
            "2026-11-02T09:00:00+08:00",
            Input::Submit {
                application: tiaochu::workflow::Application::from_report(
                    &app,
                    &UnitMatcher::new(roster),
                )
                .expect("complete"),
            },
        ),
        (
            "local:区12345热线:孟艳秋",
            "2026-11-02T09:05:00+08:00",
            Input::Claim,
        ),
        (
            "local:区12345热线:孟艳秋",
            "2026-11-02T09:30:00+08:00",
            Input::DecideJoint {
                units: vec![CoordinationAsk {
                    unit: UnitName::of(roster.unit("区住建局").expect("unit")),
                    direction: "核查项目资金拨付".into(),
                }],
            },
        ),
        (
            "zj",
            "2026-11-02T10:00:00+08:00",
            Input::Accept {
                unit: UnitName::of(roster.unit("区住建局").expect("unit")),
                contact_name: "张三".into(),
                position: "股长".into(),
                phone: "13900000000".into(),
                help: vec![HelpItem::SiteCheck, HelpItem::DataSharing],
            },
        ),
        (
            "rs",
            "2026-11-06T10:00:00+08:00",
            Input::Complete {
                process: "联合现场核查，约谈企业负责人".into(),
                measures: "督促企业分期支付拖欠工资".into(),
                citizen_feedback: "已收到全部工资，表示满意".into(),
            },
        ),
        (
            "local:区12345热线:李小燕",
            "2026-11-06T11:00:00+08:00",
            Input::Satisfaction {
                level: SatisfactionLevel::Satisfied,
            },
        ),
    ];
    for (who, when, input) in steps {
        let out = engine
            .handle_blocking(
                &ticket,
                input,
                Actor::Person(PersonId::parse(who).expect("person id")),
                at(when),
            )
            .expect("engine");
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
    }
    let row = engine
        .store()
        .read_blocking(move |r| r.case_by_ticket(&ticket))
        .expect("read")
        .remove(0);
    serde_json::from_str(&row.data_json).expect("json")
}

fn main() {
    let shipped = Roster::load(Path::new("config/roster.toml")).expect("roster");
    let mut people = shipped.people().to_vec();
    people.push(Person::new(
        "王联络",
        "区人社局",
        "科员",
        vec![Role::Liaison],
        "rs",
        "",
    ));
    people.push(Person::new(
        "赵联络",
        "区住建局",
        "股长",
        vec![Role::Liaison],
        "zj",
        "",
    ));
    let roster = Roster::from_parts(shipped.units().to_vec(), people);
    let units: Vec<UnitName> = roster
        .units()
        .iter()
        .filter(|u| u.kind != UnitKind::Hotline)
        .map(UnitName::of)
        .collect();
    let calendar = || {
        Calendar::load_dir(Path::new("config/calendar"), WorkingHours::default()).expect("calendar")
    };
    let settings = Settings::load_with_env(None, Vec::new()).expect("settings");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("bench.db")).expect("store");
    let engine = Engine::new(
        store.clone(),
        Arc::new(roster.clone()),
        Arc::new(calendar()),
        settings.sla,
        Dispatch::from_settings(&settings.dingtalk, CardSecrets::ephemeral()),
    );
    let doc = template(&engine, &roster);

    let seeding = Instant::now();
    let start = at("2026-01-05T09:00:00+08:00");
    // Spread the starts over 350 days so the year's last cases still finish in December.
    let step = SignedDuration::from_secs(350 * 24 * 3600 / CASES as i64);
    for chunk in 0..CASES.div_ceil(CHUNK) {
        let doc = doc.clone();
        let units = units.clone();
        store
            .write_blocking(move |tx| -> Result<_, tiaochu::store::StoreError> {
                for i in chunk * CHUNK..((chunk + 1) * CHUNK).min(CASES) {
                    let first = &units[i % units.len()];
                    let helpers = [
                        &units[(i + 7) % units.len()],
                        &units[(i + 13) % units.len()],
                    ];
                    let case_no = CaseNo::parse(&format!("TC-2026-{:06}", i + 1)).expect("case");
                    let ticket_no =
                        TicketNo::parse(&format!("DH2026{:09}", i + 1)).expect("ticket");
                    let mut d = doc.clone();
                    d["case_no"] = json!(case_no);
                    d["ticket_no"] = json!(ticket_no);
                    d["first_unit"] = json!(first);
                    let t0 = start + step * i32::try_from(i).expect("fits");
                    let id = tx.insert_case(&NewCase {
                        case_no: &case_no,
                        ticket_no: &ticket_no,
                        first_unit: first,
                        urgent: false,
                        state: "closed",
                        data_json: &d.to_string(),
                        created_at: t0,
                    })?;
                    let hour = |h: i64| t0 + SignedDuration::from_hours(h);
                    let late = i % 10 == 0;
                    let units = |us: [&UnitName; 2]| us.map(UnitName::clone).to_vec();
                    let mut events: Vec<(Timestamp, Option<&UnitName>, EventData)> = vec![
                        (
                            t0,
                            Some(first),
                            EventData::Submitted(Registration {
                                version: 1,
                                ticket_no: ticket_no.clone(),
                                green_channel: false,
                                category: Category::LacksCapacity,
                                requested_units: units(helpers),
                            }),
                        ),
                        (
                            hour(1),
                            None,
                            EventData::Claimed {
                                version: 1,
                                on_time: true,
                            },
                        ),
                        (
                            hour(3),
                            None,
                            EventData::DecidedJoint {
                                version: 1,
                                units: units(helpers),
                                on_time: true,
                            },
                        ),
                    ];
                    for u in helpers {
                        events.push((
                            hour(3),
                            Some(u),
                            EventData::UnitRequested {
                                direction: "协助核查".to_string(),
                                due: hour(27),
                            },
                        ));
                    }
                    events.push((
                        hour(15),
                        Some(helpers[0]),
                        EventData::ReminderSent {
                            clock: format!("unit_response:{}", helpers[0]),
                            phase: Phase::Half,
                            count: 1,
                            late_minutes: None,
                            skipped_in_catch_up: Vec::new(),
                        },
                    ));
                    for u in helpers {
                        events.push((
                            hour(20),
                            Some(u),
                            EventData::UnitAccepted {
                                on_time: !late,
                                help: vec!["现场核查".to_string()],
                            },
                        ));
                    }
                    events.push((
                        hour(20),
                        None,
                        EventData::JointHandlingStarted {
                            units: units(helpers),
                            handling_due: hour(300),
                        },
                    ));
                    for k in 0..7 {
                        events.push((
                            hour(30 + 24 * k),
                            None,
                            EventData::Progress {
                                text: "已约谈企业负责人，正在核对工资台账".to_string(),
                            },
                        ));
                    }
                    events.push((
                        hour(240),
                        Some(first),
                        EventData::Completed { on_time: !late },
                    ));
                    let level = [
                        SatisfactionLevel::Satisfied,
                        SatisfactionLevel::BasicallySatisfied,
                        SatisfactionLevel::Dissatisfied,
                    ][i % 3];
                    events.push((hour(241), None, EventData::Satisfaction { level }));
                    events.push((
                        hour(241),
                        None,
                        EventData::Closed {
                            how: ClosedBy::Satisfaction,
                        },
                    ));
                    if i % 50 == 0 {
                        events.push((hour(242), None, EventData::TypicalMarked { revised: false }));
                    } else {
                        events.push((
                            hour(200),
                            None,
                            EventData::ReminderSent {
                                clock: "handling".to_string(),
                                phase: Phase::Soon,
                                count: 1,
                                late_minutes: None,
                                skipped_in_catch_up: Vec::new(),
                            },
                        ));
                    }
                    assert_eq!(events.len(), EVENTS_PER_CASE);
                    for (at, unit, data) in events {
                        let event = Event {
                            at,
                            actor: "system".to_string(),
                            unit: unit.cloned(),
                            data,
                        };
                        tx.append_event(Some(id), &event)?;
                    }
                }
                Ok(())
            })
            .expect("seed");
    }
    println!(
        "seeded {CASES} cases and {} events in {:.1} s (peak RSS {:.0} MiB)",
        CASES * EVENTS_PER_CASE,
        seeding.elapsed().as_secs_f64(),
        peak_rss_mib()
    );

    let cal = calendar();
    let now = at("2026-12-01T09:00:00+08:00");
    for (name, period) in [
        (
            "monthly report 2026-11",
            Period::parse_month("2026-11").expect("month"),
        ),
        (
            "whole-year report 2026 (every case and event)",
            Period::range(
                "2026-01-01".parse().expect("date"),
                "2026-12-31".parse().expect("date"),
            )
            .expect("range"),
        ),
    ] {
        let t = Instant::now();
        let r = store
            .read_blocking(|r| report::build(r, &cal, &period, now))
            .expect("report");
        let built = t.elapsed();
        let md = report::markdown::full(&r, &cal);
        let xlsx = report::xlsx::workbook(&r, &cal).expect("xlsx");
        let total = t.elapsed();
        println!(
            "{name}: {} cases, {} units, {} submitted, {} completed; build {:.2} s, \
             + md {} KB + xlsx {} KB = {:.2} s; peak RSS {:.0} MiB",
            r.cases.len(),
            r.stats.units.len(),
            r.stats.overall.submitted,
            r.stats.overall.completed,
            built.as_secs_f64(),
            md.len() / 1024,
            xlsx.len() / 1024,
            total.as_secs_f64(),
            peak_rss_mib()
        );
    }
}

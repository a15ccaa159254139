//! Reports (五(四), 五(五)): real cases driven through the engine with explicit instants, then the
//! monthly statistics, 通报, 三抓三促 transfers and 热线故事汇 compared with numbers worked out by
//! hand; the xlsx read back by openpyxl; the monthly post queued once per month.
//!
//! The seeded cases (all first unit 区人社局 = RS; cooperating 区住建局 = ZJ, 区城市管理局 = CG):
//! - A: submitted 10-28, ZJ accepts exactly at its response deadline (10-29), completed on time
//!   11-05, 满意, marked typical 11-06 — spans October and November.
//! - B: submitted 11-02, returned, resubmitted the same day, decided independent — one application.
//! - C: joint with ZJ and CG 11-03; ZJ objects on time and is withdrawn; CG does not answer (overdue
//!   11-05 08:30), is supervised, accepts late; the handling deadline (11-19) passes (breach 11-20).
//! - D: joint with CG 11-09; CG objects, the inspector insists, CG is supervised and accepts;
//!   completed on time, 不满意.
//! - E: joint with ZJ 11-16; ZJ accepts on time; completed on time, 基本满意.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use jiff::Timestamp;
use tiaochu::engine::Outcome;
use tiaochu::report::{self, NoticeKind, Period};
use tiaochu::roster::Roster;
use tiaochu::workflow::{Actor, Application, CoordinationAsk, HelpItem, Input, SatisfactionLevel};

use crate::support;

const RS: &str = "rs-liaison";
const ZJ: &str = "zj-liaison";
const CG: &str = "cg-liaison";
const INSPECTOR: &str = "local:区12345热线:孟艳秋";
const SUPERVISOR: &str = "local:区12345热线:姚雪婷";
const HEAD: &str = "local:区12345热线:李小燕";
const RS_UNIT: &str = "区人社局";
const ZJ_UNIT: &str = "区住建局";
const CG_UNIT: &str = "区城市管理局";

/// The shared test world with three liaisons, and this module's steps.
struct World(support::World);

impl std::ops::Deref for World {
    type Target = support::World;
    fn deref(&self) -> &support::World {
        &self.0
    }
}

fn world() -> World {
    World(
        support::world()
            .liaison("王联络", RS_UNIT, RS)
            .liaison("赵联络", ZJ_UNIT, ZJ)
            .liaison("钱联络", CG_UNIT, CG)
            .build(),
    )
}

fn at(s: &str) -> Timestamp {
    format!("{s}+08:00[Asia/Shanghai]")
        .parse::<jiff::Zoned>()
        .expect("instant")
        .timestamp()
}

fn application(roster: &Roster, ticket: &str, measures: &str) -> Application {
    let text = support::seed_application_text(ticket).replace("核实拖欠薪资的基本情况", measures);
    support::complete_application(roster, &text)
}

impl World {
    fn act(&self, ticket: &str, who: &str, when: &str, input: Input) {
        let out = self
            .engine
            .handle_blocking(
                &crate::support::ticket_no(ticket),
                input,
                Actor::Person(crate::support::person_id(who)),
                at(when),
            )
            .expect("engine");
        assert!(
            matches!(out, Outcome::Applied { .. }),
            "{ticket} at {when}: {out:?}"
        );
    }

    fn submit(&self, ticket: &str, when: &str, measures: &str) {
        let application = application(&self.roster, ticket, measures);
        self.act(ticket, RS, when, Input::Submit { application });
    }

    fn joint(&self, ticket: &str, when: &str, units: &[&str]) {
        let units = units
            .iter()
            .map(|u| CoordinationAsk {
                unit: crate::support::unit_named(u),
                direction: format!("{u}协助核查"),
            })
            .collect();
        self.act(ticket, INSPECTOR, when, Input::DecideJoint { units });
    }

    fn accept(&self, ticket: &str, who: &str, unit: &str, when: &str) {
        self.act(
            ticket,
            who,
            when,
            Input::Accept {
                unit: crate::support::unit_named(unit),
                contact_name: "张三".into(),
                position: "股长".into(),
                phone: "13900000000".into(),
                help: vec![HelpItem::SiteCheck],
            },
        );
    }

    fn complete(&self, ticket: &str, when: &str) {
        self.act(
            ticket,
            RS,
            when,
            Input::Complete {
                process: "联合现场核查".into(),
                measures: "督促企业分期支付".into(),
                citizen_feedback: "已收到工资".into(),
            },
        );
    }

    fn satisfaction(&self, ticket: &str, when: &str, level: SatisfactionLevel) {
        self.act(ticket, HEAD, when, Input::Satisfaction { level });
    }

    /// Fires every timer due at `when` through the scheduler's step, as the service would at
    /// that instant.
    fn fire(&self, when: &str) {
        self.clock.set(at(when));
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(self.0.fire_due());
    }

    fn response_due(&self, ticket: &str, unit: &str) -> Timestamp {
        let ticket = ticket.to_string();
        let row = self
            .store
            .read_blocking(move |r| r.case_by_ticket(&crate::support::ticket_no(&ticket)))
            .expect("case")
            .remove(0);
        let case = tiaochu::engine::decode(&row).expect("decode");
        case.request(unit).expect("request").due
    }

    fn report(&self, period: Period, now: &str) -> report::Report {
        let calendar = self.calendar.clone();
        let now = at(now);
        self.store
            .read_blocking(move |r| report::build(r, &calendar, &period, now))
            .expect("report")
    }
}

const A: &str = "DH2026102800001";
const B: &str = "DH2026110200002";
const C: &str = "DH2026110300003";
const D: &str = "DH2026110900004";
const E: &str = "DH2026111600005";

/// Every step of the five cases, in time order.
fn seeded() -> World {
    let w = world();
    // A: spans two months; answered exactly at the deadline.
    w.submit(A, "2026-10-28T09:00:00", "核实欠薪情况A");
    w.act(A, INSPECTOR, "2026-10-28T09:10:00", Input::Claim);
    w.joint(A, "2026-10-28T10:00:00", &[ZJ_UNIT]);
    let deadline = w.response_due(A, ZJ_UNIT);
    assert_eq!(deadline, at("2026-10-29T18:00:00"), "1 working day");
    let exactly = deadline
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz"))
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    w.accept(A, ZJ, ZJ_UNIT, &exactly);
    // B: returned and resubmitted: one application.
    w.submit(B, "2026-11-02T09:00:00", "核实欠薪情况B");
    w.act(B, INSPECTOR, "2026-11-02T09:05:00", Input::Claim);
    w.act(
        B,
        INSPECTOR,
        "2026-11-02T09:30:00",
        Input::Return {
            reason: "措施不具体".into(),
        },
    );
    w.submit(B, "2026-11-02T14:30:00", "核实欠薪情况B（补充）");
    w.act(B, INSPECTOR, "2026-11-02T14:40:00", Input::Claim);
    w.act(
        B,
        INSPECTOR,
        "2026-11-02T15:00:00",
        Input::DecideIndependent {
            path_and_basis: "依据《保障农民工工资支付条例》由首接单位办理".into(),
        },
    );
    // C: a withdrawn objection, a refusal, a supervision, a late answer, overdue handling.
    w.submit(C, "2026-11-03T09:00:00", "核实欠薪情况C");
    w.act(C, INSPECTOR, "2026-11-03T09:05:00", Input::Claim);
    w.joint(C, "2026-11-03T09:30:00", &[ZJ_UNIT, CG_UNIT]);
    w.act(
        C,
        ZJ,
        "2026-11-04T10:00:00",
        Input::Object {
            unit: crate::support::unit_named(ZJ_UNIT),
            reason: "不属于本单位职责".into(),
        },
    );
    w.act(
        C,
        INSPECTOR,
        "2026-11-04T11:00:00",
        Input::Withdraw {
            unit: crate::support::unit_named(ZJ_UNIT),
        },
    );
    w.fire("2026-11-05T08:30:00");
    w.act(
        C,
        SUPERVISOR,
        "2026-11-05T09:00:00",
        Input::Supervise {
            unit: crate::support::unit_named(CG_UNIT),
            content: "请于今日内明确联系人".into(),
        },
    );
    w.accept(C, CG, CG_UNIT, "2026-11-05T10:00:00");
    // A completes on time, 满意, typical.
    w.complete(A, "2026-11-05T10:30:00");
    w.satisfaction(A, "2026-11-05T11:00:00", SatisfactionLevel::Satisfied);
    w.act(
        A,
        INSPECTOR,
        "2026-11-06T09:00:00",
        Input::MarkTypical {
            summary: "国企协同破解欠薪".into(),
        },
    );
    // D: an upheld objection and a second supervision of CG.
    w.submit(D, "2026-11-09T09:00:00", "核实欠薪情况D");
    w.act(D, INSPECTOR, "2026-11-09T09:05:00", Input::Claim);
    w.joint(D, "2026-11-09T09:30:00", &[CG_UNIT]);
    w.act(
        D,
        CG,
        "2026-11-09T15:00:00",
        Input::Object {
            unit: crate::support::unit_named(CG_UNIT),
            reason: "职责不清".into(),
        },
    );
    w.act(
        D,
        INSPECTOR,
        "2026-11-09T16:00:00",
        Input::Insist {
            unit: crate::support::unit_named(CG_UNIT),
            reason: String::new(),
        },
    );
    w.act(
        D,
        SUPERVISOR,
        "2026-11-10T09:00:00",
        Input::Supervise {
            unit: crate::support::unit_named(CG_UNIT),
            content: "请按要求接受协办".into(),
        },
    );
    w.accept(D, CG, CG_UNIT, "2026-11-10T10:00:00");
    w.complete(D, "2026-11-12T10:00:00");
    w.satisfaction(D, "2026-11-12T11:00:00", SatisfactionLevel::Dissatisfied);
    // E: all on time, 基本满意.
    w.submit(E, "2026-11-16T09:00:00", "核实欠薪情况E");
    w.act(E, INSPECTOR, "2026-11-16T09:05:00", Input::Claim);
    w.joint(E, "2026-11-16T09:30:00", &[ZJ_UNIT]);
    w.accept(E, ZJ, ZJ_UNIT, "2026-11-16T10:00:00");
    w.complete(E, "2026-11-18T10:00:00");
    w.satisfaction(
        E,
        "2026-11-18T11:00:00",
        SatisfactionLevel::BasicallySatisfied,
    );
    // C's handling deadline (10 working days after 11-05: 11-19 18:00) passes.
    w.fire("2026-11-20T09:00:00");
    w
}

fn month(m: &str) -> Period {
    Period::parse_month(m).expect("month")
}

#[test]
fn november_figures_match_the_hand_count() {
    let w = seeded();
    let r = w.report(month("2026-11"), "2026-12-01T10:00:00");
    let o = &r.stats.overall;
    // Applications: B, C, D, E (A was October; B's resubmission is not a second application).
    assert_eq!((o.submitted, o.resubmitted, o.returned), (4, 1, 1));
    assert_eq!(
        (o.decided_joint, o.decided_independent, o.decided_city),
        (3, 1, 0)
    );
    // Requests: C→ZJ, C→CG, D→CG, E→ZJ. On time: ZJ's objection on C, CG's objection on D, ZJ on
    // E; late: CG on C (after its overdue, which settled it as due). D's accept after the
    // objection is not a second answer.
    assert_eq!(o.requests, 4);
    assert_eq!(
        (o.answered_on_time, o.answered_late, o.response_due),
        (3, 1, 4)
    );
    assert_eq!(
        (o.objections, o.objections_withdrawn, o.objections_upheld),
        (2, 1, 1)
    );
    assert_eq!((o.refusals, o.supervisions), (1, 2));
    // Completed: A (spanning from October), D, E, all on time; C breached its handling deadline.
    assert_eq!(
        (o.completed, o.completed_on_time, o.completed_late),
        (3, 3, 0)
    );
    assert_eq!((o.handling_overdue, o.completion_due), (1, 4));
    assert_eq!(
        (o.satisfied, o.basically_satisfied, o.dissatisfied),
        (1, 1, 1)
    );
    assert_eq!(o.typical, 1);
    // Rates against targets.
    let [completion, response, satisfaction] = o.targets();
    assert_eq!((completion.actual.num, completion.actual.den), (3, 4));
    assert_eq!((response.actual.num, response.actual.den), (3, 4));
    assert_eq!((satisfaction.actual.num, satisfaction.actual.den), (2, 3));
    assert_eq!(
        [completion.met, response.met, satisfaction.met],
        [Some(false), Some(false), Some(false)]
    );
    assert_eq!(satisfaction.target_label(), "≥ 90%");

    // Per unit.
    let units: Vec<&str> = r.stats.units.keys().map(String::as_str).collect();
    let mut want = vec![RS_UNIT, ZJ_UNIT, CG_UNIT];
    want.sort();
    assert_eq!(units, want);
    let rs = &r.stats.units[RS_UNIT];
    assert_eq!((rs.submitted, rs.completed, rs.completion_due), (4, 3, 4));
    assert_eq!(
        (rs.requests, rs.supervisions, rs.handling_overdue),
        (0, 0, 1)
    );
    let zj = &r.stats.units[ZJ_UNIT];
    assert_eq!(
        (
            zj.requests,
            zj.answered_on_time,
            zj.response_due,
            zj.objections_withdrawn
        ),
        (2, 2, 2, 1)
    );
    assert_eq!(zj.response_rate().value(), Some(1.0));
    assert_eq!(zj.targets()[1].met, Some(true));
    let cg = &r.stats.units[CG_UNIT];
    assert_eq!(
        (
            cg.requests,
            cg.answered_on_time,
            cg.answered_late,
            cg.response_due
        ),
        (2, 1, 1, 2)
    );
    assert_eq!(
        (
            cg.refusals,
            cg.objections,
            cg.objections_upheld,
            cg.supervisions
        ),
        (1, 1, 1, 2)
    );
    // Nothing missing: the overall counts are the unit sums.
    let sum: u64 = r.stats.units.values().map(|c| c.requests).sum();
    assert_eq!(sum, o.requests);

    // Cases touched: A (its completion), B, C, D, E.
    assert_eq!(r.cases.len(), 5);
    let a = r.cases.iter().find(|c| c.ticket_no == A).expect("A listed");
    assert_eq!(a.completed_on_time, Some(true));
    assert_eq!(a.satisfaction.as_deref(), Some("满意"));
}

#[test]
fn october_counts_the_submission_and_the_answer_at_the_deadline() {
    let w = seeded();
    let r = w.report(month("2026-10"), "2026-12-01T10:00:00");
    let o = &r.stats.overall;
    assert_eq!((o.submitted, o.decided_joint, o.requests), (1, 1, 1));
    assert_eq!(
        (o.answered_on_time, o.response_due, o.answered_late),
        (1, 1, 0),
        "an answer exactly at the deadline is on time"
    );
    assert_eq!((o.completed, o.completion_due, o.satisfied), (0, 0, 0));
    let [completion, response, satisfaction] = o.targets();
    assert_eq!(response.met, Some(true));
    assert_eq!((completion.met, satisfaction.met), (None, None), "无数据");
    assert_eq!(completion.verdict(), "无数据");
    assert_eq!(r.cases.len(), 1);
    assert!(r.notices.is_empty() && r.transfers.is_empty());

    // The quarter is the sum of its months (no case event falls in December here).
    let q = w.report(
        Period::parse_quarter("2026-Q4").expect("quarter"),
        "2026-12-01T10:00:00",
    );
    let nov = w.report(month("2026-11"), "2026-12-01T10:00:00");
    assert_eq!(q.stats.overall.submitted, 5);
    assert_eq!(
        q.stats.overall.requests,
        o.requests + nov.stats.overall.requests
    );
    assert_eq!(q.period_label, "2026年第四季度");
    // A date range inside November sees only what happened in it: B's day.
    let day = w.report(
        Period::range(
            "2026-11-02".parse().expect("date"),
            "2026-11-02".parse().expect("date"),
        )
        .expect("range"),
        "2026-12-01T10:00:00",
    );
    assert_eq!(
        (
            day.stats.overall.submitted,
            day.stats.overall.resubmitted,
            day.stats.overall.returned
        ),
        (1, 1, 1)
    );
}

#[test]
fn the_notice_names_units_with_evidence_and_marks_transfers() {
    let w = seeded();
    let r = w.report(month("2026-11"), "2026-12-01T10:00:00");
    let mut kinds: Vec<(&str, &str, NoticeKind)> = r
        .notices
        .iter()
        .map(|n| (n.unit.as_str(), n.ticket_no.as_str(), n.kind))
        .collect();
    kinds.sort();
    let mut want = vec![
        (RS_UNIT, C, NoticeKind::HandlingOverdue),
        (CG_UNIT, C, NoticeKind::Refusal),
        (CG_UNIT, C, NoticeKind::Supervision),
        (CG_UNIT, C, NoticeKind::LateAnswer),
        (CG_UNIT, D, NoticeKind::ObjectionUpheld),
        (CG_UNIT, D, NoticeKind::Supervision),
    ];
    want.sort();
    assert_eq!(kinds, want);
    let refusal = r
        .notices
        .iter()
        .find(|n| n.kind == NoticeKind::Refusal)
        .expect("refusal");
    assert_eq!(refusal.deadline, Some(at("2026-11-04T18:00:00")));
    assert_eq!(refusal.at, at("2026-11-05T08:30:00"));
    let late = r
        .notices
        .iter()
        .find(|n| n.kind == NoticeKind::LateAnswer)
        .expect("late answer");
    assert_eq!(late.deadline, Some(at("2026-11-04T18:00:00")));
    assert_eq!(late.at, at("2026-11-05T10:00:00"));
    let overdue = r
        .notices
        .iter()
        .find(|n| n.kind == NoticeKind::HandlingOverdue)
        .expect("handling overdue");
    assert_eq!(overdue.deadline, Some(at("2026-11-19T18:00:00")));
    assert!(
        !r.notices.iter().any(|n| n.unit == ZJ_UNIT),
        "a withdrawn objection is not named"
    );

    // 三抓三促: CG was supervised twice (C and D); C's handling is 7 working days overdue by 11-30.
    let transfers: Vec<(&str, &str)> = r
        .transfers
        .iter()
        .map(|t| (t.unit.as_str(), t.ticket_no.as_str()))
        .collect();
    assert_eq!(transfers.len(), 3, "{transfers:?}");
    assert!(transfers.contains(&(CG_UNIT, C)) && transfers.contains(&(CG_UNIT, D)));
    let rs = r
        .transfers
        .iter()
        .find(|t| t.unit == RS_UNIT)
        .expect("overdue transfer");
    assert!(rs.reason.contains("办理超期 7 个工作日"), "{}", rs.reason);

    // Typical cases: A, with its sections filled from the case.
    assert_eq!(r.stories.len(), 1);
    let s = &r.stories[0];
    assert_eq!(s.ticket_no, A);
    assert_eq!(s.lessons, "国企协同破解欠薪");
    assert_eq!(s.units[0].0, RS_UNIT);
    assert!(
        s.units
            .iter()
            .any(|(u, did)| u == ZJ_UNIT && did.contains("现场核查"))
    );
    assert!(s.result.contains("满意度：满意"), "{}", s.result);
    let draft = report::typical::markdown(&r.period_label, &r.stories);
    for section in [
        "**背景**",
        "**难点**",
        "**各单位做法**",
        "**结果**",
        "**可复制推广的经验**",
    ] {
        assert!(draft.contains(section), "{section}");
    }
}

#[test]
fn the_notice_order_is_by_unit_then_time() {
    let w = seeded();
    let r = w.report(month("2026-11"), "2026-12-01T10:00:00");
    let got: Vec<(String, NoticeKind)> =
        r.notices.iter().map(|n| (n.unit.clone(), n.kind)).collect();
    let mut want = vec![
        (RS_UNIT.to_string(), NoticeKind::HandlingOverdue),
        (CG_UNIT.to_string(), NoticeKind::Refusal),
        (CG_UNIT.to_string(), NoticeKind::Supervision),
        (CG_UNIT.to_string(), NoticeKind::LateAnswer),
        (CG_UNIT.to_string(), NoticeKind::ObjectionUpheld),
        (CG_UNIT.to_string(), NoticeKind::Supervision),
    ];
    // Units sort by name; within a unit, by time.
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
}

#[test]
fn the_monthly_post_is_queued_once_per_month() {
    let w = seeded();
    let settings = &w.settings;
    let at_time = settings.report.monthly_at_time();
    // 2026-12-01 is a Tuesday, the first working day of December.
    assert_eq!(
        report::monthly_due(&w.calendar, at("2026-12-15T12:00:00"), at_time),
        Some(at("2026-12-01T09:00:00"))
    );
    // 2026-11-01 is a Sunday: November's post is due Monday 11-02.
    assert_eq!(
        report::monthly_due(&w.calendar, at("2026-11-20T12:00:00"), at_time),
        Some(at("2026-11-02T09:00:00"))
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = at("2026-12-01T09:00:00");
    let first = rt
        .block_on(report::post_monthly(&w.engine, &settings.report, now))
        .expect("post");
    assert_eq!(first.period_key, "2026-11");
    // Sandbox, no group robot: the hotline head stands in for the group; two group leaders.
    assert_eq!((first.queued, first.empty), (3, false));
    let again = rt
        .block_on(report::post_monthly(&w.engine, &settings.report, now))
        .expect("post again");
    assert_eq!(again.queued, 0, "idempotent per month");
    let rows = w
        .store
        .read_blocking(|r| r.list_outbox(None, 10_000))
        .expect("outbox");
    let posted: Vec<_> = rows
        .iter()
        .filter(|r| r.idem_key.starts_with("report:2026-11/"))
        .collect();
    assert_eq!(posted.len(), 3);
    assert!(posted.iter().any(|r| r.target == HEAD));
    assert!(
        posted
            .iter()
            .any(|r| r.target == "local:区营商环境建设局:何军")
    );
    let text = String::from_utf8_lossy(&posted[0].payload);
    assert!(text.contains("2026年11月联合调处月统计"), "{text}");
    assert!(text.contains("75.0%（3/4）"), "{text}");
    // A month without events posts nothing.
    let empty = rt
        .block_on(report::post_monthly(
            &w.engine,
            &settings.report,
            at("2026-10-09T09:00:00"),
        ))
        .expect("post");
    assert_eq!(
        (empty.period_key.as_str(), empty.empty, empty.queued),
        ("2026-09", true, 0)
    );
}

#[test]
fn the_cli_xlsx_is_read_back_by_openpyxl() {
    let w = seeded();
    let db = w.store.path().to_path_buf();
    let xlsx = w.dir.path().join("报表.xlsx");
    let out = crate::support::cli()
        .args(["report", "--month", "2026-11", "--format", "xlsx", "--out"])
        .arg(&xlsx)
        .env("TIAOCHU_STORE__PATH", &db)
        .output()
        .expect("run tiaochu");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // CSV and JSON from the same command agree with the in-process report.
    let csv = crate::support::cli()
        .args(["report", "--month", "2026-11", "--format", "csv"])
        .env("TIAOCHU_STORE__PATH", &db)
        .output()
        .expect("run tiaochu");
    let csv = String::from_utf8(csv.stdout).expect("utf-8");
    let total = csv
        .lines()
        .find(|l| l.starts_with("合计"))
        .expect("合计 row");
    assert!(
        total.starts_with("合计,4,1,1,3,1,0,4,4,3,1,1,2,1,1,2,4,3,3,0,1,1,1,1,1,75.0%,75.0%,66.7%"),
        "{total}"
    );
    let json = crate::support::cli()
        .args(["report", "--quarter", "2026-Q4", "--format", "json"])
        .env("TIAOCHU_STORE__PATH", &db)
        .output()
        .expect("run tiaochu");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["stats"]["overall"]["submitted"], 5);
    let bad = crate::support::cli()
        .args(["report", "--month", "2026-11", "--format", "xlsx"])
        .env("TIAOCHU_STORE__PATH", &db)
        .output()
        .expect("run tiaochu");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--out"));

    let python = crate::support::conformance_python();
    let importable = Command::new(&python)
        .args(["-c", "import openpyxl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        let why = format!(
            "{} cannot import openpyxl (install with: pip install openpyxl==3.1.5, as .ci/run \
             does into target/conformance-venv)",
            python.display()
        );
        crate::support::skip_or_fail("the_cli_xlsx_is_read_back_by_openpyxl", &why);
        return;
    }
    let mut unit_headers = vec!["单位".to_string()];
    unit_headers.extend(
        report::Counts::default()
            .columns()
            .iter()
            .map(|(n, _)| (*n).to_string()),
    );
    let expected = serde_json::json!({
        "sheets": report::xlsx::SHEETS,
        "unit_headers": unit_headers,
        "units": 3,
        "cases": 5,
        "summary": {
            "统计期间": "2026年11月",
            "申请登记": 4,
            "重新提交": 1,
            "协办请求": 4,
            "按时答复": 3,
            "书面督办": 2,
            "办结": 3,
            "办理超期": 1,
            "办结率": 0.75,
            "响应率": 0.75,
            "满意率": 2.0 / 3.0,
            "通报事项": 6,
        },
    });
    let expected_path = w.dir.path().join("expected.json");
    std::fs::write(&expected_path, expected.to_string()).expect("write expected");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/check_xlsx.py");
    let check = Command::new(&python)
        .arg(&script)
        .arg(&xlsx)
        .arg(&expected_path)
        .output()
        .expect("run openpyxl check");
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && said.contains("OK"),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

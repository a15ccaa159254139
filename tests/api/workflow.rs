//! Integration tests: the workflow core through `transition`, with the shipped roster (plus a few
//! liaisons), the shipped calendar and the default SLA settings.

use std::collections::BTreeSet;

use jiff::{Span, Timestamp, ToSpan};
use proptest::prelude::*;
use std::sync::LazyLock;
use tiaochu::calendar::Calendar;

use tiaochu::domain::{CaseNo, PersonId, TicketNo, UnitName};
use tiaochu::parse::{self, Category, UnitMatcher};
use tiaochu::roster::{Person, Role, Roster, Unit, UnitKind};
use tiaochu::settings::SlaSettings;
use tiaochu::workflow::{
    Actor, Application, Case, ClockKind, ClockState, CoordinationAsk, Ctx, Decision, Effect,
    EventData, EventKind, HelpItem, Input, Message, Phase, RejectReason, Rejection, RequestStatus,
    SatisfactionLevel, State, Subject, SupervisionGround, TimerState, check_invariants, transition,
};

use crate::support;

// People: the first unit 区人社局 (a liaison, its leader 任燕, a clerk with no role), two
// cooperating units with a liaison each, hotline staff from the shipped roster, and an admin.
const RS_LIAISON: &str = "rs-liaison";
const RS_LEADER: &str = "local:区人社局:任燕";
const RS_CLERK: &str = "rs-clerk";
const ZJ_LIAISON: &str = "zj-liaison";
const ZJ_LEADER: &str = "local:区住建局:保国钰";
const CG_LIAISON: &str = "cg-liaison";
const CG_LEADER: &str = "local:区城市管理局:武应国";
const INSPECTOR_A: &str = "local:区12345热线:孟艳秋";
const INSPECTOR_B: &str = "local:区12345热线:李德艳";
const SUPERVISOR: &str = "local:区12345热线:姚雪婷";
const HOTLINE_HEAD: &str = "local:区12345热线:李小燕";
const CITY: &str = "local:市12345热线:杨琳";
const ADMIN: &str = "admin-1";
const SYSTEM: &str = "system";

const FIRST: &str = "区人社局";
const ZJ: &str = "区住建局";
const CG: &str = "区城市管理局";
/// A member unit with nobody in the roster.
const ORPHAN_UNIT: &str = "无人单位";
const TICKET: &str = "DH2026110200001";

struct World {
    roster: Roster,
    calendar: Calendar,
    sla: SlaSettings,
    /// `[workflow] require_leader_confirmation`.
    confirm: bool,
}

impl World {
    fn new() -> World {
        let core = support::world()
            .unit(Unit {
                name: ORPHAN_UNIT.into(),
                kind: UnitKind::Department,
                aliases: vec![],
            })
            .person(Person::new(
                "人社联络员",
                FIRST,
                "科员",
                vec![Role::Liaison],
                RS_LIAISON,
                "13800000001",
            ))
            .person(Person::new("人社科员", FIRST, "科员", vec![], RS_CLERK, ""))
            .person(Person::new(
                "住建联络员",
                ZJ,
                "股长",
                vec![Role::Liaison],
                ZJ_LIAISON,
                "13800000002",
            ))
            .person(Person::new(
                "城管联络员",
                CG,
                "股长",
                vec![Role::Liaison],
                CG_LIAISON,
                "13800000003",
            ))
            .person(Person::new(
                "管理员",
                "区12345热线",
                "管理员",
                vec![Role::Admin],
                ADMIN,
                "",
            ))
            .core();
        World {
            roster: core.roster,
            calendar: core.calendar,
            sla: core.sla,
            confirm: false,
        }
    }

    /// The same world with `[workflow] require_leader_confirmation` on.
    fn with_confirmation() -> World {
        World {
            confirm: true,
            ..World::new()
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            roster: &self.roster,
            calendar: &self.calendar,
            sla: &self.sla,
            require_leader_confirmation: self.confirm,
        }
    }

    fn run(
        &self,
        case: Option<&Case>,
        input: &Input,
        actor: &str,
        now: Timestamp,
    ) -> Result<Decision, Rejection> {
        let actor = match actor {
            SYSTEM => Actor::System,
            id => Actor::Person(crate::support::person_id(id)),
        };
        // Without a case, a submission registers the year's first case.
        let first = CaseNo::new(2026, 1);
        let subject = match case {
            Some(case) => Subject::Case(case),
            None => Subject::New { case_no: &first },
        };
        transition(subject, input, &actor, now, &self.ctx())
    }
}

/// A case driven step by step: each accepted step must leave a consistent case; the ledger
/// tracks every timer the engine would hold.
struct Flow<'w> {
    w: &'w World,
    case: Option<Case>,
    now: Timestamp,
    last: Option<Decision>,
    ledger: TimerLedger,
}

impl<'w> Flow<'w> {
    fn new(w: &'w World) -> Flow<'w> {
        Flow {
            w,
            case: None,
            now: monday(),
            last: None,
            ledger: TimerLedger::default(),
        }
    }

    /// Submitted by the first unit's liaison on Monday 09:00.
    fn submitted(w: &'w World, urgent: bool) -> Flow<'w> {
        let mut f = Flow::new(w);
        f.ok(submit(application(urgent)), RS_LIAISON);
        f
    }

    /// Submitted, then claimed by inspector A ten minutes later.
    fn claimed(w: &'w World, urgent: bool) -> Flow<'w> {
        let mut f = Flow::submitted(w, urgent);
        f.after(10.minutes()).ok(Input::Claim, INSPECTOR_A);
        f
    }

    fn after(&mut self, span: Span) -> &mut Self {
        self.now = self.now.checked_add(span).expect("time");
        self
    }

    fn case(&self) -> &Case {
        self.case.as_ref().expect("a case")
    }

    fn last(&self) -> &Decision {
        self.last.as_ref().expect("a decision")
    }

    fn ok(&mut self, input: Input, actor: &str) -> &Decision {
        let d = match self.w.run(self.case.as_ref(), &input, actor, self.now) {
            Ok(d) => d,
            Err(r) => panic!("{input:?} by {actor} refused: {r:?}"),
        };
        if let Err(p) = check_invariants(&d.case) {
            panic!("after {input:?}: {p:#?}");
        }
        let fired = match &input {
            Input::TimerFired { key } if !d.events.is_empty() => Some(key.as_str()),
            _ => None,
        };
        self.ledger.apply(&d, fired);
        self.case = Some(d.case.clone());
        self.last.insert(d)
    }

    /// A refused step: nothing changes; returns the reason.
    fn refused(&self, input: Input, actor: &str) -> RejectReason {
        match self.w.run(self.case.as_ref(), &input, actor, self.now) {
            Ok(d) => panic!("{input:?} by {actor} accepted: {:?}", d.case.state),
            Err(r) => {
                let chinese = r
                    .message
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
                assert!(chinese, "not a Chinese message: {}", r.message);
                r.reason
            }
        }
    }

    /// Messages the last decision sends to `who`.
    fn told(&self, who: &str) -> Vec<Message> {
        notified(self.last(), who)
    }

    fn events(&self) -> Vec<EventKind> {
        self.last().events.iter().map(|e| e.kind()).collect()
    }

    fn state(&self) -> State {
        self.case().state
    }

    /// The timers of the latest clock of `kind`, as (key, phase, due).
    fn timers(&self, kind: &ClockKind) -> Vec<(String, Phase, Timestamp)> {
        let clock = self.case().clock(kind).expect("clock");
        clock
            .timers
            .iter()
            .map(|t| (t.key.clone(), t.phase, t.due_at))
            .collect()
    }
}

/// The tests' roster (the shipped one and [`ORPHAN_UNIT`]) and its unit matcher.
static ROSTER: LazyLock<Roster> = LazyLock::new(|| World::new().roster);
static MATCHER: LazyLock<UnitMatcher> = LazyLock::new(|| UnitMatcher::new(&ROSTER));

/// A unit of the tests' roster by name (a hotline too: the workflow must refuse it where only a
/// member unit may act).
fn unit_named(name: &str) -> UnitName {
    UnitName::of(ROSTER.unit(name).expect("a roster unit"))
}

fn application(urgent: bool) -> Application {
    Application::from_report(&report(urgent), &MATCHER).expect("complete")
}

/// The parser's report of a complete application from the first unit.
fn report(urgent: bool) -> parse::Application {
    parse::Application {
        ok: true,
        ticket_no: Some(TICKET.into()),
        title: "反映某企业拖欠薪资的问题".into(),
        first_unit: Some(FIRST.into()),
        measures_taken: "已联系企业核实欠薪情况".into(),
        difficulties: "涉及国企项目，单方难以协调".into(),
        coordination: "请区住建局、区城市管理局协同".into(),
        requested_units: vec![ZJ.into(), CG.into()],
        unresolved_mentions: vec![],
        city_level: false,
        leader_approval: "已向分管领导汇报，分管领导已同意".into(),
        leader_approved: true,
        urgent,
        category: if urgent {
            Category::UrgentPublic
        } else {
            Category::LacksCapacity
        },
        deadline: None,
        missing: vec![],
        errors: vec![],
    }
}

/// Monday 2026-11-02 09:00 in Shanghai, a working day.
fn monday() -> Timestamp {
    ts("2026-11-02T09:00:00+08:00")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// `n` days of 24 hours (timestamps take no calendar units).
fn days(n: i64) -> Span {
    (n * 24).hours()
}

fn submit(application: Application) -> Input {
    Input::Submit { application }
}

fn ask(unit: &str) -> CoordinationAsk {
    CoordinationAsk {
        unit: unit_named(unit),
        direction: format!("{unit}核实相关情况"),
    }
}

fn joint(units: &[&str]) -> Input {
    Input::DecideJoint {
        units: units.iter().map(|u| ask(u)).collect(),
    }
}

fn accept(unit: &str) -> Input {
    Input::Accept {
        unit: unit_named(unit),
        contact_name: "张三".into(),
        position: "股长".into(),
        phone: "13900000000".into(),
        help: vec![HelpItem::SiteCheck, HelpItem::PolicyExplanation],
    }
}

fn object(unit: &str) -> Input {
    Input::Object {
        unit: unit_named(unit),
        reason: "不属于本单位职责".into(),
    }
}

fn withdraw(unit: &str) -> Input {
    Input::Withdraw {
        unit: unit_named(unit),
    }
}

fn insist(unit: &str) -> Input {
    Input::Insist {
        unit: unit_named(unit),
        reason: String::new(),
    }
}

fn supervise(unit: &str, content: &str) -> Input {
    Input::Supervise {
        unit: unit_named(unit),
        content: content.into(),
    }
}

fn progress(text: &str) -> Input {
    Input::Progress { text: text.into() }
}

fn complete(feedback: &str) -> Input {
    Input::Complete {
        process: "联合约谈".into(),
        measures: "企业分期支付".into(),
        citizen_feedback: feedback.into(),
    }
}

fn satisfaction() -> Input {
    Input::Satisfaction {
        level: SatisfactionLevel::Satisfied,
    }
}

fn typical(summary: &str) -> Input {
    Input::MarkTypical {
        summary: summary.into(),
    }
}

fn fire(key: &str) -> Input {
    Input::TimerFired { key: key.into() }
}

fn notified(d: &Decision, to: &str) -> Vec<Message> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify { to: t, message } if t == to => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn set_keys(d: &Decision) -> Vec<String> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::SetTimer { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

fn cancelled_keys(d: &Decision) -> Vec<String> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::CancelTimer { key } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

fn new_cards(d: &Decision) -> Vec<(String, Vec<String>)> {
    d.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Card {
                card_key,
                recipients,
                ..
            } => Some((
                card_key.clone(),
                recipients.iter().map(ToString::to_string).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// Timers the engine would hold: every key set, minus those cancelled or fired.
#[derive(Default)]
struct TimerLedger {
    set: BTreeSet<String>,
    done: BTreeSet<String>,
}

impl TimerLedger {
    fn apply(&mut self, d: &Decision, fired: Option<&str>) {
        self.set.extend(set_keys(d));
        self.done.extend(cancelled_keys(d));
        self.done.extend(fired.map(str::to_string));
    }

    fn outstanding(&self) -> Vec<&String> {
        self.set.difference(&self.done).collect()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn joint_with_two_units_one_withdrawn_one_accepting_to_closed() {
    let w = World::new();
    let mut f = Flow::submitted(&w, false);
    assert_eq!(f.state(), State::Submitted);
    assert_eq!(f.events(), vec![EventKind::Submitted]);
    assert!(matches!(
        f.told(RS_LIAISON)[..],
        [Message::Receipt { version: 1, .. }]
    ));
    let review_card = (
        "TC-2026-0001/review/v1".to_string(),
        strings(&[INSPECTOR_A, INSPECTOR_B]),
    );
    assert_eq!(new_cards(f.last()), vec![review_card]);
    // 五(一) start the review within 1 working hour: 09:00 → 10:00, reminded at 09:30.
    let review = f.timers(&ClockKind::ReviewStart);
    assert_eq!(review[0].1, Phase::Half);
    assert_eq!(review[0].2, ts("2026-11-02T09:30:00+08:00"));
    assert_eq!(review[1].2, ts("2026-11-02T10:00:00+08:00"));
    // 四(二) decide within 3 working days: due Thursday 18:00, with half-time and last
    // reminders; the breach is acted on at the next working time (Friday 08:30), since people
    // are told only in working hours outside the green channel.
    let decision = f.timers(&ClockKind::Decision);
    let phases: Vec<Phase> = decision.iter().map(|t| t.1).collect();
    assert_eq!(phases, vec![Phase::Half, Phase::Soon, Phase::Due]);
    assert_eq!(
        f.case().clock(&ClockKind::Decision).map(|c| c.due),
        Some(ts("2026-11-05T18:00:00+08:00"))
    );
    assert_eq!(decision[2].2, ts("2026-11-06T08:30:00+08:00"));
    assert!(f.case().clock(&ClockKind::GreenCoordination).is_none());

    f.after(10.minutes()).ok(Input::Claim, INSPECTOR_A);
    assert_eq!(f.state(), State::UnderReview);
    let update = Effect::UpdateCard {
        card_key: "TC-2026-0001/review/v1".into(),
    };
    assert!(f.last().effects.contains(&update));
    assert_eq!(f.last().events[0].data.on_time(), Some(true));
    assert!(matches!(f.told(RS_LIAISON)[..], [Message::Claimed { .. }]));

    f.after(1.hours()).ok(joint(&[ZJ, CG]), INSPECTOR_A);
    assert_eq!(f.state(), State::Coordinating);
    let requested = [EventKind::UnitRequested, EventKind::UnitRequested];
    assert_eq!(
        f.events(),
        [&[EventKind::DecidedJoint][..], &requested].concat()
    );
    assert_eq!(
        new_cards(f.last()),
        vec![
            (
                "TC-2026-0001/coordination/区住建局".to_string(),
                strings(&[ZJ_LIAISON])
            ),
            (
                "TC-2026-0001/coordination/区城市管理局".to_string(),
                strings(&[CG_LIAISON])
            ),
        ]
    );
    assert!(matches!(
        f.told(ZJ_LEADER)[..],
        [Message::CoordinationRequest { .. }]
    ));
    assert!(matches!(
        f.told(RS_LIAISON)[..],
        [Message::DecidedJoint { .. }]
    ));
    // 四(三) answer within 1 working day: Tuesday 18:00.
    let zj_due = f.case().request(ZJ).expect("request").due;
    assert_eq!(zj_due, ts("2026-11-03T18:00:00+08:00"));

    f.after(1.hours()).ok(object(CG), CG_LIAISON);
    assert_eq!(f.events(), vec![EventKind::UnitObjected]);
    assert!(matches!(
        f.told(INSPECTOR_A)[..],
        [Message::ObjectionRaised { .. }]
    ));
    assert!(matches!(
        f.told(CG_LEADER)[..],
        [Message::ObjectionRaised { .. }]
    ));

    f.after(1.hours()).ok(withdraw(CG), INSPECTOR_A);
    assert_eq!(
        f.state(),
        State::Coordinating,
        "区住建局 has not answered yet"
    );
    assert_eq!(f.events(), vec![EventKind::ObjectionWithdrawn]);
    assert!(matches!(
        f.told(CG_LIAISON)[..],
        [Message::RequestWithdrawn { .. }]
    ));

    f.after(1.hours()).ok(accept(ZJ), ZJ_LIAISON);
    assert_eq!(f.state(), State::JointHandling);
    let started = vec![EventKind::UnitAccepted, EventKind::JointHandlingStarted];
    assert_eq!(f.events(), started);
    assert_eq!(f.last().events[0].data.on_time(), Some(true));
    let ready = f.told(RS_LIAISON);
    let one_contact = |m: &Message| matches!(m, Message::ContactsReady { contacts, .. } if contacts.len() == 1 && contacts[0].unit == ZJ);
    assert!(ready.iter().any(one_contact), "{ready:?}");
    let told_zj = f.told(ZJ_LIAISON);
    assert!(
        told_zj
            .iter()
            .any(|m| matches!(m, Message::JointHandlingStarted { .. }))
    );
    // 五(二) handling: 10 working days from Monday 2026-11-02 → Monday 2026-11-16.
    let handling = f
        .case()
        .clock(&ClockKind::Handling)
        .expect("handling clock");
    assert_eq!(handling.due, ts("2026-11-16T18:00:00+08:00"));

    f.after(days(1)).ok(progress("已约谈企业"), RS_LIAISON);
    assert!(matches!(f.told(ZJ_LIAISON)[..], [Message::Progress { .. }]));
    assert!(
        f.told(CG_LIAISON).is_empty(),
        "a withdrawn unit is not in the handling"
    );
    f.after(days(1))
        .ok(progress("已提供项目资金数据"), ZJ_LIAISON);
    assert!(matches!(f.told(RS_LIAISON)[..], [Message::Progress { .. }]));

    f.after(days(1)).ok(complete("诉求人表示认可"), RS_LIAISON);
    assert_eq!(f.state(), State::Completed);
    assert_eq!(f.last().events[0].data.on_time(), Some(true));
    assert!(matches!(
        f.told(INSPECTOR_A)[..],
        [Message::Completed { .. }]
    ));
    assert!(matches!(
        f.told(ZJ_LIAISON)[..],
        [Message::Completed { .. }]
    ));

    f.after(days(1)).ok(satisfaction(), INSPECTOR_A);
    assert_eq!(f.state(), State::Closed);
    assert_eq!(f.events(), vec![EventKind::Satisfaction, EventKind::Closed]);
    for who in [RS_LIAISON, RS_LEADER, ZJ_LIAISON, INSPECTOR_A] {
        assert!(
            matches!(f.told(who)[..], [Message::Closed { .. }]),
            "{who} told"
        );
    }
    assert!(
        f.ledger.outstanding().is_empty(),
        "{:?}",
        f.ledger.outstanding()
    );

    f.after(days(1))
        .ok(typical("多部门联合化解欠薪"), INSPECTOR_B);
    assert_eq!(f.state(), State::Closed);
    assert_eq!(f.events(), vec![EventKind::TypicalMarked]);
    assert_eq!(
        f.refused(progress("补充"), RS_LIAISON),
        RejectReason::CaseClosed
    );
}

#[test]
fn independent_handling_closes_and_tells_the_first_unit_and_its_leader() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    let path = "依据《保障农民工工资支付条例》第…条".to_string();
    f.after(1.hours()).ok(
        Input::DecideIndependent {
            path_and_basis: path,
        },
        INSPECTOR_A,
    );
    assert_eq!(f.state(), State::Independent);
    assert_eq!(
        f.events(),
        vec![EventKind::DecidedIndependent, EventKind::Closed]
    );
    for who in [RS_LIAISON, RS_LEADER] {
        assert!(
            matches!(f.told(who)[..], [Message::DecidedIndependent { .. }]),
            "{who}"
        );
    }
    assert!(
        f.ledger.outstanding().is_empty(),
        "{:?}",
        f.ledger.outstanding()
    );
    assert_eq!(
        f.refused(Input::Claim, INSPECTOR_A),
        RejectReason::CaseClosed
    );
    f.ok(typical("政策解释到位"), INSPECTOR_A);
    assert_eq!(f.state(), State::Independent);
}

#[test]
fn city_escalation_waits_for_the_outcome_recorded_by_the_hotline() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    f.after(1.hours()).ok(
        Input::EscalateCity {
            note: "需市级部门协调".into(),
        },
        INSPECTOR_A,
    );
    assert_eq!(f.state(), State::CityEscalated);
    assert!(matches!(f.told(CITY)[..], [Message::CityEscalation { .. }]));
    assert!(matches!(
        f.told(RS_LIAISON)[..],
        [Message::DecidedCity { .. }]
    ));
    let outcome = Input::RecordCityOutcome {
        outcome: "市级部门已解决".into(),
    };
    assert_eq!(
        f.refused(outcome.clone(), RS_LIAISON),
        RejectReason::NotHotlineStaff
    );
    f.after(days(1)).ok(outcome, HOTLINE_HEAD);
    assert_eq!(f.state(), State::Closed);
    assert_eq!(f.events(), vec![EventKind::CityOutcome, EventKind::Closed]);
    assert!(matches!(f.told(RS_LEADER)[..], [Message::Closed { .. }]));
    assert!(f.ledger.outstanding().is_empty());
}

#[test]
fn return_and_resubmit_makes_version_two_and_restarts_the_review() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    f.after(1.hours()).ok(
        Input::Return {
            reason: "已采取措施不具体".into(),
        },
        INSPECTOR_A,
    );
    assert_eq!(f.state(), State::Returned);
    assert!(matches!(f.told(RS_LIAISON)[..], [Message::Returned { .. }]));
    assert!(
        f.ledger.outstanding().is_empty(),
        "a returned case has no running clock"
    );
    assert_eq!(
        f.refused(Input::Claim, INSPECTOR_B),
        RejectReason::WrongState
    );

    let mut corrected = application(false);
    corrected.measures_taken = "已两次约谈企业，核实欠薪金额".into();
    let resubmit = |application: Application| Input::Resubmit { application };
    let mut other_ticket = corrected.clone();
    other_ticket.ticket_no = TicketNo::parse("DH2026110299999").expect("ticket");
    let mut other_unit = corrected.clone();
    other_unit.first_unit = unit_named(ZJ);
    f.after(days(1));
    assert_eq!(
        f.refused(resubmit(other_ticket), RS_LIAISON),
        RejectReason::TicketMismatch
    );
    assert_eq!(
        f.refused(resubmit(corrected.clone()), ZJ_LIAISON),
        RejectReason::NotFirstUnit
    );
    assert_eq!(
        f.refused(resubmit(other_unit), RS_LIAISON),
        RejectReason::FirstUnitChanged
    );

    f.ok(resubmit(corrected.clone()), RS_LEADER);
    let case = f.case();
    assert_eq!((case.version, case.state), (2, State::Submitted));
    assert_eq!(case.application, corrected);
    assert_eq!(case.previous_versions.len(), 1);
    assert_eq!(case.submitted_by, RS_LEADER);
    assert_eq!(f.events(), vec![EventKind::Resubmitted]);
    let keys = set_keys(f.last());
    assert!(
        keys.contains(&"TC-2026-0001/review_start#2/due".to_string()),
        "{keys:?}"
    );
    let cards = new_cards(f.last());
    assert_eq!(cards[0].0, "TC-2026-0001/review/v2");
    assert!(matches!(
        f.told(RS_LEADER)[..],
        [Message::Receipt { version: 2, .. }]
    ));

    // Another inspector may take the new version.
    f.after(5.minutes()).ok(Input::Claim, INSPECTOR_B);
    assert_eq!(
        f.case().inspector(),
        Some(&crate::support::person_id(INSPECTOR_B))
    );
    assert_eq!(
        f.refused(resubmit(corrected), RS_LIAISON),
        RejectReason::NotReturned
    );
}

#[test]
fn a_repeated_submission_on_a_returned_case_is_the_resubmission() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    f.after(1.hours()).ok(
        Input::Return {
            reason: "请补充".into(),
        },
        INSPECTOR_A,
    );
    f.after(days(1)).ok(submit(application(false)), RS_LIAISON);
    assert_eq!(f.case().version, 2);
    assert_eq!(f.case().case_no, "TC-2026-0001");
    assert_eq!(f.events(), vec![EventKind::Resubmitted]);
}

#[test]
fn the_same_application_again_is_answered_already_registered_and_a_different_one_is_refused() {
    let w = World::new();
    let mut f = Flow::submitted(&w, false);
    let before = f.case().clone();
    f.after(5.minutes())
        .ok(submit(application(false)), RS_LIAISON);
    assert_eq!(f.case(), &before);
    assert!(f.last().events.is_empty());
    assert_eq!(f.last().effects.len(), 1);
    assert!(matches!(
        f.told(RS_LIAISON)[..],
        [Message::AlreadyRegistered { .. }]
    ));
    let mut other = application(false);
    other.title = "另一个问题".into();
    assert_eq!(
        f.refused(submit(other), RS_LIAISON),
        RejectReason::TicketHasOpenCase
    );
}

#[test]
fn green_channel_sets_the_green_clocks() {
    let w = World::new();
    let mut f = Flow::submitted(&w, true);
    assert!(f.case().green_channel);
    // 五(一): the whole coordination within 1 working day of receipt.
    let green = f.timers(&ClockKind::GreenCoordination);
    assert_eq!(
        green.last().expect("due").2,
        ts("2026-11-03T18:00:00+08:00")
    );
    assert!(set_keys(f.last()).contains(&"TC-2026-0001/green_coordination/due".to_string()));
    let receipt = f.told(RS_LIAISON);
    assert!(matches!(
        receipt[..],
        [Message::Receipt {
            coordination_due: Some(_),
            ..
        }]
    ));

    f.after(5.minutes()).ok(Input::Claim, INSPECTOR_A);
    f.after(25.minutes()).ok(joint(&[ZJ]), INSPECTOR_A);
    // Green channel: the unit answers within 2 working hours: 09:30 → 11:30.
    let unit = f.timers(&ClockKind::UnitResponse {
        unit: unit_named(ZJ),
    });
    let schedule: Vec<(Phase, Timestamp)> = unit.iter().map(|t| (t.1, t.2)).collect();
    assert_eq!(
        schedule,
        vec![
            (Phase::Half, ts("2026-11-02T10:30:00+08:00")),
            (Phase::Soon, ts("2026-11-02T11:00:00+08:00")),
            (Phase::Due, ts("2026-11-02T11:30:00+08:00")),
        ]
    );
    f.after(30.minutes()).ok(accept(ZJ), ZJ_LIAISON);
    assert_eq!(f.state(), State::JointHandling);
    let green = f
        .case()
        .clock(&ClockKind::GreenCoordination)
        .expect("green clock");
    assert_eq!(
        green.state,
        ClockState::Stopped {
            at: f.now,
            on_time: true
        }
    );
    let cancelled = cancelled_keys(f.last());
    assert!(cancelled.contains(&"TC-2026-0001/green_coordination/due".to_string()));
}

#[test]
fn the_tickets_own_deadline_sets_the_handling_clock() {
    let w = World::new();
    let mut f = Flow::new(&w);
    let mut app = application(false);
    app.deadline = Some(jiff::civil::date(2026, 11, 6));
    f.ok(submit(app), RS_LIAISON);
    f.after(5.minutes()).ok(Input::Claim, INSPECTOR_A);
    f.after(5.minutes()).ok(joint(&[ZJ]), INSPECTOR_A);
    f.after(5.minutes()).ok(accept(ZJ), ZJ_LIAISON);
    let handling = f.case().clock(&ClockKind::Handling).expect("handling");
    assert_eq!(handling.due, ts("2026-11-06T18:00:00+08:00"));
    assert!(
        handling.explanation.contains("工单自带"),
        "{}",
        handling.explanation
    );
}

#[test]
fn who_may_submit() {
    let w = World::new();
    let f = Flow::new(&w);
    let app = || submit(application(false));
    assert_eq!(
        f.refused(app(), RS_CLERK),
        RejectReason::NotFirstUnit,
        "not a liaison"
    );
    assert_eq!(
        f.refused(app(), ZJ_LIAISON),
        RejectReason::NotFirstUnit,
        "wrong unit"
    );
    assert_eq!(f.refused(app(), "stranger"), RejectReason::UnknownActor);
    assert_eq!(f.refused(app(), SYSTEM), RejectReason::SystemNotAllowed);
    for who in [RS_LIAISON, RS_LEADER, ADMIN] {
        Flow::new(&w).ok(app(), who);
    }
    // An incomplete report never becomes an application the workflow could be asked to register.
    let mut incomplete = report(false);
    incomplete.ok = false;
    incomplete.missing = vec!["已采取措施".into()];
    let refused = Application::from_report(&incomplete, &MATCHER).expect_err("incomplete");
    assert!(
        refused
            .message
            .starts_with("申请不完整，未登记：缺少“已采取措施”"),
        "{refused}"
    );
    let mut hotline_first = application(false);
    // A hotline is a roster unit but not a member unit: the parser never reports one as the first
    // unit, and the workflow refuses it too.
    hotline_first.first_unit = UnitName::of(w.roster.unit("区12345热线").expect("hotline"));
    assert_eq!(
        f.refused(submit(hotline_first), ADMIN),
        RejectReason::FirstUnitNotMember
    );
    assert_eq!(
        f.refused(Input::Claim, INSPECTOR_A),
        RejectReason::NoSuchCase
    );
}

#[test]
fn review_refusals() {
    let w = World::new();
    let f = Flow::submitted(&w, false);
    assert_eq!(
        f.refused(Input::Claim, RS_LIAISON),
        RejectReason::NotInspector
    );
    assert_eq!(
        f.refused(joint(&[ZJ]), RS_LIAISON),
        RejectReason::NotInspector
    );
    assert_eq!(
        f.refused(joint(&[ZJ]), INSPECTOR_A),
        RejectReason::NotClaimedYet
    );
    assert_eq!(
        f.refused(fire("x"), INSPECTOR_A),
        RejectReason::PersonNotAllowed
    );
    assert_eq!(f.refused(fire("x"), SYSTEM), RejectReason::UnknownTimer);

    let mut f = Flow::claimed(&w, false);
    f.after(1.hours());
    assert_eq!(
        f.refused(Input::Claim, INSPECTOR_A),
        RejectReason::AlreadyClaimed,
        "double tap"
    );
    assert_eq!(
        f.refused(Input::Claim, INSPECTOR_B),
        RejectReason::ClaimedByOther
    );
    assert_eq!(
        f.refused(joint(&[ZJ]), INSPECTOR_B),
        RejectReason::NotClaimer
    );
    let ret = Input::Return { reason: "x".into() };
    assert_eq!(f.refused(ret, INSPECTOR_B), RejectReason::NotClaimer);
    let decide = |units: Vec<CoordinationAsk>| Input::DecideJoint { units };
    let refused = |units: Vec<CoordinationAsk>| f.refused(decide(units), INSPECTOR_A);
    assert_eq!(refused(vec![]), RejectReason::NoUnits);
    // A unit named when the command was read but dropped from the roster since.
    let dropped = Unit {
        name: "区已撤销局".into(),
        kind: UnitKind::Department,
        aliases: vec![],
    };
    let gone = CoordinationAsk {
        unit: UnitName::of(&dropped),
        direction: "核实相关情况".into(),
    };
    assert_eq!(refused(vec![gone]), RejectReason::UnknownUnit);
    assert_eq!(
        refused(vec![ask("区12345热线")]),
        RejectReason::NotCooperatingUnit
    );
    assert_eq!(
        refused(vec![ask(FIRST)]),
        RejectReason::FirstUnitAsCooperator
    );
    assert_eq!(refused(vec![ask(ZJ), ask(ZJ)]), RejectReason::DuplicateUnit);
    let blank = CoordinationAsk {
        unit: unit_named(ZJ),
        direction: "  ".into(),
    };
    assert_eq!(refused(vec![blank]), RejectReason::MissingDirection);
    assert_eq!(
        refused(vec![ask(ORPHAN_UNIT)]),
        RejectReason::UnitUnreachable
    );
    let empty = Input::DecideIndependent {
        path_and_basis: " ".into(),
    };
    assert_eq!(f.refused(empty, INSPECTOR_A), RejectReason::MissingText);
    assert_eq!(
        f.refused(accept(ZJ), ZJ_LIAISON),
        RejectReason::UnitNotRequested
    );

    f.ok(joint(&[ZJ]), INSPECTOR_A);
    assert_eq!(
        f.refused(joint(&[CG]), INSPECTOR_A),
        RejectReason::AlreadyDecided,
        "double tap"
    );
}

#[test]
fn coordination_refusals() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    f.after(1.hours()).ok(joint(&[ZJ, CG]), INSPECTOR_A);
    assert_eq!(
        f.refused(accept(CG), ZJ_LIAISON),
        RejectReason::NotUnitMember,
        "wrong unit"
    );
    assert_eq!(
        f.refused(accept(ZJ), RS_LIAISON),
        RejectReason::NotUnitMember
    );
    let bad = Input::Accept {
        unit: unit_named(ZJ),
        contact_name: "张三".into(),
        position: "".into(),
        phone: "12".into(),
        help: vec![],
    };
    assert_eq!(
        f.refused(bad, ZJ_LIAISON),
        RejectReason::IncompleteAcceptance
    );
    assert_eq!(
        f.refused(withdraw(ZJ), INSPECTOR_A),
        RejectReason::NoObjectionToDecide
    );
    assert_eq!(
        f.refused(withdraw(ZJ), ZJ_LIAISON),
        RejectReason::NotInspector
    );
    assert_eq!(
        f.refused(withdraw(ZJ), INSPECTOR_B),
        RejectReason::NotClaimer
    );
    let urge = supervise(ZJ, "请立即答复");
    assert_eq!(
        f.refused(urge.clone(), INSPECTOR_A),
        RejectReason::NotSupervisor
    );
    assert_eq!(
        f.refused(urge, SUPERVISOR),
        RejectReason::NothingToSupervise
    );
    assert_eq!(
        f.refused(progress("x"), RS_LIAISON),
        RejectReason::WrongState
    );

    f.ok(accept(ZJ), ZJ_LIAISON);
    assert_eq!(
        f.refused(accept(ZJ), ZJ_LIAISON),
        RejectReason::AlreadyAccepted,
        "double tap"
    );
    assert_eq!(
        f.refused(object(ZJ), ZJ_LIAISON),
        RejectReason::AlreadyAccepted
    );
    let no_reason = Input::Object {
        unit: unit_named(CG),
        reason: "".into(),
    };
    assert_eq!(f.refused(no_reason, CG_LIAISON), RejectReason::MissingText);
    f.ok(object(CG), CG_LIAISON);
    assert_eq!(
        f.refused(object(CG), CG_LIAISON),
        RejectReason::AlreadyObjected,
        "double tap"
    );
    assert_eq!(
        f.refused(progress("x"), ZJ_LIAISON),
        RejectReason::WrongState
    );
    f.ok(insist(CG), INSPECTOR_A);
    assert!(matches!(
        f.told(SUPERVISOR)[..],
        [Message::SupervisionRequested {
            ground: SupervisionGround::Insisted,
            ..
        }]
    ));
    assert!(matches!(
        f.told(CG_LEADER)[..],
        [Message::RequestInsisted { .. }]
    ));
    assert_eq!(
        f.refused(insist(CG), INSPECTOR_A),
        RejectReason::AlreadyInsisted,
        "double tap"
    );
    assert_eq!(
        f.refused(object(CG), CG_LIAISON),
        RejectReason::ObjectionAlreadyDecided
    );
    f.ok(supervise(CG, "请按要求到岗履职"), SUPERVISOR);
    assert!(matches!(
        f.told(CG_LIAISON)[..],
        [Message::Supervision { number: 1, .. }]
    ));
    f.ok(withdraw(CG), INSPECTOR_A);
    assert_eq!(f.state(), State::JointHandling);
    assert_eq!(
        f.refused(withdraw(CG), INSPECTOR_A),
        RejectReason::AlreadyWithdrawn,
        "double tap"
    );
    assert_eq!(
        f.refused(accept(CG), CG_LIAISON),
        RejectReason::RequestWithdrawn
    );
}

#[test]
fn handling_and_result_refusals() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    f.after(1.hours()).ok(joint(&[ZJ]), INSPECTOR_A);
    f.ok(accept(ZJ), ZJ_LIAISON);
    assert_eq!(
        f.refused(progress("x"), CG_LIAISON),
        RejectReason::NotParticipant
    );
    assert_eq!(
        f.refused(progress("x"), RS_CLERK),
        RejectReason::NotParticipant
    );
    assert_eq!(
        f.refused(progress(" "), RS_LIAISON),
        RejectReason::MissingText
    );
    assert_eq!(
        f.refused(complete("ok"), ZJ_LIAISON),
        RejectReason::NotFirstUnit
    );
    assert_eq!(
        f.refused(complete(""), RS_LIAISON),
        RejectReason::IncompleteCompletion
    );
    assert_eq!(
        f.refused(satisfaction(), INSPECTOR_A),
        RejectReason::WrongState
    );
    assert_eq!(
        f.refused(typical("经验"), INSPECTOR_A),
        RejectReason::NotTypicalYet
    );

    f.ok(complete("ok"), RS_LIAISON);
    assert_eq!(
        f.refused(complete("ok"), RS_LIAISON),
        RejectReason::AlreadyCompleted,
        "double tap"
    );
    assert_eq!(
        f.refused(satisfaction(), RS_LIAISON),
        RejectReason::NotHotlineStaff
    );
    assert_eq!(
        f.refused(typical("经验"), RS_LIAISON),
        RejectReason::NotInspector
    );
    f.ok(typical("经验"), INSPECTOR_A);
    assert_eq!(
        f.refused(typical("经验"), INSPECTOR_A),
        RejectReason::AlreadyTypical,
        "double tap"
    );
    f.ok(typical("经验（修订）"), INSPECTOR_A);
    assert_eq!(
        f.last().events[0].data,
        EventData::TypicalMarked { revised: true }
    );

    f.ok(satisfaction(), SUPERVISOR);
    assert_eq!(
        f.refused(satisfaction(), INSPECTOR_A),
        RejectReason::CaseClosed
    );
    assert_eq!(f.refused(accept(ZJ), ZJ_LIAISON), RejectReason::CaseClosed);
    assert_eq!(
        f.refused(progress("x"), RS_LIAISON),
        RejectReason::CaseClosed
    );
}

#[test]
fn a_rejection_leaves_the_case_as_it_was() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    let before = f.case().clone();
    assert_eq!(
        f.refused(Input::Claim, INSPECTOR_A),
        RejectReason::AlreadyClaimed
    );
    assert_eq!(f.case(), &before);
    // The engine then applies the next valid input to the unchanged case.
    f.after(1.hours()).ok(
        Input::Return {
            reason: "补充".into(),
        },
        INSPECTOR_A,
    );
    assert_eq!(f.case().decisions.len(), 1);
}

#[test]
fn claim_cancels_the_review_start_timers_and_stale_firings_are_no_ops() {
    let w = World::new();
    let mut f = Flow::submitted(&w, false);
    let keys: Vec<String> = f
        .timers(&ClockKind::ReviewStart)
        .into_iter()
        .map(|t| t.0)
        .collect();
    let expected = [
        "TC-2026-0001/review_start/half",
        "TC-2026-0001/review_start/due",
    ];
    assert_eq!(keys, expected);

    // Before the claim, half-time reminds every inspector.
    f.after(30.minutes()).ok(fire(&keys[0]), SYSTEM);
    for who in [INSPECTOR_A, INSPECTOR_B] {
        let told = f.told(who);
        assert!(matches!(
            told[..],
            [Message::Reminder {
                phase: Phase::Half,
                count: 1,
                ..
            }]
        ));
    }
    assert_eq!(f.events(), vec![EventKind::ReminderSent]);
    // The same firing delivered twice: the second is a no-op.
    let before = f.case().clone();
    f.after(1.minutes()).ok(fire(&keys[0]), SYSTEM);
    assert_eq!(f.case(), &before);
    assert!(f.last().effects.is_empty() && f.last().events.is_empty());

    f.after(9.minutes()).ok(Input::Claim, INSPECTOR_A);
    assert_eq!(cancelled_keys(f.last()), vec![keys[1].clone()]);
    let clock = f.case().clock(&ClockKind::ReviewStart).expect("clock");
    assert_eq!(
        clock.state,
        ClockState::Stopped {
            at: f.now,
            on_time: true
        }
    );
    assert!(clock.timers.iter().all(|t| t.state != TimerState::Pending));

    // The cancelled breach timer fires anyway: nothing happens.
    let before = f.case().clone();
    f.after(20.minutes()).ok(fire(&keys[1]), SYSTEM);
    assert_eq!(f.case(), &before);
    assert!(f.last().effects.is_empty() && f.last().events.is_empty());
}

#[test]
fn a_review_start_breach_escalates_to_the_hotline_head() {
    let w = World::new();
    let mut f = Flow::submitted(&w, false);
    f.after(1.hours())
        .ok(fire("TC-2026-0001/review_start/due"), SYSTEM);
    assert_eq!(f.events(), vec![EventKind::Breach, EventKind::Escalated]);
    assert!(matches!(f.told(INSPECTOR_A)[..], [Message::Breach { .. }]));
    assert!(matches!(
        f.told(HOTLINE_HEAD)[..],
        [Message::Escalation { .. }]
    ));
    f.after(1.hours()).ok(Input::Claim, INSPECTOR_A);
    assert_eq!(f.last().events[0].data.on_time(), Some(false));
    let clock = f.case().clock(&ClockKind::ReviewStart).expect("clock");
    assert_eq!(
        clock.state,
        ClockState::Stopped {
            at: f.now,
            on_time: false
        }
    );
}

#[test]
fn a_silent_unit_is_overdue_supervised_and_may_still_accept() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    f.after(1.hours()).ok(joint(&[ZJ]), INSPECTOR_A);
    for (key, phase, due_at) in f.timers(&ClockKind::UnitResponse {
        unit: unit_named(ZJ),
    }) {
        f.now = due_at;
        f.ok(fire(&key), SYSTEM);
        if phase != Phase::Due {
            assert!(matches!(f.told(ZJ_LIAISON)[..], [Message::Reminder { .. }]));
            continue;
        }
        let breach = [
            EventKind::Breach,
            EventKind::Escalated,
            EventKind::UnitOverdue,
        ];
        assert_eq!(f.events(), breach);
        assert!(matches!(f.told(ZJ_LIAISON)[..], [Message::Breach { .. }]));
        assert!(matches!(
            f.told(ZJ_LEADER)[..],
            [Message::Escalation { .. }]
        ));
        assert!(matches!(
            f.told(SUPERVISOR)[..],
            [Message::SupervisionRequested {
                ground: SupervisionGround::Overdue,
                ..
            }]
        ));
        assert!(matches!(f.told(INSPECTOR_A)[..], [Message::Breach { .. }]));
        assert_eq!(
            f.case().request(ZJ).expect("zj").status,
            RequestStatus::Overdue
        );
    }
    f.after(1.hours())
        .ok(supervise(ZJ, "请于今日答复"), SUPERVISOR);
    assert_eq!(f.events(), vec![EventKind::SupervisionIssued]);
    assert!(matches!(
        f.told(ZJ_LIAISON)[..],
        [Message::Supervision { number: 1, .. }]
    ));
    assert!(matches!(
        f.told(ZJ_LEADER)[..],
        [Message::Supervision { number: 1, .. }]
    ));
    let again = supervise(ZJ, "请于今日答复");
    assert_eq!(
        f.refused(again, SUPERVISOR),
        RejectReason::DuplicateSupervision,
        "double tap"
    );

    f.after(1.hours()).ok(accept(ZJ), ZJ_LIAISON);
    assert_eq!(f.state(), State::JointHandling);
    assert_eq!(f.last().events[0].data.on_time(), Some(false));
    let clock = f
        .case()
        .clock(&ClockKind::UnitResponse {
            unit: unit_named(ZJ),
        })
        .expect("clock");
    assert_eq!(
        clock.state,
        ClockState::Stopped {
            at: f.now,
            on_time: false
        }
    );
}

#[test]
fn withdrawing_every_unit_sends_the_case_back_to_the_inspector() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    f.after(1.hours()).ok(joint(&[ZJ]), INSPECTOR_A);
    f.after(1.hours()).ok(object(ZJ), ZJ_LIAISON);
    f.after(1.hours()).ok(withdraw(ZJ), INSPECTOR_A);
    assert_eq!(f.state(), State::UnderReview);
    let reopened = vec![EventKind::ObjectionWithdrawn, EventKind::DecisionReopened];
    assert_eq!(f.events(), reopened);
    let told = f.told(INSPECTOR_A);
    assert!(
        told.iter()
            .any(|m| matches!(m, Message::DecisionReopened { .. }))
    );
    assert!(set_keys(f.last()).contains(&"TC-2026-0001/decision#2/due".to_string()));

    // The inspector may ask the same unit again: a second request, card and clock.
    f.after(1.hours()).ok(joint(&[ZJ, CG]), INSPECTOR_A);
    assert_eq!(f.case().requests.len(), 3);
    let cards = new_cards(f.last());
    assert_eq!(cards[0].0, "TC-2026-0001/coordination/区住建局#2");
    f.after(1.hours()).ok(accept(ZJ), ZJ_LIAISON);
    assert_eq!(f.state(), State::Coordinating);
    f.ok(accept(CG), CG_LIAISON);
    assert_eq!(f.state(), State::JointHandling);
}

#[test]
fn a_handling_breach_allows_supervising_the_first_unit() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    f.after(1.hours()).ok(joint(&[ZJ]), INSPECTOR_A);
    f.after(1.hours()).ok(accept(ZJ), ZJ_LIAISON);
    let urge = supervise(FIRST, "请尽快办结");
    assert_eq!(
        f.refused(urge.clone(), SUPERVISOR),
        RejectReason::NothingToSupervise
    );
    let (key, _, due) = f.timers(&ClockKind::Handling).pop().expect("due timer");
    f.now = due;
    f.ok(fire(&key), SYSTEM);
    assert!(matches!(
        f.told(RS_LEADER)[..],
        [Message::Escalation { .. }]
    ));
    assert!(matches!(
        f.told(SUPERVISOR)[..],
        [Message::SupervisionRequested {
            ground: SupervisionGround::HandlingOverdue,
            ..
        }]
    ));
    f.after(1.hours()).ok(urge, SUPERVISOR);
    assert!(matches!(
        f.told(RS_LIAISON)[..],
        [Message::Supervision { number: 1, .. }]
    ));
    f.after(1.hours()).ok(complete("满意"), RS_LIAISON);
    assert_eq!(f.last().events[0].data.on_time(), Some(false));
}

#[test]
fn the_invariant_checker_reports_a_damaged_case() {
    let w = World::new();
    let mut f = Flow::claimed(&w, false);
    f.after(1.hours()).ok(joint(&[ZJ]), INSPECTOR_A);
    let mut damaged = f.case().clone();
    damaged.state = State::JointHandling;
    assert!(
        check_invariants(&damaged).is_err(),
        "joint handling with a pending unit"
    );
    let mut damaged = f.case().clone();
    damaged.state = State::Closed;
    let problems = check_invariants(&damaged).expect_err("closed with running clocks");
    assert!(
        problems.iter().any(|p| p.contains("open clock")),
        "{problems:?}"
    );
}

#[test]
fn case_and_decision_round_trip_through_json() {
    let w = World::new();
    let mut f = Flow::claimed(&w, true);
    f.after(1.hours()).ok(joint(&[ZJ, CG]), INSPECTOR_A);
    let d = f.last();
    let json = serde_json::to_string(d).expect("serialise");
    let back: Decision = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(&back, d);
}

// ---- Property: random inputs from random actors never break the case. ----

/// Everyone an input can come from, including the system and a stranger.
const ACTORS: [&str; 15] = [
    RS_LIAISON,
    RS_LEADER,
    RS_CLERK,
    ZJ_LIAISON,
    ZJ_LEADER,
    CG_LIAISON,
    CG_LEADER,
    INSPECTOR_A,
    INSPECTOR_B,
    SUPERVISOR,
    HOTLINE_HEAD,
    CITY,
    ADMIN,
    SYSTEM,
    "stranger",
];

const UNITS: [&str; 5] = [ZJ, CG, FIRST, "区12345热线", "区市场监管局"];

/// One random step: which input, who sends it, two argument selectors, minutes to wait first.
#[derive(Debug, Clone)]
struct Step {
    input: u8,
    actor: u8,
    a: u8,
    b: u8,
    wait: u32,
}

fn step() -> impl Strategy<Value = Step> {
    let wait = prop_oneof![0u32..60, 0u32..3000];
    (0u8..19, any::<u8>(), any::<u8>(), any::<u8>(), wait).prop_map(|(input, actor, a, b, wait)| {
        Step {
            input,
            actor,
            a,
            b,
            wait,
        }
    })
}

/// The sender most likely to be allowed to send `input` now, so that sequences get far.
fn plausible_actor(case: Option<&Case>, input: &Input, s: &Step) -> &'static str {
    let claimer = match case.and_then(|c| c.inspector()).map(|id| id.as_str()) {
        Some(INSPECTOR_B) => INSPECTOR_B,
        _ => INSPECTOR_A,
    };
    match input {
        Input::Submit { .. } | Input::Resubmit { .. } | Input::Complete { .. } => RS_LIAISON,
        Input::Claim | Input::MarkTypical { .. } => INSPECTOR_A,
        Input::LeaderApprove | Input::LeaderReturn { .. } => RS_LEADER,
        Input::DecideJoint { .. }
        | Input::DecideIndependent { .. }
        | Input::Return { .. }
        | Input::EscalateCity { .. }
        | Input::Withdraw { .. }
        | Input::Insist { .. } => claimer,
        Input::RecordCityOutcome { .. } | Input::Satisfaction { .. } => HOTLINE_HEAD,
        Input::Accept { unit, .. } | Input::Object { unit, .. } => match unit.as_str() {
            ZJ => ZJ_LIAISON,
            CG => CG_LIAISON,
            _ => RS_LIAISON,
        },
        Input::Supervise { .. } => SUPERVISOR,
        Input::Progress { .. } if s.b.is_multiple_of(2) => ZJ_LIAISON,
        Input::Progress { .. } => RS_LIAISON,
        Input::TimerFired { .. } => SYSTEM,
    }
}

fn make_input(s: &Step, case: Option<&Case>) -> Input {
    let unit = UNITS[usize::from(s.a) % UNITS.len()];
    let text = if s.b.is_multiple_of(7) {
        String::new()
    } else {
        format!("内容{}", s.b)
    };
    let mut app = application(s.b.is_multiple_of(3));
    if s.a.is_multiple_of(5) {
        app.deadline = Some(jiff::civil::date(2026, 11, 20));
    }
    match s.input {
        0 => submit(app),
        1 => Input::Resubmit { application: app },
        2 => Input::Claim,
        3 => {
            let n = 1 + usize::from(s.b) % 2;
            let units: Vec<&str> = (0..n).map(|i| UNITS[(usize::from(s.a) + i) % 2]).collect();
            joint(&units)
        }
        4 => Input::DecideIndependent {
            path_and_basis: text,
        },
        5 => Input::Return { reason: text },
        6 => Input::EscalateCity { note: text },
        7 => Input::RecordCityOutcome { outcome: text },
        8 => accept(unit),
        9 => Input::Object {
            unit: unit_named(unit),
            reason: text,
        },
        10 => withdraw(unit),
        11 => insist(unit),
        12 => supervise(unit, &text),
        13 => progress(&text),
        14 => complete(&text),
        15 => {
            let levels = [
                SatisfactionLevel::Satisfied,
                SatisfactionLevel::BasicallySatisfied,
                SatisfactionLevel::Dissatisfied,
            ];
            Input::Satisfaction {
                level: levels[usize::from(s.b) % 3],
            }
        }
        16 => typical(&text),
        // Timers: a pending one three times in four, any one (perhaps stale) otherwise.
        _ => {
            let timers: Vec<_> = case
                .map(|c| c.clocks.iter().flat_map(|k| &k.timers).collect())
                .unwrap_or_default();
            let pending: Vec<_> = timers
                .iter()
                .filter(|t| t.state == TimerState::Pending)
                .collect();
            let pick = if !s.b.is_multiple_of(4) && !pending.is_empty() {
                Some(&pending[usize::from(s.a) % pending.len()].key)
            } else if !timers.is_empty() {
                Some(&timers[usize::from(s.a) % timers.len()].key)
            } else {
                None
            };
            fire(pick.map_or("TC-2026-0001/none/due", |k| k.as_str()))
        }
    }
}

/// Runs the steps; `plausible_only` always picks the likely sender. Returns the states reached
/// and the events recorded.
fn run_sequence(
    w: &World,
    steps: &[Step],
    plausible_only: bool,
) -> Result<(BTreeSet<State>, BTreeSet<EventKind>), TestCaseError> {
    let mut case: Option<Case> = None;
    let mut now = monday();
    let mut ledger = TimerLedger::default();
    let (mut states, mut events) = (BTreeSet::new(), BTreeSet::new());
    for s in steps {
        now += i64::from(s.wait).minutes();
        let input = match case.as_ref() {
            // With confirmation on, a waiting case mostly meets its leader's answer.
            Some(c) if w.confirm && c.state == State::AwaitingLeader && s.input % 3 != 0 => {
                if s.b.is_multiple_of(3) {
                    Input::LeaderReturn {
                        reason: format!("请补充{}", s.a),
                    }
                } else {
                    Input::LeaderApprove
                }
            }
            _ => make_input(s, case.as_ref()),
        };
        // Mostly the plausible sender; one time in four anyone at all.
        let actor = if plausible_only || !s.actor.is_multiple_of(4) {
            plausible_actor(case.as_ref(), &input, s)
        } else {
            ACTORS[usize::from(s.actor / 4) % ACTORS.len()]
        };
        // The scheduler fires a timer at its due time, not before.
        if let Input::TimerFired { key } = &input {
            let timers = case
                .iter()
                .flat_map(|c| c.clocks.iter().flat_map(|k| &k.timers));
            if let Some(t) = timers.clone().find(|t| &t.key == key) {
                now = now.max(t.due_at);
            }
        }
        let d = match w.run(case.as_ref(), &input, actor, now) {
            Ok(d) => d,
            Err(r) => {
                prop_assert!(!r.message.is_empty());
                continue;
            }
        };
        if let Err(p) = check_invariants(&d.case) {
            return Err(TestCaseError::fail(format!("{input:?} by {actor}: {p:#?}")));
        }
        if let Some(b) = case.as_ref().filter(|b| b.state.is_terminal()) {
            let absorbed = matches!(input, Input::MarkTypical { .. } | Input::TimerFired { .. });
            prop_assert!(absorbed, "terminal case accepted {:?}", input);
            prop_assert_eq!(d.case.state, b.state);
        }
        for e in &d.effects {
            let to: Vec<&PersonId> = match e {
                Effect::Notify { to, .. } => vec![to],
                Effect::Card { recipients, .. } => recipients.iter().collect(),
                _ => vec![],
            };
            for id in to {
                prop_assert!(
                    w.roster.person(id).is_some(),
                    "addressed outside the roster: {}",
                    id
                );
            }
        }
        let fired = match &input {
            Input::TimerFired { key } if !d.events.is_empty() => Some(key.as_str()),
            _ => None,
        };
        ledger.apply(&d, fired);
        if d.case.state.is_terminal() {
            let left = ledger.outstanding();
            prop_assert!(left.is_empty(), "terminal with timers {:?}", left);
        }
        states.insert(d.case.state);
        events.extend(d.events.iter().map(|e| e.kind()));
        case = Some(d.case);
    }
    Ok((states, events))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_every_invariant(steps in proptest::collection::vec(step(), 1..60)) {
        let w = World::new();
        run_sequence(&w, &steps, false)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn with_leader_confirmation_random_sequences_keep_every_invariant(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let w = World::with_confirmation();
        run_sequence(&w, &steps, false)?;
    }
}

/// With confirmation on, sequences pass through the leader's step both ways and still get to
/// the end of the flow.
#[test]
fn with_leader_confirmation_random_sequences_reach_the_leader_and_beyond() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let w = World::with_confirmation();
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(step(), 1..80);
    let (mut states, mut events) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..200 {
        let steps = strategy.new_tree(&mut runner).expect("tree").current();
        let (s, e) = run_sequence(&w, &steps, true).expect("property holds");
        states.extend(s);
        events.extend(e);
    }
    for state in [
        State::AwaitingLeader,
        State::Submitted,
        State::Returned,
        State::Coordinating,
        State::Closed,
    ] {
        assert!(states.contains(&state), "never reached {state:?}");
    }
    for kind in [
        EventKind::AwaitingLeader,
        EventKind::LeaderReturned,
        EventKind::Submitted,
        EventKind::Resubmitted,
    ] {
        assert!(events.contains(&kind), "never recorded {kind:?}");
    }
}

/// The generator reaches every state and every kind of event; otherwise the property above
/// would prove little.
#[test]
fn random_sequences_reach_every_state_and_event() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let w = World::new();
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(step(), 1..80);
    let (mut states, mut events) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..400 {
        let steps = strategy.new_tree(&mut runner).expect("tree").current();
        let (s, e) = run_sequence(&w, &steps, true).expect("property holds");
        states.extend(s);
        events.extend(e);
    }
    let all_states = [
        State::Submitted,
        State::UnderReview,
        State::Returned,
        State::Independent,
        State::CityEscalated,
        State::Coordinating,
        State::JointHandling,
        State::Completed,
        State::Closed,
    ];
    for state in all_states {
        assert!(states.contains(&state), "never reached {state:?}");
    }
    let all_events = [
        EventKind::Submitted,
        EventKind::Resubmitted,
        EventKind::Claimed,
        EventKind::DecidedJoint,
        EventKind::DecidedIndependent,
        EventKind::Returned,
        EventKind::DecidedCity,
        EventKind::UnitRequested,
        EventKind::UnitAccepted,
        EventKind::UnitObjected,
        EventKind::ObjectionWithdrawn,
        EventKind::ObjectionUpheld,
        EventKind::SupervisionIssued,
        EventKind::UnitOverdue,
        EventKind::DecisionReopened,
        EventKind::JointHandlingStarted,
        EventKind::ReminderSent,
        EventKind::Breach,
        EventKind::Escalated,
        EventKind::Progress,
        EventKind::Completed,
        EventKind::Satisfaction,
        EventKind::TypicalMarked,
        EventKind::CityOutcome,
        EventKind::Closed,
    ];
    for kind in all_events {
        assert!(events.contains(&kind), "never recorded {kind:?}");
    }
}

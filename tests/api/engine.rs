//! Integration tests: the engine applies each decision in one store transaction — a pasted
//! application parsed by the real parser, then claimed, with timers fired from the store — and a
//! rejection leaves the database untouched.

use jiff::Timestamp;
use tiaochu::dingtalk::api::Channel;
use tiaochu::engine::Outcome;
use tiaochu::roster::{Person, Role};
use tiaochu::store::{OutboxState, Store};
use tiaochu::workflow::{Actor, Input, RejectReason, State};

use crate::support::{World, world};

const LIAISON: &str = "rs-liaison";
const OTHER_LIAISON: &str = "zj-liaison";
const INSPECTOR: &str = "local:区12345热线:孟艳秋";

fn fixture() -> World {
    world()
        .liaison("人社联络员", "区人社局", LIAISON)
        .person(Person::new(
            "住建联络员",
            "区住建局",
            "股长",
            vec![Role::Liaison],
            OTHER_LIAISON,
            "",
        ))
        .build()
}

fn seed_application(w: &World) -> tiaochu::workflow::Application {
    w.seed_application("DH2026110300017")
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// Row counts of the tables a decision writes.
fn counts(store: &Store) -> (usize, usize, usize, usize) {
    store
        .read_blocking(|r| -> Result<_, tiaochu::store::StoreError> {
            let cases = r.case_by_ticket(&crate::support::ticket_no("DH2026110300017"))?;
            let events: usize = cases
                .iter()
                .map(|c| r.events_for_case(c.id).map(|e| e.len()))
                .sum::<Result<_, _>>()?;
            let timers: usize = cases
                .iter()
                .map(|c| r.timers_for_case(c.id).map(|t| t.len()))
                .sum::<Result<_, _>>()?;
            let outbox = r.list_outbox(None, 10_000)?.len();
            Ok((cases.len(), events, timers, outbox))
        })
        .expect("read")
}

fn submit(app: &tiaochu::workflow::Application) -> Input {
    Input::Submit {
        application: app.clone(),
    }
}

#[test]
fn a_submission_is_one_transaction_and_a_repaste_repeats_the_receipt() {
    let f = fixture();
    let app = seed_application(&f);
    let now = at("2026-11-02T09:00:00+08:00");
    let ticket = app.ticket_no.clone();

    let out = f
        .engine
        .handle_blocking(
            &ticket,
            submit(&app),
            Actor::Person(crate::support::person_id(LIAISON)),
            now,
        )
        .expect("handle");
    let Outcome::Applied {
        case_no,
        revision,
        decision,
    } = out
    else {
        panic!("rejected: {out:?}")
    };
    assert_eq!(case_no, "TC-2026-0001");
    assert_eq!(revision, 1);
    assert_eq!(decision.case.state, State::Submitted);

    let (cases, events, timers, outbox) = counts(&f.store);
    assert_eq!(cases, 1);
    assert_eq!(events, decision.events.len());
    assert!(
        timers >= 2,
        "review-start and decision clocks set timers, got {timers}"
    );
    assert_eq!(
        outbox,
        decision
            .effects
            .iter()
            .map(|e| match e {
                tiaochu::workflow::Effect::Notify { .. } => 1,
                tiaochu::workflow::Effect::Card { recipients, .. } => recipients.len(),
                _ => 0,
            })
            .sum::<usize>(),
        "one sandbox row per notification and per card copy"
    );
    let rows = f
        .store
        .read_blocking(|r| r.list_outbox(Some(OutboxState::Pending), 100))
        .expect("outbox");
    assert!(
        rows.iter()
            .any(|r| r.channel == Channel::Sandbox.as_str() && r.target == LIAISON),
        "receipt to the liaison"
    );
    assert!(
        rows.iter()
            .filter(|r| r.target == INSPECTOR || r.target == "local:区12345热线:李德艳")
            .any(|r| String::from_utf8_lossy(&r.payload).contains("\"buttons\"")),
        "review card to the inspectors"
    );
    let versions = f
        .store
        .read_blocking(|r| {
            let c = r
                .case_by_no(&crate::support::case_no("TC-2026-0001"))?
                .expect("case");
            r.case_versions(c.id)
        })
        .expect("versions");
    assert_eq!(versions.len(), 1);

    // The same text again: same case, a second receipt (a new outbox row), no new case.
    let again = f
        .engine
        .handle_blocking(
            &ticket,
            submit(&app),
            Actor::Person(crate::support::person_id(LIAISON)),
            now,
        )
        .expect("handle");
    let Outcome::Applied {
        case_no: again_no, ..
    } = again
    else {
        panic!("rejected: {again:?}")
    };
    assert_eq!(again_no, "TC-2026-0001");
    let (cases2, _, _, outbox2) = counts(&f.store);
    assert_eq!(cases2, 1);
    assert!(outbox2 > outbox, "the repeated receipt is queued");
}

#[test]
fn a_rejection_writes_nothing() {
    let f = fixture();
    let app = seed_application(&f);
    let ticket = app.ticket_no.clone();
    let now = at("2026-11-02T09:00:00+08:00");
    // A liaison of another unit may not submit for 区人社局.
    let out = f
        .engine
        .handle_blocking(
            &ticket,
            submit(&app),
            Actor::Person(crate::support::person_id(OTHER_LIAISON)),
            now,
        )
        .expect("handle");
    let Outcome::Rejected(rejection) = out else {
        panic!("accepted: {out:?}")
    };
    assert_eq!(
        rejection.reason,
        RejectReason::NotFirstUnit,
        "{}",
        rejection.message
    );
    assert!(
        rejection.message.contains("区人社局"),
        "{}",
        rejection.message
    );
    assert_eq!(counts(&f.store), (0, 0, 0, 0));
    // An unknown ticket for a non-submission input: no such case, nothing written.
    let out = f
        .engine
        .handle_blocking(
            &crate::support::ticket_no("DH1234567"),
            Input::Claim,
            Actor::Person(crate::support::person_id(INSPECTOR)),
            now,
        )
        .expect("handle");
    assert!(matches!(out, Outcome::Rejected(r) if r.reason == RejectReason::NoSuchCase));
    assert_eq!(counts(&f.store), (0, 0, 0, 0));
}

#[test]
fn claiming_cancels_the_review_timers_and_due_timers_fire_once() {
    let f = fixture();
    let app = seed_application(&f);
    let ticket = app.ticket_no.clone();
    let now = at("2026-11-02T09:00:00+08:00");
    f.engine
        .handle_blocking(
            &ticket,
            submit(&app),
            Actor::Person(crate::support::person_id(LIAISON)),
            now,
        )
        .expect("submit");

    // Late in the day every review-start timer is due; fire them from the store.
    let later = at("2026-11-02T17:00:00+08:00");
    let due = f
        .store
        .read_blocking(move |r| r.due_timers(later, 100))
        .expect("due");
    assert!(
        due.iter().any(|t| t.key.contains("review_start")),
        "{:?}",
        due.iter().map(|t| &t.key).collect::<Vec<_>>()
    );
    // Through the scheduler's step, the one way timers fire.
    f.clock.set(later);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let first = runtime.block_on(f.fire_due());
    assert_eq!(first.fired, due.len(), "{first:?}");
    // Firing the same timers again is a no-op.
    let again = runtime.block_on(f.fire_due());
    assert_eq!((again.fired, again.skipped), (0, 0), "{again:?}");

    let out = f
        .engine
        .handle_blocking(
            &ticket,
            Input::Claim,
            Actor::Person(crate::support::person_id(INSPECTOR)),
            later,
        )
        .expect("claim");
    let Outcome::Applied { decision, .. } = out else {
        panic!("claim rejected: {out:?}")
    };
    assert_eq!(decision.case.state, State::UnderReview);
    let pending_review = f
        .store
        .read_blocking(|r| {
            let c = r
                .case_by_no(&crate::support::case_no("TC-2026-0001"))?
                .expect("case");
            r.timers_for_case(c.id)
        })
        .expect("timers")
        .into_iter()
        .filter(|t| {
            t.key.contains("review_start") && t.state == tiaochu::store::TimerState::Pending
        })
        .count();
    assert_eq!(pending_review, 0, "claim stops the review-start clock");
}

#[tokio::test]
async fn the_scheduler_step_fires_each_due_timer_once() {
    let f = fixture();
    let app = seed_application(&f);
    let ticket = app.ticket_no.clone();
    f.engine
        .handle(
            &ticket,
            submit(&app),
            Actor::Person(crate::support::person_id(LIAISON)),
            f.now(),
        )
        .await
        .expect("submit");
    let nothing = f.fire_due().await;
    assert_eq!(nothing.fired, 0, "nothing is due at receipt");

    // Past the review-start deadline (1 working hour) but before any decision reminder.
    f.clock.set(at("2026-11-02T10:31:00+08:00"));
    let first = f.fire_due().await;
    let due_now = f
        .store
        .read_blocking(|r| {
            let c = r
                .case_by_no(&crate::support::case_no("TC-2026-0001"))?
                .expect("case");
            r.timers_for_case(c.id)
        })
        .expect("timers")
        .into_iter()
        .filter(|t| t.key.contains("review_start"))
        .count();
    assert_eq!(
        first.fired, due_now,
        "every review-start timer fired: {first:?}"
    );
    assert!(first.fired >= 1);
    let again = f.fire_due().await;
    assert_eq!(again, Default::default(), "a second step fires nothing");
}

/// A roster change is put in force inside its transaction (later steps of the same message see
/// it); when that transaction does not commit, the roster in force goes back to what the
/// database holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncommitted_roster_change_does_not_stay_in_force() {
    let f = fixture();
    let before = f.roster.person(LIAISON).expect("liaison").clone();
    let mut after = before.clone();
    after.name = "改名后的联络员".into();
    let change = tiaochu::roster::PersonChange {
        action: "set_liaison",
        before: Some(before.clone()),
        after,
    };
    let engine = f.engine.clone();
    let result = f
        .engine
        .write_keeping_roster(move |tx| -> Result<(), tiaochu::engine::EngineError> {
            let now = at("2026-11-02T09:00:00+08:00");
            let roster = engine.change_roster_in_tx(tx, "区人社局", &[change], LIAISON, now)?;
            assert_eq!(
                roster.person(LIAISON).map(|p| p.name.as_str()),
                Some("改名后的联络员"),
                "in force inside the transaction"
            );
            Err(tiaochu::store::StoreError::Abort("后续步骤失败".into()).into())
        })
        .await;
    assert!(result.is_err());
    assert_eq!(
        f.engine.roster().person(LIAISON).map(|p| p.name.as_str()),
        Some(before.name.as_str()),
        "the rolled-back change is no longer in force"
    );
    let history = f.store.read(|r| r.roster_overrides()).await.expect("read");
    assert!(history.is_empty(), "nothing was recorded");
}

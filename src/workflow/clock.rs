//! Clocks (docs/spec.md → Clocks; 四(二), 五(一), 五(二)): each deadline the mechanism sets, with the
//! timers that remind before it and record its breach. A clock runs until its condition is met;
//! stopping it cancels its pending timers, so a stale timer firing later changes nothing.
//!
//! Timer keys are `"{case_no}/{clock_id}/{phase}"`. A clock id is the clock's base name
//! (`review_start`, `unit_response:区住建局`, …), suffixed `#N` for the N-th clock of the same kind
//! in one case (a resubmission restarts the review clocks), so keys are never reused.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::calendar::{Calendar, Deadline};
use crate::domain::{CaseNo, UnitName};
use crate::settings::SlaSettings;

/// What a clock measures and whose duty it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "clock", rename_all = "snake_case")]
pub enum ClockKind {
    /// 五(一) 即收即审: an inspector starts the review within 1 working hour of receipt.
    ReviewStart,
    /// 四(二): the inspector decides the handling method within 3 working days of receipt.
    Decision,
    /// 五(一) green channel: the whole coordination is done within 1 working day of receipt.
    GreenCoordination,
    /// 四(三): a cooperating unit answers the coordination request.
    UnitResponse { unit: UnitName },
    /// 五(二): the first unit completes the joint handling.
    Handling,
    /// 四(三) 书面督办: a unit under written supervision (an upheld objection or no answer)
    /// answers by the new deadline the supervision sets.
    SupervisedResponse { unit: UnitName },
    /// 五(四) 限期整改: the first unit, supervised for passing its handling deadline, completes
    /// the handling by the new deadline the supervision sets.
    SupervisedHandling,
    /// 四(一): the city 12345 coordinates city-level or cross-county units; the district awaits
    /// its outcome by this deadline (a tracked stage, with reminders like any other).
    CityAnswer,
}

impl ClockKind {
    fn base_id(&self) -> String {
        match self {
            ClockKind::ReviewStart => "review_start".into(),
            ClockKind::Decision => "decision".into(),
            ClockKind::GreenCoordination => "green_coordination".into(),
            ClockKind::UnitResponse { unit } => format!("unit_response:{unit}"),
            ClockKind::Handling => "handling".into(),
            ClockKind::SupervisedResponse { unit } => format!("supervised_response:{unit}"),
            ClockKind::SupervisedHandling => "supervised_handling".into(),
            ClockKind::CityAnswer => "city_answer".into(),
        }
    }

    /// The Chinese name users see.
    pub fn label(&self) -> String {
        match self {
            ClockKind::ReviewStart => "启动审核（即收即审）".into(),
            ClockKind::Decision => "研判确定处置方式".into(),
            ClockKind::GreenCoordination => "绿色通道协调完成".into(),
            ClockKind::UnitResponse { unit } => format!("{unit}答复协调请求"),
            ClockKind::Handling => "联合处置办结".into(),
            ClockKind::SupervisedResponse { unit } => format!("{unit}按书面督办答复"),
            ClockKind::SupervisedHandling => "联合处置按书面督办办结".into(),
            ClockKind::CityAnswer => "市级协调结果反馈".into(),
        }
    }

    /// The unit whose duty the clock measures, for unit clocks.
    pub fn unit(&self) -> Option<&UnitName> {
        match self {
            ClockKind::UnitResponse { unit } | ClockKind::SupervisedResponse { unit } => Some(unit),
            _ => None,
        }
    }

    /// How long the clock runs under `sla`, for a green-channel case when `green`; `None` for a
    /// handling clock that follows the ticket's own 办理时限 (a fixed date, which no calendar
    /// data moves). This is what recomputing a deadline re-derives it from.
    pub fn length(&self, sla: &SlaSettings, green: bool, ticket_deadline: bool) -> Option<Length> {
        Some(match self {
            // 五(一) 绿色通道: 由质检专员即时开展研判 — the review starts at once, at any hour, so
            // its hour runs on the wall clock.
            ClockKind::ReviewStart if green => {
                Length::WallMinutes(sla.review_start_working_hours.saturating_mul(60))
            }
            // 五(一) 即收即审.
            ClockKind::ReviewStart => {
                Length::WorkingMinutes(sla.review_start_working_hours.saturating_mul(60))
            }
            // 五(一) 绿色通道: the coordination, which follows the decision, is complete within
            // 1 working day, so the decision cannot be due later than that.
            ClockKind::Decision if green => Length::WorkingDays(
                sla.decision_working_days
                    .min(sla.green_coordination_working_days),
            ),
            // 四(二).
            ClockKind::Decision => Length::WorkingDays(sla.decision_working_days),
            // 五(一) 绿色通道.
            ClockKind::GreenCoordination => {
                Length::WorkingDays(sla.green_coordination_working_days)
            }
            // 四(三); 五(一) green channel: answers within working hours.
            ClockKind::UnitResponse { .. } if green => {
                Length::WorkingMinutes(sla.green_unit_response_working_hours.saturating_mul(60))
            }
            ClockKind::UnitResponse { .. } => Length::WorkingDays(sla.unit_response_working_days),
            // 四(三) 书面督办: the supervised unit gets the same time to answer again. 五(四)
            // 限期整改 names no period for a first unit past its handling deadline: its 督办
            // gives the same time (docs/conversation.md → 书面督办).
            ClockKind::SupervisedResponse { .. } | ClockKind::SupervisedHandling if green => {
                Length::WorkingMinutes(sla.green_unit_response_working_hours.saturating_mul(60))
            }
            ClockKind::SupervisedResponse { .. } | ClockKind::SupervisedHandling => {
                Length::WorkingDays(sla.unit_response_working_days)
            }
            // 四(一) sets no time for the city; `[sla] city_answer_working_days` does.
            ClockKind::CityAnswer => Length::WorkingDays(sla.city_answer_working_days),
            // 五(二).
            ClockKind::Handling if ticket_deadline => return None,
            ClockKind::Handling => Length::WorkingDays(sla.handling_working_days),
        })
    }
}

/// A clock's configured length, counted on the calendar from the clock's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Working days, the start day not counted; due at the end of the last one.
    WorkingDays(u32),
    /// Working minutes inside working periods.
    WorkingMinutes(u32),
    /// Minutes of wall-clock time (the green channel's review start, 五(一) 即时研判).
    WallMinutes(u32),
}

impl Length {
    /// The deadline of a clock of this length started at `started`.
    pub fn deadline(self, calendar: &Calendar, started: Timestamp) -> Deadline {
        match self {
            Length::WorkingDays(n) => calendar.working_days_deadline(started, n),
            Length::WorkingMinutes(n) => calendar.add_working_minutes(started, n),
            Length::WallMinutes(n) => {
                let due = started
                    .checked_add(jiff::SignedDuration::from_mins(i64::from(n)))
                    .unwrap_or(started);
                Deadline {
                    due,
                    provisional: false,
                    explanation: format!("截止 {}，绿色通道不分工作时间", calendar.display(due)),
                }
            }
        }
    }
}

/// When a timer fires relative to its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A green-channel review received outside working hours: the inspectors are alerted at
    /// once (五(一) 即时研判), not at the next working period.
    Start,
    /// Half of the clock's working time has passed: first reminder.
    Half,
    /// `remind_before_due_minutes` working minutes before the deadline: last reminder.
    Soon,
    /// The deadline: breach.
    Due,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Half => "half",
            Phase::Soon => "soon",
            Phase::Due => "due",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TimerState {
    Pending,
    Fired { at: Timestamp },
    Cancelled { at: Timestamp },
}

/// One scheduled firing; the engine stores it under `key`, and the scheduler fires it back
/// through [`super::fire_timers`] with the case's other due timers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub key: String,
    pub phase: Phase,
    pub due_at: Timestamp,
    pub state: TimerState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClockState {
    /// Condition not met, deadline not passed.
    Running,
    /// The deadline passed with the condition unmet; the breach is recorded, no timer is pending.
    Breached { at: Timestamp },
    /// The condition was met (or became moot); `on_time` when that was by the deadline.
    Stopped { at: Timestamp, on_time: bool },
}

/// A running or finished deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseClock {
    /// Unique within the case; the middle part of its timer keys.
    pub id: String,
    pub kind: ClockKind,
    pub started: Timestamp,
    pub due: Timestamp,
    /// The deadline reaches a year with no holiday data (weekdays only; recomputed when loaded).
    pub provisional: bool,
    /// Chinese, e.g. "截止 2026-10-10（周六，调休上班日），已跳过 10/1–10/7 国庆假期".
    pub explanation: String,
    pub reminders_sent: u32,
    pub state: ClockState,
    pub timers: Vec<Timer>,
}

impl CaseClock {
    /// Starts a clock with its timers: `half` at half the working time, `soon` at
    /// `remind_before` working minutes before the deadline when that is later than `half`,
    /// and `due` at the deadline. A deadline at or before `started` gets only `due`.
    ///
    /// A green-channel (`any_hour`) review clock started outside working hours also gets a `start`
    /// timer at once. Unless `any_hour`, each timer fires at the first working time at or
    /// after its instant: people are told only in working hours (docs/spec.md → Clocks), so a breach
    /// at 18:00, the end of a working day, is recorded and escalated at the next day's 08:30.
    /// The clock's `due` stays the deadline itself.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        case_no: &CaseNo,
        id: String,
        kind: ClockKind,
        started: Timestamp,
        deadline: Deadline,
        remind_before: u32,
        any_hour: bool,
        calendar: &Calendar,
    ) -> CaseClock {
        let mut phases = if any_hour && kind == ClockKind::ReviewStart {
            wall_schedule(started, deadline.due)
        } else {
            schedule(started, deadline.due, remind_before, any_hour, calendar)
        };
        if any_hour && kind == ClockKind::ReviewStart && !calendar.is_working_time(started) {
            phases.insert(0, (Phase::Start, started));
        }
        let timers = phases
            .into_iter()
            .map(|(phase, due_at)| Timer {
                key: format!("{case_no}/{id}/{}", phase.as_str()),
                phase,
                due_at,
                state: TimerState::Pending,
            })
            .collect();
        CaseClock {
            id,
            kind,
            started,
            due: deadline.due,
            provisional: deadline.provisional,
            explanation: deadline.explanation,
            reminders_sent: 0,
            state: ClockState::Running,
            timers,
        }
    }

    /// The id for a new clock of `kind` in a case that already has `clocks`.
    pub fn next_id(clocks: &[CaseClock], kind: &ClockKind) -> String {
        let earlier = clocks.iter().filter(|c| &c.kind == kind).count();
        if earlier == 0 {
            kind.base_id()
        } else {
            format!("{}#{}", kind.base_id(), earlier + 1)
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, ClockState::Running)
    }

    pub fn is_breached(&self) -> bool {
        matches!(self.state, ClockState::Breached { .. })
    }

    /// Not yet stopped: running or breached.
    pub fn is_open(&self) -> bool {
        !matches!(self.state, ClockState::Stopped { .. })
    }

    /// Whether the clock's condition, met at `now`, is met on time: by the deadline with no breach
    /// recorded. A stopped clock keeps the verdict it was stopped with.
    pub fn met_on_time(&self, now: Timestamp) -> bool {
        match self.state {
            ClockState::Running => now <= self.due,
            ClockState::Breached { .. } => false,
            ClockState::Stopped { on_time, .. } => on_time,
        }
    }

    pub fn pending_timers(&self) -> impl Iterator<Item = &Timer> {
        self.timers
            .iter()
            .filter(|t| t.state == TimerState::Pending)
    }

    /// Gives a running clock a new deadline (the calendar data changed): its due, provisional
    /// flag and explanation, and the new firing time of each still pending timer, counted as
    /// [`CaseClock::start`] counts them. Timers that already fired stay fired, so no reminder is sent
    /// twice. Returns the pending timers whose time changed, as `(key, new due_at)`.
    pub fn reschedule(
        &mut self,
        deadline: Deadline,
        remind_before: u32,
        any_hour: bool,
        calendar: &Calendar,
    ) -> Vec<(String, Timestamp)> {
        let phases = schedule(
            self.started,
            deadline.due,
            remind_before,
            any_hour,
            calendar,
        );
        self.due = deadline.due;
        self.provisional = deadline.provisional;
        self.explanation = deadline.explanation;
        let mut moved = Vec::new();
        for timer in self
            .timers
            .iter_mut()
            .filter(|t| t.state == TimerState::Pending)
        {
            // A phase the new length no longer has (a `soon` that would now precede `half`)
            // keeps its slot just before the deadline rather than vanishing.
            let at = phases.iter().find(|(p, _)| *p == timer.phase).map_or_else(
                || fire_time(deadline.due, any_hour, calendar),
                |(_, at)| *at,
            );
            if at != timer.due_at {
                timer.due_at = at;
                moved.push((timer.key.clone(), at));
            }
        }
        moved
    }
}

/// The firing times of a clock from `started` to `due`: `half` at half the working time, `soon`
/// `remind_before` working minutes before the deadline when later than `half`, `due` at the
/// deadline; each moved into working time unless `any_hour`.
fn schedule(
    started: Timestamp,
    due: Timestamp,
    remind_before: u32,
    any_hour: bool,
    calendar: &Calendar,
) -> Vec<(Phase, Timestamp)> {
    let total = calendar.working_minutes_between(started, due).max(0);
    let half = total / 2;
    let mut phases = Vec::new();
    if half > 0 {
        phases.push((Phase::Half, offset(calendar, started, half)));
    }
    let soon = total - i64::from(remind_before);
    if remind_before > 0 && soon > half {
        phases.push((Phase::Soon, offset(calendar, started, soon)));
    }
    phases.push((Phase::Due, due));
    for (_, at) in &mut phases {
        *at = fire_time(*at, any_hour, calendar);
    }
    phases
}

/// The firing times of a wall-clock clock (the green channel's review start): `half` at half the
/// wall-clock time and `due` at the deadline.
fn wall_schedule(started: Timestamp, due: Timestamp) -> Vec<(Phase, Timestamp)> {
    let mut phases = Vec::new();
    let half = due.duration_since(started) / 2;
    if half.is_positive() {
        phases.push((Phase::Half, started.checked_add(half).unwrap_or(started)));
    }
    phases.push((Phase::Due, due));
    phases
}

/// When a firing meant for `at` goes out: at once for the green channel, else at the first
/// working time from `at` (a period's end instant, such as a deadline at 18:00, is outside).
pub fn fire_time(at: Timestamp, any_hour: bool, calendar: &Calendar) -> Timestamp {
    if any_hour {
        at
    } else {
        calendar.next_working_time(at)
    }
}

/// `minutes` working minutes after `start`; both are within one clock, so the offset is small
/// and fits `u32`.
fn offset(calendar: &Calendar, start: Timestamp, minutes: i64) -> Timestamp {
    let minutes = u32::try_from(minutes).unwrap_or(u32::MAX);
    calendar.add_working_minutes(start, minutes).due
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::calendar::WorkingHours;

    fn calendar() -> Calendar {
        Calendar::load_dir(Path::new("config/calendar"), WorkingHours::default())
            .expect("shipped calendar")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn schedule(clock: &CaseClock) -> Vec<(Phase, Timestamp)> {
        clock.timers.iter().map(|t| (t.phase, t.due_at)).collect()
    }

    #[test]
    fn one_working_hour_gets_half_and_due_only() {
        let cal = calendar();
        let start = ts("2026-11-02T09:00:00+08:00");
        let deadline = cal.add_working_minutes(start, 60);
        let clock = CaseClock::start(
            &CaseNo::new(2026, 1),
            "review_start".into(),
            ClockKind::ReviewStart,
            start,
            deadline,
            30,
            true,
            &cal,
        );
        // The 30-minute reminder would coincide with half-time, so it is not set.
        assert_eq!(
            schedule(&clock),
            vec![
                (Phase::Half, ts("2026-11-02T09:30:00+08:00")),
                (Phase::Due, ts("2026-11-02T10:00:00+08:00")),
            ]
        );
        assert_eq!(clock.timers[0].key, "TC-2026-0001/review_start/half");
        assert_eq!(clock.state, ClockState::Running);
    }

    #[test]
    fn reminders_count_working_time_across_the_lunch_break_and_a_holiday() {
        let cal = calendar();
        // Wednesday 2026-09-30 16:00, 1 working day: the National Day holiday is skipped.
        let start = ts("2026-09-30T16:00:00+08:00");
        let deadline = cal.working_days_deadline(start, 1);
        let due = deadline.due;
        let clock = CaseClock::start(
            &CaseNo::new(2026, 1),
            "decision".into(),
            ClockKind::Decision,
            start,
            deadline,
            30,
            true,
            &cal,
        );
        let total = cal.working_minutes_between(start, due);
        let phases = schedule(&clock);
        assert_eq!(phases.len(), 3);
        assert_eq!(cal.working_minutes_between(start, phases[0].1), total / 2);
        assert_eq!(cal.working_minutes_between(phases[1].1, due), 30);
        assert_eq!(phases[2], (Phase::Due, due));
        assert!(phases.windows(2).all(|w| w[0].1 < w[1].1));
    }

    #[test]
    fn a_deadline_already_passed_gets_only_the_breach_timer() {
        let cal = calendar();
        let start = ts("2026-11-10T09:00:00+08:00");
        let past = Deadline {
            due: ts("2026-11-06T18:00:00+08:00"),
            provisional: false,
            explanation: String::new(),
        };
        let clock = CaseClock::start(
            &CaseNo::new(2026, 1),
            "handling".into(),
            ClockKind::Handling,
            start,
            past,
            30,
            true,
            &cal,
        );
        assert_eq!(
            schedule(&clock),
            vec![(Phase::Due, ts("2026-11-06T18:00:00+08:00"))]
        );
    }

    #[test]
    fn outside_the_green_channel_timers_fire_in_working_time_only() {
        let cal = calendar();
        // Wednesday 16:00 before the National Day holiday: 3 working days end on the make-up
        // Saturday 2026-10-10 at 18:00, the end of that working day.
        let start = ts("2026-09-30T16:00:00+08:00");
        let deadline = cal.working_days_deadline(start, 3);
        assert_eq!(deadline.due, ts("2026-10-10T18:00:00+08:00"));
        let normal = CaseClock::start(
            &CaseNo::new(2026, 1),
            "decision".into(),
            ClockKind::Decision,
            start,
            deadline.clone(),
            30,
            false,
            &cal,
        );
        assert_eq!(normal.due, deadline.due, "the deadline itself is unchanged");
        for (_, at) in schedule(&normal) {
            assert!(cal.is_working_time(at), "{at}");
        }
        assert_eq!(
            schedule(&normal).last(),
            Some(&(Phase::Due, ts("2026-10-12T08:30:00+08:00")))
        );
        let green = CaseClock::start(
            &CaseNo::new(2026, 1),
            "decision".into(),
            ClockKind::Decision,
            start,
            deadline.clone(),
            30,
            true,
            &cal,
        );
        assert_eq!(schedule(&green).last(), Some(&(Phase::Due, deadline.due)));
    }

    #[test]
    fn rescheduling_moves_only_pending_timers() {
        let cal = calendar();
        let start = ts("2026-11-02T09:00:00+08:00");
        let mut clock = CaseClock::start(
            &CaseNo::new(2026, 1),
            "decision".into(),
            ClockKind::Decision,
            start,
            cal.working_days_deadline(start, 3),
            30,
            false,
            &cal,
        );
        clock.timers[0].state = TimerState::Fired { at: start };
        let half_before = clock.timers[0].due_at;
        let moved = clock.reschedule(cal.working_days_deadline(start, 5), 30, false, &cal);
        assert_eq!(clock.due, ts("2026-11-09T18:00:00+08:00"));
        assert_eq!(clock.timers[0].due_at, half_before, "a fired timer stays");
        let keys: Vec<&str> = moved.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["TC-2026-0001/decision/soon", "TC-2026-0001/decision/due"]
        );
        assert_eq!(moved[1].1, ts("2026-11-10T08:30:00+08:00"));
        let again = clock.reschedule(cal.working_days_deadline(start, 5), 30, false, &cal);
        assert!(again.is_empty(), "the same deadline moves nothing");
    }

    #[test]
    fn repeated_clocks_get_numbered_ids() {
        let cal = calendar();
        let start = ts("2026-11-02T09:00:00+08:00");
        let mut clocks = Vec::new();
        for expected in ["decision", "decision#2", "decision#3"] {
            let id = CaseClock::next_id(&clocks, &ClockKind::Decision);
            assert_eq!(id, expected);
            clocks.push(CaseClock::start(
                &CaseNo::new(2026, 1),
                id,
                ClockKind::Decision,
                start,
                cal.working_days_deadline(start, 3),
                30,
                false,
                &cal,
            ));
        }
        let unit = ClockKind::UnitResponse {
            unit: UnitName::unchecked("区住建局"),
        };
        assert_eq!(CaseClock::next_id(&clocks, &unit), "unit_response:区住建局");
    }

    #[test]
    fn met_on_time_follows_the_state() {
        let cal = calendar();
        let start = ts("2026-11-02T09:00:00+08:00");
        let mut clock = CaseClock::start(
            &CaseNo::new(2026, 1),
            "x".into(),
            ClockKind::ReviewStart,
            start,
            cal.add_working_minutes(start, 60),
            30,
            false,
            &cal,
        );
        assert!(clock.met_on_time(ts("2026-11-02T10:00:00+08:00")));
        assert!(!clock.met_on_time(ts("2026-11-02T10:01:00+08:00")));
        clock.state = ClockState::Breached {
            at: ts("2026-11-02T10:00:00+08:00"),
        };
        assert!(!clock.met_on_time(start));
    }
}

//! The decision being built by one transition: the new case plus the events and effects that
//! go with each change. Handlers change the case through it so that starting or stopping a clock
//! always sets or cancels its timers, every recipient is a roster person, and every card is
//! updated after a change.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::case::{CardKind, CardRef, Case};
use super::clock::{CaseClock, ClockKind, ClockState, TimerState};
use super::effect::{Effect, Message, TimerKind};
use super::event::Event;
use super::event_data::EventData;
use super::{Ctx, Decision};
use crate::calendar::Deadline;
use crate::domain::{PersonId, UnitName};
use crate::roster::Roster;

pub(super) struct Draft<'a> {
    pub ctx: Ctx<'a>,
    pub now: Timestamp,
    /// Roster id of the actor, or the system actor.
    pub actor: String,
    pub case: Case,
    /// The case before the transition; `None` for a new case.
    before: Option<&'a Case>,
    events: Vec<Event>,
    effects: Vec<Effect>,
    new_cards: BTreeSet<String>,
}

impl<'a> Draft<'a> {
    pub fn new(
        ctx: Ctx<'a>,
        now: Timestamp,
        actor: String,
        case: Case,
        before: Option<&'a Case>,
    ) -> Self {
        Draft {
            ctx,
            now,
            actor,
            case,
            before,
            events: Vec::new(),
            effects: Vec::new(),
            new_cards: BTreeSet::new(),
        }
    }

    /// A draft changing `case`.
    pub fn edit(ctx: Ctx<'a>, now: Timestamp, actor: String, case: &'a Case) -> Self {
        Draft::new(ctx, now, actor, case.clone(), Some(case))
    }

    pub fn roster(&self) -> &'a Roster {
        self.ctx.roster
    }

    pub fn event(&mut self, unit: Option<&UnitName>, data: EventData) {
        self.events.push(Event {
            at: self.now,
            actor: self.actor.clone(),
            unit: unit.cloned(),
            data,
        });
    }

    /// One message to each of `to`, once per person, skipping ids no longer in the roster.
    pub fn notify(&mut self, to: impl IntoIterator<Item = PersonId>, message: Message) {
        let mut seen = BTreeSet::new();
        for id in to {
            if self.ctx.roster.person(&id).is_some() && seen.insert(id.clone()) {
                self.effects.push(Effect::Notify {
                    to: id,
                    message: message.clone(),
                });
            }
        }
    }

    /// Sends a new card and records it on the case so later actions update it.
    pub fn card(&mut self, key: String, kind: CardKind, recipients: Vec<PersonId>) {
        let mut seen = BTreeSet::new();
        let recipients: Vec<PersonId> = recipients
            .into_iter()
            .filter(|id| self.ctx.roster.person(id).is_some() && seen.insert(id.clone()))
            .collect();
        self.case.cards.push(CardRef {
            key: key.clone(),
            kind: kind.clone(),
            recipients: recipients.clone(),
        });
        self.new_cards.insert(key.clone());
        self.effects.push(Effect::Card {
            card_key: key,
            kind,
            recipients,
        });
    }

    /// Starts a clock now and sets its timers; returns its id.
    pub fn start_clock(&mut self, kind: ClockKind, deadline: Deadline) -> String {
        let id = CaseClock::next_id(&self.case.clocks, &kind);
        let clock = CaseClock::start(
            &self.case.case_no,
            id.clone(),
            kind.clone(),
            self.now,
            deadline,
            self.ctx.sla.remind_before_due_minutes,
            // 五(一): the green channel is reminded at any hour.
            self.case.green_channel,
            self.ctx.calendar,
        );
        for t in &clock.timers {
            self.effects.push(Effect::SetTimer {
                key: t.key.clone(),
                due_at: t.due_at,
                kind: TimerKind {
                    clock: kind.clone(),
                    phase: t.phase,
                },
            });
        }
        self.case.clocks.push(clock);
        id
    }

    /// Sets the store timer of `clocks[ci].timers[ti]` to fire at `at` (again, if it fired);
    /// the case's own record of the timer is the caller's to change.
    pub fn set_timer_at(&mut self, ci: usize, ti: usize, at: Timestamp) {
        let clock = &self.case.clocks[ci];
        let timer = &clock.timers[ti];
        self.effects.push(Effect::SetTimer {
            key: timer.key.clone(),
            due_at: at,
            kind: TimerKind {
                clock: clock.kind.clone(),
                phase: timer.phase,
            },
        });
    }

    /// Stops every open clock whose kind matches: its condition is met (or moot) now.
    pub fn stop_clocks(&mut self, matches: impl Fn(&ClockKind) -> bool) {
        let ids: Vec<String> = self
            .case
            .clocks
            .iter()
            .filter(|c| c.is_open() && matches(&c.kind))
            .map(|c| c.id.clone())
            .collect();
        for id in ids {
            self.stop_clock(&id);
        }
    }

    /// Stops one clock: cancels its pending timers; `on_time` when stopped by its deadline
    /// without a recorded breach. Stopping a stopped clock changes nothing.
    pub fn stop_clock(&mut self, id: &str) {
        let now = self.now;
        let Some(clock) = self.case.clocks.iter_mut().find(|c| c.id == id) else {
            return;
        };
        if !clock.is_open() {
            return;
        }
        let on_time = clock.met_on_time(now);
        clock.state = ClockState::Stopped { at: now, on_time };
        for t in clock
            .timers
            .iter_mut()
            .filter(|t| t.state == TimerState::Pending)
        {
            t.state = TimerState::Cancelled { at: now };
            self.effects
                .push(Effect::CancelTimer { key: t.key.clone() });
        }
    }

    /// A terminal state leaves no duty behind: every open clock stops.
    pub fn stop_all_clocks(&mut self) {
        self.stop_clocks(|_| true);
    }

    /// Cancels the pending timers of a clock without stopping it (after its breach).
    pub fn cancel_pending_timers(&mut self, id: &str) {
        let now = self.now;
        let Some(clock) = self.case.clocks.iter_mut().find(|c| c.id == id) else {
            return;
        };
        for t in clock
            .timers
            .iter_mut()
            .filter(|t| t.state == TimerState::Pending)
        {
            t.state = TimerState::Cancelled { at: now };
            self.effects
                .push(Effect::CancelTimer { key: t.key.clone() });
        }
    }

    /// The decision; when the case changed, every card sent earlier is updated in place.
    pub fn finish(mut self) -> Decision {
        if self.before != Some(&self.case) {
            for card in &self.case.cards {
                if !self.new_cards.contains(&card.key) {
                    self.effects.push(Effect::UpdateCard {
                        card_key: card.key.clone(),
                    });
                }
            }
        }
        Decision {
            case: self.case,
            events: self.events,
            effects: self.effects,
        }
    }
}

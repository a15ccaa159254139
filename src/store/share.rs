//! The background writes' share of the writer thread: when a round may run decisions, and
//! for how long, with the balance carried across rounds.
//!
//! Decisions fill the writer's idle moments: a round that begins with nothing waiting runs them
//! for up to [`BACKGROUND_SLICE`], and a waiting write that arrives meanwhile ends the run after
//! the decision in progress. Under a flood of acknowledgements such moments still come (between
//! a commit and the next callbacks' arrival), and a round that begins with acknowledgements
//! commits them without a decision, unless decisions are owed a turn: when the idle moments have
//! not given them their third of the writer ([`BACKGROUND_SHARE`]), they take it after
//! acknowledgements, in turns of several ([`BATCH_TURN`]), so the pages they share (events,
//! timers, outbox, the similar-case index) are written once per turn. Every round with waiting
//! writes earns them time, so decisions progress under any flood.
//!
//! Measured (docs/throughput.md → the writer's rounds): a round that carried one decision in
//! every commit took ~1 ms to commit, one of acknowledgements alone ~0.7 ms.

use std::time::Duration;

/// Under a flood, background writes are owed 1/`BACKGROUND_SHARE` of the time the writer
/// spends on waiting writes and their commits: two thirds of the writer for acknowledgements,
/// which DingTalk waits on (a late one is delivered again), at least a third for decisions,
/// whose answers may take seconds. A third is what decisions took when every round carried one
/// of them (measured with `perf`, docs/throughput.md).
pub const BACKGROUND_SHARE: u32 = 2;

/// How much writer time decisions must be owed before a round of acknowledgements starts a turn
/// of them: a few decisions of ~0.5 ms. An acknowledgement in such a round waits for at most
/// this and the decision in progress, and its commit.
pub const BATCH_TURN: Duration = Duration::from_millis(2);

/// How long a round that begins with nothing waiting may run background writes before it
/// commits: several decisions then share one `fsync`, while a waiting write that arrives
/// meanwhile is taken into the round and ends it after the decision in progress.
pub const BACKGROUND_SLICE: Duration = Duration::from_millis(10);

/// Where a round stands when it asks whether another background write may run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Round {
    /// Waiting writes run so far, and their time.
    pub waited: usize,
    pub waited_time: Duration,
    /// Background writes run so far, and their time.
    pub background: usize,
    pub background_time: Duration,
    /// The round began with a background write, nothing waiting.
    pub began_free: bool,
}

/// Writer time owed to background writes (positive) or already taken beyond their share
/// (negative), in nanoseconds; held within ±[`BATCH_TURN`], so neither a long spell of one kind
/// nor one slow decision decides the turns for long after.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BackgroundCredit {
    nanos: i64,
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl BackgroundCredit {
    /// Whether another background write may run in `round`.
    pub fn may_run(&self, round: &Round) -> bool {
        if round.waited == 0 {
            return round.background_time < BACKGROUND_SLICE;
        }
        if round.began_free {
            // Decisions were filling an idle writer; the write that now waits ends their run
            // after the one in progress.
            return false;
        }
        let allowance = self
            .nanos
            .saturating_add(nanos(round.waited_time / BACKGROUND_SHARE));
        if round.background == 0 {
            // A turn starts only once a whole one is owed: decisions that fill the writer's idle
            // moments take their share there, and only when those do not come do decisions
            // come in batches after acknowledgements.
            allowance >= nanos(BATCH_TURN)
        } else {
            nanos(round.background_time) < allowance
        }
    }

    /// Settles a committed round: what its waiting writes and commit earned, less what its
    /// background writes took (in an idle writer too: decisions that ran there have had their
    /// share).
    pub fn settle(&mut self, round: &Round, commit_time: Duration) {
        let earned = if round.waited == 0 {
            0
        } else {
            nanos((round.waited_time + commit_time) / BACKGROUND_SHARE)
        };
        let bound = nanos(BATCH_TURN);
        self.nanos = self
            .nanos
            .saturating_add(earned)
            .saturating_sub(nanos(round.background_time))
            .clamp(-bound, bound);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A round that began with `waited` waiting writes taking `waited_time`.
    fn acks(
        waited: usize,
        waited_time: Duration,
        background: usize,
        background_time: Duration,
    ) -> Round {
        Round {
            waited,
            waited_time,
            background,
            background_time,
            began_free: false,
        }
    }

    /// A round that began with a background write, nothing waiting.
    fn idle(background: usize, background_time: Duration) -> Round {
        Round {
            background,
            background_time,
            began_free: true,
            ..Round::default()
        }
    }

    /// Owed a whole turn: many rounds of acknowledgements and no decision.
    fn owed() -> BackgroundCredit {
        let mut credit = BackgroundCredit::default();
        for _ in 0..10 {
            credit.settle(&acks(28, MS, 0, Duration::ZERO), MS);
        }
        credit
    }

    #[test]
    fn an_idle_writer_runs_decisions_for_a_slice() {
        let credit = BackgroundCredit::default();
        assert!(credit.may_run(&idle(0, Duration::ZERO)));
        assert!(credit.may_run(&idle(9, BACKGROUND_SLICE - MS)));
        assert!(!credit.may_run(&idle(10, BACKGROUND_SLICE)));
    }

    #[test]
    fn a_write_that_arrives_while_decisions_fill_an_idle_writer_ends_their_run() {
        let joined = Round {
            waited: 1,
            waited_time: MS / 10,
            ..idle(1, MS / 2)
        };
        assert!(
            !owed().may_run(&joined),
            "owed a turn, but the round began idle"
        );
    }

    #[test]
    fn a_round_of_acknowledgements_carries_no_decision_unless_one_is_owed() {
        assert!(!BackgroundCredit::default().may_run(&acks(28, MS, 0, Duration::ZERO)));
        assert!(owed().may_run(&acks(28, MS, 0, Duration::ZERO)));
    }

    /// Decisions that ran in idle moments are their share: the rounds of acknowledgements
    /// between them owe nothing more.
    #[test]
    fn decisions_in_idle_moments_pay_for_the_rounds_between() {
        let mut credit = BackgroundCredit::default();
        for _ in 0..1000 {
            // Three rounds of acknowledgements (0.4 ms and a 0.7 ms commit each) earn 1.65 ms;
            // an idle moment runs three decisions of 0.6 ms.
            for _ in 0..3 {
                assert!(!credit.may_run(&acks(25, MS * 2 / 5, 0, Duration::ZERO)));
                credit.settle(&acks(25, MS * 2 / 5, 0, Duration::ZERO), MS * 7 / 10);
            }
            credit.settle(&idle(3, MS * 18 / 10), MS);
        }
    }

    /// With no idle moment at all, rounds of acknowledgements (0.4 ms of writes, 0.6 ms of
    /// commit) earn 0.5 ms each: once 2 ms are owed a round has a turn, which runs decisions of
    /// 0.6 ms while any of it is left, and the writer's time splits two thirds to one third.
    #[test]
    fn without_idle_moments_decisions_come_in_turns_of_their_share() {
        let (writes, commit, decision) = (MS * 2 / 5, MS * 3 / 5, MS * 3 / 5);
        let mut credit = BackgroundCredit::default();
        let (mut waiting_side, mut background_side) = (Duration::ZERO, Duration::ZERO);
        let mut turns = Vec::new();
        for _ in 0..400 {
            let mut ran = 0;
            while credit.may_run(&acks(28, writes, ran, decision * ran as u32)) {
                ran += 1;
            }
            let took = decision * ran as u32;
            credit.settle(&acks(28, writes, ran, took), commit);
            waiting_side += writes + commit;
            background_side += took;
            turns.push(ran);
        }
        let first = turns.iter().position(|&n| n > 0);
        assert_eq!(
            first,
            Some(4),
            "the first turn once 2 ms are owed: {turns:?}"
        );
        assert!(
            turns.iter().all(|&n| n == 0 || n >= 3),
            "decisions never run one a round: {turns:?}"
        );
        let share = background_side.as_secs_f64() / (waiting_side + background_side).as_secs_f64();
        assert!(
            (0.30..0.37).contains(&share),
            "decisions had {share:.3} of the writer"
        );
    }

    #[test]
    fn a_slow_decision_is_forgiven_after_one_turn_of_debt() {
        let mut credit = BackgroundCredit::default();
        credit.settle(&acks(1, MS, 1, MS * 500), MS);
        let mut rounds = 0;
        while !credit.may_run(&acks(1, MS, 0, Duration::ZERO)) {
            credit.settle(&acks(1, MS, 0, Duration::ZERO), MS);
            rounds += 1;
        }
        // The debt is held to one turn: 2 ms repaid at 1 ms a round, then 2 ms earned.
        assert!(rounds <= 4, "{rounds} rounds before decisions ran again");
    }

    #[test]
    fn a_long_flood_does_not_buy_a_long_turn() {
        let mut credit = BackgroundCredit::default();
        for _ in 0..1000 {
            credit.settle(&acks(1, MS, 0, Duration::ZERO), MS);
        }
        assert!(credit.may_run(&acks(1, Duration::ZERO, 1, BATCH_TURN - MS)));
        assert!(!credit.may_run(&acks(1, Duration::ZERO, 3, BATCH_TURN)));
    }
}

//! Redelivery guard on the frame `messageId` (§2.7: the gateway redelivers unacknowledged frames,
//! and the newest Python SDK dedupes the same way). A small LRU bounded in size and age, in front
//! of the inbox's unique key: it saves a store round trip and, more importantly, lets a
//! redelivered card callback be answered with the same card update as the first delivery.

use std::collections::{HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

/// What the guard knows about a frame id.
#[derive(Debug)]
pub(crate) enum Seen {
    /// First sighting: handle it, then call [`Dedupe::done`] or [`Dedupe::forget`]. The sender
    /// tells later copies of the frame how it ended.
    New,
    /// Being handled now; the receiver yields the ACK `data` once handled, and closes if the
    /// handler fails (then no copy is acknowledged and the gateway redelivers).
    InFlight(watch::Receiver<Option<String>>),
    /// Handled and acknowledged with this ACK `data`.
    Done(String),
}

enum State {
    InFlight(watch::Sender<Option<String>>),
    Done(String),
}

struct Entry {
    generation: u64,
    at: Timestamp,
    state: State,
}

/// At most `capacity` ids, none older than `ttl` (clock time of the first sighting).
pub(crate) struct Dedupe {
    ttl: SignedDuration,
    capacity: usize,
    entries: HashMap<String, Entry>,
    /// Insertion order; a stale generation means the id was forgotten and seen again since.
    order: VecDeque<(String, u64)>,
    next_generation: u64,
}

impl Dedupe {
    pub fn new(ttl: SignedDuration, capacity: usize) -> Dedupe {
        Dedupe {
            ttl,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
        }
    }

    /// Looks `id` up and, when new, records it as in flight.
    pub fn check(&mut self, id: &str, now: Timestamp) -> Seen {
        self.evict(now);
        if let Some(entry) = self.entries.get(id) {
            return match &entry.state {
                State::InFlight(tx) => Seen::InFlight(tx.subscribe()),
                State::Done(data) => Seen::Done(data.clone()),
            };
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.entries.insert(
            id.to_string(),
            Entry {
                generation,
                at: now,
                state: State::InFlight(watch::Sender::new(None)),
            },
        );
        self.order.push_back((id.to_string(), generation));
        self.evict(now);
        Seen::New
    }

    /// Marks `id` handled with the ACK `data`, and hands that data to copies waiting for it.
    pub fn done(&mut self, id: &str, data: &str) {
        if let Some(entry) = self.entries.get_mut(id) {
            if let State::InFlight(tx) = &entry.state {
                tx.send_replace(Some(data.to_string()));
            }
            entry.state = State::Done(data.to_string());
        }
    }

    /// Drops `id` (its handler failed), so that the next delivery is handled afresh.
    pub fn forget(&mut self, id: &str) {
        // Dropping the sender closes the receivers of waiting copies: they stay unacknowledged.
        self.entries.remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn evict(&mut self, now: Timestamp) {
        while let Some((id, generation)) = self.order.front() {
            let current = self.entries.get(id).filter(|e| e.generation == *generation);
            let expired = current.is_some_and(|e| now.duration_since(e.at) >= self.ttl);
            if current.is_some() && !expired && self.entries.len() <= self.capacity {
                break;
            }
            if current.is_some() {
                self.entries.remove(id);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_780_000_000 + s).expect("ts")
    }

    #[test]
    fn a_copy_sees_in_flight_then_done_with_the_same_ack_data() {
        let mut d = Dedupe::new(SignedDuration::from_mins(5), 100);
        assert!(matches!(d.check("m", at(0)), Seen::New));
        let Seen::InFlight(rx) = d.check("m", at(1)) else {
            panic!("second sighting is in flight");
        };
        d.done("m", r#"{"response":null}"#);
        assert_eq!(rx.borrow().as_deref(), Some(r#"{"response":null}"#));
        assert!(matches!(d.check("m", at(2)), Seen::Done(data) if data == r#"{"response":null}"#));
    }

    #[test]
    fn a_failed_frame_is_forgotten_and_waiting_copies_are_released_unanswered() {
        let mut d = Dedupe::new(SignedDuration::from_mins(5), 100);
        assert!(matches!(d.check("m", at(0)), Seen::New));
        let Seen::InFlight(rx) = d.check("m", at(0)) else {
            panic!("in flight");
        };
        d.forget("m");
        assert!(rx.has_changed().is_err(), "sender dropped");
        assert!(matches!(d.check("m", at(1)), Seen::New));
    }

    #[test]
    fn entries_expire_by_age_and_by_capacity_oldest_first() {
        let mut d = Dedupe::new(SignedDuration::from_secs(60), 2);
        assert!(matches!(d.check("a", at(0)), Seen::New));
        d.done("a", "x");
        assert!(matches!(d.check("b", at(10)), Seen::New));
        assert!(matches!(d.check("c", at(20)), Seen::New), "evicts a");
        assert_eq!(d.len(), 2);
        assert!(matches!(d.check("a", at(21)), Seen::New), "a was evicted");
        // a's return pushed out b, the oldest; c is still there.
        assert!(matches!(d.check("c", at(22)), Seen::InFlight(_)));
        assert!(
            matches!(d.check("c", at(80)), Seen::New),
            "c expired after 60 s"
        );
    }

    #[test]
    fn a_forgotten_and_seen_again_id_keeps_its_new_entry() {
        let mut d = Dedupe::new(SignedDuration::from_secs(60), 10);
        assert!(matches!(d.check("b", at(0)), Seen::New));
        assert!(matches!(d.check("a", at(1)), Seen::New));
        d.forget("a");
        assert!(matches!(d.check("a", at(50)), Seen::New));
        // At 70 s b expires and a's first queue slot is stale: it must not evict a's new entry.
        assert!(matches!(d.check("x", at(70)), Seen::New));
        assert!(matches!(d.check("a", at(71)), Seen::InFlight(_)));
        assert!(matches!(d.check("b", at(72)), Seen::New));
    }
}

//! What the fake remembers and what a test reads back or sets: every request and its answer
//! ([`Seen`]), every delivery ([`Delivery`]), every strictness violation, the tokens issued, the
//! address book, and the faults to inject — queued ([`FakeDingtalk::fail_next`]) or drawn at
//! random ([`FakeDingtalk::fail_fraction`]) as docs/dingtalk-protocol.md §7 lists them. The
//! waits a throttling answer asks for (§5.3, §7) are owed here and checked by
//! [`super::answer::Req::check_waits`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tiaochu::clock::ManualClock;

use super::{API_THROTTLES, Delivery, FakeDingtalk, Fault, Seen, WEBHOOK_THROTTLE_ERRCODES};

/// splitmix64: one well-mixed value per input, so each draw depends only on what is hashed in.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) tokens: HashMap<String, Timestamp>,
    pub(super) token_calls: usize,
    pub(super) token_delay: Duration,
    pub(super) requests: Vec<Seen>,
    pub(super) violations: Vec<String>,
    pub(super) deliveries: Vec<Delivery>,
    pub(super) fail_next: VecDeque<Fault>,
    /// Faults for the next token fetches (the token route takes no other queued fault).
    pub(super) fail_next_token: VecDeque<Fault>,
    pub(super) fail_p: f64,
    pub(super) seed: u64,
    /// How often each request body was drawn for, so a retry draws afresh.
    pub(super) drawn: HashMap<u64, u64>,
    pub(super) draws: usize,
    pub(super) slow: Duration,
    pub(super) flow_control_once: HashSet<String>,
    pub(super) invalid: HashSet<String>,
    pub(super) bad_groups: HashSet<String>,
    pub(super) undeliverable: HashSet<String>,
    pub(super) cards: HashSet<String>,
    pub(super) robot_sends: Vec<Timestamp>,
    pub(super) seq: u64,
    pub(super) enforce_waits: bool,
    /// Request ident → (when throttled, not again before).
    pub(super) owed: HashMap<u64, (Timestamp, Timestamp)>,
    /// Each time the custom robot was throttled: no send after .0 and before .1.
    pub(super) robot_blocked: Vec<(Timestamp, Timestamp)>,
    pub(super) waits_asked: usize,
    /// The address book: members by userId order of adding, departments by id.
    pub(super) members: Vec<Member>,
    pub(super) departments: HashMap<i64, (String, Option<i64>)>,
    /// Permissions the app has not been granted (scope names).
    pub(super) denied: HashSet<String>,
    /// Card templates published in this organisation.
    pub(super) templates: HashSet<String>,
    /// outTrackIds of cards created without a space (delivered to nobody).
    pub(super) undelivered: Vec<String>,
}

/// A member of the fake organisation's address book.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) user_id: String,
    pub(super) name: String,
    pub(super) title: String,
    pub(super) dept_ids: Vec<i64>,
}

impl Inner {
    pub(super) fn fault(&mut self, route: &'static str, ident: u64) -> Option<Fault> {
        if let Some(f) = self.fail_next.pop_front() {
            return Some(f);
        }
        self.random_fault(route, ident)
    }

    /// Fails with probability `fail_p`, from a value that depends only on the seed, the
    /// request body and how many times that body came before — not on the order concurrent
    /// requests arrive in. Six kinds, one sixth each.
    pub(super) fn random_fault(&mut self, route: &'static str, ident: u64) -> Option<Fault> {
        if self.fail_p <= 0.0 {
            return None;
        }
        let nth = self.drawn.entry(ident).or_insert(0);
        let n = *nth;
        *nth += 1;
        self.draws += 1;
        let r = mix(self.seed ^ mix(ident ^ mix(n)));
        let u = (r >> 11) as f64 / (1u64 << 53) as f64;
        if u >= self.fail_p {
            return None;
        }
        let pick = mix(r);
        let choose = (pick >> 8) as usize;
        Some(match pick % 6 {
            0 => Fault::Status(500),
            1 => Fault::Status(503),
            2 if matches!(route, "custom_robot" | "session_reply") => {
                Fault::Errcode(WEBHOOK_THROTTLE_ERRCODES[choose % WEBHOOK_THROTTLE_ERRCODES.len()])
            }
            2 => {
                let robot_send = matches!(route, "batch_send" | "group_send");
                let (status, code) = if robot_send {
                    API_THROTTLES[choose % API_THROTTLES.len()]
                } else {
                    API_THROTTLES[0]
                };
                Fault::ApiThrottle { status, code }
            }
            3 => Fault::TooMany {
                retry_after: 1 + (choose % 20) as u64,
            },
            4 => Fault::Slow,
            _ => Fault::SlowAfterDeliver,
        })
    }
}

#[derive(Clone)]
pub(super) struct Shared {
    pub(super) inner: Arc<Mutex<Inner>>,
    pub(super) clock: Arc<ManualClock>,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FakeDingtalk {
    pub fn token_calls(&self) -> usize {
        self.shared.lock().token_calls
    }
    /// Makes the token endpoint slow, so concurrent fetches would overlap without single flight.
    pub fn set_token_delay(&self, d: Duration) {
        self.shared.lock().token_delay = d;
    }
    /// Every token issued so far stops working (as after a secret reset).
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }
    pub fn fail_next(&self, faults: &[Fault]) {
        self.shared.lock().fail_next.extend(faults.iter().copied());
    }
    /// Fails the next token fetches with `faults`, in order.
    pub fn fail_next_token(&self, faults: &[Fault]) {
        self.shared
            .lock()
            .fail_next_token
            .extend(faults.iter().copied());
    }
    /// Fails every answer — token included — with probability `p`: HTTP 500, 503, a
    /// throttling code of the route ([`WEBHOOK_THROTTLE_ERRCODES`], [`API_THROTTLES`]), 429
    /// with Retry-After 1–20 s, slow and not accepted, slow but accepted; one sixth each. Each
    /// draw depends only on `seed`, the request body and how often that body came before, so
    /// a run's faults do not depend on the order concurrent requests arrive in.
    pub fn fail_fraction(&self, p: f64, seed: u64) {
        let mut s = self.shared.lock();
        s.fail_p = p;
        s.seed = seed;
    }
    /// How many answers were drawn for by [`FakeDingtalk::fail_fraction`].
    pub fn fault_draws(&self) -> usize {
        self.shared.lock().draws
    }
    /// From now on a request that repeats a throttled one before the wait its answer asked
    /// ([`Fault::asked_wait`]) is a violation, and so is any custom-robot send after a throttled
    /// custom-robot answer and before its wait ends (sends started at the same instant were
    /// already under way). Token fetches are exempt: they are no outbox row.
    pub fn enforce_waits(&self) {
        self.shared.lock().enforce_waits = true;
    }
    /// How many throttling answers asked for a wait while [`FakeDingtalk::enforce_waits`] was on.
    pub fn waits_asked(&self) -> usize {
        self.shared.lock().waits_asked
    }
    /// How long a slow answer takes (must exceed the client's timeout).
    pub fn set_slow(&self, d: Duration) {
        self.shared.lock().slow = d;
    }
    /// These users are flow-controlled on their next batchSend (once each).
    pub fn flow_control_once(&self, users: &[&str]) {
        self.shared
            .lock()
            .flow_control_once
            .extend(users.iter().map(|u| u.to_string()));
    }
    /// These users are never reachable (`invalidStaffIdList`).
    pub fn invalid_users(&self, users: &[&str]) {
        self.shared
            .lock()
            .invalid
            .extend(users.iter().map(|u| u.to_string()));
    }
    /// Group sends to these conversations fail permanently (robot not in the group).
    pub fn bad_groups(&self, cids: &[&str]) {
        self.shared
            .lock()
            .bad_groups
            .extend(cids.iter().map(|u| u.to_string()));
    }
    /// Card deliveries to these space ids fail in `deliverResults`.
    pub fn undeliverable(&self, space_ids: &[&str]) {
        self.shared
            .lock()
            .undeliverable
            .extend(space_ids.iter().map(|u| u.to_string()));
    }
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.lock().requests.clone()
    }
    /// Every custom-robot request's arrival time.
    pub fn robot_sends(&self) -> Vec<Timestamp> {
        self.shared.lock().robot_sends.clone()
    }
    /// Adds a department of the address book under `parent` (the root is [`ROOT_DEPT`]).
    pub fn add_department(&self, dept_id: i64, name: &str, parent: i64) {
        self.shared
            .lock()
            .departments
            .insert(dept_id, (name.to_string(), Some(parent)));
    }
    /// Adds a member of the organisation sitting in `dept_ids`.
    pub fn add_member(&self, user_id: &str, name: &str, title: &str, dept_ids: &[i64]) {
        self.shared.lock().members.push(Member {
            user_id: user_id.to_string(),
            name: name.to_string(),
            title: title.to_string(),
            dept_ids: dept_ids.to_vec(),
        });
    }
    /// The app lacks this permission from now on (e.g. `qyapi_get_member`).
    pub fn deny_permission(&self, scope: &str) {
        self.shared.lock().denied.insert(scope.to_string());
    }
    /// The outTrackIds of cards created without delivering them to anyone.
    pub fn undelivered_cards(&self) -> Vec<String> {
        self.shared.lock().undelivered.clone()
    }
}

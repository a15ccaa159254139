//! Fuzz target: the application parser (`parse::parse_application`) on any UTF-8 text. It must
//! never panic, and what it returns must hold the invariants the proptests check
//! (tests/api/parse_cases.rs): an accepted application has no problem, a ticket number, a first
//! unit and the leader's approval; a ticket number is `DH` + digits; the first unit is never
//! among the requested units, and no list repeats a name.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tiaochu::parse::{UnitMatcher, parse_application};
use tiaochu::roster::Roster;

static UNITS: LazyLock<UnitMatcher> = LazyLock::new(|| {
    let roster = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/roster.toml");
    UnitMatcher::new(&Roster::load(&roster).expect("the shipped roster loads"))
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let app = parse_application(text, &UNITS);
    if app.ok {
        assert!(app.missing.is_empty() && app.errors.is_empty(), "{app:?}");
        assert!(app.ticket_no.is_some() && app.first_unit.is_some() && app.leader_approved);
    }
    if let Some(t) = &app.ticket_no {
        assert!(
            t.starts_with("DH") && t[2..].bytes().all(|b| b.is_ascii_digit()),
            "{t}"
        );
    }
    if let Some(first) = &app.first_unit {
        assert!(!app.requested_units.contains(first), "{app:?}");
    }
    for list in [&app.requested_units, &app.unresolved_mentions, &app.missing] {
        let unique: std::collections::HashSet<_> = list.iter().collect();
        assert_eq!(unique.len(), list.len(), "{list:?}");
    }
});

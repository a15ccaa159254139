//! Fuzz target: the command parser (`parse::command::parse_command`) on any UTF-8 text, as is
//! and behind every command word (where the tail's byte offsets inside full-width text are the
//! risk). It must never panic, a text starting with a command word is always answered, and a
//! refusal always shows the correct form.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tiaochu::parse::UnitMatcher;
use tiaochu::parse::command::{COMMANDS, parse_command};
use tiaochu::roster::Roster;

static UNITS: LazyLock<UnitMatcher> = LazyLock::new(|| {
    let roster = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/roster.toml");
    UnitMatcher::new(&Roster::load(&roster).expect("the shipped roster loads"))
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = parse_command(text, &UNITS);
    let word = COMMANDS[usize::from(selector) % COMMANDS.len()].word;
    let answer = parse_command(&format!("{word} {text}"), &UNITS);
    assert!(answer.is_some(), "{word} {text}");
    if let Some(Err(e)) = answer {
        assert!(e.message.contains("正确格式："), "{}", e.message);
    }
});

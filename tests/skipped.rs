//! The end of `cargo test`: lists the cross-checks the `api` tests skipped in this run because
//! something outside Rust was missing (Python packages, Chromium). They fail under CI; on a
//! developer's machine they skip, and without this list the skip would show only under
//! `--nocapture`. Cargo runs this target after `api` (targets run in name order); the lines come
//! from `support::skip_or_fail`, keyed by the cargo process both were started by.

use std::path::{Path, PathBuf};

fn main() {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skipped-checks.tsv");
    let cargo = std::os::unix::process::parent_id().to_string();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut ours = Vec::new();
    let mut kept = String::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.split_once('\t') else {
            continue;
        };
        if pid == cargo {
            ours.push(rest.replacen('\t', ": ", 1));
        } else if Path::new("/proc").join(pid).exists() {
            // Another `cargo test` still running: its own summary prints these.
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if ours.is_empty() {
        println!("cross-checks: none skipped");
    } else {
        println!(
            "cross-checks: {} SKIPPED in this run (they fail under CI; .ci/run installs what they need):",
            ours.len()
        );
        for line in &ours {
            println!("  SKIPPED {line}");
        }
    }
    if !text.is_empty() {
        let _ = std::fs::write(&log, kept);
    }
}

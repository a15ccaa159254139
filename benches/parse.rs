//! Parser throughput: applications per second over the fixtures, and MB/s over a 1 MB
//! adversarial input (label fragments, separators, scope characters, unit names). Plain `main`
//! with `Instant`; run with `cargo bench --bench parse`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use tiaochu::parse::{UnitMatcher, parse_application};
use tiaochu::roster::Roster;

/// Keeps each measurement long enough to read, short enough for a 2-core machine.
const TARGET: Duration = Duration::from_secs(2);

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let roster = Roster::load(&root.join("config/roster.toml")).expect("shipped roster");
    let matcher = UnitMatcher::new(&roster);
    let mut fixtures: Vec<String> = std::fs::read_dir(root.join("tests/fixtures/applications"))
        .expect("fixtures folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| std::fs::read_to_string(p).expect("fixture"))
        .collect();
    fixtures.sort();

    let start = Instant::now();
    let mut parsed = 0u64;
    while start.elapsed() < TARGET {
        for text in &fixtures {
            black_box(parse_application(black_box(text), &matcher));
        }
        parsed += fixtures.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fixtures: {} applications in {secs:.2} s = {:.0} applications/s",
        parsed,
        parsed as f64 / secs
    );

    for (name, input) in [
        ("adversarial", adversarial(1 << 20)),
        ("one line", one_line(1 << 20)),
    ] {
        let start = Instant::now();
        let mut bytes = 0u64;
        while start.elapsed() < TARGET {
            black_box(parse_application(black_box(&input), &matcher));
            bytes += input.len() as u64;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name} 1 MB input: {:.1} MB parsed in {secs:.2} s = {:.1} MB/s",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / secs
        );
    }
}

/// Fixture-like fields drowned in label fragments, unclosed notes, mentions, scope characters,
/// generic wording and placeholders, over many short lines.
fn adversarial(bytes: usize) -> String {
    let pieces = [
        "需协调部门及事由：区住建局、市场监管局、公安分局、临泽县交通运输局、市级部门、具体国企、相关部门；",
        "；工单编；办理难点（未闭合；【首接单位 无冒号 **标题** ",
        "市市县省省道夜市城市 @a @b ＠c 1. 2、（一）### - ",
        "请示分管领导相关情况：拟拟拟汇报，不同意，同意 第三次来电 不紧急 紧急 XXX ***\n",
        "工单编号：ｄｈ２０２６１１０３００１７\n联系人：张三\n",
    ];
    let mut out = String::with_capacity(bytes + 256);
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(pieces[i % pieces.len()]);
        i += 1;
    }
    out
}

/// One line with no newline: every separator is tested against the labels.
fn one_line(bytes: usize) -> String {
    "；工单编号（ 市 区交通运输局".repeat(bytes / "；工单编号（ 市 区交通运输局".len() + 1)
}

//! Golden transcripts: what each person reads in a scenario, one markdown file per person, in
//! `docs/conversation/<scenario>/` (card-template mode) and `docs/conversation/actioncard/
//! <scenario>/` (ActionCard mode). A test fails when a transcript differs from the committed
//! file; `UPDATE_TRANSCRIPTS=1 cargo test --test api conversation::` writes them instead (never
//! under `CI=true`), so every change in what people read shows in the diff for review.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::{TimeZone, offset};

use super::harness::{Chat, Line, Mode, Seen, quote};

/// The scenarios' titles, for the transcript headings.
fn title(scenario: &str) -> &'static str {
    match scenario {
        "joint" => "联合调处全过程",
        "independent" => "独立办理",
        "return-resubmit" => "退回补充后重新提交（第 2 版）",
        "city" => "提请市级协调",
        "green-channel" => "绿色通道",
        "objection-supervision" => "异议 → 坚持 → 书面督办",
        "withdrawal" => "异议 → 撤回",
        "overdue" => "逾期未答复 → 提醒 → 上报 → 书面督办",
        "handling-overdue" => "办结超期 → 书面督办 → 限期办结",
        "similar" => "类似案例",
        "roster" => "名单命令",
        _ => panic!("unknown scenario {scenario}"),
    }
}

fn dir(scenario: &str, mode: Mode) -> Option<PathBuf> {
    let base = Path::new("docs/conversation");
    match mode {
        Mode::CardTemplate => Some(base.join(scenario)),
        Mode::ActionCard => Some(base.join("actioncard").join(scenario)),
        // The sandbox shows the card-template conversation (cards change in place) on a page.
        Mode::Sandbox => None,
    }
}

fn time(at: Timestamp) -> String {
    at.to_zoned(TimeZone::fixed(offset(8)))
        .strftime("%m-%d %H:%M")
        .to_string()
}

/// One person's transcript.
pub fn render(scenario: &str, mode: Mode, chat: &Chat, person: &str, lines: &[&Line]) -> String {
    let mut out = format!(
        "# {} · {}\n\n{}；时间为测试时钟（北京时间）。本文件由 `tests/api/conversation` 生成，见 ../README.md。\n",
        title(scenario),
        chat.describe(person),
        mode.label()
    );
    // A card changes in place: an update whose body is as before shows only what changed.
    let mut bodies: BTreeMap<String, String> = BTreeMap::new();
    for l in lines {
        let when = time(l.at);
        let _ = match &l.seen {
            Seen::Said(text) => write!(out, "\n**{when} 我发送：**\n\n{}\n", quote(text)),
            Seen::Tapped {
                card,
                label,
                inputs,
            } => {
                let _ = write!(out, "\n**{when} 我在卡片「{card}」上点按［{label}］**\n");
                for (k, v) in inputs {
                    let _ = writeln!(out, "\n- 填写{}：{v}", input_label(k));
                }
                Ok(())
            }
            Seen::Message {
                title,
                text,
                buttons,
            } => {
                let _ = write!(out, "\n**{when} 机器人：{title}**\n\n{}\n", quote(text));
                if !buttons.is_empty() {
                    let _ = write!(out, ">\n> {}\n", buttons_line(buttons));
                }
                Ok(())
            }
            Seen::Card {
                title,
                text,
                status,
                buttons,
                new,
            } => {
                let what = if *new { "新卡片" } else { "卡片更新为" };
                let body = if !*new && bodies.get(title) == Some(text) {
                    "（正文不变）".to_string()
                } else {
                    text.clone()
                };
                bodies.insert(title.clone(), text.clone());
                let _ = write!(out, "\n**{when} {what}「{title}」**\n\n{}\n", quote(&body));
                if !status.is_empty() {
                    let _ = write!(out, ">\n{}\n", quote(&format!("状态：{status}")));
                }
                if !buttons.is_empty() {
                    let _ = write!(out, ">\n> {}\n", buttons_line(buttons));
                }
                Ok(())
            }
            Seen::CardError(error) => write!(out, "\n**{when} 卡片上提示我：**{error}\n"),
        };
    }
    out
}

fn buttons_line(buttons: &[String]) -> String {
    buttons
        .iter()
        .map(|b| format!("［{b}］"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Compares (or, with `UPDATE_TRANSCRIPTS=1` outside CI, writes) the scenario's transcripts.
pub fn check(scenario: &str, chat: &Chat) {
    let Some(dir) = dir(scenario, chat.mode) else {
        return;
    };
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for person in chat.people() {
        let lines: Vec<&Line> = chat.lines.iter().filter(|l| l.person == person).collect();
        files.insert(
            format!("{}.md", chat.file_name(&person)),
            render(scenario, chat.mode, chat, &person, &lines),
        );
    }
    let update = std::env::var("UPDATE_TRANSCRIPTS").is_ok_and(|v| v == "1")
        && std::env::var("CI").map_or(true, |v| v != "true");
    if update {
        std::fs::create_dir_all(&dir).expect("transcript dir");
        for entry in std::fs::read_dir(&dir).expect("dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_file() && !files.contains_key(name) {
                std::fs::remove_file(&path).expect("remove a stale transcript");
            }
        }
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).expect("write transcript");
        }
        return;
    }
    let mut differ = Vec::new();
    for (name, text) in &files {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(old) if &old == text => {}
            Ok(old) => differ.push(format!(
                "{} changed (first difference at line {})",
                path.display(),
                first_difference(&old, text)
            )),
            Err(_) => differ.push(format!("{} is missing", path.display())),
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.path().is_file() && !files.contains_key(&name) {
                differ.push(format!("{} is no longer produced", entry.path().display()));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "the transcripts of “{scenario}” ({}) changed; review the change and run \
         `UPDATE_TRANSCRIPTS=1 cargo test --test api conversation::` to accept it:\n{}",
        chat.mode.label(),
        differ.join("\n")
    );
}

fn first_difference(a: &str, b: &str) -> usize {
    a.lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.lines().count().min(b.lines().count()))
        + 1
}

/// A card input as the card shows it.
fn input_label(name: &str) -> &str {
    match name {
        "units" => "配合单位及协同方向",
        "path_and_basis" => "解决路径及政策依据",
        "reason" => "理由",
        "note" => "说明",
        "contact_name" => "联系人",
        "position" => "职务",
        "phone" => "电话",
        "help" => "协助事项",
        other => other,
    }
}

//! `tiaochu calendar show|load`: the admin's view of the holiday data and the way to add next
//! year's without a redeploy. The State Council publishes each schedule in the autumn; until a
//! year is loaded its deadlines are provisional (docs/spec.md → Clocks), and loading it recomputes
//! the open deadlines in the database.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use jiff::civil::Date;

use crate::calendar::{Calendar, YearData, date_range, month_day, weekday_name};
use crate::card_secrets::CardSecrets;
use crate::clock::{Clock, SystemClock};
use crate::clock_upkeep;
use crate::dispatch::Dispatch;
use crate::engine::Engine;
use crate::roster::Roster;
use crate::settings::Settings;
use crate::store::Store;

#[derive(clap::Subcommand, Debug)]
pub enum CalendarCommand {
    /// 显示某年的节假日与调休安排及每月工作日数
    Show { year: i16 },
    /// 校验并载入一年的节假日文件（复制到 [calendar] dir）
    Load { file: PathBuf },
}

/// `show`: 0, or 1 when the year is not loaded. `load`: 0 when written (and the open deadlines
/// recomputed) or already identical, 1 when the file is invalid or another file in the
/// directory holds the same year.
/// Unreadable files or directories are errors (exit 2).
pub fn run(settings: &Settings, cmd: &CalendarCommand) -> anyhow::Result<i32> {
    match cmd {
        CalendarCommand::Show { year } => show(settings, *year),
        CalendarCommand::Load { file } => load(settings, file),
    }
}

fn show(settings: &Settings, year: i16) -> anyhow::Result<i32> {
    let calendar = settings.load_calendar()?;
    let Some(data) = calendar.year_data(year) else {
        let loaded: Vec<String> = calendar.years().iter().map(i16::to_string).collect();
        println!(
            "{year} 年节假日安排尚未载入（目录 {}，已载入：{}）。",
            settings.calendar.dir.display(),
            if loaded.is_empty() {
                "无".to_string()
            } else {
                loaded.join("、")
            }
        );
        println!("在载入之前，涉及 {year} 年的期限按周一至周五计算并标为暂定。");
        println!("国务院办公厅发布通知后，用 `tiaochu calendar load 文件` 载入。");
        return Ok(1);
    };
    println!("{year} 年节假日安排");
    println!("来源：{}", data.source);
    println!("放假（{} 天）：", data.off_days.len());
    for h in calendar
        .holidays()
        .iter()
        .filter(|h| h.first.year() <= year && h.last.year() >= year)
    {
        // Holiday names are all Chinese, two columns per character on a terminal.
        let pad = " ".repeat(12usize.saturating_sub(2 * h.name.chars().count()));
        println!(
            "  {}{pad}{}（{} 天）",
            h.name,
            date_range(h.first, h.last, year),
            h.days()
        );
    }
    println!(
        "调休上班（{} 天）：{}",
        data.makeup_workdays.len(),
        days_list(&data.makeup_workdays, year)
    );
    let months: Vec<u32> = (1..=12)
        .map(|m| calendar.working_days_in_month(year, m))
        .collect();
    let listed: Vec<String> = months
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{} 月 {n}", i + 1))
        .collect();
    println!("每月工作日：{}", listed.join("、"));
    println!("全年工作日：{} 天", months.iter().sum::<u32>());
    println!(
        "工作时间：{}（{}）",
        calendar.hours().describe(),
        settings
            .hours
            .working_hours()
            .time_zone()
            .iana_name()
            .unwrap_or("未命名时区")
    );
    Ok(0)
}

fn load(settings: &Settings, file: &Path) -> anyhow::Result<i32> {
    let origin = file.display().to_string();
    let text =
        std::fs::read_to_string(file).with_context(|| format!("无法读取节假日文件 {origin}"))?;
    let new = match YearData::parse_json(&text, &origin) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("未载入。");
            return Ok(1);
        }
    };
    let dir = &settings.calendar.dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("无法创建节假日目录 {}", dir.display()))?;
    let target = dir.join(format!("cn-{}.json", new.year));

    if let Some(other) = other_file_with_year(dir, &target, new.year)? {
        eprintln!(
            "{} 中已有 {} 年的数据（{}）；同一年只能有一个文件，请先移除它。未载入。",
            dir.display(),
            new.year,
            other.display()
        );
        return Ok(1);
    }

    let old = match std::fs::read_to_string(&target) {
        Ok(old_text) => Some(YearData::parse_json(
            &old_text,
            &target.display().to_string(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).with_context(|| format!("无法读取已有文件 {}", target.display()));
        }
    };
    if let Some(Ok(old)) = &old
        && *old == new
    {
        println!(
            "{} 年节假日安排与已载入的 {} 相同，未改动。",
            new.year,
            target.display()
        );
        return Ok(0);
    }

    write_atomically(&target, &new.to_json())?;
    println!(
        "已载入 {} 年节假日安排：{} 个放假日、{} 个调休上班日（来源：{}），写入 {}。",
        new.year,
        new.off_days.len(),
        new.makeup_workdays.len(),
        new.source,
        target.display()
    );
    match &old {
        Some(Ok(old)) => {
            println!("已替换原有数据，变化如下：");
            for line in changes(old, &new) {
                println!("  {line}");
            }
        }
        Some(Err(e)) => println!("原文件无法解析，已被替换（{e}）。"),
        None => {}
    }
    match settings.load_calendar() {
        Err(e) => {
            eprintln!("警告：节假日目录整体载入失败，服务启动前请修正：{e}");
            Ok(0)
        }
        Ok(calendar) => recompute(settings, calendar, new.year),
    }
}

/// docs/spec.md → Clocks: loading a year's data recomputes the open deadlines. Counts every running
/// clock of the database's open cases again with the new data (telling the people whose
/// deadline moved) and stops the weekly "data missing" reminder for that year. The running
/// service keeps the calendar it started with until restarted; it checks every open deadline
/// again when it starts.
fn recompute(settings: &Settings, calendar: Calendar, year: i16) -> anyhow::Result<i32> {
    let path = &settings.store.path;
    if !path.exists() {
        println!(
            "数据库 {} 尚未创建，没有需要重新计算的期限。",
            path.display()
        );
        return Ok(0);
    }
    let store = Store::open(path).with_context(|| format!("无法打开数据库 {}", path.display()))?;
    let roster = Roster::load(&settings.roster.path)
        .with_context(|| format!("无法载入名单 {}", settings.roster.path.display()))?;
    // The service's own card secrets: a card this updates must keep the id it was sent with.
    let card_secrets = CardSecrets::load_or_create(&store, SystemClock.now())
        .with_context(|| format!("无法读取数据库 {} 中的卡片密钥", path.display()))?;
    let engine = Engine::new(
        store.clone(),
        Arc::new(roster),
        Arc::new(calendar),
        settings.sla.clone(),
        Dispatch::from_settings(&settings.dingtalk, card_secrets),
    );
    let report = clock_upkeep::recompute_open_blocking(&engine, SystemClock.now())
        .context("重新计算未到期的期限失败")?;
    let key = clock_upkeep::calendar_timer_key(year);
    store
        .write_blocking(move |tx| tx.cancel_timer(&key))
        .context("无法停止节假日数据提醒")?;
    if report.clocks == 0 {
        println!("未到期的期限均不受影响，无需重新计算。");
    } else {
        println!(
            "已按新数据重新计算 {} 个案件的 {} 个期限，其中 {} 个截止时间有变化（已通知相关人员）。",
            report.cases, report.clocks, report.moved
        );
    }
    println!("正在运行的服务请重启，以便用新数据计算新案件的期限。");
    Ok(0)
}

/// Another `*.json` in `dir` (not `target`) that holds `year`; files that do not parse are
/// skipped here, the final whole-directory check reports them.
fn other_file_with_year(dir: &Path, target: &Path, year: i16) -> anyhow::Result<Option<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("无法读取节假日目录 {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("无法读取节假日目录 {}", dir.display()))?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path == target || !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if YearData::parse_json(&text, name).is_ok_and(|d| d.year == year) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Temp file in the same directory, flushed, then renamed over the target, so a reader (the
/// service loading the directory) sees the old file or the new one, never half of one.
fn write_atomically(target: &Path, text: &str) -> anyhow::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("calendar.json");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("无法写入 {}", target.display()));
    }
    Ok(())
}

/// Chinese lines naming what changed between two versions of a year.
fn changes(old: &YearData, new: &YearData) -> Vec<String> {
    let mut lines = Vec::new();
    let diff = |a: &[Date], b: &[Date]| -> Vec<Date> {
        let b: BTreeSet<&Date> = b.iter().collect();
        a.iter().filter(|d| !b.contains(d)).copied().collect()
    };
    for (label, added, removed) in [
        (
            "放假日",
            diff(&new.off_days, &old.off_days),
            diff(&old.off_days, &new.off_days),
        ),
        (
            "调休上班日",
            diff(&new.makeup_workdays, &old.makeup_workdays),
            diff(&old.makeup_workdays, &new.makeup_workdays),
        ),
    ] {
        if !added.is_empty() {
            lines.push(format!("新增{label}：{}", days_list(&added, new.year)));
        }
        if !removed.is_empty() {
            lines.push(format!("取消{label}：{}", days_list(&removed, new.year)));
        }
    }
    if old.source != new.source {
        lines.push(format!("来源：{} → {}", old.source, new.source));
    }
    lines
}

/// `1/4（周日）、2/14（周六）`, or `无`.
fn days_list(days: &[Date], year: i16) -> String {
    if days.is_empty() {
        return "无".to_string();
    }
    days.iter()
        .map(|d| format!("{}（{}）", month_day(*d, year), weekday_name(d.weekday())))
        .collect::<Vec<_>>()
        .join("、")
}

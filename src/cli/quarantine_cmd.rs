//! `tiaochu quarantine [list|retry]`: the operator's view of the inbound messages and timers set
//! aside because processing them failed in a way a retry would not fix (issue 15), and the way to
//! put them back once the cause is fixed. Safe while the service runs (SQLite WAL): the service
//! picks a released message up at its next inbox pass and a released timer at its next scheduler
//! pass (within a minute). Reasons are printed with phone numbers masked.

use anyhow::Context;
use jiff::tz::TimeZone;

use super::outbox_cmd::{mask_phones, render_table};
use crate::settings::Settings;
use crate::store::{QuarantineId, QuarantineKind, QuarantinedRow, Store};

#[derive(clap::Subcommand, Debug)]
pub enum QuarantineCommand {
    /// 列出被隔离的消息和定时任务（最早隔离的在前）
    List {
        /// 以 JSON 输出（每项一个对象），供脚本和监控使用
        #[arg(long)]
        json: bool,
    },
    /// 排除原因后，把被隔离的消息或定时任务放回队列重新处理
    Retry {
        /// 编号，如 inbox:12 或 timer:7（见 quarantine list）
        id: Option<String>,
        /// 放回全部被隔离的项
        #[arg(long)]
        all: bool,
    },
}

/// Runs the command; exit status 0 on success, 1 when `retry` changed nothing, 2 on a usage
/// error (through the caller's error path).
pub fn run(settings: &Settings, cmd: &QuarantineCommand) -> anyhow::Result<i32> {
    let path = &settings.store.path;
    if !path.exists() {
        anyhow::bail!(
            "数据库文件 {} 不存在，请检查配置 [store] path",
            path.display()
        );
    }
    let store = Store::open(path).with_context(|| format!("无法打开数据库 {}", path.display()))?;
    match cmd {
        QuarantineCommand::List { json } => {
            let rows = store.read_blocking(|r| r.quarantined(usize::MAX))?;
            if *json {
                let masked: Vec<QuarantinedRow> = rows
                    .into_iter()
                    .map(|mut row| {
                        row.reason = mask_phones(&row.reason);
                        row
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&masked)?);
            } else {
                let tz = settings.hours.working_hours().time_zone().clone();
                print!("{}", render_list(&rows, &tz));
            }
            Ok(0)
        }
        QuarantineCommand::Retry { id, all } => match (id, all) {
            (Some(_), true) | (None, false) => {
                anyhow::bail!("请给出编号（如 inbox:12），或使用 --all（二者选一）")
            }
            (None, true) => {
                let n = store.write_blocking(|tx| tx.release_all_quarantined())?;
                println!("已将 {n} 项放回队列，服务会重新处理");
                Ok(0)
            }
            (Some(id), false) => {
                let id: QuarantineId = id.parse().map_err(anyhow::Error::msg)?;
                let released = store.write_blocking(move |tx| tx.release_quarantined(id))?;
                if released {
                    let when = match id.kind {
                        QuarantineKind::Inbox => "服务会立即重新处理",
                        QuarantineKind::Timer => "服务会在一分钟内重新触发",
                    };
                    println!("{id} 已放回队列，{when}");
                    Ok(0)
                } else {
                    eprintln!("{id} 不在隔离区中（已处理、已放回或编号有误），未改动");
                    Ok(1)
                }
            }
        },
    }
}

fn render_list(rows: &[QuarantinedRow], tz: &TimeZone) -> String {
    if rows.is_empty() {
        return "隔离区中没有消息或定时任务\n".to_string();
    }
    let mut table = vec![vec![
        "编号".to_string(),
        "对象".to_string(),
        "次数".to_string(),
        "隔离时间".to_string(),
        "原因".to_string(),
    ]];
    for row in rows {
        let what = match row.id.kind {
            QuarantineKind::Inbox => format!("消息（{}）", row.what),
            QuarantineKind::Timer => format!("定时（{}）", row.what),
        };
        table.push(vec![
            row.id.to_string(),
            what,
            row.attempts.to_string(),
            row.quarantined_at
                .to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string(),
            mask_phones(&row.reason),
        ]);
    }
    let mut out = render_table(&table);
    out.push_str(&format!(
        "共 {} 项。排除原因后重新处理：tiaochu quarantine retry <编号>，或 --all\n",
        rows.len()
    ));
    out
}

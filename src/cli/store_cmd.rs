//! `tiaochu migrate` and `tiaochu backup FILE`: the admin's two database commands. Both work on
//! the file named by `[store] path`, and both are safe while the service is running. `migrate`
//! also rebuilds the similar-case index from the cases (src/casebook.rs).

use std::path::PathBuf;

use anyhow::Context;

use crate::casebook;
use crate::settings::Settings;
use crate::store::{self, BackupReport, Store};

/// Opens (creating if needed, an empty file included) the database and brings its schema up to
/// date; prints what it did.
pub fn migrate(settings: &Settings) -> anyhow::Result<i32> {
    let path = &settings.store.path;
    let store = Store::open_initialising(path)
        .with_context(|| format!("数据库 {} 迁移失败", path.display()))?;
    let report = store.migration_report();
    if report.before == report.after {
        println!(
            "数据库 {} 已是最新结构（版本 {}）",
            path.display(),
            report.after
        );
    } else if report.before == 0 {
        println!(
            "已创建数据库 {}（结构版本 {}）",
            path.display(),
            report.after
        );
    } else {
        println!(
            "数据库 {} 已从结构版本 {} 升级到 {}",
            path.display(),
            report.before,
            report.after
        );
    }
    let indexed = store
        .write_blocking(casebook::rebuild)
        .context("相似案例索引重建失败")?;
    println!("相似案例索引已重建（{indexed} 个案件）");
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// 备份文件路径（不能已存在）
    pub dest: PathBuf,
}

/// Writes a verified copy of the database to `args.dest` and prints its contents. Safe while
/// the service is running.
pub fn backup(settings: &Settings, args: &BackupArgs) -> anyhow::Result<i32> {
    let source = &settings.store.path;
    if !source.exists() {
        anyhow::bail!(
            "数据库文件 {} 不存在，请检查配置 [store] path",
            source.display()
        );
    }
    // Not Store::open: a backup must neither create nor migrate the service's file.
    let report = store::backup_file(source, &args.dest)?;
    print!("{}", render_report(&report));
    Ok(0)
}

fn render_report(r: &BackupReport) -> String {
    let mut out = format!(
        "备份完成：{}\n大小：{}\n结构版本：{}\n完整性检查：通过\n",
        r.path.display(),
        human_size(r.bytes),
        r.schema_version
    );
    for (table, rows) in &r.rows {
        out.push_str(&format!("  {}：{rows} 条\n", table_label(table)));
    }
    out
}

fn table_label(table: &str) -> &str {
    match table {
        "cases" => "案件",
        "case_versions" => "申请版本",
        "case_units" => "参与单位",
        "events" => "事件记录",
        "inbox" => "收到的消息",
        "outbox" => "发出的消息",
        "timers" => "定时提醒",
        "cards" => "互动卡片",
        other => other,
    }
}

fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    if bytes >= MIB {
        format!("{:.1} MB（{bytes} 字节）", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{:.1} KB（{bytes} 字节）", bytes as f64 / KIB as f64)
    } else {
        format!("{bytes} 字节")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_in_chinese() {
        let text = render_report(&BackupReport {
            path: PathBuf::from("/tmp/b.db"),
            bytes: 2048,
            schema_version: 1,
            rows: vec![("cases", 3), ("events", 12)],
        });
        assert!(text.contains("备份完成：/tmp/b.db"), "{text}");
        assert!(text.contains("2.0 KB（2048 字节）"), "{text}");
        assert!(text.contains("案件：3 条"), "{text}");
        assert!(text.contains("事件记录：12 条"), "{text}");
    }
}

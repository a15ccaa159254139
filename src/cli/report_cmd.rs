//! `tiaochu report`: the statistics, 通报 and typical cases of a month, a quarter or a date range
//! (五(四), 五(五)), computed from the event log of the configured database and written as
//! Markdown, JSON, CSV (per unit) or an xlsx workbook. Safe while the service runs (SQLite WAL).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use jiff::civil::Date;

use crate::clock::{Clock, SystemClock};
use crate::report::{self, Period, typical};
use crate::settings::Settings;
use crate::store::Store;

#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("period").required(true).args(["month", "quarter", "from"])
))]
pub struct ReportArgs {
    /// 月统计，如 2026-11
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<String>,
    /// 季总结，如 2026-Q4
    #[arg(long, value_name = "YYYY-QN")]
    pub quarter: Option<String>,
    /// 自定义区间的第一天（含），如 2026-11-01；须同时给出 --to
    #[arg(long, value_name = "DATE", requires = "to")]
    pub from: Option<Date>,
    /// 自定义区间的最后一天（含）
    #[arg(long, value_name = "DATE", requires = "from")]
    pub to: Option<Date>,
    /// 输出格式：md（Markdown）、xlsx（Excel，须给出 --out）、csv（分单位统计）、json
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    /// 写入文件（默认输出到终端）
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// 只输出“热线故事汇”典型案例草稿（Markdown）
    #[arg(long, conflicts_with = "format")]
    pub stories: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Md,
    Xlsx,
    Csv,
    Json,
}

/// The period the arguments name.
pub fn period(args: &ReportArgs) -> anyhow::Result<Period> {
    if let Some(m) = &args.month {
        return Period::parse_month(m)
            .with_context(|| format!("--month 应为 YYYY-MM（如 2026-11），收到“{m}”"));
    }
    if let Some(q) = &args.quarter {
        return Period::parse_quarter(q)
            .with_context(|| format!("--quarter 应为 YYYY-QN（如 2026-Q4），收到“{q}”"));
    }
    match (args.from, args.to) {
        (Some(first), Some(last)) => {
            Period::range(first, last).with_context(|| format!("--to {last} 早于 --from {first}"))
        }
        _ => anyhow::bail!("请用 --month、--quarter 或 --from/--to 指定统计期间"),
    }
}

/// Runs the command: exit status 0, or an error (status 2 through the caller).
pub fn run(settings: &Settings, args: &ReportArgs) -> anyhow::Result<i32> {
    let period = period(args)?;
    if args.format == ReportFormat::Xlsx && args.out.is_none() {
        anyhow::bail!("xlsx 格式须用 --out 指定输出文件，如 --out 报表.xlsx");
    }
    let path = &settings.store.path;
    if !path.exists() {
        anyhow::bail!(
            "数据库文件 {} 不存在，请检查配置 [store] path",
            path.display()
        );
    }
    let store = Store::open(path).with_context(|| format!("无法打开数据库 {}", path.display()))?;
    let calendar = settings.load_calendar()?;
    // 生成时间 on the service clock: in sandbox mode that is the clock panel's moved time
    // (principle 9), as the dashboard's workbook shows it.
    let mut now = SystemClock.now();
    if settings.dingtalk.mode == crate::settings::DingtalkMode::Sandbox {
        let offset = store.read_blocking(|r| r.sandbox_offset())?;
        if offset.is_positive() {
            now = now.checked_add(offset).unwrap_or(now);
        }
    }
    let report = store.read_blocking(|r| report::build(r, &calendar, &period, now))?;
    let bytes: Vec<u8> = if args.stories {
        typical::markdown(&report.period_label, &report.stories).into_bytes()
    } else {
        match args.format {
            ReportFormat::Md => report::markdown::full(&report, &calendar).into_bytes(),
            ReportFormat::Csv => report::csv::per_unit(&report).into_bytes(),
            ReportFormat::Json => {
                let mut v = serde_json::to_vec_pretty(&report)?;
                v.push(b'\n');
                v
            }
            ReportFormat::Xlsx => report::xlsx::workbook(&report, &calendar)?,
        }
    };
    match &args.out {
        Some(file) => {
            std::fs::write(file, &bytes).with_context(|| format!("无法写入 {}", file.display()))?;
            eprintln!(
                "已生成{}{}：{}",
                report.period_label,
                report.period.title(),
                file.display()
            );
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(0)
}

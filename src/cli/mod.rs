//! The command line: one subcommand per file. `main.rs` only parses arguments and calls here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::settings::Settings;

pub mod calendar_cmd;
pub mod check_config;
pub mod check_online;
pub mod deadline;
pub mod healthcheck;
pub mod onboard_cmd;
pub mod outbox_cmd;
pub mod parse_cmd;
pub mod quarantine_cmd;
pub mod report_cmd;
pub mod roster_cmd;
pub mod roster_sync;
pub mod serve;
pub mod similar_cmd;
pub mod store_cmd;

#[derive(Parser, Debug)]
#[command(
    name = "tiaochu",
    version,
    about = "甘州区 12345 热线疑难工单联合调处（钉钉机器人）"
)]
pub struct Cli {
    /// 配置文件（在内置默认配置之上覆盖；环境变量 TIAOCHU_<段>__<键> 再覆盖它）
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// 启动服务：接收钉钉消息、健康检查（按 Ctrl-C 停止）
    Serve(serve::ServeArgs),
    /// 解析一份联合调处申请（与机器人收到时的解析完全相同）
    Parse(parse_cmd::ParseArgs),
    /// 计算工作日/工作小时截止时间（含法定节假日与调休）
    Deadline(deadline::DeadlineArgs),
    /// 节假日数据：查看或载入某一年
    #[command(subcommand)]
    Calendar(calendar_cmd::CalendarCommand),
    /// 检查配置、名单与节假日数据（--online：连接钉钉逐项验证，不给任何人发消息）
    CheckConfig(check_config::CheckConfigArgs),
    /// 名单：导出当前生效的名单；按钉钉通讯录绑定账号（sync）
    #[command(subcommand)]
    Roster(roster_cmd::RosterCommand),
    /// 询问正在运行的服务是否健康（容器健康检查用；健康时退出码 0）
    Healthcheck,
    /// 创建或升级数据库
    Migrate,
    /// 在线备份数据库并校验备份文件
    Backup(store_cmd::BackupArgs),
    /// 发送队列：查看、查看发送失败的消息、重新发送
    #[command(subcommand)]
    Outbox(outbox_cmd::OutboxCommand),
    /// 隔离区：查看处理失败而被隔离的消息和定时任务，排除原因后重新处理
    #[command(subcommand)]
    Quarantine(quarantine_cmd::QuarantineCommand),
    /// 统计报表：月统计、季总结、通报、典型案例（md / xlsx / csv / json）
    Report(report_cmd::ReportArgs),
    /// 相似案例：列出与一份申请最相似的往期案例（数据库中的案件，或 --corpus 目录中的申请文件）
    Similar(similar_cmd::SimilarArgs),
    /// 启动联络员指定：请尚无联络员的单位分管领导指定联络员（--status 查看进度）
    Onboard(onboard_cmd::OnboardArgs),
}

/// Runs the parsed command; the result is the process exit status.
pub fn run(cli: Cli) -> i32 {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("配置错误：{e}");
            return 2;
        }
    };
    let result = match &cli.command {
        Command::Serve(args) => serve::run(&settings, args),
        Command::Parse(args) => parse_cmd::run(&settings, args),
        Command::Deadline(args) => deadline::run(&settings, args),
        Command::Calendar(cmd) => calendar_cmd::run(&settings, cmd),
        Command::CheckConfig(args) => check_config::run(&settings, args),
        Command::Roster(cmd) => roster_cmd::run(&settings, cmd),
        Command::Healthcheck => healthcheck::run(&settings),
        Command::Migrate => store_cmd::migrate(&settings),
        Command::Backup(args) => store_cmd::backup(&settings, args),
        Command::Outbox(cmd) => outbox_cmd::run(&settings, cmd),
        Command::Quarantine(cmd) => quarantine_cmd::run(&settings, cmd),
        Command::Report(args) => report_cmd::run(&settings, args),
        Command::Similar(args) => similar_cmd::run(&settings, args),
        Command::Onboard(args) => onboard_cmd::run(&settings, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("错误：{e:#}");
            2
        }
    }
}

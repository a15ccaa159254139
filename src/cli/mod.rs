//! The command line: one subcommand per file. `main.rs` only parses arguments and calls here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::settings::Settings;

pub mod check_config;

#[derive(Parser, Debug)]
#[command(name = "tiaochu", version, about = "甘州区 12345 热线疑难工单联合调处（钉钉机器人）")]
pub struct Cli {
    /// 配置文件（在内置默认配置之上覆盖；环境变量 TIAOCHU_<段>__<键> 再覆盖它）
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// 检查配置、名单与节假日数据
    CheckConfig,
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
        Command::CheckConfig => check_config::run(&settings),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("错误：{e:#}");
            2
        }
    }
}

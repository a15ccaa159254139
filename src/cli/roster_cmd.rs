//! `tiaochu roster export`: the roster in force — `config/roster.toml` with the changes leaders
//! and admins made in DingTalk (设置联络员, 更换分管领导, 绑定 …) applied — written back in the file
//! format, so an admin can commit it as the new file. `tiaochu roster sync` lives in
//! [`super::roster_sync`].

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::roster::{Person, Roster};
use crate::settings::Settings;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum RosterCommand {
    /// 导出当前生效的名单（含钉钉中所做的变更），格式同 config/roster.toml
    Export {
        /// 写入文件；省略时输出到标准输出
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// 按姓名在钉钉通讯录中查找尚未绑定钉钉账号的人员；默认只试运行，--apply 才保存绑定
    Sync(super::roster_sync::SyncArgs),
}

pub fn run(settings: &Settings, cmd: &RosterCommand) -> anyhow::Result<i32> {
    let out = match cmd {
        RosterCommand::Export { out } => out,
        RosterCommand::Sync(args) => return super::roster_sync::run(settings, args),
    };
    let effective = effective_roster(settings)?;
    let text = format!(
        "# 当前生效的名单（{} 与数据库中在钉钉里所做的变更合并），由 `tiaochu roster export` 生成。\n\n{}",
        settings.roster.path.display(),
        effective.to_toml()
    );
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("无法写入 {}", path.display()))?;
            eprintln!("已导出到 {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(0)
}

/// The roster in force: the file with the changes stored in the database laid over it; the
/// file alone while the database does not exist (nothing is created here).
pub fn effective_roster(settings: &Settings) -> anyhow::Result<Roster> {
    let file = Roster::load(&settings.roster.path)?;
    if !settings.store.path.exists() {
        return Ok(file);
    }
    let store = Store::open(&settings.store.path)?;
    let rows = store.read_blocking(|r| r.roster_overrides())?;
    let changed = rows
        .iter()
        .map(Person::from_override)
        .collect::<Result<Vec<_>, String>>()
        .map_err(anyhow::Error::msg)?;
    Ok(file.with_overrides(&changed))
}

//! `tiaochu onboard [--status]`: the admin's way to do what the hotline head's `启动 名单` does
//! (ask every unit leader without a liaison to name one, with daily reminders), or with
//! `--status` to print `名单 进度`. It writes the same rows in the same transaction as the chat
//! command; a running service sends the queued messages and fires the reminders.

use std::sync::Arc;

use anyhow::Context;

use crate::card_secrets::CardSecrets;
use crate::clock::{Clock, SystemClock};
use crate::dispatch::Dispatch;
use crate::engine::{Engine, EngineError};
use crate::onboarding;
use crate::roster::{Role, Roster};
use crate::settings::Settings;
use crate::store::Store;

/// Who the onboarding rows name as the starter of a run from the command line.
pub const ACTOR: &str = "命令行";

#[derive(clap::Args, Debug)]
pub struct OnboardArgs {
    /// 只查看各单位指定联络员的进度（与钉钉中“名单 进度”相同），不发送任何消息
    #[arg(long)]
    pub status: bool,
}

pub fn run(settings: &Settings, args: &OnboardArgs) -> anyhow::Result<i32> {
    let path = &settings.store.path;
    let store = Store::open(path).with_context(|| format!("无法打开数据库 {}", path.display()))?;
    let file = Roster::load(&settings.roster.path)?;
    let calendar = settings.load_calendar()?;
    let now = SystemClock.now();
    let card_secrets = CardSecrets::load_or_create(&store, now)
        .with_context(|| format!("无法读取数据库 {} 中的卡片密钥", path.display()))?;
    let engine = Engine::new(
        store.clone(),
        Arc::new(file),
        Arc::new(calendar),
        settings.sla.clone(),
        Dispatch::from_settings(&settings.dingtalk, card_secrets),
    );
    let status = args.status;
    let text = store
        .write_blocking(move |tx| -> Result<_, EngineError> {
            engine.reload_roster_in_tx(tx)?;
            // The CLI is an admin's tool: it reads and suggests as an admin.
            let roles = [Role::Admin];
            if status {
                let progress = onboarding::progress_in_tx(&engine, tx, &roles)?;
                return Ok(progress.markdown);
            }
            let key = format!("cli/{}", now.as_millisecond());
            let started = onboarding::start_in_tx(&engine, tx, ACTOR, &key, now)?;
            Ok(started.describe(&roles))
        })
        .context("操作未完成，数据库未做任何修改")?;
    println!("{}", plain(&text));
    if !status {
        eprintln!("消息已放入发送队列，由正在运行的服务（tiaochu serve）发送。");
    }
    Ok(0)
}

/// The chat markdown as terminal text: bold markers and escapes dropped.
fn plain(markdown: &str) -> String {
    markdown.replace("**", "").replace('\\', "")
}

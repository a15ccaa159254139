//! `tiaochu check-config`: loads every configured input the service needs (settings, roster,
//! calendar) and reports problems as errors and things that will stop messages from arriving as
//! warnings, so an admin can fix them before starting the service.

use crate::calendar::Calendar;
use crate::card_secrets::CardSecrets;
use crate::dispatch::card_callbacks_over_http;
use crate::roster::{Person, Roster};
use crate::settings::{DingtalkMode, Settings};
use crate::store::Store;

#[derive(clap::Args, Debug)]
pub struct CheckConfigArgs {
    /// 再连接钉钉逐项验证（凭据、机器人、卡片模板与回调、名单账号、节假日），不给任何人发消息
    #[arg(long)]
    pub online: bool,
}

/// Exit 0 when the service can start (warnings allowed), 1 when something must be fixed.
pub fn run(settings: &Settings, args: &CheckConfigArgs) -> anyhow::Result<i32> {
    let mut errors: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();

    match Roster::load(&settings.roster.path) {
        Ok(roster) => {
            println!(
                "名单 {}：{} 个单位，{} 人",
                settings.roster.path.display(),
                roster.units().len(),
                roster.people().len()
            );
            warnings.extend(roster.warnings());
            match stored_differences(settings, &roster) {
                Ok(diff) if !diff.is_empty() => {
                    println!(
                        "数据库 {} 中有 {} 人的名单已在钉钉中调整（以数据库为准；`tiaochu roster export` 可写回文件）：",
                        settings.store.path.display(),
                        diff.len()
                    );
                    for d in &diff {
                        println!("  {d}");
                    }
                }
                Ok(_) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(e) => errors.push(e.to_string()),
    }

    match settings.load_calendar() {
        Ok(calendar) => {
            let years = calendar.years();
            println!(
                "节假日数据 {}：{}",
                settings.calendar.dir.display(),
                years
                    .iter()
                    .map(|y| format!("{y} 年"))
                    .collect::<Vec<_>>()
                    .join("、")
            );
            let today = jiff::Zoned::now().with_time_zone(calendar.time_zone().clone());
            warnings.extend(missing_year_warning(&calendar, today.year(), today.month()));
        }
        Err(e) => errors.push(e.to_string()),
    }

    let dt = &settings.dingtalk;
    if dt.mode != DingtalkMode::Sandbox {
        for (key, empty) in [
            ("app_key", dt.app_key.is_empty()),
            ("app_secret", dt.app_secret.is_empty()),
            ("robot_code", dt.robot_code.is_empty()),
        ] {
            if empty {
                errors.push(format!(
                    "[dingtalk] mode 不是 sandbox，但 {key} 未配置（可用环境变量 TIAOCHU_DINGTALK__{}）",
                    key.to_uppercase()
                ));
            }
        }
    }

    if let Err(e) = crate::dingtalk::inbound::CallbackKey::from_setting(&dt.callback_aes_key) {
        errors.push(e.to_string());
    }
    if !dt.callback_aes_key.is_empty() && dt.mode != DingtalkMode::Http {
        warnings.push(
            "[dingtalk] callback_aes_key 只用于 http 模式的机器人回调，当前模式下不起作用".into(),
        );
    }

    if dt.mode == DingtalkMode::Http
        && !dt.card_template_id.is_empty()
        && dt.card_callback_route_key.is_empty()
    {
        errors.push(
            "[dingtalk] mode 为 http 且配置了 card_template_id，但 card_callback_route_key 未配置：\
             卡片按钮的点击将无处送达。请设置 card_callback_route_key（如 hotline_cb）并登记卡片回调地址\
             （见 deploy/dingtalk/README.md），或改用 stream 模式"
                .to_string(),
        );
    }
    if card_callbacks_over_http(dt) {
        match card_callback_path(settings) {
            Ok(Some(path)) => println!(
                "卡片回调地址（card/callbacks/register 的 callbackUrl，路由键 {}）：https://<公网地址>{path}\n  \
                 该地址含密钥，只登记到钉钉，勿写入工单或聊天。",
                dt.card_callback_route_key
            ),
            Ok(None) => println!(
                "卡片回调地址含服务生成的密钥，数据库 {} 尚未创建：先运行 `tiaochu migrate`（或启动一次服务），再运行 check-config 查看。",
                settings.store.path.display()
            ),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Some(refusal) = crate::settings::sandbox_exposure(settings, settings.server.listen.ip())
    {
        errors.push(refusal);
    }

    if args.online {
        errors.extend(super::check_online::run(settings));
    }
    for w in &warnings {
        println!("警告：{w}");
    }
    for e in &errors {
        eprintln!("错误：{e}");
    }
    if errors.is_empty() {
        println!("配置检查通过（{} 条警告）。", warnings.len());
        Ok(0)
    } else {
        eprintln!(
            "配置检查未通过：{} 个错误，{} 条警告。",
            errors.len(),
            warnings.len()
        );
        Ok(1)
    }
}

/// How the roster in force (file + changes made in DingTalk, kept in the store) differs from
/// `file`; empty when the store does not exist yet or holds no change.
fn stored_differences(settings: &Settings, file: &Roster) -> anyhow::Result<Vec<String>> {
    if !settings.store.path.exists() {
        return Ok(Vec::new());
    }
    let store = Store::open(&settings.store.path)?;
    let rows = store.read_blocking(|r| r.roster_overrides())?;
    let mut changed = Vec::with_capacity(rows.len());
    for row in &rows {
        changed.push(Person::from_override(row).map_err(anyhow::Error::msg)?);
    }
    Ok(file.differences(&file.with_overrides(&changed)))
}

/// The secret path of the HTTP card callback, generated now if the service never ran on this
/// database; None while the database does not exist (check-config creates no database).
fn card_callback_path(settings: &Settings) -> anyhow::Result<Option<String>> {
    if !settings.store.path.exists() {
        return Ok(None);
    }
    let store = Store::open(&settings.store.path)?;
    Ok(Some(
        CardSecrets::load_or_create(&store, jiff::Timestamp::now())?.callback_path(),
    ))
}

/// The current year's data is needed now; next year's from November, when the State Council
/// usually publishes it, so that deadlines reaching January are not provisional for long.
fn missing_year_warning(calendar: &Calendar, year: i16, month: i8) -> Vec<String> {
    let mut out = Vec::new();
    if !calendar.has_year(year) {
        out.push(format!(
            "尚未载入 {year} 年节假日安排：所有期限按周一至周五暂定计算。请用 `tiaochu calendar load` 载入"
        ));
    }
    if month >= 11 && !calendar.has_year(year + 1) {
        out.push(format!(
            "尚未载入 {} 年节假日安排：跨年的期限将标注为暂定。国务院通知发布后请用 `tiaochu calendar load` 载入",
            year + 1
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::WorkingHours;

    #[test]
    fn next_year_is_asked_for_from_november() {
        let calendar = Calendar::load_dir(
            std::path::Path::new("config/calendar"),
            WorkingHours::default(),
        )
        .expect("shipped calendar");
        assert!(missing_year_warning(&calendar, 2026, 10).is_empty());
        let w = missing_year_warning(&calendar, 2026, 11);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("2027 年"), "{w:?}");
        assert_eq!(missing_year_warning(&calendar, 2027, 3).len(), 1);
    }
}

//! `tiaochu check-config --online`: proves, with the real settings, that each part DingTalk
//! plays works before go-live — without messaging anyone. One line per part: 通过, 失败 (what
//! would fail in production, why, and the fix), 无法确认 (what cannot be checked without
//! sending, said as such) or 提示.
//!
//! What is checked, and how:
//! - credentials: an access token is fetched (`oauth2/accessToken`);
//! - the robot code: `robot/plugins/query` (read-only; needs `Robot.SingleChat.ReadWrite`, which
//!   sending does not — without it the line says it cannot tell). Whether the app may send
//!   (`qyapi_robot_sendmsg`, the visible range) shows only on a real send: said, not pretended;
//! - the card template: a card instance is created with it and delivered to nobody
//!   (`POST /v1.0/card/instances`, no space); no template is the ActionCard mode;
//! - the card callback route key: DingTalk has a register call and no query, so a configured key
//!   cannot be confirmed online — said so, with how to verify; a missing one fails;
//! - the roster: people without a DingTalk account (messages to them fail);
//! - the holidays: this year's data must be loaded, next year's is asked for.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::dingtalk::api::{DingtalkClient, Timeouts, missing_permissions, patiently};
use crate::dingtalk::errors::SendError;
use crate::dingtalk::payload::CardCallback;
use crate::settings::{DingtalkMode, Settings};

use super::roster_cmd::effective_roster;
use super::roster_sync::permission_message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    Unknown,
    Note,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "通过",
            Status::Fail => "失败",
            Status::Unknown => "无法确认",
            Status::Note => "提示",
        }
    }
}

struct Line {
    status: Status,
    part: &'static str,
    text: String,
}

impl Line {
    fn new(status: Status, part: &'static str, text: impl Into<String>) -> Line {
        Line {
            status,
            part,
            text: text.into(),
        }
    }
}

/// Runs the online checks, prints one line each, and returns one short summary per failure
/// (for check-config's error count); empty when nothing would fail in production.
pub fn run(settings: &Settings) -> Vec<String> {
    println!("\n在线检查（连接钉钉，不给任何人发消息）：");
    let mut lines = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(dingtalk_lines(settings)),
        Err(e) => vec![Line::new(
            Status::Fail,
            "运行环境",
            format!("无法启动异步运行时：{e}"),
        )],
    };
    lines.push(roster_line(settings));
    lines.extend(holiday_lines(settings));
    let mut failures = Vec::new();
    for line in &lines {
        println!(
            "  [{}] {}：{}",
            line.status.label(),
            line.part,
            line.text.replace('\n', "\n        ")
        );
        if line.status == Status::Fail {
            failures.push(format!("在线检查未通过：{}", line.part));
        }
    }
    failures
}

async fn dingtalk_lines(settings: &Settings) -> Vec<Line> {
    let dt = &settings.dingtalk;
    let mut lines = Vec::new();
    if dt.mode == DingtalkMode::Sandbox {
        lines.push(Line::new(
            Status::Fail,
            "运行模式",
            "[dingtalk] mode 为 sandbox：服务不会连接钉钉。\n修复：上线前设为 stream（推荐，无需公网地址）或 http（TIAOCHU_DINGTALK__MODE）。",
        ));
    } else {
        lines.push(Line::new(Status::Pass, "运行模式", mode_name(dt.mode)));
    }
    if dt.app_key.is_empty() || dt.app_secret.is_empty() {
        lines.push(Line::new(
            Status::Fail,
            "应用凭据",
            "app_key 或 app_secret 未配置，钉钉部分均未检查。\n修复：在开发者后台“凭证与基础信息”中取得 AppKey、AppSecret，填入 TIAOCHU_DINGTALK__APP_KEY、TIAOCHU_DINGTALK__APP_SECRET。",
        ));
        return lines;
    }
    let http = match Timeouts::default().http_client() {
        Ok(h) => h,
        Err(e) => {
            lines.push(Line::new(
                Status::Fail,
                "应用凭据",
                format!("无法创建 HTTP 客户端：{e}"),
            ));
            return lines;
        }
    };
    let client = DingtalkClient::new(dt, http, Arc::new(SystemClock));
    match patiently(|| client.access_token()).await {
        Ok(_) => lines.push(Line::new(
            Status::Pass,
            "应用凭据",
            format!("已用 app_key {} 取得 access token", dt.app_key),
        )),
        Err(e) => {
            let fix = match &e {
                SendError::Permanent { .. } => {
                    "修复：在开发者后台“凭证与基础信息”核对 AppKey 与 AppSecret（AppSecret 重置后须同时更新 TIAOCHU_DINGTALK__APP_SECRET）。"
                }
                _ => "修复：检查本机能否访问 api.dingtalk.com:443（防火墙、代理、DNS），稍后重试。",
            };
            lines.push(Line::new(
                Status::Fail,
                "应用凭据",
                format!("未能取得 access token：{e}\n{fix}"),
            ));
            lines.push(Line::new(
                Status::Unknown,
                "机器人、卡片",
                "未检查：没有可用的 access token",
            ));
            return lines;
        }
    }
    lines.extend(robot_lines(settings, &client).await);
    let (template, callback) = card_lines(settings, &client).await;
    lines.push(template);
    lines.push(callback);
    lines
}

fn mode_name(mode: DingtalkMode) -> &'static str {
    match mode {
        DingtalkMode::Stream => "stream（消息与卡片点击经长连接送达）",
        DingtalkMode::Http => "http（消息经 HTTPS 回调送达）",
        DingtalkMode::Sandbox => "sandbox",
    }
}

async fn robot_lines(settings: &Settings, client: &DingtalkClient) -> Vec<Line> {
    let dt = &settings.dingtalk;
    // As the dispatcher sends: an internal app's robotCode is normally its AppKey (§0).
    let code = if dt.robot_code.is_empty() {
        dt.app_key.as_str()
    } else {
        dt.robot_code.as_str()
    };
    let mut lines = Vec::new();
    let checked = patiently(|| client.query_robot(code)).await;
    lines.push(match checked {
        Ok(()) => Line::new(
            Status::Pass,
            "机器人",
            format!("钉钉认得 robot_code {code}"),
        ),
        Err(e) if missing_permissions(&e).is_some() => Line::new(
            Status::Unknown,
            "机器人",
            format!(
                "robot_code {code} 无法在不发消息的情况下确认：唯一只读的查询接口（robot/plugins/query）需要 \
                 Robot.SingleChat.ReadWrite（机器人单聊读写权限），本服务发消息并不需要它。\n\
                 可开通该权限后重新检查，或上线后给机器人单聊发送“帮助”验证。"
            ),
        ),
        Err(e @ SendError::Permanent { .. }) => Line::new(
            Status::Fail,
            "机器人",
            format!(
                "钉钉不认 robot_code {code}：{e}\n修复：开发者后台 → 本应用 → 应用能力 → 机器人，\
                 把 RobotCode（企业内部应用一般等于 AppKey）填入 TIAOCHU_DINGTALK__ROBOT_CODE，并确认机器人已发布。"
            ),
        ),
        Err(e) => Line::new(
            Status::Unknown,
            "机器人",
            format!("查询 robot_code 时钉钉暂时不可用：{e}；请稍后重新检查。"),
        ),
    });
    lines.push(Line::new(
        Status::Note,
        "发送权限",
        "能否发消息（企业内机器人发送消息权限 qyapi_robot_sendmsg、应用可见范围）只有真正发送才能确认：\
         上线后请先在钉钉中与机器人单聊发送“帮助”，再请一位联络员发送“帮助”。",
    ));
    lines
}

/// The card template line and the card callback line.
async fn card_lines(settings: &Settings, client: &DingtalkClient) -> (Line, Line) {
    let dt = &settings.dingtalk;
    if dt.card_template_id.is_empty() {
        return (
            Line::new(
                Status::Pass,
                "卡片模板",
                "未配置卡片模板：机器人发 ActionCard 消息，按钮在单聊中发出文字命令（功能完整）。\
                 如果本想使用卡片模板，请按 deploy/dingtalk/README.md 创建并填入 TIAOCHU_DINGTALK__CARD_TEMPLATE_ID。",
            ),
            Line::new(
                Status::Pass,
                "卡片回调",
                "未配置卡片模板，没有卡片点击需要回调",
            ),
        );
    }
    let http_callback = dt.mode == DingtalkMode::Http;
    if http_callback && dt.card_callback_route_key.is_empty() {
        return (
            Line::new(
                Status::Unknown,
                "卡片模板",
                "未检查：http 模式缺少 card_callback_route_key（见下一行）",
            ),
            Line::new(
                Status::Fail,
                "卡片回调",
                "http 模式配置了卡片模板，但 card_callback_route_key 未配置：卡片按钮的点击将无处送达。\n\
                 修复：设置 TIAOCHU_DINGTALK__CARD_CALLBACK_ROUTE_KEY（如 hotline_cb）并按 deploy/dingtalk/README.md \
                 登记卡片回调地址；或改用 stream 模式。",
            ),
        );
    }
    let callback = if http_callback {
        CardCallback::Http {
            route_key: &dt.card_callback_route_key,
        }
    } else {
        CardCallback::Stream
    };
    let out_track_id = format!("tiaochu-check-{}", SystemClock.now().as_millisecond());
    let created =
        patiently(|| client.create_undelivered_card(&dt.card_template_id, &out_track_id, callback))
            .await;
    let template = match &created {
        Ok(()) => Line::new(
            Status::Pass,
            "卡片模板",
            format!(
                "钉钉接受模板 {}（以它建了一张不投递的卡片 {out_track_id}，没有人会收到）",
                dt.card_template_id
            ),
        ),
        Err(e) => match missing_permissions(e) {
            Some(named) => {
                let scopes = if named.is_empty() {
                    vec!["Card.Instance.Write".to_string()]
                } else {
                    named
                };
                Line::new(
                    Status::Fail,
                    "卡片模板",
                    permission_message("创建卡片（card/instances）", &scopes, e.reason())
                        .trim_start_matches("错误：")
                        .replace("再运行本命令", "再运行 check-config --online"),
                )
            }
            None if matches!(e, SendError::Permanent { .. }) => Line::new(
                Status::Fail,
                "卡片模板",
                format!(
                    "钉钉不接受卡片模板 {}：{e}\n修复：在卡片平台（open-dev.dingtalk.com/fe/card）确认模板已发布、属于本组织，\
                     把模板 ID（xxxx.schema）填入 TIAOCHU_DINGTALK__CARD_TEMPLATE_ID；或清空它改用 ActionCard 消息。",
                    dt.card_template_id
                ),
            ),
            None => Line::new(
                Status::Unknown,
                "卡片模板",
                format!("以模板建卡时钉钉暂时不可用：{e}；请稍后重新检查。"),
            ),
        },
    };
    let callback = if !http_callback {
        Line::new(
            Status::Pass,
            "卡片回调",
            "stream 模式：卡片点击经长连接送达，无需登记回调地址",
        )
    } else {
        let key = &dt.card_callback_route_key;
        let refused_key = created.as_ref().err().filter(|e| {
            let reason = e.reason().to_ascii_lowercase();
            matches!(e, SendError::Permanent { .. })
                && (reason.contains("callback") || reason.contains("routekey"))
        });
        match refused_key {
            Some(e) => Line::new(
                Status::Fail,
                "卡片回调",
                format!(
                    "钉钉拒绝了回调路由键 {key}：{e}\n修复：按 deploy/dingtalk/README.md 调用 card/callbacks/register 登记该路由键与回调地址。"
                ),
            ),
            None => Line::new(
                Status::Unknown,
                "卡片回调",
                format!(
                    "路由键 {key} 是否已在钉钉登记无法在线确认：钉钉开放平台只有登记接口（card/callbacks/register），\
                     没有查询接口。请确认已按 deploy/dingtalk/README.md 登记 check-config 打印的回调地址；\
                     上线后点一次卡片按钮即可验证（收不到点击即未登记或地址不通）。"
                ),
            ),
        }
    };
    (template, callback)
}

fn roster_line(settings: &Settings) -> Line {
    let roster = match effective_roster(settings) {
        Ok(r) => r,
        Err(e) => return Line::new(Status::Fail, "名单", format!("无法读取：{e:#}")),
    };
    let missing: Vec<String> = roster
        .people()
        .iter()
        .filter(|p| !p.reachable() && !p.departed)
        .map(|p| format!("{}（{}）", p.name, p.unit))
        .collect();
    if missing.is_empty() {
        return Line::new(
            Status::Pass,
            "名单",
            format!("{} 人都已绑定钉钉账号", roster.people().len()),
        );
    }
    const SHOWN: usize = 10;
    let mut shown = missing[..missing.len().min(SHOWN)].join("、");
    if missing.len() > SHOWN {
        shown.push_str(&format!(" 等（共 {} 人）", missing.len()));
    }
    Line::new(
        Status::Fail,
        "名单",
        format!(
            "{} 人没有钉钉账号（staff_id），发给他们的消息都会失败：{shown}\n\
             修复：运行 tiaochu roster sync（先试运行核对，再加 --apply），其余由管理员在钉钉中“绑定 姓名 @某人”或在名单中填写 staff_id。",
            missing.len()
        ),
    )
}

fn holiday_lines(settings: &Settings) -> Vec<Line> {
    let calendar = match settings.load_calendar() {
        Ok(c) => c,
        Err(e) => return vec![Line::new(Status::Fail, "节假日", format!("无法载入：{e}"))],
    };
    let today = SystemClock
        .now()
        .to_zoned(calendar.time_zone().clone())
        .date();
    let year = today.year();
    let mut lines = Vec::new();
    if calendar.has_year(year) {
        lines.push(Line::new(
            Status::Pass,
            "节假日",
            format!("{year} 年安排已载入"),
        ));
    } else {
        lines.push(Line::new(
            Status::Fail,
            "节假日",
            format!(
                "尚未载入 {year} 年节假日安排：所有期限都只能按周一至周五暂定计算。\n修复：按国务院通知写好 cn-{year}.json，用 tiaochu calendar load 载入。"
            ),
        ));
    }
    let next = year + 1;
    if calendar.has_year(next) {
        lines.push(Line::new(
            Status::Pass,
            "节假日",
            format!("{next} 年安排已载入"),
        ));
    } else {
        lines.push(Line::new(
            Status::Note,
            "节假日",
            format!(
                "尚未载入 {next} 年节假日安排：跨年的期限将标注为暂定。国务院通知（一般 10 月底至 12 月初）发布后用 tiaochu calendar load 载入。"
            ),
        ));
    }
    lines
}

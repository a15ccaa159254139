//! `tiaochu outbox [list|retry|dead]`: the admin's view of what went out and what failed, and
//! the one way to put a dead letter back in the queue. Safe while the service runs (SQLite
//! WAL). Prints no secret: payloads are reduced to a short summary with phone numbers masked,
//! and sessionWebhook URLs (which act as credentials) are never shown.

use anyhow::Context;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;

use crate::dingtalk::api::Channel;
use crate::dingtalk::payload::parse_session_target;
use crate::settings::Settings;
use crate::store::{OutboxRow, OutboxState, Store, StoreError};

/// Longest payload summary printed, in characters.
const SUMMARY_CHARS: usize = 40;
/// Longest error reason printed in the list (the dead view prints it whole).
const REASON_CHARS: usize = 30;

#[derive(clap::Subcommand, Debug)]
pub enum OutboxCommand {
    /// 列出发送队列（最新的在前）
    List {
        /// 只看某种状态：pending（待发送）、sent（已发送）、dead（发送失败）
        #[arg(long)]
        state: Option<StateArg>,
        /// 最多列出多少条
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// 把发送失败的消息重新放回队列（立即发送，重试次数从头算）
    Retry {
        /// 消息编号（见 outbox list / outbox dead）
        id: Option<i64>,
        /// 重新发送全部失败的消息
        #[arg(long)]
        all_dead: bool,
    },
    /// 列出发送失败的消息及原因
    Dead,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateArg {
    Pending,
    Sent,
    Dead,
}

impl From<StateArg> for OutboxState {
    fn from(s: StateArg) -> OutboxState {
        match s {
            StateArg::Pending => OutboxState::Pending,
            StateArg::Sent => OutboxState::Sent,
            StateArg::Dead => OutboxState::Dead,
        }
    }
}

/// Runs the command; exit status 0 on success, 1 when `retry` changed nothing, 2 on a usage
/// error (through the caller's error path).
pub fn run(settings: &Settings, cmd: &OutboxCommand) -> anyhow::Result<i32> {
    let path = &settings.store.path;
    if !path.exists() {
        anyhow::bail!(
            "数据库文件 {} 不存在，请检查配置 [store] path",
            path.display()
        );
    }
    let store = Store::open(path).with_context(|| format!("无法打开数据库 {}", path.display()))?;
    let tz = settings.hours.working_hours().time_zone().clone();
    match cmd {
        OutboxCommand::List { state, limit } => {
            let state = state.map(OutboxState::from);
            let limit = *limit;
            let rows = store.read_blocking(move |tx| tx.list_outbox(state, limit))?;
            let (pending, dead) = store.read_blocking(|tx| tx.outbox_backlog())?;
            print!("{}", render_list(&rows, &tz));
            println!("待发送 {pending} 条，发送失败 {dead} 条");
            Ok(0)
        }
        OutboxCommand::Dead => {
            let rows =
                store.read_blocking(|tx| tx.list_outbox(Some(OutboxState::Dead), usize::MAX))?;
            print!("{}", render_dead(&rows, &tz));
            Ok(0)
        }
        OutboxCommand::Retry { id, all_dead } => match (id, all_dead) {
            (Some(_), true) | (None, false) => {
                anyhow::bail!("请给出消息编号，或使用 --all-dead（二者选一）")
            }
            (None, true) => {
                let now = Timestamp::now();
                let n = store.write_blocking(move |tx| tx.retry_all_dead_outbox(now))?;
                println!("已将 {n} 条发送失败的消息重新放回队列");
                Ok(0)
            }
            (Some(id), false) => {
                let id = *id;
                let now = Timestamp::now();
                let (changed, row) = store.write_blocking(move |tx| -> Result<_, StoreError> {
                    let changed = tx.retry_outbox(id, now)?;
                    Ok((changed, tx.outbox(id)?))
                })?;
                match (changed, row) {
                    (true, _) => {
                        println!("消息 #{id} 已重新放回队列，将立即发送");
                        Ok(0)
                    }
                    (false, Some(row)) => {
                        eprintln!("消息 #{id} 当前状态为“{}”，不是发送失败，未改动", row.state);
                        Ok(1)
                    }
                    (false, None) => {
                        eprintln!("没有编号为 #{id} 的消息");
                        Ok(1)
                    }
                }
            }
        },
    }
}

fn when(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

fn channel_label(channel: &str) -> &str {
    match Channel::parse(channel) {
        Some(c) => c.label(),
        None => channel,
    }
}

/// The receiver as shown: never the sessionWebhook URL itself.
fn shown_target(row: &OutboxRow) -> String {
    if row.channel == Channel::SessionReply.as_str() {
        return match parse_session_target(&row.target) {
            Some(_) => "会话 webhook".to_string(),
            None => "会话 webhook（格式无效）".to_string(),
        };
    }
    shorten(&mask_phones(&row.target), 24)
}

fn render_list(rows: &[OutboxRow], tz: &TimeZone) -> String {
    if rows.is_empty() {
        return "发送队列中没有消息\n".to_string();
    }
    let mut table = vec![vec![
        "编号".to_string(),
        "状态".to_string(),
        "渠道".to_string(),
        "接收方".to_string(),
        "次数".to_string(),
        "时间".to_string(),
        "内容".to_string(),
        "错误".to_string(),
    ]];
    for row in rows {
        let time = match row.state {
            OutboxState::Pending => format!("下次 {}", when(row.next_attempt_at, tz)),
            OutboxState::Sent => row
                .sent_at
                .map_or_else(String::new, |t| format!("发送 {}", when(t, tz))),
            OutboxState::Dead => row
                .dead_at
                .map_or_else(String::new, |t| format!("失败 {}", when(t, tz))),
        };
        table.push(vec![
            format!("#{}", row.id),
            row.state.to_string(),
            channel_label(&row.channel).to_string(),
            shown_target(row),
            row.attempts.to_string(),
            time,
            summary(row),
            row.last_error
                .as_deref()
                .map_or_else(String::new, |e| shorten(&mask_phones(e), REASON_CHARS)),
        ]);
    }
    render_table(&table)
}

fn render_dead(rows: &[OutboxRow], tz: &TimeZone) -> String {
    if rows.is_empty() {
        return "没有发送失败的消息\n".to_string();
    }
    let mut out = format!("发送失败的消息共 {} 条：\n", rows.len());
    for row in rows {
        out.push_str(&format!(
            "\n#{}  {}  接收方：{}  尝试 {} 次  失败于 {}\n  内容：{}\n  原因：{}\n  重新发送：tiaochu outbox retry {}\n",
            row.id,
            channel_label(&row.channel),
            shown_target(row),
            row.attempts,
            row.dead_at.map_or_else(|| "?".to_string(), |t| when(t, tz)),
            summary(row),
            mask_phones(row.last_error.as_deref().unwrap_or("（未记录）")),
            row.id,
        ));
    }
    out
}

/// A one-line summary of a payload: the message title or text, the card's outTrackId, never
/// the raw JSON; phone numbers masked.
fn summary(row: &OutboxRow) -> String {
    let json: Value = serde_json::from_slice(&row.payload).unwrap_or(Value::Null);
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let param: Value = json
        .get("msgParam")
        .and_then(Value::as_str)
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null);
    let text = s(&param, "/title")
        .map(|title| match s(&param, "/text") {
            Some(text) => format!("{title}：{text}"),
            None => title,
        })
        .or_else(|| s(&param, "/content"))
        .or_else(|| s(&json, "/markdown/title"))
        .or_else(|| s(&json, "/text/content"))
        .or_else(|| s(&json, "/outTrackId").map(|id| format!("卡片 {id}")))
        .or_else(|| s(&json, "/title"))
        .unwrap_or_else(|| String::from_utf8_lossy(&row.payload).into_owned());
    shorten(
        &mask_phones(&text.replace(['\n', '\r'], " ")),
        SUMMARY_CHARS,
    )
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max).collect();
        s.push('…');
        s
    }
}

/// Masks mainland mobile numbers (11 digits, `1[3-9]…`, not part of a longer digit run) as
/// `138****0001`: citizens' and staff phones must not end up in terminal scrollback.
pub fn mask_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let run = &chars[start..i];
        if run.len() == 11 && run[0] == '1' && ('3'..='9').contains(&run[1]) {
            out.extend(&run[..3]);
            out.push_str("****");
            out.extend(&run[7..]);
        } else {
            out.extend(run);
        }
    }
    out
}

/// Display width: CJK and other non-ASCII characters take two columns in a terminal.
fn width(s: &str) -> usize {
    s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

pub(super) fn render_table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| width(&r[c])).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < columns {
                line.push_str(&" ".repeat(widths[c] - width(cell) + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(channel: &str, target: &str, payload: &[u8]) -> OutboxRow {
        OutboxRow {
            id: 7,
            idem_key: "k".into(),
            channel: channel.into(),
            target: target.into(),
            payload: payload.to_vec(),
            state: OutboxState::Dead,
            attempts: 3,
            next_attempt_at: Timestamp::UNIX_EPOCH,
            lease_until: None,
            last_error: Some("联系 13800000001 失败".into()),
            sent_at: None,
            response: None,
            dead_at: Some(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn phones_are_masked_but_other_numbers_kept() {
        assert_eq!(mask_phones("电话13800000001。"), "电话138****0001。");
        assert_eq!(mask_phones("DH20261100123"), "DH20261100123");
        assert_eq!(mask_phones("138000000012"), "138000000012");
        assert_eq!(mask_phones("12345678901"), "12345678901");
    }

    #[test]
    fn summaries_read_nested_msg_param_and_hide_session_urls() {
        let body = crate::dingtalk::payload::batch_send_markdown(
            "r",
            &["u1".to_string()],
            "催办",
            "请联系 13912345678",
        )
        .expect("body");
        assert_eq!(
            summary(&row("robot_batch", "u1", &body)),
            "催办：请联系 139****5678"
        );
        let session = row(
            "session_reply",
            "1|https://oapi.dingtalk.com/robot/sendBySession?session=SECRET",
            b"{}",
        );
        let tz = TimeZone::UTC;
        let text = render_dead(&[session], &tz);
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("会话 webhook"), "{text}");
        assert!(text.contains("138****0001"), "{text}");
    }

    #[test]
    fn table_columns_align_with_chinese_text() {
        let t = render_table(&[
            vec!["编号".into(), "状态".into()],
            vec!["#1".into(), "已发送".into()],
        ]);
        assert_eq!(t, "编号  状态\n#1    已发送\n");
    }
}

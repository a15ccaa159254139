//! Layered settings: the embedded `config/default.toml`, then an optional `--config FILE`, then
//! environment variables `TIAOCHU_<SECTION>__<KEY>`. Later layers win key by key, so a deployment
//! file only names what it changes and secrets can come from the environment alone.
//!
//! Secrets (`app_secret`, `group_secret`, …) are wrapped in [`Secret`], whose `Debug` and
//! `Display` never show the value, so no log line or error message can leak them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::civil::Time;
use serde::{Deserialize, Deserializer, Serialize};

use crate::calendar::{Calendar, CalendarError, WorkingHours};

/// The defaults shipped with the binary; every key the service reads is present here.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

const ENV_PREFIX: &str = "TIAOCHU_";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("无法读取配置文件 {path}：{source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("配置文件 {path} 不是有效的 TOML：{message}")]
    Syntax { path: String, message: String },
    #[error("环境变量 {var} 的值无效：{message}")]
    Env { var: String, message: String },
    #[error("配置项有误：{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub http: HttpSettings,
    pub store: StoreSettings,
    pub roster: RosterSettings,
    pub calendar: CalendarSettings,
    pub hours: HoursSettings,
    pub sla: SlaSettings,
    pub dingtalk: DingtalkSettings,
    pub report: ReportSettings,
    pub dashboard: DashboardSettings,
    pub sandbox: SandboxSettings,
    /// Optional steps of the flow; absent means every option off.
    #[serde(default)]
    pub workflow: WorkflowSettings,
    /// Inbound limits; absent means the defaults.
    #[serde(default)]
    pub inbox: InboxSettings,
    /// Outbound limits; absent means the defaults.
    #[serde(default)]
    pub outbox: OutboxSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// `ip:port` of the HTTP listener.
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
}

/// Connection timeouts and caps of the HTTP listener (src/http/serve.rs). Every timeout closes
/// the connection without an answer; a connection over a cap is accepted and closed at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// A request's headers must be complete this long after its first byte arrived.
    pub header_read_timeout_secs: u64,
    /// From complete headers to the last byte of the response: the body read, the handling and
    /// the answer written.
    pub request_timeout_secs: u64,
    /// A connection with no request under way (just opened, or kept alive after an answer) is
    /// closed after this long without a byte.
    pub idle_timeout_secs: u64,
    /// Open connections at most; keep it well under the process's file limit, which the
    /// database, DingTalk sends and the Stream socket also draw on.
    pub max_connections: usize,
    /// Open connections from one peer address (an IPv6 peer counts by its /64) at most.
    pub max_connections_per_ip: usize,
}

impl HttpSettings {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

/// The login-free sandbox console.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Serve the sandbox on an address other machines reach. Off: sandbox mode refuses to start
    /// on a non-loopback listen address, since anyone reaching the console acts as anyone.
    pub allow_remote: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// The SQLite database file.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterSettings {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSettings {
    /// Folder of yearly holiday files (`cn-2026.json`, …).
    pub dir: PathBuf,
}

/// `[hours]`, read into [`WorkingHours`] when the settings load, so a period that is not a time
/// range, periods out of order or an unknown zone stop the service at start with the reason.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "HoursText")]
pub struct HoursSettings {
    hours: WorkingHours,
}

/// `[hours]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursText {
    /// Working periods of a working day, local time, `"HH:MM-HH:MM"`, in order.
    periods: Vec<String>,
    /// IANA time zone the periods and every displayed time are in.
    time_zone: String,
}

impl TryFrom<HoursText> for HoursSettings {
    type Error = String;
    fn try_from(text: HoursText) -> Result<HoursSettings, String> {
        WorkingHours::from_text(&text.periods, &text.time_zone)
            .map(|hours| HoursSettings { hours })
            .map_err(|e| format!("[hours] {e}"))
    }
}

impl HoursSettings {
    /// The working periods and their time zone.
    pub fn working_hours(&self) -> &WorkingHours {
        &self.hours
    }
}

/// Every clock of docs/spec.md → Clocks. Units are in the key names.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlaSettings {
    pub review_start_working_hours: u32,
    pub decision_working_days: u32,
    pub unit_response_working_days: u32,
    pub green_unit_response_working_hours: u32,
    pub green_coordination_working_days: u32,
    pub handling_working_days: u32,
    pub remind_before_due_minutes: u32,
    /// 四(一): the city 12345's outcome is expected within this many working days of the
    /// escalation (the mechanism sets none; reminders and escalation as for any clock).
    pub city_answer_working_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DingtalkMode {
    Sandbox,
    Http,
    Stream,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkSettings {
    pub mode: DingtalkMode,
    pub api_base: String,
    pub oapi_base: String,
    pub app_key: String,
    pub app_secret: Secret,
    pub robot_code: String,
    pub card_template_id: String,
    pub card_callback_route_key: String,
    pub group_webhook: Secret,
    pub group_secret: Secret,
    /// The console's `aes_key` when the tenant has DingTalk encrypt HTTP callback bodies
    /// (`{"encrypt":…}`); empty: bodies are plain (docs/dingtalk-protocol.md §1.2).
    #[serde(default)]
    pub callback_aes_key: Secret,
}

/// The monthly report post (五(四) 月统计).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Local time of day, `"HH:MM"` in the file, on the first working day of the month.
    #[serde(deserialize_with = "time_of_day")]
    pub monthly_at: Time,
    /// Also send the report to each group leader (组长/副组长) in a 1:1 message.
    pub group_leaders: bool,
}

impl ReportSettings {
    /// `monthly_at` as (hour, minute).
    pub fn monthly_at_time(&self) -> (i8, i8) {
        (self.monthly_at.hour(), self.monthly_at.minute())
    }
}

/// `[server] listen`: an IP address and a port. A host name is refused rather than resolved, so
/// the address checks (sandbox mode only on loopback) see what will actually be bound.
fn listen_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "[server] listen 应为 IP 地址:端口，如 \"127.0.0.1:8080\"（所有网卡 \"0.0.0.0:8080\"，IPv6 \"[::1]:8080\"），当前为 \"{text}\""
        ))
    })
}

/// `[report] monthly_at`: `"HH:MM"`, 24-hour clock.
fn time_of_day<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
    let text = String::deserialize(d)?;
    let parsed = text.trim().split_once(':').and_then(|(h, m)| {
        let two_digits =
            |s: &str| (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || m.len() != 2 || !two_digits(m) {
            return None;
        }
        Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
    });
    parsed.ok_or_else(|| {
        serde::de::Error::custom(format!(
            "[report] monthly_at 应为 HH:MM（24 小时制，如 \"09:00\"），当前为 \"{text}\""
        ))
    })
}

/// The web dashboard (`/dashboard`, issue 7).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSettings {
    /// Where people's browsers reach this service (scheme, host, port, no trailing path); the
    /// one-time login links sent through the robot start with it.
    pub base_url: String,
}

/// Optional steps of the workflow (issue 9).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSettings {
    /// 四(一) 经本单位分管领导同意: when on, a registered application first waits for the first
    /// unit's leader to confirm it in DingTalk (同意 / 退回联络员); the mechanism clocks start only
    /// at the confirmation. Off: the pasted leader statement is taken as the consent.
    #[serde(default)]
    pub require_leader_confirmation: bool,
}

/// Limits on inbound robot messages (security issue 13).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxSettings {
    /// Robot messages one sender may have acted on per minute; the rest of the minute is
    /// recorded but not processed, and the sender is told once. 0 turns the limit off.
    #[serde(default = "default_per_sender_per_minute")]
    pub per_sender_per_minute: u32,
    /// Inbound messages stored but not yet processed beyond which the HTTP robot callback
    /// answers 503 with Retry-After instead of acknowledging more (docs/throughput.md). 0 turns
    /// shedding off.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: u64,
}

impl Default for InboxSettings {
    fn default() -> Self {
        InboxSettings {
            per_sender_per_minute: default_per_sender_per_minute(),
            max_backlog: default_max_backlog(),
        }
    }
}

/// The per-sender limit when none is configured (`[inbox] per_sender_per_minute`).
pub const DEFAULT_PER_SENDER_PER_MINUTE: u32 = 30;

/// `[inbox] max_backlog` when not configured: at the slowest rate the inbox was measured to
/// process while acknowledgements saturate the writer (docs/throughput.md), a few minutes' work.
pub const DEFAULT_MAX_BACKLOG: u64 = 5_000;

fn default_per_sender_per_minute() -> u32 {
    DEFAULT_PER_SENDER_PER_MINUTE
}

fn default_max_backlog() -> u64 {
    DEFAULT_MAX_BACKLOG
}

/// Limits on outbound sends (issue 19).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// Calls per second each DingTalk API may be sent (batchSend, group send, card create,
    /// card update, session replies, each on its own); 0 means
    /// [`crate::outbox::DEFAULT_SENDS_PER_SECOND`]. The custom group robot keeps its own 20 a
    /// minute.
    #[serde(default)]
    pub sends_per_second: u32,
}

/// How `tiaochu serve` writes its log lines (to stderr).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// `text`: one human-readable line per event; `json`: one JSON object per line, for a log
/// collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration value that must never be printed.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself, for signing and authentication only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { "***" })
    }
}

impl Settings {
    /// Defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment passed in (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let mut merged = parse_layer(DEFAULT_TOML, "内置 config/default.toml")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let layer = parse_layer(&text, &path.display().to_string())?;
            merge(&mut merged, layer);
        }
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            apply_env(
                &mut merged,
                &var,
                &section.to_lowercase(),
                &key.to_lowercase(),
                &value,
            )?;
        }
        let settings: Settings = merged
            .try_into()
            .map_err(|e: toml::de::Error| SettingsError::Invalid(e.message().to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The working-day calendar these settings name: the holiday files of `[calendar] dir`
    /// counted in the `[hours]` working periods.
    pub fn load_calendar(&self) -> Result<Calendar, CalendarError> {
        Calendar::load_dir(&self.calendar.dir, self.hours.working_hours().clone())
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.sla.decision_working_days == 0 || self.sla.handling_working_days == 0 {
            return Err(SettingsError::Invalid("[sla] 中的期限必须大于 0".into()));
        }
        let http = &self.http;
        for (key, value) in [
            ("header_read_timeout_secs", http.header_read_timeout_secs),
            ("request_timeout_secs", http.request_timeout_secs),
            ("idle_timeout_secs", http.idle_timeout_secs),
        ] {
            if !(1..=3600).contains(&value) {
                return Err(SettingsError::Invalid(format!(
                    "[http] {key} 应在 1 到 3600 秒之间，当前为 {value}"
                )));
            }
        }
        if http.max_connections == 0 || http.max_connections_per_ip == 0 {
            return Err(SettingsError::Invalid(
                "[http] max_connections 与 max_connections_per_ip 必须大于 0".into(),
            ));
        }
        Ok(())
    }
}

/// Why sandbox mode may not listen on `ip`: the console has no login, so whoever reaches it acts
/// as anyone on the roster. None when the mode is not sandbox, the address is loopback, or
/// `[sandbox] allow_remote` is on.
pub fn sandbox_exposure(settings: &Settings, ip: IpAddr) -> Option<String> {
    (settings.dingtalk.mode == DingtalkMode::Sandbox
        && !ip.to_canonical().is_loopback()
        && !settings.sandbox.allow_remote)
        .then(|| {
            format!(
                "沙盒模式没有登录，任何能访问控制台的人都能以任何人的身份操作，因此只能监听本机地址（127.0.0.1 或 [::1]），当前为 {ip}。\
                 请把 [server] listen 改为 127.0.0.1:端口，或改用钉钉模式（[dingtalk] mode = \"stream\" 或 \"http\"）；\
                 确需远程访问沙盒时设置 [sandbox] allow_remote = true（环境变量 TIAOCHU_SANDBOX__ALLOW_REMOTE=true）。\
                 / Sandbox mode has no login and may only listen on a loopback address (now {ip}); \
                 set [sandbox] allow_remote = true (TIAOCHU_SANDBOX__ALLOW_REMOTE=true) to serve it to the network anyway."
            )
        })
}

fn parse_layer(text: &str, origin: &str) -> Result<toml::Table, SettingsError> {
    text.parse::<toml::Table>()
        .map_err(|e| SettingsError::Syntax {
            path: origin.to_string(),
            message: e.message().to_string(),
        })
}

fn merge(base: &mut toml::Table, layer: toml::Table) {
    for (key, value) in layer {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) => merge(b, l),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// An environment value takes the type of the default it replaces, so `TIAOCHU_SLA__DECISION_WORKING_DAYS=5`
/// is a number and `TIAOCHU_HOURS__PERIODS=08:00-12:00,14:00-17:30` a list.
fn apply_env(
    merged: &mut toml::Table,
    var: &str,
    section: &str,
    key: &str,
    raw: &str,
) -> Result<(), SettingsError> {
    let bad = |message: String| SettingsError::Env {
        var: var.to_string(),
        message,
    };
    let Some(toml::Value::Table(table)) = merged.get_mut(section) else {
        return Err(bad(format!("没有名为 [{section}] 的配置段")));
    };
    let Some(current) = table.get(key) else {
        return Err(bad(format!("[{section}] 中没有配置项 {key}")));
    };
    let value = match current {
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| bad("应为整数".to_string()))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(match raw.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad("应为 true 或 false".to_string())),
        }),
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        _ => toml::Value::String(raw.to_string()),
    };
    table.insert(key.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load() {
        let s = Settings::load_with_env(None, env(&[])).expect("defaults");
        assert_eq!(s.sla.decision_working_days, 3);
        assert_eq!(s.hours.working_hours(), &WorkingHours::default());
        assert_eq!(
            s.server.listen,
            "127.0.0.1:8080".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(s.dingtalk.mode, DingtalkMode::Sandbox);
        assert_eq!(s.report.monthly_at_time(), (9, 0));
        assert!(s.report.group_leaders);
    }

    #[test]
    fn the_log_format_defaults_to_text_and_takes_json() {
        let s = Settings::load_with_env(None, env(&[])).expect("defaults");
        assert_eq!(s.log.format, LogFormat::Text);
        let s =
            Settings::load_with_env(None, env(&[("TIAOCHU_LOG__FORMAT", "json")])).expect("json");
        assert_eq!(s.log.format, LogFormat::Json);
        assert!(Settings::load_with_env(None, env(&[("TIAOCHU_LOG__FORMAT", "xml")])).is_err());
    }

    #[test]
    fn a_bad_report_time_is_refused() {
        for bad in ["9点", "24:00", "09:60", "9", "09:000"] {
            let err = Settings::load_with_env(None, env(&[("TIAOCHU_REPORT__MONTHLY_AT", bad)]))
                .expect_err(bad);
            assert!(
                err.to_string().contains("[report] monthly_at 应为 HH:MM"),
                "{err}"
            );
        }
        let s = Settings::load_with_env(None, env(&[("TIAOCHU_REPORT__MONTHLY_AT", " 7:05")]))
            .expect("7:05");
        assert_eq!(s.report.monthly_at_time(), (7, 5));
    }

    /// `[hours]` and `[server] listen` are read into their types at load, with the reason in
    /// Chinese naming the key, instead of failing later where they are used.
    #[test]
    fn hours_and_listen_are_checked_at_load() {
        let refused = |key: &str, value: &str| {
            Settings::load_with_env(None, env(&[(key, value)]))
                .expect_err(value)
                .to_string()
        };
        let err = refused("TIAOCHU_HOURS__TIME_ZONE", "Mars/Olympus");
        assert!(
            err.contains("[hours]") && err.contains("Mars/Olympus"),
            "{err}"
        );
        let err = refused("TIAOCHU_HOURS__PERIODS", "08:30-12:00,25:00-26:00");
        assert!(
            err.contains("[hours]") && err.contains("第 2 个工作时段"),
            "{err}"
        );
        let err = refused("TIAOCHU_HOURS__PERIODS", "14:30-18:00,08:30-12:00");
        assert!(err.contains("重叠或未按时间先后排列"), "{err}");
        let err = refused("TIAOCHU_HOURS__PERIODS", "");
        assert!(err.contains("至少需要一个工作时段"), "{err}");
        let err = refused("TIAOCHU_SERVER__LISTEN", "localhost:8080");
        assert!(err.contains("[server] listen 应为 IP 地址:端口"), "{err}");
        let err = refused("TIAOCHU_SERVER__LISTEN", "127.0.0.1");
        assert!(err.contains("当前为 \"127.0.0.1\""), "{err}");

        let s = Settings::load_with_env(
            None,
            env(&[
                ("TIAOCHU_HOURS__PERIODS", "08:00-12:00,13:30-17:30"),
                ("TIAOCHU_HOURS__TIME_ZONE", "Asia/Urumqi"),
                ("TIAOCHU_SERVER__LISTEN", "[::1]:9090"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            s.hours.working_hours().describe(),
            "08:00–12:00、13:30–17:30"
        );
        assert_eq!(
            s.hours.working_hours().time_zone().iana_name(),
            Some("Asia/Urumqi")
        );
        assert_eq!(s.server.listen.port(), 9090);
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.toml");
        std::fs::write(
            &path,
            "[sla]\ndecision_working_days = 5\n[server]\nlisten = \"0.0.0.0:9\"\n",
        )
        .expect("write");
        let s = Settings::load_with_env(
            Some(&path),
            env(&[
                ("TIAOCHU_SLA__DECISION_WORKING_DAYS", "7"),
                ("TIAOCHU_DINGTALK__APP_SECRET", "s3cret"),
                ("TIAOCHU_HOURS__PERIODS", "08:00-12:00, 14:00-17:30"),
                ("UNRELATED", "x"),
            ]),
        )
        .expect("load");
        assert_eq!(s.sla.decision_working_days, 7);
        assert_eq!(s.server.listen.to_string(), "0.0.0.0:9");
        assert_eq!(s.dingtalk.app_secret.expose(), "s3cret");
        assert_eq!(
            s.hours.working_hours().describe(),
            "08:00–12:00、14:00–17:30"
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "secret leaked into Debug output");
    }

    #[test]
    fn bad_env_is_reported_in_chinese() {
        let err = Settings::load_with_env(
            None,
            env(&[("TIAOCHU_SLA__DECISION_WORKING_DAYS", "three")]),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("应为整数"), "{err}");
        let err =
            Settings::load_with_env(None, env(&[("TIAOCHU_NOPE__X", "1")])).expect_err("must fail");
        assert!(err.to_string().contains("[nope]"), "{err}");
    }
}

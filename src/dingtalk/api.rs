//! The DingTalk OpenAPI client: the access-token cache and one `send` per outbox channel
//! (docs/dingtalk-protocol.md §3–§6). It turns every answer into [`SendOk`] or a classified
//! [`SendError`] — HTTP 200 is never taken as success on its own: `errcode`,
//! `deliverResults[].success`, `flowControlledStaffIdList` and `invalidStaffIdList` are read.
//!
//! Token cache (§3.3): one token per app, fetched under a tokio mutex so concurrent senders
//! wait for a single fetch (single flight); refreshed 5 minutes before `expireIn` runs out; a
//! refused token (401 / `InvalidAuthentication`) is dropped, fetched again and the call retried
//! exactly once.
//!
//! Nothing here logs or returns a token, the app secret, a signed webhook URL or a
//! sessionWebhook URL: transport errors are reduced to their kind because reqwest's own text
//! names the URL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, Url};
use serde_json::Value;

use crate::clock::Clock;
use crate::dingtalk::errors::{self, ErrorCode, SendError, Verdict};
use crate::dingtalk::payload::{BatchSend, parse_session_target};
use crate::dingtalk::sign::custom_robot_url;
use crate::settings::{DingtalkSettings, Secret};

/// A token is refreshed this long before DingTalk says it expires (§3.3: 300 s).
pub const TOKEN_REFRESH_MARGIN: SignedDuration = SignedDuration::from_secs(300);

/// Longest answer text kept in the outbox `response` column, in characters.
const RESPONSE_KEEP_CHARS: usize = 500;

/// The outbox `channel` values this client delivers. Each row's payload is the exact body
/// DingTalk receives; the `target` is described per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// `POST /v1.0/robot/oToMessages/batchSend`; target: the user ids, comma-separated.
    RobotBatch,
    /// `POST /v1.0/robot/groupMessages/send`; target: the openConversationId.
    RobotGroup,
    /// `POST <sessionWebhook>`; target: [`crate::dingtalk::payload::session_target`].
    SessionReply,
    /// `POST /v1.0/card/instances/createAndDeliver`; target: the outTrackId.
    CardCreate,
    /// `PUT /v1.0/card/instances`; target: the outTrackId.
    CardUpdate,
    /// The signed custom group robot (`[dingtalk] group_webhook`); target: free text label.
    GroupWebhook,
    /// No DingTalk: delivering is marking sent; the sandbox page shows the row.
    Sandbox,
}

impl Channel {
    pub const ALL: [Channel; 7] = [
        Channel::RobotBatch,
        Channel::RobotGroup,
        Channel::SessionReply,
        Channel::CardCreate,
        Channel::CardUpdate,
        Channel::GroupWebhook,
        Channel::Sandbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::RobotBatch => "robot_batch",
            Channel::RobotGroup => "robot_group",
            Channel::SessionReply => "session_reply",
            Channel::CardCreate => "card_create",
            Channel::CardUpdate => "card_update",
            Channel::GroupWebhook => "group_webhook",
            Channel::Sandbox => "sandbox",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Chinese name for the CLI and admin notices.
    pub fn label(self) -> &'static str {
        match self {
            Channel::RobotBatch => "机器人单聊",
            Channel::RobotGroup => "机器人群聊",
            Channel::SessionReply => "会话回复",
            Channel::CardCreate => "互动卡片",
            Channel::CardUpdate => "卡片更新",
            Channel::GroupWebhook => "群自定义机器人",
            Channel::Sandbox => "沙盒",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery DingTalk accepted. For batchSend, users DingTalk did not deliver to are listed:
/// `flow_controlled` should be sent again later, `invalid` cannot be reached (not in the
/// organisation or outside the app's visible range). Both are subsets of the request's users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOk {
    /// DingTalk's answer, shortened, for the audit trail.
    pub response: String,
    pub flow_controlled: Vec<String>,
    pub invalid: Vec<String>,
}

impl SendOk {
    fn answered(body: &[u8]) -> SendOk {
        SendOk {
            response: shorten(&String::from_utf8_lossy(body)),
            ..SendOk::default()
        }
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= RESPONSE_KEEP_CHARS {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(RESPONSE_KEEP_CHARS).collect();
        s.push('…');
        s
    }
}

/// Request time limits. Every request has both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// The whole request, answer included.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(15),
        }
    }
}

impl Timeouts {
    /// A reqwest client with these limits (rustls, as the crate is built).
    pub fn http_client(self) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(self.connect)
            .timeout(self.total)
            .build()
    }
}

#[derive(Debug, Clone)]
struct CachedToken {
    value: String,
    refresh_at: Timestamp,
}

/// The token cache: the token, or the last fetch's failure while it still stands.
#[derive(Default)]
struct TokenSlot {
    token: Option<CachedToken>,
    /// A failed fetch and until when it answers for every caller instead of a new fetch: the
    /// wait DingTalk asked for (throttled), [`TOKEN_FAILURE_HOLD`] otherwise. Without it the
    /// callers queued behind a failed fetch would each fetch again at once, straight into a
    /// throttle's wait.
    failed: Option<(Timestamp, SendError)>,
}

/// How long an unthrottled token failure answers for the callers after it.
const TOKEN_FAILURE_HOLD: Duration = Duration::from_secs(1);

struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl Answer {
    fn verdict(&self) -> Verdict {
        errors::classify(self.status, self.retry_after, &self.body)
    }
}

/// The OpenAPI client. Share one per process (behind an `Arc`): the token cache is per client.
pub struct DingtalkClient {
    http: reqwest::Client,
    api_base: String,
    /// scheme, host and port of `[dingtalk] oapi_base`: the only place session replies go.
    oapi_origin: Option<(String, String, Option<u16>)>,
    /// `[dingtalk] oapi_base` without a trailing slash: the old API (`?access_token=`).
    oapi_base: String,
    app_key: String,
    app_secret: Secret,
    robot_code: String,
    group_webhook: Secret,
    group_secret: Secret,
    clock: Arc<dyn Clock>,
    total_timeout: Duration,
    token: tokio::sync::Mutex<TokenSlot>,
}

impl fmt::Debug for DingtalkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingtalkClient")
            .field("api_base", &self.api_base)
            .field("app_key", &self.app_key)
            .finish_non_exhaustive()
    }
}

fn origin(url: &Url) -> (String, String, Option<u16>) {
    (
        url.scheme().to_string(),
        url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.port_or_known_default(),
    )
}

impl DingtalkClient {
    /// A client for the app in `settings`. `http` should come from [`Timeouts::http_client`];
    /// each request is additionally limited to [`Timeouts::default`]'s total unless
    /// [`DingtalkClient::with_timeout`] says otherwise. `clock` decides token expiry, the
    /// custom-robot timestamp and sessionWebhook expiry.
    pub fn new(
        settings: &DingtalkSettings,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> DingtalkClient {
        DingtalkClient {
            http,
            api_base: settings.api_base.trim_end_matches('/').to_string(),
            oapi_origin: Url::parse(&settings.oapi_base).ok().map(|u| origin(&u)),
            oapi_base: settings.oapi_base.trim_end_matches('/').to_string(),
            app_key: settings.app_key.clone(),
            app_secret: settings.app_secret.clone(),
            robot_code: settings.robot_code.clone(),
            group_webhook: settings.group_webhook.clone(),
            group_secret: settings.group_secret.clone(),
            clock,
            total_timeout: Timeouts::default().total,
            token: tokio::sync::Mutex::new(TokenSlot::default()),
        }
    }

    /// Limits every request to `total` (tests use a short one).
    pub fn with_timeout(mut self, total: Duration) -> DingtalkClient {
        self.total_timeout = total;
        self
    }

    /// The robot code messages are sent as (`[dingtalk] robot_code`).
    pub fn robot_code(&self) -> &str {
        &self.robot_code
    }

    /// Delivers one outbox row: `channel` picks the endpoint, `target` is read as [`Channel`]
    /// documents, `payload` is sent byte for byte. Unknown channels are permanent failures.
    pub async fn send(
        &self,
        channel: &str,
        target: &str,
        payload: &[u8],
    ) -> Result<SendOk, SendError> {
        let Some(channel) = Channel::parse(channel) else {
            return Err(SendError::permanent(
                ErrorCode::Other,
                format!("未知的发送渠道“{channel}”（程序错误）"),
            ));
        };
        match channel {
            Channel::RobotBatch => self.batch_send(payload).await,
            Channel::RobotGroup => {
                let (answer, verdict) = self
                    .authorized(Method::POST, "/v1.0/robot/groupMessages/send", payload)
                    .await?;
                ok_or(verdict).map(|()| SendOk::answered(&answer.body))
            }
            Channel::CardCreate => self.card_create(payload).await,
            Channel::CardUpdate => {
                let (answer, verdict) = self
                    .authorized(Method::PUT, "/v1.0/card/instances", payload)
                    .await?;
                ok_or(verdict)?;
                let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                if json.get("success").and_then(Value::as_bool) == Some(false) {
                    return Err(SendError::permanent(
                        ErrorCode::Other,
                        format!(
                            "卡片更新未成功：{}",
                            shorten(&String::from_utf8_lossy(&answer.body))
                        ),
                    ));
                }
                Ok(SendOk::answered(&answer.body))
            }
            Channel::SessionReply => self.session_reply(target, payload).await,
            Channel::GroupWebhook => self.group_webhook(payload).await,
            Channel::Sandbox => Ok(SendOk {
                response: "沙盒模式：未发往钉钉".to_string(),
                ..SendOk::default()
            }),
        }
    }

    /// The current access token, fetching one when there is none or it is within
    /// [`TOKEN_REFRESH_MARGIN`] of expiry. Callers arriving during a fetch wait for it.
    pub async fn access_token(&self) -> Result<String, SendError> {
        let mut slot = self.token.lock().await;
        let now = self.clock.now();
        if let Some(token) = slot.token.as_ref()
            && now < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        if let Some((until, error)) = slot.failed.as_ref()
            && now < *until
        {
            let wait = Duration::try_from(until.duration_since(now)).unwrap_or_default();
            return Err(SendError::throttled(
                ErrorCode::TokenWait,
                format!(
                    "未发送：获取钉钉 access token 失败后等待中（{}）",
                    error.reason()
                ),
                wait,
            ));
        }
        match self.fetch_token().await {
            Ok(fresh) => {
                let value = fresh.value.clone();
                *slot = TokenSlot {
                    token: Some(fresh),
                    failed: None,
                };
                Ok(value)
            }
            Err(error) => {
                let hold = match &error {
                    SendError::Throttled { wait, .. } => *wait,
                    SendError::Retryable {
                        retry_after: Some(wait),
                        ..
                    } => *wait,
                    _ => TOKEN_FAILURE_HOLD,
                };
                let now = self.clock.now();
                let until = SignedDuration::try_from(hold)
                    .ok()
                    .and_then(|d| now.checked_add(d).ok())
                    .unwrap_or(now);
                slot.failed = Some((until, error.clone()));
                Err(error)
            }
        }
    }

    /// Forgets `stale` if it is still the cached token; a newer token fetched meanwhile by
    /// another sender is kept, so N concurrent 401s cause one refresh, not N.
    async fn drop_token(&self, stale: &str) {
        let mut slot = self.token.lock().await;
        if slot.token.as_ref().is_some_and(|t| t.value == stale) {
            slot.token = None;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, SendError> {
        let body = serde_json::json!({
            "appKey": self.app_key,
            "appSecret": self.app_secret.expose(),
        })
        .to_string();
        let url = format!("{}/v1.0/oauth2/accessToken", self.api_base);
        let answer = self
            .request(Method::POST, &url, None, body.as_bytes())
            .await?;
        match answer.verdict() {
            Verdict::Ok => {}
            Verdict::TokenInvalid => {
                return Err(SendError::permanent(
                    ErrorCode::Other,
                    "获取 access token 被拒绝：请检查 [dingtalk] app_key 与 app_secret",
                ));
            }
            Verdict::Failed(SendError::Permanent { reason, code }) => {
                return Err(SendError::permanent(
                    code,
                    format!("获取 access token 失败（请检查 app_key 与 app_secret）：{reason}"),
                ));
            }
            Verdict::Failed(e) => return Err(e),
        }
        let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let value = json
            .get("accessToken")
            .and_then(Value::as_str)
            .unwrap_or("");
        let expire_in = json.get("expireIn").and_then(Value::as_i64).unwrap_or(0);
        if value.is_empty() || expire_in <= 0 {
            return Err(SendError::retryable(
                ErrorCode::Other,
                "获取 access token 的应答缺少 accessToken 或 expireIn",
            ));
        }
        let refresh_at = self
            .clock
            .now()
            .saturating_add(SignedDuration::from_secs(expire_in) - TOKEN_REFRESH_MARGIN)
            .unwrap_or_else(|_| self.clock.now());
        Ok(CachedToken {
            value: value.to_string(),
            refresh_at,
        })
    }

    async fn request(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Result<Answer, SendError> {
        let mut req = self
            .http
            .request(method, url)
            .timeout(self.total_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body.to_vec());
        if let Some(token) = token {
            req = req.header("x-acs-dingtalk-access-token", token);
        }
        let resp = req.send().await.map_err(|e| errors::transport(&e))?;
        let status = resp.status().as_u16();
        let retry_after = errors::parse_retry_after(
            resp.headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let body = resp
            .bytes()
            .await
            .map_err(|e| errors::transport(&e))?
            .to_vec();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    /// A token-authenticated new-API call. On a refused token: drop it, fetch a new one, retry
    /// once; a second refusal is permanent (the app lacks the permission, or the key is wrong).
    /// The verdict returned is never [`Verdict::TokenInvalid`].
    async fn authorized(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<(Answer, Verdict), SendError> {
        let url = format!("{}{path}", self.api_base);
        let token = self.access_token().await?;
        let answer = self
            .request(method.clone(), &url, Some(&token), body)
            .await?;
        let verdict = answer.verdict();
        if verdict != Verdict::TokenInvalid {
            return Ok((answer, verdict));
        }
        self.drop_token(&token).await;
        let token = self.access_token().await?;
        let answer = self.request(method, &url, Some(&token), body).await?;
        match answer.verdict() {
            Verdict::TokenInvalid => Err(SendError::permanent(
                ErrorCode::Other,
                "钉钉拒绝了刚获取的 access token（应用缺少接口权限？）",
            )),
            verdict => Ok((answer, verdict)),
        }
    }

    async fn batch_send(&self, payload: &[u8]) -> Result<SendOk, SendError> {
        // §4.1: more than 20 users is refused by DingTalk; never send such a body.
        let request = BatchSend::from_slice(payload).map_err(|e| {
            SendError::permanent(ErrorCode::Other, format!("消息内容无效（程序错误）：{e}"))
        })?;
        let (answer, verdict) = self
            .authorized(Method::POST, "/v1.0/robot/oToMessages/batchSend", payload)
            .await?;
        ok_or(verdict)?;
        let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        // Only ids we asked for count: an answer naming others is not ours to act on.
        let listed = |key: &str| -> Vec<String> {
            let mut ids: Vec<String> = json
                .get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            ids.retain(|id| request.user_ids.contains(id));
            ids.dedup();
            ids
        };
        let invalid = listed("invalidStaffIdList");
        let mut flow_controlled = listed("flowControlledStaffIdList");
        flow_controlled.retain(|id| !invalid.contains(id));
        Ok(SendOk {
            response: shorten(&String::from_utf8_lossy(&answer.body)),
            flow_controlled,
            invalid,
        })
    }

    async fn card_create(&self, payload: &[u8]) -> Result<SendOk, SendError> {
        let (answer, verdict) = self
            .authorized(
                Method::POST,
                "/v1.0/card/instances/createAndDeliver",
                payload,
            )
            .await?;
        let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if let Verdict::Failed(e) = verdict {
            // A create retried after a lost answer meets the card it already made: the outTrackId
            // is taken (§7: a duplicate create fails). That card is ours, so it is delivered.
            let code = json.get("code").and_then(Value::as_str).unwrap_or("");
            if (400..500).contains(&answer.status) && code.to_ascii_lowercase().contains("dup") {
                return Ok(SendOk {
                    response: format!(
                        "卡片已存在（outTrackId 重复，前一次请求已送达）：{}",
                        shorten(&String::from_utf8_lossy(&answer.body))
                    ),
                    ..SendOk::default()
                });
            }
            return Err(e);
        }
        if json.get("success").and_then(Value::as_bool) == Some(false) {
            return Err(SendError::permanent(
                ErrorCode::Other,
                format!(
                    "卡片创建未成功：{}",
                    shorten(&String::from_utf8_lossy(&answer.body))
                ),
            ));
        }
        let failed: Vec<String> = json
            .pointer("/result/deliverResults")
            .and_then(Value::as_array)
            .map(|results| {
                results
                    .iter()
                    .filter(|r| r.get("success").and_then(Value::as_bool) != Some(true))
                    .map(|r| {
                        format!(
                            "{}：{}",
                            r.get("spaceId").and_then(Value::as_str).unwrap_or("?"),
                            r.get("errorMsg")
                                .and_then(Value::as_str)
                                .unwrap_or("未说明原因")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !failed.is_empty() {
            return Err(SendError::permanent(
                ErrorCode::Other,
                format!("卡片投递失败（{}）", failed.join("；")),
            ));
        }
        Ok(SendOk::answered(&answer.body))
    }

    async fn session_reply(&self, target: &str, payload: &[u8]) -> Result<SendOk, SendError> {
        let Some((expires_at, url)) = parse_session_target(target) else {
            return Err(SendError::permanent(
                ErrorCode::Other,
                "会话回复缺少过期时间或地址（程序错误）",
            ));
        };
        let parsed = Url::parse(url)
            .map_err(|_| SendError::permanent(ErrorCode::Other, "会话回复地址不是有效的 URL"))?;
        // Only DingTalk's own sessionWebhook endpoint: the URL came in a message body, and a
        // forged one must not make us post case text anywhere else.
        if self.oapi_origin.as_ref() != Some(&origin(&parsed))
            || parsed.path() != "/robot/sendBySession"
        {
            return Err(SendError::permanent(
                ErrorCode::Other,
                format!(
                    "会话回复地址不是配置的钉钉地址（{}），已拒绝发送",
                    parsed.host_str().unwrap_or("?")
                ),
            ));
        }
        if self.clock.now() >= expires_at {
            return Err(SendError::permanent(
                ErrorCode::Other,
                "会话回复地址已过期（钉钉约 90 分钟后失效），请改用机器人单聊或群消息",
            ));
        }
        let answer = self.request(Method::POST, url, None, payload).await?;
        ok_or(answer.verdict())?;
        Ok(SendOk::answered(&answer.body))
    }

    async fn group_webhook(&self, payload: &[u8]) -> Result<SendOk, SendError> {
        if self.group_webhook.is_empty() {
            return Err(SendError::permanent(
                ErrorCode::Other,
                "未配置群自定义机器人（[dingtalk] group_webhook）",
            ));
        }
        // Signed at send time: the timestamp must be within an hour of DingTalk's clock, and
        // neither the secret nor the signed URL is ever stored.
        let url = if self.group_secret.is_empty() {
            self.group_webhook.expose().to_string()
        } else {
            custom_robot_url(
                self.group_webhook.expose(),
                self.group_secret.expose(),
                self.clock.now().as_millisecond(),
            )
        };
        let answer = self.request(Method::POST, &url, None, payload).await?;
        ok_or(answer.verdict())?;
        Ok(SendOk::answered(&answer.body))
    }
}

/// The root department of every organisation: the organisation itself (`dept_id` 1).
pub const ROOT_DEPARTMENT: i64 = 1;

/// Largest page of `contact/users/search` asked for; the official dingtalk-mcp server documents
/// `size` as "最大50".
pub const USER_SEARCH_PAGE: u32 = 50;

/// One page of `POST /v1.0/contact/users/search`: the userIds of the members whose name matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSearchPage {
    pub has_more: bool,
    pub total_count: u64,
    pub user_ids: Vec<String>,
}

/// A member of the organisation as `topapi/v2/user/get` describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub user_id: String,
    pub name: String,
    pub title: String,
    pub dept_ids: Vec<i64>,
}

/// A department as `topapi/v2/department/get` describes it; `parent_id` is None for the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryDepartment {
    pub dept_id: i64,
    pub name: String,
    pub parent_id: Option<i64>,
}

/// Which permissions DingTalk says the app lacks, when `err` is its permission refusal: HTTP 403
/// `Forbidden.AccessDenied.AccessTokenPermissionDenied` on the new API, `errcode` 88 with
/// `subcode=60011` (or 60011 itself) on the old one. DingTalk names the permissions in the text
/// (`应用尚未开通所需的权限：[qyapi_get_member]`, `{requiredScopes=[qyapi_get_member]}`); the list
/// is empty when it names none. None when `err` is not a permission refusal.
pub fn missing_permissions(err: &SendError) -> Option<Vec<String>> {
    let SendError::Permanent { reason, code } = err else {
        return None;
    };
    let denied = match code {
        ErrorCode::Api { code, .. } => code.contains("AccessTokenPermissionDenied"),
        ErrorCode::Errcode(88) => reason.contains("subcode=60011"),
        ErrorCode::Errcode(60011) => true,
        _ => false,
    };
    if !denied {
        return None;
    }
    let mut scopes: Vec<String> = Vec::new();
    for marker in ["requiredScopes=[", "权限：["] {
        let mut rest = reason.as_str();
        while let Some(start) = rest.find(marker) {
            rest = &rest[start + marker.len()..];
            let Some(end) = rest.find(']') else { break };
            for scope in rest[..end].split(',') {
                let scope = scope.trim();
                let plausible = !scope.is_empty()
                    && scope
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if plausible && !scopes.iter().any(|s| s == scope) {
                    scopes.push(scope.to_string());
                }
            }
            rest = &rest[end..];
        }
    }
    Some(scopes)
}

/// How many times a read-only call is made before its failure is final (throttling and
/// transient failures only; a refusal is final at once).
const READ_ATTEMPTS: u32 = 5;

/// The longest throttle a command-line run waits out; DingTalk asking for more (the 5-minute IP
/// ban) ends the run with the reason instead of a silent wait.
pub const READ_MAX_WAIT: Duration = Duration::from_secs(60);

/// Runs a read-only call the way the command line needs it: a throttle is waited out for as long
/// as DingTalk asked (up to [`READ_MAX_WAIT`]), a transient failure is repeated after 1 s, 2 s,
/// 4 s … (or DingTalk's `Retry-After`), at most [`READ_ATTEMPTS`] tries in all; a permanent
/// failure is returned at once. Reads change nothing at DingTalk, so repeating one is safe.
pub async fn patiently<T, F, Fut>(mut call: F) -> Result<T, SendError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SendError>>,
{
    let mut attempt = 1;
    loop {
        let error = match call().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let wait = match &error {
            SendError::Permanent { .. } => return Err(error),
            SendError::Throttled { wait, .. } => *wait,
            SendError::Retryable { retry_after, .. } => {
                retry_after.unwrap_or(Duration::from_secs(1u64 << (attempt - 1).min(5)))
            }
        };
        if attempt >= READ_ATTEMPTS || wait > READ_MAX_WAIT {
            return Err(error);
        }
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// Read-only calls for going live (`tiaochu roster sync`, `tiaochu check-config --online`): the
/// organisation's address book, and checks of the robot code and the card template that
/// message nobody. Each returns the classified error of [`DingtalkClient::send`]; callers that
/// want throttling waited out wrap them in [`patiently`].
impl DingtalkClient {
    /// `POST /v1.0/contact/users/search` with `fullMatchField` 1 (the name exactly, per the
    /// official SDK: "1：匹配用户名称。不填则为模糊匹配"); `offset` counts members.
    pub async fn search_users(&self, name: &str, offset: u32) -> Result<UserSearchPage, SendError> {
        let body = serde_json::json!({
            "queryWord": name,
            "offset": offset,
            "size": USER_SEARCH_PAGE,
            "fullMatchField": 1,
        })
        .to_string();
        let (answer, verdict) = self
            .authorized(Method::POST, "/v1.0/contact/users/search", body.as_bytes())
            .await?;
        ok_or(verdict)?;
        let json = answer_json(&answer.body)?;
        let user_ids = json
            .get("list")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| match id {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(UserSearchPage {
            has_more: json
                .get("hasMore")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            total_count: json.get("totalCount").and_then(Value::as_u64).unwrap_or(0),
            user_ids,
        })
    }

    /// `POST {oapi}/topapi/v2/user/get` (`{"userid","language":"zh_CN"}`).
    pub async fn user_get(&self, user_id: &str) -> Result<DirectoryUser, SendError> {
        let body = serde_json::json!({"userid": user_id, "language": "zh_CN"}).to_string();
        let json = self
            .oapi_post("/topapi/v2/user/get", body.as_bytes())
            .await?;
        let result = json.get("result").unwrap_or(&Value::Null);
        let text = |key: &str| {
            result
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let user = DirectoryUser {
            user_id: text("userid"),
            name: text("name"),
            title: text("title"),
            dept_ids: result
                .get("dept_id_list")
                .and_then(Value::as_array)
                .map(|ids| ids.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default(),
        };
        if user.user_id.is_empty() || user.name.is_empty() {
            return Err(malformed("查询用户详情"));
        }
        Ok(user)
    }

    /// `POST {oapi}/topapi/v2/department/get` (`{"dept_id","language":"zh_CN"}`).
    pub async fn department_get(&self, dept_id: i64) -> Result<DirectoryDepartment, SendError> {
        let body = serde_json::json!({"dept_id": dept_id, "language": "zh_CN"}).to_string();
        let json = self
            .oapi_post("/topapi/v2/department/get", body.as_bytes())
            .await?;
        let result = json.get("result").unwrap_or(&Value::Null);
        let name = result.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(malformed("查询部门详情"));
        }
        Ok(DirectoryDepartment {
            dept_id: result
                .get("dept_id")
                .and_then(Value::as_i64)
                .unwrap_or(dept_id),
            name: name.to_string(),
            parent_id: result
                .get("parent_id")
                .and_then(Value::as_i64)
                .filter(|p| *p > 0),
        })
    }

    /// `POST /v1.0/robot/plugins/query {"robotCode"}` (查询单聊机器人的快捷入口): the one read-only
    /// robot call found that takes nothing but the robot code. Needs the app permission
    /// `Robot.SingleChat.ReadWrite`, which sending does not.
    pub async fn query_robot(&self, robot_code: &str) -> Result<(), SendError> {
        let body = serde_json::json!({ "robotCode": robot_code }).to_string();
        let (_, verdict) = self
            .authorized(Method::POST, "/v1.0/robot/plugins/query", body.as_bytes())
            .await?;
        ok_or(verdict)
    }

    /// `POST /v1.0/card/instances` (CreateCard) with `template_id` and no space: a card instance
    /// is made and delivered to nobody, so DingTalk has judged the template (and, for
    /// `callbackType` HTTP, the route key) without anyone receiving anything.
    pub async fn create_undelivered_card(
        &self,
        template_id: &str,
        out_track_id: &str,
        callback: crate::dingtalk::payload::CardCallback<'_>,
    ) -> Result<(), SendError> {
        let mut body = serde_json::json!({
            "cardTemplateId": template_id,
            "outTrackId": out_track_id,
            "cardData": {"cardParamMap": {"title": "tiaochu 配置检查（不投递）"}},
            "userIdType": 1,
        });
        match callback {
            crate::dingtalk::payload::CardCallback::Stream => {
                body["callbackType"] = "STREAM".into();
            }
            crate::dingtalk::payload::CardCallback::Http { route_key } => {
                body["callbackType"] = "HTTP".into();
                body["callbackRouteKey"] = route_key.into();
            }
        }
        let (answer, verdict) = self
            .authorized(
                Method::POST,
                "/v1.0/card/instances",
                body.to_string().as_bytes(),
            )
            .await?;
        let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if let Verdict::Failed(e) = verdict {
            // A repeat after a lost answer meets its own outTrackId (§7: a duplicate create
            // fails): the first create went through, so the template was accepted.
            let code = json.get("code").and_then(Value::as_str).unwrap_or("");
            if (400..500).contains(&answer.status) && code.to_ascii_lowercase().contains("dup") {
                return Ok(());
            }
            return Err(e);
        }
        if json.get("success").and_then(Value::as_bool) == Some(false) {
            return Err(SendError::permanent(
                ErrorCode::Other,
                format!(
                    "创建卡片未成功：{}",
                    shorten(&String::from_utf8_lossy(&answer.body))
                ),
            ));
        }
        Ok(())
    }

    /// An old-API (`oapi`) POST with the token in `?access_token=` (§3.2: the new token is
    /// accepted there). A refused token (`errcode` 40014 / 42001, or 401) is dropped, fetched
    /// again and the call repeated once. The URL carries the token, so it is never shown: a
    /// transport failure is reduced to its kind.
    async fn oapi_post(&self, path: &str, body: &[u8]) -> Result<Value, SendError> {
        let token = self.access_token().await?;
        let mut answer = self.oapi_request(path, &token, body).await?;
        if oapi_token_refused(&answer) {
            self.drop_token(&token).await;
            let token = self.access_token().await?;
            answer = self.oapi_request(path, &token, body).await?;
            if oapi_token_refused(&answer) {
                return Err(SendError::permanent(
                    ErrorCode::Other,
                    "钉钉拒绝了刚获取的 access token（应用缺少接口权限？）",
                ));
            }
        }
        ok_or(answer.verdict())?;
        let json = answer_json(&answer.body)?;
        if json.get("errcode").and_then(Value::as_i64) != Some(0) {
            return Err(malformed("旧版接口"));
        }
        Ok(json)
    }

    async fn oapi_request(
        &self,
        path: &str,
        token: &str,
        body: &[u8],
    ) -> Result<Answer, SendError> {
        // RFC 3986 unreserved characters stay as they are; everything else is escaped.
        const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let token = percent_encoding::utf8_percent_encode(token, QUERY_VALUE);
        let url = format!("{}{path}?access_token={token}", self.oapi_base);
        self.request(Method::POST, &url, None, body).await
    }
}

/// The old API's refusals of the token itself ([R]: 40014 不合法的access_token, 42001 过期).
fn oapi_token_refused(answer: &Answer) -> bool {
    let errcode = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|j| j.get("errcode").and_then(Value::as_i64));
    answer.status == 401 || matches!(errcode, Some(40014 | 42001))
}

fn answer_json(body: &[u8]) -> Result<Value, SendError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(SendError::retryable(
            ErrorCode::Other,
            "钉钉的应答不是 JSON 对象",
        )),
    }
}

fn malformed(what: &str) -> SendError {
    SendError::retryable(
        ErrorCode::Other,
        format!("钉钉“{what}”的应答缺少必需的字段"),
    )
}

fn ok_or(verdict: Verdict) -> Result<(), SendError> {
    match verdict {
        Verdict::Ok => Ok(()),
        Verdict::Failed(e) => Err(e),
        // Webhooks carry no app token; a 401 from them is a refusal like any other.
        Verdict::TokenInvalid => Err(SendError::permanent(
            ErrorCode::Http(401),
            "钉钉拒绝了身份验证（HTTP 401）",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
            assert!(!c.label().is_ascii());
        }
        assert_eq!(Channel::parse("notify"), None);
    }

    fn refused(status: u16, body: &[u8]) -> SendError {
        match errors::classify(status, None, body) {
            Verdict::Failed(e) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn permission_refusals_name_their_scopes() {
        let new_api = refused(
            403,
            r#"{"code":"Forbidden.AccessDenied.AccessTokenPermissionDenied","message":"应用尚未开通所需的权限：[qyapi_addresslist_search]","requestid":"r"}"#.as_bytes(),
        );
        assert_eq!(
            missing_permissions(&new_api),
            Some(vec!["qyapi_addresslist_search".to_string()])
        );
        // The text of a captured live answer: the scope is named twice, listed once.
        let old_api = refused(
            200,
            r#"{"errcode":88,"errmsg":"ding talk error[subcode=60011,submsg=应用尚未开通所需的权限：[qyapi_get_member]，点击链接申请并开通即可：https://open-dev.dingtalk.com/appscope/apply?content=ding1%23qyapi_get_member, {requiredScopes=[qyapi_get_member]}]"}"#.as_bytes(),
        );
        assert_eq!(
            missing_permissions(&old_api),
            Some(vec!["qyapi_get_member".to_string()])
        );
        let unnamed = refused(200, br#"{"errcode":60011,"errmsg":"no permission"}"#);
        assert_eq!(missing_permissions(&unnamed), Some(Vec::new()));
        // Refusals that are not about permissions.
        for (status, body) in [
            (
                403,
                &br#"{"code":"Forbidden.AccessDenied.IpNotInWhiteList","message":"ip"}"#[..],
            ),
            (
                200,
                br#"{"errcode":88,"errmsg":"ding talk error[subcode=60020,submsg=ip]"}"#,
            ),
            (400, br#"{"code":"invalidParameter","message":"m"}"#),
            (429, b""),
        ] {
            assert_eq!(missing_permissions(&refused(status, body)), None);
        }
    }

    #[tokio::test]
    async fn patiently_repeats_transient_failures_and_stops_at_refusals() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = AtomicU32::new(0);
        let transient =
            || SendError::retryable_after(ErrorCode::Http(503), "busy", Some(Duration::ZERO));
        let got = patiently(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(transient()),
                _ => Ok("ok"),
            }
        })
        .await;
        assert_eq!(got, Ok("ok"));
        assert_eq!(calls.swap(0, Ordering::SeqCst), 3);

        let got: Result<(), _> = patiently(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(transient())
        })
        .await;
        assert!(matches!(got, Err(SendError::Retryable { .. })));
        assert_eq!(calls.swap(0, Ordering::SeqCst), READ_ATTEMPTS);

        let got: Result<(), _> = patiently(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(SendError::permanent(ErrorCode::Other, "refused"))
        })
        .await;
        assert!(matches!(got, Err(SendError::Permanent { .. })));
        assert_eq!(calls.swap(0, Ordering::SeqCst), 1);

        // A wait longer than a command line should sit through ends the run with the reason.
        let got: Result<(), _> = patiently(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(SendError::throttled(
                ErrorCode::IpBan,
                "banned",
                READ_MAX_WAIT + Duration::from_secs(1),
            ))
        })
        .await;
        assert!(matches!(got, Err(SendError::Throttled { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn long_answers_are_shortened() {
        let long = "x".repeat(RESPONSE_KEEP_CHARS + 10);
        assert_eq!(shorten(&long).chars().count(), RESPONSE_KEEP_CHARS + 1);
        assert_eq!(shorten("ok"), "ok");
    }
}

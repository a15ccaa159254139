//! What a DingTalk answer means for the outbox: delivered, retry later, wait out a throttle, or
//! give up (docs/dingtalk-protocol.md §3.3, §4.3, §5.3, §6.1, §7). HTTP 200 is not success:
//! the old and webhook APIs put `errcode` in a 200 body, the new API answers 4xx/5xx with
//! `{"code","message"}`, and the IP ban answers `{"status":1111,"wait":5,"punish":"deny"}`.
//! Every code the reference lists has a row in [`classify_errcode`] or [`classify_api_code`];
//! an unknown code is permanent, because retrying a request DingTalk refused for a reason we
//! cannot name only repeats the refusal (the dead letter carries the code for the admin).

use std::time::Duration;

use serde_json::Value;

/// How long a QPS throttle (90002, 90018, 90019, new-API throttling codes, 429 without
/// `Retry-After`) is waited out: the reference says "≥ 1 s backoff" (§7).
pub const QPS_WAIT: Duration = Duration::from_secs(1);

/// How long the custom robot's 20-a-minute throttle (130101, 410100) is waited out before the
/// next try: "retry after ≥ 60 s (up to 10 min)" (§5.3).
pub const ROBOT_THROTTLE_WAIT: Duration = Duration::from_secs(60);

/// What DingTalk (or the transport) answered, as the classifier saw it: the `code` label of
/// `tiaochu_dingtalk_errors_total`. Kept as data beside the Chinese reason so nothing has to
/// read a code back out of text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `errcode` of the old and webhook APIs (`90018`, `-1`, `310000`).
    Errcode(i64),
    /// `code` of the new API (`Forbidden.AccessDenied.IpNotInWhiteList`), never empty; the
    /// status is kept for a code that has nothing printable.
    Api { status: u16, code: String },
    /// A non-2xx HTTP status that came without a code.
    Http(u16),
    /// The IP ban `{"status":1111,"punish":"deny"}` (§7).
    IpBan,
    /// No answer within the request timeout.
    Timeout,
    /// No connection to DingTalk.
    Connect,
    /// Any other transport failure (connection reset, body cut off).
    Network,
    /// Not a DingTalk code: our own checks (unknown channel, expired session URL, malformed
    /// payload) or an answer that says "failed" without a code (`success:false`).
    Other,
    /// Not sent at all: the last access-token fetch failed and its answer still stands (see
    /// `DingtalkClient::access_token`). Comes with [`SendError::Throttled`]; the outbox puts the
    /// row back without counting an attempt, and it is not counted as a DingTalk error.
    TokenWait,
}

/// Why a send did not (fully) succeed. `reason` is Chinese for the dead-letter list and the
/// admin notice; it never holds a token, secret or signed URL. `code` is what the classifier
/// saw ([`ErrorCode`]). Build values with the constructors ([`SendError::retryable`], …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Transient (5xx, network, timeout, `-1` busy): retry with backoff, no sooner than
    /// `retry_after` when DingTalk named a time.
    #[error("暂时失败：{reason}")]
    Retryable {
        reason: String,
        code: ErrorCode,
        retry_after: Option<Duration>,
    },
    /// DingTalk asked us to slow down: retry no sooner than `wait`.
    #[error("被钉钉限流：{reason}")]
    Throttled {
        reason: String,
        code: ErrorCode,
        wait: Duration,
    },
    /// Retrying cannot help (bad request, permission, configuration, quota): dead-letter it.
    #[error("{reason}")]
    Permanent { reason: String, code: ErrorCode },
}

impl SendError {
    /// A transient failure with no time named by DingTalk.
    pub fn retryable(code: ErrorCode, reason: impl Into<String>) -> SendError {
        SendError::retryable_after(code, reason, None)
    }

    /// A transient failure not to be retried before `retry_after` (when given).
    pub fn retryable_after(
        code: ErrorCode,
        reason: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> SendError {
        SendError::Retryable {
            reason: reason.into(),
            code,
            retry_after,
        }
    }

    /// DingTalk asked us to wait `wait` before the next try.
    pub fn throttled(code: ErrorCode, reason: impl Into<String>, wait: Duration) -> SendError {
        SendError::Throttled {
            reason: reason.into(),
            code,
            wait,
        }
    }

    /// Whether this failure is DingTalk limiting the whole API (every call waits it out), not
    /// one message: a card whose create has not gone out yet is that card's wait alone.
    pub fn limits_the_api(&self) -> bool {
        match self {
            SendError::Throttled {
                code: ErrorCode::Api { code, .. },
                ..
            } => code != "card.instanceNotExist",
            SendError::Throttled { .. } => true,
            _ => false,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(code: ErrorCode, reason: impl Into<String>) -> SendError {
        SendError::Permanent {
            reason: reason.into(),
            code,
        }
    }

    /// The outcome as a metrics label: `retryable`, `throttled` or `permanent`.
    pub fn kind_label(&self) -> &'static str {
        match self {
            SendError::Retryable { .. } => "retryable",
            SendError::Throttled { .. } => "throttled",
            SendError::Permanent { .. } => "permanent",
        }
    }

    /// The code the classifier saw.
    pub fn code(&self) -> &ErrorCode {
        match self {
            SendError::Retryable { code, .. }
            | SendError::Throttled { code, .. }
            | SendError::Permanent { code, .. } => code,
        }
    }

    /// The Chinese reason, without the kind prefix [`Display`](std::fmt::Display) adds.
    pub fn reason(&self) -> &str {
        match self {
            SendError::Retryable { reason, .. }
            | SendError::Throttled { reason, .. }
            | SendError::Permanent { reason, .. } => reason,
        }
    }
}

/// The verdict on one HTTP answer, before the channel looks at the body of a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx without an error code; the caller still checks channel-specific fields
    /// (`deliverResults[].success`, `flowControlledStaffIdList`, …).
    Ok,
    /// The access token was refused (HTTP 401 or `InvalidAuthentication`): refresh and retry
    /// once (§3.3).
    TokenInvalid,
    Failed(SendError),
}

/// Classifies one answer: `status` is the HTTP status, `retry_after` the parsed `Retry-After`
/// header, `body` the raw body (JSON or not).
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Verdict {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    // §7: >10 000 calls in 20 s from one IP → ban for `wait` minutes; no errcode at all.
    if json.get("punish").and_then(Value::as_str) == Some("deny")
        || json.get("status").and_then(Value::as_i64) == Some(1111)
    {
        let minutes = json.get("wait").and_then(Value::as_u64).unwrap_or(5);
        return Verdict::Failed(SendError::throttled(
            ErrorCode::IpBan,
            format!("本机 IP 调用过于频繁被钉钉封禁 {minutes} 分钟"),
            Duration::from_secs(minutes.saturating_mul(60)),
        ));
    }
    let code = json.get("code").and_then(Value::as_str).unwrap_or("");
    let message = json.get("message").and_then(Value::as_str).unwrap_or("");
    if status == 401 || code == "InvalidAuthentication" {
        return Verdict::TokenInvalid;
    }
    if let Some(errcode) = json.get("errcode").and_then(Value::as_i64) {
        let errmsg = json.get("errmsg").and_then(Value::as_str).unwrap_or("");
        if let Some(e) = classify_errcode(errcode, errmsg) {
            return Verdict::Failed(e);
        }
    }
    if (200..300).contains(&status) {
        return Verdict::Ok;
    }
    Verdict::Failed(classify_api_code(status, code, message, retry_after))
}

/// The `errcode` table of the old and webhook APIs (§5.3, §7). None for 0 (success).
pub fn classify_errcode(errcode: i64, errmsg: &str) -> Option<SendError> {
    let with = |meaning: &str| format!("钉钉错误码 {errcode}（{meaning}）：{errmsg}");
    let code = ErrorCode::Errcode(errcode);
    Some(match errcode {
        0 => return None,
        // 系统繁忙 [C].
        -1 => SendError::retryable(code, with("系统繁忙")),
        // 90002: global per-API limit; 90018/90019: per-app / per-org QPS limit [C].
        90002 | 90018 | 90019 => SendError::throttled(code, with("调用频率超限"), QPS_WAIT),
        // Custom robot: 20 messages a minute, then a 10-minute penalty (130101 old, 410100 new).
        130101 | 410100 => {
            SendError::throttled(code, with("群机器人发送过快"), ROBOT_THROTTLE_WAIT)
        }
        // Monthly API quota of the organisation: nothing to gain before next month.
        90020 => SendError::permanent(code, with("本月接口调用量已用完")),
        // 88 + sub_code (e.g. 60011): permission.
        88 | 60011 => SendError::permanent(code, with("没有权限")),
        // Keywords missing, sign mismatch, IP not allow-listed or timestamp off.
        310000 => SendError::permanent(code, with("关键词、签名、IP 白名单或时间戳校验未通过")),
        300001 | 300005 | 400101 => SendError::permanent(code, with("机器人 access_token 不存在")),
        400106 => SendError::permanent(code, with("机器人不存在")),
        400102 => SendError::permanent(code, with("机器人已停用")),
        400013 => SendError::permanent(code, with("群已解散")),
        // Our own request is malformed: a bug, retrying repeats it.
        40035 => SendError::permanent(code, with("缺少参数 access_token")),
        43002 => SendError::permanent(code, with("需要 POST 请求")),
        43004 => SendError::permanent(code, with("Content-Type 无效")),
        _ => SendError::permanent(code, with("未知错误码")),
    })
}

/// New-API codes that mean "slow down" whatever the HTTP status: QPS limits
/// (`Forbidden.AccessDenied.QpsLimit…`), gateway throttling (`Throttling…`) and the robot-send
/// codes other clients treat as rate limits (§4.3, [R]).
fn is_throttling_code(code: &str) -> bool {
    code.contains("QpsLimit")
        || code.starts_with("Throttling")
        || matches!(
            code,
            "send.too.fast" | "too.many.group" | "too.many.people" | "send.byToken.tooFast"
        )
}

/// How long an update of a card that does not exist yet waits before trying again.
pub const CARD_NOT_YET_WAIT: Duration = Duration::from_secs(10);

/// A non-2xx answer of the new API (`{"code","message"}`, §7).
pub fn classify_api_code(
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> SendError {
    let detail = if code.is_empty() && message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {code}：{message}")
    };
    let error_code = if code.is_empty() {
        ErrorCode::Http(status)
    } else {
        ErrorCode::Api {
            status,
            code: code.to_string(),
        }
    };
    if status == 429 || is_throttling_code(code) {
        return SendError::throttled(
            error_code,
            format!("调用频率超限（{detail}）"),
            retry_after.unwrap_or(QPS_WAIT).max(QPS_WAIT),
        );
    }
    match status {
        // Server side or gateway timeout: transient; the idempotent ids make retries safe.
        500..=599 | 408 => SendError::retryable_after(
            error_code,
            format!("钉钉服务暂时不可用（{detail}）"),
            retry_after,
        ),
        // 403 Forbidden.AccessDenied.*: permission, IP allow-list or monthly quota
        // (ApiCountLimitForOrg); none passes by retrying.
        403 => SendError::permanent(error_code, format!("钉钉拒绝访问（{detail}）")),
        // An update can overtake its card's create (the create waiting for a retry, or held by
        // a process that died): the card will exist once the create goes out, so wait for it.
        // A create that never succeeds dead-letters itself; the update then runs out of attempts.
        // A steady wait, not a growing backoff: the create is at most a lease (60 s) away.
        404 | 400 if code == "card.instanceNotExist" => SendError::throttled(
            error_code,
            format!("卡片尚未创建，稍后更新（{detail}）"),
            CARD_NOT_YET_WAIT,
        ),
        // invalidParameter.*, param.openSpaceIdInvalid, card codes (§6.1): all our fault.
        400..=499 => SendError::permanent(error_code, format!("钉钉拒绝了请求（{detail}）")),
        // 1xx/3xx never come from these APIs; a proxy in between is the likely cause.
        _ => SendError::retryable(error_code, format!("意外的应答（{detail}）")),
    }
}

/// A transport failure: no answer, so it may or may not have reached DingTalk. Always
/// retryable (§7: network and timeout are transient).
pub fn transport(err: &reqwest::Error) -> SendError {
    let (code, what) = if err.is_timeout() {
        (ErrorCode::Timeout, "请求超时")
    } else if err.is_connect() {
        (ErrorCode::Connect, "无法连接钉钉")
    } else {
        (ErrorCode::Network, "网络错误")
    };
    // reqwest's Display includes the URL, which for webhooks carries access_token and sign.
    SendError::retryable(code, what)
}

/// Parses `Retry-After` given in seconds; the HTTP-date form is not used by DingTalk and is
/// ignored.
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl ErrorCode {
    /// The `code` label of an [`ErrorCode`] for `tiaochu_dingtalk_errors_total`: the `errcode` (`90018`, `-1`), the new API's code
    /// (`Forbidden.AccessDenied.IpNotInWhiteList`, or `http_<status>` when nothing of it is
    /// printable), `http_<status>` for a bare status, `1111` for the IP ban, `timeout`, `connect`,
    /// `network`, and `other` for failures that carry no DingTalk code. Only `[A-Za-z0-9._-]`
    /// survive, at most 64 characters, so a label never needs escaping.
    pub fn label(&self) -> String {
        match self {
            ErrorCode::Errcode(n) => n.to_string(),
            ErrorCode::Api { status, code } => {
                let code = sanitize_label(code);
                if code.is_empty() {
                    format!("http_{status}")
                } else {
                    code
                }
            }
            ErrorCode::Http(status) => format!("http_{status}"),
            ErrorCode::IpBan => "1111".to_string(),
            ErrorCode::Timeout => "timeout".to_string(),
            ErrorCode::Connect => "connect".to_string(),
            ErrorCode::Network => "network".to_string(),
            ErrorCode::Other => "other".to_string(),
            ErrorCode::TokenWait => "token_wait".to_string(),
        }
    }
}

fn sanitize_label(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_labelled_from_what_the_classifier_saw() {
        let label = |e: SendError| e.code().label();
        assert_eq!(
            label(classify_errcode(90018, "qps").expect("error")),
            "90018"
        );
        assert_eq!(label(classify_errcode(-1, "busy").expect("error")), "-1");
        assert_eq!(
            label(classify_api_code(
                403,
                "Forbidden.AccessDenied.IpNotInWhiteList",
                "ip",
                None
            )),
            "Forbidden.AccessDenied.IpNotInWhiteList"
        );
        assert_eq!(label(classify_api_code(503, "", "", None)), "http_503");
        assert_eq!(
            label(classify_api_code(429, "", "slow down", None)),
            "http_429"
        );
        let ban = classify(200, None, br#"{"status":1111,"wait":5,"punish":"deny"}"#);
        match ban {
            Verdict::Failed(e) => assert_eq!(label(e), "1111"),
            other => panic!("the ban is a failure: {other:?}"),
        }
        assert_eq!(
            label(SendError::permanent(ErrorCode::Other, "完全不同的原因")),
            "other"
        );
        // The reason is text for people: a code-like phrase in it is not a label.
        assert_eq!(
            label(SendError::permanent(
                ErrorCode::Other,
                "钉钉错误码 90018（x）：HTTP 503"
            )),
            "other"
        );
        for (code, want) in [
            (ErrorCode::Timeout, "timeout"),
            (ErrorCode::Connect, "connect"),
            (ErrorCode::Network, "network"),
            (ErrorCode::Http(401), "http_401"),
        ] {
            assert_eq!(code.label(), want);
        }
    }

    #[test]
    fn api_codes_are_sanitised_and_bounded() {
        let label = |code: &str| classify_api_code(400, code, "x", None).code().label();
        assert_eq!(label("a\"b\nc"), "abc");
        assert_eq!(
            label("参数错误"),
            "http_400",
            "nothing printable: the status"
        );
        assert_eq!(label(&"x".repeat(100)), "x".repeat(64));
        assert_eq!(label("invalid_Param-1.x"), "invalid_Param-1.x");
    }

    #[test]
    fn an_update_of_a_card_not_created_yet_is_retried() {
        assert!(matches!(
            classify_api_code(400, "card.instanceNotExist", "卡片实例不存在", None),
            SendError::Throttled { wait, .. } if wait == CARD_NOT_YET_WAIT
        ));
        assert!(matches!(
            classify_api_code(400, "param.invalid", "x", None),
            SendError::Permanent { .. }
        ));
    }

    #[test]
    fn only_a_rate_limit_holds_the_whole_api() {
        let not_yet = classify_api_code(400, "card.instanceNotExist", "卡片实例不存在", None);
        assert!(!not_yet.limits_the_api(), "one card's wait: {not_yet:?}");
        let qps = classify_api_code(403, "Forbidden.AccessDenied.QpsLimitForApi", "超限", None);
        assert!(qps.limits_the_api(), "{qps:?}");
        let busy = classify_api_code(400, "param.invalid", "x", None);
        assert!(!busy.limits_the_api());
    }

    fn failed(v: Verdict) -> SendError {
        match v {
            Verdict::Failed(e) => e,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn http_200_with_errcode_is_not_success() {
        assert_eq!(
            classify(200, None, br#"{"errcode":0,"errmsg":"ok"}"#),
            Verdict::Ok
        );
        assert!(matches!(
            failed(classify(200, None, br#"{"errcode":310000,"errmsg":"sign not match"}"#)),
            SendError::Permanent { reason, .. } if reason.contains("310000") && reason.contains("sign not match")
        ));
        assert!(matches!(
            failed(classify(200, None, br#"{"errcode":-1,"errmsg":"busy"}"#)),
            SendError::Retryable { .. }
        ));
    }

    #[test]
    fn throttling_codes_wait() {
        for code in [130101, 410100] {
            let body = format!(r#"{{"errcode":{code},"errmsg":"send too fast"}}"#);
            assert_eq!(
                failed(classify(200, None, body.as_bytes())),
                SendError::throttled(
                    ErrorCode::Errcode(code),
                    format!("钉钉错误码 {code}（群机器人发送过快）：send too fast"),
                    ROBOT_THROTTLE_WAIT
                )
            );
        }
        for code in [90002, 90018, 90019] {
            let body = format!(r#"{{"errcode":{code},"errmsg":"qps"}}"#);
            assert!(matches!(
                failed(classify(200, None, body.as_bytes())),
                SendError::Throttled { wait, .. } if wait == QPS_WAIT
            ));
        }
        assert!(matches!(
            failed(classify(429, Some(Duration::from_secs(7)), b"")),
            SendError::Throttled { wait, .. } if wait == Duration::from_secs(7)
        ));
        assert!(matches!(
            failed(classify(
                403,
                None,
                br#"{"code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi","message":"m"}"#
            )),
            SendError::Throttled { .. }
        ));
        assert!(matches!(
            failed(classify(
                400,
                None,
                br#"{"code":"send.too.fast","message":"m"}"#
            )),
            SendError::Throttled { .. }
        ));
        assert!(matches!(
            failed(classify(200, None, br#"{"status":1111,"wait":5,"punish":"deny"}"#)),
            SendError::Throttled { wait, .. } if wait == Duration::from_secs(300)
        ));
    }

    #[test]
    fn token_and_permanent_and_transient() {
        assert_eq!(classify(401, None, b""), Verdict::TokenInvalid);
        assert_eq!(
            classify(
                400,
                None,
                br#"{"code":"InvalidAuthentication","message":"x"}"#
            ),
            Verdict::TokenInvalid
        );
        assert!(matches!(
            failed(classify(400, None, br#"{"code":"invalidParameter.userIds.overMax","message":"m"}"#)),
            SendError::Permanent { reason, .. } if reason.contains("invalidParameter.userIds.overMax")
        ));
        assert!(matches!(
            failed(classify(
                403,
                None,
                br#"{"code":"Forbidden.AccessDenied.ApiCountLimitForOrg","message":"m"}"#
            )),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            failed(classify(503, Some(Duration::from_secs(3)), b"<html>")),
            SendError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            failed(classify(500, None, b"")),
            SendError::Retryable {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            failed(classify(
                200,
                None,
                br#"{"errcode":90020,"errmsg":"quota"}"#
            )),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            failed(classify(200, None, br#"{"errcode":123456,"errmsg":"?"}"#)),
            SendError::Permanent { reason, .. } if reason.contains("未知错误码")
        ));
    }

    #[test]
    fn each_answer_carries_the_code_it_was_classified_by() {
        let code = |v: Verdict| failed(v).code().clone();
        assert_eq!(
            code(classify(200, None, br#"{"errcode":90018,"errmsg":"qps"}"#)),
            ErrorCode::Errcode(90018)
        );
        assert_eq!(
            code(classify(200, None, br#"{"errcode":-1,"errmsg":"busy"}"#)),
            ErrorCode::Errcode(-1)
        );
        assert_eq!(
            code(classify(
                403,
                None,
                br#"{"code":"Forbidden.AccessDenied.IpNotInWhiteList","message":"ip"}"#
            )),
            ErrorCode::Api {
                status: 403,
                code: "Forbidden.AccessDenied.IpNotInWhiteList".to_string()
            }
        );
        assert_eq!(
            code(classify(503, None, br#"{"message":"busy"}"#)),
            ErrorCode::Http(503)
        );
        assert_eq!(code(classify(429, None, b"")), ErrorCode::Http(429));
        assert_eq!(
            code(classify(
                200,
                None,
                br#"{"status":1111,"wait":5,"punish":"deny"}"#
            )),
            ErrorCode::IpBan
        );
        let e = classify_api_code(500, "ServiceUnavailable", "m", Some(Duration::from_secs(2)));
        assert_eq!(
            e,
            SendError::retryable_after(
                ErrorCode::Api {
                    status: 500,
                    code: "ServiceUnavailable".to_string()
                },
                "钉钉服务暂时不可用（HTTP 500 ServiceUnavailable：m）",
                Some(Duration::from_secs(2))
            )
        );
        assert_eq!(
            e.reason(),
            "钉钉服务暂时不可用（HTTP 500 ServiceUnavailable：m）"
        );
    }

    #[tokio::test]
    async fn transport_failures_are_coded_by_kind() {
        // Straight to loopback whatever proxy the environment names.
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        // A port that was just free refuses the connection.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let err = client
            .get(format!("http://{closed}/"))
            .send()
            .await
            .expect_err("nothing listens");
        assert_eq!(
            transport(&err),
            SendError::retryable(ErrorCode::Connect, "无法连接钉钉")
        );
        // A listener that accepts but never answers runs into the timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = silent.local_addr().expect("addr");
        let err = client
            .get(format!("http://{addr}/"))
            .timeout(Duration::from_millis(100))
            .send()
            .await
            .expect_err("no answer");
        assert_eq!(
            transport(&err),
            SendError::retryable(ErrorCode::Timeout, "请求超时")
        );
        drop(silent);
    }

    #[test]
    fn retry_after_seconds_only() {
        assert_eq!(
            parse_retry_after(Some(" 12 ")),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }
}

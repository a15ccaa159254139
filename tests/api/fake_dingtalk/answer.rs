//! How every route answers, shared by all of them: one [`Req`] per request records its answer,
//! its deliveries and its violations, draws and answers injected faults in DingTalk's shapes
//! (docs/dingtalk-protocol.md §7: 5xx, throttling codes, 429 with Retry-After, lost answers),
//! and the common checks — a JSON body with exactly the documented keys, the new API's token
//! header and the old API's `?access_token=` (§3.1, §3.2), a withheld permission (new-API 403,
//! old-API `errcode` 88).

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};
use tiaochu::clock::Clock;

use super::record::{Inner, Shared};
use super::{APP_KEY, Delivery, Fault, Seen, request_ident};

pub(super) fn api_error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        axum::Json(json!({"code": code, "message": message, "requestid": "fake-req"})),
    )
        .into_response()
}

pub(super) fn errcode(code: i64, msg: &str) -> Response {
    axum::Json(json!({"errcode": code, "errmsg": msg})).into_response()
}

pub(super) fn ok_json(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// One request being answered: its route, which request it is, and whether its answer will
/// be lost.
pub(super) struct Req {
    pub(super) shared: Shared,
    pub(super) route: &'static str,
    pub(super) ident: u64,
    /// The work is done but the answer comes after the client gave up
    /// ([`Fault::SlowAfterDeliver`]).
    pub(super) lost: bool,
}

impl Req {
    pub(super) fn new(shared: &Shared, route: &'static str, body: &[u8]) -> Req {
        Req {
            shared: shared.clone(),
            route,
            ident: request_ident(body),
            lost: false,
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    pub(super) fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    pub(super) fn push_seen(&self, status: u16, fault: Option<Fault>) {
        let seen = Seen {
            route: self.route,
            status,
            fault,
            ident: self.ident,
            at: self.now(),
        };
        self.lock().requests.push(seen);
    }

    /// Records the answer; a lost one was recorded (status 0) when its fault was drawn.
    pub(super) fn record(&self, status: u16) {
        if !self.lost {
            self.push_seen(status, None);
        }
    }

    pub(super) fn deliver(&self, key: String, user: Option<String>, text: String) {
        let delivery = Delivery {
            route: self.route,
            key,
            user,
            at: self.now(),
            text,
            ident: self.ident,
            acked: !self.lost,
        };
        self.lock().deliveries.push(delivery);
    }

    /// Records a strictness violation and answers it as DingTalk would (new API style).
    pub(super) fn reject(&self, what: String, code: &str) -> Response {
        self.violation(&what);
        api_error(400, code, &what)
    }

    pub(super) fn violation(&self, what: &str) {
        let line = format!("{}: {what}", self.route);
        self.lock().violations.push(line);
    }

    /// With [`FakeDingtalk::enforce_waits`]: this request must not come before a wait an
    /// earlier answer asked for.
    pub(super) fn check_waits(&self) {
        let now = self.now();
        let mut early = Vec::new();
        {
            let s = self.lock();
            if !s.enforce_waits || self.route == "token" {
                return;
            }
            if let Some((at, until)) = s.owed.get(&self.ident)
                && now < *until
            {
                early.push(format!(
                    "{at} 的限流应答要求等到 {until}，{now} 又收到同一请求"
                ));
            }
            if self.route == "custom_robot"
                && let Some((at, until)) = s
                    .robot_blocked
                    .iter()
                    .find(|(at, until)| *at < now && now < *until)
            {
                early.push(format!(
                    "自定义机器人在 {at} 被限流至 {until}，{now} 又收到发送"
                ));
            }
        }
        for e in early {
            self.violation(&e);
        }
    }

    /// Notes the wait a throttling answer asks for (see [`Req::check_waits`]).
    pub(super) fn owe_wait(&self, fault: Fault) {
        let Some(wait) = fault.asked_wait(self.route) else {
            return;
        };
        let now = self.now();
        let mut s = self.lock();
        if !s.enforce_waits || self.route == "token" {
            return;
        }
        s.waits_asked += 1;
        let until = now + wait;
        s.owed.insert(self.ident, (now, until));
        if self.route == "custom_robot" {
            s.robot_blocked.push((now, until));
        }
    }

    /// Draws a fault — `queued` routes take [`FakeDingtalk::fail_next`] faults first — and
    /// answers it. None: do the work, and if the fault was [`Fault::SlowAfterDeliver`] lose the
    /// answer ([`Req::finish`]).
    pub(super) async fn fault(&mut self, queued: bool) -> Option<Response> {
        self.check_waits();
        let fault = {
            let mut s = self.lock();
            if queued {
                s.fault(self.route, self.ident)
            } else {
                s.random_fault(self.route, self.ident)
            }
        }?;
        if fault == Fault::SlowAfterDeliver {
            self.push_seen(0, Some(fault));
            self.lost = true;
            return None;
        }
        Some(self.fault_answer(fault).await)
    }

    /// How DingTalk answers `fault` on this route.
    pub(super) async fn fault_answer(&self, fault: Fault) -> Response {
        let webhook = matches!(self.route, "session_reply" | "custom_robot");
        let answer = match fault {
            Fault::Status(s) => api_error(s, "ServiceUnavailable", "系统繁忙"),
            Fault::Throttle if webhook => {
                if self.route == "custom_robot" {
                    errcode(130101, "send too fast, exceed 20 times per minute")
                } else {
                    errcode(410100, "发送速度太快而限流")
                }
            }
            Fault::Throttle => api_error(
                403,
                "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
                "调用频率超限",
            ),
            Fault::Errcode(code) => {
                let msg = match code {
                    130101 => "send too fast, exceed 20 times per minute",
                    410100 => "发送速度太快而限流",
                    _ => "接口调用超过限制",
                };
                errcode(code, msg)
            }
            Fault::ApiThrottle { status, code } => api_error(status, code, "调用频率超限"),
            Fault::TooMany { retry_after } => {
                let mut r = api_error(429, "Throttling", "too many requests");
                r.headers_mut().insert(
                    "retry-after",
                    retry_after.to_string().parse().expect("header value"),
                );
                r
            }
            Fault::Slow | Fault::SlowAfterDeliver => {
                self.push_seen(0, Some(fault));
                let slow = self.lock().slow;
                tokio::time::sleep(slow).await;
                return api_error(503, "ServiceUnavailable", "超时");
            }
        };
        self.push_seen(answer.status().as_u16(), Some(fault));
        self.owe_wait(fault);
        answer
    }

    /// Hands out `answer`; a lost one only after the client's timeout.
    pub(super) async fn finish(&self, answer: Response) -> Response {
        if self.lost {
            let slow = self.lock().slow;
            tokio::time::sleep(slow).await;
        }
        answer
    }
}

pub(super) fn json_body(
    req: &Req,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(Box::new(req.reject(
            format!("Content-Type 应为 application/json，实际 {ct:?}"),
            "param.invalid",
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Box::new(
            req.reject("请求体不是 JSON 对象".into(), "param.invalid"),
        )),
    }
}

/// Keys must be exactly `required` plus any of `optional`.
pub(super) fn check_keys(
    m: &serde_json::Map<String, Value>,
    required: &[&str],
    optional: &[&str],
) -> Result<(), String> {
    for k in required {
        if !m.contains_key(*k) {
            return Err(format!("缺少字段 {k}"));
        }
    }
    for k in m.keys() {
        if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
            return Err(format!("未知字段 {k}"));
        }
    }
    Ok(())
}

/// Checks the token header; `Err` is the answer. A missing header is a violation, an unknown or
/// expired token is DingTalk's ordinary 401.
pub(super) fn check_token(req: &Req, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
    else {
        let r = req.reject(
            "缺少 x-acs-dingtalk-access-token 请求头".into(),
            "MissingAuthentication",
        );
        req.record(400);
        return Err(Box::new(r));
    };
    let now = req.now();
    let valid = req
        .lock()
        .tokens
        .get(token)
        .is_some_and(|expiry| now < *expiry);
    if valid {
        Ok(())
    } else {
        req.record(401);
        Err(Box::new(api_error(
            401,
            "InvalidAuthentication",
            "不合法的access_token",
        )))
    }
}

pub(super) fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

/// Withholds the answer when the app lacks `scope`: new-API style (HTTP 403) or old-API style
/// (`errcode` 88 in a 200 body, the text of a captured live refusal).
pub(super) fn permission_refused(req: &Req, scope: &str, old_api: bool) -> Option<Response> {
    if !req.lock().denied.contains(scope) {
        return None;
    }
    if old_api {
        req.record(200);
        return Some(ok_json(json!({
            "errcode": 88,
            "errmsg": format!(
                "ding talk error[subcode=60011,submsg=应用尚未开通所需的权限：[{scope}]，点击链接申请并开通即可：https://open-dev.dingtalk.com/appscope/apply?content={APP_KEY}%23{scope}, {{requiredScopes=[{scope}]}}]"
            ),
            "request_id": "fake-req",
        })));
    }
    req.record(403);
    Some(api_error(
        403,
        "Forbidden.AccessDenied.AccessTokenPermissionDenied",
        &format!("应用尚未开通所需的权限：[{scope}]"),
    ))
}

/// The old API's token check (§3.2): `?access_token=` with a token this fake issued. A missing
/// one is a violation; an unknown or expired one is DingTalk's `errcode` 40014 ([R]).
pub(super) fn check_oapi_token(req: &Req, query: &Option<String>) -> Result<(), Box<Response>> {
    let pairs = query_pairs(query);
    let Some(token) = pairs
        .iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|v| !v.is_empty())
    else {
        req.violation("旧版接口缺少 access_token 查询参数");
        req.record(200);
        return Err(Box::new(errcode(40035, "缺少参数 access_token")));
    };
    let now = req.now();
    let valid = req
        .lock()
        .tokens
        .get(&token)
        .is_some_and(|expiry| now < *expiry);
    if valid {
        Ok(())
    } else {
        req.record(200);
        Err(Box::new(errcode(40014, "不合法的access_token")))
    }
}

//! The two webhooks on oapi: the `sessionWebhook` reply to a received message
//! (docs/dingtalk-protocol.md §1.5; no token, a session in the URL) and the signed custom group
//! robot (§5: `timestamp` within an hour and `sign` URL-encoded as §5.1 computes it, the
//! text/markdown bodies of §5.2, at most 20 sends a minute, §5.3). Their errors are `errcode`s
//! in an HTTP 200 body.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use jiff::SignedDuration;
use serde_json::Value;
use tiaochu::dingtalk::sign::custom_robot_sign;

use super::answer::{Req, check_keys, errcode, json_body, query_pairs};
use super::record::Shared;
use super::robot_api::marker;
use super::{HOOK_SECRET, HOOK_TOKEN};

/// The custom-robot body (§5.2): text, markdown, actionCard or link, with an optional `at`.
pub(super) fn check_robot_body(m: &serde_json::Map<String, Value>) -> Result<String, String> {
    let kind = m.get("msgtype").and_then(Value::as_str).unwrap_or("");
    let (fields, text): (&[&str], String) = match kind {
        "text" => (
            &["content"],
            m["text"]["content"].as_str().unwrap_or("").to_string(),
        ),
        "markdown" => (
            &["title", "text"],
            format!(
                "{}\n{}",
                m["markdown"]["title"].as_str().unwrap_or(""),
                m["markdown"]["text"].as_str().unwrap_or("")
            ),
        ),
        other => return Err(format!("msgtype 不支持：{other:?}")),
    };
    check_keys(m, &["msgtype", kind], &["at"])?;
    let Some(inner) = m[kind].as_object() else {
        return Err(format!("{kind} 不是对象"));
    };
    check_keys(inner, fields, &[])?;
    for f in fields {
        if inner[*f].as_str().is_none_or(str::is_empty) {
            return Err(format!("{kind}.{f} 应为非空字符串"));
        }
    }
    if let Some(at) = m.get("at") {
        let Some(at) = at.as_object() else {
            return Err("at 不是对象".into());
        };
        check_keys(at, &[], &["atUserIds", "atMobiles", "isAtAll"])?;
        if let Some(ids) = at.get("atUserIds")
            && !ids
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string))
        {
            return Err("at.atUserIds 应为字符串数组".into());
        }
    }
    Ok(text)
}

pub(super) async fn session_reply(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "session_reply", &body);
    let pairs = query_pairs(&query);
    if headers.contains_key("x-acs-dingtalk-access-token")
        || pairs.iter().any(|(k, _)| k == "access_token")
    {
        let r = req.reject("sessionWebhook 不应带 access token".into(), "param.invalid");
        req.record(400);
        return r;
    }
    if !pairs.iter().any(|(k, v)| k == "session" && !v.is_empty()) {
        req.record(200);
        return errcode(300005, "session is not exist");
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = robot_message(&req, &headers, &body);
    req.finish(answer).await
}

/// The work of both webhooks once the URL passed: a valid body is delivered.
pub(super) fn robot_message(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let text = match check_robot_body(&m) {
        Ok(t) => t,
        Err(e) => {
            req.violation(&e);
            req.record(200);
            return errcode(40035, &e);
        }
    };
    req.deliver(marker(&text), None, text);
    req.record(200);
    errcode(0, "ok")
}

pub(super) async fn custom_robot(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "custom_robot", &body);
    let now = req.now();
    let pairs = query_pairs(&query);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let sign_ok = match (get("access_token"), get("timestamp"), get("sign")) {
        (Some(token), Some(ts), Some(sign)) if token == HOOK_TOKEN => match ts.parse::<i64>() {
            Ok(ms) if (now.as_millisecond() - ms).abs() <= 3_600_000 => {
                // The sign must arrive URL-encoded exactly as §5.1 computes it.
                sign == custom_robot_sign(ms, HOOK_SECRET)
            }
            _ => false,
        },
        _ => false,
    };
    if !sign_ok {
        req.violation(&format!("签名、时间戳或 access_token 无效（{query:?}）"));
        req.record(200);
        return errcode(310000, "sign not match");
    }
    // DingTalk counts every request against the robot's 20-a-minute limit.
    let over = {
        let mut s = req.lock();
        s.robot_sends.push(now);
        let window_start = now - SignedDuration::from_secs(60);
        s.robot_sends.iter().filter(|t| **t > window_start).count() > 20
    };
    if over {
        req.violation("一分钟内超过 20 条");
        req.record(200);
        return errcode(130101, "send too fast, exceed 20 times per minute");
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = robot_message(&req, &headers, &body);
    req.finish(answer).await
}

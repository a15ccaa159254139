//! The OpenAPI robot sends and their token (docs/dingtalk-protocol.md §3.1, §4): the access
//! token, one-to-one `batchSend` (≤ 20 users, invalid and flow-controlled staff ids, §4.1) and
//! the group send (§4.2), each checking that `msgParam` is a JSON string with exactly the
//! fields of its `msgKey` (§4.3) and that every ActionCard button link is `https://` or a
//! correctly encoded `dtmd://` command (§6.5).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use jiff::SignedDuration;
use serde_json::{Value, json};

use super::answer::{Req, api_error, check_keys, check_token, json_body, ok_json};
use super::record::Shared;
use super::{APP_KEY, APP_SECRET, ROBOT_CODE};

pub(super) async fn token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "token", &body);
    let delay = req.lock().token_delay;
    tokio::time::sleep(delay).await;
    req.lock().token_calls += 1;
    // The token's own queue, then the random mix: queued message faults are meant for the
    // message the test sends next.
    let queued = req.lock().fail_next_token.pop_front();
    if let Some(fault) = queued {
        return req.fault_answer(fault).await;
    }
    if let Some(answer) = req.fault(false).await {
        return answer;
    }
    let answer = token_work(&req, &headers, &body);
    req.finish(answer).await
}

pub(super) fn token_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(&m, &["appKey", "appSecret"], &[]) {
        return req.reject(e, "param.invalid");
    }
    if m["appKey"] != APP_KEY || m["appSecret"] != APP_SECRET {
        req.record(400);
        return api_error(400, "invalidClientIdOrSecret", "无效的 appKey 或 appSecret");
    }
    let expiry = req.now() + SignedDuration::from_secs(7200);
    let value = {
        let mut s = req.lock();
        s.seq += 1;
        let value = format!("tok-{}", s.seq);
        s.tokens.insert(value.clone(), expiry);
        value
    };
    req.record(200);
    ok_json(json!({"accessToken": value, "expireIn": 7200}))
}

pub(super) async fn batch_send(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "batch_send", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = batch_send_work(&req, &headers, &body);
    req.finish(answer).await
}

pub(super) fn batch_send_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(&m, &["robotCode", "userIds", "msgKey", "msgParam"], &[]) {
        return req.reject(e, "param.invalid");
    }
    if m["robotCode"] != ROBOT_CODE {
        return req.reject("robotCode 不符".into(), "invalidParameter.robotCode.auth");
    }
    let Some(users) = m["userIds"].as_array().and_then(|a| {
        a.iter()
            .map(|u| u.as_str().filter(|s| !s.is_empty()).map(str::to_string))
            .collect::<Option<Vec<String>>>()
    }) else {
        return req.reject(
            "userIds 不是字符串数组".into(),
            "invalidParameter.userIds.invalid",
        );
    };
    if users.is_empty() {
        return req.reject("userIds 为空".into(), "invalidParameter.userIds.empty");
    }
    if users.len() > 20 {
        return req.reject(
            format!("userIds 超过 20 个（{}）", users.len()),
            "invalidParameter.userIds.overMax",
        );
    }
    let param = match check_msg_param(&m["msgKey"], &m["msgParam"]) {
        Ok(p) => p,
        Err(e) => return req.reject(e, "invalidParameter.msgParam.invalid"),
    };
    let text = param_text(&param);
    let key = marker(&text);
    let (mut invalid, mut flow, mut reached) = (Vec::new(), Vec::new(), Vec::new());
    {
        let mut s = req.lock();
        for user in &users {
            if s.invalid.contains(user) {
                invalid.push(user.clone());
            } else if s.flow_control_once.remove(user) {
                flow.push(user.clone());
            } else {
                reached.push(user.clone());
            }
        }
    }
    for user in reached {
        req.deliver(key.clone(), Some(user), text.clone());
    }
    req.record(200);
    ok_json(
        json!({"processQueryKey": next_key(&req.shared), "invalidStaffIdList": invalid,
                   "flowControlledStaffIdList": flow, "filteredStaffIdList": []}),
    )
}

pub(super) async fn group_send(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "group_send", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = group_send_work(&req, &headers, &body);
    req.finish(answer).await
}

pub(super) fn group_send_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(
        &m,
        &["robotCode", "openConversationId", "msgKey", "msgParam"],
        &["coolAppCode"],
    ) {
        return req.reject(e, "param.invalid");
    }
    if m["robotCode"] != ROBOT_CODE {
        return req.reject("robotCode 不符".into(), "invalidParameter.robotCode.auth");
    }
    if m["msgParam"].as_str().is_some_and(|p| p.len() > 15_000) {
        return req.reject(
            "msgParam 超过 15000 字节".into(),
            "invalidParameter.msgParam.invalid",
        );
    }
    let param = match check_msg_param(&m["msgKey"], &m["msgParam"]) {
        Ok(p) => p,
        Err(e) => return req.reject(e, "invalidParameter.msgParam.invalid"),
    };
    let cid = m["openConversationId"].as_str().unwrap_or("").to_string();
    if cid.is_empty() {
        return req.reject(
            "openConversationId 为空".into(),
            "invalidParameter.openConversationId.empty",
        );
    }
    if req.lock().bad_groups.contains(&cid) {
        req.record(400);
        return api_error(400, "robot.notInGroup", "机器人不在该群中");
    }
    let text = param_text(&param);
    req.deliver(marker(&text), None, text);
    req.record(200);
    ok_json(json!({"processQueryKey": next_key(&req.shared)}))
}

pub(super) fn is_unreserved_or_escape(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || b"-._~".contains(&c) => i += 1,
            _ => return false,
        }
    }
    true
}

pub(super) fn check_button_url(url: &str) -> Result<(), String> {
    if let Some(content) = url.strip_prefix("dtmd://dingtalkclient/sendMessage?content=") {
        if content.is_empty() || !is_unreserved_or_escape(content) {
            return Err(format!("dtmd 链接的 content 未正确编码：{url}"));
        }
        let decoded = percent_encoding::percent_decode_str(content).decode_utf8();
        if decoded.map_or(true, |d| d.trim().is_empty()) {
            return Err(format!("dtmd 链接的 content 不是有效的 UTF-8 文本：{url}"));
        }
        Ok(())
    } else if url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("按钮链接无效：{url}"))
    }
}

/// §4.3: msgParam is a JSON string of an object with exactly the msgKey's fields, all strings.
pub(super) fn check_msg_param(
    msg_key: &Value,
    msg_param: &Value,
) -> Result<serde_json::Map<String, Value>, String> {
    let Some(key) = msg_key.as_str() else {
        return Err("msgKey 不是字符串".into());
    };
    let Some(raw) = msg_param.as_str() else {
        return Err("msgParam 应为 JSON 字符串而不是对象".into());
    };
    let Ok(Value::Object(param)) = serde_json::from_str::<Value>(raw) else {
        return Err("msgParam 不是 JSON 对象的文本".into());
    };
    let mut fields: Vec<String> = match key {
        "sampleText" => vec!["content".into()],
        "sampleMarkdown" => vec!["title".into(), "text".into()],
        "sampleActionCard" => ["title", "text", "singleTitle", "singleURL"]
            .map(String::from)
            .to_vec(),
        k if k.starts_with("sampleActionCard") => {
            let n: usize = k["sampleActionCard".len()..]
                .parse()
                .map_err(|_| format!("msgKey 无效：{k}"))?;
            if !(2..=5).contains(&n) {
                return Err(format!("msgKey 无效：{k}"));
            }
            let mut f = vec!["title".to_string(), "text".to_string()];
            for i in 1..=n {
                f.push(format!("actionTitle{i}"));
                f.push(format!("actionURL{i}"));
            }
            f
        }
        other => return Err(format!("msgKey 无效：{other}")),
    };
    fields.sort();
    let mut got: Vec<String> = param.keys().cloned().collect();
    got.sort();
    if got != fields {
        return Err(format!("{key} 的参数应为 {fields:?}，实际 {got:?}"));
    }
    for (k, v) in &param {
        let Some(s) = v.as_str() else {
            return Err(format!("msgParam.{k} 不是字符串"));
        };
        if k.starts_with("actionURL") || k == "singleURL" {
            check_button_url(s)?;
        }
    }
    Ok(param)
}

pub(super) fn marker(text: &str) -> String {
    text.find("[#")
        .and_then(|start| {
            let rest = &text[start + 2..];
            rest.find(']').map(|end| rest[..end].to_string())
        })
        .unwrap_or_default()
}

pub(super) fn param_text(param: &serde_json::Map<String, Value>) -> String {
    ["title", "text", "content"]
        .iter()
        .filter_map(|k| param.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn next_key(shared: &Shared) -> String {
    let mut s = shared.lock();
    s.seq += 1;
    format!("pqk-{}", s.seq)
}

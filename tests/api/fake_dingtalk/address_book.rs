//! The read-only calls of going live (`roster sync`, `check-config --online`): the address
//! book — `contact/users/search` on the new API (token header, §3.1) and `topapi/v2/user/get`,
//! `topapi/v2/department/get` on the old one (`?access_token=`, §3.2) — and the robot query
//! `robot/plugins/query`. docs/dingtalk-protocol.md does not cover these routes; their shapes
//! and refusals follow DingTalk's API pages and a captured live answer ([R]), and a withheld
//! permission is answered as [`super::answer::permission_refused`] shows.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::ROBOT_CODE;
use super::answer::{
    Req, api_error, check_keys, check_oapi_token, check_token, errcode, json_body, ok_json,
    permission_refused,
};
use super::record::Shared;

pub(super) fn as_index(v: &Value, what: &str) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| format!("{what} 应为非负整数"))
}

pub(super) async fn contact_search(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "contact_search", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(r) = permission_refused(&req, "qyapi_addresslist_search", false) {
        return r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = contact_search_work(&req, &headers, &body);
    req.finish(answer).await
}

pub(super) fn contact_search_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    // `offset` is mandatory ([R]: "offset is mandatory" otherwise).
    if let Err(e) = check_keys(&m, &["queryWord", "offset", "size"], &["fullMatchField"]) {
        return req.reject(e, "invalidParameter");
    }
    let word = m["queryWord"].as_str().unwrap_or("").to_string();
    if word.is_empty() {
        return req.reject("queryWord 应为非空字符串".into(), "invalidParameter");
    }
    let (offset, size) = match (
        as_index(&m["offset"], "offset"),
        as_index(&m["size"], "size"),
    ) {
        (Ok(o), Ok(s)) if (1..=50).contains(&s) => (o as usize, s as usize),
        (Ok(_), Ok(s)) => {
            return req.reject(format!("size 应在 1–50 之间，实际 {s}"), "invalidParameter");
        }
        (Err(e), _) | (_, Err(e)) => return req.reject(e, "invalidParameter"),
    };
    let exact = match m.get("fullMatchField") {
        None => false,
        Some(v) if *v == 1 => true,
        Some(v) => {
            return req.reject(
                format!("fullMatchField 应为 1，实际 {v}"),
                "invalidParameter",
            );
        }
    };
    let hits: Vec<String> = req
        .lock()
        .members
        .iter()
        .filter(|u| {
            if exact {
                u.name == word
            } else {
                u.name.contains(&word)
            }
        })
        .map(|u| u.user_id.clone())
        .collect();
    let page: Vec<&String> = hits.iter().skip(offset).take(size).collect();
    req.record(200);
    ok_json(json!({
        "hasMore": offset + page.len() < hits.len(),
        "totalCount": hits.len(),
        "list": page,
    }))
}

pub(super) async fn user_get(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "user_get", &body);
    if let Err(r) = check_oapi_token(&req, &query) {
        return *r;
    }
    if let Some(r) = permission_refused(&req, "qyapi_get_member", true) {
        return r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = user_get_work(&req, &headers, &body);
    req.finish(answer).await
}

pub(super) fn check_language(req: &Req, m: &serde_json::Map<String, Value>) -> Option<Response> {
    match m.get("language").map(|v| v.as_str()) {
        None | Some(Some("zh_CN" | "en_US")) => None,
        Some(other) => {
            req.violation(&format!("language 无效：{other:?}"));
            req.record(200);
            Some(errcode(400002, "无效的参数"))
        }
    }
}

pub(super) fn user_get_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(&m, &["userid"], &["language"]) {
        req.violation(&e);
        req.record(200);
        return errcode(400002, "无效的参数");
    }
    if let Some(r) = check_language(req, &m) {
        return r;
    }
    let id = m["userid"].as_str().unwrap_or("");
    let member = req.lock().members.iter().find(|u| u.user_id == id).cloned();
    req.record(200);
    match member {
        None => errcode(60121, "找不到该用户"),
        Some(u) => ok_json(json!({
            "errcode": 0,
            "errmsg": "ok",
            "result": {
                "userid": u.user_id,
                "unionid": format!("union-{}", u.user_id),
                "name": u.name,
                "title": u.title,
                "dept_id_list": u.dept_ids,
                "active": true,
            },
            "request_id": "fake-req",
        })),
    }
}

pub(super) async fn department_get(
    State(shared): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "department_get", &body);
    if let Err(r) = check_oapi_token(&req, &query) {
        return *r;
    }
    if let Some(r) = permission_refused(&req, "qyapi_get_department_list", true) {
        return r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = department_get_work(&req, &headers, &body);
    req.finish(answer).await
}

pub(super) fn department_get_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(&m, &["dept_id"], &["language"]) {
        req.violation(&e);
        req.record(200);
        return errcode(400002, "无效的参数");
    }
    if let Some(r) = check_language(req, &m) {
        return r;
    }
    let Some(id) = m["dept_id"].as_i64() else {
        req.violation("dept_id 应为整数");
        req.record(200);
        return errcode(400002, "无效的参数");
    };
    let dept = req.lock().departments.get(&id).cloned();
    req.record(200);
    match dept {
        None => errcode(60003, "部门不存在"),
        Some((name, parent)) => {
            let mut result = json!({"dept_id": id, "name": name});
            if let Some(parent) = parent {
                result["parent_id"] = parent.into();
            }
            ok_json(
                json!({"errcode": 0, "errmsg": "ok", "result": result, "request_id": "fake-req"}),
            )
        }
    }
}

pub(super) async fn robot_query(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "robot_query", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(r) = permission_refused(&req, "Robot.SingleChat.ReadWrite", false) {
        return r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let m = match json_body(&req, &headers, &body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(&m, &["robotCode"], &[]) {
        return req.reject(e, "param.invalid");
    }
    req.record(if m["robotCode"] == ROBOT_CODE {
        200
    } else {
        400
    });
    if m["robotCode"] != ROBOT_CODE {
        // The code for an unknown robot on this route is not documented; chatbot.notFound is
        // the one DingTalk's card APIs use for it (§6.1, [R]).
        return api_error(400, "chatbot.notFound", "机器人不存在");
    }
    ok_json(json!({"pluginInfoList": []}))
}

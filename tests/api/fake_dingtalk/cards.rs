//! The card platform (docs/dingtalk-protocol.md §6.3): `createAndDeliver` with its space and
//! deliver models, string-only `cardParamMap` and `privateData`, a duplicate outTrackId refused
//! (so a retried create never delivers twice) and undeliverable spaces reported in
//! `deliverResults`; the card update (`PUT /v1.0/card/instances`) of a card that exists; and
//! the create-only `POST /v1.0/card/instances` (§8, CreateCard) that `check-config --online`
//! uses to prove the template is published, delivering to nobody.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::ROBOT_CODE;
use super::answer::{
    Req, api_error, check_keys, check_token, json_body, ok_json, permission_refused,
};
use super::record::Shared;

pub(super) fn string_map(v: &Value, what: &str) -> Result<(), String> {
    let Some(m) = v.as_object() else {
        return Err(format!("{what} 不是对象"));
    };
    for (k, v) in m {
        if !v.is_string() {
            return Err(format!(
                "{what}.{k} 不是字符串（cardParamMap 只接受字符串）"
            ));
        }
    }
    Ok(())
}

pub(super) fn check_card_create(
    m: &serde_json::Map<String, Value>,
) -> Result<(String, String), (String, &'static str)> {
    let p = |e: String| (e, "param.invalid");
    let space = m.get("openSpaceId").and_then(Value::as_str).unwrap_or("");
    let (space_type, space_id) = space
        .strip_prefix("dtv1.card//")
        .and_then(|s| s.split_once('.'))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| {
            (
                format!("openSpaceId 格式无效：{space}"),
                "param.openSpaceIdInvalid",
            )
        })?;
    let (space_model, deliver_model) = match space_type {
        "IM_GROUP" => ("imGroupOpenSpaceModel", "imGroupOpenDeliverModel"),
        "IM_ROBOT" => ("imRobotOpenSpaceModel", "imRobotOpenDeliverModel"),
        other => {
            return Err((
                format!("openSpaceId 类型无效：{other}"),
                "param.openSpaceIdInvalid",
            ));
        }
    };
    let callback_optional: &[&str] = match m.get("callbackType").and_then(Value::as_str) {
        Some("STREAM") => &[],
        Some("HTTP") => &["callbackRouteKey"],
        other => return Err(p(format!("callbackType 无效：{other:?}"))),
    };
    let mut optional = vec!["privateData"];
    optional.extend_from_slice(callback_optional);
    check_keys(
        m,
        &[
            "cardTemplateId",
            "outTrackId",
            "cardData",
            "callbackType",
            "openSpaceId",
            space_model,
            deliver_model,
            "userIdType",
        ],
        &optional,
    )
    .map_err(p)?;
    if callback_optional.contains(&"callbackRouteKey")
        && m.get("callbackRouteKey")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return Err(p("callbackType 为 HTTP 时缺少 callbackRouteKey".into()));
    }
    if !m["cardTemplateId"]
        .as_str()
        .is_some_and(|t| t.ends_with(".schema"))
    {
        return Err(p("cardTemplateId 应为 <uuid>.schema".into()));
    }
    let out = m["outTrackId"].as_str().unwrap_or("").to_string();
    if out.is_empty() {
        return Err(("outTrackId 为空".into(), "card.outTraceIdEmpty"));
    }
    let Some(card_data) = m["cardData"].as_object() else {
        return Err(p("cardData 不是对象".into()));
    };
    check_keys(card_data, &["cardParamMap"], &["cardMediaIdParamMap"]).map_err(p)?;
    string_map(&card_data["cardParamMap"], "cardParamMap").map_err(p)?;
    if let Some(private) = m.get("privateData") {
        let Some(private) = private.as_object() else {
            return Err(p("privateData 不是对象".into()));
        };
        for (user, data) in private {
            string_map(
                &data["cardParamMap"],
                &format!("privateData.{user}.cardParamMap"),
            )
            .map_err(p)?;
        }
    }
    if m["userIdType"] != 1 {
        return Err(p("userIdType 应为 1".into()));
    }
    let deliver = &m[deliver_model];
    if deliver["robotCode"] != ROBOT_CODE {
        return Err(p(format!("{deliver_model}.robotCode 不符")));
    }
    if space_type == "IM_ROBOT" && deliver["spaceType"] != "IM_ROBOT" {
        return Err(p("imRobotOpenDeliverModel.spaceType 应为 IM_ROBOT".into()));
    }
    if !m[space_model].is_object() {
        return Err(p(format!("{space_model} 不是对象")));
    }
    Ok((out, space_id.to_string()))
}

pub(super) async fn card_create(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "card_create", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = card_create_work(&req, &headers, &body);
    req.finish(answer).await
}

pub(super) fn card_create_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let (out, space_id) = match check_card_create(&m) {
        Ok(v) => v,
        Err((e, code)) => return req.reject(e, code),
    };
    let (duplicate, undeliverable) = {
        let mut s = req.lock();
        (
            !s.cards.insert(out.clone()),
            s.undeliverable.contains(&space_id),
        )
    };
    if duplicate {
        req.record(400);
        return api_error(400, "card.outTrackIdDuplicated", "outTrackId 已存在");
    }
    let space_type = m["openSpaceId"]
        .as_str()
        .unwrap_or("")
        .split('.')
        .nth(1)
        .unwrap_or("")
        .to_string();
    if !undeliverable {
        req.deliver(
            out.clone(),
            Some(space_id.clone()),
            m["cardData"]["cardParamMap"].to_string(),
        );
    }
    req.record(200);
    ok_json(
        json!({"success": true, "result": {"outTrackId": out, "deliverResults": [
        {"spaceType": space_type, "spaceId": space_id, "success": !undeliverable,
         "errorMsg": if undeliverable { "用户不在应用可见范围" } else { "" }, "carrierId": "c1"}]}}),
    )
}

pub(super) async fn card_update(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "card_update", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = card_update_work(&req, &headers, &body);
    req.finish(answer).await
}

pub(super) fn card_update_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Err(e) = check_keys(
        &m,
        &["outTrackId", "cardData", "cardUpdateOptions", "userIdType"],
        &["privateData"],
    ) {
        return req.reject(e, "param.invalid");
    }
    if let Err(e) = string_map(&m["cardData"]["cardParamMap"], "cardParamMap") {
        return req.reject(e, "param.invalid");
    }
    if !m["cardUpdateOptions"]["updateCardDataByKey"].is_boolean() {
        return req.reject(
            "cardUpdateOptions.updateCardDataByKey 应为布尔值".into(),
            "param.invalid",
        );
    }
    let out = m["outTrackId"].as_str().unwrap_or("").to_string();
    if !req.lock().cards.contains(&out) {
        req.record(400);
        return api_error(400, "card.instanceNotExist", "卡片实例不存在");
    }
    req.deliver(out, None, m["cardData"]["cardParamMap"].to_string());
    req.record(200);
    ok_json(json!({"success": true, "result": true}))
}

pub(super) async fn card_instance(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut req = Req::new(&shared, "card_instance", &body);
    if let Err(r) = check_token(&req, &headers) {
        return *r;
    }
    if let Some(r) = permission_refused(&req, "Card.Instance.Write", false) {
        return r;
    }
    if let Some(answer) = req.fault(true).await {
        return answer;
    }
    let answer = card_instance_work(&req, &headers, &body);
    req.finish(answer).await
}

/// CreateCard (card_1_0 SDK): the create half of createAndDeliver, with no space unless one of
/// the space models is given — this fake takes none, so nothing is delivered.
pub(super) fn card_instance_work(req: &Req, headers: &HeaderMap, body: &Bytes) -> Response {
    let m = match json_body(req, headers, body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let optional: &[&str] = match m.get("callbackType").and_then(Value::as_str) {
        Some("STREAM") => &[],
        Some("HTTP") => &["callbackRouteKey"],
        other => return req.reject(format!("callbackType 无效：{other:?}"), "param.invalid"),
    };
    if let Err(e) = check_keys(
        &m,
        &[
            "cardTemplateId",
            "outTrackId",
            "cardData",
            "callbackType",
            "userIdType",
        ],
        optional,
    ) {
        return req.reject(e, "param.invalid");
    }
    if optional.contains(&"callbackRouteKey")
        && m.get("callbackRouteKey")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return req.reject(
            "callbackType 为 HTTP 时缺少 callbackRouteKey".into(),
            "param.invalid",
        );
    }
    let template = m["cardTemplateId"].as_str().unwrap_or("").to_string();
    if !template.ends_with(".schema") {
        return req.reject("cardTemplateId 应为 <uuid>.schema".into(), "param.invalid");
    }
    let Some(card_data) = m["cardData"].as_object() else {
        return req.reject("cardData 不是对象".into(), "param.invalid");
    };
    if let Err(e) = check_keys(card_data, &["cardParamMap"], &[]) {
        return req.reject(e, "param.invalid");
    }
    if let Err(e) = string_map(&card_data["cardParamMap"], "cardParamMap") {
        return req.reject(e, "param.invalid");
    }
    if card_data["cardParamMap"]
        .as_object()
        .is_some_and(serde_json::Map::is_empty)
    {
        return req.reject("卡片公共数据为空".into(), "param.cardPublicDataEmpty");
    }
    if m["userIdType"] != 1 {
        return req.reject("userIdType 应为 1".into(), "param.invalid");
    }
    let out = m["outTrackId"].as_str().unwrap_or("").to_string();
    if out.is_empty() {
        return req.reject("outTrackId 为空".into(), "param.outTrackIdEmpty");
    }
    if !req.lock().templates.contains(&template) {
        req.record(400);
        // The exact code for an unknown template on CreateCard is not documented; this is the
        // one DingTalk's IM card API answers ([R]).
        return api_error(
            400,
            "invalidParameter.cardTemplate.notFound",
            "不存在的卡片模板",
        );
    }
    let duplicate = {
        let mut s = req.lock();
        let duplicate = !s.cards.insert(out.clone());
        if !duplicate {
            s.undelivered.push(out.clone());
        }
        duplicate
    };
    if duplicate {
        req.record(400);
        return api_error(400, "card.outTrackIdDuplicated", "outTrackId 已存在");
    }
    req.record(200);
    ok_json(json!({"success": true, "result": out}))
}

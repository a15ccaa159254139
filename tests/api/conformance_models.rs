//! Conformance of the fake OpenAPI and of our payload builders with DingTalk's official Python
//! models (PyPI `alibabacloud-dingtalk` 2.2.65, docs/dingtalk-protocol.md §14): the same
//! messages are built twice — by the SDK's request models (`to_map()`, in
//! tests/conformance/openapi_models.py) and by `tiaochu::dingtalk::payload` (the token body by
//! our client itself) — both are POSTed to the strict fake, and both must be accepted alike
//! (same status, same answer shape, same delivery) with the same key sets and JSON types,
//! nested `msgParam` included. So the fake and our client cannot agree on a private dialect.
//!
//! The interpreter is `TIAOCHU_CONFORMANCE_PYTHON`, else the venv `.ci/run` fills, else
//! `python3`; without the package the test fails under CI and is skipped (loudly) elsewhere.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use serde_json::{Value, json};
use tiaochu::clock::{Clock, ManualClock};
use tiaochu::dingtalk::api::DingtalkClient;
use tiaochu::dingtalk::payload::{self, CardCallback, CardCreate, CardSpace, card_param};

use crate::fake_dingtalk::{APP_KEY, APP_SECRET, Delivery, FakeDingtalk, ROBOT_CODE, TEMPLATE_ID};
use crate::support::START_MS;

/// The pinned SDK version; `.ci/run` installs exactly this one.
const SDK_VERSION: &str = "2.2.65";

const RS: &str = "u-rs-liaison";
const ZJ: &str = "u-zj-liaison";
const CID: &str = "cidConformanceGroup==";
const TICKET: &str = "DH2026110300017";

/// One message both sides build.
struct Message {
    name: &'static str,
    method: reqwest::Method,
    path: &'static str,
    /// The inputs the SDK script builds from (`kind` picks the model class).
    input: Value,
    /// Our builder's body for the same inputs.
    ours: Vec<u8>,
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The messages the service sends (dispatch.rs, inbox.rs, outbox.rs), with realistic text.
/// Cards get distinct outTrackIds per side, because the fake refuses a second create of one.
fn messages() -> Vec<Message> {
    let users = vec![RS.to_string(), ZJ.to_string()];
    let title = "申请已登记";
    let text = format!("**工单 {TICKET}** 已登记为 TC-2026-0001。\n\n等待质检专员审核。");
    let one_button = [("开始审核", "审核 DH2026110300017")];
    let three_buttons = [
        ("接受", "接受 DH2026110300017"),
        ("异议", "异议 DH2026110300017"),
        ("查询进度", "查询 DH2026110300017"),
    ];
    let buttons_json =
        |b: &[(&str, &str)]| json!(b.iter().map(|(l, c)| [l, c]).collect::<Vec<_>>());
    let params = {
        let mut p = map(&[
            ("ticketNo", TICKET),
            ("title", "反映某建筑公司拖欠薪资的问题"),
        ]);
        p.insert("urgent".into(), card_param(&true));
        p.insert("units".into(), card_param(&["区住建局", "区城市管理局"]));
        p
    };
    let at = map(&[(RS, "王联络")]);
    let recipients = vec![RS.to_string(), ZJ.to_string()];
    let private = BTreeMap::from([(RS.to_string(), map(&[("canAct", "true")]))]);
    let updated = map(&[("status", "已开始审核"), ("claimedBy", "孟艳秋")]);
    let none = BTreeMap::new();

    let robot_card = |out: &str| {
        payload::card_create(&CardCreate {
            template_id: TEMPLATE_ID,
            out_track_id: out,
            robot_code: ROBOT_CODE,
            space: CardSpace::Robot { user_id: RS },
            callback: CardCallback::Stream,
            params: &params,
            private: &none,
        })
    };
    let group_card = |out: &str| {
        payload::card_create(&CardCreate {
            template_id: TEMPLATE_ID,
            out_track_id: out,
            robot_code: ROBOT_CODE,
            space: CardSpace::Group {
                open_conversation_id: CID,
                at: &at,
                recipients: &recipients,
            },
            callback: CardCallback::Http {
                route_key: "tiaochu_card",
            },
            params: &params,
            private: &private,
        })
    };
    let post = reqwest::Method::POST;
    vec![
        Message {
            name: "batch_markdown",
            method: post.clone(),
            path: "/v1.0/robot/oToMessages/batchSend",
            input: json!({"kind": "batch_send", "robot_code": ROBOT_CODE, "user_ids": users,
                          "msg_key": "sampleMarkdown", "title": title, "text": text}),
            ours: payload::batch_send_markdown(ROBOT_CODE, &users, title, &text).expect("body"),
        },
        Message {
            name: "batch_text",
            method: post.clone(),
            path: "/v1.0/robot/oToMessages/batchSend",
            input: json!({"kind": "batch_send", "robot_code": ROBOT_CODE, "user_ids": [RS],
                          "msg_key": "sampleText", "content": text}),
            ours: payload::batch_send_text(ROBOT_CODE, &users[..1], &text).expect("body"),
        },
        Message {
            name: "batch_action_card_1",
            method: post.clone(),
            path: "/v1.0/robot/oToMessages/batchSend",
            input: json!({"kind": "batch_send", "robot_code": ROBOT_CODE, "user_ids": [RS],
                          "msg_key": "sampleActionCard", "title": "联合调处申请",
                          "text": text, "buttons": buttons_json(&one_button)}),
            ours: payload::batch_send_action_card(
                ROBOT_CODE,
                &users[..1],
                "联合调处申请",
                &text,
                &one_button,
            )
            .expect("body"),
        },
        Message {
            name: "batch_action_card_3",
            method: post.clone(),
            path: "/v1.0/robot/oToMessages/batchSend",
            input: json!({"kind": "batch_send", "robot_code": ROBOT_CODE, "user_ids": [ZJ],
                          "msg_key": "sampleActionCard3", "title": "协办请求",
                          "text": text, "buttons": buttons_json(&three_buttons)}),
            ours: payload::batch_send_action_card(
                ROBOT_CODE,
                &users[1..],
                "协办请求",
                &text,
                &three_buttons,
            )
            .expect("body"),
        },
        Message {
            name: "group_text",
            method: post.clone(),
            path: "/v1.0/robot/groupMessages/send",
            input: json!({"kind": "group_send", "robot_code": ROBOT_CODE,
                          "open_conversation_id": CID, "msg_key": "sampleText", "content": text}),
            ours: payload::group_send_text(ROBOT_CODE, CID, &text).expect("body"),
        },
        Message {
            name: "group_markdown",
            method: post.clone(),
            path: "/v1.0/robot/groupMessages/send",
            input: json!({"kind": "group_send", "robot_code": ROBOT_CODE,
                          "open_conversation_id": CID, "msg_key": "sampleMarkdown",
                          "title": title, "text": text}),
            ours: payload::group_send_markdown(ROBOT_CODE, CID, title, &text).expect("body"),
        },
        Message {
            name: "card_robot_stream",
            method: post.clone(),
            path: "/v1.0/card/instances/createAndDeliver",
            input: json!({"kind": "card_create", "template_id": TEMPLATE_ID,
                          "out_track_id": "conf-robot-sdk", "robot_code": ROBOT_CODE,
                          "user": RS, "params": params}),
            ours: robot_card("conf-robot-ours"),
        },
        Message {
            name: "card_group_http",
            method: post.clone(),
            path: "/v1.0/card/instances/createAndDeliver",
            input: json!({"kind": "card_create", "template_id": TEMPLATE_ID,
                          "out_track_id": "conf-group-sdk", "robot_code": ROBOT_CODE,
                          "group": CID, "at": at, "recipients": recipients,
                          "callback_route_key": "tiaochu_card", "params": params,
                          "private": private}),
            ours: group_card("conf-group-ours"),
        },
        Message {
            name: "card_update",
            method: reqwest::Method::PUT,
            path: "/v1.0/card/instances",
            input: json!({"kind": "card_update", "out_track_id": "conf-robot-sdk",
                          "params": updated}),
            ours: payload::card_update("conf-robot-ours", &updated),
        },
    ]
}

/// Where `ours` differs from `theirs` in key sets or JSON types (integers and floats apart),
/// descending into objects, arrays and the JSON text of `msgParam`. Empty when alike.
fn shape_diff(path: &str, ours: &Value, theirs: &Value) -> Vec<String> {
    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_f64() => "float",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            // The SDK's `to_map()` writes an unset map of models as `{}` (e.g. `privateData`
            // of CreateAndDeliverRequest and UpdateCardRequest), while its client leaves unset
            // fields out of the body it sends: absent and empty mean the same there.
            let unset = |v: &Value| v.as_object().is_some_and(serde_json::Map::is_empty);
            let mut diffs = Vec::new();
            for (k, _) in a.iter().filter(|(k, v)| !b.contains_key(*k) && !unset(v)) {
                diffs.push(format!("{path}.{k}: only in ours"));
            }
            for (k, _) in b.iter().filter(|(k, v)| !a.contains_key(*k) && !unset(v)) {
                diffs.push(format!("{path}.{k}: only in the SDK's"));
            }
            for (k, va) in a {
                if let Some(vb) = b.get(k) {
                    diffs.extend(shape_diff(&format!("{path}.{k}"), va, vb));
                }
            }
            diffs
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.is_empty() != b.is_empty() {
                return vec![format!("{path}: one array is empty, the other not")];
            }
            // Elements are compared by shape, not position: every one of ours against the
            // SDK's first, and the other way round.
            let mut diffs = Vec::new();
            if let (Some(fa), Some(fb)) = (a.first(), b.first()) {
                for (i, va) in a.iter().enumerate() {
                    diffs.extend(shape_diff(&format!("{path}[{i}]"), va, fb));
                }
                for (i, vb) in b.iter().enumerate() {
                    diffs.extend(shape_diff(&format!("{path}[{i}]"), fa, vb));
                }
            }
            diffs.dedup();
            diffs
        }
        (Value::String(a), Value::String(b)) if path.ends_with(".msgParam") => {
            match (serde_json::from_str(a), serde_json::from_str(b)) {
                (Ok(pa), Ok(pb)) => shape_diff(&format!("{path}<json>"), &pa, &pb),
                _ => vec![format!("{path}: not JSON text on both sides")],
            }
        }
        _ if kind(ours) == kind(theirs) => Vec::new(),
        _ => vec![format!(
            "{path}: ours is {}, the SDK's is {}",
            kind(ours),
            kind(theirs)
        )],
    }
}

/// Runs the SDK script on `messages`; returns its stdout report.
fn sdk_bodies(python: &PathBuf, messages: &[Message]) -> Value {
    let input: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut v = m.input.clone();
            v["name"] = json!(m.name);
            v
        })
        .chain(std::iter::once(json!({"name": "token", "kind": "token",
                                       "app_key": APP_KEY, "app_secret": APP_SECRET})))
        .collect();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/openapi_models.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&serde_json::to_vec(&input).expect("json"))
        .expect("write to python");
    let out = child.wait_with_output().expect("python output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "SDK script failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "SDK script printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Our client's own token request body, captured by a one-route server.
async fn our_token_body(fake: &FakeDingtalk) -> Value {
    let seen: Arc<Mutex<Option<Value>>> = Arc::default();
    let capture = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1.0/oauth2/accessToken",
        axum::routing::post(move |body: Bytes| async move {
            *capture.lock().expect("capture lock") = serde_json::from_slice(&body).ok();
            axum::Json(json!({"accessToken": "captured", "expireIn": 7200}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("capture serves");
    });
    let mut settings = fake.settings();
    settings.api_base = base;
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_millis(START_MS));
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let client = DingtalkClient::new(&settings, http, clock);
    assert_eq!(
        client.access_token().await.expect("token from capture"),
        "captured"
    );
    server.abort();
    let body = seen.lock().expect("capture lock").clone();
    body.expect("our client sent a JSON token body")
}

/// What the fake answered and delivered for one request.
struct Accepted {
    status: u16,
    answer: Value,
    delivered: Vec<(&'static str, Option<String>, String)>,
}

async fn post(
    http: &reqwest::Client,
    fake: &FakeDingtalk,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Accepted {
    let before = fake.deliveries().len();
    let mut request = http
        .request(method, format!("{}{path}", fake.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.header("x-acs-dingtalk-access-token", token);
    }
    let response = request.send().await.expect("fake reachable");
    let status = response.status().as_u16();
    let answer = response.json().await.unwrap_or(Value::Null);
    // Deliveries without the marker key and time: cards differ only in their outTrackId.
    let delivered = fake.deliveries()[before..]
        .iter()
        .map(|d: &Delivery| (d.route, d.user.clone(), d.text.clone()))
        .collect();
    Accepted {
        status,
        answer,
        delivered,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_model_bodies_are_accepted_by_the_fake_like_ours() {
    let python = crate::support::conformance_python();
    let importable = Command::new(&python)
        .args([
            "-c",
            "import alibabacloud_dingtalk.robot_1_0.models, alibabacloud_dingtalk.card_1_0.models, \
             alibabacloud_dingtalk.oauth2_1_0.models",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        let why = format!(
            "{} cannot import alibabacloud_dingtalk (install with: pip install \
             alibabacloud-dingtalk=={SDK_VERSION}, as .ci/run does into target/conformance-venv)",
            python.display()
        );
        crate::support::skip_or_fail(
            "official_model_bodies_are_accepted_by_the_fake_like_ours",
            &why,
        );
        return;
    }

    let messages = messages();
    let report = sdk_bodies(&python, &messages);
    assert_eq!(
        report["sdk_version"], SDK_VERSION,
        "the SDK version the reference read"
    );
    let sdk = &report["bodies"];

    let fake = FakeDingtalk::at_start().await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    // The token: the SDK's body buys the token every later request carries; ours must be
    // accepted alike and have the same shape.
    let token_path = "/v1.0/oauth2/accessToken";
    let sdk_token = serde_json::to_vec(&sdk["token"]).expect("json");
    let theirs = post(
        &http,
        &fake,
        reqwest::Method::POST,
        token_path,
        None,
        sdk_token,
    )
    .await;
    assert_eq!(theirs.status, 200, "SDK token body: {:?}", theirs.answer);
    let token = theirs.answer["accessToken"]
        .as_str()
        .expect("accessToken")
        .to_string();
    let our_token = our_token_body(&fake).await;
    let diffs = shape_diff("token", &our_token, &sdk["token"]);
    assert!(diffs.is_empty(), "token body shapes differ: {diffs:#?}");
    let ours = post(
        &http,
        &fake,
        reqwest::Method::POST,
        token_path,
        None,
        serde_json::to_vec(&our_token).expect("json"),
    )
    .await;
    assert_eq!(ours.status, 200, "our token body: {:?}", ours.answer);
    assert!(shape_diff("token answer", &ours.answer, &theirs.answer).is_empty());

    for m in &messages {
        let body = sdk
            .get(m.name)
            .unwrap_or_else(|| panic!("SDK built no {}", m.name));
        let ours_value: Value = serde_json::from_slice(&m.ours).expect("our body is JSON");
        let diffs = shape_diff(m.name, &ours_value, body);
        assert!(
            diffs.is_empty(),
            "{}: key sets or types differ from the official model: {diffs:#?}\nours: {ours_value}\nSDK: {body}",
            m.name
        );

        let sdk_bytes = serde_json::to_vec(body).expect("json");
        let theirs = post(
            &http,
            &fake,
            m.method.clone(),
            m.path,
            Some(&token),
            sdk_bytes,
        )
        .await;
        let ours = post(
            &http,
            &fake,
            m.method.clone(),
            m.path,
            Some(&token),
            m.ours.clone(),
        )
        .await;
        assert_eq!(
            (theirs.status, ours.status),
            (200, 200),
            "{}: the fake must accept both: SDK {:?}, ours {:?}; violations {:?}",
            m.name,
            theirs.answer,
            ours.answer,
            fake.violations()
        );
        assert!(
            shape_diff("answer", &ours.answer, &theirs.answer).is_empty(),
            "{}: answered differently: {:?} vs {:?}",
            m.name,
            ours.answer,
            theirs.answer
        );
        assert!(
            !theirs.delivered.is_empty(),
            "{}: nothing delivered",
            m.name
        );
        assert_eq!(
            ours.delivered, theirs.delivered,
            "{}: delivered differently",
            m.name
        );
    }
    assert_eq!(fake.violations(), Vec::<String>::new());
    println!(
        "conformance: {} request bodies from alibabacloud-dingtalk {SDK_VERSION} models and ours \
         (token included) accepted alike by the fake, same key sets and types",
        messages.len() + 1
    );

    // The fake's strictness holds for the SDK's bodies too: the commonest private-dialect
    // mistake, msgParam as an object, is refused and recorded.
    let mut wrong = sdk["batch_markdown"].clone();
    let param: Value =
        serde_json::from_str(wrong["msgParam"].as_str().expect("string")).expect("json");
    wrong["msgParam"] = param;
    let refused = post(
        &http,
        &fake,
        reqwest::Method::POST,
        "/v1.0/robot/oToMessages/batchSend",
        Some(&token),
        serde_json::to_vec(&wrong).expect("json"),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert_eq!(fake.violations().len(), 1, "{:?}", fake.violations());
}

#[test]
fn shape_diff_sees_keys_types_and_nested_msg_param() {
    let ours = json!({"robotCode": "r", "userIds": ["a"], "msgKey": "sampleText",
                      "msgParam": "{\"content\":\"x\"}", "userIdType": 1});
    assert!(shape_diff("b", &ours, &ours).is_empty());
    let mut missing = ours.clone();
    missing.as_object_mut().expect("object").remove("msgKey");
    assert_eq!(shape_diff("b", &ours, &missing), ["b.msgKey: only in ours"]);
    let mut as_object = ours.clone();
    as_object["msgParam"] = json!({"content": "x"});
    assert_eq!(
        shape_diff("b", &ours, &as_object),
        ["b.msgParam: ours is string, the SDK's is object"]
    );
    let mut inner = ours.clone();
    inner["msgParam"] = json!("{\"text\":\"x\"}");
    assert_eq!(shape_diff("b", &ours, &inner).len(), 2);
    let mut float = ours.clone();
    float["userIdType"] = json!(1.0);
    assert_eq!(
        shape_diff("b", &ours, &float),
        ["b.userIdType: ours is integer, the SDK's is float"]
    );
    let mut unset = ours.clone();
    unset["privateData"] = json!({});
    assert!(
        shape_diff("b", &ours, &unset).is_empty(),
        "an empty map is an unset one"
    );
    unset["privateData"] = json!({"u": {}});
    assert_eq!(
        shape_diff("b", &ours, &unset),
        ["b.privateData: only in the SDK's"]
    );
    let mut numbers = ours.clone();
    numbers["userIds"] = json!([1]);
    assert_eq!(
        shape_diff("b", &ours, &numbers),
        ["b.userIds[0]: ours is string, the SDK's is integer"]
    );
}

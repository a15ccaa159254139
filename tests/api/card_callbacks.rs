//! Card-platform callbacks end to end (§6.4): a case submitted by a signed robot callback, then
//! claimed, decided, accepted and objected to by tapping card buttons — over HTTP
//! (`POST /dingtalk/card/<secret segment>`, against the strict fake DingTalk) and over Stream (the fake gateway,
//! where the ACK carries the answer). Each answer must show the tapping user's copy as it is now;
//! the other copies are updated through `card_update` outbox rows; taps that must not act — on
//! an unknown card, on someone else's copy, a replay, invalid inputs — change nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tiaochu::card_secrets::CardSecrets;
use tiaochu::dingtalk::sign::callback_sign;
use tiaochu::roster::{Person, Role};
use tiaochu::settings::{DingtalkMode, DingtalkSettings};
use tiaochu::store::{InboxRow, OutboxRow};

use crate::fake_dingtalk::{APP_SECRET, FakeDingtalk};
use crate::fake_stream::{FakeStream, card_frame};
use crate::support::{START_MS, TestApp, hv, spawn_app};

pub(crate) const RS: &str = "u-rs-liaison";
pub(crate) const ZJ: &str = "u-zj-liaison";
pub(crate) const CG: &str = "u-cg-liaison";
pub(crate) const INSPECTOR: &str = "u-inspector-meng";
pub(crate) const INSPECTOR_B: &str = "u-inspector-li";
pub(crate) const T: &str = "DH2026110300017";
pub(crate) const CASE: &str = "TC-2026-0001";

pub(crate) const APPLICATION: &str = "工单编号：DH2026110300017
工单标题：反映某建筑公司拖欠薪资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况，企业方承认存在拖欠行为。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

/// The shipped roster with DingTalk staff ids for everyone this case reaches.
pub(crate) fn roster_file(dir: &Path) -> PathBuf {
    let liaisons = [
        ("王联络", "区人社局", RS, "13800000001"),
        ("赵联络", "区住建局", ZJ, "13800000002"),
        ("钱联络", "区城市管理局", CG, "13800000003"),
    ]
    .map(|(name, unit, id, phone)| Person::new(name, unit, "股长", vec![Role::Liaison], id, phone));
    crate::support::write_roster(
        dir,
        &[
            ("孟艳秋", INSPECTOR),
            ("李德艳", INSPECTOR_B),
            ("武应国", "u-cg-leader"),
            ("任燕", "u-rs-leader"),
            ("保国钰", "u-zj-leader"),
        ],
        liaisons.into(),
    )
}

/// The card secrets `app` made its card ids with.
pub(crate) fn card_secrets(app: &TestApp) -> CardSecrets {
    CardSecrets::stored(&app.store)
        .expect("readable store")
        .expect("generated at start")
}

/// The `outTrackId` of `user`'s copy of the review card (version 1).
pub(crate) fn review(app: &TestApp, user: &str) -> String {
    card_secrets(app).instance_id(&format!("{CASE}/review/v1"), user)
}

/// The `outTrackId` of `user`'s copy of `unit`'s coordination card.
pub(crate) fn coordination(app: &TestApp, unit: &str, user: &str) -> String {
    card_secrets(app).instance_id(&format!("{CASE}/coordination/{unit}"), user)
}

/// A card callback body (§6.4): `user` tapped `action` on the copy `out_track_id`.
pub(crate) fn tap_body(out_track_id: &str, user: &str, action: &str, inputs: Value) -> String {
    let mut params = inputs.as_object().cloned().unwrap_or_default();
    params.insert("action".into(), json!(action));
    let content =
        json!({"cardPrivateData": {"actionIds": [format!("{action}_btn")], "params": params}});
    json!({
        "outTrackId": out_track_id, "corpId": "dingcorp", "userId": user, "userIdType": 1,
        "type": "actionCallback", "content": content.to_string(),
    })
    .to_string()
}

/// The public params an answer puts on the card.
pub(crate) fn card(answer: &Value) -> &Value {
    &answer["cardData"]["cardParamMap"]
}

/// The private error an answer shows the tapping user ("" when none).
pub(crate) fn error(answer: &Value) -> &str {
    answer["userPrivateData"]["cardParamMap"]["error"]
        .as_str()
        .expect("error param")
}

fn button_ids(params: &Value) -> Vec<String> {
    let buttons: Value =
        serde_json::from_str(params["buttons"].as_str().expect("buttons")).expect("JSON");
    buttons
        .as_array()
        .expect("list")
        .iter()
        .map(|b| b["id"].as_str().expect("id").to_string())
        .collect()
}

/// What a test looks at in the store.
#[derive(Debug, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) inbox: usize,
    pub(crate) outbox: usize,
    pub(crate) state: String,
    pub(crate) revision: i64,
    pub(crate) units: Vec<(String, String)>,
}

pub(crate) async fn snapshot(app: &TestApp) -> Snapshot {
    app.store
        .read(|r| -> Result<_, tiaochu::store::StoreError> {
            let case = r
                .case_by_ticket(&crate::support::ticket_no(T))?
                .into_iter()
                .next();
            let units = match &case {
                Some(c) => r
                    .case_units(c.id)?
                    .into_iter()
                    .map(|u| (u.unit, u.status))
                    .collect(),
                None => Vec::new(),
            };
            Ok(Snapshot {
                inbox: r.all_inbox(100_000)?.len(),
                outbox: r.list_outbox(None, 100_000)?.len(),
                state: case.as_ref().map(|c| c.state.clone()).unwrap_or_default(),
                revision: case.map_or(0, |c| c.revision),
                units,
            })
        })
        .await
        .expect("read")
}

async fn outbox(app: &TestApp) -> Vec<OutboxRow> {
    app.store
        .read(|r| r.list_outbox(None, 100_000))
        .await
        .expect("outbox")
}

/// The `card_update` rows queued for the copy `out_track_id`, newest first, as cardParamMaps.
async fn updates_for(app: &TestApp, out_track_id: &str) -> Vec<Value> {
    outbox(app)
        .await
        .into_iter()
        .filter(|r| r.channel == "card_update" && r.target == out_track_id)
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.payload).expect("JSON");
            body["cardData"]["cardParamMap"].clone()
        })
        .collect()
}

pub(crate) async fn card_rows(app: &TestApp) -> Vec<InboxRow> {
    app.inbox()
        .await
        .into_iter()
        .filter(|r| r.source == "card")
        .collect()
}

/// Waits until the inbox is processed and (when `drain`) the outbox has sent everything due.
pub(crate) async fn settle(app: &TestApp, drain: bool) {
    for _ in 0..300 {
        let (inbox, backlog) = app
            .store
            .read(|r| {
                Ok::<_, tiaochu::store::StoreError>((
                    r.pending_inbox(10)?.len(),
                    r.outbox_backlog()?.0,
                ))
            })
            .await
            .expect("read");
        if inbox == 0 && (!drain || backlog == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the service did not settle");
}

pub(crate) struct Http {
    pub(crate) app: TestApp,
    pub(crate) fake: FakeDingtalk,
    _dir: tempfile::TempDir,
}

impl Http {
    pub(crate) async fn start() -> Http {
        Http::start_with(|_| {}).await
    }

    /// As [`Http::start`], with `edit` applied to the DingTalk settings last.
    pub(crate) async fn start_with(edit: impl FnOnce(&mut DingtalkSettings)) -> Http {
        let fake = FakeDingtalk::at_start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let roster = roster_file(dir.path());
        let mut dingtalk = fake.settings();
        dingtalk.mode = DingtalkMode::Http;
        // Cards are created for HTTP callbacks to this route key (§6.4).
        dingtalk.card_callback_route_key = "hotline_cb".into();
        edit(&mut dingtalk);
        let app = spawn_app(move |s| {
            s.dingtalk = dingtalk;
            s.roster.path = roster;
        })
        .await;
        Http {
            app,
            fake,
            _dir: dir,
        }
    }

    pub(crate) async fn submit(&self) {
        let body = crate::support::robot_text("msg-1", RS, APPLICATION, self.app.now_ms())
            .with("conversationId", "cid-rs")
            .with("senderNick", "王联络");
        let response = self.app.post_signed(body.to_string()).await;
        assert_eq!(response.status(), 200);
        settle(&self.app, true).await;
    }

    /// Posts a card callback with the given headers to the registered callback path; the status
    /// and the JSON answer.
    pub(crate) async fn post(&self, body: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let path = card_secrets(&self.app).callback_path();
        self.post_at(&path, body, headers).await
    }

    /// Posts a card callback to `path`; the status and the JSON answer (Null when the answer
    /// is not JSON, as for a bare 404).
    pub(crate) async fn post_at(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self
            .app
            .client
            .post(format!("{}{path}", self.app.address))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, hv(value));
        }
        let response = request.send().await.expect("reachable");
        let status = response.status();
        let text = response.text().await.expect("answer body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An unsigned tap (HTTP card callback auth is unconfirmed, §13); must be answered 200.
    pub(crate) async fn tap(
        &self,
        out_track_id: &str,
        user: &str,
        action: &str,
        inputs: Value,
    ) -> Value {
        let (status, answer) = self
            .post(&tap_body(out_track_id, user, action, inputs), &[])
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        settle(&self.app, true).await;
        answer
    }
}

#[tokio::test]
async fn taps_over_http_act_once_and_answer_with_the_updated_copy() {
    let h = Http::start().await;
    h.submit().await;
    let submitted = snapshot(&h.app).await;
    assert_eq!(submitted.state, "submitted");

    // Taps that must not act: no answer body beyond the refusal, no inbox row, no change.
    let claim = tap_body(&review(&h.app, INSPECTOR), INSPECTOR, "claim", json!({}));
    let unknown = tap_body("TC-2026-0099_review_v1__u-x", INSPECTOR, "claim", json!({}));
    assert_eq!(h.post(&unknown, &[]).await.0, StatusCode::NOT_FOUND);
    let forged_card = tap_body(&review(&h.app, "u-nobody"), INSPECTOR, "claim", json!({}));
    assert_eq!(h.post(&forged_card, &[]).await.0, StatusCode::NOT_FOUND);
    let not_mine = tap_body(&review(&h.app, INSPECTOR), INSPECTOR_B, "claim", json!({}));
    assert_eq!(h.post(&not_mine, &[]).await.0, StatusCode::FORBIDDEN);
    let now = h.app.now_ms().to_string();
    let wrong_sign = callback_sign(&now, "not-the-secret");
    assert_eq!(
        h.post(&claim, &[("timestamp", &now), ("sign", &wrong_sign)])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.post(&claim, &[("timestamp", &now)]).await.0,
        StatusCode::UNAUTHORIZED,
        "a timestamp without a sign"
    );
    assert_eq!(
        h.post("{\"outTrackId\": 1}", &[]).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        snapshot(&h.app).await,
        submitted,
        "refused taps change nothing"
    );

    // 开始审核, signed as a robot callback would be: the claimer's copy now names them and
    // keeps the decision buttons for them alone; the other inspector's copy loses its button.
    let sign = callback_sign(&now, APP_SECRET);
    let (status, answer) = h
        .post(&claim, &[("timestamp", &now), ("sign", &sign)])
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    settle(&h.app, true).await;
    assert!(
        card(&answer)["status"]
            .as_str()
            .is_some_and(|s| s.contains("孟艳秋") && s.contains("开始审核")),
        "{answer}"
    );
    assert_eq!(
        button_ids(card(&answer)),
        [
            "decide_joint",
            "decide_independent",
            "return",
            "escalate_city"
        ]
    );
    assert_eq!(error(&answer), "");
    assert_eq!(
        answer["cardUpdateOptions"],
        json!({"updateCardDataByKey": false, "updatePrivateDataByKey": true})
    );
    let claimed = snapshot(&h.app).await;
    assert_eq!(claimed.state, "under_review");
    assert_eq!(claimed.inbox, submitted.inbox + 1);
    let other = updates_for(&h.app, &review(&h.app, INSPECTOR_B)).await;
    assert!(
        other[0]["status"]
            .as_str()
            .is_some_and(|s| s.contains("孟艳秋")),
        "{other:?}"
    );
    assert_eq!(other[0]["button_count"], "0");
    let delivered = h
        .fake
        .deliveries()
        .into_iter()
        .filter(|d| d.route == "card_update" && d.key == review(&h.app, INSPECTOR_B))
        .count();
    assert_eq!(delivered, 1, "the other copy is updated at DingTalk");

    // A replay of the same tap answers the current card and acts no more.
    let (status, replay) = h.post(&claim, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(card(&replay), card(&answer));
    assert_eq!(snapshot(&h.app).await, claimed, "a replay changes nothing");

    // The other inspector's stale copy: refused by the workflow, told on the card and in the
    // chat (whoever taps gets an answer), no change to the case.
    let late = h
        .tap(
            &review(&h.app, INSPECTOR_B),
            INSPECTOR_B,
            "claim",
            json!({}),
        )
        .await;
    assert!(error(&late).contains("孟艳秋"), "{late}");
    assert_eq!(card(&late)["button_count"], "0");
    let after_late = snapshot(&h.app).await;
    assert_eq!(
        (
            after_late.state.as_str(),
            after_late.revision,
            after_late.outbox
        ),
        ("under_review", claimed.revision, claimed.outbox + 1)
    );
    let told = outbox(&h.app)
        .await
        .into_iter()
        .max_by_key(|r| r.id)
        .expect("the refusal");
    assert_eq!(told.channel, "robot_batch");
    assert!(
        String::from_utf8_lossy(&told.payload).contains("孟艳秋"),
        "the refusal in the chat names who claimed it"
    );

    // 联合调处 naming a unit that is not a member: the error is shown, the buttons stay.
    let bad = h
        .tap(
            &review(&h.app, INSPECTOR),
            INSPECTOR,
            "decide_joint",
            json!({"units": "区不存在局：核查"}),
        )
        .await;
    assert!(error(&bad).contains("区不存在局"), "{bad}");
    assert_eq!(button_ids(card(&bad)).len(), 4);
    assert_eq!(snapshot(&h.app).await.revision, claimed.revision);

    // 联合调处 with the final units as a JSON list.
    let joint = h
        .tap(
            &review(&h.app, INSPECTOR),
            INSPECTOR,
            "decide_joint",
            json!({"units": [
                {"unit": "区住建局", "direction": "核查项目审批及工程款拨付"},
                {"unit": "区城市管理局", "direction": "协助现场核查"},
            ]}),
        )
        .await;
    assert_eq!(error(&joint), "");
    assert!(
        card(&joint)["status"]
            .as_str()
            .is_some_and(|s| s.contains("决定联合调处（区住建局、区城市管理局）")),
        "{joint}"
    );
    assert_eq!(card(&joint)["button_count"], "0");
    let decided = snapshot(&h.app).await;
    assert_eq!(decided.state, "coordinating");
    assert_eq!(
        decided.units,
        [
            ("区住建局".to_string(), "pending".to_string()),
            ("区城市管理局".to_string(), "pending".to_string())
        ]
    );
    assert!(
        updates_for(&h.app, &review(&h.app, INSPECTOR_B)).await[0]["status"]
            .as_str()
            .is_some_and(|s| s.contains("决定联合调处")),
        "every copy shows the decision"
    );
    let zj_card = coordination(&h.app, "区住建局", ZJ);
    assert!(
        h.fake
            .deliveries()
            .iter()
            .any(|d| d.route == "card_create" && d.key == zj_card),
        "the coordination card reached 区住建局"
    );

    // 接受协办 without a phone: refused with the parser's message, nothing changes.
    let no_phone = h
        .tap(
            &zj_card,
            ZJ,
            "accept",
            json!({"contact_name": "赵建", "position": "股长", "help": ["现场核查"]}),
        )
        .await;
    assert!(error(&no_phone).contains("电话"), "{no_phone}");
    assert_eq!(button_ids(card(&no_phone)), ["accept", "object"]);
    assert_eq!(snapshot(&h.app).await.revision, decided.revision);

    // Someone else's coordination card.
    let cg_card = coordination(&h.app, "区城市管理局", CG);
    let foreign = tap_body(&cg_card, ZJ, "accept", json!({}));
    assert_eq!(h.post(&foreign, &[]).await.0, StatusCode::FORBIDDEN);

    // 接受协办 with every input (help items as the list a multi-select sends).
    let accepted = h
        .tap(
            &zj_card,
            ZJ,
            "accept",
            json!({"contact_name": "赵建", "position": "股长", "phone": "139 0000 0000",
                   "help": ["现场核查", "政策解释"]}),
        )
        .await;
    assert_eq!(error(&accepted), "", "{accepted}");
    assert!(
        card(&accepted)["status"]
            .as_str()
            .is_some_and(|s| s.contains("赵联络") && s.contains("接受协办")),
        "{accepted}"
    );
    assert_eq!(card(&accepted)["button_count"], "0");

    // 提出异议 from 区城市管理局.
    let objected = h
        .tap(
            &cg_card,
            CG,
            "object",
            json!({"reason": "现场核查不属于本局职责"}),
        )
        .await;
    assert_eq!(error(&objected), "", "{objected}");
    assert!(
        card(&objected)["status"]
            .as_str()
            .is_some_and(|s| s.contains("钱联络") && s.contains("现场核查不属于本局职责")),
        "{objected}"
    );
    assert!(!button_ids(card(&objected)).contains(&"object".to_string()));
    let end = snapshot(&h.app).await;
    assert_eq!(
        end.units,
        [
            ("区住建局".to_string(), "accepted".to_string()),
            ("区城市管理局".to_string(), "objected".to_string())
        ]
    );
    let outcomes: Vec<Option<String>> = card_rows(&h.app)
        .await
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    let expected = [
        "applied", "rejected", "answered", "applied", "answered", "applied", "applied",
    ];
    assert_eq!(
        outcomes,
        expected.map(|o| Some(o.to_string())),
        "one finished inbox row per distinct tap, none for refused ones"
    );
    assert!(h.fake.violations().is_empty(), "{:?}", h.fake.violations());
    h.app.shutdown.trigger();
}

#[tokio::test]
async fn taps_over_stream_are_answered_in_the_ack() {
    let gateway = FakeStream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = roster_file(dir.path());
    let api_base = gateway.api_base.clone();
    let app = spawn_app(move |s| {
        s.dingtalk.mode = DingtalkMode::Stream;
        s.dingtalk.api_base = api_base;
        s.dingtalk.app_key = "ding-stream-app".into();
        s.dingtalk.card_template_id = "tpl.schema".into();
        s.roster.path = roster;
    })
    .await;
    gateway.connection(0).await;
    let data = crate::support::robot_text("msg-s1", RS, APPLICATION, START_MS)
        .with("conversationId", "cid-rs")
        .with("senderNick", "王联络")
        .with("robotCode", "ding-stream-app");
    let frame = json!({
        "specVersion": "1.0", "type": "CALLBACK",
        "headers": {"appId": "app-1", "connectionId": "conn-1", "contentType": "application/json",
                    "messageId": "f-app", "time": "1690106592000",
                    "topic": "/v1.0/im/bot/messages/get"},
        "data": data.to_string(),
    });
    gateway.send(0, frame.to_string());
    gateway.acked("f-app", 1).await;
    settle(&app, false).await;
    assert_eq!(snapshot(&app).await.state, "submitted");

    // The claim is decided before the ACK, which carries the claimer's updated copy.
    gateway.send(
        0,
        card_frame(
            "f-claim",
            &review(&app, INSPECTOR),
            INSPECTOR,
            "claim_btn",
            json!({"action": "claim"}),
        ),
    );
    let ack = gateway.acked("f-claim", 1).await;
    let answer = &ack[0].data()["response"];
    assert!(
        card(answer)["status"]
            .as_str()
            .is_some_and(|s| s.contains("孟艳秋") && s.contains("开始审核")),
        "{answer}"
    );
    assert_eq!(button_ids(card(answer)).len(), 4);
    assert_eq!(error(answer), "");
    let claimed = snapshot(&app).await;
    assert_eq!(claimed.state, "under_review", "decided before the ACK");
    let other = updates_for(&app, &review(&app, INSPECTOR_B)).await;
    assert_eq!(
        other.len(),
        1,
        "the other copy is updated through the outbox"
    );
    assert_eq!(other[0]["button_count"], "0");

    // The same tap again under a new frame id: the current card, no second action.
    gateway.send(
        0,
        card_frame(
            "f-claim-2",
            &review(&app, INSPECTOR),
            INSPECTOR,
            "claim_btn",
            json!({"action": "claim"}),
        ),
    );
    let replay = gateway.acked("f-claim-2", 1).await;
    assert_eq!(card(&replay[0].data()["response"]), card(answer));
    assert_eq!(snapshot(&app).await, claimed);

    // Someone else's copy, and a card that does not exist: no action, no inbox row.
    gateway.send(
        0,
        card_frame(
            "f-foreign",
            &review(&app, INSPECTOR),
            INSPECTOR_B,
            "claim_btn",
            json!({"action": "claim"}),
        ),
    );
    let foreign = gateway.acked("f-foreign", 1).await;
    let foreign = &foreign[0].data()["response"];
    assert!(error(foreign).contains("不是发给您的"), "{foreign}");
    assert!(foreign.get("cardData").is_none(), "{foreign}");
    gateway.send(
        0,
        card_frame(
            "f-unknown",
            "TC-2026-0042_review_v1__x",
            INSPECTOR,
            "claim_btn",
            json!({}),
        ),
    );
    let unknown = gateway.acked("f-unknown", 1).await;
    assert_eq!(unknown[0].data(), json!({"response": null}));
    assert_eq!(snapshot(&app).await, claimed);

    // A button the review card does not have: refused privately, nothing changes.
    gateway.send(
        0,
        card_frame(
            "f-wrong",
            &review(&app, INSPECTOR),
            INSPECTOR,
            "accept_btn",
            json!({"action": "accept"}),
        ),
    );
    let wrong = gateway.acked("f-wrong", 1).await;
    let wrong = &wrong[0].data()["response"];
    assert!(error(wrong).contains("没有“accept”操作"), "{wrong}");
    assert_eq!(button_ids(card(wrong)).len(), 4, "the buttons stay");
    assert_eq!(snapshot(&app).await.revision, claimed.revision);

    // 独立办理 with its input: the state moves on and the claimer's buttons are gone.
    gateway.send(
        0,
        card_frame(
            "f-independent",
            &review(&app, INSPECTOR),
            INSPECTOR,
            "decide_independent_btn",
            json!({"action": "decide_independent",
                   "path_and_basis": "由区人社局依据《保障农民工工资支付条例》责令企业支付"}),
        ),
    );
    let ack = gateway.acked("f-independent", 1).await;
    let answer = &ack[0].data()["response"];
    assert_eq!(error(answer), "", "{answer}");
    assert!(
        card(answer)["status"]
            .as_str()
            .is_some_and(|s| s.contains("建议独立办理")),
        "{answer}"
    );
    assert_eq!(card(answer)["button_count"], "0");
    assert_eq!(snapshot(&app).await.state, "independent");
    let outcomes: Vec<Option<String>> = card_rows(&app)
        .await
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(
        outcomes,
        ["applied", "answered", "applied"].map(|o| Some(o.to_string())),
        "one row per distinct tap"
    );
    app.shutdown.trigger();
}

//! Integration tests: one joint-mediation case run the way DingTalk runs it — signed robot
//! callbacks into `POST /dingtalk/robot`, the inbox processor and the engine deciding, the outbox
//! sending to the strict fake DingTalk — asserting every outbound message and card by recipient
//! and content. Once with the card platform (a template configured: cards created and updated in
//! place), once with no template (ActionCard messages whose buttons send text commands), and once
//! with messages arriving over Stream mode from the fake gateway.

use std::path::Path;
use std::time::Duration;

use tiaochu::roster::{Person, Role};
use tiaochu::settings::DingtalkMode;

use crate::fake_dingtalk::{Delivery, FakeDingtalk};
use crate::fake_stream::{FakeStream, callback_frame};
use crate::support::{TestApp, spawn_app};

pub(crate) const RS: &str = "u-rs-liaison";
pub(crate) const ZJ: &str = "u-zj-liaison";
const CG: &str = "u-cg-liaison";
const CG_LEADER: &str = "u-cg-leader";
pub(crate) const INSPECTOR: &str = "u-inspector-meng";
const INSPECTOR_B: &str = "u-inspector-li";
pub(crate) const T: &str = "DH2026110300017";

/// The shipped roster with DingTalk staff ids for the people this case involves.
fn roster_file(dir: &Path) -> std::path::PathBuf {
    crate::support::write_roster(
        dir,
        &[
            ("孟艳秋", INSPECTOR),
            ("李德艳", INSPECTOR_B),
            ("武应国", CG_LEADER),
            ("任燕", "u-rs-leader"),
            ("保国钰", "u-zj-leader"),
        ],
        vec![
            Person::new(
                "王联络",
                "区人社局",
                "科员",
                vec![Role::Liaison],
                RS,
                "13800000001",
            ),
            Person::new(
                "赵联络",
                "区住建局",
                "股长",
                vec![Role::Liaison],
                ZJ,
                "13800000002",
            ),
            Person::new(
                "钱联络",
                "区城市管理局",
                "股长",
                vec![Role::Liaison],
                CG,
                "13800000003",
            ),
        ],
    )
}

/// How robot messages reach the service.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Http,
    Stream,
}

/// One `api_base` for the service in Stream mode: the gateway's `open` goes to the fake Stream
/// gateway, every other OpenAPI call to the fake DingTalk (the real DingTalk serves both).
async fn api_proxy(gateway: String, openapi: String) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let router = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (client, gateway, openapi) = (client.clone(), gateway.clone(), openapi.clone());
            async move {
                let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let target = if path.starts_with("/v1.0/gateway/") {
                    gateway
                } else {
                    openapi
                };
                let mut request = client.request(method, format!("{target}{path}")).body(body);
                for (name, value) in &headers {
                    if name != "host" && name != "content-length" {
                        request = request.header(name, value);
                    }
                }
                let response = request.send().await.expect("fake reachable");
                let status = response.status();
                let content_type = response.headers().get("content-type").cloned();
                let bytes = response.bytes().await.expect("body");
                let mut answer = axum::response::Response::new(axum::body::Body::from(bytes));
                *answer.status_mut() = status;
                if let Some(ct) = content_type {
                    answer.headers_mut().insert("content-type", ct);
                }
                answer
            }
        },
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    base
}

pub(crate) struct Case {
    pub(crate) app: TestApp,
    pub(crate) fake: FakeDingtalk,
    via: Via,
    pub(crate) gateway: Option<FakeStream>,
    seq: u32,
    seen: usize,
    _dir: tempfile::TempDir,
}

impl Case {
    pub(crate) async fn start(template: bool, via: Via) -> Case {
        let fake = FakeDingtalk::at_start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let roster = roster_file(dir.path());
        let mut dingtalk = fake.settings();
        dingtalk.mode = DingtalkMode::Http;
        if !template {
            dingtalk.card_template_id = String::new();
        }
        let gateway = match via {
            Via::Http => None,
            Via::Stream => {
                let gateway = FakeStream::start().await;
                dingtalk.mode = DingtalkMode::Stream;
                dingtalk.api_base = api_proxy(gateway.api_base.clone(), fake.base.clone()).await;
                Some(gateway)
            }
        };
        let app = spawn_app(move |s| {
            // The fake's app secret both signs the callbacks and buys the access token.
            s.dingtalk = dingtalk;
            s.roster.path = roster;
        })
        .await;
        if let Some(gateway) = &gateway {
            gateway.connection(0).await;
        }
        Case {
            app,
            fake,
            via,
            gateway,
            seq: 0,
            seen: 0,
            _dir: dir,
        }
    }

    /// `from` sends `text` in a 1:1 chat; returns the deliveries it caused.
    pub(crate) async fn say(&mut self, from: &str, text: &str) -> Vec<Delivery> {
        self.seq += 1;
        let msg_id = format!("msg-{}", self.seq);
        let body =
            crate::support::robot_text(&msg_id, from, &format!(" {text}"), self.app.now_ms())
                .to_string();
        match (self.via, &self.gateway) {
            (Via::Stream, Some(gateway)) => {
                let frame_id = format!("frame-{}", self.seq);
                let data: serde_json::Value = serde_json::from_str(&body).expect("json");
                gateway.send(
                    0,
                    callback_frame(&frame_id, "/v1.0/im/bot/messages/get", &data),
                );
                gateway.acked(&frame_id, 1).await;
            }
            _ => {
                let response = self.app.post_signed(body).await;
                assert_eq!(response.status(), 200, "callback accepted");
            }
        }
        self.settle().await
    }

    /// Waits until the inbox is processed and the outbox has sent everything due.
    pub(crate) async fn settle(&mut self) -> Vec<Delivery> {
        for _ in 0..200 {
            let (inbox, backlog) = self
                .app
                .store
                .read(|r| {
                    Ok::<_, tiaochu::store::StoreError>((
                        r.pending_inbox(10)?.len(),
                        r.outbox_backlog()?.0,
                    ))
                })
                .await
                .expect("read");
            if inbox == 0 && backlog == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all = self.fake.deliveries();
        let new = all[self.seen..].to_vec();
        self.seen = all.len();
        assert!(
            self.fake.violations().is_empty(),
            "the fake saw invalid requests: {:?}",
            self.fake.violations()
        );
        new
    }
}

/// Text delivered to `user` (1:1 message, or a card in the user's robot space).
pub(crate) fn to(deliveries: &[Delivery], user: &str) -> String {
    deliveries
        .iter()
        .filter(|d| {
            d.user
                .as_deref()
                .is_some_and(|u| u == user || u.ends_with(&format!(".{user}")))
                || d.key.ends_with(&format!("__{user}"))
        })
        .map(|d| d.text.clone())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

pub(crate) const APPLICATION: &str = "工单编号：DH2026110300017
工单标题：反映某建筑公司拖欠薪资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况，企业方承认存在拖欠行为。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

async fn run_case(template: bool, via: Via) {
    let mut c = Case::start(template, via).await;

    let d = c.say(RS, APPLICATION).await;
    assert!(
        to(&d, RS).contains("TC-2026-0001") && to(&d, RS).contains(T),
        "receipt: {d:#?}"
    );
    for inspector in [INSPECTOR, INSPECTOR_B] {
        let card = to(&d, inspector);
        assert!(
            card.contains(T) && card.contains("联合调处申请"),
            "review card to {inspector}: {d:#?}"
        );
    }
    // The exact request bodies: a card-platform card with the 开始审核 button in its params, or
    // an ActionCard whose button sends the text command.
    let rows = c
        .app
        .store
        .read(|r| r.list_outbox(None, 1000))
        .await
        .expect("outbox");
    let to_inspector: Vec<String> = rows
        .iter()
        .filter(|r| r.target.contains(INSPECTOR))
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect();
    if template {
        assert!(
            to_inspector
                .iter()
                .any(|p| p.contains("cardTemplateId") && p.contains("开始审核")),
            "{to_inspector:#?}"
        );
    } else {
        let command = format!("dtmd://dingtalkclient/sendMessage?content=%E5%AE%A1%E6%A0%B8%20{T}");
        assert!(
            to_inspector
                .iter()
                .any(|p| p.contains("sampleActionCard") && p.contains(&command)),
            "ActionCard button sends 审核 {T}: {to_inspector:#?}"
        );
    }

    let d = c.say(INSPECTOR, &format!("审核 {T}")).await;
    assert!(
        to(&d, RS).contains("孟艳秋"),
        "the first unit is told who reviews: {d:#?}"
    );
    if template {
        let other = to(&d, INSPECTOR_B);
        assert!(
            other.contains("开始审核") && other.contains("孟艳秋"),
            "every copy of the card is updated: {d:#?}"
        );
    }
    let d = c.say(INSPECTOR_B, &format!("审核 {T}")).await;
    assert!(
        to(&d, INSPECTOR_B).contains("孟艳秋"),
        "double tap refused, naming the claimer: {d:#?}"
    );

    let d = c
        .say(
            INSPECTOR,
            &format!("联合 {T} 区住建局：核查项目审批及工程款拨付；区城市管理局：协助现场核查"),
        )
        .await;
    assert!(
        to(&d, ZJ).contains("核查项目审批及工程款拨付"),
        "coordination card to 区住建局: {d:#?}"
    );
    assert!(
        to(&d, CG).contains("协助现场核查"),
        "coordination card to 区城市管理局: {d:#?}"
    );
    assert!(
        to(&d, CG_LEADER).contains("区城市管理局"),
        "the unit's leader is told: {d:#?}"
    );

    let d = c.say(CG, &format!("异议 {T} 现场核查不属于本局职责")).await;
    assert!(
        to(&d, INSPECTOR).contains("现场核查不属于本局职责"),
        "objection to the inspector: {d:#?}"
    );
    let d = c.say(INSPECTOR, &format!("撤回 {T} 区城市管理局")).await;
    assert!(to(&d, CG).contains("撤回"), "{d:#?}");

    let d = c
        .say(
            ZJ,
            &format!("接受 {T} 联系人：赵建 职务：股长 电话：13900000000 协助：现场核查、政策解释"),
        )
        .await;
    let contacts = to(&d, RS);
    assert!(
        contacts.contains("赵建") && contacts.contains("13900000000"),
        "all contacts to the first unit: {d:#?}"
    );

    let d = c
        .say(RS, &format!("进展 {T} 已约谈企业负责人，承诺本周内付清"))
        .await;
    assert!(to(&d, ZJ).contains("本周内付清"), "{d:#?}");
    let d = c.say(ZJ, &format!("进展 {T} 工程款已拨付至项目账户")).await;
    assert!(to(&d, RS).contains("工程款已拨付"), "{d:#?}");

    let d = c
        .say(
            RS,
            &format!("办结 {T} 过程：联合约谈 措施：督促企业足额支付 群众反馈：诉求人表示满意"),
        )
        .await;
    assert!(to(&d, INSPECTOR).contains("督促企业足额支付"), "{d:#?}");
    let d = c.say(INSPECTOR, &format!("满意度 {T} 满意")).await;
    assert!(
        to(&d, RS).contains("满意") && to(&d, ZJ).contains(T),
        "everyone involved is told: {d:#?}"
    );
    c.say(
        INSPECTOR,
        &format!("典型 {T} 人社、住建联动，一周内解决欠薪"),
    )
    .await;
    let d = c.say(RS, &format!("进展 {T} 补充")).await;
    assert!(to(&d, RS).contains("已结案"), "{d:#?}");

    let dead = c
        .app
        .store
        .read(|r| r.outbox_backlog())
        .await
        .expect("backlog")
        .1;
    assert_eq!(dead, 0, "nothing dead-lettered");
    c.app.shutdown.trigger();
}

#[tokio::test]
async fn a_joint_case_through_http_callbacks_with_card_template() {
    run_case(true, Via::Http).await;
}

#[tokio::test]
async fn a_joint_case_through_http_callbacks_with_commands_only() {
    run_case(false, Via::Http).await;
}

#[tokio::test]
async fn a_joint_case_through_stream_mode() {
    run_case(true, Via::Stream).await;
}

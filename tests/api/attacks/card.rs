//! Forged card taps (security issue 13, High). The probe claimed a review, decided 联合调处 and
//! accepted for a unit with an attacker's phone by posting unsigned bodies to
//! `POST /dingtalk/card`, with `outTrackId`s derived from the case number, the card key and a
//! staff id. Now the route exists only when card callbacks arrive over HTTP, at a secret path,
//! and card ids carry an HMAC under a service secret: every try below answers 404/401/403 and
//! leaves the inbox, the outbox, the case and what DingTalk received as they were.

use reqwest::StatusCode;
use serde_json::json;
use tiaochu::card_secrets::CardSecrets;
use tiaochu::settings::DingtalkMode;

use crate::card_callbacks::{
    CASE, CG, Http, INSPECTOR, Snapshot, ZJ, card_secrets, coordination, review, settle, snapshot,
    tap_body,
};
use crate::fake_dingtalk::FakeDingtalk;
use crate::support::{TestApp, spawn_app};

/// Everything a forged tap could touch: the store's view and what reached DingTalk.
async fn trace(h: &Http) -> (Snapshot, usize) {
    settle(&h.app, true).await;
    (snapshot(&h.app).await, h.fake.deliveries().len())
}

/// A case submitted over a signed robot callback, waiting for review.
async fn submitted() -> Http {
    let h = Http::start().await;
    h.submit().await;
    h
}

/// A case decided 联合调处 by genuine taps, with coordination cards at 区住建局 and 区城市管理局.
async fn coordinating() -> Http {
    let h = submitted().await;
    h.tap(&review(&h.app, INSPECTOR), INSPECTOR, "claim", json!({}))
        .await;
    h.tap(
        &review(&h.app, INSPECTOR),
        INSPECTOR,
        "decide_joint",
        json!({"units": "区住建局：核查项目审批；区城市管理局：协助现场核查"}),
    )
    .await;
    assert_eq!(snapshot(&h.app).await.state, "coordinating");
    h
}

/// The probe's ids: the card key and staff id in the pre-fix shape, with a tag made without
/// this service's secret.
fn guessed(card_key: &str, user: &str) -> String {
    CardSecrets::ephemeral().instance_id(card_key, user)
}

/// An `outTrackId` with the genuine prefix and suffix and an invented tag.
fn invented_tag(genuine: &str) -> String {
    let (head, user) = genuine.split_once("__").expect("id shape");
    let (key, _tag) = head.rsplit_once('-').expect("tag");
    format!("{key}-00000000000000000000__{user}")
}

async fn assert_unchanged(h: &Http, before: &(Snapshot, usize)) {
    assert_eq!(&trace(h).await, before, "a refused tap changes nothing");
    assert!(h.fake.violations().is_empty(), "{:?}", h.fake.violations());
}

#[tokio::test]
async fn unsigned_tap_at_the_old_unsecret_path_is_404() {
    let h = submitted().await;
    let before = trace(&h).await;
    let claim = tap_body(&review(&h.app, INSPECTOR), INSPECTOR, "claim", json!({}));
    for path in [
        "/dingtalk/card",
        "/dingtalk/card/",
        "/dingtalk/card-callback",
    ] {
        let (status, _) = h.post_at(path, &claim, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_unchanged(&h, &before).await;
    h.app.shutdown.trigger();
}

#[tokio::test]
async fn tap_at_a_guessed_secret_segment_is_a_bare_404() {
    let h = submitted().await;
    let before = trace(&h).await;
    let claim = tap_body(&review(&h.app, INSPECTOR), INSPECTOR, "claim", json!({}));
    let real = card_secrets(&h.app).callback_segment().to_string();
    let mut near = real.clone().into_bytes();
    let last = near.len() - 1;
    near[last] = if near[last] == b'A' { b'B' } else { b'A' };
    let near = String::from_utf8(near).expect("ascii");
    let guesses = [
        "hotline_cb".to_string(),
        "x".repeat(real.len()),
        near,
        real[..real.len() - 1].to_string(),
        format!("{real}x"),
        CardSecrets::ephemeral().callback_segment().to_string(),
    ];
    for guess in &guesses {
        let response = h
            .app
            .client
            .post(format!("{}/dingtalk/card/{guess}", h.app.address))
            .body(claim.clone())
            .send()
            .await
            .expect("reachable");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{guess}");
        // Indistinguishable from a path that never existed: no body that says "wrong secret".
        assert_eq!(response.text().await.expect("body"), "", "{guess}");
    }
    assert_unchanged(&h, &before).await;
    h.app.shutdown.trigger();
}

#[tokio::test]
async fn claim_with_an_out_track_id_derived_from_the_case_number_is_404() {
    let h = submitted().await;
    let before = trace(&h).await;
    let key = format!("{CASE}/review/v1");
    for id in [
        guessed(&key, INSPECTOR),
        invented_tag(&review(&h.app, INSPECTOR)),
        format!("{CASE}_review_v1__{INSPECTOR}"),
    ] {
        let claim = tap_body(&id, INSPECTOR, "claim", json!({}));
        // Even at the secret path (say it leaked from a proxy's log): the id names no card.
        assert_eq!(h.post(&claim, &[]).await.0, StatusCode::NOT_FOUND, "{id}");
    }
    assert_unchanged(&h, &before).await;
    h.app.shutdown.trigger();
}

#[tokio::test]
async fn joint_decision_with_invented_directions_on_a_derived_id_is_404() {
    let h = submitted().await;
    // The genuine inspector has claimed: the attacker now tries to decide in their name.
    h.tap(&review(&h.app, INSPECTOR), INSPECTOR, "claim", json!({}))
        .await;
    let before = trace(&h).await;
    let decide = tap_body(
        &guessed(&format!("{CASE}/review/v1"), INSPECTOR),
        INSPECTOR,
        "decide_joint",
        json!({"units": "区住建局：请立即联系 13900000000 处理"}),
    );
    assert_eq!(h.post(&decide, &[]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        h.post_at("/dingtalk/card", &decide, &[]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_unchanged(&h, &before).await;
    assert_eq!(snapshot(&h.app).await.state, "under_review");
    h.app.shutdown.trigger();
}

#[tokio::test]
async fn accept_with_an_attackers_phone_on_a_derived_id_is_404() {
    let h = coordinating().await;
    let before = trace(&h).await;
    let accept = |id: &str| {
        tap_body(
            id,
            ZJ,
            "accept",
            json!({"contact_name": "假冒", "position": "科长", "phone": "13912345678",
                   "help": ["现场核查"]}),
        )
    };
    let derived = guessed(&format!("{CASE}/coordination/区住建局"), ZJ);
    assert_eq!(
        h.post(&accept(&derived), &[]).await.0,
        StatusCode::NOT_FOUND
    );
    let genuine = coordination(&h.app, "区住建局", ZJ);
    assert_eq!(
        h.post_at("/dingtalk/card", &accept(&genuine), &[]).await.0,
        StatusCode::NOT_FOUND,
        "the genuine id at the unsecret path"
    );
    assert_unchanged(&h, &before).await;
    assert!(
        before.0.units.iter().all(|(_, status)| status == "pending"),
        "{:?}",
        before.0.units
    );
    h.app.shutdown.trigger();
}

#[tokio::test]
async fn tap_on_another_persons_genuine_copy_is_403() {
    let h = coordinating().await;
    let before = trace(&h).await;
    // 区住建局's liaison acting on 区城市管理局's copy, with that copy's real id.
    let foreign = tap_body(
        &coordination(&h.app, "区城市管理局", CG),
        ZJ,
        "object",
        json!({"reason": "不属于本单位职责"}),
    );
    assert_eq!(h.post(&foreign, &[]).await.0, StatusCode::FORBIDDEN);
    assert_unchanged(&h, &before).await;
    h.app.shutdown.trigger();
}

#[tokio::test]
async fn tap_with_a_forged_signature_is_401() {
    let h = submitted().await;
    let before = trace(&h).await;
    let claim = tap_body(&review(&h.app, INSPECTOR), INSPECTOR, "claim", json!({}));
    let now = h.app.now_ms().to_string();
    let forged = tiaochu::dingtalk::sign::callback_sign(&now, "guessed-secret");
    for headers in [
        vec![("timestamp", now.as_str()), ("sign", forged.as_str())],
        vec![("timestamp", now.as_str())],
        vec![("sign", forged.as_str())],
    ] {
        assert_eq!(
            h.post(&claim, &headers).await.0,
            StatusCode::UNAUTHORIZED,
            "{headers:?}"
        );
    }
    assert_unchanged(&h, &before).await;
    h.app.shutdown.trigger();
}

/// The card route in a mode where taps never arrive over HTTP: every path under it is 404.
async fn assert_no_card_route(app: &TestApp) {
    for path in ["/dingtalk/card", "/dingtalk/card/anything"] {
        let response = app
            .client
            .post(format!("{}{path}", app.address))
            .body(tap_body(
                "TC-2026-0001_review_v1__u1",
                "u1",
                "claim",
                json!({}),
            ))
            .send()
            .await
            .expect("reachable");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert!(app.inbox().await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn card_route_does_not_exist_in_stream_mode() {
    let gateway = crate::fake_stream::FakeStream::start().await;
    let api_base = gateway.api_base.clone();
    let app = spawn_app(move |s| {
        s.dingtalk.mode = DingtalkMode::Stream;
        s.dingtalk.api_base = api_base;
        s.dingtalk.app_key = "ding-stream-app".into();
        s.dingtalk.card_template_id = "tpl.schema".into();
        s.dingtalk.card_callback_route_key = "hotline_cb".into();
    })
    .await;
    assert_no_card_route(&app).await;
    app.shutdown.trigger();
}

#[tokio::test]
async fn card_route_does_not_exist_in_actioncard_mode_or_without_a_route_key() {
    let fake = FakeDingtalk::at_start().await;
    for (template, route_key) in [("", "hotline_cb"), ("tpl.schema", ""), ("", "")] {
        let mut dingtalk = fake.settings();
        dingtalk.mode = DingtalkMode::Http;
        dingtalk.card_template_id = template.into();
        dingtalk.card_callback_route_key = route_key.into();
        let app = spawn_app(move |s| s.dingtalk = dingtalk).await;
        assert_no_card_route(&app).await;
        app.shutdown.trigger();
    }
}

#[tokio::test]
async fn the_card_secrets_survive_a_restart_and_differ_between_databases() {
    let h = submitted().await;
    let first = card_secrets(&h.app);
    let other = Http::start().await;
    assert_ne!(
        first.callback_path(),
        card_secrets(&other.app).callback_path(),
        "every database has its own secrets"
    );
    let reopened =
        CardSecrets::load_or_create(&h.app.store, jiff::Timestamp::UNIX_EPOCH).expect("load");
    assert_eq!(reopened.callback_path(), first.callback_path());
    assert_eq!(
        reopened.instance_id("k", "u"),
        first.instance_id("k", "u"),
        "generated once, never replaced"
    );
    h.app.shutdown.trigger();
    other.app.shutdown.trigger();
}

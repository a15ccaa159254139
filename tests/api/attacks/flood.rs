//! One sender's flood (security issue 13, Medium): 1,500 messages from one person once held
//! another person's answer to `模板` for 80 s. Now each sender has a per-minute limit
//! (`[inbox] per_sender_per_minute`, 30 by default): the rest of the minute is recorded but not
//! acted on, the sender is told once, and everyone else is answered as usual.

use jiff::SignedDuration;

use crate::card_callbacks::{Http, RS, ZJ, settle};

fn message(msg_id: &str, sender: &str, text: &str, at_ms: i64) -> String {
    crate::support::robot_text(msg_id, sender, text, at_ms)
        .with("senderNick", "测试")
        .to_string()
}

#[tokio::test]
async fn one_senders_flood_is_cut_at_the_limit_and_another_sender_is_answered() {
    let h = Http::start().await;
    let now = h.app.now_ms();
    for i in 0..100 {
        let response = h
            .app
            .post_signed(message(&format!("flood-{i}"), RS, "帮助", now))
            .await;
        assert_eq!(response.status(), 200, "every message is acknowledged");
    }
    let response = h.app.post_signed(message("quiet-1", ZJ, "模板", now)).await;
    assert_eq!(response.status(), 200);
    settle(&h.app, true).await;

    let inbox = h.app.inbox().await;
    let outcome = |prefix: &str, outcome: &str| {
        inbox
            .iter()
            .filter(|r| r.message_id.starts_with(prefix) && r.outcome.as_deref() == Some(outcome))
            .count()
    };
    assert_eq!(inbox.len(), 101, "every message is stored");
    assert_eq!(outcome("flood-", "answered"), 30);
    assert_eq!(outcome("flood-", "throttled"), 70);
    assert_eq!(outcome("quiet-", "answered"), 1);

    let deliveries = h.fake.deliveries();
    let to = |user: &str| {
        deliveries
            .iter()
            .filter(|d| d.user.as_deref() == Some(user))
            .collect::<Vec<_>>()
    };
    let flooder = to(RS);
    assert_eq!(flooder.len(), 31, "30 answers and one notice");
    let notices: Vec<_> = flooder
        .iter()
        .filter(|d| d.text.contains("消息过于频繁"))
        .collect();
    assert_eq!(notices.len(), 1, "told once per minute");
    assert!(
        notices[0].text.contains("暂停处理") && notices[0].text.contains("重新发送"),
        "{}",
        notices[0].text
    );
    let quiet = to(ZJ);
    assert_eq!(quiet.len(), 1);
    assert!(quiet[0].text.contains("工单编号"), "{}", quiet[0].text);

    // The next minute the flooder is answered again.
    h.app.clock.advance(SignedDuration::from_secs(60));
    let later = h.app.now_ms();
    h.app
        .post_signed(message("after-1", RS, "帮助", later))
        .await;
    settle(&h.app, true).await;
    let after = h.app.inbox().await;
    assert_eq!(
        after
            .iter()
            .find(|r| r.message_id == "after-1")
            .and_then(|r| r.outcome.as_deref()),
        Some("answered")
    );
    assert!(h.fake.violations().is_empty(), "{:?}", h.fake.violations());
    h.app.shutdown.trigger();
}

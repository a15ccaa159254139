//! `tiaochu check-config --online` through the binary against the strict fake DingTalk: good
//! settings pass every line and message nobody; broken credentials, a template DingTalk does
//! not know, a wrong robot code, a missing card permission, an unregistered (unconfigured) HTTP
//! callback route and roster people without an account each fail by name with exit 1; what
//! cannot be checked without sending is said so, and does not fail.

use crate::fake_dingtalk::{FakeDingtalk, TEMPLATE_ID};
use crate::roster_sync::{Deployment, text};

/// Every person bound, every role present.
const BOUND_ROSTER: &str = r#"
[[unit]]
name = "区住建局"
kind = "department"
aliases = ["住建局"]

[[unit]]
name = "区12345热线"
kind = "hotline"
aliases = ["区热线"]

[[person]]
name = "王伟"
unit = "区住建局"
roles = ["leader", "liaison"]
staff_id = "u-ww"

[[person]]
name = "孙丽"
unit = "区12345热线"
roles = ["inspector", "supervisor", "hotline_head", "admin"]
staff_id = "u-sunli"
"#;

/// This year and next year in the service's time zone.
fn years() -> (i16, i16) {
    let year = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz"))
        .year();
    (year, year + 1)
}

/// A deployment on the fake with a holiday directory holding `years`.
fn deployment(fake: &FakeDingtalk, roster: &str, years: &[i16]) -> Deployment {
    let mut d = Deployment::new(fake, roster);
    let calendar = d.dir.path().join("calendar");
    std::fs::create_dir(&calendar).expect("calendar dir");
    for y in years {
        std::fs::write(
            calendar.join(format!("cn-{y}.json")),
            format!(
                r#"{{"year": {y}, "source": "测试数据", "off_days": [], "makeup_workdays": []}}"#
            ),
        )
        .expect("write year");
    }
    let dir = calendar.to_str().expect("utf-8").to_string();
    d.set("TIAOCHU_CALENDAR__DIR", &dir);
    d.set("TIAOCHU_DINGTALK__CARD_TEMPLATE_ID", TEMPLATE_ID);
    d
}

async fn fake() -> FakeDingtalk {
    FakeDingtalk::at_start().await
}

fn all(out: &std::process::Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn good_settings_pass_every_line_and_message_nobody() {
    let fake = fake().await;
    let (year, next) = years();
    let d = deployment(&fake, BOUND_ROSTER, &[year, next]);
    let out = d.run(&["check-config", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    for line in [
        "[通过] 运行模式：stream".to_string(),
        "[通过] 应用凭据：已用 app_key dingfakeappkey 取得 access token".to_string(),
        "[通过] 机器人：钉钉认得 robot_code dingfakerobot".to_string(),
        format!("[通过] 卡片模板：钉钉接受模板 {TEMPLATE_ID}"),
        "[通过] 卡片回调：stream 模式".to_string(),
        "[通过] 名单：2 人都已绑定钉钉账号".to_string(),
        format!("[通过] 节假日：{year} 年安排已载入"),
        format!("[通过] 节假日：{next} 年安排已载入"),
        "[提示] 发送权限：".to_string(),
        "配置检查通过".to_string(),
    ] {
        assert!(stdout.contains(&line), "missing {line:?} in\n{stdout}");
    }
    assert!(!stdout.contains("[失败]"), "{stdout}");
    // The template was judged on a card delivered to nobody.
    assert_eq!(fake.undelivered_cards().len(), 1);
    assert!(fake.deliveries().is_empty(), "{:?}", fake.deliveries());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn broken_credentials_fail_by_name_and_nothing_else_is_asked() {
    let fake = fake().await;
    let (year, next) = years();
    let mut d = deployment(&fake, BOUND_ROSTER, &[year, next]);
    d.set("TIAOCHU_DINGTALK__APP_SECRET", "wrong-secret-value");
    let out = d.run(&["check-config", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(
        stdout.contains("[失败] 应用凭据：未能取得 access token"),
        "{stdout}"
    );
    assert!(stdout.contains("核对 AppKey 与 AppSecret"), "{stdout}");
    assert!(
        stdout.contains("[无法确认] 机器人、卡片：未检查"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("在线检查未通过：应用凭据"),
        "{}",
        all(&out)
    );
    assert!(!all(&out).contains("wrong-secret-value"), "secret printed");
    assert!(fake.requests().iter().all(|r| r.route == "token"));
}

#[tokio::test]
async fn a_template_dingtalk_does_not_know_fails_by_name() {
    let fake = fake().await;
    let (year, next) = years();
    let mut d = deployment(&fake, BOUND_ROSTER, &[year, next]);
    let missing = "99999999-0000-0000-0000-000000000000.schema";
    d.set("TIAOCHU_DINGTALK__CARD_TEMPLATE_ID", missing);
    let out = d.run(&["check-config", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(
        stdout.contains(&format!("[失败] 卡片模板：钉钉不接受卡片模板 {missing}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("invalidParameter.cardTemplate.notFound"),
        "{stdout}"
    );
    assert!(stdout.contains("[通过] 应用凭据"), "{stdout}");
    assert!(fake.undelivered_cards().is_empty());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn http_mode_without_a_route_key_fails_and_a_configured_one_is_not_pretended() {
    let fake = fake().await;
    let (year, next) = years();
    let mut d = deployment(&fake, BOUND_ROSTER, &[year, next]);
    d.set("TIAOCHU_DINGTALK__MODE", "http");
    d.set("TIAOCHU_DINGTALK__CARD_CALLBACK_ROUTE_KEY", "");
    let out = d.run(&["check-config", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(
        stdout.contains(
            "[失败] 卡片回调：http 模式配置了卡片模板，但 card_callback_route_key 未配置"
        ),
        "{stdout}"
    );

    d.set("TIAOCHU_DINGTALK__CARD_CALLBACK_ROUTE_KEY", "hotline_cb");
    let out = d.run(&["check-config", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    assert!(
        stdout.contains("[无法确认] 卡片回调：路由键 hotline_cb 是否已在钉钉登记无法在线确认"),
        "{stdout}"
    );
    assert!(stdout.contains("没有查询接口"), "{stdout}");
    assert!(stdout.contains("[通过] 卡片模板"), "{stdout}");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn wrong_robot_code_and_missing_card_permission_fail_but_an_unanswerable_robot_check_does_not()
 {
    let fake = fake().await;
    let (year, next) = years();
    let mut d = deployment(&fake, BOUND_ROSTER, &[year, next]);
    d.set("TIAOCHU_DINGTALK__ROBOT_CODE", "dingsomeoneelse");
    let out = d.run(&["check-config", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(
        stdout.contains("[失败] 机器人：钉钉不认 robot_code dingsomeoneelse"),
        "{stdout}"
    );

    d.set("TIAOCHU_DINGTALK__ROBOT_CODE", "");
    fake.deny_permission("Robot.SingleChat.ReadWrite");
    fake.deny_permission("Card.Instance.Write");
    let out = d.run(&["check-config", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(
        stdout.contains("[无法确认] 机器人：robot_code dingfakeappkey 无法在不发消息的情况下确认"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[失败] 卡片模板：钉钉拒绝了创建卡片（card/instances）：本应用没有开通权限 Card.Instance.Write（互动卡片实例写权限）"),
        "{stdout}"
    );
    assert!(
        !text(&out.stderr).contains("在线检查未通过：机器人"),
        "{}",
        all(&out)
    );
}

#[tokio::test]
async fn unbound_people_sandbox_mode_and_missing_holidays_are_reported() {
    let fake = fake().await;
    let (year, next) = years();
    let roster = format!(
        "{BOUND_ROSTER}\n[[person]]\nname = \"李娜\"\nunit = \"区住建局\"\nroles = [\"liaison\"]\n"
    );
    let mut d = deployment(&fake, &roster, &[year]);
    d.set("TIAOCHU_DINGTALK__MODE", "sandbox");
    let out = d.run(&["check-config", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(
        stdout.contains("[失败] 运行模式：[dingtalk] mode 为 sandbox"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "[失败] 名单：1 人没有钉钉账号（staff_id），发给他们的消息都会失败：李娜（区住建局）"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("tiaochu roster sync"), "{stdout}");
    assert!(
        stdout.contains(&format!("[提示] 节假日：尚未载入 {next} 年节假日安排")),
        "{stdout}"
    );
    // Credentials are set, so DingTalk is still checked in sandbox mode.
    assert!(stdout.contains("[通过] 应用凭据"), "{stdout}");

    let d = deployment(&fake, BOUND_ROSTER, &[next]);
    let out = d.run(&["check-config", "--online"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(
        stdout.contains(&format!("[失败] 节假日：尚未载入 {year} 年节假日安排")),
        "{stdout}"
    );
}

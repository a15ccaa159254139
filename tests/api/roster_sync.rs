//! `tiaochu roster sync` through the binary against the strict fake DingTalk's address book:
//! namesakes (one in the person's unit, sixty elsewhere — two pages of search results), two
//! members of the same name in one unit, one member only in the wrong department, and a person
//! DingTalk does not have. The dry run changes nothing; `--apply` stores exactly the bindings
//! the address book settles, as roster changes by 通讯录同步 that `roster export` and
//! `check-config` show; a missing permission ends the run with a Chinese message naming it.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use tiaochu::roster::Roster;
use tiaochu::store::Store;

use crate::fake_dingtalk::{APP_KEY, APP_SECRET, FakeDingtalk, Fault, ROBOT_CODE, ROOT_DEPT};

pub const ROSTER: &str = r#"
[[unit]]
name = "区住建局"
kind = "department"
aliases = ["区住房和城乡建设局", "住建局"]

[[unit]]
name = "区教育局"
kind = "department"
aliases = ["教育局"]

[[unit]]
name = "区财政局"
kind = "department"
aliases = ["财政局"]

[[unit]]
name = "区城市管理局"
kind = "department"
aliases = ["城市管理局", "区城管局", "城管局"]

[[unit]]
name = "区12345热线"
kind = "hotline"
aliases = ["区热线"]

[[person]]
name = "王伟"
unit = "区住建局"
title = "办公室主任"
roles = ["liaison"]

[[person]]
name = "陈静"
unit = "区住建局"
roles = ["leader"]
staff_id = "u-chenjing"

[[person]]
name = "李娜"
unit = "区教育局"
roles = ["liaison"]

[[person]]
name = "张敏"
unit = "区财政局"
roles = ["liaison"]

[[person]]
name = "赵强"
unit = "区城市管理局"
roles = ["leader"]

[[person]]
name = "刘洋"
unit = "区城市管理局"
roles = ["liaison"]

[[person]]
name = "孙丽"
unit = "区12345热线"
roles = ["inspector", "supervisor", "hotline_head", "admin"]
staff_id = "u-sunli"
"#;

/// A temporary deployment: roster file, database path (not created) and the fake's settings.
pub struct Deployment {
    /// Keeps the files alive as long as the deployment.
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Deployment {
    pub fn new(fake: &FakeDingtalk, roster: &str) -> Deployment {
        let dir = tempfile::tempdir().expect("tempdir");
        let roster_path = dir.path().join("roster.toml");
        std::fs::write(&roster_path, roster).expect("write roster");
        let db = dir.path().join("tiaochu.db");
        let env = [
            ("TIAOCHU_DINGTALK__MODE", "stream".to_string()),
            ("TIAOCHU_DINGTALK__API_BASE", fake.base.clone()),
            ("TIAOCHU_DINGTALK__OAPI_BASE", fake.base.clone()),
            ("TIAOCHU_DINGTALK__APP_KEY", APP_KEY.to_string()),
            ("TIAOCHU_DINGTALK__APP_SECRET", APP_SECRET.to_string()),
            ("TIAOCHU_DINGTALK__ROBOT_CODE", ROBOT_CODE.to_string()),
            ("TIAOCHU_ROSTER__PATH", path_text(&roster_path)),
            ("TIAOCHU_STORE__PATH", path_text(&db)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Deployment { dir, db, env }
    }

    /// Sets (or replaces) one setting's environment variable.
    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Runs the binary with this deployment's settings, off the test's runtime so the fake
    /// keeps answering.
    pub async fn run(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env = self.env.clone();
        tokio::task::spawn_blocking(move || {
            // Neither the developer's settings nor proxies reach it (support::cli).
            let mut command = crate::support::cli();
            command.args(&args).envs(env);
            command.output().expect("run tiaochu")
        })
        .await
        .expect("join")
    }
}

fn path_text(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn all(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// The address book of the tests: departments under the root, and the members.
fn address_book(fake: &FakeDingtalk) {
    fake.add_department(10, "甘州区住房和城乡建设局", ROOT_DEPT);
    fake.add_department(11, "办公室", 10);
    fake.add_department(20, "区教育局", ROOT_DEPT);
    fake.add_department(21, "基础教育股", 20);
    fake.add_department(30, "城管局", ROOT_DEPT);
    fake.add_member("u-chenjing", "陈静", "局长", &[10]);
    // The one 王伟 of 区住建局, and sixty namesakes in 区教育局: two pages of search results.
    fake.add_member("u-ww-1", "王伟", "办公室主任", &[11]);
    for i in 0..60 {
        fake.add_member(&format!("u-ww-edu-{i:02}"), "王伟", "教师", &[20]);
    }
    // Not an exact match for 王伟.
    fake.add_member("u-www", "王伟伟", "科员", &[11]);
    fake.add_member("u-ln-1", "李娜", "科员", &[20]);
    fake.add_member("u-ln-2", "李娜", "股长", &[21]);
    // 张敏 of 区财政局 is not in DingTalk; a 张敏 of 城管局 is.
    fake.add_member("u-zm", "张敏", "科员", &[30]);
    fake.add_member("u-ly", "刘洋", "科员", &[30]);
}

fn expected_report(bound: Value) -> Value {
    json!({
        "bound": bound,
        "ambiguous": [
            {"name": "李娜", "unit": "区教育局", "candidates": [
                {"staff_id": "u-ln-1", "dept": "区教育局", "title": "科员"},
                {"staff_id": "u-ln-2", "dept": "区教育局/基础教育股", "title": "股长"},
            ]},
            {"name": "张敏", "unit": "区财政局", "candidates": [
                {"staff_id": "u-zm", "dept": "城管局", "title": "科员"},
            ]},
        ],
        "not_found": [{"name": "赵强", "unit": "区城市管理局"}],
    })
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", all(out)))
}

#[tokio::test]
async fn dry_run_changes_nothing_and_apply_stores_exactly_the_unambiguous_bindings() {
    let fake = FakeDingtalk::at_start().await;
    address_book(&fake);
    let deployment = Deployment::new(&fake, ROSTER);
    // The first search is throttled, its repeat meets a passing 503: the run waits as DingTalk
    // asked, then backs off, and asks again.
    fake.fail_next(&[Fault::Throttle, Fault::Status(503)]);

    let out = deployment.run(&["roster", "sync", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let bound = json!([
        {"name": "王伟", "unit": "区住建局", "staff_id": "u-ww-1"},
        {"name": "刘洋", "unit": "区城市管理局", "staff_id": "u-ly"},
    ]);
    assert_eq!(json_out(&out), expected_report(bound.clone()));
    assert!(!deployment.db.exists(), "a dry run creates no database");

    let searches: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|s| s.route == "contact_search")
        .map(|s| s.status)
        .collect();
    // Throttled, unavailable, then 王伟 (two pages), 李娜, 张敏, 赵强, 刘洋 — 陈静 is bound already.
    assert_eq!(
        searches,
        vec![403, 503, 200, 200, 200, 200, 200, 200],
        "{searches:?}"
    );

    // The text form says it is a dry run.
    let out = deployment.run(&["roster", "sync"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    assert!(stdout.contains("试运行：未做任何修改"), "{stdout}");
    assert!(
        stdout.contains("王伟（区住建局）→ 钉钉账号 u-ww-1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("u-ln-2  部门：区教育局/基础教育股  职务：股长"),
        "{stdout}"
    );
    assert!(stdout.contains("绑定 姓名 @该人员"), "{stdout}");
    assert!(!deployment.db.exists());

    let out = deployment
        .run(&["roster", "sync", "--apply", "--json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    assert_eq!(json_out(&out), expected_report(bound));
    assert!(text(&out.stderr).contains("请重启"), "{}", all(&out));

    // `roster export` shows exactly the two bindings.
    let out = deployment.run(&["roster", "export"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    let exported = Roster::from_toml_str(&text(&out.stdout), "export").expect("valid export");
    let staff: Vec<(String, String)> = exported
        .people()
        .iter()
        .map(|p| (p.name.clone(), p.staff_id.clone()))
        .collect();
    let expect: Vec<(String, String)> = [
        ("王伟", "u-ww-1"),
        ("陈静", "u-chenjing"),
        ("李娜", ""),
        ("张敏", ""),
        ("赵强", ""),
        ("刘洋", "u-ly"),
        ("孙丽", "u-sunli"),
    ]
    .iter()
    .map(|(n, s)| (n.to_string(), s.to_string()))
    .collect();
    assert_eq!(staff, expect);

    // Stored as roster changes with their history, by 通讯录同步.
    let store = Store::open(&deployment.db).expect("store");
    let history = store
        .read_blocking(|r| r.roster_changes())
        .expect("history");
    let rows: Vec<(String, String, String)> = history
        .iter()
        .map(|h| (h.actor.clone(), h.action.clone(), h.name.clone()))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("通讯录同步".into(), "bind".into(), "王伟".into()),
            ("通讯录同步".into(), "bind".into(), "刘洋".into()),
        ]
    );
    drop(store);

    // check-config lists them as changes made in DingTalk.
    let out = deployment.run(&["check-config"]).await;
    let stdout = text(&out.stdout);
    assert!(stdout.contains("2 人的名单已在钉钉中调整"), "{}", all(&out));
    assert!(
        stdout.contains("王伟（区住建局）：文件 角色 联络员，staff_id （未填）；现行 角色 联络员，staff_id u-ww-1"),
        "{stdout}"
    );

    // A second run finds nothing more to bind and stores nothing new.
    let out = deployment
        .run(&["roster", "sync", "--apply", "--json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", all(&out));
    assert_eq!(json_out(&out), expected_report(json!([])));
    let store = Store::open(&deployment.db).expect("store");
    assert_eq!(
        store
            .read_blocking(|r| r.roster_changes())
            .expect("history")
            .len(),
        2
    );

    assert!(fake.deliveries().is_empty(), "nobody is messaged");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn a_missing_permission_is_named_in_chinese_and_exits_1_without_changes() {
    let fake = FakeDingtalk::at_start().await;
    address_book(&fake);
    let deployment = Deployment::new(&fake, ROSTER);

    fake.deny_permission("qyapi_get_member");
    let out = deployment.run(&["roster", "sync", "--apply"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(
        stderr.contains("钉钉拒绝了查询成员详情（topapi/v2/user/get）：本应用没有开通权限 qyapi_get_member（成员信息读权限）"),
        "{stderr}"
    );
    assert!(
        stderr.contains("权限管理，搜索 qyapi_get_member 并申请开通"),
        "{stderr}"
    );
    assert!(stderr.contains("名单未做任何修改"), "{stderr}");
    assert!(text(&out.stdout).is_empty(), "{}", all(&out));
    assert!(!deployment.db.exists(), "nothing stored");

    fake.deny_permission("qyapi_addresslist_search");
    let out = deployment.run(&["roster", "sync", "--json"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", all(&out));
    assert!(
        stderr.contains("qyapi_addresslist_search（搜索企业通讯录的权限）"),
        "{stderr}"
    );
    assert!(!stderr.contains(APP_SECRET), "secret printed: {stderr}");
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn without_credentials_sync_refuses_before_asking_anyone() {
    let fake = FakeDingtalk::at_start().await;
    let mut deployment = Deployment::new(&fake, ROSTER);
    deployment.set("TIAOCHU_DINGTALK__APP_SECRET", "");
    let out = deployment.run(&["roster", "sync"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", all(&out));
    assert!(
        text(&out.stderr).contains("app_key 与 app_secret"),
        "{}",
        all(&out)
    );
    assert!(fake.requests().is_empty());
}

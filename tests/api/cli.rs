//! Integration tests: the `tiaochu` command as an admin runs it (settings layering, check-config).

use std::path::Path;
use std::process::Output;

use crate::support::cli;

/// Runs the built binary in a scratch directory where the shipped relative paths resolve.
pub fn tiaochu(args: &[&str]) -> Output {
    cli().args(args).output().expect("run tiaochu")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_passes_on_shipped_config_with_warnings() {
    let out = tiaochu(&["check-config"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("68 个单位"), "{stdout}");
    assert!(stdout.contains("未填写 staff_id"), "{stdout}");
    assert!(stdout.contains("没有联络员"), "{stdout}");
    assert!(stdout.contains("区人社局"), "{stdout}");
}

#[test]
fn check_config_reports_broken_roster_with_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let roster = dir.path().join("roster.toml");
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/roster.toml"))
            .expect("shipped roster");
    let broken = format!(
        "{shipped}\n[[person]]\nname = \"测试\"\nunit = \"区不存在局\"\nroles = [\"liaison\"]\n"
    );
    let bad_line = broken
        .lines()
        .position(|l| l.contains("区不存在局"))
        .expect("line")
        + 1;
    std::fs::write(&roster, broken).expect("write");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("[roster]\npath = {:?}\n", roster.display().to_string()),
    )
    .expect("write");
    let out = tiaochu(&["--config", config.to_str().expect("utf8"), "check-config"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("第 {bad_line} 行")), "{stderr}");
    assert!(stderr.contains("不在单位名单中"), "{stderr}");
}

#[test]
fn check_config_requires_credentials_outside_sandbox() {
    let out = cli()
        .arg("check-config")
        .env("TIAOCHU_DINGTALK__MODE", "stream")
        .env("TIAOCHU_DINGTALK__APP_SECRET", "top-secret-value")
        .output()
        .expect("run");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("app_key 未配置"), "{all}");
    assert!(!all.contains("top-secret-value"), "secret printed: {all}");
}

#[test]
fn bad_settings_exit_2_in_chinese() {
    let out = cli()
        .arg("check-config")
        .env("TIAOCHU_SLA__DECISION_WORKING_DAYS", "三")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("应为整数"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn healthcheck_exits_0_against_a_running_service_and_1_when_none_answers() {
    let app = crate::support::spawn_app(|_| {}).await;
    let listen = app.address.trim_start_matches("http://").to_string();
    let run = |listen: String| {
        cli()
            .arg("healthcheck")
            .env("TIAOCHU_SERVER__LISTEN", listen)
            .output()
            .expect("run")
    };
    let out = tokio::task::spawn_blocking(move || run(listen))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"store\""),
        "{}",
        text(&out.stdout)
    );
    app.shutdown.trigger();

    // Nothing listens on a port just released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr").to_string();
    drop(free);
    let out = tokio::task::spawn_blocking(move || run(addr))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("无法连接"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_second_service_on_the_same_database_is_refused_naming_the_first() {
    let app = crate::support::spawn_app(|_| {}).await;
    let db = app.db_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        cli()
            .arg("serve")
            .env("TIAOCHU_STORE__PATH", &db)
            .env("TIAOCHU_SERVER__LISTEN", "127.0.0.1:0")
            .env("TIAOCHU_DINGTALK__MODE", "sandbox")
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("已有一个 tiaochu serve 在运行"), "{stderr}");
    assert!(
        stderr.contains(&std::process::id().to_string()),
        "names the holder's process id: {stderr}"
    );
    // The running service was not disturbed.
    let (status, _) = app.health().await;
    assert!(status.is_success());
    app.shutdown.trigger();
    app.server.await.expect("join").expect("server");
}

#[test]
fn check_config_shows_the_secret_card_callback_path_the_service_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tiaochu.db");
    let run = |extra: &[(&str, &str)]| {
        let mut command = cli();
        command
            .arg("check-config")
            .env("TIAOCHU_STORE__PATH", &db)
            .env("TIAOCHU_DINGTALK__MODE", "http")
            .env("TIAOCHU_DINGTALK__APP_KEY", "ding-app")
            .env("TIAOCHU_DINGTALK__APP_SECRET", "top-secret-value")
            .env("TIAOCHU_DINGTALK__ROBOT_CODE", "ding-app")
            .env("TIAOCHU_DINGTALK__CARD_TEMPLATE_ID", "tpl.schema");
        for (k, v) in extra {
            command.env(k, v);
        }
        let out = command.output().expect("run");
        (
            out.status.code(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    };
    // A template over HTTP without a route key: taps would go nowhere.
    let (code, all) = run(&[]);
    assert_eq!(code, Some(1), "{all}");
    assert!(all.contains("card_callback_route_key 未配置"), "{all}");

    let key = [("TIAOCHU_DINGTALK__CARD_CALLBACK_ROUTE_KEY", "hotline_cb")];
    let (code, all) = run(&key);
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("tiaochu migrate"), "no database yet: {all}");
    assert!(!db.exists(), "check-config creates no database");

    tiaochu::store::Store::open(&db).expect("migrate");
    let (code, all) = run(&key);
    assert_eq!(code, Some(0), "{all}");
    let store = tiaochu::store::Store::open(&db).expect("open");
    let path = tiaochu::card_secrets::CardSecrets::stored(&store)
        .expect("read")
        .expect("generated by check-config")
        .callback_path();
    assert!(all.contains(&format!("https://<公网地址>{path}")), "{all}");
    let (_, again) = run(&key);
    assert!(again.contains(&path), "the same path every time: {again}");
}

/// Existence, length and modification time of the checkout's `tiaochu.db` and its WAL files.
fn checkout_database() -> Vec<Option<(u64, std::time::SystemTime)>> {
    ["tiaochu.db", "tiaochu.db-wal", "tiaochu.db-shm"]
        .iter()
        .map(|name| {
            let meta = std::fs::metadata(crate::support::repo_root().join(name)).ok()?;
            Some((meta.len(), meta.modified().ok()?))
        })
        .collect()
}

/// `cargo test` must never touch a developer's files: the commands that default to
/// `[store] path = "tiaochu.db"` (relative to the working directory) open the scratch
/// directory's database, and the checkout's `./tiaochu.db` — a developer's sandbox data — is
/// exactly as it was.
#[test]
fn the_default_database_is_the_scratch_directorys_never_the_checkouts() {
    let before = checkout_database();
    let scratch = tempfile::tempdir().expect("tempdir");

    let mut migrate = cli();
    let out = migrate.arg("migrate").output().expect("run migrate");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        migrate.cwd().join("tiaochu.db").exists(),
        "`migrate` creates the default database in the working directory it runs in"
    );

    let year = scratch.path().join("2027.json");
    std::fs::write(
        &year,
        r#"{"year": 2027, "source": "测试", "off_days": ["2027-01-01"], "makeup_workdays": []}"#,
    )
    .expect("write year");
    let runs: [&[&str]; 4] = [
        &["check-config"],
        &["outbox", "list"],
        &["report", "--month", "2026-11", "--format", "csv"],
        &["calendar", "load", year.to_str().expect("utf-8")],
    ];
    for args in runs {
        let mut command = cli();
        command.args(args);
        if args[0] == "calendar" {
            // `load` writes the year into the calendar directory: a scratch one, not config/.
            command.env("TIAOCHU_CALENDAR__DIR", scratch.path().join("calendar"));
        }
        // Each in a fresh scratch directory holding a database, as a developer's checkout would.
        std::fs::copy(
            migrate.cwd().join("tiaochu.db"),
            command.cwd().join("tiaochu.db"),
        )
        .expect("copy database");
        let out = command.output().expect("run");
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    assert_eq!(
        checkout_database(),
        before,
        "a test changed the checkout's tiaochu.db"
    );
}

/// The guard behind the test above: no test runs the binary but through `support::cli`, and no
/// test calls a command's `run` in-process on the default database path.
#[test]
fn every_run_of_the_binary_goes_through_the_scratch_directory() {
    // Split so that this file does not match itself.
    let binary = concat!("CARGO_BIN_", "EXE_tiaochu");
    let cwd = concat!(".current_", "dir(");
    let in_process = "tiaochu::cli::";
    let mut offenders = Vec::new();
    let mut stack = vec![crate::support::repo_root().join("tests")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read tests/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("api/support.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("read test source");
            if source.contains(binary) || source.contains(cwd) {
                offenders.push(format!("{} runs the binary itself", path.display()));
            }
            if source.contains(in_process)
                && source.contains("Settings::load_with_env(")
                && !source.contains("TIAOCHU_STORE__PATH")
                && !source.contains("store.path =")
            {
                offenders.push(format!(
                    "{} runs a command in-process without setting [store] path",
                    path.display()
                ));
            }
        }
    }
    assert!(offenders.is_empty(), "use support::cli():\n{offenders:#?}");
}

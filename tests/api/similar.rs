//! Integration tests: similar past cases at review (五(五)). A past case handled to the end in
//! commands is shown — decision, helping units with their help, working days, satisfaction and
//! typical summary — on the review card of a later application about the same problem, with the
//! units it did not ask for suggested; `相似` and `案例` answer the hotline and group leaders only;
//! the index follows every case write and `tiaochu migrate` rebuilds it; `tiaochu similar` reads
//! the store or a directory of application files.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::conversation::{CG, Chat, INSPECTOR, RS, ZJ};

const GROUP_LEADER: &str = "local:区营商环境建设局:何军";

const PAST: &str = "工单编号：DH2026110300017
工单标题：反映某建筑公司拖欠农民工工资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业核实，企业承认拖欠30名农民工工资。
办理难点：企业称建设单位工程款未拨付，区人社局一家无法推动资金到位。
需协调部门及事由：区住建局督促建设单位拨付工程款；区城市管理局协助核查工地现场。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。";

const UNRELATED: &str = "工单编号：DH2026110400021
工单标题：反映医保异地报销进度慢的问题
首接单位：区人社局
已采取措施：已向诉求人解释报销流程。
办理难点：报销涉及异地就医备案信息核对。
需协调部门及事由：区医保服务中心核对备案信息。
请示分管领导相关情况：已汇报分管副局长，同意。";

const NEW: &str = "工单编号：DH2026111000088
工单标题：反映工地老板拖欠工人工钱的问题
首接单位：区人社局
已采取措施：已约谈施工企业，企业承认欠付工人工资，称工程款没有到位。
办理难点：建设单位拨款不到位，工人多次讨薪。
需协调部门及事由：区住建局督促建设单位支付工程款。
请示分管领导相关情况：分管领导已同意。";

/// Everything `to` received in one step, joined.
fn one(got: &BTreeMap<String, Vec<String>>, to: &str) -> String {
    got.get(to)
        .unwrap_or_else(|| panic!("nothing for {to}: {got:#?}"))
        .join("\n---\n")
}

/// The past wage case, handled to the end: joint with two units, each naming its help,
/// completed, rated 满意 and marked typical.
async fn past_case(chat: &mut Chat) {
    let t = "DH2026110300017";
    chat.say(RS, PAST).await;
    chat.say(INSPECTOR, &format!("审核 {t}")).await;
    chat.say(
        INSPECTOR,
        &format!("联合 {t} 区住建局：督促拨付工程款；区城市管理局：核查工地现场"),
    )
    .await;
    chat.say(
        ZJ,
        &format!("接受 {t} 联系人：赵建 职务：股长 电话：13900000000 协助：数据共享、政策解释"),
    )
    .await;
    chat.say(
        CG,
        &format!("接受 {t} 联系人：钱城 职务：队长 电话：13900000001 协助：现场核查"),
    )
    .await;
    chat.say(
        RS,
        &format!("办结 {t} 过程：联合约谈建设单位 措施：工程款拨付到专户 群众反馈：已领到工资"),
    )
    .await;
    chat.say(INSPECTOR, &format!("满意度 {t} 满意")).await;
    chat.say(
        INSPECTOR,
        &format!("典型 {t} 人社牵头、住建督促拨款，一周内结清欠薪"),
    )
    .await;
}

#[tokio::test]
async fn the_review_card_shows_similar_past_cases_with_what_worked_and_suggests_units() {
    let mut chat = Chat::new();
    past_case(&mut chat).await;
    let got = chat.say(RS, UNRELATED).await;
    let unrelated = one(&got, INSPECTOR);
    assert!(
        !unrelated.contains("类似案例"),
        "a case sharing only the common words is not similar:\n{unrelated}"
    );

    let got = chat.say(RS, NEW).await;
    let card = one(&got, INSPECTOR);
    assert!(card.contains("类似案例"), "{card}");
    let section = &card[card.find("类似案例").expect("section")..];
    for expected in [
        "TC-2026-0001",
        "DH2026110300017",
        "反映某建筑公司拖欠农民工工资的问题",
        "【典型】",
        "联合调处，已结案",
        "区住建局（数据共享、政策解释）",
        "区城市管理局（现场核查）",
        // Closed the day it was received (the start day does not count).
        "当日办结",
        "群众满意",
        "典型经验：人社牵头、住建督促拨款，一周内结清欠薪",
        "类似案例中协办过、本次未列出的单位：区城市管理局",
    ] {
        assert!(
            section.contains(expected),
            "missing {expected:?} in:\n{section}"
        );
    }
    assert!(
        !section.contains("DH2026110400021"),
        "the unrelated medical case is not shown:\n{section}"
    );
    assert!(
        !section.contains("13900000000"),
        "contacts' phones are not on the card: {section}"
    );
    // The receipt to the liaison has no history in it; the suggestion is never applied.
    assert!(!one(&got, RS).contains("类似案例"), "{got:#?}");
    let requests = chat
        .store
        .read_blocking(|r| {
            let row = r
                .case_by_ticket(&crate::support::ticket_no("DH2026111000088"))?
                .remove(0);
            r.case_units(row.id)
        })
        .expect("read");
    assert!(
        requests.is_empty(),
        "no unit was asked by itself: {requests:?}"
    );

    // The card keeps its list when it is updated after the claim.
    let got = chat.say(INSPECTOR, "审核 DH2026111000088").await;
    let updated = one(&got, INSPECTOR);
    assert!(
        updated.contains("类似案例") && updated.contains("TC-2026-0001"),
        "{updated}"
    );

    std::fs::create_dir_all("test-artifacts").expect("artifacts dir");
    std::fs::write(
        "test-artifacts/transcript-similar-review.md",
        format!(
            "# 研判卡片上的类似案例（沙盒，命令方式）\n{}\n",
            chat.transcript.join("\n")
        ),
    )
    .expect("transcript");
}

/// The review card's list is searched ahead, off the writer, and the decision takes it only
/// for exactly its query: a list kept for the same application and exclusion is the one shown
/// (here a doctored empty one, so the past case is missing), one kept for another exclusion is
/// not (the past case is found inside the decision).
#[tokio::test]
async fn the_decision_shows_the_list_searched_ahead_for_exactly_its_query() {
    let mut chat = Chat::new();
    past_case(&mut chat).await;
    let engine = chat.engine().clone();
    let report = tiaochu::parse::parse_application(NEW, engine.units());
    let app =
        tiaochu::workflow::Application::from_report(&report, engine.units()).expect("complete");
    let query = tiaochu::casebook::review_query(&app, &app.first_unit);

    engine
        .similar_ahead()
        .put(query.clone(), Some(1), Vec::new());
    engine.similar_ahead().put(query.clone(), None, Vec::new());
    let got = chat.say(RS, NEW).await;
    let card = one(&got, INSPECTOR);
    assert!(
        !card.contains("类似案例"),
        "the list kept for this query is shown:\n{card}"
    );
    assert!(
        engine.similar_ahead().take(&query, Some(1)).is_none(),
        "a step forgets the searches it did not use"
    );

    let mut chat = Chat::new();
    past_case(&mut chat).await;
    let engine = chat.engine().clone();
    engine.similar_ahead().put(query, Some(1), Vec::new());
    let got = chat.say(RS, NEW).await;
    let card = one(&got, INSPECTOR);
    assert!(
        card.contains("类似案例") && card.contains("DH2026110300017"),
        "a list kept for another exclusion is not taken:\n{card}"
    );
}

#[tokio::test]
async fn similar_and_case_search_answer_the_hotline_and_group_leaders_only() {
    let mut chat = Chat::new();
    past_case(&mut chat).await;
    chat.say(RS, UNRELATED).await;
    chat.say(RS, NEW).await;

    let got = chat.say(INSPECTOR, "相似 DH2026111000088").await;
    let reply = one(&got, INSPECTOR);
    assert!(reply.contains("最相似的往期案例"), "{reply}");
    assert!(reply.contains("TC-2026-0001"), "{reply}");
    assert!(!reply.contains("DH2026111000088（"), "not itself: {reply}");

    let got = chat.say(GROUP_LEADER, "案例 欠薪").await;
    let reply = one(&got, GROUP_LEADER);
    assert!(
        reply.contains("【典型】") && reply.contains("TC-2026-0001"),
        "{reply}"
    );
    assert!(
        !reply.contains("DH2026111000088"),
        "only closed and typical cases are searched: {reply}"
    );

    let got = chat.say(INSPECTOR, "案例 烟花爆竹燃放").await;
    assert!(one(&got, INSPECTOR).contains("没有找到"), "{got:#?}");

    let got = chat.say(RS, "相似 DH2026111000088").await;
    assert!(one(&got, RS).contains("仅供区12345热线"), "{got:#?}");
    let got = chat.say(RS, "案例 欠薪").await;
    let refusal = one(&got, RS);
    assert!(
        refusal.contains("仅供区12345热线") && !refusal.contains("TC-2026-0001"),
        "{refusal}"
    );

    let got = chat.say(INSPECTOR, "相似 DH2026119999999").await;
    assert!(one(&got, INSPECTOR).contains("没有找到"), "{got:#?}");
    let got = chat.say(INSPECTOR, "案例").await;
    assert!(one(&got, INSPECTOR).contains("缺少关键词"), "{got:#?}");
}

fn tiaochu(args: &[&str], db: &Path) -> (i32, String, String) {
    let out = crate::support::cli()
        .args(args)
        .env("TIAOCHU_STORE__PATH", db)
        .env_remove("TIAOCHU_DINGTALK__MODE")
        .output()
        .expect("run tiaochu");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_index_follows_the_cases_and_migrate_rebuilds_it() {
    let mut chat = Chat::new();
    past_case(&mut chat).await;
    chat.say(RS, UNRELATED).await;
    let db = chat.store.path().to_path_buf();
    let (cases, indexed, closed) = chat
        .store
        .read_blocking(|r| -> Result<_, tiaochu::store::StoreError> {
            let row = r
                .case_by_ticket(&crate::support::ticket_no("DH2026110300017"))?
                .remove(0);
            Ok((
                r.case_count()?,
                r.similar_count()?,
                r.similar_doc(row.id)?.expect("indexed"),
            ))
        })
        .expect("read");
    assert_eq!((cases, indexed), (2, 2));
    assert!(closed.closed && closed.typical, "{closed:?}");
    assert!(
        closed.units.contains(&"区城市管理局".to_string()),
        "the units that helped are a signal: {closed:?}"
    );

    let query = tempfile::NamedTempFile::new().expect("query file");
    std::fs::write(query.path(), NEW).expect("write");
    let q = query.path().to_str().expect("utf8");
    let (code, out, err) = tiaochu(&["similar", "--json", "--top", "2", q], &db);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    let first = &v["similar"][0];
    assert_eq!(first["id"], "TC-2026-0001", "{out}");
    assert_eq!(first["case_no"], "TC-2026-0001");
    assert_eq!(first["ticket_no"], "DH2026110300017");
    assert!(
        first["score"].as_f64().is_some_and(|s| s > 0.0 && s <= 1.0),
        "{out}"
    );
    assert!(
        first["units"]
            .as_array()
            .is_some_and(|u| u.iter().any(|u| u == "区住建局")),
        "{out}"
    );

    // A rebuild after the index was emptied gives back the same answer.
    chat.store
        .write_blocking(|tx| tx.clear_similar())
        .expect("clear");
    let (code, out, err) = tiaochu(&["migrate"], &db);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("相似案例索引已重建（2 个案件）"), "{out}");
    let (code, again, err) = tiaochu(&["similar", "--json", "--top", "2", q], &db);
    assert_eq!(code, 0, "{err}");
    let w: Value = serde_json::from_str(&again).expect("json");
    assert_eq!(w["similar"][0]["id"], "TC-2026-0001", "{again}");
    assert_eq!(w["similar"][0]["score"], first["score"], "{again}");

    // Text output: the outcome in words.
    let (code, out, _) = tiaochu(&["similar", q], &db);
    assert_eq!(code, 0);
    assert!(
        out.contains("TC-2026-0001") && out.contains("群众满意"),
        "{out}"
    );
}

#[test]
fn similar_over_a_corpus_directory_names_files_and_leaves_out_the_query_itself() {
    let past = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/similar/past");
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/similar/queries");
    let nowhere = Path::new("/nonexistent/tiaochu.db");
    let dir = past.to_str().expect("utf8");
    let q = queries.join("q17-noise-barbecue-downstairs.txt");
    let (code, out, err) = tiaochu(
        &[
            "similar",
            "--json",
            "--top",
            "3",
            "--corpus",
            dir,
            q.to_str().expect("utf8"),
        ],
        nowhere,
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    let found = v["similar"].as_array().expect("array");
    assert_eq!(found.len(), 3, "{out}");
    assert_eq!(found[0]["id"], "noise-04", "{out}");
    assert!(found[0]["case_no"].is_null(), "{out}");
    let scores: Vec<f64> = found.iter().filter_map(|f| f["score"].as_f64()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    let own = past.join("wage-01.txt");
    let (code, out, _) = tiaochu(
        &[
            "similar",
            "--json",
            "--corpus",
            dir,
            own.to_str().expect("utf8"),
        ],
        nowhere,
    );
    assert_eq!(code, 0);
    assert!(!out.contains("\"wage-01\""), "not its own neighbour: {out}");

    let (code, _, err) = tiaochu(&["similar", "--corpus", dir, "-"], nowhere);
    assert_eq!(code, 1, "nothing to compare on empty input: {err}");
    assert!(err.contains("没有可比较的内容"), "{err}");

    let (code, _, err) = tiaochu(&["similar", q.to_str().expect("utf8")], nowhere);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("数据库文件") && err.contains("--corpus"),
        "{err}"
    );
}

/// Searching ahead must not undo the flood limit: only the messages a decision will act on are
/// searched for — not a stranger's, not those over the sender's limit, in this step or a later
/// one of the same minute.
#[tokio::test]
async fn only_applications_that_will_be_decided_are_searched_ahead() {
    use crate::support::{RS, hold_writer, seed_application_text, world};
    let mut w = world().the_liaisons().build();
    let processor = tiaochu::inbox::InboxProcessor::new(w.engine.clone()).with_sender_limit(2);
    for i in 0..4 {
        let text = seed_application_text(&format!("DH20261103000{}", 20 + i));
        let message = w.message(RS, &text);
        w.deliver(&message).await;
    }
    let stranger = w.message("not-in-roster", &seed_application_text("DH2026110300030"));
    w.deliver(&stranger).await;
    // The writer is held until the step has searched: a decision of this step that commits
    // before the next message's search counts for its sender, and that search is then left to
    // the decision (src/inbox.rs, search_ahead) — a race the test must not depend on.
    let held = hold_writer(w.engine.store());
    let step = tokio::spawn({
        let (processor, now) = (processor.clone(), w.now());
        async move { processor.process_pending(now).await }
    });
    let waited = std::time::Instant::now();
    while w.engine.similar_ahead().searched() < 2 && waited.elapsed().as_secs() < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    held.release();
    step.await.expect("task").expect("step");
    assert_eq!(
        w.engine.similar_ahead().searched(),
        2,
        "two within the limit of two; the two over it and the stranger's are not searched"
    );

    let late = w.message(RS, &seed_application_text("DH2026110300031"));
    w.deliver(&late).await;
    processor.process_pending(w.now()).await.expect("step");
    assert_eq!(w.engine.similar_ahead().searched(), 2, "the same minute");

    w.advance(jiff::SignedDuration::from_secs(60));
    let next = w.message(RS, &seed_application_text("DH2026110300032"));
    w.deliver(&next).await;
    processor.process_pending(w.now()).await.expect("step");
    assert_eq!(w.engine.similar_ahead().searched(), 3, "a new minute");
}

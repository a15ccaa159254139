//! Text that people write (docs/security.md): hostile markdown and HTML pasted into an
//! application, a reason, a contact line or a note, sent the real way — a signed robot callback
//! into `POST /dingtalk/robot`, the inbox, the engine, the outbox, the strict fake DingTalk —
//! must reach everyone else as the literal text that was written: no live link, image, HTML or
//! layout, and the only `dtmd://` links are the service's own buttons, each sending a command
//! the service wrote. Every attack runs twice: with the card platform (the card's `markdown`
//! variable) and without a template (ActionCard messages whose buttons are `dtmd://` links).

use std::path::Path;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use serde_json::Value;
use tiaochu::engine::decode;
use tiaochu::roster::{Person, Role};
use tiaochu::settings::DingtalkMode;
use tiaochu::workflow::Case;

use crate::fake_dingtalk::FakeDingtalk;
use crate::support::{TestApp, spawn_app};

const RS: &str = "u-rs-liaison";
const ZJ: &str = "u-zj-liaison";
const CG: &str = "u-cg-liaison";
const INSPECTOR: &str = "u-inspector-meng";
const INSPECTOR_B: &str = "u-inspector-li";
const T: &str = "DH2026110300017";

/// The commands the service's buttons may send (text before the ticket number).
const BUTTON_VERBS: [&str; 7] = ["审核", "联合", "独立", "退回", "市级", "接受", "异议"];

fn roster_file(dir: &Path) -> std::path::PathBuf {
    let liaison = |name: &str, unit: &str, id: &str, phone: &str| {
        Person::new(name, unit, "股长", vec![Role::Liaison], id, phone)
    };
    crate::support::write_roster(
        dir,
        &[
            ("孟艳秋", INSPECTOR),
            ("李德艳", INSPECTOR_B),
            ("任燕", "u-rs-leader"),
            ("保国钰", "u-zj-leader"),
            ("武应国", "u-cg-leader"),
            ("姚雪婷", "u-supervisor"),
        ],
        vec![
            liaison("王联络", "区人社局", RS, "13800000001"),
            liaison("赵联络", "区住建局", ZJ, "13800000002"),
            liaison("钱联络", "区城市管理局", CG, "13800000003"),
        ],
    )
}

/// One outbound row: who it is for and what it carries.
#[derive(Debug)]
struct Sent {
    /// The staff id it goes to (a card row's target ends in `__<staff id>`).
    to: String,
    payload: Value,
}

impl Sent {
    fn is_for(&self, user: &str) -> bool {
        self.to == user || self.to.ends_with(&format!("__{user}"))
    }

    /// The message parameters (`msgParam` decoded) or the card's `cardParamMap`.
    fn params(&self) -> Value {
        if let Some(param) = self.payload["msgParam"].as_str() {
            return serde_json::from_str(param).expect("msgParam is JSON");
        }
        if let Some(map) = self.payload["cardData"]["cardParamMap"].as_object() {
            return Value::Object(map.clone());
        }
        self.payload["markdown"].clone()
    }

    /// The texts rendered as markdown: an ActionCard's or message's `text`, a card's `markdown`.
    fn markdown(&self) -> Vec<String> {
        let params = self.params();
        ["text", "markdown"]
            .iter()
            .filter_map(|k| params[*k].as_str().map(str::to_string))
            .collect()
    }

    /// The plain-text card variables.
    fn plain(&self) -> Vec<String> {
        let params = self.params();
        ["title", "status"]
            .iter()
            .filter_map(|k| params[*k].as_str().map(str::to_string))
            .collect()
    }
}

struct Service {
    app: TestApp,
    fake: FakeDingtalk,
    seq: u32,
    last_row: i64,
    _dir: tempfile::TempDir,
}

impl Service {
    async fn start(template: bool) -> Service {
        let fake = FakeDingtalk::at_start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let roster = roster_file(dir.path());
        let mut dingtalk = fake.settings();
        dingtalk.mode = DingtalkMode::Http;
        if !template {
            dingtalk.card_template_id = String::new();
        }
        let app = spawn_app(move |s| {
            s.dingtalk = dingtalk;
            s.roster.path = roster;
        })
        .await;
        Service {
            app,
            fake,
            seq: 0,
            last_row: 0,
            _dir: dir,
        }
    }

    /// `from` sends `text` in a 1:1 chat through a signed callback; returns the rows it caused,
    /// once the fake DingTalk has received them.
    async fn say(&mut self, from: &str, text: &str) -> Vec<Sent> {
        self.seq += 1;
        let msg_id = format!("msg-{}", self.seq);
        let body = crate::support::robot_text(&msg_id, from, text, self.app.now_ms()).to_string();
        let response = self.app.post_signed(body).await;
        assert_eq!(response.status(), 200, "the callback is accepted");
        for _ in 0..200 {
            let (inbox, backlog) = self
                .app
                .store
                .read(|r| {
                    Ok::<_, tiaochu::store::StoreError>((
                        r.pending_inbox(10)?.len(),
                        r.outbox_backlog()?,
                    ))
                })
                .await
                .expect("read");
            if inbox == 0 && backlog.0 == 0 {
                if backlog.1 > 0 {
                    let dead = self
                        .app
                        .store
                        .read(|r| r.list_outbox(Some(tiaochu::store::OutboxState::Dead), 10))
                        .await
                        .expect("dead rows");
                    let why: Vec<_> = dead.iter().map(|d| (&d.target, &d.last_error)).collect();
                    panic!("dead-lettered: {why:?}");
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            self.fake.violations().is_empty(),
            "the fake saw invalid requests: {:?}",
            self.fake.violations()
        );
        let rows = self
            .app
            .store
            .read(|r| r.list_outbox(None, 10_000))
            .await
            .expect("outbox");
        let last = self.last_row;
        let mut new: Vec<_> = rows.into_iter().filter(|r| r.id > last).collect();
        new.sort_by_key(|r| r.id);
        self.last_row = new.last().map_or(last, |r| r.id);
        new.into_iter()
            .map(|r| Sent {
                to: r.target,
                payload: serde_json::from_slice(&r.payload).expect("payload is JSON"),
            })
            .collect()
    }

    async fn case(&self) -> Case {
        let rows = self
            .app
            .store
            .read(|r| r.case_by_ticket(&crate::support::ticket_no(T)))
            .await
            .expect("read case");
        decode(rows.first().expect("the case exists")).expect("decode")
    }

    /// Submits `application`, claims it and, with `units`, decides a joint mediation.
    async fn drive_to_joint(&mut self, application: &str, units: &str) {
        self.say(RS, application).await;
        self.say(INSPECTOR, &format!("审核 {T}")).await;
        if !units.is_empty() {
            self.say(INSPECTOR, &format!("联合 {T} {units}")).await;
        }
    }
}

fn application(title: &str, measures: &str) -> String {
    format!(
        "工单编号：{T}\n工单标题：{title}\n首接单位：区人社局\n已采取措施：{measures}\n\
         办理难点：涉诉企业承接区城建公司项目，区人社局一家无法办理。\n\
         需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。\n\
         请示分管领导相关情况：已向分管领导汇报，分管领导已同意。"
    )
}

const PLAIN_TITLE: &str = "反映某建筑公司拖欠薪资的问题";
const PLAIN_MEASURES: &str = "已向涉事建筑企业取得联系，核实拖欠薪资的基本情况。";

/// What a reader sees of escaped markdown: backslash escapes and entities undone.
fn shown(markdown: &str) -> String {
    let mut out = String::new();
    let mut rest = markdown;
    while let Some(c) = rest.chars().next() {
        if c == '\\'
            && let Some(n) = rest[1..].chars().next().filter(char::is_ascii_punctuation)
        {
            out.push(n);
            rest = &rest[1 + n.len_utf8()..];
            continue;
        }
        let entity = [
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&amp;", '&'),
            ("&quot;", '"'),
        ]
        .into_iter()
        .find(|(e, _)| rest.starts_with(e));
        if let Some((e, decoded)) = entity {
            out.push(decoded);
            rest = &rest[e.len()..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Live markdown or HTML a renderer would act on: a bracket or `](` not escaped, a tag or
/// autolink opening, a URL scheme or `www.` a linker picks up.
fn live_syntax(markdown: &str) -> Vec<String> {
    let chars: Vec<char> = markdown.chars().collect();
    let mut live = vec![true; chars.len()];
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && chars.get(i + 1).is_some_and(char::is_ascii_punctuation) {
            live[i] = false;
            live[i + 1] = false;
            i += 2;
        } else {
            i += 1;
        }
    }
    let mut found = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let before: String = chars[..i].iter().collect::<String>().to_ascii_lowercase();
        let context: String = chars[i.saturating_sub(12)..(i + 12).min(chars.len())]
            .iter()
            .collect();
        if !live[i] {
            continue;
        }
        let what = match c {
            '[' | ']' => Some("bracket"),
            '<' if next.is_some_and(|n| n.is_ascii_alphabetic() || "/!?".contains(n)) => {
                Some("tag or autolink")
            }
            ':' if next.is_some_and(|n| !n.is_whitespace())
                && ["http", "https", "dtmd", "javascript", "dingtalk", "mailto"]
                    .iter()
                    .any(|s| before.ends_with(s)) =>
            {
                Some("URL scheme")
            }
            '.' if before.ends_with("www") => Some("www link"),
            _ => None,
        };
        if let Some(what) = what {
            found.push(format!("{what} in …{context}…"));
        }
    }
    if markdown.contains("](") {
        found.push("](".into());
    }
    found
}

/// Every string value in `v`, with the key it sits under; `msgParam` is opened.
fn strings(v: &Value, key: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) if key == "msgParam" => match serde_json::from_str::<Value>(s) {
            Ok(inner) => strings(&inner, "", out),
            Err(_) => out.push((key.to_string(), s.clone())),
        },
        Value::String(s) => out.push((key.to_string(), s.clone())),
        Value::Array(items) => items.iter().for_each(|x| strings(x, key, out)),
        Value::Object(map) => map.iter().for_each(|(k, x)| strings(x, k, out)),
        _ => {}
    }
}

/// The checks every attack ends with: `marker` (a piece of the hostile text) reached each of
/// `readers` and shows there as written; no markdown anyone receives holds live syntax; the only
/// `dtmd://` links are button URLs whose command is one the service writes, with none of the
/// hostile text in it. A card's `status` is a plain-text variable (the template shows it as
/// text): there a `dtmd://` someone wrote is their literal text, on one line.
fn assert_inert(sent: &[Sent], readers: &[&str], marker: &str, hostile_bits: &[&str]) {
    for reader in readers {
        let seen: Vec<String> = sent
            .iter()
            .filter(|s| s.is_for(reader))
            .flat_map(|s| {
                let mut texts: Vec<String> = s.markdown().iter().map(|m| shown(m)).collect();
                texts.extend(s.plain());
                texts
            })
            .collect();
        assert!(
            seen.iter().any(|t| t.contains(marker)),
            "{reader} sees {marker:?} as written: {seen:#?}"
        );
    }
    for s in sent {
        for markdown in s.markdown() {
            let live = live_syntax(&markdown);
            assert!(live.is_empty(), "to {}: {live:?} in\n{markdown}", s.to);
        }
        let mut all = Vec::new();
        strings(&s.payload, "", &mut all);
        for (key, value) in &all {
            if !value.contains("dtmd://") {
                continue;
            }
            if key == "status" && s.payload.get("cardData").is_some() {
                assert!(
                    value
                        .lines()
                        .filter(|l| l.contains("dtmd://"))
                        .all(|l| l.contains("提出异议：")),
                    "only inside the service's own objection line: {value}"
                );
                continue;
            }
            let is_button = key == "singleURL" || key.starts_with("actionURL");
            assert!(
                is_button && value.starts_with("dtmd://dingtalkclient/sendMessage?content="),
                "dtmd link outside a button ({key}) to {}: {value}",
                s.to
            );
            let content = value.split_once("content=").map_or("", |(_, c)| c);
            let command = percent_decode_str(content)
                .decode_utf8()
                .expect("UTF-8 command");
            assert!(
                BUTTON_VERBS
                    .iter()
                    .any(|v| command.starts_with(&format!("{v} {T}"))),
                "a button sends a command the service wrote: {command}"
            );
            for bit in hostile_bits {
                assert!(!command.contains(bit), "{bit:?} in a button: {command}");
            }
        }
    }
}

#[tokio::test]
async fn a_link_in_an_application_title_reaches_the_inspectors_as_text() {
    let title = "反映[点击查看详情](http://evil.example/phish)拖欠薪资的问题";
    for template in [true, false] {
        let mut s = Service::start(template).await;
        let sent = s.say(RS, &application(title, PLAIN_MEASURES)).await;
        assert_eq!(s.case().await.application.title, title, "stored as written");
        assert_inert(
            &sent,
            &[INSPECTOR, INSPECTOR_B],
            title,
            &["evil.example", "点击查看详情"],
        );
        s.app.shutdown.trigger();
    }
}

#[tokio::test]
async fn a_remote_image_in_an_application_is_no_tracking_pixel() {
    let measures = "已上门核实。![](http://tracker.example/p.gif?case=1)![现场照片](https://tracker.example/q.png \"t\")";
    for template in [true, false] {
        let mut s = Service::start(template).await;
        let sent = s.say(RS, &application(PLAIN_TITLE, measures)).await;
        assert_eq!(s.case().await.application.measures_taken, measures);
        assert_inert(&sent, &[INSPECTOR, INSPECTOR_B], measures, &["tracker"]);
        s.app.shutdown.trigger();
    }
}

#[tokio::test]
async fn a_dtmd_link_in_an_objection_cannot_make_the_inspector_send_a_command() {
    // Tapped, this would make the inspector's own client send 撤回 for the objecting unit.
    let forged = format!(
        "dtmd://dingtalkclient/sendMessage?content=%E6%92%A4%E5%9B%9E%20{T}%20%E5%8C%BA%E5%9F%8E%E5%B8%82%E7%AE%A1%E7%90%86%E5%B1%80"
    );
    let reason = format!("不属于本局职责，[点此查看依据]({forged}) 另见 {forged}");
    for template in [true, false] {
        let mut s = Service::start(template).await;
        s.drive_to_joint(
            &application(PLAIN_TITLE, PLAIN_MEASURES),
            "区住建局：核查项目审批；区城市管理局：协助现场核查",
        )
        .await;
        let sent = s.say(CG, &format!("异议 {T} {reason}")).await;
        let case = s.case().await;
        let objection = case
            .request("区城市管理局")
            .and_then(|r| r.objection.as_ref())
            .expect("the objection is recorded");
        assert_eq!(objection.reason, reason, "stored as written");
        assert_inert(&sent, &[INSPECTOR], &reason, &["%E6%92%A4", "查看依据"]);
        s.app.shutdown.trigger();
    }
}

#[tokio::test]
async fn a_javascript_link_in_a_progress_note_is_text() {
    let note = "已约谈企业负责人，详见[会议纪要](javascript:alert(document.cookie)) 与 [附件](JaVaScRiPt:void(0))";
    for template in [true, false] {
        let mut s = Service::start(template).await;
        s.drive_to_joint(
            &application(PLAIN_TITLE, PLAIN_MEASURES),
            "区住建局：核查项目审批",
        )
        .await;
        s.say(
            ZJ,
            &format!("接受 {T} 联系人：赵建 职务：股长 电话：13900000000 协助：现场核查"),
        )
        .await;
        let sent = s.say(RS, &format!("进展 {T} {note}")).await;
        assert_eq!(
            s.case().await.progress.last().map(|p| p.text.as_str()),
            Some(note)
        );
        assert_inert(&sent, &[ZJ], note, &["javascript", "会议纪要"]);
        s.app.shutdown.trigger();
    }
}

#[tokio::test]
async fn raw_html_in_an_accept_line_is_text() {
    let name = r#"<a href="http://evil.example/x">赵建</a>"#;
    let position = "<font color=red>股长</font>";
    // Help items are split at spaces and slashes: an image without either.
    let help = "![跟踪](https:tracker.example?p.gif)";
    for template in [true, false] {
        let mut s = Service::start(template).await;
        s.drive_to_joint(
            &application(PLAIN_TITLE, PLAIN_MEASURES),
            "区住建局：核查项目审批",
        )
        .await;
        let sent = s
            .say(
                ZJ,
                &format!("接受 {T} 联系人：{name} 职务：{position} 电话：13900000000 协助：{help}"),
            )
            .await;
        let case = s.case().await;
        let accepted = match &case.request("区住建局").expect("request").status {
            tiaochu::workflow::RequestStatus::Accepted(a) => a.contact.clone(),
            other => panic!("not accepted: {other:?}"),
        };
        assert_eq!(
            (accepted.name.as_str(), accepted.position.as_str()),
            (name, position)
        );
        assert_inert(&sent, &[RS], name, &["evil.example", "tracker"]);
        assert_inert(&sent, &[RS], position, &[]);
        assert_inert(&sent, &[RS], help, &[]);
        s.app.shutdown.trigger();
    }
}

#[tokio::test]
async fn autolinks_and_bare_urls_in_a_return_reason_are_not_links() {
    let reason = "请参照 <http://evil.example/a> 或 http://evil.example/b、HTTPS://evil.example/c、www.evil.example/d 及 <mailto:x@evil.example> 补充";
    for template in [true, false] {
        let mut s = Service::start(template).await;
        s.drive_to_joint(&application(PLAIN_TITLE, PLAIN_MEASURES), "")
            .await;
        let sent = s.say(INSPECTOR, &format!("退回 {T} {reason}")).await;
        assert_inert(&sent, &[RS], reason, &["evil.example"]);
        s.app.shutdown.trigger();
    }
}

#[tokio::test]
async fn a_heading_or_quote_in_a_reason_keeps_the_layout() {
    let reason = "理由如下：\n# 伪造标题\n> 伪造引用\n- 伪造列表\n---\n1. 伪造编号";
    let folded = "理由如下： # 伪造标题 > 伪造引用 - 伪造列表 --- 1. 伪造编号";
    for template in [true, false] {
        let mut s = Service::start(template).await;
        s.drive_to_joint(
            &application(PLAIN_TITLE, PLAIN_MEASURES),
            "区住建局：核查项目审批；区城市管理局：协助现场核查",
        )
        .await;
        let mut sent = s.say(CG, &format!("异议 {T} {reason}")).await;
        assert_eq!(
            s.case()
                .await
                .request("区城市管理局")
                .and_then(|r| r.objection.as_ref())
                .map(|o| o.reason.as_str()),
            Some(reason),
            "stored as written, line breaks and all"
        );
        // 坚持 shows the objection to the unit again, as 原异议理由.
        let insisted = s.say(INSPECTOR, &format!("坚持 {T} 区城市管理局")).await;
        assert_inert(&insisted, &[CG], folded, &["伪造"]);
        sent.extend(insisted);
        assert_inert(&sent, &[INSPECTOR], folded, &["伪造"]);
        // The reason stays inside the one line the service gave it: a list item of its own (or
        // the bold status line of an ActionCard), a status line of a card.
        for one in &sent {
            let lines = |texts: Vec<String>| -> Vec<String> {
                texts
                    .iter()
                    .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
                    .filter(|l| l.contains("伪造"))
                    .collect()
            };
            for line in lines(one.markdown()) {
                assert!(
                    line.contains("理由如下") && line.contains("伪造编号"),
                    "folded onto one line: {line:?}"
                );
                assert!(
                    line.starts_with("- ") || line.starts_with("**"),
                    "the service's own item, not a heading, quote or list: {line:?}"
                );
            }
            for line in lines(one.plain()) {
                assert!(
                    line.contains("理由如下") && line.contains("伪造编号"),
                    "folded onto one status line: {line:?}"
                );
            }
        }
        s.app.shutdown.trigger();
    }
}

#[tokio::test]
async fn a_link_in_a_title_is_text_in_another_persons_query_answer() {
    let title =
        "反映[点击查看详情](dtmd://dingtalkclient/sendMessage?content=%E6%92%A4%E5%9B%9E)拖欠薪资";
    for template in [true, false] {
        let mut s = Service::start(template).await;
        s.say(RS, &application(title, PLAIN_MEASURES)).await;
        // The inspector asks for the case another person wrote: the reply quotes the title.
        let sent = s.say(INSPECTOR, &format!("查询 {T}")).await;
        assert_inert(&sent, &[INSPECTOR], title, &["%E6%92%A4", "点击查看详情"]);
        s.app.shutdown.trigger();
    }
}

//! `tiaochu roster sync [--apply] [--json]`: looks every roster person without a DingTalk
//! account up in the organisation's address book by name and binds those the address book
//! settles (the rule is [`crate::roster_sync`]'s); the rest are reported for an admin.
//!
//! The lookups are `contact/users/search` (exact name), `topapi/v2/user/get` per member found
//! and `topapi/v2/department/get` up each department chain (cached for the run). Throttling and
//! transient failures are waited out as DingTalk asks ([`patiently`]); any other failure ends
//! the run before anything is stored, with a Chinese message that names a missing permission
//! when DingTalk refused for want of one. `--apply` stores the bindings exactly as the `绑定`
//! command does — [`Engine::change_roster_in_tx`], one transaction, history by [`ACTOR`] — so
//! `roster export` and `check-config` show them and open cases follow the new contacts.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;

use crate::card_secrets::CardSecrets;
use crate::clock::{Clock, SystemClock};
use crate::dingtalk::api::{
    DingtalkClient, DirectoryDepartment, DirectoryUser, ROOT_DEPARTMENT, Timeouts,
    USER_SEARCH_PAGE, missing_permissions, patiently,
};
use crate::dingtalk::errors::SendError;
use crate::dispatch::Dispatch;
use crate::engine::{Engine, EngineError};
use crate::roster::{Person, Roster};
use crate::roster_sync::{self, Bound, Candidate, SyncReport};
use crate::settings::Settings;
use crate::store::Store;

use super::roster_cmd::effective_roster;

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// 保存能确定的绑定（历史记为“通讯录同步”）；不加时只试运行，不做任何修改
    #[arg(long)]
    pub apply: bool,
    /// 以 JSON 输出：{"bound": […], "ambiguous": […], "not_found": […]}
    #[arg(long)]
    pub json: bool,
}

/// Who the stored bindings name as their author.
pub const ACTOR: &str = "通讯录同步";

/// Pages of namesakes read at most (50 each); more than that is not a name to bind by.
const MAX_PAGES: u32 = 20;

/// Department levels walked up at most, in case an answer ever forms a cycle.
const MAX_DEPTH: usize = 32;

pub fn run(settings: &Settings, args: &SyncArgs) -> anyhow::Result<i32> {
    let dt = &settings.dingtalk;
    if dt.app_key.is_empty() || dt.app_secret.is_empty() {
        eprintln!(
            "错误：查询钉钉通讯录需要应用凭据：请配置 [dingtalk] app_key 与 app_secret\
             （环境变量 TIAOCHU_DINGTALK__APP_KEY、TIAOCHU_DINGTALK__APP_SECRET）。"
        );
        return Ok(2);
    }
    let roster = effective_roster(settings)?;
    let unbound: Vec<Person> = roster
        .people()
        .iter()
        .filter(|p| !p.reachable() && !p.departed)
        .cloned()
        .collect();
    eprintln!(
        "名单中 {} 人尚未绑定钉钉账号，正在钉钉通讯录中按姓名查找……",
        unbound.len()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("无法启动异步运行时")?;
    let http = Timeouts::default()
        .http_client()
        .context("无法创建 HTTP 客户端")?;
    let client = DingtalkClient::new(dt, http, Arc::new(SystemClock));
    let looked_up = match runtime.block_on(look_up(&client, &unbound)) {
        Ok(v) => v,
        Err(failure) => {
            eprintln!("{}", failure.explain());
            eprintln!("名单未做任何修改。");
            return Ok(1);
        }
    };
    let mut report = roster_sync::decide(&roster, &looked_up);
    let mut stale = Vec::new();
    if args.apply && !report.bound.is_empty() {
        stale = apply(settings, &report.bound)?;
        report.bound.retain(|b| !stale.contains(b));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", describe(&report, args.apply));
    }
    for b in &stale {
        eprintln!(
            "注意：{}（{}）未绑定：查询期间名单已变（此人已绑定，或账号 {} 已属于他人），请重新运行。",
            b.name, b.unit, b.staff_id
        );
    }
    if args.apply && !report.bound.is_empty() {
        eprintln!("正在运行的服务请重启（systemctl restart tiaochu），以便按新绑定收发消息。");
    }
    Ok(0)
}

/// Why the lookups stopped: which call, the permission it needs, and DingTalk's answer.
struct Failure {
    what: &'static str,
    permission: &'static str,
    error: SendError,
}

impl Failure {
    fn search(error: SendError) -> Failure {
        Failure {
            what: "按姓名搜索通讯录（contact/users/search）",
            permission: "qyapi_addresslist_search",
            error,
        }
    }
    fn user(error: SendError) -> Failure {
        Failure {
            what: "查询成员详情（topapi/v2/user/get）",
            permission: "qyapi_get_member",
            error,
        }
    }
    fn department(error: SendError) -> Failure {
        Failure {
            what: "查询部门详情（topapi/v2/department/get）",
            permission: "qyapi_get_department_list",
            error,
        }
    }

    /// The Chinese message: the missing permission and where to grant it, or DingTalk's reason.
    fn explain(&self) -> String {
        match missing_permissions(&self.error) {
            Some(named) => {
                let scopes = if named.is_empty() {
                    vec![self.permission.to_string()]
                } else {
                    named
                };
                permission_message(self.what, &scopes, self.error.reason())
            }
            None => format!(
                "错误：{}失败：{}\n这类失败多为网络或钉钉暂时不可用，请稍后重新运行；若反复出现，请把这段原因交给运维人员。",
                self.what, self.error
            ),
        }
    }
}

/// A permission DingTalk refused for, as the developer console names it.
pub fn permission_label(scope: &str) -> &'static str {
    match scope {
        "qyapi_addresslist_search" => "搜索企业通讯录的权限",
        "qyapi_get_member" => "成员信息读权限",
        "qyapi_get_department_list" => "通讯录部门信息读权限",
        "Card.Instance.Write" => "互动卡片实例写权限",
        "Robot.SingleChat.ReadWrite" => "机器人单聊读写权限",
        "qyapi_robot_sendmsg" => "企业内机器人发送消息权限",
        _ => "接口权限",
    }
}

/// The message for a permission refusal: what was refused, which permissions to open and how.
pub fn permission_message(what: &str, scopes: &[String], reason: &str) -> String {
    let named: Vec<String> = scopes
        .iter()
        .map(|s| format!("{s}（{}）", permission_label(s)))
        .collect();
    format!(
        "错误：钉钉拒绝了{what}：本应用没有开通权限 {}。\n\
         修复：钉钉开发者后台（open-dev.dingtalk.com）→ 本应用 → 开发配置 → 权限管理，搜索 {} 并申请开通；\
         开通并重新发布应用后，再运行本命令。\n钉钉的原话：{reason}",
        named.join("、"),
        scopes.join("、"),
    )
}

/// The address book for one run: every member and department asked for once.
struct Directory<'c> {
    client: &'c DingtalkClient,
    users: HashMap<String, DirectoryUser>,
    departments: HashMap<i64, DirectoryDepartment>,
}

impl Directory<'_> {
    async fn search(&self, name: &str) -> Result<Vec<String>, Failure> {
        let mut ids: Vec<String> = Vec::new();
        let mut offset = 0;
        for _ in 0..MAX_PAGES {
            let page = patiently(|| self.client.search_users(name, offset))
                .await
                .map_err(Failure::search)?;
            let empty = page.user_ids.is_empty();
            for id in page.user_ids {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            if !page.has_more || empty {
                return Ok(ids);
            }
            offset += USER_SEARCH_PAGE;
        }
        Err(Failure::search(SendError::permanent(
            crate::dingtalk::errors::ErrorCode::Other,
            format!(
                "通讯录中名为“{name}”的成员超过 {} 人，无法按姓名确定",
                MAX_PAGES * USER_SEARCH_PAGE
            ),
        )))
    }

    async fn user(&mut self, id: &str) -> Result<DirectoryUser, Failure> {
        if let Some(u) = self.users.get(id) {
            return Ok(u.clone());
        }
        let client = self.client;
        let user = patiently(|| client.user_get(id))
            .await
            .map_err(Failure::user)?;
        self.users.insert(id.to_string(), user.clone());
        Ok(user)
    }

    /// The names from the top (below the organisation) down to `dept_id`.
    async fn path(&mut self, dept_id: i64) -> Result<Vec<String>, Failure> {
        let mut names = Vec::new();
        let mut current = dept_id;
        for _ in 0..MAX_DEPTH {
            if current == ROOT_DEPARTMENT {
                break;
            }
            let dept = match self.departments.get(&current) {
                Some(d) => d.clone(),
                None => {
                    let client = self.client;
                    let d = patiently(|| client.department_get(current))
                        .await
                        .map_err(Failure::department)?;
                    self.departments.insert(current, d.clone());
                    d
                }
            };
            names.push(dept.name);
            match dept.parent_id {
                Some(parent) if parent != current => current = parent,
                _ => break,
            }
        }
        names.reverse();
        Ok(names)
    }
}

async fn look_up(
    client: &DingtalkClient,
    people: &[Person],
) -> Result<Vec<(Person, Vec<Candidate>)>, Failure> {
    let mut directory = Directory {
        client,
        users: HashMap::new(),
        departments: HashMap::new(),
    };
    let mut out = Vec::with_capacity(people.len());
    for person in people {
        let mut candidates = Vec::new();
        for id in directory.search(&person.name).await? {
            let user = directory.user(&id).await?;
            let mut departments = Vec::new();
            for dept in &user.dept_ids {
                departments.push(directory.path(*dept).await?);
            }
            candidates.push(Candidate {
                staff_id: user.user_id,
                name: user.name,
                title: user.title,
                departments,
            });
        }
        out.push((person.clone(), candidates));
    }
    Ok(out)
}

/// Stores `bound` in one transaction, on the roster in force at that moment; returns the
/// bindings left out because the roster changed since the lookups.
fn apply(settings: &Settings, bound: &[Bound]) -> anyhow::Result<Vec<Bound>> {
    let path = &settings.store.path;
    let store = Store::open(path).with_context(|| format!("无法打开数据库 {}", path.display()))?;
    let file = Roster::load(&settings.roster.path)?;
    let calendar = settings.load_calendar()?;
    // The service's own card secrets: a card this sends to a new contact must carry the ids the
    // service checks taps against.
    let card_secrets = CardSecrets::load_or_create(&store, SystemClock.now())
        .with_context(|| format!("无法读取数据库 {} 中的卡片密钥", path.display()))?;
    let engine = Engine::new(
        store.clone(),
        Arc::new(file),
        Arc::new(calendar),
        settings.sla.clone(),
        Dispatch::from_settings(&settings.dingtalk, card_secrets),
    )
    .with_leader_confirmation(settings.workflow.require_leader_confirmation);
    let bound = bound.to_vec();
    let now = SystemClock.now();
    let stale = store
        .write_blocking(move |tx| -> Result<_, EngineError> {
            let roster = engine.reload_roster_in_tx(tx)?;
            let (changes, stale) = roster_sync::bindings(&roster, &bound);
            for (unit, changes) in &changes {
                engine.change_roster_in_tx(tx, unit, changes, ACTOR, now)?;
            }
            Ok(stale)
        })
        .context("保存绑定失败，名单未做任何修改")?;
    Ok(stale)
}

/// The report as an admin reads it.
fn describe(report: &SyncReport, applied: bool) -> String {
    let mut out = String::new();
    if applied {
        out.push_str("通讯录同步（已保存）\n");
    } else {
        out.push_str("通讯录同步（试运行：未做任何修改；核对无误后加 --apply 保存）\n");
    }
    let verb = if applied { "已绑定" } else { "可以绑定" };
    out.push_str(&format!("\n{verb}（{} 人）：\n", report.bound.len()));
    for b in &report.bound {
        out.push_str(&format!(
            "  {}（{}）→ 钉钉账号 {}\n",
            b.name, b.unit, b.staff_id
        ));
    }
    if report.bound.is_empty() {
        out.push_str("  （无）\n");
    }
    out.push_str(&format!(
        "\n需要人工确认（{} 人，通讯录中的同名人员不止一位在本单位，或不在本单位）：\n",
        report.ambiguous.len()
    ));
    for a in &report.ambiguous {
        out.push_str(&format!("  {}（{}）：\n", a.name, a.unit));
        for c in &a.candidates {
            out.push_str(&format!(
                "    · {}  部门：{}  职务：{}\n",
                c.staff_id,
                c.dept,
                if c.title.is_empty() {
                    "（未填）"
                } else {
                    &c.title
                }
            ));
        }
    }
    if report.ambiguous.is_empty() {
        out.push_str("  （无）\n");
    }
    out.push_str(&format!(
        "\n通讯录中未找到（{} 人）：\n",
        report.not_found.len()
    ));
    for n in &report.not_found {
        out.push_str(&format!("  {}（{}）\n", n.name, n.unit));
    }
    if report.not_found.is_empty() {
        out.push_str("  （无）\n");
    }
    if !report.ambiguous.is_empty() || !report.not_found.is_empty() {
        out.push_str(
            "\n人工确认：核对是哪一位后，由管理员在钉钉中向机器人发送“绑定 姓名 @该人员”，或在名单文件中填写 staff_id。\n\
             未找到：请确认此人已加入本组织钉钉、通讯录中的姓名与名单一致，并在本应用的通讯录权限范围内。\n",
        );
    }
    if applied && !report.bound.is_empty() {
        out.push_str(&format!(
            "\n绑定已保存在数据库中（历史记为“{ACTOR}”），`tiaochu roster export` 可导出现行名单。\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dingtalk::errors::ErrorCode;

    #[test]
    fn a_permission_refusal_names_the_permission_and_the_fix() {
        let refused = SendError::permanent(
            ErrorCode::Errcode(88),
            "钉钉错误码 88（没有权限）：ding talk error[subcode=60011,submsg=应用尚未开通所需的权限：[qyapi_get_member]，点击链接申请并开通即可：https://open-dev.dingtalk.com/appscope/apply?content=x%23qyapi_get_member, {requiredScopes=[qyapi_get_member]}]",
        );
        let text = Failure::user(refused).explain();
        assert!(
            text.contains("qyapi_get_member（成员信息读权限）"),
            "{text}"
        );
        assert!(text.contains("权限管理"), "{text}");
        // Named once although DingTalk names it twice.
        assert_eq!(text.matches("qyapi_get_member（").count(), 1, "{text}");

        let unnamed = SendError::permanent(
            ErrorCode::Api {
                status: 403,
                code: "Forbidden.AccessDenied.AccessTokenPermissionDenied".into(),
            },
            "钉钉拒绝访问（HTTP 403 Forbidden.AccessDenied.AccessTokenPermissionDenied：没有调用该接口的权限）",
        );
        let text = Failure::search(unnamed).explain();
        assert!(
            text.contains("没有开通权限 qyapi_addresslist_search（搜索企业通讯录的权限）"),
            "{text}"
        );

        let busy = SendError::retryable(ErrorCode::Http(503), "钉钉服务暂时不可用（HTTP 503）");
        let text = Failure::department(busy).explain();
        assert!(text.contains("稍后重新运行"), "{text}");
        assert!(!text.contains("权限管理"), "{text}");
    }
}

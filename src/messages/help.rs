//! The 帮助 reply (docs/spec.md → Text commands): every command with what it does, who sends it and an
//! example, from the parser's own table ([`COMMANDS`]) so help and parser never disagree. A
//! sender's roles put their own commands first.

use crate::parse::command::{COMMANDS, Syntax, Verb};
use crate::roster::Role;

/// Commands everyone in the roster sends; the short help folds them into one line.
const COMMON: [Verb; 4] = [Verb::Help, Verb::Template, Verb::Query, Verb::ListRoster];

/// Most of the sender's own commands the short help lists one per line; the rest share a line.
const OWN_LINES: usize = 8;

/// 帮助 (principle 8: short, role-specific, phone-sized): the sender's own commands, at most 12
/// lines, and how to see everything (`帮助 全部`, [`help_all`]). Without roles, everything.
pub fn help_text(roles: &[Role]) -> String {
    let mine: Vec<&Syntax> = COMMANDS
        .iter()
        .filter(|s| !COMMON.contains(&s.verb) && is_for(s.verb, roles))
        .collect();
    if roles.is_empty() {
        return help_all(roles);
    }
    let names: Vec<&str> = roles.iter().map(|r| r.label()).collect();
    let mut lines = vec![format!(
        "【联合调处助手】您的命令（{}）：",
        names.join("、")
    )];
    for s in mine.iter().take(OWN_LINES) {
        lines.push(format!("· {}", s.form));
    }
    if mine.len() > OWN_LINES {
        let rest: Vec<&str> = mine[OWN_LINES..].iter().map(|s| s.word).collect();
        lines.push(format!("· 还可发送：{}", rest.join("、")));
    }
    lines.push("· 查询 DH…（查看进度）；模板（申请格式）；名单（本单位人员）".to_string());
    lines.push("发送“帮助 全部”查看全部命令和示例。".to_string());
    lines.join("\n")
}

/// `帮助 全部`: every command with what it does, who sends it and an example. With `roles` (the
/// sender's roster roles), the commands those roles send come first under 您常用的命令;
/// without, every command is listed in SPEC order.
pub fn help_all(roles: &[Role]) -> String {
    let mut out = String::from(
        "【联合调处助手】发送以下命令办理（工单编号写 DH 加数字；冒号、空格全角半角均可；群聊中请先 @我）：\n",
    );
    let (mine, others): (Vec<&Syntax>, Vec<&Syntax>) =
        COMMANDS.iter().partition(|s| is_for(s.verb, roles));
    if roles.is_empty() || mine.is_empty() || others.is_empty() {
        list(&mut out, COMMANDS.iter());
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.label()).collect();
        out.push_str(&format!("\n您常用的命令（{}）：\n", names.join("、")));
        list(&mut out, mine.into_iter());
        out.push_str("\n其他命令：\n");
        list(&mut out, others.into_iter());
    }
    out.push_str(
        "\n发起联合调处申请：发送“模板”获取申请格式，经分管领导同意后按模板填写并发送给我。",
    );
    out
}

fn list<'a>(out: &mut String, commands: impl Iterator<Item = &'a Syntax>) {
    for s in commands {
        out.push_str(&format!(
            "· {}：{}（{}）\n  例：{}\n",
            s.word, s.does, s.who, s.example
        ));
    }
}

/// Whether a sender with `roles` is among those who send `verb` (docs/spec.md → Text commands). A
/// message may suggest a command only to someone for whom this holds.
pub fn is_for(verb: Verb, roles: &[Role]) -> bool {
    let hotline = [Role::Inspector, Role::Supervisor, Role::HotlineHead];
    let senders: &[Role] = match verb {
        Verb::Help | Verb::Template | Verb::Query | Verb::ListRoster => {
            return !roles.is_empty();
        }
        Verb::SetLiaison | Verb::RemoveLiaison | Verb::ChangeLeader => &[Role::Leader, Role::Admin],
        Verb::LeaderApprove | Verb::LeaderReturn => &[Role::Leader],
        Verb::Bind => &[Role::Admin],
        Verb::StartOnboarding => &[Role::HotlineHead, Role::Admin],
        Verb::OnboardingProgress => &[
            Role::Inspector,
            Role::Supervisor,
            Role::HotlineHead,
            Role::Admin,
        ],
        Verb::Claim
        | Verb::Joint
        | Verb::Independent
        | Verb::Return
        | Verb::City
        | Verb::Withdraw
        | Verb::Insist
        | Verb::Typical => &[Role::Inspector],
        Verb::Satisfaction => &hotline,
        // The workflow also takes 市级结果 from the city hotline's supervisor (四(一)).
        Verb::CityOutcome => &[
            Role::Inspector,
            Role::Supervisor,
            Role::HotlineHead,
            Role::CitySupervisor,
        ],
        Verb::Accept | Verb::Object | Verb::Progress | Verb::Complete => {
            &[Role::Liaison, Role::Leader]
        }
        Verb::Supervise => &[Role::Supervisor],
        Verb::Stats | Verb::Dashboard | Verb::Similar | Verb::Cases => &[
            Role::Inspector,
            Role::Supervisor,
            Role::HotlineHead,
            Role::GroupLeader,
            Role::Admin,
        ],
    };
    roles.iter().any(|r| senders.contains(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_help_fits_a_phone_for_every_role() {
        for role in Role::ALL {
            let text = help_text(&[role]);
            assert!(text.lines().count() <= 12, "{role:?}: {text}");
            assert!(text.contains("帮助 全部"), "{text}");
        }
        let text = help_text(&[Role::Liaison]);
        assert!(text.contains("接受 DH…"), "{text}");
        assert!(!text.contains("审核 DH…"), "{text}");
    }

    #[test]
    fn lists_every_command_with_its_example() {
        let text = help_all(&[]);
        for s in &COMMANDS {
            assert!(text.contains(&format!("· {}：", s.word)), "{}", s.word);
            assert!(text.contains(s.example), "{}", s.word);
        }
        assert!(text.contains("模板"));
    }

    #[test]
    fn the_senders_commands_come_first() {
        let text = help_all(&[Role::Liaison]);
        let mine = text.find("您常用的命令（联络员）").expect("own section");
        let others = text.find("其他命令").expect("other section");
        let accept = text.find("· 接受：").expect("accept listed");
        let claim = text.find("· 审核：").expect("claim listed");
        assert!(mine < accept && accept < others && others < claim, "{text}");
    }
}

//! The 帮助 reply (docs/spec.md → Text commands): every command with what it does, who sends it and an
//! example, from the parser's own table ([`COMMANDS`]) so help and parser never disagree. A
//! sender's roles put their own commands first.

use crate::parse::command::{COMMANDS, Syntax, Verb};
use crate::roster::Role;

/// The command list. With `roles` (the sender's roster roles), the commands those roles send
/// come first under 您常用的命令; without, every command is listed in SPEC order.
pub fn help_text(roles: &[Role]) -> String {
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
    fn lists_every_command_with_its_example() {
        let text = help_text(&[]);
        for s in &COMMANDS {
            assert!(text.contains(&format!("· {}：", s.word)), "{}", s.word);
            assert!(text.contains(s.example), "{}", s.word);
        }
        assert!(text.contains("模板"));
    }

    #[test]
    fn the_senders_commands_come_first() {
        let text = help_text(&[Role::Liaison]);
        let mine = text.find("您常用的命令（联络员）").expect("own section");
        let others = text.find("其他命令").expect("other section");
        let accept = text.find("· 接受：").expect("accept listed");
        let claim = text.find("· 审核：").expect("claim listed");
        assert!(mine < accept && accept < others && others < claim, "{text}");
    }
}

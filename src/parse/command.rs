//! The chat-command parser (docs/spec.md → Text commands): from a line typed to the robot to a
//! [`Command`], read as tolerantly as applications — an `@robot` prefix, full-width spaces,
//! colons and digits, optional labels (`工单编号：`, `原因：`), lower-case `dh`, extra spaces — and
//! every mistake answered with a Chinese [`CommandError`] that names the problem and shows the
//! right form with an example. Pure; it checks spelling (ticket numbers, units, phone numbers),
//! the workflow checks meaning (who may act, in which state).
//!
//! A text is a command only when it starts with a command word (or a card-button label such as
//! 开始审核) followed by a non-Han character or nothing, so "联合调处申请…" or "你好" are not
//! commands: [`parse_command`] returns `None` and the caller tries the text as an application,
//! and answers chit-chat with the help text. A text holding two or more application fields is
//! never a command.
//!
//! A command holds only what its text says. 接受 and 异议 act for a unit the text does not name
//! (the sender's, or the one whose card was tapped), so they parse to [`Command::Answer`], which
//! becomes an [`Input`] only through [`UnitAnswer::by`] with that unit: an input can never reach
//! the workflow with its acting unit still to be filled in.

use std::sync::LazyLock;

use regex::Regex;

use super::UnitMatcher;
use super::fields::{self, Field};
use super::text::{excerpt, fold_char, fold_width, is_han, is_space, strip_mentions, trim};
use super::units::Mention;
use crate::domain::{TicketNo, UnitName};
use crate::roster::RosterAction;
use crate::workflow::{CoordinationAsk, HelpItem, Input, SatisfactionLevel};

/// A parsed chat command.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one command per chat message, consumed at once: its size never matters"
)]
pub enum Command {
    /// 帮助: the command list.
    Help,
    /// 帮助 全部: every command with examples.
    HelpAll,
    /// 模板: the application template.
    Template,
    /// 查询: the case's timeline and running clocks.
    Query { ticket_no: TicketNo },
    /// 统计: the figures of a month (`(year, month)`), or of the current month when `None`.
    Stats { month: Option<(i16, i8)> },
    /// 看板: a one-time login link to the web dashboard, sent 1:1.
    Dashboard,
    /// 相似: the past cases most like the case of `ticket_no` (五(五)).
    Similar { ticket_no: TicketNo },
    /// 案例: typical and closed cases matching `keywords` (热线故事汇 and the case history).
    Cases { keywords: String },
    /// 设置联络员 / 移除联络员 / 更换分管领导: a change to the people of `unit` (`None`: the
    /// sender's own unit). `mentions` are the nicks written after `@`, in order; the message's
    /// `atUsers` carry their staff ids.
    RosterChange {
        action: RosterAction,
        unit: Option<UnitName>,
        mentions: Vec<String>,
    },
    /// 设置联络员 with a name instead of an `@` (the onboarding buttons, the sandbox): the roster
    /// person `name` (spaces removed) of `unit` (`None`: the sender's own unit).
    SetLiaisonByName {
        unit: Option<UnitName>,
        name: String,
    },
    /// 名单: the current people and roles of `unit` (`None`: the sender's own unit).
    ListRoster { unit: Option<UnitName> },
    /// 启动 名单: asks every unit leader without a liaison to name one.
    StartOnboarding,
    /// 名单 进度: which units named their liaison and which are still waiting.
    OnboardingProgress,
    /// 绑定: gives the roster person `name` (spaces removed) the staff id of the one `@`-mentioned.
    Bind { name: String, mentions: Vec<String> },
    /// A workflow action on the case of `ticket_no` (normalised `DH` + digits).
    Act { ticket_no: TicketNo, input: Input },
    /// 接受 / 异议 on the case of `ticket_no`: a cooperating unit's answer. The text does not
    /// name the unit, so this is not an [`Input`] yet: the caller names the unit the sender
    /// acts for with [`UnitAnswer::by`] (the sender's roster unit, or the unit whose card was
    /// tapped), and no `Input::Accept` / `Input::Object` exists without its unit.
    Answer {
        ticket_no: TicketNo,
        answer: UnitAnswer,
    },
}

/// A cooperating unit's 接受 or 异议 (四(三)) as typed, before the unit giving it is known.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitAnswer {
    Accept {
        contact_name: String,
        position: String,
        phone: String,
        help: Vec<HelpItem>,
    },
    Object {
        reason: String,
    },
}

impl UnitAnswer {
    /// The workflow input of this answer given by `unit` (a canonical roster unit name).
    pub fn by(self, unit: UnitName) -> Input {
        match self {
            UnitAnswer::Accept {
                contact_name,
                position,
                phone,
                help,
            } => Input::Accept {
                unit,
                contact_name,
                position,
                phone,
                help,
            },
            UnitAnswer::Object { reason } => Input::Object { unit, reason },
        }
    }
}

/// A malformed command. `message` is Chinese: what was wrong, the right form and an example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub message: String,
}

/// The command words of docs/spec.md → Text commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Help,
    Template,
    Query,
    LeaderApprove,
    LeaderReturn,
    Claim,
    Joint,
    Independent,
    Return,
    City,
    CityOutcome,
    Accept,
    Object,
    Withdraw,
    Insist,
    Supervise,
    Progress,
    Complete,
    Satisfaction,
    Typical,
    Stats,
    Dashboard,
    Similar,
    Cases,
    SetLiaison,
    RemoveLiaison,
    ChangeLeader,
    ListRoster,
    Bind,
    StartOnboarding,
    OnboardingProgress,
}

/// How one command is written: the help text lists these, and every [`CommandError`] quotes the
/// one that was mistyped.
#[derive(Debug, Clone, Copy)]
pub struct Syntax {
    pub verb: Verb,
    /// The canonical command word.
    pub word: &'static str,
    /// Other words that mean the same (the card buttons' labels).
    pub aliases: &'static [&'static str],
    pub form: &'static str,
    pub example: &'static str,
    /// Who may send it (docs/spec.md → Text commands).
    pub who: &'static str,
    pub does: &'static str,
}

/// Every command, in the order of docs/spec.md → Text commands.
pub static COMMANDS: [Syntax; 31] = [
    Syntax {
        verb: Verb::Help,
        word: "帮助",
        aliases: &["命令", "菜单"],
        form: "帮助",
        example: "帮助",
        who: "名单内人员",
        does: "列出全部命令及示例",
    },
    Syntax {
        verb: Verb::Template,
        word: "模板",
        aliases: &["申请模板"],
        form: "模板",
        example: "模板",
        who: "名单内人员",
        does: "获取联合调处申请模板",
    },
    Syntax {
        verb: Verb::Query,
        word: "查询",
        aliases: &[],
        form: "查询 DH…",
        example: "查询 DH2026110300017",
        who: "参与单位、热线",
        does: "查看办理经过和各项期限",
    },
    Syntax {
        verb: Verb::LeaderApprove,
        word: "同意",
        aliases: &["同意发起"],
        form: "同意 DH…",
        example: "同意 DH2026110300017",
        who: "首接单位分管领导",
        does: "确认同意本单位联络员提交的联合调处申请（开启领导确认时）",
    },
    Syntax {
        verb: Verb::LeaderReturn,
        word: "退回联络员",
        aliases: &[],
        form: "退回联络员 DH… 退回原因",
        example: "退回联络员 DH2026110300017 请补充与企业约谈的情况",
        who: "首接单位分管领导",
        does: "将待确认的申请退回本单位联络员修改（开启领导确认时）",
    },
    Syntax {
        verb: Verb::Claim,
        word: "审核",
        aliases: &["开始审核"],
        form: "审核 DH…",
        example: "审核 DH2026110300017",
        who: "质检专员",
        does: "认领审核",
    },
    Syntax {
        verb: Verb::Joint,
        word: "联合",
        aliases: &["联合调处"],
        form: "联合 DH… 单位：协同方向及重点；单位：协同方向及重点",
        example: "联合 DH2026110300017 区住建局：核查项目施工许可及资金拨付；区城市管理局：现场核查占道情况",
        who: "质检专员",
        does: "决定联合调处，写明各配合单位的协同方向及重点",
    },
    Syntax {
        verb: Verb::Independent,
        word: "独立",
        aliases: &["独立办理"],
        form: "独立 DH… 解决路径及政策依据",
        example: "独立 DH2026110300017 由区人社局依据《保障农民工工资支付条例》第三十条责令限期支付",
        who: "质检专员",
        does: "决定由首接单位独立办理",
    },
    Syntax {
        verb: Verb::Return,
        word: "退回",
        aliases: &["退回补充"],
        form: "退回 DH… 退回原因",
        example: "退回 DH2026110300017 已采取措施不具体，请补充与企业约谈的情况",
        who: "质检专员",
        does: "退回首接单位补充材料",
    },
    Syntax {
        verb: Verb::City,
        word: "市级",
        aliases: &["提请市级协调", "市级协调"],
        form: "市级 DH… 说明",
        example: "市级 DH2026110300017 需市交通运输局协调客运线路审批",
        who: "质检专员",
        does: "提请市12345热线协调市级或跨区县单位",
    },
    Syntax {
        verb: Verb::CityOutcome,
        word: "市级结果",
        aliases: &[],
        form: "市级结果 DH… 协调结果",
        example: "市级结果 DH2026110300017 市交通运输局已批复恢复班线，群众表示满意",
        who: "热线",
        does: "记录市级协调结果并结案",
    },
    Syntax {
        verb: Verb::Accept,
        word: "接受",
        aliases: &["接受协办"],
        form: "接受 DH… 联系人：姓名 职务：职务 电话：手机号 协助：现场核查、政策解释",
        example: "接受 DH2026110300017 联系人：张三 职务：股长 电话：13800000000 协助：现场核查、政策解释",
        who: "配合单位",
        does: "接受协办，提供联系人和可协助事项（现场核查、数据共享、政策解释、其他）",
    },
    Syntax {
        verb: Verb::Object,
        word: "异议",
        aliases: &["提出异议"],
        form: "异议 DH… 异议理由",
        example: "异议 DH2026110300017 该项目不属于本单位监管范围，依据是…",
        who: "配合单位",
        does: "对协作需求提出异议",
    },
    Syntax {
        verb: Verb::Withdraw,
        word: "撤回",
        aliases: &[],
        form: "撤回 DH… 单位",
        example: "撤回 DH2026110300017 区住建局",
        who: "质检专员",
        does: "采纳异议，不再请该单位协办",
    },
    Syntax {
        verb: Verb::Insist,
        word: "坚持",
        aliases: &[],
        form: "坚持 DH… 单位 不采纳理由",
        example: "坚持 DH2026110300017 区住建局 项目审批资料由住建局保管，须由其核查",
        who: "质检专员",
        does: "不采纳异议，继续请该单位协办（转书面督办）",
    },
    Syntax {
        verb: Verb::Supervise,
        word: "督办",
        aliases: &["书面督办"],
        form: "督办 DH… 单位 督办内容",
        example: "督办 DH2026110300017 区住建局 请于11月5日前明确联系人并到岗履职",
        who: "督办专员",
        does: "书面督办",
    },
    Syntax {
        verb: Verb::Progress,
        word: "进展",
        aliases: &[],
        form: "进展 DH… 进展内容",
        example: "进展 DH2026110300017 已与企业负责人约谈，约定11月10日前支付首笔欠薪",
        who: "首接单位、配合单位",
        does: "同步办理进展",
    },
    Syntax {
        verb: Verb::Complete,
        word: "办结",
        aliases: &[],
        form: "办结 DH… 过程：处理过程 措施：解决措施 群众反馈：群众反馈",
        example: "办结 DH2026110300017 过程：联合约谈企业 措施：企业分两期支付欠薪 群众反馈：已收到首笔款项，表示认可",
        who: "首接单位",
        does: "反馈办理结果",
    },
    Syntax {
        verb: Verb::Satisfaction,
        word: "满意度",
        aliases: &[],
        form: "满意度 DH… 满意｜基本满意｜不满意",
        example: "满意度 DH2026110300017 满意",
        who: "热线",
        does: "记录群众满意度并结案",
    },
    Syntax {
        verb: Verb::Typical,
        word: "典型",
        aliases: &["典型案例"],
        form: "典型 DH… 案例总结",
        example: "典型 DH2026110300017 人社、住建联合约谈国企项目方，一周内解决欠薪",
        who: "质检专员",
        does: "标记典型案例",
    },
    Syntax {
        verb: Verb::Stats,
        word: "统计",
        aliases: &["月统计"],
        form: "统计 [年-月]",
        example: "统计 2026-11",
        who: "热线、工作小组组长",
        does: "查看当月（或指定月份）统计",
    },
    Syntax {
        verb: Verb::Dashboard,
        word: "看板",
        aliases: &["数据看板"],
        form: "看板",
        example: "看板",
        who: "热线负责人、质检专员、督办专员、工作小组组长",
        does: "获取数据看板登录链接（10 分钟内有效，仅可使用一次）",
    },
    Syntax {
        verb: Verb::Similar,
        word: "相似",
        aliases: &["相似案例", "类似案例"],
        form: "相似 DH…",
        example: "相似 DH2026110300017",
        who: "热线、工作小组组长",
        does: "查看与该案件最相似的往期案例及其办理方式",
    },
    Syntax {
        verb: Verb::Cases,
        word: "案例",
        aliases: &["查案例", "案例库"],
        form: "案例 关键词",
        example: "案例 拖欠工资",
        who: "热线、工作小组组长",
        does: "按关键词查找典型案例（热线故事汇）和已结案案例",
    },
    Syntax {
        verb: Verb::SetLiaison,
        word: "设置联络员",
        aliases: &["添加联络员", "增加联络员"],
        form: "设置联络员 [单位] @某人",
        example: "设置联络员 @张三",
        who: "本单位分管领导；管理员须写明单位",
        does: "把被@的人设为本单位联络员（此后本单位的协办请求、提醒都发给他）；也可写本单位名单中的姓名，如 设置联络员 张三",
    },
    Syntax {
        verb: Verb::RemoveLiaison,
        word: "移除联络员",
        aliases: &["删除联络员"],
        form: "移除联络员 [单位] @某人",
        example: "移除联络员 @张三",
        who: "本单位分管领导；管理员须写明单位",
        does: "取消被@的人的本单位联络员身份",
    },
    Syntax {
        verb: Verb::ChangeLeader,
        word: "更换分管领导",
        aliases: &["设置分管领导"],
        form: "更换分管领导 [单位] @某人",
        example: "更换分管领导 @李四",
        who: "本单位分管领导；管理员须写明单位",
        does: "由被@的人接任本单位分管领导",
    },
    Syntax {
        verb: Verb::ListRoster,
        word: "名单",
        aliases: &["人员名单"],
        form: "名单 [单位]",
        example: "名单 区住建局",
        who: "名单内人员",
        does: "查看本单位（或指定单位）现有人员和角色",
    },
    Syntax {
        verb: Verb::Bind,
        word: "绑定",
        aliases: &[],
        form: "绑定 姓名 @某人",
        example: "绑定 任燕 @任燕",
        who: "管理员",
        does: "把名单中尚未填写钉钉账号的人员与被@的钉钉用户对应起来",
    },
    Syntax {
        verb: Verb::StartOnboarding,
        word: "启动 名单",
        aliases: &["启动名单", "启动\u{3000}名单"],
        form: "启动 名单",
        example: "启动 名单",
        who: "热线负责人、管理员",
        does: "请尚无联络员的各成员单位分管领导指定联络员，每个工作日提醒直至指定",
    },
    Syntax {
        verb: Verb::OnboardingProgress,
        word: "名单 进度",
        aliases: &["名单进度", "名单\u{3000}进度"],
        form: "名单 进度",
        example: "名单 进度",
        who: "热线、管理员",
        does: "查看各单位指定联络员的进度（已指定、等待中）",
    },
];

/// The syntax of `verb`.
pub fn syntax(verb: Verb) -> &'static Syntax {
    COMMANDS
        .iter()
        .find(|s| s.verb == verb)
        .expect("COMMANDS lists every verb")
}

/// Parses a chat text. `None` when it is not a command (an application, chit-chat); otherwise
/// the command or what is wrong with it.
pub fn parse_command(text: &str, units: &UnitMatcher) -> Option<Result<Command, CommandError>> {
    let body = trim(strip_mentions(text));
    let (syntax, rest) = command_word(body)?;
    if looks_like_application(text) {
        return None;
    }
    Some(parse_args(syntax, rest, units))
}

/// The command a snippet of text starts with (a suggestion in a message such as `查询 DH…` or
/// 发送“帮助”), by the same command words the parser reads; None when it starts with none.
pub fn verb_of(text: &str) -> Option<Verb> {
    command_word(trim(strip_mentions(text))).map(|(s, _)| s.verb)
}

/// The longest command word (or alias) `body` starts with, when a non-Han character or the end
/// follows it, and the text after it.
fn command_word(body: &str) -> Option<(&'static Syntax, &str)> {
    let mut best: Option<(&'static Syntax, usize)> = None;
    for s in &COMMANDS {
        for word in std::iter::once(&s.word).chain(s.aliases) {
            let Some(after) = body.strip_prefix(word) else {
                continue;
            };
            if after.chars().next().is_some_and(is_han) {
                continue;
            }
            if best.is_none_or(|(_, len)| word.len() > len) {
                best = Some((s, word.len()));
            }
        }
    }
    best.map(|(s, len)| (s, &body[len..]))
}

/// Two or more application fields: a pasted application, whatever its first word.
fn looks_like_application(text: &str) -> bool {
    let found = fields::segment(text);
    Field::REQUIRED
        .iter()
        .filter(|f| found.value(**f).is_some())
        .count()
        >= 2
}

fn parse_args(
    syntax: &'static Syntax,
    rest: &str,
    units: &UnitMatcher,
) -> Result<Command, CommandError> {
    let act = |ticket_no: TicketNo, input: Input| Ok(Command::Act { ticket_no, input });
    match syntax.verb {
        // `帮助 全部`: every command; plain 帮助 lists the sender's own (principle 8).
        Verb::Help if matches!(trim_separators(rest), "全部" | "所有" | "全部命令") => {
            Ok(Command::HelpAll)
        }
        Verb::Help => Ok(Command::Help),
        Verb::Template => Ok(Command::Template),
        Verb::Dashboard => Ok(Command::Dashboard),
        Verb::SetLiaison if split_mentions(rest).1.is_empty() => {
            liaison_by_name(syntax, rest, units)
        }
        Verb::SetLiaison => roster_change(syntax, RosterAction::SetLiaison, rest, units),
        Verb::StartOnboarding | Verb::OnboardingProgress => {
            if !trim_separators(rest).is_empty() {
                return Err(error(syntax, "命令后面不用再写内容。"));
            }
            Ok(match syntax.verb {
                Verb::StartOnboarding => Command::StartOnboarding,
                _ => Command::OnboardingProgress,
            })
        }
        Verb::RemoveLiaison => roster_change(syntax, RosterAction::RemoveLiaison, rest, units),
        Verb::ChangeLeader => roster_change(syntax, RosterAction::ChangeLeader, rest, units),
        Verb::ListRoster => {
            let written = trim_separators(strip_label(rest, &["单位"]));
            Ok(Command::ListRoster {
                unit: if written.is_empty() {
                    None
                } else {
                    Some(unit_arg(syntax, written, units)?)
                },
            })
        }
        Verb::Bind => {
            let (text, mentions) = split_mentions(rest);
            let name =
                crate::roster::normalize_name(trim_separators(strip_label(&text, &["姓名"])));
            if name.is_empty() {
                return Err(error(syntax, "缺少要绑定的人员姓名。"));
            }
            if mentions.len() != 1 {
                return Err(error(syntax, "请在姓名后 @一位钉钉用户。"));
            }
            Ok(Command::Bind { name, mentions })
        }
        Verb::Stats => Ok(Command::Stats {
            month: month(syntax, rest)?,
        }),
        Verb::Query => Ok(Command::Query {
            ticket_no: ticket(syntax, rest)?.0,
        }),
        Verb::Similar => Ok(Command::Similar {
            ticket_no: ticket(syntax, rest)?.0,
        }),
        Verb::Cases => Ok(Command::Cases {
            keywords: text_arg(syntax, rest, &["关键词", "关键字"], "关键词")?,
        }),
        Verb::LeaderApprove => act(ticket(syntax, rest)?.0, Input::LeaderApprove),
        Verb::LeaderReturn => {
            let (t, args) = ticket(syntax, rest)?;
            let reason = text_arg(syntax, args, &["退回原因", "原因", "理由"], "退回原因")?;
            act(t, Input::LeaderReturn { reason })
        }
        Verb::Claim => act(ticket(syntax, rest)?.0, Input::Claim),
        Verb::Joint => {
            let (t, args) = ticket(syntax, rest)?;
            act(
                t,
                Input::DecideJoint {
                    units: asks(syntax, args, units)?,
                },
            )
        }
        Verb::Independent => {
            let (t, args) = ticket(syntax, rest)?;
            let path_and_basis = text_arg(syntax, args, &[], "解决路径及政策依据")?;
            act(t, Input::DecideIndependent { path_and_basis })
        }
        Verb::Return => {
            let (t, args) = ticket(syntax, rest)?;
            let reason = text_arg(syntax, args, &["退回原因", "原因", "理由"], "退回原因")?;
            act(t, Input::Return { reason })
        }
        Verb::City => {
            let (t, args) = ticket(syntax, rest)?;
            let note = text_arg(
                syntax,
                args,
                &["情况说明", "说明", "事由"],
                "提请市级协调的说明",
            )?;
            act(t, Input::EscalateCity { note })
        }
        Verb::CityOutcome => {
            let (t, args) = ticket(syntax, rest)?;
            let outcome = text_arg(
                syntax,
                args,
                &["协调结果", "市级结果", "结果"],
                "市级协调结果",
            )?;
            act(t, Input::RecordCityOutcome { outcome })
        }
        Verb::Accept => {
            let (t, args) = ticket(syntax, rest)?;
            Ok(Command::Answer {
                ticket_no: t,
                answer: acceptance(syntax, args)?,
            })
        }
        Verb::Object => {
            let (t, args) = ticket(syntax, rest)?;
            let reason = text_arg(syntax, args, &["异议理由", "理由", "原因"], "异议理由")?;
            Ok(Command::Answer {
                ticket_no: t,
                answer: UnitAnswer::Object { reason },
            })
        }
        Verb::Withdraw => {
            let (t, args) = ticket(syntax, rest)?;
            let unit = unit_arg(syntax, strip_label(args, &["单位"]), units)?;
            act(t, Input::Withdraw { unit })
        }
        Verb::Insist => {
            let (t, args) = ticket(syntax, rest)?;
            // The unit, then the reason the objection is not upheld (optional).
            let args = strip_label(args.trim_start_matches(is_separator), &["单位"]);
            let (who, reason) = match args.find(is_separator) {
                Some(i) => (&args[..i], &args[i..]),
                None => (args, ""),
            };
            let unit = unit_arg(syntax, who, units)?;
            let reason = trim_separators(strip_label(
                trim_separators(reason),
                &["不采纳理由", "理由", "原因"],
            ))
            .to_string();
            act(t, Input::Insist { unit, reason })
        }
        Verb::Supervise => {
            let (t, args) = ticket(syntax, rest)?;
            let (unit, content) = supervision(syntax, args, units)?;
            act(t, Input::Supervise { unit, content })
        }
        Verb::Progress => {
            let (t, args) = ticket(syntax, rest)?;
            let text = text_arg(syntax, args, &["进展情况", "进展", "内容"], "进展内容")?;
            act(t, Input::Progress { text })
        }
        Verb::Complete => {
            let (t, args) = ticket(syntax, rest)?;
            act(t, completion(syntax, args)?)
        }
        Verb::Satisfaction => {
            let (t, args) = ticket(syntax, rest)?;
            act(
                t,
                Input::Satisfaction {
                    level: satisfaction(syntax, args)?,
                },
            )
        }
        Verb::Typical => {
            let (t, args) = ticket(syntax, rest)?;
            let summary = text_arg(syntax, args, &["案例总结", "总结"], "典型案例总结")?;
            act(t, Input::MarkTypical { summary })
        }
    }
}

/// `problem`, then the right form and an example.
fn error(syntax: &Syntax, problem: impl std::fmt::Display) -> CommandError {
    CommandError {
        message: format!(
            "{problem}\n正确格式：{}\n例如：{}",
            syntax.form, syntax.example
        ),
    }
}

/// Separators between a command's parts, besides white space.
fn is_separator(c: char) -> bool {
    is_space(c) || matches!(c, ':' | '：' | ',' | '，' | ';' | '；' | '。' | '、')
}

/// Text with separators trimmed from both ends.
fn trim_separators(s: &str) -> &str {
    s.trim_matches(is_separator)
}

/// `s` without a leading `label` followed by a colon (`原因：…`); `s` itself when there is none.
fn strip_label<'a>(s: &'a str, labels: &[&str]) -> &'a str {
    let s = trim(s);
    for label in labels {
        if let Some(after) = s.strip_prefix(label) {
            let after = after.trim_start_matches(is_space);
            if let Some(value) = after.strip_prefix([':', '：']) {
                return trim(value);
            }
        }
    }
    s
}

/// The 工单编号 at the start of `rest` (after an optional `工单编号：` label), normalised, and
/// the text after it.
fn ticket<'a>(syntax: &Syntax, rest: &'a str) -> Result<(TicketNo, &'a str), CommandError> {
    let rest = strip_label(
        rest.trim_start_matches(is_separator),
        &["工单编号", "工单号", "编号", "单号"],
    );
    let mut chars = rest.char_indices().peekable();
    let starts_dh = matches!(
        (chars.next(), chars.next()),
        (Some((_, d)), Some((_, h)))
            if fold_char(d).eq_ignore_ascii_case(&'D') && fold_char(h).eq_ignore_ascii_case(&'H')
    );
    if !starts_dh {
        let problem = if rest
            .chars()
            .next()
            .is_some_and(|c| fold_char(c).is_ascii_digit())
        {
            format!("工单编号应以“DH”开头（收到“{}”）。", excerpt(rest, 24))
        } else {
            "缺少工单编号（DH 加数字）。".to_string()
        };
        return Err(error(syntax, problem));
    }
    // Digits, and spaces between digit groups (`DH 2026 1103 00017`).
    let mut end = rest.len();
    // Byte offset after `DH`, which may be written full-width.
    let mut last_digit_end = rest.char_indices().nth(2).map_or(rest.len(), |(i, _)| i);
    for (i, c) in rest.char_indices().skip(2) {
        if fold_char(c).is_ascii_digit() {
            last_digit_end = i + c.len_utf8();
        } else if !is_space(c) {
            end = i;
            break;
        }
    }
    let raw = &rest[..last_digit_end.min(end)];
    let after = &rest[last_digit_end.min(end)..];
    match TicketNo::parse(raw).ok() {
        Some(t)
            if after
                .chars()
                .next()
                .is_none_or(|c| !c.is_ascii_alphanumeric()) =>
        {
            Ok((t, after))
        }
        _ => Err(error(
            syntax,
            format!(
                "工单编号“{}”格式不正确：应为“DH”加 6–20 位数字。",
                excerpt(&rest[..end], 24)
            ),
        )),
    }
}

/// A required free text after the ticket, with an optional leading label.
fn text_arg(
    syntax: &Syntax,
    args: &str,
    labels: &[&str],
    what: &str,
) -> Result<String, CommandError> {
    let text = trim_separators(strip_label(args.trim_start_matches(is_separator), labels));
    if text.is_empty() {
        return Err(error(syntax, format!("缺少{what}。")));
    }
    Ok(text.to_string())
}

/// The text of `rest` without its `@nick` mentions, and the nicks in order.
fn split_mentions(rest: &str) -> (String, Vec<String>) {
    let mut text = Vec::new();
    let mut mentions = Vec::new();
    for word in rest.split(is_space).filter(|w| !w.is_empty()) {
        match word.strip_prefix('@').or_else(|| word.strip_prefix('＠')) {
            Some(nick) if !nick.is_empty() => mentions.push(nick.to_string()),
            Some(_) => {}
            None => text.push(word),
        }
    }
    (text.join(" "), mentions)
}

/// 设置联络员 without an `@`: an optional unit, then the person's name (`设置联络员 张三`,
/// `设置联络员 区住建局 张三`). A first word that is no unit is part of the name, since the seed
/// writes two-character names with a space (何 军).
fn liaison_by_name(
    syntax: &Syntax,
    rest: &str,
    units: &UnitMatcher,
) -> Result<Command, CommandError> {
    let text = trim_separators(strip_label(rest, &["姓名"]));
    let mut words = text.split(is_space).filter(|w| !w.is_empty());
    let first = words.next().unwrap_or_default();
    let after: Vec<&str> = words.collect();
    let (unit, name) = match UnitName::parse(first, units).ok() {
        Some(unit) if !after.is_empty() => (Some(unit), after.join("")),
        Some(_) => {
            return Err(error(
                syntax,
                "缺少人员：请在单位后写联络员姓名，或在钉钉中 @该人员。",
            ));
        }
        None => (None, crate::roster::normalize_name(text)),
    };
    let name = crate::roster::normalize_name(trim_separators(strip_label(&name, &["姓名"])));
    if name.is_empty() {
        return Err(error(
            syntax,
            "缺少人员：请在命令后 @该人员（钉钉中输入 @ 选择），或写本单位名单中的姓名。",
        ));
    }
    Ok(Command::SetLiaisonByName { unit, name })
}

/// 设置联络员 / 移除联络员 / 更换分管领导: an optional unit, then exactly one `@` person.
fn roster_change(
    syntax: &Syntax,
    action: RosterAction,
    rest: &str,
    units: &UnitMatcher,
) -> Result<Command, CommandError> {
    let (text, mentions) = split_mentions(rest);
    let written = trim_separators(strip_label(&text, &["单位"]));
    let unit = if written.is_empty() {
        None
    } else {
        Some(unit_arg(syntax, written, units)?)
    };
    match mentions.len() {
        0 => Err(error(
            syntax,
            "缺少人员：请在命令后 @该人员（钉钉中输入 @ 选择）。",
        )),
        1 => Ok(Command::RosterChange {
            action,
            unit,
            mentions,
        }),
        _ => Err(error(syntax, "一次只能@一位人员。")),
    }
}

/// The unit a command names, resolved through the roster's names and aliases.
fn unit_arg(syntax: &Syntax, args: &str, units: &UnitMatcher) -> Result<UnitName, CommandError> {
    let written = trim_separators(args);
    if written.is_empty() {
        return Err(error(syntax, "缺少单位名称。"));
    }
    UnitName::parse(written, units).map_err(|_| error(syntax, unknown_unit(written, units)))
}

/// "单位“…”不在成员单位名单中", with suggestions when some look alike.
fn unknown_unit(written: &str, units: &UnitMatcher) -> String {
    let written = excerpt(written, 20);
    let suggestions = units.suggest(&written);
    if suggestions.is_empty() {
        format!("单位“{written}”不在成员单位名单中，请写成员单位名单中的名称（如 区住建局）。")
    } else {
        format!(
            "单位“{written}”不在成员单位名单中。您是否指：{}？",
            suggestions.join("、")
        )
    }
}

/// 联合: `单位：方向；单位：方向`, one unit (or several sharing one direction) per item; items
/// are separated by `；`, `;` or line breaks.
fn asks(
    syntax: &Syntax,
    args: &str,
    units: &UnitMatcher,
) -> Result<Vec<CoordinationAsk>, CommandError> {
    let mut out: Vec<CoordinationAsk> = Vec::new();
    for item in args.split(['；', ';', '\n']).map(trim_separators) {
        if item.is_empty() {
            continue;
        }
        let (who, direction) = match item.find([':', '：']) {
            Some(i) => (&item[..i], &item[i..]),
            None => match item.find(is_space) {
                Some(i) => (&item[..i], &item[i..]),
                None => (item, ""),
            },
        };
        let direction = trim_separators(direction);
        let mut named = Vec::new();
        let mut unresolved = Vec::new();
        for mention in units.scan(who) {
            match mention {
                Mention::Unit(u) if !units.is_hotline(u) => named.push(UnitName::matched(units, u)),
                Mention::Unit(u) => unresolved.push(units.name(u).to_string()),
                Mention::Generic(g) | Mention::CityLevel(g) | Mention::Unknown(g) => {
                    unresolved.push(g)
                }
            }
        }
        if let Some(first) = unresolved.first() {
            let hint = if first.starts_with('市') || first.contains('县') {
                "需要市级或跨区县单位时请用“市级”命令提请市12345热线协调。"
            } else {
                ""
            };
            return Err(error(
                syntax,
                format!("{}{hint}", unknown_unit(first, units)),
            ));
        }
        if named.is_empty() {
            return Err(error(syntax, unknown_unit(who, units)));
        }
        if direction.is_empty() {
            return Err(error(
                syntax,
                format!("{}没有写协同方向及重点。", named.join("、")),
            ));
        }
        for unit in named {
            if out.iter().any(|a| a.unit == unit) {
                return Err(error(syntax, format!("{unit}写了两次，每个单位只写一次。")));
            }
            out.push(CoordinationAsk {
                unit,
                direction: direction.to_string(),
            });
        }
    }
    if out.is_empty() {
        return Err(error(syntax, "缺少配合单位及其协同方向及重点。"));
    }
    Ok(out)
}

/// 督办: the unit, then the content.
fn supervision(
    syntax: &Syntax,
    args: &str,
    units: &UnitMatcher,
) -> Result<(UnitName, String), CommandError> {
    let args = strip_label(args.trim_start_matches(is_separator), &["单位", "督办单位"]);
    let (who, content) = match args.find(is_separator) {
        Some(i) => (&args[..i], &args[i..]),
        None => (args, ""),
    };
    let unit = unit_arg(syntax, who, units)?;
    let content = text_arg(syntax, content, &["督办内容", "内容"], "督办内容")?;
    Ok((unit, content))
}

/// Labelled values: each label must start the text or follow a separator, and be followed by a
/// colon. Returns the text before the first label and each (key, value) in order.
fn labelled<'a, K: Copy>(s: &'a str, labels: &[(&str, K)]) -> (&'a str, Vec<(K, &'a str)>) {
    let mut found: Vec<(K, usize, usize)> = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in s.char_indices() {
        if prev.is_none_or(is_separator) {
            let rest = &s[i..];
            let hit = labels.iter().find_map(|(label, key)| {
                let after = rest.strip_prefix(label)?;
                let spaces = after.len() - after.trim_start_matches(is_space).len();
                let colon = after[spaces..]
                    .chars()
                    .next()
                    .filter(|c| matches!(c, ':' | '：'))?;
                Some((*key, i + label.len() + spaces + colon.len_utf8()))
            });
            if let Some((key, value_start)) = hit {
                found.push((key, i, value_start));
            }
        }
        prev = Some(c);
    }
    let lead = trim_separators(&s[..found.first().map_or(s.len(), |f| f.1)]);
    let values = found
        .iter()
        .enumerate()
        .map(|(n, &(key, _, from))| {
            let to = found.get(n + 1).map_or(s.len(), |next| next.1);
            // A label found inside the previous value (`电话：` right after `联系人：`) ends it.
            (key, trim_separators(&s[from.min(to)..to]))
        })
        .collect();
    (lead, values)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptField {
    Name,
    Position,
    Phone,
    Help,
}

const ACCEPT_LABELS: [(&str, AcceptField); 14] = [
    ("联系人姓名", AcceptField::Name),
    ("联系人", AcceptField::Name),
    ("姓名", AcceptField::Name),
    ("职务", AcceptField::Position),
    ("职位", AcceptField::Position),
    ("联系电话", AcceptField::Phone),
    ("手机号码", AcceptField::Phone),
    ("手机号", AcceptField::Phone),
    ("电话", AcceptField::Phone),
    ("手机", AcceptField::Phone),
    ("可协助事项", AcceptField::Help),
    ("协助事项", AcceptField::Help),
    ("协办事项", AcceptField::Help),
    ("协助", AcceptField::Help),
];

/// 接受: contact name, position, phone and the help offered (四(三)). Labels may be left out:
/// then the phone and the help items are recognised by their form and the first two other parts
/// are the name and the position.
fn acceptance(syntax: &Syntax, args: &str) -> Result<UnitAnswer, CommandError> {
    let (lead, values) = labelled(args, &ACCEPT_LABELS);
    let (mut name, mut position, mut phone, mut help) = (None, None, None, None);
    for (key, value) in values {
        let slot = match key {
            AcceptField::Name => &mut name,
            AcceptField::Position => &mut position,
            AcceptField::Phone => &mut phone,
            AcceptField::Help => &mut help,
        };
        if slot.is_some() {
            return Err(error(syntax, format!("“{}”写了两次。", accept_label(key))));
        }
        *slot = Some(value.to_string());
    }
    if !lead.is_empty() {
        for part in lead.split(|c: char| is_space(c) || matches!(c, ',' | '，' | ';' | '；')) {
            if part.is_empty() {
                continue;
            }
            // A label people write without its colon (`联系人张丽`, `电话139…`, `协助现场核查`):
            // the rest of the part is that value.
            let bare = ACCEPT_LABELS.iter().find_map(|(label, key)| {
                let value = trim_separators(part.strip_prefix(label)?);
                (!value.is_empty()).then_some((*key, value))
            });
            if let Some((key, value)) = bare {
                let slot = match key {
                    AcceptField::Name => &mut name,
                    AcceptField::Position => &mut position,
                    AcceptField::Phone => &mut phone,
                    AcceptField::Help => &mut help,
                };
                if slot.is_some() {
                    return Err(error(syntax, format!("“{}”写了两次。", accept_label(key))));
                }
                *slot = Some(value.to_string());
                continue;
            }
            if phone.is_none() && normalize_phone(part).is_some() {
                phone = Some(part.to_string());
            } else if help.is_none()
                && help_items(part)
                    .is_ok_and(|h| h.iter().all(|i| !matches!(i, HelpItem::Other(_))))
            {
                help = Some(part.to_string());
            } else if name.is_none() {
                name = Some(part.to_string());
            } else if position.is_none() {
                position = Some(part.to_string());
            } else {
                return Err(error(syntax, format!("无法识别“{}”。", excerpt(part, 20))));
            }
        }
    }
    let missing: Vec<&str> = [
        (name.is_none(), "联系人姓名"),
        (position.is_none(), "职务"),
        (phone.is_none(), "电话"),
        (help.is_none(), "协助事项"),
    ]
    .into_iter()
    .filter_map(|(absent, what)| absent.then_some(what))
    .collect();
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let (Some(contact_name), Some(position), Some(phone_raw), Some(help_raw)) = (
        nonempty(name),
        nonempty(position),
        nonempty(phone),
        nonempty(help),
    ) else {
        let missing = if missing.is_empty() {
            "联系人姓名、职务、电话、协助事项都要填写内容。".to_string()
        } else {
            format!("缺少{}。", missing.join("、"))
        };
        return Err(error(syntax, missing));
    };
    let phone = normalize_phone(&phone_raw).ok_or_else(|| {
        error(
            syntax,
            format!(
                "电话“{}”不是有效的手机号（1 开头 11 位）或带区号的固定电话（如 0936-8685841）。",
                excerpt(&phone_raw, 24)
            ),
        )
    })?;
    let help = help_items(&help_raw).map_err(|problem| error(syntax, problem))?;
    Ok(UnitAnswer::Accept {
        contact_name,
        position,
        phone,
        help,
    })
}

fn accept_label(key: AcceptField) -> &'static str {
    match key {
        AcceptField::Name => "联系人",
        AcceptField::Position => "职务",
        AcceptField::Phone => "电话",
        AcceptField::Help => "协助",
    }
}

/// A mainland mobile number (`1[3-9]` + 9 digits, `+86` allowed) or a landline with its area
/// code (`0936-8685841`, `(0936)8685841`), normalised to digits (`0936-8685841` for landlines).
pub fn normalize_phone(raw: &str) -> Option<String> {
    let folded = fold_width(trim(raw));
    if !folded
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '+' | '(' | ')' | '（' | '）'))
    {
        return None;
    }
    let mut digits: String = folded.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 13 && digits.starts_with("86") {
        digits.drain(..2);
    }
    let bytes = digits.as_bytes();
    if bytes.len() == 11 && bytes[0] == b'1' && (b'3'..=b'9').contains(&bytes[1]) {
        return Some(digits);
    }
    if bytes.first() == Some(&b'0') {
        // 010 and 02X are three-digit area codes; the rest have four.
        let area = if matches!(bytes.get(1), Some(b'1' | b'2')) {
            3
        } else {
            4
        };
        let local = digits.len().checked_sub(area)?;
        if (7..=8).contains(&local) && bytes.get(1) != Some(&b'0') {
            return Some(format!("{}-{}", &digits[..area], &digits[area..]));
        }
    }
    None
}

/// The help items of 接受 (`现场核查、政策解释`, `其他：人员调配`). Unknown wording is kept as
/// [`HelpItem::Other`]; a bare 其他 must say what.
fn help_items(text: &str) -> Result<Vec<HelpItem>, String> {
    let mut out: Vec<HelpItem> = Vec::new();
    let parts = text.split(|c: char| {
        is_space(c) || matches!(c, '、' | ',' | '，' | '/' | '／' | ';' | '；' | '和' | '及')
    });
    for part in parts.map(trim_separators).filter(|p| !p.is_empty()) {
        let item = if let Some(other) = part
            .strip_prefix("其他")
            .or_else(|| part.strip_prefix("其它"))
        {
            let other = other
                .trim_matches(|c: char| is_separator(c) || matches!(c, '(' | ')' | '（' | '）'));
            if other.is_empty() {
                return Err("协助事项写了“其他”，请写明具体内容，如 其他：人员调配。".into());
            }
            HelpItem::Other(other.to_string())
        } else if part.contains("核查") || part.contains("现场") {
            HelpItem::SiteCheck
        } else if part.contains("数据") || part.contains("共享") {
            HelpItem::DataSharing
        } else if part.contains("政策") || part.contains("解释") {
            HelpItem::PolicyExplanation
        } else {
            HelpItem::Other(part.to_string())
        };
        if !out.contains(&item) {
            out.push(item);
        }
    }
    if out.is_empty() {
        return Err("缺少协助事项。".into());
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompleteField {
    Process,
    Measures,
    Feedback,
}

const COMPLETE_LABELS: [(&str, CompleteField); 9] = [
    ("处理过程", CompleteField::Process),
    ("办理过程", CompleteField::Process),
    ("过程", CompleteField::Process),
    ("解决措施", CompleteField::Measures),
    ("处置措施", CompleteField::Measures),
    ("措施", CompleteField::Measures),
    ("群众反馈", CompleteField::Feedback),
    ("诉求人反馈", CompleteField::Feedback),
    ("反馈", CompleteField::Feedback),
];

/// 办结: handling process, measures and the citizen's feedback (五(三)), all labelled.
fn completion(syntax: &Syntax, args: &str) -> Result<Input, CommandError> {
    let (_, values) = labelled(args, &COMPLETE_LABELS);
    let (mut process, mut measures, mut feedback) = (None, None, None);
    for (key, value) in values {
        let (slot, label) = match key {
            CompleteField::Process => (&mut process, "过程"),
            CompleteField::Measures => (&mut measures, "措施"),
            CompleteField::Feedback => (&mut feedback, "群众反馈"),
        };
        if slot.is_some() {
            return Err(error(syntax, format!("“{label}”写了两次。")));
        }
        *slot = Some(value.to_string()).filter(|v| !v.is_empty());
    }
    match (process, measures, feedback) {
        (Some(process), Some(measures), Some(citizen_feedback)) => Ok(Input::Complete {
            process,
            measures,
            citizen_feedback,
        }),
        (p, m, f) => {
            let missing: Vec<&str> = [(p, "过程"), (m, "措施"), (f, "群众反馈")]
                .into_iter()
                .filter_map(|(v, label)| v.is_none().then_some(label))
                .collect();
            Err(error(
                syntax,
                format!("缺少{}（每项以标签加冒号开头）。", missing.join("、")),
            ))
        }
    }
}

/// 满意度: 满意, 基本满意 or 不满意 (also 非常满意, 比较满意).
fn satisfaction(syntax: &Syntax, args: &str) -> Result<SatisfactionLevel, CommandError> {
    let text = trim_separators(strip_label(
        args.trim_start_matches(is_separator),
        &["满意度", "评价"],
    ));
    let levels = [
        ("不满意", SatisfactionLevel::Dissatisfied),
        ("基本满意", SatisfactionLevel::BasicallySatisfied),
        ("比较满意", SatisfactionLevel::BasicallySatisfied),
        ("非常满意", SatisfactionLevel::Satisfied),
        ("满意", SatisfactionLevel::Satisfied),
    ];
    levels
        .iter()
        .find(|(word, _)| text.starts_with(word))
        .map(|(_, level)| *level)
        .ok_or_else(|| {
            let problem = if text.is_empty() {
                "缺少满意度。".to_string()
            } else {
                format!(
                    "满意度“{}”无法识别，请写 满意、基本满意 或 不满意。",
                    excerpt(text, 20)
                )
            };
            error(syntax, problem)
        })
}

/// 统计: no month, or `2026-11`, `2026/11`, `2026.11`, `2026年11月`.
fn month(syntax: &Syntax, rest: &str) -> Result<Option<(i16, i8)>, CommandError> {
    static MONTH: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?$").expect("a fixed, valid pattern")
    });
    let folded = fold_width(rest);
    let text = trim_separators(strip_label(
        folded.trim_start_matches(is_separator),
        &["月份"],
    ));
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = MONTH.captures(text).and_then(|c| {
        let year: i16 = c[1].parse().ok()?;
        let month: i8 = c[2].parse().ok()?;
        ((2000..=2099).contains(&year) && (1..=12).contains(&month)).then_some((year, month))
    });
    parsed.map(Some).ok_or_else(|| {
        error(
            syntax,
            format!(
                "月份“{}”无法识别，请写成 年-月，或不写表示本月。",
                excerpt(text, 20)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(
            normalize_phone("138 0000 0000").as_deref(),
            Some("13800000000")
        );
        assert_eq!(
            normalize_phone("+86 13800000000").as_deref(),
            Some("13800000000")
        );
        assert_eq!(
            normalize_phone("0936-8685841").as_deref(),
            Some("0936-8685841")
        );
        assert_eq!(
            normalize_phone("(0936)8685841").as_deref(),
            Some("0936-8685841")
        );
        assert_eq!(
            normalize_phone("010 12345678").as_deref(),
            Some("010-12345678")
        );
        assert_eq!(normalize_phone("8685841"), None);
        assert_eq!(normalize_phone("12800000000"), None);
        assert_eq!(normalize_phone("1380000000"), None);
        assert_eq!(normalize_phone("138000000a0"), None);
    }

    #[test]
    fn help_items_keep_other_text() {
        assert_eq!(
            help_items("现场核查、数据共享，政策解释 其他：人员调配"),
            Ok(vec![
                HelpItem::SiteCheck,
                HelpItem::DataSharing,
                HelpItem::PolicyExplanation,
                HelpItem::Other("人员调配".into())
            ])
        );
        assert_eq!(
            help_items("协调车辆"),
            Ok(vec![HelpItem::Other("协调车辆".into())])
        );
        assert!(help_items("其他").is_err());
    }

    #[test]
    fn labels_need_a_separator_before_and_a_colon_after() {
        let (lead, values) = labelled(
            "过程：采取措施后约谈 措施 ：分期支付；群众反馈：认可",
            &COMPLETE_LABELS,
        );
        assert_eq!(lead, "");
        assert_eq!(
            values,
            vec![
                (CompleteField::Process, "采取措施后约谈"),
                (CompleteField::Measures, "分期支付"),
                (CompleteField::Feedback, "认可"),
            ]
        );
    }

    #[test]
    fn every_verb_has_one_syntax() {
        for s in &COMMANDS {
            assert!(std::ptr::eq(syntax(s.verb), s), "{}", s.word);
        }
    }
}

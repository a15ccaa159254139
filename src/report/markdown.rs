//! The report as Markdown: the full document (`tiaochu report --format md`) and the brief that
//! fits a DingTalk message (the monthly post and the robot's `统计` reply). Names, titles and
//! reasons enter through [`md_text`], or [`md_cell`] inside a table.

use std::fmt::Write as _;

use super::{Report, local_at, typical};
use crate::calendar::Calendar;
use crate::messages::escape::{md_cell, md_text};

/// The full report: summary, targets, per-unit table, 通报, 三抓三促, cases, 热线故事汇 draft.
pub fn full(report: &Report, calendar: &Calendar) -> String {
    let mut out = String::new();
    let o = &report.stats.overall;
    let _ = writeln!(
        out,
        "# 甘州区12345热线疑难工单联合调处{} · {}\n",
        report.period.title(),
        report.period_label
    );
    let _ = writeln!(
        out,
        "统计区间：{} 至 {}（不含）；生成时间：{}。按事件记录统计，口径见 README“统计口径”。\n",
        local_at(calendar, report.from),
        local_at(calendar, report.to),
        local_at(calendar, report.generated_at)
    );
    out.push_str("## 目标与实际\n\n| 指标 | 目标 | 实际 | 结论 |\n|---|---|---|---|\n");
    for t in o.targets() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            t.name,
            t.target_label(),
            t.actual.display(),
            t.verdict()
        );
    }
    out.push_str("\n## 总体情况\n\n| 项目 | 数量 |\n|---|---|\n");
    for (name, v) in o.columns() {
        let _ = writeln!(out, "| {name} | {v} |");
    }
    out.push_str("\n## 分单位情况\n\n");
    if report.stats.units.is_empty() {
        out.push_str("本期没有事件记录。\n");
    } else {
        out.push_str("| 单位 | 申请登记 | 协办请求 | 按时答复 | 应答复 | 响应率 | 拒不配合 | 异议 | 书面督办 | 办结 | 按时办结 | 应办结 | 办结率 | 办理超期 | 满意率 |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (unit, c) in &report.stats.units {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md_cell(unit),
                c.submitted,
                c.requests,
                c.answered_on_time,
                c.response_due,
                c.response_rate().display(),
                c.refusals,
                c.objections,
                c.supervisions,
                c.completed,
                c.completed_on_time,
                c.completion_due,
                c.completion_rate().display(),
                c.handling_overdue,
                c.satisfaction_rate().display()
            );
        }
    }
    out.push_str("\n## 通报（无正当理由不配合协作、办理超时）\n\n");
    if report.notices.is_empty() {
        out.push_str("本期无通报事项。\n");
    } else {
        out.push_str("| 单位 | 事项 | 案件编号 | 工单编号 | 情况 | 期限 | 发生时间 |\n|---|---|---|---|---|---|---|\n");
        for n in &report.notices {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                md_cell(&n.unit),
                md_cell(n.kind.label()),
                md_cell(&n.case_no),
                md_cell(&n.ticket_no),
                md_cell(&n.what),
                n.deadline
                    .map_or_else(|| "—".to_string(), |d| local_at(calendar, d)),
                local_at(calendar, n.at)
            );
        }
    }
    out.push_str("\n## 拟转报区“三抓三促”行动专项工作机制办公室\n\n");
    if report.transfers.is_empty() {
        out.push_str("本期无拟转报案件。\n");
    } else {
        for t in &report.transfers {
            let _ = writeln!(
                out,
                "- {}：案件 {}（工单 {}）——{}",
                md_text(&t.unit),
                md_text(&t.case_no),
                md_text(&t.ticket_no),
                md_text(&t.reason)
            );
        }
    }
    out.push_str("\n## 案件清单\n\n");
    if report.cases.is_empty() {
        out.push_str("本期没有案件。\n");
    } else {
        out.push_str("| 案件编号 | 工单编号 | 工单标题 | 首接单位 | 协办单位 | 状态 | 办结 | 满意度 |\n|---|---|---|---|---|---|---|---|\n");
        for c in &report.cases {
            let done = match (c.completed_at, c.completed_on_time) {
                (Some(at), Some(true)) => format!("{}（按时）", local_at(calendar, at)),
                (Some(at), _) => format!("{}（逾期）", local_at(calendar, at)),
                (None, _) => "—".to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {}{} | {} | {} | {} | {} | {} |",
                md_cell(&c.case_no),
                md_cell(&c.ticket_no),
                if c.green_channel {
                    "【绿色通道】"
                } else {
                    ""
                },
                md_cell(&c.title),
                md_cell(&c.first_unit),
                if c.cooperating_units.is_empty() {
                    "—".to_string()
                } else {
                    md_cell(&c.cooperating_units.join("、"))
                },
                md_cell(&c.state),
                done,
                md_cell(c.satisfaction.as_deref().unwrap_or("—"))
            );
        }
    }
    out.push('\n');
    out.push_str(&typical::markdown(&report.period_label, &report.stories).replacen('#', "##", 1));
    out
}

/// The brief for DingTalk: targets, the main counts, the units named and the transfers.
pub fn brief(report: &Report) -> String {
    let o = &report.stats.overall;
    let mut out = format!(
        "### {}联合调处{}\n\n",
        report.period_label,
        report.period.title()
    );
    for t in o.targets() {
        let _ = writeln!(
            out,
            "- **{}**：{}（目标 {}，{}）",
            t.name,
            t.actual.display(),
            t.target_label(),
            t.verdict()
        );
    }
    let _ = writeln!(
        out,
        "- 申请登记 {}（退回补充 {}，重新提交 {}）；联合调处 {}，独立办理 {}，提请市级协调 {}",
        o.submitted,
        o.returned,
        o.resubmitted,
        o.decided_joint,
        o.decided_independent,
        o.decided_city
    );
    let _ = writeln!(
        out,
        "- 协办请求 {}：按时答复 {}，逾期答复 {}，拒不配合 {}；异议 {}（撤回 {}，未采纳 {}）；书面督办 {}",
        o.requests,
        o.answered_on_time,
        o.answered_late,
        o.refusals,
        o.objections,
        o.objections_withdrawn,
        o.objections_upheld,
        o.supervisions
    );
    let _ = writeln!(
        out,
        "- 办结 {}（按时 {}，逾期 {}），办理超期 {}；满意度：满意 {}，基本满意 {}，不满意 {}",
        o.completed,
        o.completed_on_time,
        o.completed_late,
        o.handling_overdue,
        o.satisfied,
        o.basically_satisfied,
        o.dissatisfied
    );
    out.push_str("\n**通报**：");
    if report.notices.is_empty() {
        out.push_str("无\n");
    } else {
        let mut units: Vec<(String, usize)> = Vec::new();
        for n in &report.notices {
            match units.iter_mut().find(|(u, _)| *u == n.unit) {
                Some((_, k)) => *k += 1,
                None => units.push((n.unit.clone(), 1)),
            }
        }
        let named: Vec<String> = units
            .iter()
            .map(|(u, k)| format!("{}（{k} 项）", md_text(u)))
            .collect();
        let _ = writeln!(out, "{}", named.join("、"));
    }
    if !report.transfers.is_empty() {
        let _ = writeln!(
            out,
            "\n**拟转报“三抓三促”办公室**：{}",
            report
                .transfers
                .iter()
                .map(|t| format!("{} 案件 {}", md_text(&t.unit), md_text(&t.case_no)))
                .collect::<Vec<_>>()
                .join("；")
        );
    }
    if !report.stories.is_empty() {
        let _ = writeln!(
            out,
            "\n**典型案例**：{} 件（已汇编“热线故事汇”草稿）",
            report.stories.len()
        );
    }
    // Principle 8: no server commands in chat; the workbook is on the dashboard, which every
    // reader of the brief (hotline, group leaders) may open.
    let _ = write!(
        out,
        "\n完整报表（含分单位、案件清单和证据）：发送“看板”获取登录链接，在数据看板下载 xlsx"
    );
    out
}

//! The report as an Excel workbook: 汇总 (targets against actuals and the overall counts), 分单位
//! (one row per unit and a 合计 row), 案件 (every case the period touched), 通报 (each named fact
//! with its evidence, and the 三抓三促 transfers) and 热线故事汇 (the typical-case draft). Every
//! sheet has Chinese headers in a frozen first row and column widths set for Chinese text.

use rust_xlsxwriter::{Format, FormatAlign, Workbook, Worksheet, XlsxError};

use super::stats::Counts;
use super::{Report, local_at};
use crate::calendar::Calendar;

/// Sheet names, in order; the openpyxl conformance check reads the same names.
pub const SHEETS: [&str; 5] = ["汇总", "分单位", "案件", "通报", "热线故事汇"];

/// The workbook's bytes.
pub fn workbook(report: &Report, calendar: &Calendar) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let header = Format::new()
        .set_bold()
        .set_background_color("DDEBF7")
        .set_align(FormatAlign::Center);
    let percent = Format::new().set_num_format("0.0%");
    let wrap = Format::new().set_text_wrap();

    summary(wb.add_worksheet(), report, calendar, &header, &percent)?;
    per_unit(wb.add_worksheet(), report, &header, &percent)?;
    cases(wb.add_worksheet(), report, calendar, &header)?;
    notices(wb.add_worksheet(), report, calendar, &header, &wrap)?;
    stories(wb.add_worksheet(), report, &header, &wrap)?;
    wb.save_to_buffer()
}

fn headers(
    ws: &mut Worksheet,
    names: &[&str],
    widths: &[f64],
    fmt: &Format,
) -> Result<(), XlsxError> {
    for (col, name) in (0u16..).zip(names) {
        ws.write_string_with_format(0, col, *name, fmt)?;
        let width = widths.get(usize::from(col)).copied().unwrap_or(12.0);
        ws.set_column_width(col, width)?;
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(())
}

fn summary(
    ws: &mut Worksheet,
    report: &Report,
    calendar: &Calendar,
    header: &Format,
    percent: &Format,
) -> Result<(), XlsxError> {
    ws.set_name(SHEETS[0])?;
    headers(
        ws,
        &["项目", "数值", "目标", "结论"],
        &[28.0, 14.0, 10.0, 10.0],
        header,
    )?;
    let o = &report.stats.overall;
    let mut row = 1u32;
    ws.write_string(row, 0, "统计期间")?;
    ws.write_string(row, 1, &report.period_label)?;
    row += 1;
    ws.write_string(row, 0, "生成时间")?;
    ws.write_string(row, 1, local_at(calendar, report.generated_at))?;
    row += 1;
    for t in o.targets() {
        ws.write_string(row, 0, t.name)?;
        match t.actual.value() {
            Some(v) => ws.write_number_with_format(row, 1, v, percent)?,
            None => ws.write_string(row, 1, "无数据")?,
        };
        ws.write_string(row, 2, t.target_label())?;
        ws.write_string(row, 3, t.verdict())?;
        row += 1;
    }
    for (name, v) in o.columns() {
        ws.write_string(row, 0, name)?;
        ws.write_number(row, 1, v as f64)?;
        row += 1;
    }
    ws.write_string(row, 0, "通报事项")?;
    ws.write_number(row, 1, report.notices.len() as f64)?;
    row += 1;
    ws.write_string(row, 0, "拟转报三抓三促")?;
    ws.write_number(row, 1, report.transfers.len() as f64)?;
    Ok(())
}

fn per_unit(
    ws: &mut Worksheet,
    report: &Report,
    header: &Format,
    percent: &Format,
) -> Result<(), XlsxError> {
    ws.set_name(SHEETS[1])?;
    let columns = Counts::default().columns();
    let mut names = vec!["单位"];
    names.extend(columns.iter().map(|(n, _)| *n));
    names.extend(["办结率", "响应率", "满意率"]);
    let mut widths = vec![20.0];
    widths.extend(
        columns
            .iter()
            .map(|(n, _)| (n.chars().count() as f64 * 2.2).max(8.0)),
    );
    widths.extend([10.0, 10.0, 10.0]);
    headers(ws, &names, &widths, header)?;
    let rows = report
        .stats
        .units
        .iter()
        .map(|(u, c)| (u.as_str(), c))
        .chain(std::iter::once(("合计", &report.stats.overall)));
    for (row, (unit, c)) in (1u32..).zip(rows) {
        ws.write_string(row, 0, unit)?;
        let mut col = 1u16;
        for (_, v) in c.columns() {
            ws.write_number(row, col, v as f64)?;
            col += 1;
        }
        for rate in [
            c.completion_rate(),
            c.response_rate(),
            c.satisfaction_rate(),
        ] {
            if let Some(v) = rate.value() {
                ws.write_number_with_format(row, col, v, percent)?;
            }
            col += 1;
        }
    }
    Ok(())
}

fn cases(
    ws: &mut Worksheet,
    report: &Report,
    calendar: &Calendar,
    header: &Format,
) -> Result<(), XlsxError> {
    ws.set_name(SHEETS[2])?;
    headers(
        ws,
        &[
            "案件编号",
            "工单编号",
            "工单标题",
            "首接单位",
            "绿色通道",
            "协办单位",
            "状态",
            "登记时间",
            "办结时间",
            "按时办结",
            "满意度",
            "书面督办",
            "典型案例",
        ],
        &[
            16.0, 20.0, 40.0, 18.0, 10.0, 30.0, 18.0, 18.0, 18.0, 10.0, 10.0, 10.0, 10.0,
        ],
        header,
    )?;
    for (row, c) in (1u32..).zip(&report.cases) {
        ws.write_string(row, 0, &c.case_no)?;
        ws.write_string(row, 1, &c.ticket_no)?;
        ws.write_string(row, 2, &c.title)?;
        ws.write_string(row, 3, &c.first_unit)?;
        ws.write_string(row, 4, if c.green_channel { "是" } else { "否" })?;
        ws.write_string(row, 5, c.cooperating_units.join("、"))?;
        ws.write_string(row, 6, &c.state)?;
        ws.write_string(row, 7, local_at(calendar, c.submitted_at))?;
        if let Some(at) = c.completed_at {
            ws.write_string(row, 8, local_at(calendar, at))?;
        }
        if let Some(on_time) = c.completed_on_time {
            ws.write_string(row, 9, if on_time { "是" } else { "否" })?;
        }
        if let Some(s) = &c.satisfaction {
            ws.write_string(row, 10, s)?;
        }
        ws.write_number(row, 11, f64::from(c.supervisions))?;
        ws.write_string(row, 12, if c.typical { "是" } else { "否" })?;
    }
    Ok(())
}

fn notices(
    ws: &mut Worksheet,
    report: &Report,
    calendar: &Calendar,
    header: &Format,
    wrap: &Format,
) -> Result<(), XlsxError> {
    ws.set_name(SHEETS[3])?;
    headers(
        ws,
        &[
            "单位",
            "事项",
            "案件编号",
            "工单编号",
            "情况",
            "期限",
            "发生时间",
            "拟转报三抓三促",
        ],
        &[20.0, 16.0, 16.0, 20.0, 48.0, 18.0, 18.0, 40.0],
        header,
    )?;
    let mut row = 1u32;
    for n in &report.notices {
        ws.write_string(row, 0, &n.unit)?;
        ws.write_string(row, 1, n.kind.label())?;
        ws.write_string(row, 2, &n.case_no)?;
        ws.write_string(row, 3, &n.ticket_no)?;
        ws.write_string_with_format(row, 4, &n.what, wrap)?;
        if let Some(d) = n.deadline {
            ws.write_string(row, 5, local_at(calendar, d))?;
        }
        ws.write_string(row, 6, local_at(calendar, n.at))?;
        row += 1;
    }
    for t in &report.transfers {
        ws.write_string(row, 0, &t.unit)?;
        ws.write_string(row, 1, "拟转报三抓三促")?;
        ws.write_string(row, 2, &t.case_no)?;
        ws.write_string(row, 3, &t.ticket_no)?;
        ws.write_string_with_format(row, 7, &t.reason, wrap)?;
        row += 1;
    }
    Ok(())
}

fn stories(
    ws: &mut Worksheet,
    report: &Report,
    header: &Format,
    wrap: &Format,
) -> Result<(), XlsxError> {
    ws.set_name(SHEETS[4])?;
    headers(
        ws,
        &[
            "案件编号",
            "工单编号",
            "标题",
            "背景",
            "难点",
            "各单位做法",
            "结果",
            "可复制推广的经验",
        ],
        &[16.0, 20.0, 30.0, 40.0, 40.0, 60.0, 50.0, 50.0],
        header,
    )?;
    for (row, s) in (1u32..).zip(&report.stories) {
        let units: Vec<String> = s.units.iter().map(|(u, d)| format!("{u}：{d}")).collect();
        ws.write_string(row, 0, &s.case_no)?;
        ws.write_string(row, 1, &s.ticket_no)?;
        ws.write_string_with_format(row, 2, &s.title, wrap)?;
        ws.write_string_with_format(row, 3, &s.background, wrap)?;
        ws.write_string_with_format(row, 4, &s.difficulty, wrap)?;
        ws.write_string_with_format(row, 5, units.join("\n"), wrap)?;
        ws.write_string_with_format(row, 6, &s.result, wrap)?;
        ws.write_string_with_format(row, 7, &s.lessons, wrap)?;
    }
    Ok(())
}

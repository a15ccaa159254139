//! Replies to a pasted application (docs/spec.md → The life of an application, step 1): the template
//! (seed 附件2), the list of what is missing or wrong when the application cannot be registered,
//! and the preview of a complete one before it is registered.

use crate::parse::{Application, Field};

/// The application template (seed 附件2 wording). Every hint holds `***`, so a template sent back
/// unchanged is never registered: the parser reports each unfilled field.
pub const TEMPLATE: &str = "\
【联合调处申请模板】复制以下内容，把 *** 换成实际内容后发给我（选填项不需要可整行删除）：
工单编号：DH*****（12345 平台的工单编号）
工单标题：反映***的问题
首接单位：***（本单位名称，如 区人社局）
已采取措施：***（已做了哪些工作、结果如何）
办理难点：***（本单位为什么无法单独办结）
需协调部门及事由：***（需要哪些单位、分别协助什么，如 区住建局核查施工许可）
请示分管领导相关情况：已向分管领导***汇报，分管领导已同意
紧急程度（选填）：***（紧急／一般；涉及安全事故、群体诉求的填“紧急”）
办理时限（选填）：***（工单规定的办结日期，如 2026-12-05）";

/// One line on what to write in a field, for the reply that says it is missing.
fn hint(field: Field) -> &'static str {
    match field {
        Field::TicketNo => "12345 平台的工单编号，如 DH2026110300017",
        Field::Title => "工单反映的问题",
        Field::FirstUnit => "本单位在成员单位名单中的名称，如 区人社局",
        Field::Measures => "已做了哪些工作、结果如何",
        Field::Difficulties => "本单位为什么无法单独办结",
        Field::Coordination => "需要哪些单位、分别协助什么",
        Field::LeaderApproval => "写明已向分管领导汇报且分管领导已同意",
        Field::Urgency => "紧急或一般",
        Field::Category => "四类疑难工单之一",
        Field::Deadline => "工单规定的办结日期，如 2026-12-05",
    }
}

/// "申请未登记：", then each missing field with a hint, each error, and the template. When all
/// seven fields are missing the errors say why (not an application) and the fields are not
/// listed one by one. An application that is not `ok` always has a missing field or an error.
pub fn render_incomplete(app: &Application) -> String {
    let mut out = String::from("申请未登记：\n");
    if app.missing.len() == Field::REQUIRED.len() {
        if app.errors.is_empty() {
            out.push_str("· 必填项都没有填写内容\n");
        }
    } else {
        for label in &app.missing {
            match Field::REQUIRED.iter().find(|f| f.label() == label) {
                Some(f) => out.push_str(&format!("· 缺少“{label}”：{}\n", hint(*f))),
                None => out.push_str(&format!("· 缺少“{label}”\n")),
            }
        }
    }
    for error in &app.errors {
        out.push_str(&format!("· {error}\n"));
    }
    out.push_str("\n请按模板补充后重新发送：\n");
    out.push_str(TEMPLATE);
    out
}

/// The preview of a complete application (`app.ok`): ticket, title, first unit, the units asked
/// for and what the inspector must still resolve, category, urgency (green channel marked),
/// deadline and the city-level note. The receipt with case number and review deadline is the
/// workflow's, not this.
pub fn render_preview(app: &Application) -> String {
    let mut out = String::from("申请内容已识别：\n");
    let line =
        |out: &mut String, label: &str, value: &str| out.push_str(&format!("{label}：{value}\n"));
    line(
        &mut out,
        "工单编号",
        app.ticket_no.as_deref().unwrap_or("（未识别）"),
    );
    line(&mut out, "工单标题", &app.title);
    line(
        &mut out,
        "首接单位",
        app.first_unit.as_deref().unwrap_or("（未识别）"),
    );
    if app.requested_units.is_empty() {
        line(&mut out, "拟协调单位", "未写明具体单位");
    } else {
        line(&mut out, "拟协调单位", &app.requested_units.join("、"));
    }
    if !app.unresolved_mentions.is_empty() {
        line(
            &mut out,
            "待质检专员确定",
            &app.unresolved_mentions.join("、"),
        );
    }
    line(&mut out, "疑难类型", app.category.label());
    if app.urgent {
        // 五(一): urgent tickets are reviewed at once and coordinated within 1 working day.
        line(
            &mut out,
            "紧急程度",
            "紧急（绿色通道：质检专员即时研判，1 个工作日内完成协调）",
        );
    } else {
        line(&mut out, "紧急程度", "一般");
    }
    if let Some(deadline) = app.deadline {
        line(&mut out, "办理时限", &deadline.to_string());
    }
    if app.city_level {
        // 四(一): city-level and cross-county units are arranged by the city 12345 hotline.
        out.push_str("注意：涉及市级或跨区县单位，将由市区 12345 热线先行对接，再由市 12345 热线统筹协调。\n");
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{UnitMatcher, parse_application};
    use crate::roster::Roster;

    fn matcher() -> UnitMatcher {
        let roster = Roster::from_toml_str(include_str!("../../config/roster.toml"), "roster.toml")
            .expect("shipped roster");
        UnitMatcher::new(&roster)
    }

    #[test]
    fn unchanged_template_is_not_registered_and_names_every_field() {
        let app = parse_application(TEMPLATE, &matcher());
        assert!(!app.ok);
        assert!(app.missing.is_empty(), "{:?}", app.missing);
        for label in [
            "工单编号",
            "工单标题",
            "首接单位",
            "已采取措施",
            "办理难点",
            "需协调部门及事由",
            "请示分管领导相关情况",
        ] {
            assert!(
                app.errors.iter().any(|e| e.contains(label)),
                "{label}: {:?}",
                app.errors
            );
        }
    }

    #[test]
    fn incomplete_reply_lists_missing_fields_errors_and_template() {
        let text = "工单编号：DH*****\n工单标题：反映小区养犬扰民的问题\n首接单位：南街街道\n已采取措施：已上门劝导犬主。";
        let reply = render_incomplete(&parse_application(text, &matcher()));
        assert!(reply.starts_with("申请未登记："), "{reply}");
        assert!(
            reply.contains("· 缺少“办理难点”：本单位为什么无法单独办结"),
            "{reply}"
        );
        assert!(reply.contains("工单编号仍是模板占位符“DH*****”"), "{reply}");
        assert!(reply.ends_with(TEMPLATE));
    }

    #[test]
    fn not_an_application_gets_the_reason_not_seven_lines() {
        let reply = render_incomplete(&parse_application("模板在哪里？", &matcher()));
        assert!(!reply.contains("缺少"), "{reply}");
        assert!(reply.contains("这不是联合调处申请"), "{reply}");
        let empty = "工单编号：\n工单标题：\n首接单位：\n已采取措施：\n办理难点：\n需协调部门及事由：\n请示分管领导相关情况：";
        let reply = render_incomplete(&parse_application(empty, &matcher()));
        assert!(reply.contains("必填项都没有填写内容"), "{reply}");
    }

    #[test]
    fn preview_shows_units_mentions_urgency_and_city_note() {
        let text = "工单编号：DH2026112600310\n工单标题：反映客运班线停运的问题\n首接单位：区交通运输局\n\
            紧急程度：紧急\n办理时限：12月5日\n已采取措施：已联系客运企业。\n办理难点：线路审批在市级。\n\
            需协调部门及事由：区住建局配合；市交通运输局统筹；相关国企协助。\n请示分管领导相关情况：已同意。";
        let app = parse_application(text, &matcher());
        assert!(app.ok, "{:?}", app.errors);
        let preview = render_preview(&app);
        assert!(preview.contains("工单编号：DH2026112600310"), "{preview}");
        assert!(preview.contains("拟协调单位：区住建局"), "{preview}");
        assert!(
            preview.contains("待质检专员确定：市交通运输局、相关国企"),
            "{preview}"
        );
        assert!(preview.contains("绿色通道"), "{preview}");
        assert!(preview.contains("办理时限：2026-12-05"), "{preview}");
        assert!(preview.contains("市级或跨区县"), "{preview}");
    }
}

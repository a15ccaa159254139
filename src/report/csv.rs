//! The per-unit statistics as CSV (RFC 4180, UTF-8 with a byte-order mark so Excel shows the
//! Chinese headers): one row per unit, then the 合计 row, then the three rates per row.

use super::Report;
use super::stats::Counts;

/// The CSV text.
pub fn per_unit(report: &Report) -> String {
    let mut out = String::from("\u{feff}");
    let mut header = vec!["单位".to_string()];
    header.extend(
        Counts::default()
            .columns()
            .iter()
            .map(|(name, _)| (*name).to_string()),
    );
    header.extend(["办结率", "响应率", "满意率"].map(String::from));
    push_row(&mut out, &header);
    let rows = report
        .stats
        .units
        .iter()
        .map(|(u, c)| (u.as_str(), c))
        .chain(std::iter::once(("合计", &report.stats.overall)));
    for (unit, c) in rows {
        let mut row = vec![unit.to_string()];
        row.extend(c.columns().iter().map(|(_, v)| v.to_string()));
        for rate in [
            c.completion_rate(),
            c.response_rate(),
            c.satisfaction_rate(),
        ] {
            row.push(
                rate.value()
                    .map_or_else(String::new, |v| format!("{:.1}%", v * 100.0)),
            );
        }
        push_row(&mut out, &row);
    }
    out
}

fn push_row(out: &mut String, fields: &[String]) {
    let quoted: Vec<String> = fields.iter().map(|f| quote(f)).collect();
    out.push_str(&quoted.join(","));
    out.push_str("\r\n");
}

/// Quotes a field when it holds a comma, a quote or a line break; doubles inner quotes.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(quote("区住建局"), "区住建局");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("说\"明\""), "\"说\"\"明\"\"\"");
        assert_eq!(quote("两\n行"), "\"两\n行\"");
    }
}

//! The overview's three inline-SVG charts, as geometry: the rates against their targets, the
//! twelve-month trend and the units' mean response times. The numbers are worked out here; the
//! SVG is in `templates/dashboard/chart_*.html`, which escapes every text (unit names included).

use std::collections::BTreeMap;

use crate::report::Counts;

/// Width of every chart's view box.
const WIDTH: f64 = 360.0;

/// Horizontal bars of the three rates, each with its target marked.
pub(super) struct RatesChart {
    pub w: f64,
    pub height: f64,
    /// Where the bars start (the names stand left of it) and their full length.
    pub left: f64,
    pub bar: f64,
    pub rows: Vec<RateRow>,
}

pub(super) struct RateRow {
    pub name: &'static str,
    /// Top of the bar, and the baselines of the name and the value line below it.
    pub y: f64,
    pub ty: f64,
    pub vy: f64,
    /// The filled length.
    pub fill: f64,
    /// `ok`, `bad` or `none` (nothing due).
    pub class: &'static str,
    /// The target mark, from `y0` to `y1`.
    pub target_x: f64,
    pub y0: f64,
    pub y1: f64,
    /// `50.0%（1/2）`.
    pub value: String,
    /// `≥ 90%`.
    pub target: String,
    /// `达标`, `未达标` or `无数据`.
    pub verdict: &'static str,
}

impl RatesChart {
    pub(super) fn new(c: &Counts) -> RatesChart {
        let targets = c.targets();
        let (row, left) = (34.0_f64, 70.0_f64);
        let bar = WIDTH - left - 10.0;
        let rows = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let y = i as f64 * row + 4.0;
                let share = t.actual.value().unwrap_or(0.0).clamp(0.0, 1.0);
                RateRow {
                    name: t.name,
                    y,
                    ty: y + 13.0,
                    vy: y + 30.0,
                    fill: bar * share,
                    class: match t.met {
                        Some(true) => "ok",
                        Some(false) => "bad",
                        None => "none",
                    },
                    target_x: left + bar * t.target_percent as f64 / 100.0,
                    y0: y - 2.0,
                    y1: y + 20.0,
                    value: t.actual.display(),
                    target: t.target_label(),
                    verdict: t.verdict(),
                }
            })
            .collect();
        RatesChart {
            w: WIDTH,
            height: row * targets.len() as f64 + 6.0,
            left,
            bar,
            rows,
        }
    }
}

/// Paired monthly bars: applications (申请) and completions (办结).
pub(super) struct TrendChart {
    pub w: f64,
    pub h: f64,
    /// Baseline of the month labels.
    pub axis_y: f64,
    pub months: Vec<TrendColumn>,
}

pub(super) struct TrendColumn {
    pub year: i16,
    pub month: i8,
    /// Where the month label starts.
    pub x: f64,
    pub bars: [TrendBar; 2],
}

pub(super) struct TrendBar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// `submitted` or `completed`.
    pub class: &'static str,
    /// `申请` or `办结`.
    pub label: &'static str,
    pub n: u64,
}

impl TrendChart {
    /// `months`: (year, month, applications, completions), oldest first.
    pub(super) fn new(months: &[(i16, i8, u64, u64)]) -> TrendChart {
        let (h, bottom, top) = (180.0_f64, 24.0_f64, 16.0_f64);
        let max = months
            .iter()
            .map(|m| m.2.max(m.3))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let slot = WIDTH / months.len().max(1) as f64;
        let scale = (h - bottom - top) / max;
        let base = h - bottom;
        let columns = months
            .iter()
            .enumerate()
            .map(|(i, &(year, month, submitted, completed))| {
                let x = i as f64 * slot + slot * 0.15;
                let width = slot * 0.35;
                let bar = |j: usize, n: u64, class, label| {
                    let height = n as f64 * scale;
                    TrendBar {
                        x: x + j as f64 * width,
                        y: base - height,
                        width,
                        height,
                        class,
                        label,
                        n,
                    }
                };
                TrendColumn {
                    year,
                    month,
                    x,
                    bars: [
                        bar(0, submitted, "submitted", "申请"),
                        bar(1, completed, "completed", "办结"),
                    ],
                }
            })
            .collect();
        TrendChart {
            w: WIDTH,
            h,
            axis_y: h - 8.0,
            months: columns,
        }
    }
}

/// One bar per unit: mean working hours from request to answer.
pub(super) struct ResponseChart {
    pub w: f64,
    pub height: f64,
    pub left: f64,
    pub rows: Vec<ResponseRow>,
}

pub(super) struct ResponseRow {
    pub unit: String,
    /// Answers the mean is over.
    pub n: u64,
    pub hours: f64,
    pub y: f64,
    pub ty: f64,
    pub width: f64,
    /// Where the value stands, right of the bar.
    pub vx: f64,
}

impl ResponseChart {
    /// `times`: per unit, (answers, mean working minutes to answer).
    pub(super) fn new(times: &BTreeMap<String, (u64, i64)>) -> ResponseChart {
        let (row, left) = (24.0_f64, 110.0_f64);
        let bar = WIDTH - left - 40.0;
        let max = times.values().map(|(_, m)| *m).max().unwrap_or(0).max(60) as f64;
        let rows = times
            .iter()
            .enumerate()
            .map(|(i, (unit, (n, minutes)))| {
                let y = i as f64 * row + 2.0;
                let width = bar * (*minutes as f64 / max).max(0.0);
                ResponseRow {
                    unit: unit.clone(),
                    n: *n,
                    hours: *minutes as f64 / 60.0,
                    y,
                    ty: y + 12.0,
                    width,
                    vx: left + width + 4.0,
                }
            })
            .collect();
        ResponseChart {
            w: WIDTH,
            height: row * times.len() as f64 + 4.0,
            left,
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;

    #[derive(Template)]
    #[template(
        source = r#"{% include "dashboard/chart_rates.html" %}|{% include "dashboard/chart_response.html" %}"#,
        ext = "html"
    )]
    struct Charts {
        rates: RatesChart,
        response: ResponseChart,
    }

    #[test]
    fn charts_escape_unit_names_and_show_targets() {
        let mut times = BTreeMap::new();
        times.insert("<区>".to_string(), (2, 90));
        let c = Counts {
            completed: 1,
            completed_on_time: 1,
            completion_due: 2,
            ..Counts::default()
        };
        let svg = Charts {
            rates: RatesChart::new(&c),
            response: ResponseChart::new(&times),
        }
        .render()
        .expect("render");
        assert!(svg.contains("&#60;区&#62;"), "{svg}");
        assert!(!svg.contains("<区>"), "{svg}");
        assert!(svg.contains("1.5 工作小时（2 次答复）"), "{svg}");
        assert!(
            svg.contains("办结率：50.0%（1/2），目标 100%（未达标）"),
            "{svg}"
        );
    }

    #[test]
    fn a_month_without_answers_says_so() {
        let svg = Charts {
            rates: RatesChart::new(&Counts::default()),
            response: ResponseChart::new(&BTreeMap::new()),
        }
        .render()
        .expect("render");
        assert!(
            svg.ends_with(r#"|<p class="empty" id="chart-response">本月没有协办答复。</p>"#),
            "{svg}"
        );
    }

    #[test]
    fn trend_bars_scale_to_the_busiest_month() {
        let chart = TrendChart::new(&[(2026, 10, 2, 0), (2026, 11, 4, 1)]);
        let [a, b] = &chart.months[1].bars;
        assert_eq!((a.label, a.n, b.label, b.n), ("申请", 4, "办结", 1));
        assert_eq!(a.height, 140.0, "the tallest bar fills the plot");
        assert_eq!(a.y + a.height, 156.0, "bars stand on the baseline");
        assert_eq!(chart.months[0].bars[0].height, 70.0);
    }
}

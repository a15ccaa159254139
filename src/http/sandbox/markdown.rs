//! The DingTalk markdown the service writes, read into lines the sandbox page shows: `#` headings,
//! `- ` items, `> ` quotes, `**bold**` and `` `code` ``, every line its own line as DingTalk
//! shows them. This module only reads text into [`Block`]s; `templates/sandbox/markdown.html`
//! turns them into HTML and escapes every piece of text on the way out, so no markup a person
//! wrote (and no link or image, which DingTalk would render) can become a tag here.
//!
//! The escapes the service writes around people's text (a backslash before punctuation, `&lt;`,
//! `&amp;`, …; [`crate::messages::escape`]) are read back to the character they stand for, never
//! as a marker. Code spans are commands: tapping one puts it in the input box.

/// One line of a message, or the gap a blank line leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Gap,
    Line(Line),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: LineKind,
    pub spans: Vec<Span>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Heading,
    Item,
    Quote,
    Text,
}

impl LineKind {
    /// The line's class in `templates/sandbox/markdown.html` (styled by `app.css`).
    pub fn class(self) -> &'static str {
        match self {
            LineKind::Heading => "h",
            LineKind::Item => "li",
            LineKind::Quote => "q",
            LineKind::Text => "t",
        }
    }
}

/// A stretch of a line: plain, or between a pair of `**`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Plain(Inline),
    Strong(Vec<Inline>),
}

/// Text as it shows, or a command in a code span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inline {
    Text(String),
    Code(String),
}

/// The lines of `text`: blank lines between lines become one [`Block::Gap`]; leading and
/// trailing blank lines are dropped.
pub fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut gap = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            gap = !out.is_empty();
            continue;
        }
        if gap {
            out.push(Block::Gap);
            gap = false;
        }
        let heading = line.trim_start_matches('#');
        let (kind, content) = if heading.len() < line.len() && heading.starts_with(' ') {
            (LineKind::Heading, heading.trim_start())
        } else if let Some(rest) = line.strip_prefix("- ") {
            (LineKind::Item, rest)
        } else if let Some(rest) = line.strip_prefix("> ").or(line.strip_prefix('>')) {
            (LineKind::Quote, rest)
        } else {
            (LineKind::Text, line)
        };
        out.push(Block::Line(Line {
            kind,
            spans: spans(content),
        }));
    }
    out
}

/// `**bold**` and `` `code` `` inside one line; an unpaired `**` stays as written.
fn spans(line: &str) -> Vec<Span> {
    let pieces = pieces(line);
    let mut out = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        if let Piece::Bold = pieces[i] {
            let close = pieces[i + 1..]
                .iter()
                .position(|p| matches!(p, Piece::Bold))
                .filter(|&n| n > 0);
            if let Some(n) = close {
                let inner = pieces[i + 1..=i + n]
                    .iter()
                    .filter_map(|p| p.inline())
                    .collect();
                out.push(Span::Strong(inner));
                i += n + 2;
                continue;
            }
        }
        out.push(Span::Plain(
            pieces[i]
                .inline()
                .unwrap_or_else(|| Inline::Text("**".to_string())),
        ));
        i += 1;
    }
    out
}

/// One piece of a line: text as it shows, a command in a code span, or a `**`.
enum Piece {
    Text(String),
    Code(String),
    Bold,
}

impl Piece {
    fn inline(&self) -> Option<Inline> {
        match self {
            Piece::Text(text) => Some(Inline::Text(text.clone())),
            Piece::Code(command) => Some(Inline::Code(command.clone())),
            Piece::Bold => None,
        }
    }
}

fn pieces(line: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = line;
    let flush = |text: &mut String, pieces: &mut Vec<Piece>| {
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(text)));
        }
    };
    while let Some(c) = rest.chars().next() {
        if c == '\\'
            && let Some(n) = rest[1..].chars().next().filter(char::is_ascii_punctuation)
        {
            text.push(n);
            rest = &rest[1 + n.len_utf8()..];
        } else if let Some((decoded, len)) = entity(rest) {
            text.push(decoded);
            rest = &rest[len..];
        } else if let Some(end) = (c == '`')
            .then(|| rest[1..].find('`'))
            .flatten()
            .filter(|&e| e > 0)
        {
            flush(&mut text, &mut pieces);
            pieces.push(Piece::Code(rest[1..=end].to_string()));
            rest = &rest[end + 2..];
        } else if let Some(after) = rest.strip_prefix("**") {
            flush(&mut text, &mut pieces);
            pieces.push(Piece::Bold);
            rest = after;
        } else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut text, &mut pieces);
    pieces
}

/// The character an HTML entity at the start of `text` stands for, and the entity's length.
fn entity(text: &str) -> Option<(char, usize)> {
    let body = text.strip_prefix('&')?;
    let end = body.find(';').filter(|&e| e <= 8)?;
    let name = &body[..end];
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code).filter(|c| *c != '\0')?
        }
    };
    Some((c, end + 2))
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;

    /// The partial the chat includes, on its own.
    #[derive(Template)]
    #[template(source = r#"{% include "sandbox/markdown.html" %}"#, ext = "html")]
    struct Rendered {
        blocks: Vec<Block>,
    }

    fn markdown(text: &str) -> String {
        Rendered {
            blocks: blocks(text),
        }
        .render()
        .expect("render")
    }

    /// One line of text, without its `<div>`.
    fn inline(text: &str) -> String {
        let html = markdown(text);
        html.strip_prefix(r#"<div class="t">"#)
            .and_then(|h| h.strip_suffix("</div>"))
            .unwrap_or(&html)
            .to_string()
    }

    #[test]
    fn markdown_renders_the_services_subset_and_escapes_everything_else() {
        let html = markdown(
            "#### 申请已登记\n\n案件 **TC-2026-0001**\n\n- 工单标题：<img src=x onerror=alert(1)>\n> 引用\n查看：`查询 DH2026110300017`",
        );
        assert_eq!(
            html,
            concat!(
                r#"<div class="h">申请已登记</div><div class="gap"></div>"#,
                r#"<div class="t">案件 <strong>TC-2026-0001</strong></div><div class="gap"></div>"#,
                r#"<div class="li">工单标题：&#60;img src=x onerror=alert(1)&#62;</div>"#,
                r#"<div class="q">引用</div>"#,
                r#"<div class="t">查看：<code class="cmd" data-cmd="查询 DH2026110300017">查询 DH2026110300017</code></div>"#,
            )
        );
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        assert_eq!(
            inline(r#"<script>alert("x")</script> & 'y' `"'<>&`"#),
            concat!(
                "&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; &#39;y&#39; ",
                r#"<code class="cmd" data-cmd="&#34;&#39;&#60;&#62;&#38;">&#34;&#39;&#60;&#62;&#38;</code>"#
            )
        );
    }

    #[test]
    fn peoples_text_shows_as_written_and_never_as_a_link_or_tag() {
        let hostile = "# [点我](dtmd://dingtalkclient/sendMessage?content=x) ![](http://t.example/p.gif) <a href=\"http://x\">a</a> **粗** `码` &lt; \\";
        let written = crate::messages::escape::md_text(hostile);
        let html = markdown(&format!("- 异议理由：{written}\n> {written}"));
        assert!(
            !html.contains("<a")
                && !html.contains("<img")
                && !html.contains("<strong")
                && !html.contains("<code"),
            "{html}"
        );
        let shown = "# [点我](dtmd://dingtalkclient/sendMessage?content=x) ![](http://t.example/p.gif) \
                     &#60;a href=&#34;http://x&#34;&#62;a&#60;/a&#62; **粗** `码` &#38;lt; \\";
        assert_eq!(
            html,
            format!(r#"<div class="li">异议理由：{shown}</div><div class="q">{shown}</div>"#)
        );
        // Even written by hand, a link or an image is not rendered as one.
        assert_eq!(
            inline("[a](http://x) ![](http://y)"),
            "[a](http://x) ![](http://y)"
        );
    }

    #[test]
    fn unpaired_markers_stay_as_text() {
        assert_eq!(inline("a ** b"), "a ** b");
        assert_eq!(inline("`<b>"), "`&#60;b&#62;");
        assert_eq!(inline("**x** and **"), "<strong>x</strong> and **");
        assert_eq!(
            inline("x `\"` y"),
            r#"x <code class="cmd" data-cmd="&#34;">&#34;</code> y"#
        );
        assert_eq!(
            inline("**粗 `码` 体**"),
            r#"<strong>粗 <code class="cmd" data-cmd="码">码</code> 体</strong>"#
        );
    }

    #[test]
    fn service_escapes_read_back_as_characters() {
        assert_eq!(
            blocks(r"\*\* &lt;b&gt; &#x41;&#66; &bogus;"),
            vec![Block::Line(Line {
                kind: LineKind::Text,
                spans: vec![Span::Plain(Inline::Text("** <b> AB &bogus;".into()))],
            })]
        );
        assert_eq!(blocks("\n\n- a\n\n\n\nb\n\n"), {
            let line = |kind, t: &str| {
                Block::Line(Line {
                    kind,
                    spans: vec![Span::Plain(Inline::Text(t.into()))],
                })
            };
            vec![
                line(LineKind::Item, "a"),
                Block::Gap,
                line(LineKind::Text, "b"),
            ]
        });
    }
}

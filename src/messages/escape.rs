//! Text that people write, made safe for the channel it goes into (docs/security.md → Text that
//! people write). Everything a person typed — application fields, reasons, notes, contact lines,
//! names taken from `@` mentions — reaches other people inside the service's own messages, and
//! must show there as the literal text that was written, never as a link, an image, HTML or a
//! change of layout. Only the service's own buttons carry links.
//!
//! Channels:
//! - DingTalk markdown (robot `sampleMarkdown`, ActionCard `text`, group robot markdown, the
//!   card template's `markdown` variable): [`md_text`] for one value anywhere on a line,
//!   [`md_cell`] inside a table, [`md_block`] for a plain multi-line text as a whole,
//!   [`md_code`] for the code span around a command the service wrote.
//! - Plain-text card variables (`status`, `title`): [`plain_line`], which only keeps a value on
//!   its own line, so a reason cannot fake another status line.
//!
//! How (CommonMark's own escapes, so rendering gives back exactly the text): a backslash before
//! `[ ] * _ `` ` `` and `\`; `\(` right after a `]`, so no raw `](` remains even for a renderer
//! that ignored backslashes; `&lt;` before anything that could open a tag or autolink (`<a`,
//! `</`, `<!`, `<?`) and `&amp;` before anything that could be an entity; `\:` after a URL
//! scheme (`http\://`, `dtmd\://`, `javascript\:`) and `www\.`, which stops bare-URL linking;
//! a backslash before a block marker at the start (`# > - + = ~` or `1.`), and a value's line
//! breaks folded to spaces, so a value never starts a heading, quote, list, rule or code block.
//! Everything else — every Chinese character, fullwidth punctuation, `( ) ! # > | ~` inside a
//! line — is left as it is.

/// One value as DingTalk markdown, safe anywhere on a line (also at its start): line breaks
/// folded to spaces, control characters dropped, active syntax escaped.
pub fn md_text(text: &str) -> String {
    escape_line(&plain_line(text), false)
}

/// [`md_text`] for a cell of a GFM table: `|` escaped too.
pub fn md_cell(text: &str) -> String {
    escape_line(&plain_line(text), true)
}

/// A plain multi-line text (a reply or a card status written for people) as markdown: each
/// line escaped as [`md_text`], line breaks kept.
pub fn md_block(text: &str) -> String {
    text.split('\n')
        .map(|line| md_text(line.strip_suffix('\r').unwrap_or(line)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A code span around `command` (a command the service wrote, to be typed or tapped): a fence
/// longer than any run of backticks inside, so the span cannot end early; one line.
pub fn md_code(command: &str) -> String {
    let command = plain_line(command);
    let mut longest = 0;
    let mut run = 0;
    for c in command.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // A span that starts or ends with a backtick needs a space inside its fence.
    let pad = if command.starts_with('`') || command.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{command}{pad}{fence}")
}

/// One value as plain text on one line: line breaks (`\n`, `\r`, U+2028, …) folded to single
/// spaces around trimmed pieces, other control characters and bidirectional overrides dropped.
pub fn plain_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in text.split(is_line_break) {
        let piece: String = piece
            .chars()
            .filter_map(|c| match c {
                '\t' => Some(' '),
                c if c.is_control() || is_bidi_control(c) => None,
                c => Some(c),
            })
            .collect();
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(piece);
    }
    out
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Embeddings, overrides and isolates: they can make a value display as something else.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Escapes one folded, trimmed line (see the module doc); `pipes` for table cells.
fn escape_line(line: &str, pipes: bool) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len() + 8);
    // A block marker at the start: `#` heading, `>` quote, `-`/`+` list or rule, `=` setext
    // underline, `~~~` fence; `*`, `_` and backticks are escaped everywhere anyway.
    let lead_marker = matches!(chars.first(), Some('#' | '>' | '-' | '+' | '=' | '~'));
    // `1. ` / `1) ` ordered list: escape the `.` or `)`.
    let list_mark = ordered_list_mark(&chars);
    // A closing `#` run of a heading (` ##` at the end): escape its first `#`.
    let closing_hashes = closing_hash_run(&chars);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        let escaped = match c {
            _ if i == 0 && lead_marker => true,
            _ if Some(i) == list_mark || Some(i) == closing_hashes => true,
            '\\' => next.is_none_or(|n| n.is_ascii_punctuation()),
            '[' | ']' | '*' | '_' | '`' => true,
            '(' => prev == Some(']'),
            '|' => pipes,
            ':' => next.is_some_and(|n| !n.is_whitespace()) && scheme_before(&chars, i),
            '.' => www_before(&chars, i),
            '<' if next
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')) =>
            {
                out.push_str("&lt;");
                continue;
            }
            '&' if next.is_some_and(|n| n.is_ascii_alphanumeric() || n == '#') => {
                out.push_str("&amp;");
                continue;
            }
            _ => false,
        };
        if escaped {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The index of the `.` or `)` of a leading `1.` … `123456789.` followed by a space or the end.
fn ordered_list_mark(chars: &[char]) -> Option<usize> {
    let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=9).contains(&digits) || !matches!(chars.get(digits), Some('.' | ')')) {
        return None;
    }
    chars
        .get(digits + 1)
        .is_none_or(|c| c.is_whitespace())
        .then_some(digits)
}

/// The index of the first `#` of a run of `#` that ends the line after a space.
fn closing_hash_run(chars: &[char]) -> Option<usize> {
    let hashes = chars.iter().rev().take_while(|c| **c == '#').count();
    let start = chars.len().checked_sub(hashes)?;
    (hashes > 0 && start > 0 && chars[start - 1].is_whitespace()).then_some(start)
}

/// Whether the `:` at `at` ends a URL scheme: at least two of `A-Z a-z 0-9 + . -` before it,
/// one of them a letter (`http`, `dtmd`, `javascript`, not `10` of `10:30`).
fn scheme_before(chars: &[char], at: usize) -> bool {
    let run: Vec<char> = chars[..at]
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        .copied()
        .collect();
    run.len() >= 2 && run.iter().any(char::is_ascii_alphabetic)
}

/// Whether the `.` at `at` follows `www` (linkers differ on what may come before it).
fn www_before(chars: &[char], at: usize) -> bool {
    at >= 3
        && chars[at - 3..at]
            .iter()
            .all(|c| c.eq_ignore_ascii_case(&'w'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What a CommonMark renderer shows for text made by [`md_text`]: backslash escapes and the
    /// two entities undone. Text only: [`active_syntax`] has already found no markup in it.
    fn rendered_text(markdown: &str) -> String {
        let mut out = String::new();
        let mut rest = markdown;
        while let Some(c) = rest.chars().next() {
            if c == '\\'
                && let Some(n) = rest[1..].chars().next().filter(char::is_ascii_punctuation)
            {
                out.push(n);
                rest = &rest[1 + n.len_utf8()..];
            } else if let Some(after) = rest.strip_prefix("&lt;") {
                out.push('<');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("&amp;") {
                out.push('&');
                rest = after;
            } else {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }

    /// Every piece of active markdown or HTML in one escaped line, as a reader of the raw text
    /// that honours backslashes would find it; empty when the line is inert.
    fn active_syntax(markdown: &str) -> Vec<String> {
        let chars: Vec<char> = markdown.chars().collect();
        // Which characters stand as themselves (not escaped by a preceding backslash).
        let mut live = vec![true; chars.len()];
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '\\' && chars.get(i + 1).is_some_and(char::is_ascii_punctuation) {
                live[i] = false;
                live[i + 1] = false;
                i += 2;
            } else {
                i += 1;
            }
        }
        let mut found = Vec::new();
        for (i, &c) in chars.iter().enumerate() {
            let next = chars.get(i + 1).copied();
            if !live[i] {
                continue;
            }
            match c {
                '[' | ']' | '*' | '_' | '`' => found.push(format!("{c} at {i}")),
                '<' if next.is_some_and(|n| n.is_ascii_alphabetic() || "/!?".contains(n)) => {
                    found.push(format!("tag at {i}"));
                }
                '&' if next.is_some_and(|n| n.is_ascii_alphanumeric() || n == '#') => {
                    let entity = chars[i..].iter().collect::<String>();
                    if !entity.starts_with("&lt;") && !entity.starts_with("&amp;") {
                        found.push(format!("entity at {i}"));
                    }
                }
                '\n' | '\r' => found.push(format!("line break at {i}")),
                _ => {}
            }
        }
        let raw: String = chars.iter().collect::<String>().to_ascii_lowercase();
        for needle in ["](", "www."] {
            if raw.contains(needle) {
                found.push(format!("raw {needle}"));
            }
        }
        // A scheme a renderer or linker acts on, with its colon standing and something after.
        for (i, &c) in chars.iter().enumerate() {
            let before: String = chars[..i].iter().collect::<String>().to_ascii_lowercase();
            if c == ':'
                && live[i]
                && chars.get(i + 1).is_some_and(|n| !n.is_whitespace())
                && [
                    "http",
                    "https",
                    "ftp",
                    "dtmd",
                    "dingtalk",
                    "javascript",
                    "mailto",
                    "data",
                ]
                .iter()
                .any(|s| before.ends_with(s))
            {
                found.push(format!("scheme at {i}"));
            }
        }
        if let Some(&first) = chars.first()
            && live[0]
            && "#>-+=~".contains(first)
        {
            found.push(format!("block marker {first}"));
        }
        let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
        if (1..=9).contains(&digits)
            && chars.get(digits).is_some_and(|c| ".)".contains(*c))
            && live[digits]
            && chars.get(digits + 1).is_none_or(|c| c.is_whitespace())
        {
            found.push("ordered list".into());
        }
        found
    }

    fn check(input: &str) {
        let out = md_text(input);
        assert!(
            active_syntax(&out).is_empty(),
            "{input:?} → {out:?}: {:?}",
            active_syntax(&out)
        );
        assert_eq!(
            rendered_text(&out),
            plain_line(input),
            "{input:?} → {out:?}"
        );
    }

    #[test]
    fn ordinary_chinese_text_is_unchanged() {
        for text in [
            "反映某建筑公司拖欠薪资的问题",
            "已向涉事建筑企业取得联系，核实拖欠薪资的基本情况（企业方承认存在拖欠行为）。",
            "区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。",
            "约定11月10日前支付，时间 10:30，金额 12000 元，2026-11-05 前办结",
            "温度>30度，3~5天，A|B，50%，“引号”！#话题",
            "诉求人电话139 1234 5678，座机(0936)8685841",
        ] {
            assert_eq!(md_text(text), text);
        }
    }

    #[test]
    fn links_and_images_lose_their_brackets() {
        assert_eq!(
            md_text("[点我](http://evil.example/a)"),
            r"\[点我\]\(http\://evil.example/a)"
        );
        assert_eq!(
            md_text("![](http://tracker.example/p.gif?u=1)"),
            r"!\[\]\(http\://tracker.example/p.gif?u=1)"
        );
        assert_eq!(md_text("[a][ref] [ref]: /x"), r"\[a\]\[ref\] \[ref\]: /x");
        check("[同意](dtmd://dingtalkclient/sendMessage?content=%E6%92%A4%E5%9B%9E)");
        check("[详情](javascript:alert(1))");
    }

    #[test]
    fn html_and_autolinks_become_text() {
        assert_eq!(
            md_text(r#"<a href="http://x">点</a><img src=x><font color=red>红</font>"#),
            r#"&lt;a href="http\://x">点&lt;/a>&lt;img src=x>&lt;font color=red>红&lt;/font>"#
        );
        assert_eq!(
            md_text("<http://evil.example> <!-- c --> <?php"),
            r"&lt;http\://evil.example> &lt;!-- c --> &lt;?php"
        );
        assert_eq!(
            md_text("&lt;b&gt; &#60; & 5"),
            "&amp;lt;b&amp;gt; &amp;#60; & 5"
        );
        assert_eq!(md_text("小于<5万元 a < b"), "小于<5万元 a < b");
    }

    #[test]
    fn bare_urls_and_schemes_are_broken() {
        assert_eq!(
            md_text("见 http://evil.example/x 和 www.evil.example"),
            r"见 http\://evil.example/x 和 www\.evil.example"
        );
        assert_eq!(md_text("javascript:alert(1)"), r"javascript\:alert(1)");
        assert_eq!(
            md_text("dtmd://dingtalkclient/sendMessage?content=x"),
            r"dtmd\://dingtalkclient/sendMessage?content=x"
        );
        // A colon after a word and a space, a time, a ticket number: no scheme.
        assert_eq!(md_text("Note: ok 10:30"), "Note: ok 10:30");
        assert_eq!(md_text("wwwx.y WWW.b"), r"wwwx.y WWW\.b");
    }

    #[test]
    fn block_markers_stay_text_and_lines_fold() {
        assert_eq!(
            md_text("理由如下\n# 伪造标题\n> 伪造引用\n- 列表\n---\n1. 编号"),
            "理由如下 # 伪造标题 > 伪造引用 - 列表 --- 1. 编号"
        );
        for (text, escaped) in [
            ("# 伪造标题", r"\# 伪造标题"),
            ("> 引用", r"\> 引用"),
            ("- 列表", r"\- 列表"),
            ("+ 列表", r"\+ 列表"),
            ("---", r"\---"),
            ("===", r"\==="),
            ("~~~", r"\~~~"),
            ("```", r"\`\`\`"),
            ("* 列表", r"\* 列表"),
            ("1. 编号", r"1\. 编号"),
            ("2) 编号", r"2\) 编号"),
            ("2026.11 月", "2026.11 月"),
            ("标题 #", r"标题 \#"),
            ("    缩进代码", "缩进代码"),
        ] {
            assert_eq!(md_text(text), escaped, "{text}");
        }
        assert_eq!(
            plain_line("a\r\nb\u{2028}c\u{85}d\u{202E}e\u{0}f"),
            "a b c def"
        );
    }

    #[test]
    fn emphasis_code_and_backslashes_show_as_written() {
        assert_eq!(md_text("**粗** _斜_ `代码`"), r"\*\*粗\*\* \_斜\_ \`代码\`");
        assert_eq!(md_text("139****5678"), r"139\*\*\*\*5678");
        assert_eq!(md_text(r"C:\路径 \[ 末尾\"), r"C:\路径 \\\[ 末尾\\");
        check(r"\[x](y) \<a> \\");
    }

    #[test]
    fn table_cells_escape_pipes_and_code_spans_cannot_end_early() {
        assert_eq!(md_cell("a|b [c]"), r"a\|b \[c\]");
        assert_eq!(md_code("查询 DH1"), "`查询 DH1`");
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("`a"), "`` `a ``");
        assert_eq!(md_code("a\nb"), "`a b`");
    }

    #[test]
    fn a_block_keeps_its_lines() {
        assert_eq!(
            md_block("申请未登记：\n· 单位“[x](y)”不在名单中\n\n# 模板"),
            "申请未登记：\n· 单位“\\[x\\]\\(y)”不在名单中\n\n\\# 模板"
        );
    }

    /// Text made of the characters markdown, HTML and URLs are built from, and Chinese.
    fn hostile() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "[",
            "]",
            "(",
            ")",
            "!",
            "<",
            ">",
            "&",
            "#",
            ";",
            "*",
            "_",
            "`",
            "~",
            "\\",
            "|",
            ":",
            "/",
            ".",
            "-",
            "+",
            "=",
            " ",
            "\n",
            "\r",
            "\t",
            "1",
            "9",
            "a",
            "w",
            "www.",
            "http",
            "https://",
            "dtmd://",
            "javascript:",
            "mailto:",
            "&lt;",
            "&#60;",
            "<a href=",
            "<img ",
            "</a>",
            "<!--",
            "1. ",
            "# ",
            "> ",
            "- ",
            "---",
            "```",
            "汉",
            "字",
            "：",
            "（",
            "）",
            "\u{2028}",
            "\u{202E}",
            "\u{0}",
        ]);
        prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn escaped_text_is_inert_and_renders_back_to_the_text(text in hostile()) {
            let out = md_text(&text);
            prop_assert!(active_syntax(&out).is_empty(), "{:?} → {:?}: {:?}", text, out, active_syntax(&out));
            prop_assert_eq!(rendered_text(&out), plain_line(&text));
        }

        #[test]
        fn any_string_is_inert(text in any::<String>()) {
            let out = md_text(&text);
            prop_assert!(active_syntax(&out).is_empty(), "{:?} → {:?}", text, out);
            prop_assert_eq!(rendered_text(&out), plain_line(&text));
        }

        #[test]
        fn cells_never_hold_a_live_pipe(text in hostile()) {
            let out = md_cell(&text);
            let mut escaped = false;
            for c in out.chars() {
                prop_assert!(c != '|' || escaped, "{:?} → {:?}", text, out);
                escaped = c == '\\' && !escaped;
            }
        }

        #[test]
        fn code_spans_hold_the_whole_command(text in hostile()) {
            let line = plain_line(&text);
            prop_assume!(!line.is_empty());
            let out = md_code(&text);
            let fence = out.chars().take_while(|c| *c == '`').count();
            prop_assert!(fence > 0 && out.ends_with(&"`".repeat(fence)));
            let inner = &out[fence..out.len() - fence];
            prop_assert!(!inner.contains(&"`".repeat(fence)), "{:?}", out);
            let padded = line.starts_with('`') || line.ends_with('`');
            let inner = if padded {
                &inner[1..inner.len() - 1]
            } else {
                inner
            };
            prop_assert_eq!(inner, line.as_str());
        }
    }
}

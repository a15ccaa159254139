//! Character-level helpers the parser shares: width folding, Han detection, trimming, template
//! placeholders and short excerpts for messages. Every function is a single pass over its input.

/// Full-width ASCII forms (U+FF01–U+FF5E) become ASCII and U+3000 a space, one char for one char,
/// so `ｄｈ２０２６` and `区１２３４５热线` match what the roster spells. Ideographic punctuation
/// (。、【】) is not in that block and is kept; the mention scanner stops at any non-Han character.
pub(crate) fn fold_width(s: &str) -> String {
    s.chars().map(fold_char).collect()
}

/// [`fold_width`] for one char.
pub(crate) fn fold_char(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// CJK unified ideographs (basic block and extension A): the characters unit and place names are made of.
pub(crate) fn is_han(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// Whitespace as pasted text has it: Unicode white space plus the BOM and zero-width space that
/// editors and DingTalk leave behind.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{FEFF}' | '\u{200B}')
}

/// Both ends trimmed of [`is_space`].
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// The first template placeholder in `s`: `***` (three or more asterisks), a full-width `＊`,
/// `XXX` in any case, or `××`. Returns the text to quote back to the user.
pub(crate) fn placeholder(s: &str) -> Option<&'static str> {
    let (mut stars, mut xs, mut times) = (0u32, 0u32, 0u32);
    for c in s.chars() {
        stars = if c == '*' { stars + 1 } else { 0 };
        xs = if c == 'x' || c == 'X' { xs + 1 } else { 0 };
        times = if c == '×' { times + 1 } else { 0 };
        if stars >= 3 {
            return Some("***");
        }
        if c == '＊' {
            return Some("＊");
        }
        if xs >= 3 {
            return Some("XXX");
        }
        if times >= 2 {
            return Some("××");
        }
    }
    None
}

/// The first line of `s`, trimmed and cut to `max_chars` characters (with "…"), for quoting a
/// value inside a message without echoing a whole paste.
pub(crate) fn excerpt(s: &str, max_chars: usize) -> String {
    let line = trim(s.lines().map(trim).find(|l| !l.is_empty()).unwrap_or(""));
    let mut out = String::new();
    for (n, c) in line.chars().enumerate() {
        if n == max_chars {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

/// Drops `@name` mentions (DingTalk's `@机器人名 ` prefix) at the start of a line.
pub(crate) fn strip_mentions(mut line: &str) -> &str {
    loop {
        let trimmed = line.trim_start_matches(is_space);
        let Some(after_at) = trimmed
            .strip_prefix('@')
            .or_else(|| trimmed.strip_prefix('＠'))
        else {
            return line;
        };
        match after_at.find(is_space) {
            Some(end) => line = &after_at[end..],
            None => return "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_full_width_forms() {
        assert_eq!(
            fold_width("ｄｈ２０２６\u{3000}区１２３４５热线：，。、"),
            "dh2026 区12345热线:,。、"
        );
    }

    #[test]
    fn finds_placeholders() {
        assert_eq!(placeholder("DH*****"), Some("***"));
        assert_eq!(placeholder("副局长 xxx 汇报"), Some("XXX"));
        assert_eq!(placeholder("反映＊＊问题"), Some("＊"));
        assert_eq!(placeholder("××小区"), Some("××"));
        assert_eq!(placeholder("**已同意** 2×3 米 box"), None);
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(
            excerpt("\n  区特种设备检测所 \n第二行", 30),
            "区特种设备检测所"
        );
        assert_eq!(excerpt("一二三四五", 3), "一二三…");
    }
}

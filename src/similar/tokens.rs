//! Tokenising Chinese application text for similarity: every character and every overlapping
//! pair of characters.
//!
//! Chinese is written without spaces, and the words that tell two tickets apart are mostly two
//! characters long (欠薪, 物业, 噪音, 供暖, 学位). Bigrams need no dictionary and find those words
//! wherever they occur; the single characters add the overlap of paraphrases that share a
//! character but not a word (工钱 / 工资, 噪声 / 噪音), and BM25's idf keeps common characters
//! cheap. docs/similar.md has the evaluation that chose this over bigrams alone, SQLite's FTS5
//! trigram tokenizer (which cannot match a two-character word at all) and jieba word
//! segmentation.
//!
//! Runs of Han characters give their characters and bigrams; runs of ASCII letters give one
//! lower-case word (KTV); digits and punctuation are dropped, because amounts, dates and ticket
//! numbers say nothing about what a ticket is about.

use unicode_normalization::UnicodeNormalization;

/// The tokens of `text`, in order, with repeats (term frequency counts them).
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut han: Vec<char> = Vec::new();
    let mut word = String::new();
    for c in text.nfkc().flat_map(char::to_lowercase) {
        if is_han(c) {
            flush_word(&mut word, &mut out);
            han.push(c);
        } else if c.is_ascii_alphabetic() {
            flush_han(&mut han, &mut out);
            word.push(c);
        } else {
            flush_han(&mut han, &mut out);
            flush_word(&mut word, &mut out);
        }
    }
    flush_han(&mut han, &mut out);
    flush_word(&mut word, &mut out);
    out
}

fn flush_han(run: &mut Vec<char>, out: &mut Vec<String>) {
    out.extend(run.iter().map(char::to_string));
    out.extend(run.windows(2).map(|w| w.iter().collect::<String>()));
    run.clear();
}

fn flush_word(word: &mut String, out: &mut Vec<String>) {
    if !word.is_empty() {
        out.push(std::mem::take(word));
    }
}

/// CJK Unified Ideographs and their extension A and compatibility blocks: every character an
/// application's Chinese text uses.
fn is_han(c: char) -> bool {
    matches!(c,
        '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2A6DF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn han_runs_give_characters_and_bigrams_and_punctuation_splits_them() {
        assert_eq!(
            tokens("欠工资，失联"),
            ["欠", "工", "资", "欠工", "工资", "失", "联", "失联"]
        );
    }

    #[test]
    fn a_lone_character_is_kept_and_digits_are_dropped() {
        assert_eq!(tokens("某 12 户"), ["某", "户"]);
    }

    #[test]
    fn ascii_words_are_lower_cased_and_full_width_is_folded() {
        assert_eq!(tokens("ＫＴＶ噪音"), ["ktv", "噪", "音", "噪音"]);
        assert_eq!(tokens("KTV"), ["ktv"]);
    }

    #[test]
    fn empty_and_symbol_only_text_has_no_tokens() {
        assert!(tokens("").is_empty());
        assert!(tokens("（）；：123").is_empty());
    }
}

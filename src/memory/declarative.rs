//! The fallback fact extractor: with no extraction model (disabled, or failing after retries)
//! the user's own declarative sentences are kept as facts, so a turn is never lost to an
//! LLM outage. Questions and requests are not facts about the user and are dropped.

use crate::memory::query::INTERROGATIVES;

/// Besides [`INTERROGATIVES`], what opens a request or a greeting rather than a statement.
const NOT_A_STATEMENT: &[&str] = &[
    "remind",
    "tell",
    "give",
    "show",
    "write",
    "explain",
    "describe",
    "summarize",
    "summarise",
    "list",
    "please",
    "help",
    "make",
    "create",
    "generate",
    "translate",
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "ok",
    "okay",
];

const MIN_WORDS: usize = 3;
const MAX_FACT_CHARS: usize = 500;

pub fn declarative_sentences(text: &str) -> Vec<String> {
    let mut facts = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?' | '\n') {
            consider(&text[start..i], c == '?', &mut facts);
            start = i + c.len_utf8();
        }
    }
    consider(&text[start..], false, &mut facts);
    facts
}

fn consider(sentence: &str, is_question: bool, facts: &mut Vec<String>) {
    let sentence = sentence.split_whitespace().collect::<Vec<_>>().join(" ");
    if is_question || sentence.is_empty() {
        return;
    }
    let mut words = sentence.split(' ');
    let first = words
        .next()
        .unwrap_or_default()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_ascii_lowercase();
    let not_a_statement =
        INTERROGATIVES.contains(&first.as_str()) || NOT_A_STATEMENT.contains(&first.as_str());
    if not_a_statement || sentence.split(' ').count() < MIN_WORDS {
        return;
    }
    let fact: String = sentence.chars().take(MAX_FACT_CHARS).collect();
    if !facts.contains(&fact) {
        facts.push(fact);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_statements_drops_questions_and_requests() {
        let got = declarative_sentences(
            "My team is in Singapore. Where are we? Please summarise the call.\nI prefer summaries under 200 words!",
        );
        assert_eq!(
            got,
            vec![
                "My team is in Singapore",
                "I prefer summaries under 200 words"
            ]
        );
    }

    #[test]
    fn short_fragments_and_duplicates_are_dropped() {
        assert!(declarative_sentences("Ok. Yes. Hi there").is_empty());
        assert_eq!(
            declarative_sentences("I live in Oslo. I live in Oslo.").len(),
            1
        );
    }
}

//! Keyword-versus-question heuristics, as Mem0 applies them: a question is best served by
//! meaning (vectors); a few keywords are best served by exact terms fused with meaning.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    Question,
    Keywords,
}

/// Words a question or a request opens with, in both heuristics: a query opening so reads as
/// a question, and a sentence opening so is not a fact about the user.
pub(crate) const INTERROGATIVES: &[&str] = &[
    "what", "who", "whom", "whose", "where", "when", "why", "how", "which", "do", "does", "did",
    "is", "are", "was", "were", "can", "could", "should", "would", "will", "shall", "may",
];

/// Besides [`INTERROGATIVES`], what makes a query read as a question.
const QUESTION_OPENERS: &[&str] = &[
    "have",
    "has",
    "had",
    "tell",
    "remind",
    "explain",
    "describe",
    "recall",
    "summarize",
    "summarise",
    "list",
];

/// Queries this long read as sentences even without a question mark.
const SENTENCE_WORDS: usize = 6;

pub fn classify(query: &str) -> QueryKind {
    let trimmed = query.trim();
    if trimmed.ends_with('?') {
        return QueryKind::Question;
    }
    let words: Vec<&str> = tokens(trimmed).collect();
    let opens_like_question = words
        .first()
        .map(|w| w.to_ascii_lowercase())
        .is_some_and(|w| {
            INTERROGATIVES.contains(&w.as_str()) || QUESTION_OPENERS.contains(&w.as_str())
        });
    if opens_like_question || words.len() >= SENTENCE_WORDS {
        QueryKind::Question
    } else {
        QueryKind::Keywords
    }
}

/// Words that ask for the present state ("where do I live now?", "my current employer"): of
/// two facts that answer, the later one is meant.
const PRESENT_STATE: &[&str] = &[
    "now",
    "current",
    "currently",
    "latest",
    "nowadays",
    "presently",
    "still",
    "anymore",
];

pub fn asks_for_current_state(query: &str) -> bool {
    let lower = query.to_lowercase();
    tokens(&lower).any(|w| PRESENT_STATE.contains(&w))
        || lower.contains("these days")
        || lower.contains("at the moment")
        || lower.contains("at present")
}

pub fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The terms of a keyword query: lowercase, alphanumeric only (so no query syntax of any
/// full-text engine gets through), single characters dropped, at most 32.
pub fn keyword_terms(query: &str) -> Vec<String> {
    tokens(query)
        .filter(|t| t.chars().count() > 1)
        .take(32)
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_keywords() {
        assert_eq!(classify("Where does my team work?"), QueryKind::Question);
        assert_eq!(classify("remind me where we left off"), QueryKind::Question);
        assert_eq!(classify("location preferences"), QueryKind::Keywords);
        assert_eq!(classify("Bedrock pricing"), QueryKind::Keywords);
        assert_eq!(
            classify("I would like a summary of the APAC numbers"),
            QueryKind::Question
        );
    }

    #[test]
    fn questions_about_the_present() {
        assert!(asks_for_current_state("Where do I live now?"));
        assert!(asks_for_current_state("Who is my current employer?"));
        assert!(asks_for_current_state(
            "What city am I living in at the moment?"
        ));
        assert!(!asks_for_current_state("Where did I live before?"));
        assert!(!asks_for_current_state("knowledge of the nowness"));
    }

    #[test]
    fn keyword_terms_carry_no_search_syntax() {
        assert_eq!(
            keyword_terms("team \"NEAR\" Singapore* a"),
            ["team", "near", "singapore"]
        );
        assert!(keyword_terms("? !").is_empty());
    }
}

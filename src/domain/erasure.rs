//! Erasure by content: what `POST /memory/session/{id}/forget` removes, and the receipt it
//! gives back.

use serde::Serialize;
use utoipa::ToSchema;

/// What to forget: facts by id, and everything whose text contains `text`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForgetSelection {
    pub fact_ids: Vec<String>,
    /// Matched as a substring, without regard to case: erasure has to catch every copy, so a
    /// nearest-neighbour search, which ranks rather than matches, is not used.
    pub text: Option<String>,
}

impl ForgetSelection {
    /// Whether `haystack` holds the selection's text.
    pub fn mentioned_in(&self, haystack: &str) -> bool {
        self.text
            .as_deref()
            .is_some_and(|needle| contains_folded(haystack, needle))
    }
}

/// `needle` in `haystack`, both case-folded the same way (Unicode lowercase), so that SQLite and
/// Postgres, whose `LOWER` differ outside ASCII, find the same rows.
pub fn contains_folded(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// What a forget removed (or, on a dry run, would remove), by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ForgetReceipt {
    /// Facts removed: a mem0 session's facts, a cognee session's relationships.
    pub facts: Vec<String>,
    /// A cognee session's entities removed: named by the text, or left without a
    /// relationship.
    pub entities: Vec<String>,
    /// A cognee session's chunks (pieces of the turns) and summaries removed.
    pub chunks: Vec<String>,
    pub summaries: Vec<String>,
    /// Turns removed before they were ingested (pending or dead), or kept after it, whose
    /// messages held the text. Their receipts say `dropped`.
    pub turns: Vec<String>,
    /// History events whose old or new text was erased (the events themselves stay, so the
    /// history still says what happened and when).
    pub history_events_erased: u64,
    /// Requested fact ids the session does not have.
    pub not_found: Vec<String>,
}

impl ForgetReceipt {
    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
            && self.entities.is_empty()
            && self.chunks.is_empty()
            && self.summaries.is_empty()
            && self.turns.is_empty()
            && self.history_events_erased == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_matched_without_regard_to_case() {
        assert!(contains_folded(
            "Bob's e-mail is BOB@Example.com",
            "bob@example.COM"
        ));
        assert!(contains_folded("Straße in München", "MÜNCHEN"));
        assert!(!contains_folded("Bob lives in Berlin", "Paris"));
        assert!(!contains_folded("anything", ""));
        let selection = ForgetSelection {
            fact_ids: Vec::new(),
            text: Some("berlin".into()),
        };
        assert!(selection.mentioned_in("Bob lives in Berlin"));
        assert!(!ForgetSelection::default().mentioned_in("Bob lives in Berlin"));
    }
}

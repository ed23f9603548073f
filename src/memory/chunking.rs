//! A turn cut into chunks for the cognee engine's CHUNKS search: one message at a time,
//! prefixed by its role, split at sentence ends so that no chunk outgrows what an embedding
//! represents well.

use crate::domain::TurnMessage;

/// About 250 tokens of English.
pub const MAX_CHUNK_CHARS: usize = 1000;

pub fn chunk_turn(messages: &[TurnMessage], max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(16);
    let mut chunks = Vec::new();
    for message in messages {
        let text = message
            .content
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if text.is_empty() {
            continue;
        }
        let prefix = format!("{}: ", message.role);
        let room = max_chars.saturating_sub(prefix.chars().count()).max(8);
        let mut current = String::new();
        for piece in sentences(&text).flat_map(|s| split_long(s, room)) {
            let needed = piece.chars().count() + usize::from(!current.is_empty());
            if !current.is_empty() && current.chars().count() + needed > room {
                chunks.push(format!("{prefix}{current}"));
                current.clear();
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(&piece);
        }
        if !current.is_empty() {
            chunks.push(format!("{prefix}{current}"));
        }
    }
    chunks
}

/// Sentences with their closing punctuation.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut ends = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, (at, c)) in chars.iter().enumerate() {
        let closes = matches!(c, '.' | '!' | '?');
        let followed_by_space = chars.get(i + 1).is_none_or(|(_, n)| n.is_whitespace());
        if closes && followed_by_space {
            let end = at + c.len_utf8();
            ends.push((start, end));
            start = end;
        }
    }
    if start < text.len() {
        ends.push((start, text.len()));
    }
    ends.into_iter()
        .map(move |(s, e)| text[s..e].trim())
        .filter(|s| !s.is_empty())
}

/// A sentence longer than `room` cut at word boundaries (or inside a word that alone is
/// longer).
fn split_long(sentence: &str, room: usize) -> Vec<String> {
    if sentence.chars().count() <= room {
        return vec![sentence.to_string()];
    }
    let mut pieces = Vec::new();
    let mut current = String::new();
    for word in sentence.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > room {
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            pieces.push(word.drain(..room).collect());
        }
        let word: String = word.into_iter().collect();
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > room {
            pieces.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> TurnMessage {
        TurnMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn short_messages_are_one_chunk_each() {
        let chunks = chunk_turn(
            &[
                msg("user", "Alice works with Bob.  Bob lives\nin Lisbon."),
                msg("assistant", "Noted."),
                msg("user", "   "),
            ],
            MAX_CHUNK_CHARS,
        );
        assert_eq!(
            chunks,
            [
                "user: Alice works with Bob. Bob lives in Lisbon.",
                "assistant: Noted."
            ]
        );
    }

    #[test]
    fn long_messages_split_at_sentences_and_respect_the_cap() {
        let text = "One two three four. Five six seven eight. Nine ten eleven twelve.";
        let chunks = chunk_turn(&[msg("user", text)], 50);
        assert_eq!(
            chunks,
            [
                "user: One two three four. Five six seven eight.",
                "user: Nine ten eleven twelve."
            ]
        );
        let huge = "x".repeat(130);
        let chunks = chunk_turn(&[msg("user", &format!("a {huge} b"))], 50);
        assert!(chunks.iter().all(|c| c.chars().count() <= 50), "{chunks:?}");
        let joined: String = chunks
            .iter()
            .map(|c| c.trim_start_matches("user: "))
            .collect::<Vec<_>>()
            .join("");
        assert_eq!(joined.matches('x').count(), 130);
    }

    #[test]
    fn decimals_do_not_end_sentences() {
        let chunks = chunk_turn(&[msg("user", "Pi is 3.14 today. Yes.")], 24);
        assert_eq!(chunks, ["user: Pi is 3.14 today.", "user: Yes."]);
    }
}

//! Prompts of the internal calls. Their JSON contracts are fixed by the design: extraction
//! answers `{"facts": […]}`, memory updates answer `{"memory": [{id, text, event}]}`.

use serde_json::json;

use crate::domain::TurnMessage;

pub const EXTRACTION_SYSTEM: &str = r#"You extract durable facts about the user from a conversation, for a long-term memory.
Keep personal preferences, plans, projects, relationships, locations, and other details that will matter in later conversations.
Each fact is one short, self-contained sentence in the third person or as the user stated it. Skip greetings, questions, and anything only the assistant said.
Answer with a JSON object of the form {"facts": ["...", "..."]}. Answer {"facts": []} when there is nothing worth keeping."#;

pub const UPDATE_SYSTEM: &str = r#"You maintain a long-term memory of facts. You receive the existing facts (with ids) and newly extracted facts.
For each new fact decide one event:
- ADD: it is new information; use id "new".
- UPDATE: it refines or corrects an existing fact; give that fact's id and the merged text.
- DELETE: it contradicts or retracts an existing fact; give that fact's id.
- NONE: it is already known; give the matching fact's id.
Answer with a JSON object of the form {"memory": [{"id": "...", "text": "...", "event": "ADD|UPDATE|DELETE|NONE"}]}."#;

pub fn extraction_user(messages: &[TurnMessage]) -> String {
    messages
        .iter()
        .map(|m| format!("{}: {}", m.role, m.content.replace('\n', " ")))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn update_user(existing: &[(String, String)], new_facts: &[String]) -> String {
    json!({
        "existing": existing
            .iter()
            .map(|(id, text)| json!({"id": id, "text": text}))
            .collect::<Vec<_>>(),
        "new_facts": new_facts,
    })
    .to_string()
}

/// The cognee engine's extraction. Contract: `{"entities": [{"name", "type"}],
/// "relationships": [{"source", "relation", "target", "sentence"}]}`, where `source` and
/// `target` name entities of the list and `sentence` is the text the relationship came from.
pub const GRAPH_EXTRACTION_SYSTEM: &str = r#"You build a knowledge graph from a conversation, for a long-term memory.
List the entities the user talks about (people, places, organizations, projects, products, events, concepts), each with a short name and a type such as Person, Place, Organization, Project.
List the relationships between those entities that the conversation states, each with the source entity's name, a short relation in snake_case (for example works_with, lives_in, leads), the target entity's name, and the sentence of the conversation it comes from.
Skip greetings, questions, and anything only the assistant said.
Answer with a JSON object of the form {"entities": [{"name": "...", "type": "..."}], "relationships": [{"source": "...", "relation": "...", "target": "...", "sentence": "..."}]}."#;

/// The cognee engine's turn summary. Contract: `{"summary": "…"}`.
pub const SUMMARY_SYSTEM: &str = r#"You summarise a conversation for a long-term memory, in one to three sentences that keep names, places, dates and decisions.
Answer with a JSON object of the form {"summary": "..."}."#;

/// An answer over graph context (the search API's GRAPH_COMPLETION). Contract:
/// `{"answer": "…"}`.
pub const GRAPH_ANSWER_SYSTEM: &str = r#"You answer a question using only the context given, which comes from a knowledge graph (one relationship or passage per line).
If the context does not contain the answer, say that you don't know.
Answer with a JSON object of the form {"answer": "..."}."#;

pub fn graph_answer_user(context: &[String], question: &str) -> String {
    let mut prompt = String::from("Context:\n");
    for line in context {
        prompt.push_str("- ");
        prompt.push_str(&line.replace('\n', " "));
        prompt.push('\n');
    }
    prompt.push_str("\nQuestion: ");
    prompt.push_str(question);
    prompt
}

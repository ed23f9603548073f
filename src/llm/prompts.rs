//! Prompts of the internal calls. Their JSON contracts are fixed by the design: extraction
//! answers `{"facts": […]}`, memory updates answer `{"memory": [{id, text, event}]}`.

use serde_json::json;

use crate::memory::TurnMessage;

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

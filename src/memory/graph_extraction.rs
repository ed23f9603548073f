//! The cognee engine's extraction answer, checked and normalised into a graph. The contract
//! (see `prompts::GRAPH_EXTRACTION_SYSTEM`):
//!
//! ```json
//! {"entities": [{"name": "Alice", "type": "Person"}],
//!  "relationships": [{"source": "Alice", "relation": "works_with", "target": "Bob",
//!                     "sentence": "Alice works with Bob on the Q3 report."}]}
//! ```
//!
//! Entities are deduplicated by normalised name and type. A relationship naming an entity the
//! list lacks adds it (type `Entity`); one without both ends, or from an entity to itself, is
//! dropped. Model output is untrusted: every string is trimmed, folded onto one line and
//! capped.

use serde_json::Value;

const MAX_NAME_CHARS: usize = 200;
const MAX_TYPE_CHARS: usize = 64;
const MAX_RELATION_CHARS: usize = 64;
const MAX_SENTENCE_CHARS: usize = 500;
const DEFAULT_TYPE: &str = "Entity";
const DEFAULT_RELATION: &str = "related_to";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    /// `type:name`, both normalised: what makes two mentions the same node.
    pub key: String,
    pub name: String,
    pub entity_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relationship {
    pub source_key: String,
    /// snake_case, e.g. `works_with`.
    pub relation: String,
    pub target_key: String,
    pub sentence: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractedGraph {
    pub entities: Vec<Entity>,
    pub relationships: Vec<Relationship>,
}

impl ExtractedGraph {
    pub fn entity(&self, key: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.key == key)
    }

    /// "Alice works with Bob": how a relationship reads as a fact.
    pub fn render(&self, relationship: &Relationship) -> String {
        let name = |key: &str| {
            self.entity(key)
                .map_or(key, |e| e.name.as_str())
                .to_string()
        };
        render_triplet(
            &name(&relationship.source_key),
            &relationship.relation,
            &name(&relationship.target_key),
        )
    }
}

pub fn render_triplet(source: &str, relation: &str, target: &str) -> String {
    format!("{source} {} {target}", relation.replace('_', " "))
}

pub fn parse(answer: &Value) -> ExtractedGraph {
    let mut graph = ExtractedGraph::default();
    for e in answer["entities"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str().map(|n| clean(n, MAX_NAME_CHARS)) else {
            continue;
        };
        add_entity(&mut graph, &name, e["type"].as_str());
    }
    for r in answer["relationships"].as_array().into_iter().flatten() {
        let end = |field: &str| {
            r[field]
                .as_str()
                .map(|n| clean(n, MAX_NAME_CHARS))
                .filter(|n| !name_key(n).is_empty())
        };
        let (Some(source), Some(target)) = (end("source"), end("target")) else {
            continue;
        };
        let source_key = key_for_name(&mut graph, &source);
        let target_key = key_for_name(&mut graph, &target);
        if source_key == target_key {
            continue;
        }
        let relation = relation_name(r["relation"].as_str().unwrap_or_default());
        let relationship = Relationship {
            source_key,
            relation,
            target_key,
            sentence: String::new(),
        };
        let sentence = r["sentence"]
            .as_str()
            .map(|s| clean(s, MAX_SENTENCE_CHARS))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| graph.render(&relationship));
        let relationship = Relationship {
            sentence,
            ..relationship
        };
        let duplicate = graph.relationships.iter_mut().find(|known| {
            known.source_key == relationship.source_key
                && known.relation == relationship.relation
                && known.target_key == relationship.target_key
        });
        match duplicate {
            Some(known) => known.sentence = relationship.sentence,
            None => graph.relationships.push(relationship),
        }
    }
    graph
}

fn add_entity(graph: &mut ExtractedGraph, name: &str, entity_type: Option<&str>) -> String {
    let entity_type = entity_type
        .map(|t| clean(t, MAX_TYPE_CHARS))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| DEFAULT_TYPE.to_string());
    let key = format!("{}:{}", name_key(&entity_type), name_key(name));
    if name_key(name).is_empty() {
        return key;
    }
    if graph.entity(&key).is_none() {
        graph.entities.push(Entity {
            key: key.clone(),
            name: name.to_string(),
            entity_type,
        });
    }
    key
}

/// The entity a relationship means by `name`: the first listed with that normalised name,
/// or a new one.
fn key_for_name(graph: &mut ExtractedGraph, name: &str) -> String {
    let wanted = name_key(name);
    match graph
        .entities
        .iter()
        .find(|e| e.key.split_once(':').map(|(_, n)| n) == Some(wanted.as_str()))
    {
        Some(e) => e.key.clone(),
        None => add_entity(graph, name, None),
    }
}

/// Lowercase words of letters and digits, one space apart: "Project  Phoenix!" and
/// "project phoenix" are the same name.
pub fn name_key(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

fn relation_name(text: &str) -> String {
    let words = name_key(text).replace(' ', "_");
    let capped: String = words.chars().take(MAX_RELATION_CHARS).collect();
    let capped = capped.trim_matches('_').to_string();
    if capped.is_empty() {
        DEFAULT_RELATION.to_string()
    } else {
        capped
    }
}

/// One line, trimmed, at most `max` characters.
fn clean(text: &str, max: usize) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entities_are_deduplicated_by_name_and_type() {
        let g = parse(&json!({
            "entities": [
                {"name": "Alice", "type": "Person"},
                {"name": " alice ", "type": "person"},
                {"name": "Alice", "type": "Company"},
                {"name": "", "type": "Person"}
            ],
            "relationships": []
        }));
        let keys: Vec<&str> = g.entities.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["person:alice", "company:alice"]);
    }

    #[test]
    fn relationships_are_normalised_and_complete_the_entity_list() {
        let g = parse(&json!({
            "entities": [{"name": "Alice", "type": "Person"}],
            "relationships": [
                {"source": "alice", "relation": "Works With", "target": "Bob", "sentence": "Alice works\nwith Bob."},
                {"source": "Alice", "relation": "works_with", "target": "Bob", "sentence": "Alice and Bob pair daily."},
                {"source": "Alice", "relation": "knows", "target": "ALICE"},
                {"source": "Alice", "relation": "likes"},
                {"source": "Bob", "relation": "", "target": "Lisbon"}
            ]
        }));
        assert_eq!(g.entities.len(), 3, "{:?}", g.entities);
        assert_eq!(g.entity("entity:bob").map(|e| e.name.as_str()), Some("Bob"));
        assert_eq!(g.relationships.len(), 2, "{:?}", g.relationships);
        let first = &g.relationships[0];
        assert_eq!(first.source_key, "person:alice");
        assert_eq!(first.relation, "works_with");
        assert_eq!(first.sentence, "Alice and Bob pair daily.");
        assert_eq!(g.render(first), "Alice works with Bob");
        assert_eq!(g.relationships[1].relation, "related_to");
        assert_eq!(g.relationships[1].sentence, "Bob related to Lisbon");
    }

    #[test]
    fn garbage_gives_an_empty_graph() {
        assert_eq!(parse(&json!("nope")), ExtractedGraph::default());
        assert_eq!(
            parse(&json!({"entities": [1, null, {"name": 3}], "relationships": {"a": 1}})),
            ExtractedGraph::default()
        );
    }
}

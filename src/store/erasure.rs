//! Erasure by content, the same on both backends: a session's facts, graph items, history texts
//! and turns that match go in one transaction. Matching is done here, in Rust, rather than with
//! SQL `LIKE`: the two dialects fold case differently outside ASCII, and a turn's text sits in
//! a JSON document, where escapes would hide it from a pattern.

use std::collections::HashSet;

use crate::domain::erasure::{ForgetReceipt, ForgetSelection};
use crate::domain::outbox::{TurnOutcome, TurnPayload};
use crate::domain::{now_ms, Session};
use crate::error::StoreError;
use crate::store::facts::{record_history, HistoryEntry};
use crate::store::graph_items::insert_purge;
use crate::store::sessions::lock_live_session;
use crate::store::sql::{self, erased, params, Conn, Dialect, Param, SqlRow, SqlStore};
use crate::store::ErasureStore;

/// What a forgotten turn's receipt says.
pub const FORGOTTEN: &str = "forgotten: its text matched an erasure request";

impl<D: Dialect> ErasureStore for SqlStore<D> {
    async fn forget(
        &self,
        session: &Session,
        selection: &ForgetSelection,
        purge_graph: bool,
        dry_run: bool,
    ) -> Result<ForgetReceipt, StoreError> {
        let now = now_ms();
        let _in_order = self.fact_writes_in_order().await;
        let mut tx = D::begin_write(&self.pool).await?;
        lock_live_session::<D>(&mut tx, session).await?;
        let mut receipt = ForgetReceipt::default();
        let mut requested: HashSet<&str> = selection.fact_ids.iter().map(String::as_str).collect();
        forget_turns::<D>(&mut tx, session, selection, now, &mut receipt).await?;
        let removed_facts =
            forget_facts::<D>(&mut tx, session, selection, &mut requested, &mut receipt).await?;
        let graph =
            forget_graph_items::<D>(&mut tx, session, selection, &mut requested, &mut receipt)
                .await?;
        for fact_id in &receipt.facts {
            let entry = HistoryEntry {
                fact_id,
                event: "DELETE",
                old_text: None,
                new_text: None,
                redacted: false,
            };
            record_history::<D>(&mut tx, session, entry, "forget", now).await?;
        }
        receipt.history_events_erased =
            erase_history_texts::<D>(&mut tx, session, selection, &receipt.facts).await?;
        receipt.not_found = selection
            .fact_ids
            .iter()
            .filter(|id| requested.contains(id.as_str()))
            .cloned()
            .collect();
        if dry_run {
            tx.rollback().await?;
            return Ok(receipt);
        }
        if removed_facts > 0 {
            D::facts_written(
                &mut tx,
                &session.org_id,
                session.id,
                -(removed_facts as i64),
            )
            .await?;
        }
        if purge_graph && !(graph.edges.is_empty() && graph.entity_keys.is_empty()) {
            insert_purge::<D>(
                &mut tx,
                &session.org_id,
                &session.graph_scope(),
                Some(&graph.edges),
                Some(&graph.entity_keys),
            )
            .await?;
        }
        tx.commit().await?;
        if removed_facts > 0 {
            self.dialect.facts_committed(session.id, None);
        }
        if !receipt.is_empty() {
            erased::<D>(&self.pool).await;
        }
        Ok(receipt)
    }
}

/// The session's turns whose messages hold the text, whatever their state: a pending or dead
/// one would bring the text back when ingested, a done one still holds it until purged. A
/// turn being ingested this moment cannot be stopped, so the erasure is refused until it is
/// done.
async fn forget_turns<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    selection: &ForgetSelection,
    now: i64,
    receipt: &mut ForgetReceipt,
) -> Result<(), StoreError> {
    if selection.text.is_none() {
        return Ok(());
    }
    let rows = D::fetch_all(
        conn,
        "SELECT id, idempotency_key, payload, state, lease_until FROM outbox
         WHERE org_id = $1 AND session_id = $2 ORDER BY id",
        params![&session.org_id, session.id],
    )
    .await?;
    let mut ids = Vec::new();
    for row in &rows {
        let payload: TurnPayload = row.json("payload")?;
        if !payload
            .messages
            .iter()
            .any(|m| selection.mentioned_in(&m.content))
        {
            continue;
        }
        let being_ingested = row.text("state")? == "pending"
            && row.opt_int("lease_until")?.is_some_and(|until| until > now);
        if being_ingested {
            return Err(StoreError::Busy(
                "a turn that holds the text is being ingested right now; try again in a few seconds"
                    .into(),
            ));
        }
        ids.push(row.int("id")?);
        receipt.turns.push(row.text("idempotency_key")?);
    }
    if ids.is_empty() {
        return Ok(());
    }
    let outcome = sql::json(&TurnOutcome::Dropped {
        reason: FORGOTTEN.to_string(),
    })?;
    for (row_id, turn_id) in ids.iter().zip(&receipt.turns) {
        D::execute(
            conn,
            "DELETE FROM outbox WHERE id = $1 AND org_id = $2",
            params![*row_id, &session.org_id],
        )
        .await?;
        let mut values = params![turn_id.as_str(), &session.org_id, &session.memory_id];
        values.extend([outcome.clone(), Param::Int(now)]);
        // A receipt already written (the turn was ingested) is replaced: it named facts
        // that are now gone, or about to be.
        D::execute(
            conn,
            "DELETE FROM turn_receipts WHERE turn_id = $1 AND org_id = $2",
            params![turn_id.as_str(), &session.org_id],
        )
        .await?;
        D::execute(
            conn,
            "INSERT INTO turn_receipts (turn_id, org_id, memory_id, outcome, settled_at)
             VALUES ($1, $2, $3, $4, $5)",
            values,
        )
        .await?;
    }
    Ok(())
}

/// A mem0 session's facts named or holding the text; how many went.
async fn forget_facts<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    selection: &ForgetSelection,
    requested: &mut HashSet<&str>,
    receipt: &mut ForgetReceipt,
) -> Result<u64, StoreError> {
    let rows = D::fetch_all(
        conn,
        "SELECT id, text FROM facts WHERE org_id = $1 AND session_id = $2
         ORDER BY created_at, id",
        params![&session.org_id, session.id],
    )
    .await?;
    let mut doomed = Vec::new();
    for row in &rows {
        let (id, text) = (row.text("id")?, row.text("text")?);
        let named = requested.remove(id.as_str());
        if named || selection.mentioned_in(&text) {
            doomed.push(id);
        }
    }
    delete_by_id::<D>(conn, session, "facts", &doomed).await?;
    receipt.facts.extend(doomed.iter().cloned());
    Ok(doomed.len() as u64)
}

/// What the graph server has to drop after a cognee session's forget.
#[derive(Default)]
struct GraphRemoval {
    edges: Vec<String>,
    entity_keys: Vec<String>,
}

/// A cognee session's items named or holding the text, with the relationships of every entity
/// that goes and the entities left without a relationship.
async fn forget_graph_items<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    selection: &ForgetSelection,
    requested: &mut HashSet<&str>,
    receipt: &mut ForgetReceipt,
) -> Result<GraphRemoval, StoreError> {
    let rows = D::fetch_all(
        conn,
        "SELECT id, kind, text, entity_key, source_key, target_key, sentence FROM graph_items
         WHERE org_id = $1 AND session_id = $2 ORDER BY created_at, id",
        params![&session.org_id, session.id],
    )
    .await?;
    struct Item {
        id: String,
        kind: String,
        entity_key: Option<String>,
        ends: [Option<String>; 2],
        doomed: bool,
    }
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let id = row.text("id")?;
        let text = row.text("text")?;
        let sentence = row.opt_text("sentence")?.unwrap_or_default();
        let named = requested.remove(id.as_str());
        items.push(Item {
            doomed: named || selection.mentioned_in(&text) || selection.mentioned_in(&sentence),
            kind: row.text("kind")?,
            entity_key: row.opt_text("entity_key")?,
            ends: [row.opt_text("source_key")?, row.opt_text("target_key")?],
            id,
        });
    }
    // An entity that goes takes its relationships with it.
    let gone_keys: HashSet<String> = items
        .iter()
        .filter(|i| i.doomed && i.kind == "entity")
        .filter_map(|i| i.entity_key.clone())
        .collect();
    for item in items.iter_mut().filter(|i| i.kind == "edge") {
        if item.ends.iter().flatten().any(|k| gone_keys.contains(k)) {
            item.doomed = true;
        }
    }
    // An entity no relationship joins any more goes too, as when one relationship is deleted.
    let joined: HashSet<&String> = items
        .iter()
        .filter(|i| i.kind == "edge" && !i.doomed)
        .flat_map(|i| i.ends.iter().flatten())
        .collect();
    let left_by_doomed: HashSet<&String> = items
        .iter()
        .filter(|i| i.kind == "edge" && i.doomed)
        .flat_map(|i| i.ends.iter().flatten())
        .collect();
    let mut orphaned = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(key) = item.entity_key.as_ref().filter(|_| item.kind == "entity") else {
            continue;
        };
        if !item.doomed && left_by_doomed.contains(key) && !joined.contains(key) {
            orphaned.push(index);
        }
    }
    for index in orphaned {
        items[index].doomed = true;
    }
    let mut removal = GraphRemoval::default();
    let mut doomed = Vec::new();
    for item in items.into_iter().filter(|i| i.doomed) {
        match item.kind.as_str() {
            "edge" => {
                removal.edges.push(item.id.clone());
                receipt.facts.push(item.id.clone());
            }
            "entity" => {
                removal.entity_keys.extend(item.entity_key.clone());
                receipt.entities.push(item.id.clone());
            }
            "chunk" => receipt.chunks.push(item.id.clone()),
            _ => receipt.summaries.push(item.id.clone()),
        }
        doomed.push(item.id);
    }
    delete_by_id::<D>(conn, session, "graph_items", &doomed).await?;
    Ok(removal)
}

/// Deletes rows of the session's `table` by id, in batches the parameter limits allow.
async fn delete_by_id<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    table: &str,
    ids: &[String],
) -> Result<(), StoreError> {
    for batch in ids.chunks(500) {
        let (listed, bound_ids) = D::any_of("id", 3, batch);
        let sql = format!("DELETE FROM {table} WHERE org_id = $1 AND session_id = $2 AND {listed}");
        let mut bound = params![&session.org_id, session.id];
        bound.extend(bound_ids);
        D::execute(conn, &sql, bound).await?;
    }
    Ok(())
}

/// Erases the texts of the history of every forgotten fact, and of any event whose text holds
/// the selection's text (a fact since reworded, or deleted). How many events lost their text.
async fn erase_history_texts<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    selection: &ForgetSelection,
    forgotten: &[String],
) -> Result<u64, StoreError> {
    let rows = D::fetch_all(
        conn,
        "SELECT id, fact_id, old_text, new_text FROM fact_history
         WHERE org_id = $1 AND session_id = $2
           AND (old_text IS NOT NULL OR new_text IS NOT NULL)",
        params![&session.org_id, session.id],
    )
    .await?;
    let forgotten: HashSet<&str> = forgotten.iter().map(String::as_str).collect();
    let mut erased = 0;
    for row in &rows {
        let fact_id = row.text("fact_id")?;
        let texts = [row.opt_text("old_text")?, row.opt_text("new_text")?];
        let holds = texts.iter().flatten().any(|t| selection.mentioned_in(t));
        if !(holds || forgotten.contains(fact_id.as_str())) {
            continue;
        }
        D::execute(
            conn,
            "UPDATE fact_history SET old_text = NULL, new_text = NULL
             WHERE id = $1 AND org_id = $2",
            params![row.int("id")?, &session.org_id],
        )
        .await?;
        erased += 1;
    }
    Ok(erased)
}

//! The cognee engine's rows, the same on both backends; nearest-item search is the
//! dialect's.

use std::time::Duration;

use crate::domain::graph::{
    GraphItem, GraphItemVector, GraphKind, GraphPurge, GraphPurgeCounts, NewGraphItem,
    ScoredGraphItem,
};
use crate::domain::{now_ms, Session};
use crate::error::StoreError;
use crate::store::facts::{record_history, HistoryEntry};
use crate::store::sessions::lock_live_session;
use crate::store::sql::{self, params, Conn, Dialect, Param, SqlRow, SqlStore, GRAPH_ITEM_COLUMNS};
use crate::store::GraphItemStore;

/// Chunks and summaries never change; an entity or edge seen again takes the latest wording
/// and sentence (and stays in its own org and session, whatever its id).
fn on_conflict(kind: GraphKind) -> &'static str {
    match kind {
        GraphKind::Chunk | GraphKind::Summary => "DO NOTHING",
        GraphKind::Entity | GraphKind::Edge => {
            "DO UPDATE SET text = excluded.text, entity_type = excluded.entity_type,
                relation = excluded.relation, sentence = excluded.sentence,
                embedding = excluded.embedding, updated_at = excluded.updated_at
             WHERE graph_items.org_id = excluded.org_id
               AND graph_items.session_id = excluded.session_id"
        }
    }
}

/// A row with its vector.
pub(crate) fn graph_item_vector(row: &impl SqlRow) -> Result<GraphItemVector, StoreError> {
    Ok(GraphItemVector {
        item: sql::graph_item(row)?,
        embedding: row.vector("embedding")?,
    })
}

impl<D: Dialect> SqlStore<D> {
    /// The session's items whose `column` is among `values` (of `kind`, when given): the
    /// `columns` of each, read by `row`.
    async fn items_where<T>(
        &self,
        session: &Session,
        (column, values): (&str, &[String]),
        kind: Option<GraphKind>,
        columns: &str,
        row: impl Fn(&D::Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let (matches, listed) = D::any_of(column, 4, values);
        let sql = format!(
            "SELECT {columns} FROM graph_items
             WHERE org_id = $1 AND session_id = $2 AND (CAST($3 AS TEXT) IS NULL OR kind = $3)
               AND {matches}"
        );
        let mut bound = params![&session.org_id, session.id, kind.map(GraphKind::as_str)];
        bound.extend(listed);
        let rows = self.fetch_all(&sql, bound).await?;
        rows.iter().map(row).collect()
    }

    /// The session's items whose `column` is among `values` (of `kind`, when given), with
    /// their vectors.
    async fn items_with_vectors(
        &self,
        session: &Session,
        column: &str,
        values: &[String],
        kind: Option<GraphKind>,
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        let columns = format!("{GRAPH_ITEM_COLUMNS}, embedding");
        self.items_where(session, (column, values), kind, &columns, graph_item_vector)
            .await
    }
}

impl<D: Dialect> GraphItemStore for SqlStore<D> {
    async fn write_graph_items(
        &self,
        session: &Session,
        items: &[NewGraphItem],
        redacted: bool,
    ) -> Result<Vec<bool>, StoreError> {
        let now = now_ms();
        let mut tx = D::begin_write(&self.pool).await?;
        lock_live_session::<D>(&mut tx, session).await?;
        let mut fresh = Vec::with_capacity(items.len());
        for item in items {
            // By id alone: an id another session holds is not this one's to write (the
            // upsert leaves it alone), so it is not new either.
            let existed = D::fetch_optional(
                &mut tx,
                "SELECT org_id, session_id, text FROM graph_items WHERE id = $1",
                params![&item.id],
            )
            .await?;
            let previous = match &existed {
                Some(row)
                    if row.text("org_id")? == session.org_id
                        && row.int("session_id")? == session.id =>
                {
                    Some(Some(row.text("text")?))
                }
                Some(_) => None,
                None => Some(None),
            };
            let sql = format!(
                "INSERT INTO graph_items (id, org_id, session_id, kind, text, entity_key,
                     entity_type, source_key, relation, target_key, sentence, embedding,
                     created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
                 ON CONFLICT (id) {}",
                on_conflict(item.kind)
            );
            let mut values = params![
                &item.id,
                &session.org_id,
                session.id,
                item.kind.as_str(),
                &item.text,
                &item.entity_key,
                &item.entity_type,
                &item.source_key,
                &item.relation,
                &item.target_key,
                &item.sentence
            ];
            values.extend([Param::Vector(&item.embedding), Param::Int(now)]);
            D::execute(&mut tx, &sql, values).await?;
            // A relationship is a cognee session's fact: it has a history like a mem0 fact.
            if item.kind == GraphKind::Edge {
                let entry = match &previous {
                    Some(None) => Some(HistoryEntry {
                        fact_id: &item.id,
                        event: "ADD",
                        old_text: None,
                        new_text: Some(&item.text),
                        redacted,
                    }),
                    Some(Some(old)) if *old != item.text => Some(HistoryEntry {
                        fact_id: &item.id,
                        event: "UPDATE",
                        old_text: Some(old),
                        new_text: Some(&item.text),
                        redacted,
                    }),
                    _ => None,
                };
                if let Some(entry) = entry {
                    record_history::<D>(&mut tx, session, entry, "ingest", now).await?;
                }
            }
            fresh.push(existed.is_none());
        }
        tx.commit().await?;
        Ok(fresh)
    }

    async fn nearest_graph_items(
        &self,
        session: &Session,
        kinds: &[GraphKind],
        query: &[f32],
        k: usize,
    ) -> Result<Vec<ScoredGraphItem>, StoreError> {
        if kinds.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let kinds: Vec<String> = kinds.iter().map(|k| k.as_str().to_string()).collect();
        D::nearest_graph_items(self, session, &kinds, query, k).await
    }

    async fn graph_items_by_id(
        &self,
        session: &Session,
        ids: &[String],
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        self.items_with_vectors(session, "id", ids, None).await
    }

    async fn graph_entities(
        &self,
        session: &Session,
        keys: &[String],
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        self.items_with_vectors(session, "entity_key", keys, Some(GraphKind::Entity))
            .await
    }

    async fn graph_entities_named(
        &self,
        session: &Session,
        keys: &[String],
    ) -> Result<Vec<GraphItem>, StoreError> {
        let entities = ("entity_key", keys);
        self.items_where(
            session,
            entities,
            Some(GraphKind::Entity),
            GRAPH_ITEM_COLUMNS,
            sql::graph_item,
        )
        .await
    }

    async fn graph_edges_touching(
        &self,
        session: &Session,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<GraphItem>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (from, from_keys) = D::any_of("source_key", 4, keys);
        let (to, to_keys) = D::any_of("target_key", 4 + from_keys.len(), keys);
        let sql = format!(
            "SELECT {GRAPH_ITEM_COLUMNS} FROM graph_items
             WHERE org_id = $1 AND session_id = $2 AND kind = 'edge' AND ({from} OR {to})
             ORDER BY created_at LIMIT $3"
        );
        let mut bound = params![&session.org_id, session.id, limit as i64];
        bound.extend(from_keys);
        bound.extend(to_keys);
        let rows = self.fetch_all(&sql, bound).await?;
        rows.iter().map(sql::graph_item).collect()
    }

    async fn list_graph_items(
        &self,
        session: &Session,
        kind: GraphKind,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<GraphItem>, i64), StoreError> {
        self.page(
            &format!(
                "SELECT {GRAPH_ITEM_COLUMNS} FROM graph_items
                 WHERE org_id = $1 AND session_id = $2 AND kind = $3
                 ORDER BY created_at, id LIMIT $4 OFFSET $5"
            ),
            params![&session.org_id, session.id, kind.as_str(), limit, offset],
            "SELECT COUNT(*) AS n FROM graph_items WHERE org_id = $1 AND session_id = $2 AND kind = $3",
            params![&session.org_id, session.id, kind.as_str()],
            sql::graph_item,
        )
        .await
    }

    async fn delete_graph_edge(
        &self,
        session: &Session,
        edge_id: &str,
        purge_graph: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = D::begin_write(&self.pool).await?;
        // Serialised with the session's writers, so an ingest cannot re-attach an entity
        // between the orphan check and the delete.
        match lock_live_session::<D>(&mut tx, session).await {
            Err(StoreError::SessionGone(_)) => return Ok(false),
            other => other?,
        }
        let Some(endpoints) = D::fetch_optional(
            &mut tx,
            "DELETE FROM graph_items
             WHERE id = $1 AND org_id = $2 AND session_id = $3 AND kind = 'edge'
             RETURNING source_key, target_key, text",
            params![edge_id, &session.org_id, session.id],
        )
        .await?
        else {
            return Ok(false);
        };
        let old_text = endpoints.text("text")?;
        let entry = HistoryEntry {
            fact_id: edge_id,
            event: "DELETE",
            old_text: Some(&old_text),
            new_text: None,
            redacted: false,
        };
        record_history::<D>(&mut tx, session, entry, "api", now_ms()).await?;
        let keys: Vec<String> = [
            endpoints.opt_text("source_key")?,
            endpoints.opt_text("target_key")?,
        ]
        .into_iter()
        .flatten()
        .collect();
        let (listed, key_params) = D::any_of("entity_key", 3, &keys);
        let orphans = if keys.is_empty() {
            Vec::new()
        } else {
            let sql = format!(
                "DELETE FROM graph_items
                 WHERE org_id = $1 AND session_id = $2 AND kind = 'entity' AND {listed}
                   AND NOT EXISTS (SELECT 1 FROM graph_items e
                                   WHERE e.org_id = $1 AND e.session_id = $2 AND e.kind = 'edge'
                                     AND (e.source_key = graph_items.entity_key
                                          OR e.target_key = graph_items.entity_key))
                 RETURNING entity_key"
            );
            let mut bound = params![&session.org_id, session.id];
            bound.extend(key_params);
            let rows = D::fetch_all(&mut tx, &sql, bound).await?;
            rows.iter()
                .map(|r| r.text("entity_key"))
                .collect::<Result<Vec<_>, _>>()?
        };
        if purge_graph {
            let scope = session.graph_scope();
            let edges = [edge_id.to_string()];
            insert_purge::<D>(
                &mut tx,
                &session.org_id,
                &scope,
                Some(&edges),
                Some(&orphans),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn enqueue_graph_purge(
        &self,
        org_id: &str,
        scope: &str,
        edge_ids: Option<&[String]>,
        entity_keys: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let mut tx = D::begin_write(&self.pool).await?;
        insert_purge::<D>(&mut tx, org_id, scope, edge_ids, entity_keys).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_graph_purges(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<GraphPurge>, StoreError> {
        let now = now_ms();
        let rows = self
            .fetch_all(
                D::CLAIM_GRAPH_PURGES,
                params![now, limit as i64, now + lease.as_millis() as i64],
            )
            .await?;
        let mut purges = rows
            .iter()
            .map(|r| {
                Ok(GraphPurge {
                    id: r.int("id")?,
                    org_id: r.text("org_id")?,
                    scope: r.text("scope")?,
                    edge_ids: r.json("edge_ids")?,
                    entity_keys: r.json("entity_keys")?,
                    attempts: r.int("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        purges.sort_by_key(|p| p.id);
        Ok(purges)
    }

    async fn complete_graph_purge(&self, id: i64) -> Result<(), StoreError> {
        self.execute("DELETE FROM graph_purges WHERE id = $1", params![id])
            .await?;
        Ok(())
    }

    async fn fail_graph_purge(
        &self,
        id: i64,
        error: &str,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE graph_purges SET lease_until = NULL, last_error = $1, next_attempt_at = $2
             WHERE id = $3",
            params![error, retry_at, id],
        )
        .await?;
        Ok(())
    }

    async fn graph_purge_counts(&self) -> Result<GraphPurgeCounts, StoreError> {
        let row = self
            .fetch_one(
                "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM graph_purges",
                Vec::new(),
            )
            .await?;
        Ok(GraphPurgeCounts {
            pending: row.int("n")?,
            oldest_ms: row.opt_int("oldest")?,
        })
    }
}

/// Queues a graph purge inside the caller's transaction, so that it commits with the
/// deletion it completes.
pub(crate) async fn insert_purge<D: Dialect>(
    conn: &mut Conn<D>,
    org_id: &str,
    scope: &str,
    edge_ids: Option<&[String]>,
    entity_keys: Option<&[String]>,
) -> Result<(), StoreError> {
    let mut values = params![org_id, scope];
    values.extend([sql::json(&edge_ids)?, sql::json(&entity_keys)?]);
    values.push(now_ms().into());
    D::execute(
        conn,
        "INSERT INTO graph_purges (org_id, scope, edge_ids, entity_keys, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
        values,
    )
    .await?;
    Ok(())
}

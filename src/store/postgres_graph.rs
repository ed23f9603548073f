//! The cognee engine's rows on Postgres + pgvector. A session's items are few next to the
//! table, so they are searched exactly: the session's rows by btree, then distances.

use std::time::Duration;

use pgvector::Vector;
use sqlx::types::Json;
use sqlx::{FromRow, Postgres, Row, Transaction};

use super::graph_items::{
    GraphItem, GraphItemVector, GraphKind, GraphPurge, GraphPurgeCounts, NewGraphItem,
    ScoredGraphItem,
};
use super::postgres::{lock_live_session, storable, storable_json, storable_keys, PostgresStore};
use crate::error::StoreError;
use crate::memory::{now_ms, Session};

const ITEM_COLUMNS: &str = "id, kind, text, entity_key, entity_type, source_key, relation, \
                            target_key, sentence, created_at, updated_at";

fn kind_names(kinds: &[GraphKind]) -> Vec<String> {
    kinds.iter().map(|k| k.as_str().to_string()).collect()
}

fn with_vector(row: &sqlx::postgres::PgRow) -> Result<GraphItemVector, StoreError> {
    let embedding: Vector = row.try_get("embedding")?;
    Ok(GraphItemVector {
        item: GraphItem::from_row(row)?,
        embedding: embedding.to_vec(),
    })
}

impl PostgresStore {
    pub async fn write_graph_items(
        &self,
        session: &Session,
        items: &[NewGraphItem],
    ) -> Result<Vec<bool>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        lock_live_session(&mut tx, session).await?;
        let mut fresh = Vec::with_capacity(items.len());
        for item in items {
            // Chunks and summaries never change; an entity or edge seen again takes the
            // latest wording and sentence. `xmax = 0` tells an insert from an update.
            let on_conflict = match item.kind {
                GraphKind::Chunk | GraphKind::Summary => {
                    "DO UPDATE SET updated_at = graph_items.updated_at"
                }
                GraphKind::Entity | GraphKind::Edge => {
                    "DO UPDATE SET text = EXCLUDED.text, entity_type = EXCLUDED.entity_type,
                        relation = EXCLUDED.relation, sentence = EXCLUDED.sentence,
                        embedding = EXCLUDED.embedding, updated_at = EXCLUDED.updated_at"
                }
            };
            let inserted: Option<bool> = sqlx::query_scalar(&format!(
                "INSERT INTO graph_items (id, org_id, session_id, kind, text, entity_key,
                     entity_type, source_key, relation, target_key, sentence, embedding,
                     created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
                 ON CONFLICT (id) {on_conflict}
                 WHERE graph_items.org_id = EXCLUDED.org_id
                   AND graph_items.session_id = EXCLUDED.session_id
                 RETURNING (xmax = 0)"
            ))
            .bind(storable(&item.id))
            .bind(&session.org_id)
            .bind(session.id)
            .bind(item.kind.as_str())
            .bind(storable(&item.text))
            .bind(item.entity_key.as_deref().map(storable))
            .bind(item.entity_type.as_deref().map(storable))
            .bind(item.source_key.as_deref().map(storable))
            .bind(item.relation.as_deref().map(storable))
            .bind(item.target_key.as_deref().map(storable))
            .bind(item.sentence.as_deref().map(storable))
            .bind(Vector::from(item.embedding.clone()))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            fresh.push(inserted.unwrap_or(false));
        }
        tx.commit().await?;
        Ok(fresh)
    }

    pub async fn nearest_graph_items(
        &self,
        session: &Session,
        kinds: &[GraphKind],
        query: &[f32],
        k: usize,
    ) -> Result<Vec<ScoredGraphItem>, StoreError> {
        if kinds.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        // MATERIALIZED: the session's rows first, as for small fact sessions.
        let rows = sqlx::query(&format!(
            "WITH own AS MATERIALIZED (
                 SELECT {ITEM_COLUMNS}, embedding FROM graph_items
                 WHERE org_id = $2 AND session_id = $3 AND kind = ANY($4))
             SELECT {ITEM_COLUMNS}, (1 - (embedding <=> $1))::real AS similarity
             FROM own ORDER BY embedding <=> $1 LIMIT $5"
        ))
        .bind(Vector::from(query.to_vec()))
        .bind(&session.org_id)
        .bind(session.id)
        .bind(kind_names(kinds))
        .bind(k as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ScoredGraphItem {
                    item: GraphItem::from_row(row)?,
                    similarity: row.try_get::<Option<f32>, _>("similarity")?.unwrap_or(0.0),
                })
            })
            .collect()
    }

    pub async fn graph_items_by_id(
        &self,
        session: &Session,
        ids: &[String],
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = storable_keys(ids);
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS}, embedding FROM graph_items
             WHERE org_id = $1 AND session_id = $2 AND id = ANY($3)"
        ))
        .bind(&session.org_id)
        .bind(session.id)
        .bind(ids.as_ref())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(with_vector).collect()
    }

    pub async fn graph_entities(
        &self,
        session: &Session,
        keys: &[String],
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = storable_keys(keys);
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS}, embedding FROM graph_items
             WHERE org_id = $1 AND session_id = $2 AND kind = 'entity' AND entity_key = ANY($3)"
        ))
        .bind(&session.org_id)
        .bind(session.id)
        .bind(keys.as_ref())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(with_vector).collect()
    }

    pub async fn graph_edges_touching(
        &self,
        session: &Session,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<GraphItem>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = storable_keys(keys);
        Ok(sqlx::query_as::<_, GraphItem>(&format!(
            "SELECT {ITEM_COLUMNS} FROM graph_items
             WHERE org_id = $1 AND session_id = $2 AND kind = 'edge'
               AND (source_key = ANY($3) OR target_key = ANY($3))
             ORDER BY created_at LIMIT $4"
        ))
        .bind(&session.org_id)
        .bind(session.id)
        .bind(keys.as_ref())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn list_graph_items(
        &self,
        session: &Session,
        kind: GraphKind,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<GraphItem>, i64), StoreError> {
        let items = sqlx::query_as::<_, GraphItem>(&format!(
            "SELECT {ITEM_COLUMNS} FROM graph_items
             WHERE org_id = $1 AND session_id = $2 AND kind = $3
             ORDER BY created_at, id LIMIT $4 OFFSET $5"
        ))
        .bind(&session.org_id)
        .bind(session.id)
        .bind(kind.as_str())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM graph_items WHERE org_id = $1 AND session_id = $2 AND kind = $3",
        )
        .bind(&session.org_id)
        .bind(session.id)
        .bind(kind.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok((items, total))
    }

    pub async fn delete_graph_edge(
        &self,
        session: &Session,
        edge_id: &str,
        purge_graph: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Serialised with the session's writers, so an ingest cannot re-attach an entity
        // between the orphan check and the delete.
        match lock_live_session(&mut tx, session).await {
            Err(StoreError::SessionGone(_)) => return Ok(false),
            other => other?,
        }
        let endpoints: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "DELETE FROM graph_items
             WHERE id = $1 AND org_id = $2 AND session_id = $3 AND kind = 'edge'
             RETURNING source_key, target_key",
        )
        .bind(storable(edge_id))
        .bind(&session.org_id)
        .bind(session.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((source, target)) = endpoints else {
            return Ok(false);
        };
        let keys: Vec<String> = [source, target].into_iter().flatten().collect();
        let orphans: Vec<String> = sqlx::query_scalar(
            "DELETE FROM graph_items n
             WHERE n.org_id = $1 AND n.session_id = $2 AND n.kind = 'entity'
               AND n.entity_key = ANY($3)
               AND NOT EXISTS (SELECT 1 FROM graph_items e
                               WHERE e.org_id = $1 AND e.session_id = $2 AND e.kind = 'edge'
                                 AND (e.source_key = n.entity_key OR e.target_key = n.entity_key))
             RETURNING n.entity_key",
        )
        .bind(&session.org_id)
        .bind(session.id)
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await?;
        if purge_graph {
            insert_purge(
                &mut tx,
                &session.org_id,
                &session.graph_scope(),
                Some(&[edge_id.to_string()]),
                Some(&orphans),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn enqueue_graph_purge(
        &self,
        org_id: &str,
        scope: &str,
        edge_ids: Option<&[String]>,
        entity_keys: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_purge(&mut tx, org_id, scope, edge_ids, entity_keys).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn claim_graph_purges(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<GraphPurge>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE graph_purges SET lease_until = $1, attempts = attempts + 1
             WHERE id IN (
                 SELECT id FROM graph_purges
                 WHERE next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until < $2)
                 ORDER BY id LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             RETURNING id, org_id, scope, edge_ids, entity_keys, attempts",
        )
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut purges = rows
            .iter()
            .map(|r| {
                let edge_ids: Option<Json<Vec<String>>> = r.try_get("edge_ids")?;
                let entity_keys: Option<Json<Vec<String>>> = r.try_get("entity_keys")?;
                Ok(GraphPurge {
                    id: r.try_get("id")?,
                    org_id: r.try_get("org_id")?,
                    scope: r.try_get("scope")?,
                    edge_ids: edge_ids.map(|j| j.0),
                    entity_keys: entity_keys.map(|j| j.0),
                    attempts: i64::from(r.try_get::<i32, _>("attempts")?),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        purges.sort_by_key(|p| p.id);
        Ok(purges)
    }

    pub async fn complete_graph_purge(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM graph_purges WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn fail_graph_purge(
        &self,
        id: i64,
        error: &str,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE graph_purges SET lease_until = NULL, last_error = $1, next_attempt_at = $2
             WHERE id = $3",
        )
        .bind(storable(error))
        .bind(retry_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn graph_purge_counts(&self) -> Result<GraphPurgeCounts, StoreError> {
        let (pending, oldest_ms): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM graph_purges")
                .fetch_one(&self.pool)
                .await?;
        Ok(GraphPurgeCounts { pending, oldest_ms })
    }
}

/// Queues a graph purge inside the caller's transaction, so that it commits with the
/// deletion it completes.
pub(super) async fn insert_purge(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    scope: &str,
    edge_ids: Option<&[String]>,
    entity_keys: Option<&[String]>,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO graph_purges (org_id, scope, edge_ids, entity_keys, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(org_id)
    .bind(scope)
    .bind(edge_ids.map(storable_json).transpose()?)
    .bind(entity_keys.map(storable_json).transpose()?)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

//! The cognee engine's rows on the embedded store. Vectors are searched exactly in Rust, as
//! the facts are; edges join entities by key, which makes these tables the graph itself when
//! no Bolt server is configured.

use std::time::Duration;

use sqlx::{FromRow, QueryBuilder, Row, Sqlite};

use super::graph_items::{
    GraphItem, GraphItemVector, GraphKind, GraphPurge, GraphPurgeCounts, NewGraphItem,
    ScoredGraphItem,
};
use super::sqlite::{ensure_live_session, SqliteStore, WRITE_TRANSACTION};
use crate::error::StoreError;
use crate::memory::{now_ms, vector, Session};

const ITEM_COLUMNS: &str = "id, kind, text, entity_key, entity_type, source_key, relation, \
                            target_key, sentence, created_at, updated_at";

impl SqliteStore {
    pub async fn write_graph_items(
        &self,
        session: &Session,
        items: &[NewGraphItem],
    ) -> Result<Vec<bool>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin_with(WRITE_TRANSACTION).await?;
        ensure_live_session(&mut tx, session).await?;
        let mut fresh = Vec::with_capacity(items.len());
        for item in items {
            let existed: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM graph_items WHERE id = ? AND org_id = ? AND session_id = ?",
            )
            .bind(&item.id)
            .bind(&session.org_id)
            .bind(session.id)
            .fetch_optional(&mut *tx)
            .await?;
            // Chunks and summaries never change; an entity or edge seen again takes the
            // latest wording and sentence.
            let on_conflict = match item.kind {
                GraphKind::Chunk | GraphKind::Summary => "DO NOTHING",
                GraphKind::Entity | GraphKind::Edge => {
                    "DO UPDATE SET text = excluded.text, entity_type = excluded.entity_type,
                        relation = excluded.relation, sentence = excluded.sentence,
                        embedding = excluded.embedding, updated_at = excluded.updated_at
                     WHERE graph_items.org_id = excluded.org_id
                       AND graph_items.session_id = excluded.session_id"
                }
            };
            sqlx::query(&format!(
                "INSERT INTO graph_items (id, org_id, session_id, kind, text, entity_key,
                     entity_type, source_key, relation, target_key, sentence, embedding,
                     created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) {on_conflict}"
            ))
            .bind(&item.id)
            .bind(&session.org_id)
            .bind(session.id)
            .bind(item.kind.as_str())
            .bind(&item.text)
            .bind(&item.entity_key)
            .bind(&item.entity_type)
            .bind(&item.source_key)
            .bind(&item.relation)
            .bind(&item.target_key)
            .bind(&item.sentence)
            .bind(vector::encode(&item.embedding))
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            fresh.push(existed.is_none());
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
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {ITEM_COLUMNS}, embedding FROM graph_items WHERE org_id = "
        ));
        sql.push_bind(&session.org_id)
            .push(" AND session_id = ")
            .push_bind(session.id)
            .push(" AND kind IN (");
        let mut list = sql.separated(", ");
        for kind in kinds {
            list.push_bind(kind.as_str());
        }
        sql.push(")");
        let rows = sql.build().fetch_all(&self.pool).await?;
        let mut scored = Vec::with_capacity(rows.len());
        for row in &rows {
            let blob: Vec<u8> = row.try_get("embedding")?;
            let embedding = vector::decode(&blob)
                .ok_or_else(|| StoreError::Corrupt("graph item vector".into()))?;
            scored.push(ScoredGraphItem {
                item: GraphItem::from_row(row)?,
                similarity: vector::cosine(query, &embedding),
            });
        }
        scored.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        scored.truncate(k);
        Ok(scored)
    }

    pub async fn graph_items_by_id(
        &self,
        session: &Session,
        ids: &[String],
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        self.items_with_vectors(session, "id", ids, None).await
    }

    pub async fn graph_entities(
        &self,
        session: &Session,
        keys: &[String],
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        self.items_with_vectors(session, "entity_key", keys, Some(GraphKind::Entity))
            .await
    }

    async fn items_with_vectors(
        &self,
        session: &Session,
        column: &'static str,
        values: &[String],
        kind: Option<GraphKind>,
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {ITEM_COLUMNS}, embedding FROM graph_items WHERE org_id = "
        ));
        sql.push_bind(&session.org_id)
            .push(" AND session_id = ")
            .push_bind(session.id);
        if let Some(kind) = kind {
            sql.push(" AND kind = ").push_bind(kind.as_str());
        }
        sql.push(format!(" AND {column} IN ("));
        let mut list = sql.separated(", ");
        for value in values {
            list.push_bind(value);
        }
        sql.push(")");
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let blob: Vec<u8> = row.try_get("embedding")?;
                Ok(GraphItemVector {
                    item: GraphItem::from_row(row)?,
                    embedding: vector::decode(&blob)
                        .ok_or_else(|| StoreError::Corrupt("graph item vector".into()))?,
                })
            })
            .collect()
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
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {ITEM_COLUMNS} FROM graph_items WHERE kind = 'edge' AND org_id = "
        ));
        sql.push_bind(&session.org_id)
            .push(" AND session_id = ")
            .push_bind(session.id)
            .push(" AND (source_key IN (");
        let mut list = sql.separated(", ");
        for key in keys {
            list.push_bind(key);
        }
        sql.push(") OR target_key IN (");
        let mut list = sql.separated(", ");
        for key in keys {
            list.push_bind(key);
        }
        sql.push(")) ORDER BY created_at LIMIT ")
            .push_bind(limit as i64);
        Ok(sql
            .build_query_as::<GraphItem>()
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
             WHERE org_id = ? AND session_id = ? AND kind = ?
             ORDER BY created_at, id LIMIT ? OFFSET ?"
        ))
        .bind(&session.org_id)
        .bind(session.id)
        .bind(kind.as_str())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM graph_items WHERE org_id = ? AND session_id = ? AND kind = ?",
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
        let mut tx = self.pool.begin_with(WRITE_TRANSACTION).await?;
        let endpoints: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "DELETE FROM graph_items
             WHERE id = ? AND org_id = ? AND session_id = ? AND kind = 'edge'
             RETURNING source_key, target_key",
        )
        .bind(edge_id)
        .bind(&session.org_id)
        .bind(session.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((source, target)) = endpoints else {
            return Ok(false);
        };
        let mut orphans = Vec::new();
        for key in [source, target].into_iter().flatten() {
            if orphans.contains(&key) {
                continue;
            }
            let gone = sqlx::query(
                "DELETE FROM graph_items
                 WHERE org_id = ?1 AND session_id = ?2 AND kind = 'entity' AND entity_key = ?3
                   AND NOT EXISTS (SELECT 1 FROM graph_items e
                                   WHERE e.org_id = ?1 AND e.session_id = ?2 AND e.kind = 'edge'
                                     AND (e.source_key = ?3 OR e.target_key = ?3))",
            )
            .bind(&session.org_id)
            .bind(session.id)
            .bind(&key)
            .execute(&mut *tx)
            .await?;
            if gone.rows_affected() > 0 {
                orphans.push(key);
            }
        }
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
        let mut tx = self.pool.begin_with(WRITE_TRANSACTION).await?;
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
            "UPDATE graph_purges SET lease_until = ?, attempts = attempts + 1
             WHERE id IN (
                 SELECT id FROM graph_purges
                 WHERE next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)
                 ORDER BY id LIMIT ?)
             RETURNING id, org_id, scope, edge_ids, entity_keys, attempts",
        )
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let list = |text: Option<String>| -> Result<Option<Vec<String>>, StoreError> {
            text.map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| StoreError::Corrupt(format!("graph purge list: {e}")))
            })
            .transpose()
        };
        let mut purges = rows
            .iter()
            .map(|r| {
                Ok(GraphPurge {
                    id: r.try_get("id")?,
                    org_id: r.try_get("org_id")?,
                    scope: r.try_get("scope")?,
                    edge_ids: list(r.try_get("edge_ids")?)?,
                    entity_keys: list(r.try_get("entity_keys")?)?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        purges.sort_by_key(|p| p.id);
        Ok(purges)
    }

    pub async fn complete_graph_purge(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM graph_purges WHERE id = ?")
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
            "UPDATE graph_purges SET lease_until = NULL, last_error = ?, next_attempt_at = ?
             WHERE id = ?",
        )
        .bind(error)
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
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    org_id: &str,
    scope: &str,
    edge_ids: Option<&[String]>,
    entity_keys: Option<&[String]>,
) -> Result<(), StoreError> {
    let json = |xs: Option<&[String]>| xs.map(|xs| serde_json::json!(xs).to_string());
    let now = now_ms();
    sqlx::query(
        "INSERT INTO graph_purges (org_id, scope, edge_ids, entity_keys, next_attempt_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(org_id)
    .bind(scope)
    .bind(json(edge_ids))
    .bind(json(entity_keys))
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

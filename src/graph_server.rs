//! The cognee engine's graph on a Bolt server (Neo4j 5 in production; ArcadeDB in tests).
//! Entities are `(:Entity {org_id, scope, key, name, type})` nodes and relationships
//! `[:RELATES {id, org_id, scope, relation, sentence}]` edges. Every statement is anchored on
//! `org_id` and the session's scope, and the Cypher keeps to the portable subset (MATCH,
//! MERGE, SET, DELETE, DETACH DELETE, UNWIND, parameters): no APOC, no procedures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use neo4rs::{query, ConfigBuilder, Graph, Query};

use crate::config::GraphConfig;
use crate::error::GraphError;

/// An entity as the graph server stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphNode {
    pub key: String,
    pub name: String,
    pub entity_type: String,
}

/// A relationship as the graph server stores it, between entity keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphEdge {
    pub id: String,
    pub source_key: String,
    pub relation: String,
    pub target_key: String,
    pub sentence: String,
}

#[derive(Clone)]
pub struct BoltGraph {
    graph: Graph,
    timeout: Duration,
    /// The lookup index has been created, or the server told us it will not have it.
    schema_settled: Arc<AtomicBool>,
}

impl std::fmt::Debug for BoltGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoltGraph")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn server(e: neo4rs::Error) -> GraphError {
    GraphError::Server(e.to_string())
}

impl BoltGraph {
    /// Builds the client. Connections are opened on first use, so memgate starts (and serves
    /// every other engine) while the graph server is down.
    pub async fn new(url: &str, config: &GraphConfig) -> Result<Self, GraphError> {
        let bolt = ConfigBuilder::default()
            .uri(url)
            .user(config.user.clone().unwrap_or_else(|| "neo4j".into()))
            .password(
                config
                    .password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            )
            .db(config.database.as_str())
            .max_connections(config.max_connections.max(1))
            .fetch_size(500)
            .build()
            .map_err(server)?;
        let graph = Graph::connect(bolt).await.map_err(server)?;
        Ok(Self {
            graph,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            schema_settled: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Creates the index every statement looks entities up by (Neo4j 5 syntax), once. A
    /// server that refuses it (ArcadeDB creates its types on the fly and has no such
    /// statement) is left as it is; one that cannot be reached is asked again next time.
    async fn ensure_schema(&self) {
        if self.schema_settled.load(Ordering::Relaxed) {
            return;
        }
        let statement = query(
            "CREATE INDEX memgate_entity_scope IF NOT EXISTS
             FOR (n:Entity) ON (n.org_id, n.scope, n.key)",
        );
        let outcome = tokio::time::timeout(self.timeout, self.graph.run(statement)).await;
        match outcome {
            Ok(Ok(())) => self.schema_settled.store(true, Ordering::Relaxed),
            Ok(Err(neo4rs::Error::Neo4j(e))) => {
                tracing::info!(error = %e.message(), "the graph server keeps no index on entities; lookups scan");
                self.schema_settled.store(true, Ordering::Relaxed);
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "entity index not created yet"),
            Err(_) => tracing::debug!("entity index not created yet: timed out"),
        }
    }

    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, GraphError>>,
    ) -> Result<T, GraphError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| GraphError::Timeout(self.timeout.as_millis() as u64))?
    }

    /// Runs `statements` in one explicit transaction, within the statement limit.
    async fn in_transaction(
        &self,
        statements: impl IntoIterator<Item = Query>,
    ) -> Result<(), GraphError> {
        self.bounded(async {
            let mut txn = self.graph.start_txn().await.map_err(server)?;
            for statement in statements {
                txn.run(statement).await.map_err(server)?;
            }
            txn.commit().await.map_err(server)
        })
        .await
    }

    /// Merges entities and edges in one transaction. Idempotent: nodes are keyed by
    /// (org, scope, key) and edges by their id.
    pub async fn merge(
        &self,
        org_id: &str,
        scope: &str,
        nodes: &[GraphNode],
        edges: &[GraphEdge],
    ) -> Result<(), GraphError> {
        if nodes.is_empty() && edges.is_empty() {
            return Ok(());
        }
        self.ensure_schema().await;
        let node_maps: Vec<HashMap<String, String>> = nodes
            .iter()
            .map(|n| {
                HashMap::from([
                    ("key".to_string(), n.key.clone()),
                    ("name".to_string(), n.name.clone()),
                    ("type".to_string(), n.entity_type.clone()),
                ])
            })
            .collect();
        let edge_maps: Vec<HashMap<String, String>> = edges
            .iter()
            .map(|e| {
                HashMap::from([
                    ("id".to_string(), e.id.clone()),
                    ("source".to_string(), e.source_key.clone()),
                    ("target".to_string(), e.target_key.clone()),
                    ("relation".to_string(), e.relation.clone()),
                    ("sentence".to_string(), e.sentence.clone()),
                ])
            })
            .collect();
        let statements = [
            scoped(
                "UNWIND $entities AS e
                 MERGE (n:Entity {org_id: $org, scope: $scope, key: e.key})
                 SET n.name = e.name, n.type = e.type",
                org_id,
                scope,
            )
            .param("entities", node_maps),
            scoped(
                "UNWIND $edges AS r
                 MATCH (a:Entity {org_id: $org, scope: $scope, key: r.source})
                 MATCH (b:Entity {org_id: $org, scope: $scope, key: r.target})
                 MERGE (a)-[x:RELATES {id: r.id}]->(b)
                 SET x.org_id = $org, x.scope = $scope, x.relation = r.relation,
                     x.sentence = r.sentence",
                org_id,
                scope,
            )
            .param("edges", edge_maps),
        ];
        self.in_transaction(statements).await
    }

    /// Edges from or to any of `keys` (at most `limit`), as (edge id, source key, target key).
    pub async fn edges_touching(
        &self,
        org_id: &str,
        scope: &str,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<(String, String, String)>, GraphError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let statement = scoped(
            "MATCH (s:Entity {org_id: $org, scope: $scope})-[r:RELATES]->(t:Entity)
             WHERE (s.key IN $keys OR t.key IN $keys)
               AND t.org_id = $org AND t.scope = $scope AND r.org_id = $org
             RETURN r.id AS id, s.key AS source_key, t.key AS target_key
             LIMIT $limit",
            org_id,
            scope,
        )
        .param("keys", keys.to_vec())
        .param("limit", limit as i64);
        self.bounded(async {
            let mut rows = self.graph.execute(statement).await.map_err(server)?;
            let mut edges = Vec::new();
            while let Some(row) = rows.next().await.map_err(server)? {
                let get = |column: &str| {
                    row.get::<String>(column)
                        .map_err(|e| GraphError::Decode(format!("{column}: {e}")))
                };
                edges.push((get("id")?, get("source_key")?, get("target_key")?));
            }
            Ok(edges)
        })
        .await
    }

    /// Deletes what the server holds of a scope: everything, or the edges named and then the
    /// entities named (those the deletion left without an edge).
    pub async fn purge(
        &self,
        org_id: &str,
        scope: &str,
        edge_ids: Option<&[String]>,
        entity_keys: Option<&[String]>,
    ) -> Result<(), GraphError> {
        let statements = match (edge_ids, entity_keys) {
            (None, None) => vec![scoped(
                "MATCH (n:Entity {org_id: $org, scope: $scope}) DETACH DELETE n",
                org_id,
                scope,
            )],
            (edges, entities) => {
                let mut statements = Vec::new();
                if let Some(ids) = edges.filter(|ids| !ids.is_empty()) {
                    statements.push(
                        scoped(
                            "MATCH (s:Entity {org_id: $org, scope: $scope})-[r:RELATES]->()
                             WHERE r.id IN $ids
                             DELETE r",
                            org_id,
                            scope,
                        )
                        .param("ids", ids.to_vec()),
                    );
                }
                if let Some(keys) = entities.filter(|keys| !keys.is_empty()) {
                    statements.push(
                        scoped(
                            "MATCH (n:Entity {org_id: $org, scope: $scope})
                             WHERE n.key IN $keys
                             DETACH DELETE n",
                            org_id,
                            scope,
                        )
                        .param("keys", keys.to_vec()),
                    );
                }
                statements
            }
        };
        if statements.is_empty() {
            return Ok(());
        }
        self.in_transaction(statements).await
    }
}

fn scoped(cypher: &str, org_id: &str, scope: &str) -> Query {
    query(cypher).param("org", org_id).param("scope", scope)
}

//! What the store records about itself: the embedding model its vectors come from.

use crate::error::StoreError;
use crate::store::sql::{params, Dialect, SqlRow, SqlStore};

impl<D: Dialect> SqlStore<D> {
    /// Records the embedding model on first start and refuses to run against vectors of
    /// another one afterwards: distances between them mean nothing.
    pub async fn check_embeddings(&self, model: &str, dimensions: usize) -> Result<(), StoreError> {
        let mut tx = D::begin_write(&self.pool).await?;
        D::lock_meta(&mut tx).await?;
        let stored = D::fetch_all(
            &mut tx,
            "SELECT key, value FROM memgate_meta
             WHERE key IN ('embedding_dimensions', 'embedding_model')",
            Vec::new(),
        )
        .await?;
        let mut stored_dimensions = None;
        let mut stored_model = None;
        for row in &stored {
            match row.text("key")?.as_str() {
                "embedding_dimensions" => stored_dimensions = Some(row.text("value")?),
                _ => stored_model = Some(row.text("value")?),
            }
        }
        match (stored_dimensions, stored_model) {
            (None, _) => {
                D::fix_dimensions(&mut tx, dimensions).await?;
                let dimensions = dimensions.to_string();
                D::execute(
                    &mut tx,
                    "INSERT INTO memgate_meta (key, value) VALUES
                        ('embedding_dimensions', $1), ('embedding_model', $2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![&dimensions, model],
                )
                .await?;
            }
            (Some(d), Some(m)) if d == dimensions.to_string() && m == model => {}
            (Some(d), m) => {
                return Err(StoreError::EmbeddingsChanged(format!(
                    "the store holds {d}-dimensional embeddings of `{}`, but the config asks for {dimensions} of `{model}`; \
                     vectors of two models cannot be compared. Keep embeddings.model and embeddings.dimensions, \
                     or start on {} (stored facts would have to be re-embedded)",
                    m.unwrap_or_default(),
                    D::NEW_STORE
                )))
            }
        }
        D::index_vectors(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

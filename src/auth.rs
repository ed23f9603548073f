//! Caller key → (org, role). Keys are looked up by their SHA-256, so the plain key is never
//! kept once loaded and no comparison runs over secret bytes.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{AuthConfig, ConfigError, KeyEntry, Role};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub org: String,
    pub role: Role,
}

#[derive(Debug, Default)]
pub struct KeyRing {
    by_digest: HashMap<[u8; 32], Principal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

impl KeyRing {
    pub fn from_config(auth: &AuthConfig) -> Result<Self, ConfigError> {
        let mut ring = Self::default();
        for entry in &auth.keys {
            ring.insert(entry)?;
        }
        if let Some(path) = &auth.keys_file {
            for (i, entry) in read_keys_file(path)?.iter().enumerate() {
                entry.validate().map_err(|reason| ConfigError::Invalid {
                    path: format!("{}: keys[{i}]", path.display()),
                    reason,
                })?;
                ring.insert(entry)?;
            }
        }
        Ok(ring)
    }

    fn insert(&mut self, entry: &KeyEntry) -> Result<(), ConfigError> {
        let digest = match (&entry.key, &entry.key_sha256) {
            (Some(plain), _) => digest_of(plain.expose()),
            (None, Some(hex_digest)) => {
                let bytes = hex::decode(hex_digest).map_err(|e| ConfigError::Invalid {
                    path: "auth.keys.key_sha256".into(),
                    reason: e.to_string(),
                })?;
                bytes.try_into().map_err(|_| ConfigError::Invalid {
                    path: "auth.keys.key_sha256".into(),
                    reason: "must be 32 bytes".into(),
                })?
            }
            (None, None) => {
                return Err(ConfigError::Invalid {
                    path: "auth.keys".into(),
                    reason: "needs `key` or `key_sha256`".into(),
                })
            }
        };
        self.by_digest.insert(
            digest,
            Principal {
                org: entry.org.clone(),
                role: entry.role,
            },
        );
        Ok(())
    }

    pub fn resolve(&self, key: &str) -> Option<&Principal> {
        self.by_digest.get(&digest_of(key))
    }

    /// Resolves an `Authorization` header value of the form `Bearer <key>`.
    pub fn resolve_authorization(&self, header: Option<&[u8]>) -> Option<&Principal> {
        let value = std::str::from_utf8(header?).ok()?;
        let (scheme, key) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let key = key.trim();
        if key.is_empty() {
            return None;
        }
        self.resolve(key)
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

fn read_keys_file(path: &Path) -> Result<Vec<KeyEntry>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: KeysFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    Ok(file.keys)
}

pub fn digest_of(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn ring() -> KeyRing {
        KeyRing::from_config(&AuthConfig {
            keys_file: None,
            keys: vec![
                KeyEntry {
                    key: Some(Secret::new("sk-plain")),
                    key_sha256: None,
                    org: "acme".into(),
                    role: Role::Admin,
                },
                KeyEntry {
                    key: None,
                    key_sha256: Some(hex::encode(digest_of("sk-hashed"))),
                    org: "globex".into(),
                    role: Role::Member,
                },
            ],
        })
        .unwrap()
    }

    #[test]
    fn plain_and_hashed_keys_resolve() {
        let r = ring();
        assert_eq!(r.resolve("sk-plain").unwrap().org, "acme");
        assert_eq!(r.resolve("sk-hashed").unwrap().role, Role::Member);
        assert!(r.resolve("sk-other").is_none());
    }

    #[test]
    fn authorization_header_forms() {
        let r = ring();
        assert!(r.resolve_authorization(Some(b"Bearer sk-plain")).is_some());
        assert!(r
            .resolve_authorization(Some(b"bearer  sk-plain "))
            .is_some());
        assert!(r.resolve_authorization(Some(b"Basic sk-plain")).is_none());
        assert!(r.resolve_authorization(Some(b"Bearer")).is_none());
        assert!(r.resolve_authorization(Some(b"Bearer ")).is_none());
        assert!(r.resolve_authorization(None).is_none());
    }

    #[test]
    fn keys_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(
            &path,
            "[[keys]]\nkey = \"sk-file\"\norg = \"initech\"\nrole = \"member\"\n",
        )
        .unwrap();
        let r = KeyRing::from_config(&AuthConfig {
            keys_file: Some(path),
            keys: vec![],
        })
        .unwrap();
        assert_eq!(r.resolve("sk-file").unwrap().org, "initech");
    }
}

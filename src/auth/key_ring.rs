//! The static keys of the config and `auth.keys_file`. Keys are looked up by their SHA-256, so
//! the plain key is never kept once loaded, and digests compare in constant time.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{KeyDigest, Principal};
use crate::config::{AuthConfig, ConfigError, KeyEntry};

#[derive(Debug, Default)]
pub struct KeyRing {
    by_digest: HashMap<KeyDigest, Principal>,
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
            (Some(plain), _) => KeyDigest::of(plain.expose()),
            (None, Some(hex_digest)) => {
                let bytes = hex::decode(hex_digest).map_err(|e| ConfigError::Invalid {
                    path: "auth.keys.key_sha256".into(),
                    reason: e.to_string(),
                })?;
                let bytes: [u8; 32] = bytes.try_into().map_err(|_| ConfigError::Invalid {
                    path: "auth.keys.key_sha256".into(),
                    reason: "must be 32 bytes".into(),
                })?;
                KeyDigest(bytes)
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

    pub fn resolve(&self, digest: &KeyDigest) -> Option<&Principal> {
        self.by_digest.get(digest)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::bearer_key;
    use crate::domain::Role;
    use crate::secret::Secret;

    fn resolve<'a>(ring: &'a KeyRing, key: &str) -> Option<&'a Principal> {
        ring.resolve(&KeyDigest::of(key))
    }

    fn ring() -> KeyRing {
        KeyRing::from_config(&AuthConfig {
            keys: vec![
                KeyEntry {
                    key: Some(Secret::new("sk-plain")),
                    key_sha256: None,
                    org: "acme".into(),
                    role: Role::Admin,
                },
                KeyEntry {
                    key: None,
                    key_sha256: Some(hex::encode(KeyDigest::of("sk-hashed").0)),
                    org: "globex".into(),
                    role: Role::Member,
                },
            ],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn plain_and_hashed_keys_resolve() {
        let r = ring();
        assert_eq!(resolve(&r, "sk-plain").unwrap().org, "acme");
        assert_eq!(resolve(&r, "sk-hashed").unwrap().role, Role::Member);
        assert!(resolve(&r, "sk-other").is_none());
    }

    #[test]
    fn authorization_header_forms() {
        let r = ring();
        let via = |h: &[u8]| bearer_key(Some(h)).and_then(|k| resolve(&r, k).cloned());
        assert!(via(b"Bearer sk-plain").is_some());
        assert!(via(b"bearer  sk-plain ").is_some());
        assert!(via(b"Basic sk-plain").is_none());
        assert!(via(b"Bearer").is_none());
        assert!(via(b"Bearer ").is_none());
        assert!(bearer_key(None).is_none());
    }

    #[test]
    fn an_api_key_header_counts_when_there_is_no_authorization() {
        use crate::auth::caller_key;
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = http::HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, http::HeaderValue::from_static(value));
            }
            map
        };
        assert_eq!(
            caller_key(&headers(&[("x-api-key", " sk-plain ")])),
            Some("sk-plain")
        );
        assert_eq!(
            caller_key(&headers(&[
                ("authorization", "Bearer sk-a"),
                ("x-api-key", "sk-b")
            ])),
            Some("sk-a"),
            "the bearer key wins"
        );
        assert_eq!(
            caller_key(&headers(&[
                ("authorization", "Basic x"),
                ("x-api-key", "sk-b")
            ])),
            None,
            "an unusable Authorization is not made up for"
        );
        assert_eq!(caller_key(&headers(&[("x-api-key", "")])), None);
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
            ..Default::default()
        })
        .unwrap();
        assert_eq!(resolve(&r, "sk-file").unwrap().org, "initech");
    }
}

//! Content-addressed cache keys: sha256 over the parent step's key and
//! everything that decides a step's result, each field length-prefixed so
//! that no two different inputs give the same stream.

use sha2::{Digest as _, Sha256};

#[derive(Clone)]
pub struct CacheKey {
    hasher: Sha256,
}

impl CacheKey {
    /// A key chained to `parent` (empty for the first step of a stage).
    pub fn new(kind: &str, parent: &str) -> CacheKey {
        let mut k = CacheKey {
            hasher: Sha256::new(),
        };
        k.field(berth_store::cache_document::KEY_SCHEME);
        k.field(kind);
        k.field(parent);
        k
    }

    pub fn field(&mut self, value: &str) -> &mut Self {
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value.as_bytes());
        self
    }

    /// The key as 64 hex digits.
    pub fn finish(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_delimited() {
        let a = CacheKey::new("RUN", "p").field("ab").field("c").finish();
        let b = CacheKey::new("RUN", "p").field("a").field("bc").finish();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let c = CacheKey::new("RUN", "p").field("ab").field("c").finish();
        assert_eq!(a, c);
    }
}

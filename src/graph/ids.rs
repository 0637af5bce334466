//! Dense agent ids.
//!
//! Ids are assigned in a canonical order of the agent names, not in order of
//! appearance, so the same set of agents always maps to the same ids and every
//! downstream sum has the same order whatever the input order. The order is
//! shorter names first, then bytewise: numeric ids (most public data sets)
//! then keep their numeric order, and with it the locality real graphs have in
//! their numbering. Plain bytewise order would interleave 1, 10, 100, … and
//! turn the iteration's gathers into cache misses (2.1× slower on cnr-2000).

use rustc_hash::FxHashMap;

/// Bijection between agent names and dense `u32` ids `0..n`, ids in
/// (length, bytes) order of the names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentIndex {
    names: Vec<String>,
    /// Fx hashing: ids are looked up once per log row, and SipHash's
    /// DoS resistance buys nothing for ids we only index.
    ids: FxHashMap<String, u32>,
}

impl AgentIndex {
    /// Builds the index from any collection of names (duplicates allowed).
    pub fn from_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        names.sort_unstable_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        names.dedup();
        let ids = names
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        AgentIndex { names, ids }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_canonical_order_not_input_order() {
        let a = AgentIndex::from_names(["carol", "alice", "bob", "alice"]);
        let b = AgentIndex::from_names(["bob", "carol", "alice"]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.id("bob"), Some(0));
        assert_eq!(a.id("alice"), Some(1));
        assert_eq!(a.name(2), "carol");
        assert_eq!(a.id("dave"), None);
        let n = AgentIndex::from_names(["100", "2", "10", "1"]);
        assert_eq!(n.names(), &["1", "2", "10", "100"]);
    }
}

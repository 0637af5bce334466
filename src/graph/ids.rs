//! Dense agent ids.
//!
//! Ids are assigned in lexicographic order of the agent name, not in order of
//! appearance, so the same set of agents always maps to the same ids and every
//! downstream sum has the same order whatever the input order.

use std::collections::HashMap;

/// Bijection between agent names and dense `u32` ids `0..n`, ids sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentIndex {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl AgentIndex {
    /// Builds the index from any collection of names (duplicates allowed).
    pub fn from_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        names.sort_unstable();
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
    fn ids_follow_name_order_not_input_order() {
        let a = AgentIndex::from_names(["carol", "alice", "bob", "alice"]);
        let b = AgentIndex::from_names(["bob", "carol", "alice"]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.id("alice"), Some(0));
        assert_eq!(a.id("carol"), Some(2));
        assert_eq!(a.name(1), "bob");
        assert_eq!(a.id("dave"), None);
    }
}

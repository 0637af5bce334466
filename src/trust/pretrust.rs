//! Pre-trust distributions p.

use crate::error::{Error, Result};
use crate::graph::AgentIndex;

/// Uniform over all n agents (the default when no pre-trusted set is given).
pub fn uniform(n: usize) -> Vec<f64> {
    vec![1.0 / n as f64; n]
}

/// Uniform over the named agents. Every name must be a known agent: a typo in
/// a pre-trusted list would otherwise silently move all pre-trust elsewhere.
/// Callers that read the names from a file add it with
/// [`crate::error::ResultExt::with_path`].
pub fn from_set<S: AsRef<str>>(agents: &AgentIndex, names: &[S]) -> Result<Vec<f64>> {
    let mut p = vec![0.0; agents.len()];
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let name = name.as_ref();
        match agents.id(name) {
            Some(id) => ids.push(id),
            None => {
                return Err(Error::invalid(format!(
                    "pre-trusted agent `{name}` does not appear in the logs"
                )))
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(Error::invalid("no pre-trusted agents listed"));
    }
    let share = 1.0 / ids.len() as f64;
    for id in ids {
        p[id as usize] = share;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ResultExt;

    #[test]
    fn set_is_uniform_and_rejects_unknown() {
        let a = AgentIndex::from_names(["a", "b", "c", "d"]);
        assert_eq!(
            from_set(&a, &["d", "b", "b"]).unwrap(),
            vec![0.0, 0.5, 0.0, 0.5]
        );
        let e = from_set(&a, &["zed"])
            .with_path("pre.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pre.txt") && e.contains("zed"), "{e}");
        assert!(from_set::<&str>(&a, &[]).is_err());
    }
}

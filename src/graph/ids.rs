//! Dense agent ids.
//!
//! Ids are assigned in a canonical order of the agent names, not in order of
//! appearance, so the same set of agents always maps to the same ids and every
//! downstream sum has the same order whatever the input order. The order is
//! shorter names first, then bytewise: numeric ids (most public data sets)
//! then keep their numeric order, and with it the locality real graphs have in
//! their numbering. Plain bytewise order would interleave 1, 10, 100, … and
//! turn the iteration's gathers into cache misses (2.1× slower on cnr-2000).

use crate::error::{Error, Result};

/// Hash map keyed by names: foldhash, whose low bits stay well mixed for
/// short, similar strings (Fx hashing left them nearly constant).
pub(crate) type NameMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// Bijection between agent names and dense `u32` ids `0..n`, ids in
/// (length, bytes) order of the names.
///
/// Memory: the names live once, concatenated in id order, and the hash table
/// holds ids only (its keys are read from the arena). Separate `String`s, in
/// a list and again as map keys, took ~140 bytes per agent (730 MB for the
/// 5.2M agents of a 100M-row log); this takes ~20 plus the names' bytes.
#[derive(Clone, Default)]
pub struct AgentIndex {
    names: Arena,
    /// Ids, hashed by their names with [`NAME_HASH`]: ids are looked up once
    /// per log row, and SipHash's DoS resistance buys nothing for ids we
    /// only index.
    ids: hashbrown::HashTable<u32>,
}

/// Names stored once, concatenated in the order they were added.
#[derive(Clone, Default, PartialEq)]
struct Arena {
    text: String,
    /// End of each name in `text`; name `i` starts where name `i - 1` ends.
    ends: Vec<usize>,
}

impl Arena {
    fn with_capacity(names: usize, bytes: usize) -> Self {
        Arena {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(names),
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, id: u32) -> &str {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    fn push(&mut self, name: &str) {
        self.text.push_str(name);
        self.ends.push(self.text.len());
    }
}

/// Distinct names numbered in order of first appearance: the ingest's
/// numbering of each row group and file before canonical ids exist. Each
/// name's hash is kept beside it, so growing the table, merging another
/// interner into this one and building the [`AgentIndex`] never hash or
/// reread a name again, and names are not allocated one by one.
#[derive(Default)]
pub(crate) struct Interner {
    names: Arena,
    /// `hashes[id]`: [`hash_name`] of name `id`.
    hashes: Vec<u64>,
    ids: hashbrown::HashTable<u32>,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("names", &self.len())
            .finish()
    }
}

impl Interner {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The id of `name`, numbering it if it is new.
    pub fn id(&mut self, name: &str) -> Result<u32> {
        self.id_hashed(name, hash_name(name))
    }

    /// [`Interner::id`] with the name's hash already known.
    fn id_hashed(&mut self, name: &str, hash: u64) -> Result<u32> {
        let Interner { names, hashes, ids } = self;
        let entry = ids.entry(hash, |&k| names.get(k) == name, |&k| hashes[k as usize]);
        match entry {
            hashbrown::hash_table::Entry::Occupied(e) => Ok(*e.get()),
            hashbrown::hash_table::Entry::Vacant(e) => {
                let id = u32::try_from(names.len())
                    .map_err(|_| Error::invalid("more than 2^32 distinct names in the logs"))?;
                e.insert(id);
                names.push(name);
                hashes.push(hash);
                Ok(id)
            }
        }
    }

    /// Numbers `other`'s names in our numbering, in its id order; returns
    /// the map from its ids to ours.
    pub fn absorb(&mut self, other: &Interner) -> Result<Vec<u32>> {
        self.ids.reserve(other.len(), |&k| self.hashes[k as usize]);
        (0..other.len() as u32)
            .map(|k| self.id_hashed(other.names.get(k), other.hashes[k as usize]))
            .collect()
    }

    /// The names, indexed by id.
    pub fn into_names(self) -> Vec<String> {
        (0..self.len() as u32)
            .map(|k| self.names.get(k).to_owned())
            .collect()
    }
}

/// The hash of the table's names (fixed seed, so runs agree).
const NAME_HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7275_7374);

fn hash_name(name: &str) -> u64 {
    use std::hash::BuildHasher;
    NAME_HASH.hash_one(name)
}

impl PartialEq for AgentIndex {
    fn eq(&self, o: &Self) -> bool {
        self.names == o.names
    }
}

impl std::fmt::Debug for AgentIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentIndex")
            .field("agents", &self.len())
            .finish()
    }
}

/// The canonical order of agent names: shorter first, then by bytes (so
/// numeric ids sort numerically).
fn canonical_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Orders distinct names numbered in any order by `cmp`: returns the old
/// numbers in that order, and the map from each old number to its position.
pub(crate) fn numbering(
    names: &[String],
    cmp: impl Fn(&str, &str) -> std::cmp::Ordering,
) -> (Vec<u32>, Vec<u32>) {
    let mut order: Vec<u32> = (0..names.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| cmp(&names[a as usize], &names[b as usize]));
    let mut remap = vec![0u32; names.len()];
    for (id, &old) in order.iter().enumerate() {
        remap[old as usize] = id as u32;
    }
    (order, remap)
}

/// Shards of a [`SharedInterner`]: enough that two to a few dozen threads
/// rarely wait on the same lock.
const SHARDS: usize = 64;

/// Distinct names numbered as row groups decoded side by side meet them.
/// Each name goes to one of [`SHARDS`] interners, chosen by bits of its
/// hash that the shard's own table does not use (its buckets use the low
/// bits, its tags the top seven), each behind its own lock; its id is its
/// number in the shard times [`SHARDS`] plus the shard.
///
/// The numbering depends on which thread gets to a name first, so it is
/// not reproducible; [`SharedInterner::into_index`] maps it to the
/// canonical ids, which are. Row groups thus intern into one table instead
/// of each into its own that is then merged name by name on one thread
/// (18% of the CPU time of a 10M-row `score`).
pub(crate) struct SharedInterner {
    shards: Vec<std::sync::Mutex<Interner>>,
}

impl Default for SharedInterner {
    fn default() -> Self {
        SharedInterner {
            shards: (0..SHARDS).map(|_| Default::default()).collect(),
        }
    }
}

impl std::fmt::Debug for SharedInterner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedInterner").finish_non_exhaustive()
    }
}

impl SharedInterner {
    /// The id of `name`, numbering it if it is new.
    pub fn id(&self, name: &str) -> Result<u32> {
        let hash = hash_name(name);
        let shard = (hash >> 32) as usize % SHARDS;
        let local = self.shards[shard]
            .lock()
            .map_err(|_| Error::internal("a thread interning names panicked"))?
            .id_hashed(name, hash)?;
        (local as usize)
            .checked_mul(SHARDS)
            .and_then(|x| u32::try_from(x + shard).ok())
            .ok_or_else(|| Error::invalid("more than 2^32 distinct names in the logs"))
    }

    /// The index of every name, and the map from this numbering's ids to
    /// canonical ones (ids never handed out map to `u32::MAX`).
    pub fn into_index(self) -> Result<(AgentIndex, Vec<u32>)> {
        let shards = self
            .shards
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .map_err(|_| Error::internal("a thread interning names panicked"))
            })
            .collect::<Result<Vec<Interner>>>()?;
        // Canonical ids straight from the shards: the names are not copied
        // into one list first (at 5.2M agents that copy was 0.15 GB of the
        // job's peak).
        let most = shards.iter().map(Interner::len).max().unwrap_or(0);
        let ids = (0..most).flat_map(|local| {
            shards
                .iter()
                .enumerate()
                .filter(move |(_, s)| local < s.len())
                .map(move |(shard, _)| (local * SHARDS + shard) as u32)
        });
        let at = |id: u32| (&shards[id as usize % SHARDS], id / SHARDS as u32);
        let (index, remap) = AgentIndex::from_numbered(
            ids,
            most * SHARDS,
            |id| {
                let (s, k) = at(id);
                s.names.get(k)
            },
            |id| {
                let (s, k) = at(id);
                s.hashes[k as usize]
            },
        );
        Ok((index, remap))
    }
}

impl AgentIndex {
    /// Builds the index from any collection of names (duplicates allowed).
    pub fn from_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        names.sort_unstable_by(|a, b| canonical_cmp(a, b));
        names.dedup();
        Self::from_sorted(names.iter().map(String::as_str))
    }

    /// Builds the index from distinct names numbered by `ids` (below
    /// `id_space`), `name` and `hash` giving each one's name and hash, and
    /// returns it with the map from those numbers to canonical ids (numbers
    /// not in `ids` map to `u32::MAX`). The names are sorted on all threads
    /// (they are distinct, so the order is the same on any number) and
    /// their kept hashes fill the table.
    fn from_numbered<'a>(
        ids: impl Iterator<Item = u32>,
        id_space: usize,
        name: impl Fn(u32) -> &'a str + Sync,
        hash: impl Fn(u32) -> u64,
    ) -> (Self, Vec<u32>) {
        use rayon::prelude::*;
        let mut order: Vec<u32> = ids.collect();
        order.par_sort_unstable_by(|&a, &b| canonical_cmp(name(a), name(b)));
        let bytes = order.iter().map(|&k| name(k).len()).sum();
        let mut remap = vec![u32::MAX; id_space];
        let mut sorted = Arena::with_capacity(order.len(), bytes);
        let mut table = hashbrown::HashTable::with_capacity(order.len());
        for (id, &old) in order.iter().enumerate() {
            remap[old as usize] = id as u32;
            sorted.push(name(old));
            table.insert_unique(hash(old), id as u32, |&k| hash(order[k as usize]));
        }
        (
            AgentIndex {
                names: sorted,
                ids: table,
            },
            remap,
        )
    }

    /// Names distinct and in canonical order.
    fn from_sorted<'a>(names: impl ExactSizeIterator<Item = &'a str> + Clone) -> Self {
        let bytes = names.clone().map(str::len).sum();
        let mut arena = Arena::with_capacity(names.len(), bytes);
        for name in names {
            arena.push(name);
        }
        let mut ids = hashbrown::HashTable::with_capacity(arena.len());
        for id in 0..arena.len() as u32 {
            let hash = hash_name(arena.get(id));
            ids.insert_unique(hash, id, |&k| hash_name(arena.get(k)));
        }
        AgentIndex { names: arena, ids }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.len() == 0
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        self.ids
            .find(hash_name(name), |&k| self.names.get(k) == name)
            .copied()
    }

    pub fn name(&self, id: u32) -> &str {
        self.names.get(id)
    }

    /// The names in id order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len() as u32).map(|i| self.name(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_get_canonical_ids() {
        let names = SharedInterner::default();
        let ids: Vec<u32> = ["b", "10", "a", "9", "a"]
            .iter()
            .map(|n| names.id(n).unwrap())
            .collect();
        assert_eq!(ids[2], ids[4]);
        let (idx, remap) = names.into_index().unwrap();
        assert_eq!(idx.names().collect::<Vec<_>>(), ["9", "a", "b", "10"]);
        let canonical: Vec<u32> = ids.iter().map(|&i| remap[i as usize]).collect();
        assert_eq!(canonical, vec![2, 3, 1, 0, 1]);
        assert_eq!(idx.id("10"), Some(3));
    }

    #[test]
    fn absorbing_interners_maps_their_ids_to_ours() {
        // Enough names that both tables grow several times (rehashing from
        // the kept hashes).
        let name = |i: u32| format!("agent-{}", i * 7 % 1000);
        let (mut a, mut b) = (Interner::default(), Interner::default());
        for i in 0..600 {
            assert_eq!(a.id(&name(i)).unwrap(), i);
        }
        for i in 400..1000 {
            b.id(&name(i)).unwrap();
        }
        assert_eq!(a.id(&name(5)).unwrap(), 5, "a known name keeps its id");
        let remap = a.absorb(&b).unwrap();
        assert_eq!(a.len(), 1000);
        for (theirs, &ours) in remap.iter().enumerate() {
            assert_eq!(a.names.get(ours), b.names.get(theirs as u32), "id {theirs}");
        }
        // b's first 200 names were a's last 200; the rest are new, in b's order.
        assert_eq!(remap[0], 400);
        assert_eq!(remap[200], 600);
        let names = a.into_names();
        assert_eq!(names[400], name(400));
        assert_eq!(names[999], name(999));
    }

    #[test]
    fn names_interned_from_many_threads_get_canonical_ids() {
        use rayon::prelude::*;
        // Four threads meet overlapping names in different orders.
        let name = |i: u32| format!("{}", (i * 7919) % 20_000);
        let shared = SharedInterner::default();
        let seen: Vec<Vec<(String, u32)>> = (0..4u32)
            .into_par_iter()
            .map(|t| {
                (t * 3000..t * 3000 + 11_000)
                    .map(|i| (name(i), shared.id(&name(i)).unwrap()))
                    .collect()
            })
            .collect();
        let (index, remap) = shared.into_index().unwrap();
        let all: Vec<String> = (0..20_000).map(name).collect();
        assert_eq!(index, AgentIndex::from_names(all));
        for (n, id) in seen.iter().flatten() {
            assert_eq!(index.name(remap[*id as usize]), n);
        }
    }

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
        assert_eq!(n.names().collect::<Vec<_>>(), ["1", "2", "10", "100"]);
    }
}

//! Graph stage: dense agent ids and one CSR per layer.
//!
//! The ingest stage hands over raw, already-validated contributions; this stage
//! owns the only place where floating-point sums over log rows happen, and does
//! them in a canonical order so the result cannot depend on file split, row order
//! or thread count (see [`builder`]).

pub mod builder;
pub mod ids;
pub mod synthetic;

pub use builder::{Entry, GraphBuilder};
pub use ids::AgentIndex;

/// Aggregated interactions of one layer, in CSR form over source agents.
///
/// `trust[e]` is s_k(i,j), the signed, decayed sum of weight·outcome;
/// `volume[e]` is the decayed sum of weight whatever the outcome, which is what
/// corroborates cheap layers. Rows are sorted by destination id.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerGraph {
    pub name: String,
    pub row_ptr: Vec<u32>,
    pub col: Vec<u32>,
    pub trust: Vec<f64>,
    pub volume: Vec<f64>,
}

impl LayerGraph {
    /// Number of (src, dst) pairs with at least one interaction.
    pub fn edges(&self) -> usize {
        self.col.len()
    }

    /// The entries of row `i` as (dst, trust, volume).
    pub fn row(&self, i: usize) -> impl Iterator<Item = (u32, f64, f64)> + '_ {
        let (a, b) = (self.row_ptr[i] as usize, self.row_ptr[i + 1] as usize);
        (a..b).map(move |e| (self.col[e], self.trust[e], self.volume[e]))
    }

    /// Volume of the pair (i, j) in this layer, zero if absent (binary search: rows are sorted).
    pub fn volume_of(&self, i: u32, j: u32) -> f64 {
        let (a, b) = (
            self.row_ptr[i as usize] as usize,
            self.row_ptr[i as usize + 1] as usize,
        );
        match self.col[a..b].binary_search(&j) {
            Ok(pos) => self.volume[a + pos],
            Err(_) => 0.0,
        }
    }
}

/// All layers over one agent index.
#[derive(Debug, Clone)]
pub struct MultiGraph {
    pub agents: AgentIndex,
    pub layers: Vec<LayerGraph>,
}

impl MultiGraph {
    pub fn n(&self) -> usize {
        self.agents.len()
    }

    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }
}

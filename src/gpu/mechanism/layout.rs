//! Host mirror of the mechanism kernel's uniform, its shader text and its
//! slot table; the tests parse the WGSL with naga and check both, as
//! `gpu/trust/layout.rs` does for the trust family.

use bytemuck::{Pod, Zeroable};

use crate::gpu::context::Slot;

/// Shader text of the family.
pub(crate) const BEST_RESPONSE_WGSL: &str =
    include_str!("../../../shaders/mechanism/best_response.wgsl");

/// Mirror of `Params` in shaders/mechanism/best_response.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct ParamsU {
    pub m: u32,
    pub n: u32,
    pub types: u32,
    pub grid: u32,
    pub per_center: u32,
    pub first: u32,
    pub len: u32,
    pub count_cols: u32,
    pub lambda: f32,
    pub inv_grid: f32,
    pub tie: f32,
    pub pad: u32,
}

const _: () = assert!(std::mem::size_of::<ParamsU>() == 48);

/// Bindings of shaders/mechanism/best_response.wgsl.
pub(crate) const SLOTS: [(u32, Slot); 7] = [
    (0, Slot::Uniform),   // params
    (1, Slot::Read),      // payoffs
    (2, Slot::Read),      // weights
    (3, Slot::Read),      // centers
    (4, Slot::Read),      // counts
    (5, Slot::ReadWrite), // values
    (6, Slot::ReadWrite), // detail
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::context::declared_slots;

    fn module() -> naga::Module {
        naga::front::wgsl::parse_str(BEST_RESPONSE_WGSL)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(BEST_RESPONSE_WGSL)))
    }

    #[test]
    fn host_mirror_matches_the_shader() {
        let m = module();
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(m.to_ctx()).unwrap();
        let (handle, _) = m
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Params"))
            .expect("a Params struct");
        assert_eq!(layouter[handle].size, std::mem::size_of::<ParamsU>() as u32);
        // The shader's array sizes are the host's limits.
        for (name, want) in [
            ("MAX_M", super::super::MAX_M),
            ("MAX_N", super::super::MAX_N),
        ] {
            let c = m
                .constants
                .iter()
                .find(|(_, c)| c.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no const {name}"))
                .1;
            let text = format!("{:?}", m.global_expressions[c.init]);
            assert!(text.contains(&format!("U32({want})")), "{name}: {text}");
        }
    }

    #[test]
    fn slot_table_matches_the_shader() {
        assert_eq!(declared_slots(&module()), SLOTS);
    }
}

//! Host mirrors of the trust kernels' uniform and state structs, the shader
//! text of the family, and the explicit bind group layouts.
//!
//! Each mirror's size is fixed at compile time here, and a test parses the
//! WGSL with naga (the shader compiler wgpu itself uses) and checks that the
//! shader's struct has the same size, so a field added on one side only
//! fails the build's tests instead of corrupting every solve.

use bytemuck::{Pod, Zeroable};

/// Shader text of the family, in the order [`super::kernels`] composes it.
pub(crate) const COMMON_WGSL: &str = include_str!("../../../shaders/trust/common.wgsl");
pub(crate) const SPMV_WGSL: &str = include_str!("../../../shaders/trust/spmv.wgsl");
pub(crate) const POWER_WGSL: &str = include_str!("../../../shaders/trust/power.wgsl");

/// Mirror of `Params` in shaders/trust/common.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct ParamsU {
    pub n: u32,
    pub groups: u32,
    pub gp: u32,
    pub rows_per_wg: u32,
    pub n_long: u32,
    pub width: u32,
    pub max_iter: u32,
    pub n_part0: u32,
    pub n_part1: u32,
    pub alpha: f32,
    pub keep: f32,
    pub epsilon: f32,
    /// 1.0, opaque to the shader compiler (see shaders/common/sum.wgsl).
    pub one: f32,
    /// Entries per lane rows are fitted to ([`super::PlanConfig::per_lane`]).
    pub per_lane: u32,
    pub pad: [u32; 2],
}

/// Mirror of `Chunk` in shaders/trust/spmv.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct ChunkU {
    pub block0: u32,
    pub block1: u32,
    pub e_base: u32,
    pub row0: u32,
    pub row1: u32,
    pub pad: [u32; 3],
}

/// Mirror of `ColState` in shaders/trust/power.wgsl: per column, read back.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Default)]
pub(crate) struct ColStateU {
    pub iterations: u32,
    /// 0 running, then one of the `STOP_*` codes.
    pub stop: u32,
    pub residual: f32,
    pub mass: f32,
}

pub(crate) const STOP_CONVERGED: u32 = 1;
pub(crate) const STOP_FLAT_TAIL: u32 = 2;
pub(crate) const STOP_MAX_ITER: u32 = 3;

const _: () = assert!(std::mem::size_of::<ParamsU>() == 64);
const _: () = assert!(std::mem::size_of::<ChunkU>() == 32);
const _: () = assert!(std::mem::size_of::<ColStateU>() == 16);

pub(crate) use crate::gpu::context::{bind_group_layout, Slot};

/// Bindings of shaders/trust/spmv.wgsl (both entry points share them).
pub(crate) const SPMV_SLOTS: [(u32, Slot); 12] = [
    (0, Slot::Uniform),   // params
    (1, Slot::Uniform),   // chunk
    (2, Slot::Read),      // row_ptr
    (3, Slot::Read),      // src
    (4, Slot::Read),      // ew
    (5, Slot::Read),      // x
    (6, Slot::Read),      // colv
    (7, Slot::ReadWrite), // acc
    (8, Slot::Read),      // segs
    (9, Slot::ReadWrite), // seg_part
    (10, Slot::Read),     // blocks
    (11, Slot::Read),     // row_list
];

/// Bindings of shaders/trust/power.wgsl.
pub(crate) const POWER_SLOTS: [(u32, Slot); 13] = [
    (0, Slot::Uniform),   // params
    (1, Slot::Read),      // acc
    (2, Slot::Read),      // pre
    (3, Slot::Read),      // rowinfo
    (4, Slot::Read),      // t_cur
    (5, Slot::ReadWrite), // t_next
    (6, Slot::ReadWrite), // x_next
    (7, Slot::ReadWrite), // colv
    (8, Slot::ReadWrite), // parts
    (9, Slot::ReadWrite), // cols
    (10, Slot::Read),     // seg_part
    (11, Slot::Read),     // long_rows
    (12, Slot::Read),     // long_next
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::context::declared_slots;
    use crate::gpu::trust::kernels::{compose, compose_with, Lanes};

    /// Size of struct `name` in `module`, as the shader compiler lays it out.
    fn wgsl_size(module: &naga::Module, name: &str) -> u32 {
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (handle, _) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no struct {name} in the shader"));
        layouter[handle].size
    }

    fn parse(parts: &[&str], lanes: Lanes) -> naga::Module {
        let text = compose(lanes, parts);
        naga::front::wgsl::parse_str(&text)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(&text)))
    }

    #[test]
    fn host_mirrors_match_the_shaders() {
        for lanes in [Lanes::One, Lanes::Four] {
            let spmv = parse(&[COMMON_WGSL, SPMV_WGSL], lanes);
            let power = parse(&[COMMON_WGSL, POWER_WGSL], lanes);
            assert_eq!(
                wgsl_size(&spmv, "Params"),
                std::mem::size_of::<ParamsU>() as u32
            );
            assert_eq!(
                wgsl_size(&spmv, "Chunk"),
                std::mem::size_of::<ChunkU>() as u32
            );
            assert_eq!(
                wgsl_size(&power, "ColState"),
                std::mem::size_of::<ColStateU>() as u32
            );
        }
    }

    /// The product kernels' text with subgroups parses and validates too (a
    /// device without them never compiles it, so CI on such a device would
    /// not notice otherwise).
    #[test]
    fn subgroup_variant_validates() {
        for lanes in [Lanes::One, Lanes::Four] {
            let text = compose_with(lanes, 32, &[COMMON_WGSL, SPMV_WGSL]);
            assert!(text.contains("subgroupShuffleDown"));
            let module = naga::front::wgsl::parse_str(&text)
                .unwrap_or_else(|e| panic!("{}", e.emit_to_string(&text)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(&text)));
        }
    }

    /// Every global the shaders bind is in the slot table with the same kind,
    /// and the table names nothing the shader lacks.
    #[test]
    fn slot_tables_match_the_shaders() {
        for (parts, slots) in [
            (&[COMMON_WGSL, SPMV_WGSL][..], &SPMV_SLOTS[..]),
            (&[COMMON_WGSL, POWER_WGSL][..], &POWER_SLOTS[..]),
        ] {
            assert_eq!(declared_slots(&parse(parts, Lanes::Four)), slots);
        }
    }
}

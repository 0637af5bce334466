//! `trustmesh devices`: the GPU adapters wgpu sees.

use anyhow::Result;
use clap::Args;

/// No options: every adapter is listed.
#[derive(Args, Debug)]
pub struct DevicesArgs {}

pub fn run(_: DevicesArgs) -> Result<()> {
    let adapters = trustmesh::gpu::list_adapters();
    if adapters.is_empty() {
        println!("no Vulkan, Metal or DX12 adapter found (on Debian, `apt-get install mesa-vulkan-drivers` adds the software one)");
    }
    for a in adapters {
        println!("{a}");
    }
    Ok(())
}

// weights_memory.wgsl — what a stateful weighting keeps between calls (MoDo's λ, SDMGrad's w,
// GradVac's targets φ̂), in a storage buffer the caller owns (concord-gpu's WeightingState;
// a fresh zeroed one for a one-off call), so a run's steps need no host round trip.
// Layout (f32): [0] = the m the values were sized for (0 = fresh: torchjd re-initialises the
// state when m changes), [1..4) spare, then the method's values from MEM_BASE (at most
// 32 × 32). The fused toy kernel keeps one per run too (toy_trajectory.wgsl).
// requires: weights_workgroup.wgsl

@group(0) @binding(4) var<storage, read_write> wt_memory: array<f32>;

const MEM_BASE: u32 = 4u;
// Floats the buffer must hold (MEM_BASE + 32 × 32); concord-gpu's MEMORY_FLOATS.
const MEM_FLOATS: u32 = 1028u;

// Whether the stored values were sized for m tasks.
fn mem_sized_for(m: u32) -> bool {
    return wt_memory[0] == f32(m);
}

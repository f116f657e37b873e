//! The one table of GPU weighting methods: registry name ↔ `METHOD_*` id of the WGSL dispatch,
//! and whether the method runs on one invocation (`compute_weights`, also inside the fused toy
//! kernel) or needs a whole workgroup (`compute_weights_workgroup`).
//!
//! The WGSL `const METHOD_*` lines are generated from this table ([`wgsl_consts`]) when the
//! shaders are assembled (`shaders.rs`, as the virtual file `gpu_methods.wgsl`), so they cannot
//! drift; `tests/method_table.rs` checks that the switch cases of `weights_dispatch.wgsl` name
//! each method once, in the right switch, calling its own `weights_*` function.

/// One GPU weighting method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuMethod {
    /// concord-core's registry name.
    pub name: &'static str,
    /// The `METHOD_*` id the kernels switch on.
    pub id: u32,
    /// Runs on a whole workgroup (`compute_weights_workgroup`); otherwise on one invocation.
    pub workgroup: bool,
}

impl GpuMethod {
    /// The WGSL constant's name: `METHOD_IMTL_G` for `imtl-g`.
    pub fn const_name(&self) -> String {
        format!("METHOD_{}", self.name.to_uppercase().replace('-', "_"))
    }

    /// The WGSL function that computes its weights: `weights_imtl_g` for `imtl-g`.
    pub fn wgsl_fn(&self) -> String {
        format!("weights_{}", self.name.replace('-', "_"))
    }
}

const fn one(name: &'static str, id: u32) -> GpuMethod {
    GpuMethod { name, id, workgroup: false }
}

const fn wg(name: &'static str, id: u32) -> GpuMethod {
    GpuMethod { name, id, workgroup: true }
}

/// Every GPU weighting, by id. Ids are contiguous from 0, and the workgroup methods are the
/// ids from [`FIRST_WORKGROUP`] on (the kernels test `method >= METHOD_FIRST_WORKGROUP`).
pub const METHODS: &[GpuMethod] = &[
    one("mean", 0),
    one("sum", 1),
    one("pcgrad", 2),
    one("mgda", 3),
    one("cagrad", 4),
    wg("constant", 5),
    wg("upgrad", 6),
    wg("dualproj", 7),
    wg("imtl-g", 8),
    wg("aligned-mtl", 9),
    wg("config", 10),
    wg("random", 11),
    wg("krum", 12),
    wg("modo", 13),
    wg("sdmgrad", 14),
    wg("gradvac", 15),
];

/// The GPU methods that keep state between calls in the weighting memory buffer
/// (weights_memory.wgsl): a run needs one buffer kept across its steps.
pub const WITH_MEMORY: &[&str] = &["modo", "sdmgrad", "gradvac"];

/// The first workgroup method's id.
pub const FIRST_WORKGROUP: u32 = 5;

/// The table entry for a registry name.
pub fn find(name: &str) -> Option<&'static GpuMethod> {
    METHODS.iter().find(|m| m.name == name)
}

/// The id of a registry name that is in the table (panics otherwise: a typo in this crate).
pub(crate) fn id(name: &str) -> u32 {
    find(name).unwrap_or_else(|| panic!("'{name}' is not in the GPU method table")).id
}

/// The GPU weightings the fused toy kernel runs (the CAGrad toys have two tasks): all but Krum
/// (it needs m ≥ 3, on the CPU too).
pub fn toy_names() -> Vec<&'static str> {
    METHODS.iter().map(|m| m.name).filter(|n| *n != "krum").collect()
}

/// The registry names of every GPU weighting, in id order.
pub fn names() -> Vec<&'static str> {
    METHODS.iter().map(|m| m.name).collect()
}

/// The WGSL text of `gpu_methods.wgsl`: one `const METHOD_*` per method and
/// `METHOD_FIRST_WORKGROUP`.
pub fn wgsl_consts() -> String {
    let mut s = String::from(
        "// gpu_methods.wgsl — generated from concord-gpu's src/kernels/methods.rs (do not write by hand).\n",
    );
    for m in METHODS {
        s.push_str(&format!("const {}: u32 = {}u;\n", m.const_name(), m.id));
    }
    s.push_str(&format!("const METHOD_FIRST_WORKGROUP: u32 = {FIRST_WORKGROUP}u;\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_contiguous_and_workgroup_methods_come_last() {
        for (i, m) in METHODS.iter().enumerate() {
            assert_eq!(m.id as usize, i, "{}", m.name);
            assert_eq!(m.workgroup, m.id >= FIRST_WORKGROUP, "{}", m.name);
        }
    }

    #[test]
    fn every_name_is_a_registry_aggregator() {
        for m in METHODS {
            assert!(concord_core::aggregators::registry::find(m.name).is_some(), "{}", m.name);
        }
    }
}

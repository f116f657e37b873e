//! The WGSL sources in `shaders/` and the tiny concat step that turns them into modules.
//!
//! WGSL has no `#include`. Each file in `shaders/` does one thing; a file that uses functions
//! or declarations from others names them on a comment line
//!
//! ```text
//! // requires: weights_common.wgsl weights_dispatch.wgsl
//! ```
//!
//! [`assemble`] concatenates the requirements depth first, each file once, in front of the file
//! itself, separated by `// ---- <file> ----` markers. Every file is embedded with
//! `include_str!` (see [`SOURCES`]), so the crate needs no file system at run time (the browser
//! has none). `tests/naga_validate.rs` runs the same `assemble_with` over the files on disk, so
//! each file — fragments included, together with what they require — is parsed and validated.
//!
//! A few files are generated from Rust tables instead of read ([`generated`]):
//! `gpu_methods.wgsl` holds the `METHOD_*` ids of `kernels::methods::METHODS`.

/// Every `.wgsl` file in `shaders/`, embedded at compile time: (file name, text).
pub const SOURCES: &[(&str, &str)] = &[
    ("weights_common.wgsl", include_str!("../../../shaders/weights_common.wgsl")),
    ("weights_mean_sum.wgsl", include_str!("../../../shaders/weights_mean_sum.wgsl")),
    ("weights_pcgrad.wgsl", include_str!("../../../shaders/weights_pcgrad.wgsl")),
    ("weights_mgda.wgsl", include_str!("../../../shaders/weights_mgda.wgsl")),
    ("weights_cagrad.wgsl", include_str!("../../../shaders/weights_cagrad.wgsl")),
    ("weights_workgroup.wgsl", include_str!("../../../shaders/weights_workgroup.wgsl")),
    ("weights_constant.wgsl", include_str!("../../../shaders/weights_constant.wgsl")),
    ("weights_random.wgsl", include_str!("../../../shaders/weights_random.wgsl")),
    ("weights_memory.wgsl", include_str!("../../../shaders/weights_memory.wgsl")),
    ("weights_krum.wgsl", include_str!("../../../shaders/weights_krum.wgsl")),
    ("weights_modo.wgsl", include_str!("../../../shaders/weights_modo.wgsl")),
    ("weights_sdmgrad.wgsl", include_str!("../../../shaders/weights_sdmgrad.wgsl")),
    ("weights_gradvac.wgsl", include_str!("../../../shaders/weights_gradvac.wgsl")),
    ("weights_dual_cone.wgsl", include_str!("../../../shaders/weights_dual_cone.wgsl")),
    ("weights_upgrad.wgsl", include_str!("../../../shaders/weights_upgrad.wgsl")),
    ("weights_dualproj.wgsl", include_str!("../../../shaders/weights_dualproj.wgsl")),
    ("weights_imtl_g.wgsl", include_str!("../../../shaders/weights_imtl_g.wgsl")),
    ("weights_aligned_mtl.wgsl", include_str!("../../../shaders/weights_aligned_mtl.wgsl")),
    ("weights_config.wgsl", include_str!("../../../shaders/weights_config.wgsl")),
    ("weights_dispatch.wgsl", include_str!("../../../shaders/weights_dispatch.wgsl")),
    ("weighting.wgsl", include_str!("../../../shaders/weighting.wgsl")),
    ("gram.wgsl", include_str!("../../../shaders/gram.wgsl")),
    ("combine.wgsl", include_str!("../../../shaders/combine.wgsl")),
    ("toy.wgsl", include_str!("../../../shaders/toy.wgsl")),
    ("optim.wgsl", include_str!("../../../shaders/optim.wgsl")),
    ("toy_trajectory.wgsl", include_str!("../../../shaders/toy_trajectory.wgsl")),
    ("mlp_index.wgsl", include_str!("../../../shaders/mlp_index.wgsl")),
    ("mlp_activation.wgsl", include_str!("../../../shaders/mlp_activation.wgsl")),
    ("mlp_activation_map.wgsl", include_str!("../../../shaders/mlp_activation_map.wgsl")),
    ("mlp_gather.wgsl", include_str!("../../../shaders/mlp_gather.wgsl")),
    ("mlp_dense_forward.wgsl", include_str!("../../../shaders/mlp_dense_forward.wgsl")),
    ("mlp_loss.wgsl", include_str!("../../../shaders/mlp_loss.wgsl")),
    ("mlp_weight_grad.wgsl", include_str!("../../../shaders/mlp_weight_grad.wgsl")),
    ("mlp_backprop.wgsl", include_str!("../../../shaders/mlp_backprop.wgsl")),
    ("mlp_optim.wgsl", include_str!("../../../shaders/mlp_optim.wgsl")),
    ("mlp_sam.wgsl", include_str!("../../../shaders/mlp_sam.wgsl")),
    ("moe_common.wgsl", include_str!("../../../shaders/moe_common.wgsl")),
    ("moe_gate.wgsl", include_str!("../../../shaders/moe_gate.wgsl")),
    ("moe_select.wgsl", include_str!("../../../shaders/moe_select.wgsl")),
    ("moe_capacity.wgsl", include_str!("../../../shaders/moe_capacity.wgsl")),
    ("moe_expert_choice.wgsl", include_str!("../../../shaders/moe_expert_choice.wgsl")),
    ("moe_stats.wgsl", include_str!("../../../shaders/moe_stats.wgsl")),
    ("moe_expert_gram.wgsl", include_str!("../../../shaders/moe_expert_gram.wgsl")),
    ("moe_dispatch.wgsl", include_str!("../../../shaders/moe_dispatch.wgsl")),
    ("moe_train.wgsl", include_str!("../../../shaders/moe_train.wgsl")),
    ("moe_aux.wgsl", include_str!("../../../shaders/moe_aux.wgsl")),
    ("moe_arch.wgsl", include_str!("../../../shaders/moe_arch.wgsl")),
    ("moe_dselect.wgsl", include_str!("../../../shaders/moe_dselect.wgsl")),
    ("copy.wgsl", include_str!("../../../shaders/copy.wgsl")),
    ("metrics.wgsl", include_str!("../../../shaders/metrics.wgsl")),
    ("loss_weighting.wgsl", include_str!("../../../shaders/loss_weighting.wgsl")),
    ("landscape_slice.wgsl", include_str!("../../../shaders/landscape_slice.wgsl")),
    ("point_out_grad.wgsl", include_str!("../../../shaders/point_out_grad.wgsl")),
    ("point_backprop.wgsl", include_str!("../../../shaders/point_backprop.wgsl")),
    ("point_gram.wgsl", include_str!("../../../shaders/point_gram.wgsl")),
    ("coordinate_trimmed_mean.wgsl", include_str!("../../../shaders/coordinate_trimmed_mean.wgsl")),
    ("coordinate_graddrop.wgsl", include_str!("../../../shaders/coordinate_graddrop.wgsl")),
];

/// The files that are compute modules with entry points (the others are fragments).
pub const MODULES: &[&str] = &[
    "gram.wgsl",
    "combine.wgsl",
    "weighting.wgsl",
    "toy_trajectory.wgsl",
    "mlp_activation_map.wgsl",
    "mlp_gather.wgsl",
    "mlp_dense_forward.wgsl",
    "mlp_loss.wgsl",
    "mlp_weight_grad.wgsl",
    "mlp_backprop.wgsl",
    "mlp_optim.wgsl",
    "mlp_sam.wgsl",
    "moe_gate.wgsl",
    "moe_select.wgsl",
    "moe_capacity.wgsl",
    "moe_expert_choice.wgsl",
    "moe_stats.wgsl",
    "moe_expert_gram.wgsl",
    "moe_dispatch.wgsl",
    "moe_train.wgsl",
    "moe_aux.wgsl",
    "moe_arch.wgsl",
    "moe_dselect.wgsl",
    "copy.wgsl",
    "metrics.wgsl",
    "loss_weighting.wgsl",
    "landscape_slice.wgsl",
    "point_out_grad.wgsl",
    "point_backprop.wgsl",
    "point_gram.wgsl",
    "coordinate_trimmed_mean.wgsl",
    "coordinate_graddrop.wgsl",
];

/// The files named on `// requires:` lines of `text`, in order.
pub fn requirements(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("// requires:"))
        .flat_map(|rest| rest.split(|c: char| c.is_whitespace() || c == ','))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The files made from Rust tables at assembly (not in `shaders/`): `gpu_methods.wgsl`.
pub fn generated(name: &str) -> Option<String> {
    match name {
        "gpu_methods.wgsl" => Some(crate::kernels::methods::wgsl_consts()),
        _ => None,
    }
}

/// `root` with everything it requires, concatenated; `load` returns a file's text by name.
pub fn assemble_with(root: &str, load: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    fn visit(
        name: &str,
        load: &dyn Fn(&str) -> Option<String>,
        done: &mut Vec<String>,
        stack: &mut Vec<String>,
        out: &mut String,
    ) -> Result<(), String> {
        if done.iter().any(|d| d == name) {
            return Ok(());
        }
        if stack.iter().any(|s| s == name) {
            return Err(format!("shader requirement cycle: {} → {name}", stack.join(" → ")));
        }
        let text = generated(name).or_else(|| load(name)).ok_or_else(|| {
            let by = stack.last().map(|s| format!(" (required by {s})")).unwrap_or_default();
            format!("no shader file '{name}'{by}")
        })?;
        stack.push(name.to_owned());
        for dep in requirements(&text) {
            visit(&dep, load, done, stack, out)?;
        }
        stack.pop();
        out.push_str(&format!("// ---- {name} ----\n"));
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
        done.push(name.to_owned());
        Ok(())
    }
    let mut out = String::new();
    visit(root, load, &mut Vec::new(), &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// `root` assembled from the embedded [`SOURCES`].
pub fn assemble(root: &str) -> Result<String, String> {
    assemble_with(root, &|name| SOURCES.iter().find(|(n, _)| *n == name).map(|(_, t)| (*t).to_owned()))
}

/// Every assembled compute module: (file name, WGSL text).
pub fn shader_sources() -> Vec<(&'static str, String)> {
    MODULES.iter().map(|&name| (name, assemble(name).unwrap_or_else(|e| panic!("{e}")))).collect()
}

//! Every WGSL file in `shaders/` and every assembled module parses and validates with naga,
//! with no GPU. Capabilities are empty, so a native-only feature fails here rather than in the
//! browser.
//!
//! Fragments (files of functions without entry points) are validated together with the files
//! they name on `// requires:` lines — the same concat the crate does (`shaders::assemble_with`),
//! here reading the files from disk, so a new file in `shaders/` is covered automatically.

use std::path::PathBuf;

fn shader_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shaders")
}

fn validate(name: &str, source: &str) -> Result<naga::Module, String> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("{name}: parse error\n{}", e.emit_to_string(source)))?;
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
        .validate(&module)
        .map_err(|e| format!("{name}: validation error\n{}", e.emit_to_string(source)))?;
    Ok(module)
}

fn disk_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(shader_dir())
        .expect("shaders/ directory")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            (name, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_shader_file_validates_with_its_requirements() {
    let files = disk_files();
    assert!(files.len() >= 10, "expected the shader files in {:?}", shader_dir());
    let load = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());
    let mut failures = Vec::new();
    for (name, _) in &files {
        match concord_gpu::shaders::assemble_with(name, &load).and_then(|src| validate(name, &src).map(|_| ())) {
            Ok(()) => {}
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_assembled_module_validates_and_has_its_entry_points() {
    let sources = concord_gpu::shader_sources();
    let expected = [
        ("gram.wgsl", vec!["gram_partials", "gram_reduce"]),
        ("combine.wgsl", vec!["combine"]),
        ("weighting.wgsl", vec!["weighting"]),
        ("toy_trajectory.wgsl", vec!["toy_step", "toy_step_workgroup", "toy_eval"]),
        ("mlp_activation_map.wgsl", vec!["activation_map"]),
        ("mlp_gather.wgsl", vec!["gather_rows"]),
        ("mlp_dense_forward.wgsl", vec!["dense_forward"]),
        ("mlp_loss.wgsl", vec!["task_loss"]),
        ("mlp_weight_grad.wgsl", vec!["weight_grad"]),
        ("mlp_backprop.wgsl", vec!["backprop"]),
        ("mlp_optim.wgsl", vec!["optim_tick", "optim_update", "optim_check", "optim_prepare"]),
        ("mlp_sam.wgsl", vec!["sam_norm", "sam_perturb", "sam_cosine"]),
        ("moe_gate.wgsl", vec!["moe_gate"]),
        ("moe_select.wgsl", vec!["moe_select"]),
        ("moe_capacity.wgsl", vec!["moe_capacity"]),
        ("moe_expert_choice.wgsl", vec!["moe_expert_choice"]),
        ("moe_stats.wgsl", vec!["moe_stats"]),
        ("moe_dispatch.wgsl", vec!["moe_dispatch", "moe_combine"]),
        (
            "moe_train.wgsl",
            vec!["moe_gate_softmax", "moe_mix", "moe_scatter_dy", "moe_dcombine", "moe_softmax_back", "moe_accumulate"],
        ),
        ("moe_arch.wgsl", vec!["arch_softmax", "arch_softmax_back"]),
        ("moe_dselect.wgsl", vec!["dselect_gate", "dselect_gate_back", "dselect_regulariser_back"]),
        ("copy.wgsl", vec!["copy"]),
        ("metrics.wgsl", vec!["metrics"]),
        ("loss_weighting.wgsl", vec!["loss_weights", "scale_rows", "scale_heads"]),
        ("landscape_slice.wgsl", vec!["landscape_slice"]),
        ("point_out_grad.wgsl", vec!["point_out_grad"]),
        ("point_backprop.wgsl", vec!["point_backprop"]),
        ("point_gram.wgsl", vec!["point_gram"]),
    ];
    for (name, entries) in expected {
        let (_, src) = sources.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no module {name}"));
        let module = validate(name, src).unwrap_or_else(|e| panic!("{e}"));
        for entry in entries {
            assert!(
                module.entry_points.iter().any(|ep| ep.name == entry && ep.stage == naga::ShaderStage::Compute),
                "{name} has no compute entry point {entry}"
            );
        }
    }
}

#[test]
fn embedded_sources_equal_the_files_on_disk() {
    // The crate embeds shaders with include_str!; every file on disk must be in that table
    // (otherwise a requires: line naming it would fail at run time) and equal to it.
    let files = disk_files();
    for (name, text) in &files {
        let embedded = concord_gpu::shaders::SOURCES
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("shaders/{name} is not in concord_gpu::shaders::SOURCES"));
        assert_eq!(embedded.1, text, "{name}");
    }
}

#[test]
fn workgroup_sizes_respect_webgpu_default_limits() {
    // WebGPU defaults: 256 invocations per workgroup, 16 KiB of workgroup memory.
    for (name, src) in concord_gpu::shader_sources() {
        let module = validate(name, &src).unwrap();
        for ep in &module.entry_points {
            let [x, y, z] = ep.workgroup_size;
            assert!(x * y * z <= 256, "{name}::{} uses {} invocations", ep.name, x * y * z);
        }
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let workgroup_bytes: u32 = module
            .global_variables
            .iter()
            .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
            .map(|(_, g)| layouter[g.ty].size)
            .sum();
        assert!(workgroup_bytes <= 16 * 1024, "{name} uses {workgroup_bytes} bytes of workgroup memory");
    }
}

//! The one GPU method table (`kernels::methods`) against the WGSL: the switch cases of
//! `weights_dispatch.wgsl` (each method once, in the switch its kind needs, calling its own
//! `weights_*` function), the generated `METHOD_*` constants as naga reads them from the
//! assembled module, and the host `#[repr(C)]` parameter structs against naga's layouts.

use concord_gpu::kernels::methods::{self, METHODS};
use std::collections::BTreeMap;

fn dispatch_file() -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shaders/weights_dispatch.wgsl");
    std::fs::read_to_string(path).unwrap()
}

/// The body of `fn <name>(` up to the next top-level `fn `.
fn function_body<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text.find(&format!("fn {name}(")).unwrap_or_else(|| panic!("no fn {name}"));
    let rest = &text[start + 3..];
    let end = rest.find("\nfn ").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

/// (constant, function) of every `case METHOD_X: { weights_x(…); }` line.
fn cases(body: &str) -> Vec<(String, String)> {
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("case "))
        .map(|rest| {
            let (label, call) = rest.split_once(':').unwrap_or_else(|| panic!("case without ':': {rest}"));
            let f = call.trim().trim_start_matches('{').trim();
            let f = f.split('(').next().unwrap().trim().to_string();
            (label.trim().to_string(), f)
        })
        .collect()
}

#[test]
fn dispatch_switches_agree_with_the_table() {
    let text = dispatch_file();
    assert!(!text.contains("const METHOD_"), "METHOD_* ids are generated from the table, not written in the WGSL");
    let single = cases(function_body(&text, "compute_weights"));
    let workgroup = cases(function_body(&text, "compute_weights_workgroup"));
    let mut seen = BTreeMap::new();
    for (list, is_wg) in [(&single, false), (&workgroup, true)] {
        for (label, f) in list {
            let m = METHODS
                .iter()
                .find(|m| m.const_name() == *label)
                .unwrap_or_else(|| panic!("case {label} names no method of the table"));
            assert_eq!(m.workgroup, is_wg, "{} is in the wrong switch", m.name);
            assert_eq!(*f, m.wgsl_fn(), "case {label} calls {f}");
            assert!(seen.insert(m.name, ()).is_none(), "{} has two cases", m.name);
        }
    }
    let missing: Vec<_> = METHODS.iter().filter(|m| !seen.contains_key(m.name)).map(|m| m.name).collect();
    assert!(missing.is_empty(), "methods without a case: {missing:?}");
    assert!(
        text.contains("return method >= METHOD_FIRST_WORKGROUP;"),
        "is_workgroup_method must use the table's boundary"
    );
}

#[test]
fn assembled_constants_are_the_table() {
    for module_name in ["weighting.wgsl", "toy_trajectory.wgsl"] {
        let src = concord_gpu::shaders::assemble(module_name).unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let mut consts = BTreeMap::new();
        for (_, c) in module.constants.iter() {
            let Some(name) = c.name.as_deref().filter(|n| n.starts_with("METHOD_")) else { continue };
            let value = match module.global_expressions[c.init] {
                naga::Expression::Literal(naga::Literal::U32(v)) => v,
                ref other => panic!("{name} = {other:?}"),
            };
            consts.insert(name.to_string(), value);
        }
        let mut want: BTreeMap<String, u32> = METHODS.iter().map(|m| (m.const_name(), m.id)).collect();
        want.insert("METHOD_FIRST_WORKGROUP".into(), methods::FIRST_WORKGROUP);
        assert_eq!(consts, want, "{module_name}");
    }
}

#[test]
fn table_names_are_gpu_methods_and_registry_aggregators() {
    assert_eq!(concord_gpu::gpu_methods(), METHODS.iter().map(|m| m.name).collect::<Vec<_>>());
    for m in METHODS {
        let spec = concord_core::AggregatorSpec::parse(m.name, &required_params(m.name)).unwrap();
        let w = concord_gpu::GpuWeighting::from_spec(&spec, 3, 0).unwrap();
        assert_eq!((w.code, w.is_workgroup()), (m.id, m.workgroup), "{}", m.name);
    }
}

/// The parameters a method cannot go without (for m = 3 tasks).
fn required_params(name: &str) -> Vec<(String, String)> {
    match name {
        "constant" => vec![("weights".into(), "1;2;3".into())],
        "krum" => vec![("n_byzantine".into(), "0".into())],
        _ => Vec::new(),
    }
}

#[test]
fn host_param_structs_match_the_wgsl_layouts() {
    let layouts = concord_gpu::kernels::host_layouts();
    assert!(layouts.len() >= 16);
    for (module_name, struct_name, host) in layouts {
        let src = concord_gpu::shaders::assemble(module_name).unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (handle, _) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(struct_name))
            .unwrap_or_else(|| panic!("{module_name} has no struct {struct_name}"));
        assert_eq!(
            layouter[handle].size as usize, host,
            "{module_name}::{struct_name}: WGSL size vs host #[repr(C)] size"
        );
    }
}

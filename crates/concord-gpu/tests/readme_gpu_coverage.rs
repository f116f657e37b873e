//! README's GPU coverage (the **On the GPU:** and **CPU only** lines under Methods) against the
//! GPU method table and concord-core's registry: every registry aggregator is in exactly one of
//! the two lists, the first is `concord_gpu::gpu_trainer_methods()` (the weightings and the
//! per-coordinate aggregators the GPU trainer runs from J, and the hybrids it runs with the host's
//! help: today every registry aggregator, so the second names none), and each CPU-only method
//! carries the reason the GPU backends give when they refuse it.

use concord_core::aggregators::registry::AGGREGATORS;
use std::collections::BTreeSet;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md")
}

/// The line starting with `prefix`.
fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("README has no line '{prefix}…'"))
}

/// The `backticked` words of `l` that are registry aggregator names.
fn names(l: &str) -> BTreeSet<String> {
    l.split('`').skip(1).step_by(2).filter(|w| AGGREGATORS.iter().any(|a| a.name == *w)).map(str::to_string).collect()
}

#[test]
fn readme_gpu_coverage_matches_the_method_table_and_the_registry() {
    let text = readme();
    let gpu_line = line(&text, "**On the GPU:**");
    let cpu_line = line(&text, "**CPU only**");
    let on_gpu = names(gpu_line);
    let cpu_only = names(cpu_line);
    let table: BTreeSet<String> = concord_gpu::gpu_trainer_methods().into_iter().map(str::to_string).collect();
    assert_eq!(on_gpu, table, "README's On the GPU line vs concord_gpu::gpu_trainer_methods()");
    let registry: BTreeSet<String> = AGGREGATORS.iter().map(|a| a.name.to_string()).collect();
    let rest: BTreeSet<String> = registry.difference(&table).cloned().collect();
    assert_eq!(cpu_only, rest, "README's CPU only line vs the registry minus the GPU table");
    for name in &cpu_only {
        let reason = concord_gpu::unsupported_reason(name);
        assert!(cpu_line.contains(reason), "README's CPU only line lacks {name}'s reason '{reason}'");
        // The refusal the GPU backends give names the same reason.
        let spec = concord_core::AggregatorSpec::parse(name, &[]);
        if let Ok(spec) = spec {
            match concord_gpu::GpuWeighting::from_spec(&spec, 4, 0) {
                Err(concord_gpu::GpuError::Unsupported(msg)) => assert!(msg.contains(reason), "{name}: {msg}"),
                other => panic!("{name}: expected a refusal, got {other:?}"),
            }
        }
    }
}

//! One stop contract at a run's step limit (`TrainConfig::steps`) for every backend: the CPU
//! `Trainer` and the GPU's `GpuTrainer` (MLP) and `GpuToy` (toys), all through `Backend`. Asked
//! for more steps than are left, each queues exactly the steps left and says so; past the limit
//! it queues none (and no error: the run is complete, not failed); a read-back then reports the
//! limit as the step count, the last step recorded, and later read-backs bring nothing new. The
//! page turns "at the limit" into its stop notice from these numbers, the same for every
//! backend (crates/concord-web/src/session.rs). On lavapipe.

mod common;
use common::gpu_arc;

use concord_core::train::{preset, Backend, Snapshot, TrainConfig, Trainer};
use concord_core::MethodSpec;

const LIMIT: usize = 7;

fn configs() -> Vec<(&'static str, TrainConfig)> {
    let mut mlp = preset("xor-conflict").unwrap();
    mlp.method = MethodSpec::plain("mgda");
    mlp.steps = LIMIT;
    let mut toy = preset("cagrad-toy").unwrap();
    toy.steps = LIMIT;
    toy.record_every = 3;
    vec![("mlp", mlp), ("toy", toy)]
}

/// One read-back, awaited to the end (a GPU read-back future is not dropped half-way: it has
/// taken the pending records).
fn read(b: &mut dyn Backend) -> Snapshot {
    pollster::block_on(b.read_back()).unwrap()
}

/// A read-back's step count, the steps of its new records, and its error.
type Read = (usize, Vec<usize>, Option<String>);

/// What a backend does around the limit: the steps queued per submit, and the read-backs.
fn around_the_limit(b: &mut dyn Backend) -> (Vec<usize>, Vec<Read>) {
    let mut queued = Vec::new();
    let mut reads = Vec::new();
    for k in [5, 5, 5] {
        queued.push(b.submit(k).unwrap());
        let s = read(b);
        reads.push((s.steps_done, s.new_records.iter().map(|r| r.step).collect(), s.error));
    }
    queued.push(b.submit(1000).unwrap());
    let s = read(b);
    reads.push((s.steps_done, s.new_records.iter().map(|r| r.step).collect(), s.error));
    assert_eq!(b.steps_submitted(), LIMIT);
    (queued, reads)
}

#[test]
fn every_backend_stops_at_the_step_limit_with_the_same_counts() {
    let gpu = gpu_arc();
    for (name, config) in configs() {
        let mut cpu = Trainer::new(config.clone()).unwrap();
        let cpu_result = around_the_limit(&mut cpu);
        let mut on_gpu = concord_gpu::backend(gpu.clone(), config.clone()).unwrap();
        let gpu_result = around_the_limit(on_gpu.as_mut());
        let (queued, reads) = &cpu_result;
        assert_eq!(queued, &vec![5, 2, 0, 0], "{name}: the steps left, then none");
        assert_eq!(reads.iter().map(|r| r.0).collect::<Vec<_>>(), vec![5, LIMIT, LIMIT, LIMIT], "{name}");
        assert!(reads.iter().all(|r| r.2.is_none()), "{name}: the limit is no error: {reads:?}");
        assert_eq!(reads[1].1.last(), Some(&(LIMIT - 1)), "{name}: the last step is recorded");
        assert!(reads[2].1.is_empty() && reads[3].1.is_empty(), "{name}: nothing new past the limit");
        assert_eq!(gpu_result, cpu_result, "{name}: the GPU backend at the limit");
    }
}

#[test]
fn the_pages_run_limit_builds_on_every_backend() {
    // The page's runs are configured with concord-core's largest run (crates/concord-web's
    // MAX_RUN_STEPS): every backend accepts it.
    let gpu = gpu_arc();
    for (name, mut config) in configs() {
        config.steps = concord_core::train::MAX_STEPS;
        Trainer::new(config.clone()).unwrap();
        let mut b = concord_gpu::backend(gpu.clone(), config).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(b.submit(3).unwrap(), 3, "{name}");
        assert_eq!(read(b.as_mut()).steps_done, 3, "{name}");
    }
}

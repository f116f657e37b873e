//! `concord train --config` with TF's L1/L2 penalty (the run config's `regularization`) on both
//! backends: the GPU trainer runs it (concord-gpu's tests/trunk_options.rs checks the numbers
//! over 200 steps), it matches the CPU run, and it shrinks the parameters.

mod common;

use common::concord;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("concord-train-trunk-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `concord train --config FILE --steps 60 --backend B --out FILE`: the run record's final train
/// losses and ‖params‖₂.
fn train(config: &Path, backend: &str, out: &Path) -> (Vec<f64>, f64) {
    let (config, out_s) = (config.to_str().unwrap(), out.to_str().unwrap());
    let o = concord(&["train", "--config", config, "--steps", "60", "--backend", backend, "--out", out_s]);
    assert!(o.status.success(), "{config} on {backend}: {}", String::from_utf8_lossy(&o.stderr));
    let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert!(rec["error"].is_null(), "{config} on {backend}: {}", rec["error"]);
    let floats =
        |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let norm = floats(&rec["params"]).iter().map(|p| p * p).sum::<f64>().sqrt();
    (floats(&rec["final_train_losses"]), norm)
}

#[test]
fn gpu_backend_trains_l2_as_the_cpu_and_it_shrinks_the_weights() {
    let dir = temp_dir("l2");
    let o = concord(&["config", "--preset", "xor-conflict"]);
    assert!(o.status.success());
    let mut config: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plain = dir.join("plain-config.json");
    std::fs::write(&plain, config.to_string()).unwrap();
    config["regularization"] = serde_json::json!({ "penalty": "L2", "rate": 0.03 });
    let l2 = dir.join("l2-config.json");
    std::fs::write(&l2, config.to_string()).unwrap();
    let (cpu, cpu_norm) = train(&l2, "cpu", &dir.join("cpu.json"));
    let (gpu, gpu_norm) = train(&l2, "gpu", &dir.join("gpu.json"));
    let (_, plain_norm) = train(&plain, "gpu", &dir.join("plain.json"));
    // The CPU runs its f32 fast path, the GPU f32 kernels: 60 steps apart by rounding only.
    for (a, b) in cpu.iter().zip(&gpu) {
        assert!((a - b).abs() <= 1e-4 * (a.abs() + 1e-3), "final train loss {a} (CPU) vs {b} (GPU)");
    }
    assert!((cpu_norm - gpu_norm).abs() <= 1e-4 * cpu_norm, "‖p‖ {cpu_norm} vs {gpu_norm}");
    assert!(gpu_norm < 0.95 * plain_norm, "L2 on the GPU: ‖p‖ {gpu_norm}, without it {plain_norm}");
    eprintln!("final train losses CPU {cpu:?} GPU {gpu:?}; ‖p‖ CPU {cpu_norm} GPU {gpu_norm} plain GPU {plain_norm}");
    let _ = std::fs::remove_dir_all(&dir);
}

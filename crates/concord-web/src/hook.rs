//! The test hook: `window.concord` = { ready, state(), step(n), reset(), exportRun(),
//! importRun(text) }. On a toy preset they drive the toy runs; on a multi-task preset the arena,
//! whose `state()` has `mode: "multitask"`, the preset, steps, lr, seed, task names and per run
//! {method, label, aggregator, weighting, steps, error, trainLosses, testLosses, paramCount,
//! paramsHead, paramsSum, cosine, conflictRatio, updateCosMean, curvePoints}.
//!
//! - `ready` turns true once the backend is chosen and the runs exist.
//! - `state()` returns a plain object: backend, adapter, reason, problem, steps, lr, optimizer
//!   and runs [{method, c, start, position}] (positions as last read back).
//! - `step(n)` returns a Promise that resolves to `state()` after exactly n more steps on the
//!   current backend, read back. While requests are pending, play does not advance the runs.
//! - `reset()` restarts the runs with the current settings and returns `state()`.
//! - `_simulateGpuFailure()` (test-only) makes the next GPU readback fail, to exercise the
//!   fallback that continues on the CPU from the last read-back positions (toy) or state (arena).
//! - `gridCheck()` (arena): per run {grid: "webgpu" | "cpu", cells, maxGap}: where the heatmap
//!   grid was computed and the largest |GPU − concord-core CPU| output over it.
//! - In the arena, `state()` also has `backend` (the first run's), `backendText` (the readout),
//!   `reason` (why the GPU is not used, or the device-loss notice) and per run `backend`
//!   ("webgpu" | "cpu") and `backendReason` (why that run is on the CPU).

use crate::{arena, runner};

/// Whether the arena (not the toy runner) is in charge.
fn arena_mode() -> bool {
    arena::with(|a| a.is_active()).unwrap_or(false)
}
use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

fn hook_object() -> Option<Object> {
    let window = web_sys::window()?;
    Reflect::get(&window, &"concord".into())
        .ok()?
        .dyn_into::<Object>()
        .ok()
}

/// Define `window.concord` (with `ready: false`).
pub fn install() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let hook = Object::new();
    let _ = Reflect::set(&hook, &"ready".into(), &false.into());

    let state = Closure::<dyn Fn() -> JsValue>::new(|| {
        if arena_mode() {
            return arena::with(|a| a.state_js()).unwrap_or(JsValue::NULL);
        }
        runner::with(|r| r.state_js()).unwrap_or(JsValue::NULL)
    });
    let _ = Reflect::set(&hook, &"state".into(), state.as_ref());
    state.forget();

    let step = Closure::<dyn Fn(JsValue) -> Promise>::new(|n: JsValue| {
        let n = n
            .as_f64()
            .filter(|n| n.is_finite() && *n > 0.0)
            .map(|n| n.round() as u64)
            .unwrap_or(0);
        Promise::new(&mut |resolve, _reject| {
            if arena_mode() {
                arena::with(|a| a.request_steps(n, Some(resolve)));
            } else {
                runner::with(|r| r.request_steps(n, Some(resolve)));
            }
        })
    });
    let _ = Reflect::set(&hook, &"step".into(), step.as_ref());
    step.forget();

    let reset = Closure::<dyn Fn() -> JsValue>::new(|| {
        if arena_mode() {
            return arena::with(|a| {
                a.rebuild();
                a.state_js()
            })
            .unwrap_or(JsValue::NULL);
        }
        runner::with(|r| {
            if r.is_ready() {
                r.reset();
            }
            r.state_js()
        })
        .unwrap_or(JsValue::NULL)
    });
    let _ = Reflect::set(&hook, &"reset".into(), reset.as_ref());
    reset.forget();

    let export = Closure::<dyn Fn() -> JsValue>::new(|| {
        arena::with(|a| JsValue::from_str(&a.export_json())).unwrap_or(JsValue::NULL)
    });
    let _ = Reflect::set(&hook, &"exportRun".into(), export.as_ref());
    export.forget();

    // Resolves to null on success, else the error message (also shown on the page).
    let import = Closure::<dyn Fn(JsValue) -> JsValue>::new(|text: JsValue| {
        let text = text.as_string().unwrap_or_default();
        match arena::with(|a| a.import_json(&text)) {
            Some(Ok(())) => JsValue::NULL,
            Some(Err(e)) => JsValue::from_str(&e),
            None => JsValue::from_str("the page is busy"),
        }
    });
    let _ = Reflect::set(&hook, &"importRun".into(), import.as_ref());
    import.forget();

    let grid = Closure::<dyn Fn() -> JsValue>::new(|| arena::with(|a| a.grid_check_js()).unwrap_or(JsValue::NULL));
    let _ = Reflect::set(&hook, &"gridCheck".into(), grid.as_ref());
    grid.forget();

    // Test-only: the next GPU readback fails, so the page must continue on the CPU.
    let fail = Closure::<dyn Fn() -> JsValue>::new(|| {
        if arena_mode() {
            return arena::with(|a| a.simulate_gpu_failure()).unwrap_or(false).into();
        }
        runner::with(|r| r.simulate_gpu_failure())
            .unwrap_or(false)
            .into()
    });
    let _ = Reflect::set(&hook, &"_simulateGpuFailure".into(), fail.as_ref());
    fail.forget();

    let _ = Reflect::set(&window, &"concord".into(), &hook);
}

/// Flip `window.concord.ready` to true.
pub fn mark_ready() {
    if let Some(hook) = hook_object() {
        let _ = Reflect::set(&hook, &"ready".into(), &true.into());
    }
}

//! The test hook: `window.concord` = { ready, state(), step(n), reset() }.
//!
//! - `ready` turns true once the backend is chosen and the runs exist.
//! - `state()` returns a plain object: backend, adapter, reason, problem, steps, lr, optimizer
//!   and runs [{method, c, start, position}] (positions as last read back).
//! - `step(n)` returns a Promise that resolves to `state()` after exactly n more steps on the
//!   current backend, read back. While requests are pending, play does not advance the runs.
//! - `reset()` restarts the runs with the current settings and returns `state()`.
//! - `_simulateGpuFailure()` (test-only) makes the next GPU readback fail, to exercise the
//!   fallback that continues on the CPU from the last read-back positions.

use crate::runner;
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
            runner::with(|r| r.request_steps(n, Some(resolve)));
        })
    });
    let _ = Reflect::set(&hook, &"step".into(), step.as_ref());
    step.forget();

    let reset = Closure::<dyn Fn() -> JsValue>::new(|| {
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

    // Test-only: the next GPU readback fails, so the page must continue on the CPU.
    let fail = Closure::<dyn Fn() -> JsValue>::new(|| {
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

//! The test hook: `window.concord` drives the page's playground. It exists only with the cargo
//! feature `test-hooks`, which `cargo xtask test` turns on for the browser tests; an embedded
//! figure's handle has the same methods in every build but `gridCheck` and `_simulateGpuFailure`.
//! `window.concord.mount(element, hash)` mounts another playground (its own session and state)
//! inside `element` and returns the same kind of object for it. Each object has:
//!
//! - `ready`: true once the backend is chosen and the runs exist.
//! - `state()`: a plain object: mode ("toy" | "multitask"), preset, problem (toys), backend,
//!   backendText, adapter, reason, steps, lr, optimizer, seed, tasks, and per run {method
//!   (toys: the aggregator name; else the run text), spec (`method@options`), options (the
//!   options' text, "" for none), label, aggregator, weighting, steps,
//!   error, trainLosses, testLosses, paramCount, paramsHead, paramsSum, cosine, conflictRatio,
//!   updateCosMean, lossWeights, aggregatorWeights, curvePoints, backend ("webgpu" | "cpu"),
//!   backendReason, moe} and for toy runs also c, start and position (as last read back).
//! - `step(n)`: a Promise of `state()` after exactly n more steps, read back.
//! - `reset()`: restarts the runs with the current settings and returns `state()`.
//! - `exportRun()` / `importRun(text)` (null on success, else the message).
//! - `gridCheck()`: per run, where its heatmap grid was computed ({grid: "webgpu" | "cpu", cells,
//!   maxGap}: a GPU grid's cell count and largest |GPU − CPU| output at the read-back parameters).
//! - `conflictMap(k)` (test-only): run k's latest per-point conflict map, the CPU's refreshed
//!   first ({run, engine ("webgpu" | "cpu"), step, runSteps, side, extent, cells: the smallest
//!   pairwise cosine per cell, row-major from the top left (x₂ = +extent), null where a gradient
//!   is zero; conflictShare; disagree: per cell, whether the tasks' noiseless labelling rules
//!   disagree there, for task-set data}), or null.
//! - `conflictMapCheck()` (test-only): per run, {engine, step, runSteps, side, maxGap,
//!   undefinedMismatch}: the largest |map − CPU reference| over the cells when the map is of the
//!   run's current parameters (the reference: concord-core's `Mlp::point_grams` in f64 there).
//! - `_simulateGpuFailure()` (test-only): the next GPU read-back fails as a lost device, to
//!   exercise the fallback that continues on the CPU from the last read-back state.
//! - `_setRunLimit(n)` (test-only): the runs stop at `n` steps instead of the page's limit
//!   (`null`: back to it); rebuilds the runs and returns `state()`.
//! - `wasmMemory()` (test-only): the wasm linear memory in bytes (the soak test's measure).
//! - `landscape()`: the landscape panel's last result (set by that panel).
//! - `network()`: the network view's last result: the run, its step, its parameters and the
//!   per-neuron conflict `layers[l][j]` (set by that panel).
//! - `sampleConflict()`: the sample-level conflict chart's data (set by that panel), every
//!   run's series completed and drawn first: {shown, runs: [{run, colour, backend, steps,
//!   trainPoints (0: no MLP), points: [{step, coherence, conflictingFraction, opposingShare,
//!   samples, top}]}]} — concord-core's `SampleConflict` of the train set at the run's parameter
//!   snapshots and latest read-back (`sample_series`).
//! - `dynamics(series?)`: the Training dynamics chart's data (set by that panel) for `series`
//!   ("spike" | "sam" | "lr" | "norm"; default the panel's select): {shown, series, runs: [{run,
//!   spec, colour, backend, steps, points: [[step, value]], switches, spikes, resets, testLosses:
//!   [[step, task 1's test loss]], gap: {atSwitch, worst, worstStep, last, gap} | null}]}.
//! - `merge()`: the Model merging panel's last result (set by that panel; computed on its button
//!   or when play pauses): {shown, busy, error, result: {step, tasks, sharedLen, base (θ₀),
//!   parentParams, theta0, parents, joints: [{label, colour, losses}], merges: [{method, lambda,
//!   losses, barriers: [{task, entezari, frankle}], coords, offPlane, params}], paths, grid,
//!   planeTotal, computeMs}}; losses are per-task train losses on the full training set.
//!
//! `window.concord.benchTrain(preset, method, steps, warmup, precision?)` (test-only, on the
//! page's object only): the page's wasm CPU trainer's raw step rate, not limited by frames — a
//! `concord_core::train::Trainer` of `preset(name)` with that method (and `config.steps =
//! warmup + steps`, as `concord bench train` builds it natively; `precision` "f32" | "f64", else
//! the preset's default), `warmup` untimed steps, then `steps` calls of `Trainer::step` timed
//! with `performance.now()`. Returns {preset, method, precision, steps, warmup, seconds,
//! stepsPerSecond, trainLosses (whole train set, after all the steps: `concord train --preset P
//! --method M --steps warmup+steps --json`'s final_losses)} or {error}. It blocks the page while
//! it runs (bench/page_steps.mjs, web/tests/page_bench.test.mjs).
//!
//! `window.concord.benchConflictMap(preset, steps, repeats)` (test-only, on the page's object
//! only): one 100 × 100 CPU conflict map refresh in the page's wasm — a `Trainer` of
//! `preset(name)` after `steps` steps, then `repeats` calls of `ConflictMap::cpu` over the
//! heatmap grid on [−6, 6]², each timed with `performance.now()`, and as many forward passes over
//! the same grid (what a heatmap refresh computes). Returns {preset, steps, repeats, side,
//! params, mapMs (median), mapMsMin, forwardMs (median), conflictShare} or {error}.

use crate::session::Session;
use js_sys::{Object, Promise, Reflect};
use leptos::prelude::{GetValue, LocalStorage, StoredValue};
use wasm_bindgen::prelude::*;

/// One playground's hook object (a JS object; Copy through a local arena slot so components and
/// closures can hold it).
#[derive(Clone, Copy)]
pub struct Hook(StoredValue<Object, LocalStorage>);

impl Hook {
    pub fn new() -> Hook {
        let obj = Object::new();
        let _ = Reflect::set(&obj, &"ready".into(), &false.into());
        Hook(StoredValue::new_local(obj))
    }

    pub fn object(&self) -> Object {
        self.0.get_value()
    }

    pub fn mark_ready(&self) {
        let _ = Reflect::set(&self.object(), &"ready".into(), &true.into());
    }

    fn set(&self, name: &str, value: &JsValue) {
        let _ = Reflect::set(&self.object(), &name.into(), value);
    }

    /// Put a method without arguments on the object.
    pub fn method0(&self, name: &str, f: impl Fn() -> JsValue + 'static) {
        let f = Closure::<dyn Fn() -> JsValue>::new(f);
        self.set(name, f.as_ref());
        f.forget();
    }

    /// Put a method with one argument on the object.
    pub fn method1(&self, name: &str, f: impl Fn(JsValue) -> JsValue + 'static) {
        let f = Closure::<dyn Fn(JsValue) -> JsValue>::new(f);
        self.set(name, f.as_ref());
        f.forget();
    }

    /// Call one of the object's methods without arguments (`JsValue::NULL` if it has none).
    pub fn call0(&self, name: &str) -> JsValue {
        Reflect::get(&self.object(), &name.into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .and_then(|f| f.call0(&JsValue::NULL).ok())
            .unwrap_or(JsValue::NULL)
    }

    /// Put the session's methods on the object.
    pub fn fill(&self, session: Session) {
        let state =
            Closure::<dyn Fn() -> JsValue>::new(move || session.with(|s| s.state_js()).unwrap_or(JsValue::NULL));
        self.set("state", state.as_ref());
        state.forget();

        let step = Closure::<dyn Fn(JsValue) -> Promise>::new(move |n: JsValue| {
            let n = n.as_f64().filter(|n| n.is_finite() && *n > 0.0).map(|n| n.round() as u64).unwrap_or(0);
            Promise::new(&mut |resolve, _reject| {
                session.with(|s| s.request_steps(n, Some(resolve)));
            })
        });
        self.set("step", step.as_ref());
        step.forget();

        let reset = Closure::<dyn Fn() -> JsValue>::new(move || {
            session
                .with(|s| {
                    s.rebuild();
                    s.state_js()
                })
                .unwrap_or(JsValue::NULL)
        });
        self.set("reset", reset.as_ref());
        reset.forget();

        let export = Closure::<dyn Fn() -> JsValue>::new(move || {
            session.with(|s| JsValue::from_str(&s.export_json())).unwrap_or(JsValue::NULL)
        });
        self.set("exportRun", export.as_ref());
        export.forget();

        let import = Closure::<dyn Fn(JsValue) -> JsValue>::new(move |text: JsValue| {
            let text = text.as_string().unwrap_or_default();
            match session.with(|s| s.import_json(&text)) {
                Some(Ok(())) => JsValue::NULL,
                Some(Err(e)) => JsValue::from_str(&e),
                None => JsValue::from_str("the page is busy"),
            }
        });
        self.set("importRun", import.as_ref());
        import.forget();

        self.fill_test_only(session);
    }

    /// The methods only the browser tests use, in a `test-hooks` build only.
    #[cfg(feature = "test-hooks")]
    fn fill_test_only(&self, session: Session) {
        let grid =
            Closure::<dyn Fn() -> JsValue>::new(move || session.with(|s| s.grid_check_js()).unwrap_or(JsValue::NULL));
        self.set("gridCheck", grid.as_ref());
        grid.forget();

        let fail = Closure::<dyn Fn() -> JsValue>::new(move || {
            session.with(|s| s.simulate_gpu_failure()).unwrap_or(false).into()
        });
        self.set("_simulateGpuFailure", fail.as_ref());
        fail.forget();

        let limit = Closure::<dyn Fn(JsValue) -> JsValue>::new(move |n: JsValue| {
            let n = n.as_f64().filter(|n| n.is_finite() && *n >= 1.0).map(|n| n as usize);
            crate::train_config::set_run_limit(n);
            session
                .with(|s| {
                    s.rebuild();
                    s.state_js()
                })
                .unwrap_or(JsValue::NULL)
        });
        self.set("_setRunLimit", limit.as_ref());
        limit.forget();

        let map = Closure::<dyn Fn(JsValue) -> JsValue>::new(move |k: JsValue| {
            let k = k.as_f64().filter(|k| k.is_finite() && *k >= 0.0).map_or(usize::MAX, |k| k as usize);
            session.with(|s| s.conflict_map_js(k)).unwrap_or(JsValue::NULL)
        });
        self.set("conflictMap", map.as_ref());
        map.forget();

        let check = Closure::<dyn Fn() -> JsValue>::new(move || {
            session.with(|s| s.conflict_check_js()).unwrap_or(JsValue::NULL)
        });
        self.set("conflictMapCheck", check.as_ref());
        check.forget();

        let memory = Closure::<dyn Fn() -> JsValue>::new(|| JsValue::from_f64(wasm_memory_bytes()));
        self.set("wasmMemory", memory.as_ref());
        memory.forget();
    }

    #[cfg(not(feature = "test-hooks"))]
    fn fill_test_only(&self, _session: Session) {}
}

/// The wasm module's linear memory in bytes (it only grows: the high-water mark of the page's
/// Rust heap).
#[cfg(feature = "test-hooks")]
fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .ok()
        .and_then(|m| m.buffer().dyn_into::<js_sys::ArrayBuffer>().ok())
        .map_or(0.0, |b| b.byte_length() as f64)
}

/// Define `window.concord` (with `ready: false` and `mount`) for the page's playground; only in a
/// `test-hooks` build (the browser tests'), never in the site `cargo xtask dist` writes.
#[cfg(feature = "test-hooks")]
pub fn install(mount_fn: fn(web_sys::HtmlElement, String, Hook)) -> Hook {
    let hook = Hook::new();
    let mount = Closure::<dyn Fn(JsValue, JsValue) -> JsValue>::new(move |el: JsValue, hash: JsValue| {
        let Ok(el) = el.dyn_into::<web_sys::HtmlElement>() else {
            return JsValue::from_str("mount(element, hash): element must be an HTML element");
        };
        let hash = hash.as_string().unwrap_or_default();
        let hook = Hook::new();
        let obj = hook.object();
        mount_fn(el, hash, hook);
        obj.into()
    });
    hook.set("mount", mount.as_ref());
    mount.forget();
    let bench = Closure::<dyn Fn(JsValue, JsValue, JsValue, JsValue, JsValue) -> JsValue>::new(
        |preset: JsValue, method: JsValue, steps: JsValue, warmup: JsValue, precision: JsValue| {
            let count = |v: &JsValue, min: f64| v.as_f64().filter(|n| n.is_finite() && *n >= min && *n <= 1e9);
            let out = Object::new();
            let result = match (preset.as_string(), method.as_string(), count(&steps, 1.0), count(&warmup, 0.0)) {
                (Some(p), Some(m), Some(s), Some(w)) if precision.is_undefined() || precision.is_string() => {
                    bench_train(&p, &m, s as usize, w as usize, precision.as_string().as_deref(), &out)
                }
                _ => Err("benchTrain(preset, method, steps ≥ 1, warmup ≥ 0, precision?): bad arguments".to_string()),
            };
            if let Err(e) = result {
                let _ = Reflect::set(&out, &"error".into(), &e.into());
            }
            out.into()
        },
    );
    hook.set("benchTrain", bench.as_ref());
    bench.forget();
    let bench_map = Closure::<dyn Fn(JsValue, JsValue, JsValue) -> JsValue>::new(
        |preset: JsValue, steps: JsValue, repeats: JsValue| {
            let count = |v: &JsValue, min: f64| v.as_f64().filter(|n| n.is_finite() && *n >= min && *n <= 1e6);
            let out = Object::new();
            let result = match (preset.as_string(), count(&steps, 0.0), count(&repeats, 1.0)) {
                (Some(p), Some(s), Some(r)) => bench_conflict_map(&p, s as usize, r as usize, &out),
                _ => Err("benchConflictMap(preset, steps ≥ 0, repeats ≥ 1): bad arguments".to_string()),
            };
            if let Err(e) = result {
                let _ = Reflect::set(&out, &"error".into(), &e.into());
            }
            out.into()
        },
    );
    hook.set("benchConflictMap", bench_map.as_ref());
    bench_map.forget();
    if let Some(window) = web_sys::window() {
        let _ = Reflect::set(&window, &"concord".into(), &hook.object());
    }
    hook
}

/// `window.concord.benchTrain`: fill `out` with the timing and the final losses (see the module
/// documentation).
#[cfg(feature = "test-hooks")]
fn bench_train(
    preset: &str,
    method: &str,
    steps: usize,
    warmup: usize,
    precision: Option<&str>,
    out: &Object,
) -> Result<(), String> {
    use concord_core::train::{preset as preset_config, Precision, Trainer};
    let performance = web_sys::window().and_then(|w| w.performance()).ok_or("no window.performance")?;
    let mut config = preset_config(preset)?;
    config.method = concord_core::MethodSpec::parse(method.trim())?;
    config.steps = warmup.checked_add(steps).ok_or("steps + warmup is too large")?;
    if let Some(text) = precision {
        config.precision = Precision::parse(text)?;
    }
    let precision = config.precision.name();
    let mut trainer = Trainer::new(config)?;
    for _ in 0..warmup {
        trainer.step()?;
    }
    let start = performance.now();
    for _ in 0..steps {
        trainer.step()?;
    }
    let seconds = (performance.now() - start) / 1000.0;
    let losses = js_sys::Array::new();
    for l in trainer.train_losses()? {
        losses.push(&JsValue::from_f64(l));
    }
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(out, &k.into(), &v);
    };
    set("preset", preset.into());
    set("method", method.into());
    set("precision", precision.into());
    set("steps", (steps as f64).into());
    set("warmup", (warmup as f64).into());
    set("seconds", seconds.into());
    set("stepsPerSecond", (steps as f64 / seconds).into());
    set("trainLosses", losses.into());
    Ok(())
}

/// `window.concord.benchConflictMap`: fill `out` with the timing (see the module documentation).
#[cfg(feature = "test-hooks")]
fn bench_conflict_map(preset: &str, steps: usize, repeats: usize, out: &Object) -> Result<(), String> {
    use crate::conflict_map::ConflictMap;
    use concord_core::train::{preset as preset_config, Trainer};
    let performance = web_sys::window().and_then(|w| w.performance()).ok_or("no window.performance")?;
    let mut config = preset_config(preset)?;
    config.steps = config.steps.max(steps + 1);
    let mut trainer = Trainer::new(config)?;
    for _ in 0..steps {
        trainer.step()?;
    }
    let mlp = trainer.mlp().ok_or("the preset has no MLP")?;
    let (side, extent) = (crate::grid::GRID, 6.0);
    let points = crate::grid::points_n(extent, side);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut map_ms, mut fwd_ms, mut share) = (Vec::new(), Vec::new(), None);
    for _ in 0..repeats {
        let t0 = performance.now();
        let map =
            ConflictMap::cpu(mlp, trainer.config().features.as_ref(), trainer.params(), &points, steps, extent, side)?;
        map_ms.push(performance.now() - t0);
        share = map.conflict_share();
        let t0 = performance.now();
        trainer.predict_points(&points).ok_or("no model")??;
        fwd_ms.push(performance.now() - t0);
    }
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(out, &k.into(), &v);
    };
    set("preset", preset.into());
    set("steps", (steps as f64).into());
    set("repeats", (repeats as f64).into());
    set("side", (side as f64).into());
    set("params", (trainer.params().len() as f64).into());
    set("mapMsMin", map_ms.iter().copied().fold(f64::INFINITY, f64::min).into());
    set("mapMs", median(map_ms).into());
    set("forwardMs", median(fwd_ms).into());
    set("conflictShare", share.map_or(JsValue::NULL, JsValue::from_f64));
    Ok(())
}

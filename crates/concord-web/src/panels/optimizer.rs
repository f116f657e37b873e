//! Optimizer, learning rate (live: no reset), steps per frame, and the CPU trainer's arithmetic.

use crate::state::use_cfg;
use crate::state::{fmt_num, Opt};
use concord_core::train::Precision;
use leptos::prelude::*;

const LR_PRESETS: [f64; 10] = [1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0];
const SPF_PRESETS: [u32; 10] = [1, 10, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/// The presets plus the current value (which may come from the URL), sorted.
fn with_current<T: PartialOrd + Copy>(presets: &[T], current: T) -> Vec<T> {
    let mut v = presets.to_vec();
    if !v.contains(&current) {
        v.push(current);
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    }
    v
}

#[component]
pub fn OptimizerPanel() -> impl IntoView {
    let cfg = use_cfg();
    let hidden = move |key: &'static str| move || cfg.with(|s| s.is_hidden(key));

    let lr_options = move || {
        let lr = cfg.with(|s| s.lr);
        with_current(&LR_PRESETS, lr)
            .into_iter()
            .map(|v| view! { <option value=fmt_num(v) prop:selected=move || cfg.with(|s| s.lr == v)>{fmt_num(v)}</option> })
            .collect_view()
    };
    let spf_options = move || {
        let spf = cfg.with(|s| s.spf);
        with_current(&SPF_PRESETS, spf)
            .into_iter()
            .map(|v| view! { <option value=v.to_string() prop:selected=move || cfg.with(|s| s.spf == v)>{v.to_string()}</option> })
            .collect_view()
    };

    view! {
        <section
            class="card"
            class:hidden=move || {
                cfg.with(|s| s.is_hidden("optimizer") && s.is_hidden("lr") && s.is_hidden("spf") && s.is_hidden("precision"))
            }
        >
            <h2>"Optimizer"</h2>
            <div class="field-row">
                <div class="field" class:hidden=hidden("optimizer")>
                    <label for="optimizer-select">"Optimizer"</label>
                    <select
                        id="optimizer-select"
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            if let Some(o) = Opt::ALL.into_iter().find(|o| o.name() == v) {
                                cfg.update(|s| s.optimizer = o);
                            }
                        }
                    >
                        {Opt::ALL
                            .into_iter()
                            .map(|o| view! { <option value=o.name() prop:selected=move || cfg.with(|s| s.optimizer == o)>{o.label()}</option> })
                            .collect_view()}
                    </select>
                </div>
                <div class="field" class:hidden=hidden("lr")>
                    <label for="lr-select">"Learning rate"</label>
                    <select
                        id="lr-select"
                        on:change=move |ev| {
                            if let Ok(lr) = event_target_value(&ev).parse::<f64>() {
                                if lr.is_finite() && lr > 0.0 {
                                    cfg.update(|s| s.lr = lr);
                                }
                            }
                        }
                    >
                        {lr_options}
                    </select>
                </div>
                <div class="field" class:hidden=hidden("spf")>
                    <label for="spf-select">"Steps / frame"</label>
                    <select
                        id="spf-select"
                        on:change=move |ev| {
                            if let Ok(spf) = event_target_value(&ev).parse::<u32>() {
                                cfg.update(|s| s.spf = spf.clamp(1, 20_000));
                            }
                        }
                    >
                        {spf_options}
                    </select>
                </div>
                <div class="field" class:hidden=hidden("precision")>
                    <label for="precision-select">"CPU arithmetic"</label>
                    <select
                        id="precision-select"
                        title="f32: the fast trainer (as PyTorch trains); f64: the reference it is tested against. Runs on the GPU are f32."
                        on:change=move |ev| {
                            if let Ok(p) = Precision::parse(&event_target_value(&ev)) {
                                cfg.update(|s| s.precision = p);
                            }
                        }
                    >
                        <option value="f32" prop:selected=move || cfg.with(|s| s.precision == Precision::F32)>"f32 (fast)"</option>
                        <option value="f64" prop:selected=move || cfg.with(|s| s.precision == Precision::F64)>"f64 (reference)"</option>
                    </select>
                </div>
            </div>
            <p class="hint">
                "Changing the learning rate keeps the runs and the optimizer state; the other settings "
                "restart them. (The toys’ papers: Adam, lr 10⁻³, 100 000 steps.)"
            </p>
        </section>
    }
}

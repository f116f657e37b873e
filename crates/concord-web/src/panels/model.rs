//! Model: trunk depth and widths, activation, loss per task, batch size, tied head init.

use crate::preset::Family;
use crate::state::ACTIVATIONS;
use crate::use_cfg;
use concord_core::model::{Activation, LossKind};
use leptos::prelude::*;

const MAX_LAYERS: usize = 6;
const MAX_WIDTH: usize = 64;

#[component]
pub fn ModelPanel() -> impl IntoView {
    let cfg = use_cfg();
    let no_model = move || cfg.with(|s| s.preset.family() == Family::Pareto);
    let per_task_loss = move || cfg.with(|s| s.preset.family() == Family::TaskSet);

    let layers = move || {
        let widths = cfg.with(|s| s.hidden_layers.clone());
        widths
            .into_iter()
            .enumerate()
            .map(|(l, w)| {
                let id = format!("layer-{}-width", l + 1);
                view! {
                    <div class="layer">
                        <label for=id.clone()>{format!("L{}", l + 1)}</label>
                        <input
                            id=id
                            type="number"
                            min="1"
                            max=MAX_WIDTH.to_string()
                            value=w.to_string()
                            on:change=move |ev| {
                                match event_target_value(&ev).trim().parse::<f64>() {
                                    Ok(x) if x.is_finite() => cfg.update(|s| s.hidden_layers[l] = x.round().clamp(1.0, MAX_WIDTH as f64) as usize),
                                    _ => cfg.update(|_| {}),
                                }
                            }
                        />
                    </div>
                }
            })
            .collect_view()
    };

    let losses = move || {
        let (tasks, losses) = cfg.with(|s| (s.tasks.clone(), s.losses.clone()));
        tasks
            .into_iter()
            .zip(losses)
            .enumerate()
            .map(|(t, (d, l))| {
                let id = format!("task-{}-loss", t + 1);
                view! {
                    <div class="field inline">
                        <label for=id.clone() title="BCE: cross-entropy on ±1 labels; MSE: squared error">{format!("Task {} loss", t + 1)}</label>
                        <select
                            id=id
                            on:change=move |ev| {
                                let l = if event_target_value(&ev) == "mse" { LossKind::Mse } else { LossKind::Bce };
                                cfg.update(|s| s.losses[t] = l);
                            }
                        >
                            <option value="bce" selected=l == LossKind::Bce disabled=!d.is_classification()>"BCE"</option>
                            <option value="mse" selected=l == LossKind::Mse>"MSE"</option>
                        </select>
                    </div>
                }
            })
            .collect_view()
    };

    view! {
        <section class="card" class:hidden=move || cfg.with(|s| s.is_hidden("model"))>
            <h2>"Model"</h2>
            <p class="hint" class:hidden=move || !no_model()>"This preset trains x ∈ ℝ²⁰ directly: there is no network."</p>
            <div class:hidden=no_model>
                <div class="field">
                    <span class="label">"Shared trunk: " {move || cfg.with(|s| s.hidden_layers.len())} " hidden layers"</span>
                    <div class="layers">
                        <button
                            type="button"
                            class="btn small"
                            aria-label="Remove a hidden layer"
                            on:click=move |_| cfg.update(|s| { s.hidden_layers.pop(); })
                        >
                            "−"
                        </button>
                        {layers}
                        <button
                            type="button"
                            class="btn small"
                            aria-label="Add a hidden layer"
                            on:click=move |_| cfg.update(|s| {
                                if s.hidden_layers.len() < MAX_LAYERS {
                                    let w = s.hidden_layers.last().copied().unwrap_or(8);
                                    s.hidden_layers.push(w);
                                }
                            })
                        >
                            "+"
                        </button>
                    </div>
                </div>
                <div class="field inline">
                    <label for="activation-select">"Activation"</label>
                    <select
                        id="activation-select"
                        on:change=move |ev| {
                            if let Ok(a) = event_target_value(&ev).parse::<Activation>() {
                                cfg.update(|s| s.activation = a);
                            }
                        }
                    >
                        {ACTIVATIONS
                            .iter()
                            .map(|n| view! { <option value=*n prop:selected=move || cfg.with(|s| s.activation.name() == *n)>{*n}</option> })
                            .collect_view()}
                    </select>
                </div>
                <div class:hidden=move || !per_task_loss()>{losses}</div>
                <div class="field inline">
                    <label for="batch-input">"Batch size"</label>
                    <input
                        id="batch-input"
                        type="number"
                        min="1"
                        max="2000"
                        prop:value=move || cfg.with(|s| s.batch).to_string()
                        on:change=move |ev| {
                            match event_target_value(&ev).trim().parse::<f64>() {
                                Ok(x) if x.is_finite() => cfg.update(|s| s.batch = x.round().clamp(1.0, 2000.0) as usize),
                                _ => cfg.update(|_| {}),
                            }
                        }
                    />
                </div>
                <div class="field inline">
                    <input
                        id="tied-heads"
                        type="checkbox"
                        prop:checked=move || cfg.with(|s| s.tied_heads)
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            cfg.update(|s| s.tied_heads = on);
                        }
                    />
                    <label for="tied-heads">"Tied, small head init (conflict from the labels alone)"</label>
                </div>
            </div>
        </section>
    }
}

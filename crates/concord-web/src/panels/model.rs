//! Model: trunk depth and widths, activation, loss per task, batch size, tied head init.

use crate::preset::Family;
use crate::state::use_cfg;
use crate::state::{MoeChoice, ACTIVATIONS, MAX_EXPERTS, ROUTERS};
use concord_core::model::moe::MAX_DSELECT_GAMMA;
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
                    <label for="model-select" title="MoE: the trunk above feeds a block of experts chosen by a router (x → trunk → a + Σ G_e(a)·E_e(a) → heads)">"Model"</label>
                    <select
                        id="model-select"
                        on:change=move |ev| {
                            let moe = event_target_value(&ev) == "moe";
                            cfg.update(|s| s.moe = moe.then(|| s.moe_or_default()));
                        }
                    >
                        <option value="mlp" prop:selected=move || cfg.with(|s| s.moe.is_none())>"MLP"</option>
                        <option value="moe" prop:selected=move || cfg.with(|s| s.moe.is_some())>"MoE"</option>
                    </select>
                </div>
                <div class="moe-controls" class:hidden=move || cfg.with(|s| s.moe.is_none())>
                    <div class="field inline">
                        <label for="router-select">"Router"</label>
                        <select
                            id="router-select"
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                if let Some(name) = ROUTERS.iter().find(|n| **n == v) {
                                    cfg.update(|s| s.moe = Some(MoeChoice { router: name, ..s.moe_or_default() }));
                                }
                            }
                        >
                            {ROUTERS
                                .iter()
                                .map(|n| view! { <option value=*n prop:selected=move || cfg.with(|s| s.moe_or_default().router == *n)>{*n}</option> })
                                .collect_view()}
                        </select>
                    </div>
                    {moe_number("experts-input", "Experts E", "Number of experts (each 8 hidden units); cgc and ple: shared experts per level, plus one per task", 1.0, MAX_EXPERTS as f64, |_| true, |c| c.experts as f64, |c, x| {
                        c.experts = x.round() as usize;
                        c.k = c.k.min(c.experts);
                    })}
                    {moe_number("k-input", "Top k", "Experts per token (noisy-topk and task routers); selectors k for dselect-k", 1.0, MAX_EXPERTS as f64, MoeChoice::uses_k, |c| c.k as f64, |c, x| c.k = (x.round() as usize).min(c.experts))}
                    {moe_number("cf-input", "Capacity ×", "Capacity factor (switch, top2, expert-choice): an expert takes at most cf·T/E tokens", 0.1, 8.0, MoeChoice::uses_cf, |c| c.cf, |c, x| c.cf = x)}
                    {moe_number("task-experts-input", "Task experts", "Experts owned by each task (cgc; per level for ple)", 0.0, MAX_EXPERTS as f64, MoeChoice::uses_task_experts, |c| c.task_experts as f64, |c, x| c.task_experts = x.round() as usize)}
                    {moe_number("gamma-input", "γ", "Width γ of DSelect-k's smooth step", 0.01, MAX_DSELECT_GAMMA, MoeChoice::uses_gamma, |c| c.gamma, |c, x| c.gamma = x)}
                    {moe_number("aux-entropy-input", "Entropy λ", "Weight of DSelect-k's selector-entropy regulariser (0 = off; the paper's schedule uses 1e-6)", 0.0, 1.0, MoeChoice::uses_gamma, |c| c.aux_entropy, |c, x| c.aux_entropy = x)}
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

/// A number input for one MoE setting, clamped to [min, max]; a non-number restores the value.
/// Disabled where the chosen router does not use the setting.
#[allow(clippy::too_many_arguments)]
fn moe_number(
    id: &'static str,
    label: &'static str,
    title: &'static str,
    min: f64,
    max: f64,
    used: fn(&MoeChoice) -> bool,
    get: fn(&MoeChoice) -> f64,
    set: fn(&mut MoeChoice, f64),
) -> impl IntoView {
    let cfg = use_cfg();
    view! {
        <div class="field inline">
            <label for=id title=title>{label}</label>
            <input
                id=id
                type="number"
                min=min.to_string()
                max=max.to_string()
                step="any"
                prop:disabled=move || !cfg.with(|s| used(&s.moe_or_default()))
                prop:value=move || cfg.with(|s| get(&s.moe_or_default())).to_string()
                on:change=move |ev| {
                    match event_target_value(&ev).trim().parse::<f64>() {
                        Ok(x) if x.is_finite() => cfg.update(|s| {
                            let mut c = s.moe_or_default();
                            set(&mut c, x.clamp(min, max));
                            s.moe = Some(c);
                        }),
                        _ => cfg.update(|_| {}),
                    }
                }
            />
        </div>
    }
}

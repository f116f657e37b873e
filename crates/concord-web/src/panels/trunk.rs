//! TF Playground's trunk controls: the input features of the 2-D point (a toggle changes the
//! model's input dimension), L1/L2 regularisation with TF's rate menu, and the initialisation.

use crate::preset::Family;
use crate::session::use_session;
use crate::state::{use_cfg, Notices};
use concord_core::data::{Feature, FeatureSet};
use concord_core::train::{Init, Penalty, TF_REGULARIZATION_RATES};
use leptos::prelude::*;

#[component]
pub fn TrunkPanel() -> impl IntoView {
    let cfg = use_cfg();
    let session = use_session();
    let notices = use_context::<Notices>();
    // Features map 2-D points: the task sets and the user's CSV.
    let points = move || cfg.with(|s| s.preset.family() == Family::TaskSet) || session.ui.csv.with(Option::is_some);
    let mlp = move || cfg.with(|s| s.moe.is_none() && s.preset.family() != Family::Pareto);
    let hidden = move |key: &'static str| move || cfg.with(|s| s.is_hidden(key));

    let feature = move |f: Feature| {
        let id = format!("feature-{}", f.key());
        view! {
            <span class="toggle feature-toggle" class:hidden=hidden(f.key())>
                <input
                    type="checkbox"
                    id=id.clone()
                    prop:disabled=move || !(points() && mlp())
                    prop:checked=move || cfg.with(|s| s.features.contains(f))
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        cfg.update(|s| {
                            let mut list: Vec<Feature> = s.features.features().to_vec();
                            list.retain(|g| *g != f);
                            if on {
                                list.push(f);
                            }
                            s.features = FeatureSet::new(&list).unwrap_or_else(|why| {
                                if let Some(Notices(n)) = notices {
                                    n.update(|v| v.push(format!("input features: {why}; using x₁, x₂")));
                                }
                                FeatureSet::raw()
                            });
                        });
                    }
                />
                <label for=id>{f.label()}</label>
            </span>
        }
    };
    let input_dim = move || cfg.with(|s| if points() && mlp() { s.features.len() } else { 2 });

    view! {
        <section class="card" class:hidden=move || cfg.with(|s| s.is_hidden("model")) data-panel="trunk">
            <h2>"Features & regularization"</h2>
            <div class="field">
                <span class="label" title="What the model reads of each 2-D point (TF Playground's input nodes)">"Input features"</span>
                <div class="feature-toggles" role="group" aria-label="Input features">
                    {Feature::ALL.into_iter().map(feature).collect_view()}
                </div>
                <span class="hint">
                    "The model reads "
                    <span data-testid="input-dim">{input_dim}</span>
                    " inputs."
                    <span class:hidden=move || points() && mlp()>" Features apply to an MLP on 2-D points (task sets, CSV)."</span>
                </span>
            </div>
            <div class="field inline" class:hidden=hidden("regularization")>
                <label for="regularization-select" title="A penalty on the weights (not the biases); its gradient joins the aggregated update before the optimizer">"Regularization"</label>
                <select
                    id="regularization-select"
                    prop:disabled=move || !mlp()
                    on:change=move |ev| {
                        let p = Penalty::parse(&event_target_value(&ev));
                        cfg.update(|s| s.regularization = p);
                    }
                >
                    <option value="none" prop:selected=move || cfg.with(|s| s.regularization.is_none())>"None"</option>
                    <option value="L1" prop:selected=move || cfg.with(|s| s.regularization == Some(Penalty::L1))>"L1"</option>
                    <option value="L2" prop:selected=move || cfg.with(|s| s.regularization == Some(Penalty::L2))>"L2"</option>
                </select>
            </div>
            <div class="field inline" class:hidden=hidden("regularizationRate")>
                <label for="reg-rate-select" title="TF Playground's rates (0: no penalty); L1/L2 trains on the GPU as on the CPU">"Regularization rate"</label>
                <select
                    id="reg-rate-select"
                    prop:disabled=move || !mlp()
                    on:change=move |ev| {
                        if let Ok(r) = event_target_value(&ev).parse::<f64>() {
                            cfg.update(|s| s.reg_rate = r);
                        }
                    }
                >
                    {move || {
                        let current = cfg.with(|s| s.reg_rate);
                        let mut rates = TF_REGULARIZATION_RATES.to_vec();
                        if !rates.contains(&current) {
                            rates.push(current);
                            rates.sort_by(f64::total_cmp);
                        }
                        rates
                            .into_iter()
                            .map(|r| view! { <option value=r.to_string() prop:selected=r == current>{r.to_string()}</option> })
                            .collect_view()
                    }}
                </select>
            </div>
            <div class="field inline" class:hidden=hidden("init")>
                <label for="init-select" title="Concord's seeded Glorot/He draw, all zeros (TF's initZero), or TF's U(−0.5, 0.5) weights with 0.1 biases">"Initialisation"</label>
                <select
                    id="init-select"
                    prop:disabled=move || !mlp()
                    on:change=move |ev| {
                        let i = Init::parse(&event_target_value(&ev)).unwrap_or_default();
                        cfg.update(|s| s.init = i);
                    }
                >
                    <option value="default" prop:selected=move || cfg.with(|s| s.init == Init::Default)>"Glorot/He"</option>
                    <option value="zero" prop:selected=move || cfg.with(|s| s.init == Init::Zero)>"Zero"</option>
                    <option value="tf-uniform" prop:selected=move || cfg.with(|s| s.init == Init::TfUniform)>"TF: U(−0.5, 0.5), bias 0.1"</option>
                </select>
            </div>
        </section>
    }
}

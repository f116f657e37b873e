//! Problem select: CAGrad's toy as published, or the Nash-MTL/FAMO variant with L₁ × 0.1.

use crate::use_cfg;
use concord_core::ProblemKind;
use leptos::prelude::*;

fn label(p: ProblemKind) -> &'static str {
    match p {
        ProblemKind::CagradToy => "CAGrad toy (toy.py)",
        ProblemKind::CagradToyScaled => "Scaled: L₁ × 0.1 (Nash-MTL, FAMO)",
    }
}

#[component]
pub fn ProblemPanel() -> impl IntoView {
    let cfg = use_cfg();
    let note = move || {
        match cfg.with(|s| s.problem) {
        ProblemKind::CagradToy => "3 starts, as in CAGrad’s toy.py. All three have cos(g₁, g₂) > 0 at the start.",
        ProblemKind::CagradToyScaled => {
            "5 starts, as in Nash-MTL and FAMO. The Pareto set is unchanged by the scale; the average-loss optimum moves."
        }
    }
    };
    view! {
        <section class="card" class:hidden=move || cfg.with(|s| s.is_hidden("problem"))>
            <h2>"Problem"</h2>
            <div class="field">
                <label for="problem-select">"Two-objective toy"</label>
                <select
                    id="problem-select"
                    on:change=move |ev| {
                        if let Ok(p) = event_target_value(&ev).parse::<ProblemKind>() {
                            cfg.update(|s| s.problem = p);
                        }
                    }
                >
                    {ProblemKind::ALL
                        .into_iter()
                        .map(|p| {
                            view! {
                                <option value=p.name() prop:selected=move || cfg.with(|s| s.problem == p)>
                                    {label(p)}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </div>
            <p class="hint">{note}</p>
        </section>
    }
}

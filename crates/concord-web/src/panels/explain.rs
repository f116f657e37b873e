//! The short text that says what the figure shows.

use crate::state::use_cfg;
use concord_core::ProblemKind;
use leptos::prelude::*;

#[component]
pub fn ExplainPanel() -> impl IntoView {
    let cfg = use_cfg();
    let scaled = move || cfg.with(|s| s.problem() == ProblemKind::CagradToyScaled);
    view! {
        <article class="card explain">
            <h2>"What the toy shows"</h2>
            <p>
                "Two losses over a point x = (x₁, x₂). Below x₂ = 0 they are bowls centred at "
                "x₁ = +7 (L₁) and x₁ = −7 (L₂); above, narrow log-valleys. Every point of the dark "
                "segment is " <em>"Pareto-optimal"</em> ": one loss can only drop if the other rises. "
                "The star is the best point for the " <em>"average"</em> " loss."
            </p>
            <ul class="explain-list">
                <li>
                    <b class="m-mean">"Mean"</b>
                    " follows ½(g₁ + g₂). Where the gradients conflict and one is much larger, it "
                    "crawls along a valley or stalls far from both optima."
                </li>
                <li>
                    <b class="m-mgda">"MGDA"</b> " and " <b class="m-pcgrad">"PCGrad"</b>
                    " never trade one task for the other, so they reach the Pareto set, but "
                    "wherever they first meet it, not necessarily near the star."
                </li>
                <li>
                    <b class="m-cagrad">"CAGrad"</b>
                    " searches a ball of radius c·‖g₀‖ around the mean gradient for the direction "
                    "with the best worst-case gain: conflict-averse like MGDA, yet it heads for the "
                    "average-loss optimum (for c < 1)."
                </li>
            </ul>
            <Show when=scaled>
                <p class="hint">
                    "Scaled variant: L₁ is multiplied by 0.1. The Pareto set is the same, but the "
                    "average optimum moves to x₁ ≈ −5.7, and scale-sensitive methods favour L₂."
                </p>
            </Show>
            <p class="hint">
                "Keys: Space play/pause · S step · R reset. The URL hash keeps every setting; "
                "add " <code>"hideText=true"</code> " or " <code>"<control>_hide=true"</code> " to trim the page."
            </p>
        </article>
    }
}

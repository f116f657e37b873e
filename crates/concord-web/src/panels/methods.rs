//! Which aggregators run, and CAGrad's c.

use crate::plot;
use crate::state::{fmt_num, METHODS};
use crate::use_cfg;
use concord_core::Method;
use leptos::prelude::*;

fn method_for(name: &str, c: f64) -> Method {
    match name {
        "mean" => Method::Mean,
        "sum" => Method::Sum,
        "pcgrad" => Method::PcGrad,
        "mgda" => Method::Mgda,
        _ => Method::CaGrad { c },
    }
}

fn describe(name: &str) -> &'static str {
    match name {
        "mean" => "½(g₁ + g₂)",
        "sum" => "g₁ + g₂",
        "pcgrad" => "project away conflicts",
        "mgda" => "min-norm point of the hull",
        _ => "best worst-case gain near g₀",
    }
}

#[component]
pub fn MethodsPanel() -> impl IntoView {
    let cfg = use_cfg();
    let c_hidden = move || cfg.with(|s| s.is_hidden("c"));

    let rows = METHODS
        .iter()
        .map(|&name| {
            let colour = plot::method_colour(&method_for(name, 0.0));
            let id = format!("method-{name}");
            let checked = move || cfg.with(|s| s.methods.contains(&name));
            let label = method_for(name, 0.0).label();
            let label = if name == "cagrad" { "CAGrad".to_string() } else { label };
            view! {
                <li class="method-row">
                    <input
                        type="checkbox"
                        id=id.clone()
                        prop:checked=checked
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            cfg.update(|s| {
                                let before = s.methods.clone();
                                s.methods = METHODS
                                    .iter()
                                    .copied()
                                    .filter(|n| if *n == name { on } else { before.contains(n) })
                                    .collect();
                            });
                        }
                    />
                    <label for=id>
                        <span class="swatch" style=format!("background:{colour}") aria-hidden="true"></span>
                        <span class="method-name">{label}</span>
                        <span class="method-desc">{describe(name)}</span>
                    </label>
                </li>
            }
        })
        .collect_view();

    view! {
        <section class="card" class:hidden=move || cfg.with(|s| s.is_hidden("methods") && s.is_hidden("c"))>
            <h2>"Methods"</h2>
            <ul class="methods" class:hidden=move || cfg.with(|s| s.is_hidden("methods"))>{rows}</ul>
            <div class="field inline" class:hidden=c_hidden>
                <label for="cagrad-c">"CAGrad c"</label>
                <input
                    id="cagrad-c"
                    type="number"
                    min="0"
                    max="10"
                    step="0.1"
                    prop:value=move || fmt_num(cfg.with(|s| s.c))
                    on:change=move |ev| {
                        match event_target_value(&ev).trim().parse::<f64>() {
                            Ok(c) if c.is_finite() => cfg.update(|s| s.c = c.clamp(0.0, 10.0)),
                            // Not a number: put the current value back.
                            _ => cfg.update(|_| {}),
                        }
                    }
                />
            </div>
            <p class="hint" class:hidden=c_hidden>
                "torchjd convention: no 1/(1+c) rescale. toy.py divides CAGrad’s direction by 1+c; "
                "with Adam a constant factor hardly changes the path."
            </p>
        </section>
    }
}

//! The preset select and its explanation card (what conflict to look for).

use crate::preset::Preset;
use crate::state::use_cfg;
use crate::state::State;
use leptos::prelude::*;

#[component]
pub fn PresetPanel() -> impl IntoView {
    let cfg = use_cfg();
    view! {
        <section class="card" class:hidden=move || cfg.with(|s| s.is_hidden("preset"))>
            <h2>"Preset"</h2>
            <div class="field">
                <label for="preset-select">"Experiment"</label>
                <select
                    id="preset-select"
                    on:change=move |ev| {
                        if let Some(p) = Preset::from_name(&event_target_value(&ev)) {
                            // A preset resets every setting to its defaults; views and hide flags stay.
                            cfg.update(|s| {
                                let keep = (s.hidden.clone(), s.hide_text, s.play);
                                *s = State::for_preset(p);
                                (s.hidden, s.hide_text, s.play) = keep;
                            });
                        }
                    }
                >
                    {Preset::ALL
                        .into_iter()
                        .map(|p| {
                            view! {
                                <option value=p.name() prop:selected=move || cfg.with(|s| s.preset == p)>
                                    {p.label()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </div>
        </section>
    }
}

/// The card beside the figures: what the preset is and what to look for.
#[component]
pub fn PresetCard() -> impl IntoView {
    let cfg = use_cfg();
    let aui = crate::session::use_session().ui;
    let preset = move || cfg.with(|s| s.preset);
    let csv = move || if preset().is_toy() { None } else { aui.csv.get() };
    view! {
        <Show when=move || csv().is_some()>
            <article class="card explain" data-testid="csv-card">
                <h2>"Your data"</h2>
                <p>{move || csv().unwrap_or_default()}</p>
                <ul class="explain-list">
                    <li>"Cosine matrix and history: red (below 0) means two of your tasks pull the shared trunk apart."</li>
                    <li>"Loss space: a method whose trail moves up or left is trading one task for another."</li>
                    <li>"Try a non-conflicting method (MGDA, UPGrad, CAGrad) next to Mean in the arena."</li>
                </ul>
            </article>
        </Show>
        <article class="card explain" data-testid="preset-card" class:hidden=move || csv().is_some()>
            <h2>{move || preset().label()}</h2>
            <p>{move || preset().card().0}</p>
            <h3>"What to look for"</h3>
            <ul class="explain-list">
                {move || preset().card().1.iter().map(|l| view! { <li>{*l}</li> }).collect_view()}
            </ul>
            <p class="hint" class:hidden=move || preset().is_toy()>
                "Every method in the arena starts from the same weights on the same data, so any "
                "difference comes from how it combines the task gradients. Keys: Space play/pause · "
                "S step · R reset."
            </p>
        </article>
    }
}

//! Notices about URL-hash values that were dropped or clamped (the first `MAX_NOTICES`, then
//! one line counting the rest).

use crate::state::Notices;
use leptos::prelude::*;

#[component]
pub fn NoticesPanel() -> impl IntoView {
    let Notices(notices) = expect_context::<Notices>();
    let what = if crate::state::in_figure() {
        "Some figure attributes were adjusted:"
    } else {
        "Some URL settings were adjusted:"
    };
    view! {
        <Show when=move || notices.with(|n| !n.is_empty())>
            <div class="notices" role="alert" data-testid="notices">
                <div class="notices-body">
                    <strong>{what}</strong>
                    <ul>
                        // Capped here too: a figure puts its own notices before the hash's.
                        {move || {
                            crate::state::cap_notices(notices.get()).into_iter().map(|n| view! { <li>{n}</li> }).collect_view()
                        }}
                    </ul>
                </div>
                <button type="button" class="btn small" aria-label="Dismiss the notices" on:click=move |_| notices.set(Vec::new())>
                    "Dismiss"
                </button>
            </div>
        </Show>
    }
}

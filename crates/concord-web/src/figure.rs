//! The embeddable figure: `<concord-figure>` (a small JS shim, web/concord-embed.js) calls the
//! exported `mount_figure(target, attributes, env)`, which mounts one session with a chosen
//! view of the playground's own panels inside `target` and returns the element's JS API.
//!
//! Attributes are the playground's URL-hash keys, read by the same typed parser (`State::
//! from_hash`: same clamping, same notices), plus the figure's own keys: `view` (which panels),
//! `controls` (none | minimal | full), `autoplay` (visible | off) and `height`. HTML lowercases
//! attribute names, so keys match case-insensitively and in kebab-case (`train-ratio`,
//! `steps-per-frame` → `spf`); `methods` names the runs (the hash's `arena`) and `loss-view` the
//! contour's loss (the hash's `view`, a name the figure uses for its panels).

use crate::hook::Hook;
use crate::panels;
use crate::session::{self, Session};
use crate::state::{FigurePanels, Notices, State, HIDABLE_CONTROLS, PROPS};
use js_sys::{Object, Reflect};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

/// What the figure shows, by the `view` attribute's names.
const VIEWS: &[(&str, &[&str])] = &[
    ("toy", &["toy"]),
    ("heatmaps", &["heatmaps"]),
    ("conflict-map", &["conflictMap"]),
    ("sample-conflict", &["samples"]),
    ("curves", &["curves"]),
    ("cosine", &["cosine"]),
    ("conflict", &["conflict"]),
    ("loss-space", &["lossSpace"]),
    ("weights", &["weights"]),
    ("landscape", &["landscape"]),
    ("moe", &["moe", "moeRouting", "moeCapacity", "moeMap", "moeConflict"]),
    ("moe-routing", &["moe", "moeRouting"]),
    ("moe-capacity", &["moe", "moeCapacity"]),
    ("moe-map", &["moe", "moeMap"]),
    ("moe-conflict", &["moe", "moeConflict"]),
];

/// Other spellings of the view names.
const VIEW_ALIASES: &[(&str, &str)] = &[
    ("race", "toy"),
    ("contour", "toy"),
    ("boundary", "heatmaps"),
    ("outputs", "heatmaps"),
    ("loss-curves", "curves"),
    ("losses", "curves"),
    ("lossspace", "loss-space"),
    ("routing", "moe-routing"),
];

/// Panels that exist on the toys (the rest need a network and its data).
const TOY_PANELS: &[&str] = &["toy", "curves", "cosine", "conflict", "lossSpace", "weights"];

/// The figure's own keys (not the playground's hash).
const FIGURE_KEYS: &[&str] = &["view", "controls", "autoplay", "height", "play"];

/// Attributes that belong to the page, not to Concord: ignored without a notice.
const PAGE_ATTRIBUTES: &[&str] =
    &["id", "class", "style", "slot", "title", "lang", "dir", "tabindex", "hidden", "role"];

pub const DEFAULT_HEIGHT: u32 = 420;
pub const MIN_HEIGHT: u32 = 160;
pub const MAX_HEIGHT: u32 = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controls {
    None,
    Minimal,
    Full,
}

impl Controls {
    fn name(self) -> &'static str {
        match self {
            Controls::None => "none",
            Controls::Minimal => "minimal",
            Controls::Full => "full",
        }
    }
}

/// The figure's own settings (everything else is the playground's `State`).
#[derive(Clone, Debug, PartialEq)]
pub struct FigureOptions {
    /// The `view` names asked for, in order; empty: the preset's default view.
    pub views: Vec<&'static str>,
    pub controls: Controls,
    /// `autoplay`: Some(true) visible, Some(false) off; None when not given.
    pub autoplay: Option<bool>,
    /// The hash's `play` key, when given (it starts the figure as `autoplay="visible"` would).
    pub play: Option<bool>,
    pub height: u32,
}

/// Attributes read: the hash they amount to, the figure's options and one notice per value that
/// was dropped or clamped.
#[derive(Debug)]
pub struct Parsed {
    pub hash: String,
    pub options: FigureOptions,
    pub notices: Vec<String>,
}

fn squash(name: &str) -> String {
    name.chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect()
}

/// Only `%` and `&` would change how `State::from_hash` splits the pairs.
fn encode(value: &str) -> String {
    value.replace('%', "%25").replace('&', "%26")
}

/// Read a figure's attributes (names as the DOM gives them).
pub fn parse_attributes(attrs: &[(String, String)]) -> Parsed {
    let mut notices = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut options = FigureOptions {
        views: Vec::new(),
        controls: Controls::Minimal,
        autoplay: None,
        play: None,
        height: DEFAULT_HEIGHT,
    };
    let has_arena = attrs.iter().any(|(k, _)| squash(k) == "arena");
    for (name, value) in attrs {
        let lower = name.to_ascii_lowercase();
        let value = value.trim();
        if PAGE_ATTRIBUTES.contains(&lower.as_str())
            || lower.starts_with("aria-")
            || lower.starts_with("data-")
            || lower.starts_with("on")
        {
            continue;
        }
        if let Some(control) = lower.strip_suffix("_hide").or_else(|| lower.strip_suffix("-hide")) {
            let key = HIDABLE_CONTROLS.iter().map(|(k, _)| *k).find(|k| squash(k) == squash(control));
            // An unknown control still reaches the parser, which names it in a notice.
            pairs.push((format!("{}_hide", key.unwrap_or(control)), value.to_string()));
            continue;
        }
        match squash(&lower).as_str() {
            "view" => options.views = parse_views(value, &mut notices),
            "controls" => {
                options.controls = match value.to_ascii_lowercase().as_str() {
                    "none" => Controls::None,
                    "minimal" | "" => Controls::Minimal,
                    "full" => Controls::Full,
                    other => {
                        notices.push(format!("controls={other}: expected none, minimal or full; using minimal"));
                        Controls::Minimal
                    }
                }
            }
            "autoplay" => {
                options.autoplay = match value.to_ascii_lowercase().as_str() {
                    "visible" | "true" | "" => Some(true),
                    "off" | "false" | "none" => Some(false),
                    other => {
                        notices.push(format!("autoplay={other}: expected visible or off; using off"));
                        Some(false)
                    }
                }
            }
            "height" => options.height = parse_height(value, &mut notices),
            "play" => match value {
                "true" => options.play = Some(true),
                "false" => options.play = Some(false),
                other => notices.push(format!("play={other}: expected true or false; ignored")),
            },
            "stepsperframe" => pairs.push(("spf".into(), value.to_string())),
            "methods" if has_arena => notices.push("methods and arena both given: the figure runs arena".into()),
            "methods" => pairs.push(("arena".into(), value.to_string())),
            "lossview" => pairs.push(("view".into(), value.to_string())),
            key => match PROPS.iter().find(|p| squash(p.key) == key && p.key != "view" && p.key != "play") {
                Some(p) => pairs.push((p.key.to_string(), value.to_string())),
                None => notices.push(format!("unknown attribute “{name}” ignored")),
            },
        }
    }
    let hash = pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&");
    Parsed { hash, options, notices }
}

fn parse_views(value: &str, notices: &mut Vec<String>) -> Vec<&'static str> {
    let mut views = Vec::new();
    for part in value.split(',').map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty()) {
        let name = VIEW_ALIASES.iter().find(|(a, _)| *a == part).map_or(part.as_str(), |(_, n)| n);
        match VIEWS.iter().find(|(n, _)| *n == name) {
            Some((n, _)) if !views.contains(n) => views.push(*n),
            Some(_) => {}
            None => notices.push(format!(
                "view: no view named “{part}” (views: {}); ignored",
                VIEWS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )),
        }
    }
    views
}

fn parse_height(value: &str, notices: &mut Vec<String>) -> u32 {
    let value = value.strip_suffix("px").unwrap_or(value);
    match value.parse::<f64>() {
        Ok(h) if h.is_finite() => {
            let clamped = h.round().clamp(MIN_HEIGHT as f64, MAX_HEIGHT as f64) as u32;
            if clamped as f64 != h {
                notices.push(format!(
                    "height={value}: a whole number of pixels {MIN_HEIGHT}–{MAX_HEIGHT}; using {clamped}"
                ));
            }
            clamped
        }
        _ => {
            notices.push(format!("height={value}: not a number of pixels; using {DEFAULT_HEIGHT}"));
            DEFAULT_HEIGHT
        }
    }
}

/// The panel keys (`data-panel`) a figure shows for `views` on `state`'s preset, and a notice
/// when none of the asked views exists there.
pub fn figure_panels(views: &[&str], state: &State) -> (Vec<&'static str>, Option<String>) {
    let toy = state.preset.is_toy();
    let default: Vec<&'static str> = if toy { vec!["toy"] } else { vec!["heatmaps", "curves"] };
    if views.is_empty() {
        return (default, None);
    }
    let fits = |key: &&str| if toy { TOY_PANELS.contains(key) } else { *key != "toy" };
    let mut shown: Vec<&'static str> = Vec::new();
    let mut unfit = Vec::new();
    for name in views {
        let Some((n, keys)) = VIEWS.iter().find(|(n, _)| n == name) else { continue };
        let keys: Vec<&'static str> = keys.iter().copied().filter(fits).collect();
        if keys.is_empty() || (n.starts_with("moe") && state.moe.is_none()) {
            unfit.push(*n);
        }
        for key in keys {
            if !shown.contains(&key) {
                shown.push(key);
            }
        }
    }
    let what = if toy { "the toy presets" } else { "this preset" };
    let notice = (!unfit.is_empty()).then(|| format!("view: {} not shown on {what}", unfit.join(", ")));
    if shown.is_empty() {
        return (default, notice.map(|n| format!("{n}; showing the default view")));
    }
    (shown, notice)
}

/// The figure's attribute-space state: every hash key (the contour's loss view as `lossView`),
/// then the figure's own keys.
pub fn attribute_state(state: &State, options: &FigureOptions, shown: &[&str]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = state
        .to_hash()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (if k == "view" { "lossView".to_string() } else { k.to_string() }, crate::state::decode(v)))
        .collect();
    let views: Vec<&str> = if options.views.is_empty() {
        VIEWS.iter().filter(|(_, keys)| keys.iter().all(|k| shown.contains(k))).map(|(n, _)| *n).take(1).collect()
    } else {
        options.views.clone()
    };
    out.push(("view".into(), views.join(",")));
    out.push(("controls".into(), options.controls.name().into()));
    out.push(("autoplay".into(), if options.autoplay == Some(true) { "visible" } else { "off" }.into()));
    out.push(("height".into(), options.height.to_string()));
    out
}

/// Where a change of settings came from: playback starts differently for each.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The first attributes: `autoplay`/`play` start it unless the reader prefers reduced motion.
    Mount,
    /// The element's attributes changed: playback changes only if `autoplay`/`play` did.
    Attributes,
    /// `setState(obj)`: the page's script asked, so `play` applies even with reduced motion.
    Api,
}

/// The figure's reactive parts, Copy for closures.
#[derive(Clone, Copy)]
struct Figure {
    cfg: RwSignal<State>,
    notices: RwSignal<Vec<String>>,
    options: RwSignal<FigureOptions>,
    /// The attributes last applied (to tell which ones changed).
    attributes: StoredValue<Vec<(String, String)>>,
    /// The reader prefers reduced motion: attributes never start playback (the API still can).
    reduced_motion: RwSignal<bool>,
}

impl Figure {
    /// Apply a whole attribute set; returns the notices (also shown in the figure).
    fn apply(&self, attrs: Vec<(String, String)>, source: Source) -> Vec<String> {
        let parsed = parse_attributes(&attrs);
        let (mut state, mut notices) = State::from_hash(&parsed.hash);
        let mut all = parsed.notices;
        all.append(&mut notices);
        let (_, panel_notice) = figure_panels(&parsed.options.views, &state);
        all.extend(panel_notice);
        let asked = parsed.options.play.or(parsed.options.autoplay).unwrap_or(false);
        state.play = match source {
            Source::Mount => asked && !self.reduced_motion.get_untracked(),
            Source::Attributes => {
                let before = parse_attributes(&self.attributes.get_value()).options;
                let changed = (before.play, before.autoplay) != (parsed.options.play, parsed.options.autoplay);
                if changed {
                    asked && !self.reduced_motion.get_untracked()
                } else {
                    self.cfg.with_untracked(|s| s.play)
                }
            }
            Source::Api => parsed.options.play.unwrap_or_else(|| self.cfg.with_untracked(|s| s.play)),
        };
        // Controls hidden by `_hide` flags stay the page's business; the rest is the figure's.
        if self.cfg.with_untracked(|s| *s != state) {
            self.cfg.set(state);
        }
        if self.options.with_untracked(|o| *o != parsed.options) {
            self.options.set(parsed.options);
        }
        // The element's own attributes are what a later attribute change is compared with; a
        // script's setState (attribute-space pairs with the current `play`) must not replace them.
        if source != Source::Api {
            self.attributes.set_value(attrs);
        }
        self.notices.set(all.clone());
        all
    }

    fn state_pairs(&self) -> Vec<(String, String)> {
        let state = self.cfg.get_untracked();
        let options = self.options.get_untracked();
        let (shown, _) = figure_panels(&options.views, &state);
        attribute_state(&state, &options, &shown)
    }
}

fn pairs_of(obj: &JsValue) -> Vec<(String, String)> {
    let Some(obj) = obj.dyn_ref::<Object>() else { return Vec::new() };
    Object::entries(obj)
        .iter()
        .filter_map(|entry| {
            let entry: js_sys::Array = entry.dyn_into().ok()?;
            let key = entry.get(0).as_string()?;
            let value = entry.get(1);
            let text = if let Some(s) = value.as_string() {
                s
            } else if let Some(b) = value.as_bool() {
                b.to_string()
            } else if let Some(x) = value.as_f64() {
                x.to_string()
            } else if value.is_null() || value.is_undefined() {
                return None;
            } else {
                js_sys::JSON::stringify(&value).ok()?.as_string()?
            };
            Some((key, text))
        })
        .collect()
}

fn object_of(pairs: &[(String, String)]) -> JsValue {
    let obj = Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&obj, &k.into(), &v.into());
    }
    obj.into()
}

fn strings(list: &[String]) -> JsValue {
    list.iter().map(|s| JsValue::from_str(s)).collect::<js_sys::Array>().into()
}

/// Fire `name` on the figure's mount point; it bubbles out of the shadow root to the element.
fn dispatch(target: &web_sys::HtmlElement, name: &str, detail: &JsValue) {
    let init = web_sys::CustomEventInit::new();
    init.set_bubbles(true);
    init.set_composed(true);
    init.set_detail(detail);
    if let Ok(event) = web_sys::CustomEvent::new_with_event_init_dict(name, &init) {
        let _ = target.dispatch_event(&event);
    }
}

/// Shortest gap between two `concord-step` events.
const STEP_EVENT_MS: f64 = 250.0;

/// Mount a figure inside `target` (the custom element's shadow-root `<div>`): `attrs` is the
/// element's attributes as `{name: value}`, `env` `{reducedMotion, visible}`. Returns the JS
/// API object (see EMBEDDING.md): ready, play, pause, reset, step, getState, setState,
/// setAttributes, exportRun, importRun, setVisible, notices, state, dispose.
#[wasm_bindgen]
pub fn mount_figure(target: web_sys::HtmlElement, attrs: JsValue, env: JsValue) -> JsValue {
    let flag = |name: &str| Reflect::get(&env, &name.into()).ok().and_then(|v| v.as_bool());
    let reduced_motion = flag("reducedMotion").unwrap_or(false);
    let visible = flag("visible").unwrap_or(true);
    let attrs = pairs_of(&attrs);
    let hook = Hook::new();
    let obj = hook.object();
    let el = target.clone();
    let handle = leptos::mount::mount_to(target, move || {
        view! { <FigureView attrs=attrs reduced_motion=reduced_motion visible=visible hook=hook target=el /> }
    });
    let handle = std::rc::Rc::new(std::cell::RefCell::new(Some(handle)));
    let dispose = Closure::<dyn Fn()>::new(move || {
        // Dropping the handle unmounts the view and disposes its session (its frame loop ends).
        drop(handle.borrow_mut().take());
    });
    let _ = Reflect::set(&obj, &"dispose".into(), dispose.as_ref());
    dispose.forget();
    obj.into()
}

#[component]
fn FigureView(
    attrs: Vec<(String, String)>,
    reduced_motion: bool,
    visible: bool,
    hook: Hook,
    target: web_sys::HtmlElement,
) -> impl IntoView {
    let figure = Figure {
        cfg: RwSignal::new(State::default()),
        notices: RwSignal::new(Vec::new()),
        options: RwSignal::new(parse_attributes(&[]).options),
        attributes: StoredValue::new(Vec::new()),
        reduced_motion: RwSignal::new(reduced_motion),
    };
    figure.apply(attrs, Source::Mount);
    let Figure { cfg, notices, options, .. } = figure;
    provide_context(cfg);
    provide_context(Notices(notices));
    let shown = Signal::derive(move || {
        let views = options.with(|o| o.views.clone());
        cfg.with(|s| figure_panels(&views, s).0)
    });
    provide_context(FigurePanels(shown));

    let ready_target = target.clone();
    let session = Session::new(cfg, hook.object(), false, move || {
        hook.mark_ready();
        dispatch(&ready_target, "concord-ready", &hook.call0("state"));
    });
    provide_context(session);
    session.with(|s| s.set_visible(visible));
    hook.fill(session);
    fill_figure_api(hook, figure, session);

    Effect::new(move |prev: Option<State>| {
        let s = cfg.get();
        if prev.as_ref().is_some_and(|p| *p != s) {
            session.with(|x| x.configure(&s));
        }
        s
    });
    step_events(session, target.clone());
    error_events(session, target);

    let controls = move || options.with(|o| o.controls);
    let data_view = move || shown.get().join(",");
    let height = move || format!("--figure-height: {}px", options.with(|o| o.height));
    view! {
        <div class="concord-figure" data-controls=move || controls().name() data-view=data_view style=height>
            <Show when=move || controls() != Controls::None>
                <div class="figure-bar">
                    <panels::transport::TransportPanel />
                    <Show when=move || controls() == Controls::Full>
                        <panels::backend::BackendPanel />
                    </Show>
                </div>
            </Show>
            <panels::notices::NoticesPanel />
            <crate::playground::RunError />
            <div class="figure-panels">
                <crate::playground::FigureCards />
            </div>
            <Show when=move || controls() == Controls::Full>
                <details class="figure-settings">
                    <summary>"Settings"</summary>
                    <div class="controls">
                        <crate::playground::SettingsCards />
                    </div>
                </details>
            </Show>
        </div>
    }
}

/// `concord-step`: at most one per `STEP_EVENT_MS` while the count moves, and always the last.
fn step_events(session: Session, target: web_sys::HtmlElement) {
    let last = StoredValue::new(f64::NEG_INFINITY);
    let pending = StoredValue::new(false);
    let target = StoredValue::new_local(target);
    let fire = move || {
        // A trailing event may come due after the figure was removed: then there is none to send.
        let (Some(target), Some(state)) = (target.try_get_value(), session.with(|x| x.state_js())) else { return };
        let _ = last.try_set_value(session::now_ms());
        let _ = pending.try_set_value(false);
        dispatch(&target, "concord-step", &state);
    };
    Effect::new(move |prev: Option<u64>| {
        let steps = session.ui.steps.get();
        if prev.is_none() || prev == Some(steps) {
            return steps;
        }
        // A timer already due sends the latest count; timers can come late, so it is the only
        // sender until it has run (else two events could come a millisecond apart).
        if pending.get_value() {
            return steps;
        }
        let wait = STEP_EVENT_MS - (session::now_ms() - last.get_value());
        if wait <= 0.0 {
            fire();
        } else {
            pending.set_value(true);
            set_timeout(fire, std::time::Duration::from_millis(wait.ceil() as u64));
        }
        steps
    });
}

/// `concord-error`: each new reason the runs cannot train, or a run stopped on.
fn error_events(session: Session, target: web_sys::HtmlElement) {
    let ui = session.ui;
    Effect::new(move |prev: Option<Vec<String>>| {
        let mut now: Vec<String> = ui.error.get().into_iter().collect();
        now.extend(ui.run_errors.get().into_iter().flatten());
        let before = prev.unwrap_or_default();
        for message in now.iter().filter(|m| !before.contains(m)) {
            let detail = Object::new();
            let _ = Reflect::set(&detail, &"message".into(), &message.into());
            dispatch(&target, "concord-error", &detail);
        }
        now
    });
}

/// The element's API beyond the playground hook's (state, step, reset, exportRun, importRun).
fn fill_figure_api(hook: Hook, figure: Figure, session: Session) {
    let cfg = figure.cfg;
    // A page script may keep the handle after the figure was removed: then every call is a no-op.
    let alive = move || !cfg.is_disposed();
    let set_play = move |on: bool| {
        if cfg.with_untracked(|s| s.play != on) {
            cfg.update(|s| s.play = on);
        }
    };
    method0(hook, alive, "play", move || {
        set_play(true);
        JsValue::UNDEFINED
    });
    method0(hook, alive, "pause", move || {
        set_play(false);
        JsValue::UNDEFINED
    });
    method0(hook, alive, "getState", move || object_of(&figure.state_pairs()));
    method1(hook, alive, "setState", move |obj| {
        let given = pairs_of(&obj);
        let mut pairs = figure.state_pairs();
        // A new preset starts from its own defaults (as the preset menu does): only the figure's
        // own keys carry over.
        let preset = cfg.with_untracked(|s| s.preset.name());
        if given.iter().any(|(k, v)| squash(k) == "preset" && v.trim() != preset) {
            // A default view is the old preset's: the new one picks its own.
            let chosen_view = figure.options.with_untracked(|o| !o.views.is_empty());
            pairs.retain(|(k, _)| FIGURE_KEYS.contains(&k.as_str()) && (k != "view" || chosen_view));
        }
        for (k, v) in given {
            // The aliases name the same keys as getState's.
            let k = match squash(&k).as_str() {
                "methods" => "arena".to_string(),
                "stepsperframe" => "spf".to_string(),
                _ => k,
            };
            match pairs.iter_mut().find(|(p, _)| squash(p) == squash(&k)) {
                Some(slot) => slot.1 = v,
                None => pairs.push((k, v)),
            }
        }
        strings(&figure.apply(pairs, Source::Api))
    });
    method1(hook, alive, "setAttributes", move |obj| strings(&figure.apply(pairs_of(&obj), Source::Attributes)));
    method1(hook, alive, "setVisible", move |v| {
        session.with(|s| s.set_visible(v.as_bool().unwrap_or(true)));
        JsValue::UNDEFINED
    });
    method0(hook, alive, "notices", move || strings(&figure.notices.get_untracked()));
    // The reader changed the setting while reading: a figure playing by autoplay stops; one
    // started by a script keeps its state, as the page's script decided.
    method1(hook, alive, "setReducedMotion", move |v| {
        let on = v.as_bool().unwrap_or(false);
        let was = figure.reduced_motion.get_untracked();
        figure.reduced_motion.set(on);
        if on && !was {
            let asked = parse_attributes(&figure.attributes.get_value()).options;
            if asked.play.or(asked.autoplay).unwrap_or(false) {
                set_play(false);
            }
        }
        JsValue::UNDEFINED
    });
}

/// Put a method on the handle that does nothing (returns null) once the figure is disposed.
fn method0(hook: Hook, alive: impl Fn() -> bool + 'static, name: &str, f: impl Fn() -> JsValue + 'static) {
    hook.method0(name, move || if alive() { f() } else { JsValue::NULL });
}

fn method1(hook: Hook, alive: impl Fn() -> bool + 'static, name: &str, f: impl Fn(JsValue) -> JsValue + 'static) {
    hook.method1(name, move |v| if alive() { f(v) } else { JsValue::NULL });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn attributes_reach_the_hash_keys_case_insensitively_and_in_kebab_case() {
        let p = parse_attributes(&attrs(&[
            ("preset", "xor-conflict"),
            ("trainratio", "70"),
            ("steps-per-frame", "50"),
            ("land-grid", "21"),
            ("methods", "mean,upgrad"),
            ("loss-view", "l1"),
            ("lr_hide", "true"),
            ("aria-label", "A figure"),
            ("class", "wide"),
        ]));
        assert!(p.notices.is_empty(), "{:?}", p.notices);
        let (state, notices) = State::from_hash(&p.hash);
        assert!(notices.is_empty(), "{notices:?}");
        assert_eq!(state.train_pct, 70);
        assert_eq!(state.spf, 50);
        assert_eq!(state.land_grid, 21);
        assert_eq!(state.arena.iter().map(|m| m.to_text()).collect::<Vec<_>>(), ["mean", "upgrad"]);
        assert_eq!(state.view, crate::state::View::L1);
        assert!(state.is_hidden("lr"));
    }

    #[test]
    fn figure_keys_are_parsed_with_notices_for_garbage() {
        let p = parse_attributes(&attrs(&[
            ("view", "cosine,bogus,curves"),
            ("controls", "everything"),
            ("autoplay", "visible"),
            ("height", "99999"),
            ("wat", "1"),
        ]));
        assert_eq!(p.options.views, ["cosine", "curves"]);
        assert_eq!(p.options.controls, Controls::Minimal);
        assert_eq!(p.options.autoplay, Some(true));
        assert_eq!(p.options.height, MAX_HEIGHT);
        assert_eq!(p.notices.len(), 4, "{:?}", p.notices);
        assert!(p.notices.iter().any(|n| n.contains("bogus")));
        assert!(p.notices.iter().any(|n| n.contains("“wat”")));
        let p = parse_attributes(&attrs(&[("height", "tall")]));
        assert_eq!(p.options.height, DEFAULT_HEIGHT);
        assert_eq!(p.notices.len(), 1);
    }

    #[test]
    fn garbage_values_give_the_defaults_and_notices() {
        let p = parse_attributes(&attrs(&[("preset", "cagrad-toy"), ("lr", "banana"), ("methods", "nope")]));
        let (state, notices) = State::from_hash(&p.hash);
        assert_eq!(state, State::from_hash("preset=cagrad-toy").0, "every value falls back to the toy's default");
        assert_eq!(notices.len(), 2, "{notices:?}");
    }

    #[test]
    fn values_with_ampersands_do_not_split_into_keys() {
        let p = parse_attributes(&attrs(&[("methods", "mean&lr=5")]));
        let (state, notices) = State::from_hash(&p.hash);
        assert_eq!(state.lr, State::default().lr, "the & stayed inside the methods value");
        assert_eq!(notices.len(), 1, "{notices:?}");
    }

    #[test]
    fn views_pick_panels_that_exist_on_the_preset() {
        let toy = State::from_hash("preset=cagrad-toy").0;
        let net = State::from_hash("preset=xor-conflict").0;
        let moe = State::from_hash("preset=task-experts").0;
        assert_eq!(figure_panels(&[], &toy).0, ["toy"]);
        assert_eq!(figure_panels(&[], &net).0, ["heatmaps", "curves"]);
        assert_eq!(figure_panels(&["toy", "cosine"], &toy), (vec!["toy", "cosine"], None));
        let (shown, notice) = figure_panels(&["landscape"], &toy);
        assert_eq!(shown, ["toy"]);
        assert!(notice.is_some_and(|n| n.contains("landscape") && n.contains("default")));
        let (shown, notice) = figure_panels(&["moe"], &net);
        assert!(notice.is_some(), "no MoE on an MLP preset");
        assert!(shown.contains(&"moeRouting"));
        assert_eq!(figure_panels(&["moe-map"], &moe), (vec!["moe", "moeMap"], None));
    }

    #[test]
    fn the_attribute_state_reads_back_to_the_same_figure() {
        let p = parse_attributes(&attrs(&[
            ("preset", "cagrad-toy"),
            ("methods", "mgda,upgrad,cagrad:c=0.3"),
            ("view", "toy,curves"),
            ("controls", "full"),
            ("loss-view", "l2"),
            ("seed", "3"),
        ]));
        let (state, _) = State::from_hash(&p.hash);
        let (shown, _) = figure_panels(&p.options.views, &state);
        let pairs = attribute_state(&state, &p.options, &shown);
        assert!(pairs.contains(&("lossView".into(), "l2".into())));
        assert!(pairs.contains(&("view".into(), "toy,curves".into())));
        let again = parse_attributes(&pairs);
        assert!(again.notices.is_empty(), "{:?}", again.notices);
        let (a, b) = (&again.options, &p.options);
        assert_eq!((&a.views, a.controls, a.height), (&b.views, b.controls, b.height));
        assert_eq!(a.play, Some(state.play), "getState carries the playing state");
        assert_eq!(State::from_hash(&again.hash).0, state);
    }

    #[test]
    fn a_toy_race_holds_every_toy_gpu_method() {
        // Constant weighting needs its weights and TrimmedMean its trim (0: two tasks); every
        // other GPU method runs with its defaults.
        let all: Vec<String> = concord_gpu::toy_gpu_methods()
            .into_iter()
            .map(|m| match m {
                "constant" => "constant:weights=0.5;0.5".to_string(),
                "trimmed-mean" => "trimmed-mean:trim_number=0".to_string(),
                other => other.to_string(),
            })
            .collect();
        // More methods than one race holds: a race per MAX_ARENA_TOY of them.
        for race in all.chunks(crate::state::MAX_ARENA_TOY) {
            let p = parse_attributes(&attrs(&[("preset", "cagrad-toy"), ("methods", &race.join(","))]));
            let (state, notices) = State::from_hash(&p.hash);
            assert!(notices.is_empty(), "{notices:?}");
            assert_eq!(state.arena.len(), race.len());
        }
        // A full toy race on a multi-task preset keeps the first MAX_ARENA with one notice.
        let full = &all[..crate::state::MAX_ARENA_TOY];
        let (net, notices) = State::from_hash(&format!("preset=xor-conflict&arena={}", full.join(",")));
        assert_eq!(net.arena.len(), crate::state::MAX_ARENA);
        assert_eq!(notices.len(), 1, "{notices:?}");
    }
}

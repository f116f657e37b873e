//! URL-hash state, as a typed key table (TensorFlow Playground's `state.ts`, adapted).
//!
//! The hash is `key=value&key=value…`, written in `PROPS` order. Enums are written by name,
//! lists are comma-joined, and `<control>_hide=true` flags trim the UI (`hideText=true` hides
//! the explanatory text). Reading never panics: an unknown name, a malformed number or an
//! out-of-range value is dropped or clamped, and each such fix becomes a `notice` the page shows.

use concord_core::{Method, OptimizerKind, ProblemKind};

/// The type of a hash value, with its limits: the table is the single source of truth.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    /// One name out of a fixed set.
    Enum(&'static [&'static str]),
    /// A comma-joined subset of a fixed set of names (written in table order).
    List(&'static [&'static str]),
    /// A finite number, clamped to [min, max].
    Number { min: f64, max: f64 },
    /// An integer, clamped to [min, max].
    Int { min: i64, max: i64 },
    /// `true` / `false`.
    Bool,
}

/// One hash key.
#[derive(Clone, Copy, Debug)]
pub struct Prop {
    pub key: &'static str,
    pub ty: Ty,
    pub default: &'static str,
}

pub const PROBLEMS: &[&str] = &["cagrad-toy", "cagrad-toy-scaled"];
pub const METHODS: &[&str] = &["mean", "sum", "pcgrad", "mgda", "cagrad"];
pub const OPTIMIZERS: &[&str] = &["adam", "sgd"];
pub const VIEWS: &[&str] = &["average", "l1", "l2"];

/// Every serialised key, in the order the hash is written.
pub const PROPS: &[Prop] = &[
    Prop {
        key: "problem",
        ty: Ty::Enum(PROBLEMS),
        default: "cagrad-toy",
    },
    Prop {
        key: "methods",
        ty: Ty::List(METHODS),
        default: "mean,pcgrad,mgda,cagrad",
    },
    Prop {
        key: "c",
        ty: Ty::Number {
            min: 0.0,
            max: 10.0,
        },
        default: "0.5",
    },
    Prop {
        key: "optimizer",
        ty: Ty::Enum(OPTIMIZERS),
        default: "adam",
    },
    Prop {
        key: "lr",
        ty: Ty::Number {
            min: 1e-6,
            max: 10.0,
        },
        default: "0.001",
    },
    Prop {
        key: "spf",
        ty: Ty::Int {
            min: 1,
            max: 20_000,
        },
        default: "200",
    },
    Prop {
        key: "play",
        ty: Ty::Bool,
        default: "true",
    },
    Prop {
        key: "view",
        ty: Ty::Enum(VIEWS),
        default: "average",
    },
    Prop {
        key: "hideText",
        ty: Ty::Bool,
        default: "false",
    },
];

/// Controls that `<name>_hide=true` removes, with the label the UI shows for them.
pub const HIDABLE_CONTROLS: &[(&str, &str)] = &[
    ("problem", "Problem"),
    ("methods", "Methods"),
    ("c", "CAGrad c"),
    ("optimizer", "Optimizer"),
    ("lr", "Learning rate"),
    ("spf", "Steps per frame"),
    ("playButton", "Play/pause"),
    ("stepButton", "Step"),
    ("resetButton", "Reset"),
    ("view", "Loss view"),
    ("backend", "Backend readout"),
];

/// Which loss the contour plot shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Average,
    L1,
    L2,
}

impl View {
    pub fn name(self) -> &'static str {
        match self {
            View::Average => "average",
            View::L1 => "l1",
            View::L2 => "l2",
        }
    }

    fn from_name(s: &str) -> View {
        match s {
            "l1" => View::L1,
            "l2" => View::L2,
            _ => View::Average,
        }
    }
}

/// The optimizer by name (the learning rate is a separate key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    Adam,
    Sgd,
}

impl Opt {
    pub fn name(self) -> &'static str {
        match self {
            Opt::Adam => "adam",
            Opt::Sgd => "sgd",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Opt::Adam => "Adam",
            Opt::Sgd => "SGD",
        }
    }

    pub fn kind(self, lr: f64) -> OptimizerKind {
        match self {
            Opt::Adam => OptimizerKind::adam(lr),
            Opt::Sgd => OptimizerKind::sgd(lr),
        }
    }
}

/// The page state that lives in the URL hash.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub problem: ProblemKind,
    /// Chosen method names, a subset of `METHODS`, kept in `METHODS` order.
    pub methods: Vec<&'static str>,
    /// CAGrad's c (torchjd convention).
    pub c: f64,
    pub optimizer: Opt,
    pub lr: f64,
    /// Steps per animation frame.
    pub spf: u32,
    pub play: bool,
    pub view: View,
    pub hide_text: bool,
    /// Controls hidden with `<name>_hide=true`.
    pub hidden: Vec<String>,
}

impl Default for State {
    fn default() -> Self {
        State::from_hash("").0
    }
}

impl State {
    /// The methods to run, with their parameters, in display order.
    pub fn method_list(&self) -> Vec<Method> {
        self.methods
            .iter()
            .map(|name| match *name {
                "mean" => Method::Mean,
                "sum" => Method::Sum,
                "pcgrad" => Method::PcGrad,
                "mgda" => Method::Mgda,
                _ => Method::CaGrad { c: self.c },
            })
            .collect()
    }

    pub fn optimizer_kind(&self) -> OptimizerKind {
        self.optimizer.kind(self.lr)
    }

    pub fn is_hidden(&self, control: &str) -> bool {
        self.hidden.iter().any(|h| h == control)
    }

    /// Whether going from `self` to `other` needs the runs to restart (everything but the
    /// learning rate, the speed, play/pause and the view does).
    pub fn needs_reset(&self, other: &State) -> bool {
        self.problem != other.problem
            || self.methods != other.methods
            || self.optimizer != other.optimizer
            || (self.c != other.c && self.methods.contains(&"cagrad"))
    }

    /// Parse a hash (with or without the leading `#`). Returns the state and one notice per
    /// value that was dropped or clamped.
    pub fn from_hash(hash: &str) -> (State, Vec<String>) {
        let hash = hash.strip_prefix('#').unwrap_or(hash);
        let mut notices = Vec::new();
        let mut values: Vec<Option<String>> = vec![None; PROPS.len()];
        let mut hidden = Vec::new();
        for pair in hash.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            let value = percent_decode(value);
            if let Some(control) = key.strip_suffix("_hide") {
                if HIDABLE_CONTROLS.iter().any(|(k, _)| *k == control) {
                    if value == "true" {
                        if !hidden.iter().any(|h| h == control) {
                            hidden.push(control.to_string());
                        }
                    } else if value != "false" {
                        notices.push(format!("{key}={value}: expected true or false; ignored"));
                    }
                } else {
                    notices.push(format!("{key}: no control named “{control}”; ignored"));
                }
                continue;
            }
            match PROPS.iter().position(|p| p.key == key) {
                Some(i) => values[i] = Some(value),
                None => notices.push(format!("unknown key “{key}” ignored")),
            }
        }

        let mut parsed: Vec<Value> = Vec::with_capacity(PROPS.len());
        for (prop, raw) in PROPS.iter().zip(values) {
            let default = parse_value(prop, prop.default).expect("defaults parse");
            let value = match raw {
                None => default,
                Some(raw) => match parse_value(prop, &raw) {
                    Ok(v) => v,
                    Err(Fix::Clamped(v, why)) => {
                        notices.push(format!("{}={raw}: {why}", prop.key));
                        v
                    }
                    Err(Fix::Dropped(why)) => {
                        notices.push(format!("{}={raw}: {why}; using {}", prop.key, prop.default));
                        default
                    }
                },
            };
            parsed.push(value);
        }

        let get = |key: &str| {
            &parsed[PROPS
                .iter()
                .position(|p| p.key == key)
                .expect("key in table")]
        };
        let state = State {
            problem: match get("problem").name() {
                "cagrad-toy-scaled" => ProblemKind::CagradToyScaled,
                _ => ProblemKind::CagradToy,
            },
            methods: get("methods").list(),
            c: get("c").num(),
            optimizer: if get("optimizer").name() == "sgd" {
                Opt::Sgd
            } else {
                Opt::Adam
            },
            lr: get("lr").num(),
            spf: get("spf").num() as u32,
            play: get("play").flag(),
            view: View::from_name(get("view").name()),
            hide_text: get("hideText").flag(),
            hidden,
        };
        (state, notices)
    }

    /// The hash (without `#`), every key in table order, then the `_hide` flags that are set.
    pub fn to_hash(&self) -> String {
        let mut parts: Vec<String> = PROPS
            .iter()
            .map(|p| {
                let v = match p.key {
                    "problem" => self.problem.name().to_string(),
                    "methods" => self.methods.join(","),
                    "c" => fmt_num(self.c),
                    "optimizer" => self.optimizer.name().to_string(),
                    "lr" => fmt_num(self.lr),
                    "spf" => self.spf.to_string(),
                    "play" => self.play.to_string(),
                    "view" => self.view.name().to_string(),
                    "hideText" => self.hide_text.to_string(),
                    other => unreachable!("key {other} has no writer"),
                };
                format!("{}={}", p.key, v)
            })
            .collect();
        for (control, _) in HIDABLE_CONTROLS {
            if self.is_hidden(control) {
                parts.push(format!("{control}_hide=true"));
            }
        }
        parts.join("&")
    }
}

/// A parsed value of one of the `Ty` kinds.
#[derive(Clone, Debug)]
enum Value {
    Name(&'static str),
    List(Vec<&'static str>),
    Num(f64),
    Flag(bool),
}

impl Value {
    fn name(&self) -> &'static str {
        match self {
            Value::Name(n) => n,
            _ => "",
        }
    }
    fn list(&self) -> Vec<&'static str> {
        match self {
            Value::List(l) => l.clone(),
            _ => Vec::new(),
        }
    }
    fn num(&self) -> f64 {
        match self {
            Value::Num(x) => *x,
            _ => 0.0,
        }
    }
    fn flag(&self) -> bool {
        matches!(self, Value::Flag(true))
    }
}

/// Why a raw value was not taken as is.
#[derive(Debug)]
enum Fix {
    /// Usable after a fix (the fixed value and what was done).
    Clamped(Value, String),
    /// Unusable: the default is kept.
    Dropped(String),
}

fn parse_value(prop: &Prop, raw: &str) -> Result<Value, Fix> {
    let raw = raw.trim();
    match prop.ty {
        Ty::Enum(names) => names
            .iter()
            .find(|n| **n == raw)
            .map(|n| Value::Name(n))
            .ok_or_else(|| {
                Fix::Dropped(format!(
                    "unknown name (expected one of: {})",
                    names.join(", ")
                ))
            }),
        Ty::List(names) => {
            let wanted: Vec<&str> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            let unknown: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|w| !names.contains(w))
                .collect();
            let kept: Vec<&'static str> = names
                .iter()
                .copied()
                .filter(|n| wanted.contains(n))
                .collect();
            if unknown.is_empty() {
                Ok(Value::List(kept))
            } else {
                Err(Fix::Clamped(
                    Value::List(kept),
                    format!(
                        "dropped unknown name(s) {} (known: {})",
                        unknown.join(", "),
                        names.join(", ")
                    ),
                ))
            }
        }
        Ty::Number { min, max } => match raw.parse::<f64>() {
            Ok(x) if x.is_finite() => {
                if x < min || x > max {
                    let y = x.clamp(min, max);
                    Err(Fix::Clamped(
                        Value::Num(y),
                        format!(
                            "out of range [{}, {}]; clamped to {}",
                            fmt_num(min),
                            fmt_num(max),
                            fmt_num(y)
                        ),
                    ))
                } else {
                    Ok(Value::Num(x))
                }
            }
            _ => Err(Fix::Dropped("not a finite number".into())),
        },
        Ty::Int { min, max } => match raw.parse::<f64>() {
            Ok(x) if x.is_finite() => {
                let r = x.round();
                let y = (r.clamp(min as f64, max as f64)) as i64;
                if r != x || r < min as f64 || r > max as f64 {
                    Err(Fix::Clamped(
                        Value::Num(y as f64),
                        format!("expected an integer in [{min}, {max}]; using {y}"),
                    ))
                } else {
                    Ok(Value::Num(y as f64))
                }
            }
            _ => Err(Fix::Dropped("not a number".into())),
        },
        Ty::Bool => match raw {
            "true" | "1" => Ok(Value::Flag(true)),
            "false" | "0" => Ok(Value::Flag(false)),
            _ => Err(Fix::Dropped("expected true or false".into())),
        },
    }
}

/// Shortest round-tripping text for a number (`0.001`, `0.5`, `2`).
pub fn fmt_num(x: f64) -> String {
    format!("{x}")
}

/// Decode `%XX` escapes (and leave anything malformed as it is).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let (s, notices) = State::from_hash("");
        assert!(notices.is_empty());
        assert_eq!(s.problem, ProblemKind::CagradToy);
        assert_eq!(s.methods, vec!["mean", "pcgrad", "mgda", "cagrad"]);
        assert_eq!(s.lr, 1e-3);
        assert_eq!(s.spf, 200);
        assert!(s.play);
        let (t, n) = State::from_hash(&s.to_hash());
        assert!(n.is_empty());
        assert_eq!(s, t);
    }

    #[test]
    fn bad_values_are_fixed_with_notices() {
        let (s, notices) = State::from_hash(
            "#problem=nope&methods=mean,foo,cagrad&c=-3&lr=abc&spf=1e9&play=maybe&bogus=1&view=l2&x_hide=true&lr_hide=true",
        );
        assert_eq!(s.problem, ProblemKind::CagradToy);
        assert_eq!(s.methods, vec!["mean", "cagrad"]);
        assert_eq!(s.c, 0.0);
        assert_eq!(s.lr, 1e-3);
        assert_eq!(s.spf, 20_000);
        assert!(s.play);
        assert_eq!(s.view, View::L2);
        assert!(s.is_hidden("lr"));
        assert_eq!(notices.len(), 8, "{notices:?}");
    }

    #[test]
    fn percent_escapes_and_empty_lists() {
        let (s, n) = State::from_hash("methods=mean%2Cmgda&play=false");
        assert!(n.is_empty());
        assert_eq!(s.methods, vec!["mean", "mgda"]);
        assert!(!s.play);
        let (s, _) = State::from_hash("methods=");
        assert!(s.methods.is_empty());
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%e2%88%9e"), "∞");
    }
}

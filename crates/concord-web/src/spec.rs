//! One arena method as text: `aggregator[+weighting][:key=value…]`, e.g. `cagrad:c=0.3`,
//! `mean+gradnorm:alpha=1.5`. Names come from concord-core's registries; a parameter goes to
//! the aggregator if it has one of that name, else to the weighting. List values use `;`
//! between numbers (`upgrad:pref_vector=1;2`), since `,` separates the arena's methods.
//! Parameter values are checked when the run is built (the registries' own messages).

use concord_core::aggregators::registry;
use concord_core::weightings;

#[derive(Clone, Debug, PartialEq)]
pub struct MethodSpec {
    pub aggregator: &'static str,
    pub weighting: Option<&'static str>,
    /// `key=value` pairs, values as typed.
    pub params: Vec<(String, String)>,
}

impl MethodSpec {
    pub fn plain(aggregator: &'static str) -> Self {
        MethodSpec { aggregator, weighting: None, params: Vec::new() }
    }

    pub fn parse(text: &str) -> Result<MethodSpec, String> {
        let mut parts = text.split(':');
        let head = parts.next().unwrap_or("").trim();
        let (agg, weighting) = match head.split_once('+') {
            Some((a, w)) => (a.trim(), Some(w.trim())),
            None => (head, None),
        };
        let aggregator = registry::find(agg)
            .map(|i| i.name)
            .ok_or_else(|| format!("unknown aggregator “{agg}”"))?;
        let weighting = match weighting {
            None | Some("") | Some("none") => None,
            Some(w) => Some(
                weightings::NAMES
                    .iter()
                    .copied()
                    .find(|n| *n == w)
                    .ok_or_else(|| format!("unknown loss weighting “{w}”"))?,
            ),
        };
        let mut spec = MethodSpec { aggregator, weighting, params: Vec::new() };
        for p in parts.map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = p.split_once('=').ok_or_else(|| format!("“{p}” is not key=value"))?;
            let (k, v) = (k.trim(), v.trim());
            if !spec.knows(k) {
                return Err(format!("{} has no parameter “{k}”", spec.label()));
            }
            spec.params.push((k.to_string(), v.to_string()));
        }
        Ok(spec)
    }

    /// Whether the aggregator or the weighting has a parameter of this name.
    pub fn knows(&self, key: &str) -> bool {
        registry::find(self.aggregator).is_some_and(|i| i.param(key).is_some())
            || self
                .weighting
                .and_then(weightings::describe)
                .is_some_and(|d| d.params.iter().any(|p| p.name == key))
    }

    pub fn to_text(&self) -> String {
        let mut s = self.aggregator.to_string();
        if let Some(w) = self.weighting {
            s.push('+');
            s.push_str(w);
        }
        for (k, v) in &self.params {
            s.push_str(&format!(":{k}={v}"));
        }
        s
    }

    /// `UPGrad + UW (c=…)`, for legends.
    pub fn label(&self) -> String {
        let agg = registry::find(self.aggregator).map_or(self.aggregator, |i| i.label);
        let mut s = match self.weighting.and_then(weightings::describe) {
            Some(w) if self.aggregator == "mean" => w.label.to_string(),
            Some(w) => format!("{agg} + {}", w.label),
            None => agg.to_string(),
        };
        if !self.params.is_empty() {
            let p: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!(" ({})", p.join(", ")));
        }
        s
    }

    /// The parameters for the aggregator (lists with `,`).
    pub fn aggregator_params(&self) -> Vec<(String, String)> {
        let info = registry::find(self.aggregator);
        self.params
            .iter()
            .filter(|(k, _)| info.is_some_and(|i| i.param(k).is_some()))
            .map(|(k, v)| (k.clone(), v.replace(';', ",")))
            .collect()
    }

    /// The parameters for the weighting.
    pub fn weighting_params(&self) -> Vec<(String, String)> {
        let info = registry::find(self.aggregator);
        self.params
            .iter()
            .filter(|(k, _)| info.is_none_or(|i| i.param(k).is_none()))
            .cloned()
            .collect()
    }

    /// `key=value key=value` as the params text box shows it.
    pub fn params_text(&self) -> String {
        self.params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_back() {
        let s = MethodSpec::parse("mean+gradnorm:alpha=1.5").unwrap();
        assert_eq!((s.aggregator, s.weighting), ("mean", Some("gradnorm")));
        assert_eq!(s.weighting_params(), vec![("alpha".to_string(), "1.5".to_string())]);
        assert!(s.aggregator_params().is_empty());
        assert_eq!(s.to_text(), "mean+gradnorm:alpha=1.5");
        let u = MethodSpec::parse("upgrad:pref_vector=1;2").unwrap();
        assert_eq!(u.aggregator_params(), vec![("pref_vector".to_string(), "1,2".to_string())]);
        assert_eq!(MethodSpec::parse("cagrad:c=0.3").unwrap().label(), "CAGrad (c=0.3)");
    }

    #[test]
    fn unknown_names_and_params_are_errors() {
        assert!(MethodSpec::parse("nope").unwrap_err().contains("nope"));
        assert!(MethodSpec::parse("mean+nope").unwrap_err().contains("nope"));
        assert!(MethodSpec::parse("mean:c=1").unwrap_err().contains("“c”"));
        assert!(MethodSpec::parse("cagrad:c").unwrap_err().contains("key=value"));
    }
}

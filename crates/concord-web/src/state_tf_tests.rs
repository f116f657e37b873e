//! TF Playground's keys on the page state: input features, regularisation, init, discretize,
//! `showTestData`/`initZero` as TF names them, their `_hide` flags, and the run they configure.

use crate::state::State;
use crate::train_config::{base_config, configs_from_hash};
use concord_core::data::{Feature, FeatureSet};
use concord_core::train::{Init, Penalty, Trainer};

#[test]
fn tf_keys_round_trip() {
    let hash = "x=true&y=false&xSquared=true&sinY=true&regularization=L2&regularizationRate=0.03&init=tf-uniform\
                &discretize=true&showTest=false&xSquared_hide=true&regularizationRate_hide=true";
    let (s, notices) = State::from_hash(hash);
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!(s.features.features(), &[Feature::X, Feature::XSquared, Feature::SinY]);
    assert_eq!((s.regularization, s.reg_rate, s.init), (Some(Penalty::L2), 0.03, Init::TfUniform));
    assert!(s.discretize && !s.show_test);
    assert!(s.is_hidden("xSquared") && s.is_hidden("regularizationRate") && !s.is_hidden("discretize"));
    let (back, n) = State::from_hash(&s.to_hash());
    assert!(n.is_empty(), "{n:?}");
    assert_eq!(back, s);
    // Defaults: x and y on, no penalty, Concord's init, no discretize.
    let d = State::default();
    assert!(d.features.is_raw() && d.regularization.is_none() && d.init == Init::Default && !d.discretize);
    assert!(d.to_hash().contains("&x=true&y=true&xSquared=false"), "{}", d.to_hash());
}

#[test]
fn tf_names_for_show_test_and_init_zero_load() {
    let (s, n) = State::from_hash("showTestData=false&initZero=true&showTestData_hide=true");
    assert!(n.is_empty(), "{n:?}");
    assert!(!s.show_test && s.init == Init::Zero && s.is_hidden("showTestData"));
    // Concord's own key wins over TF's.
    let (s, _) = State::from_hash("showTest=true&showTestData=false&init=tf-uniform&initZero=true");
    assert!(s.show_test && s.init == Init::TfUniform);
}

#[test]
fn bad_tf_values_give_a_notice_and_the_default() {
    let (s, n) = State::from_hash("regularization=L3&regularizationRate=-1&init=he&discretize=maybe");
    assert_eq!((s.regularization, s.reg_rate, s.init, s.discretize), (None, 0.0, Init::Default, false));
    for key in ["regularization=L3", "regularizationRate=-1", "init=he", "discretize=maybe"] {
        assert!(n.iter().any(|m| m.starts_with(key)), "{key}: {n:?}");
    }
    // Every feature off: a notice, and x, y.
    let (s, n) = State::from_hash("x=false&y=false&initZero=yes");
    assert!(s.features.is_raw() && s.init == Init::Default);
    assert!(n.iter().any(|m| m.starts_with("initZero=yes")), "{n:?}");
    assert!(n.iter().any(|m| m.contains("at least one input feature")), "{n:?}");
}

#[test]
fn features_set_the_models_input_dimension_and_the_penalty_reaches_the_run() {
    let (s, _) = State::from_hash("x=true&y=true&xTimesY=true&sinX=true&regularization=L1&regularizationRate=0.01");
    let c = base_config(&s, None).unwrap();
    assert_eq!(c.model.as_ref().unwrap().input_dim, 4);
    assert_eq!(c.features.as_ref().map(FeatureSet::len), Some(4));
    assert_eq!(c.regularization.map(|r| (r.penalty, r.rate)), Some((Penalty::L1, 0.01)));
    // The GPU trainer has the penalty's kernel: the page keeps such a run on WebGPU.
    assert_eq!(c.gpu_unsupported_dynamics(), None);
    let t = Trainer::new(c).unwrap();
    assert_eq!(t.train_data().unwrap().0.ncols(), 4);
    // x, y alone is the raw point (a run from before the features); rate 0 is no penalty.
    let (s, _) = State::from_hash("regularization=L2&regularizationRate=0");
    let c = base_config(&s, None).unwrap();
    assert!(c.features.is_none() && c.regularization.is_none());
    assert_eq!(c.model.unwrap().input_dim, 2);
    // The sinusoid preset has no 2-D points: its features stay off.
    let (s, _) = State::from_hash("preset=sinusoid-phases&xSquared=true");
    assert!(base_config(&s, None).unwrap().features.is_none());
}

/// `concord train --hash` replays a URL with features and L2 as the page builds it: the same
/// config, so the same run bit for bit; and L2 leaves a smaller weight norm than the same run
/// without it.
#[test]
fn a_hash_with_features_and_l2_replays_the_pages_run() {
    let url = "https://example.org/#preset=xor-conflict&arena=mean&xSquared=true&ySquared=true\
               &regularization=L2&regularizationRate=0.1&init=tf-uniform";
    let (configs, notices) = configs_from_hash(url).unwrap();
    assert!(notices.is_empty(), "{notices:?}");
    let mut c = configs[0].clone();
    assert_eq!(c.model.as_ref().unwrap().input_dim, 4);
    assert_eq!(c.init, Init::TfUniform);
    c.steps = 60;
    let run = concord_core::train::train(&c).unwrap();
    let again = concord_core::train::train(&c).unwrap();
    assert_eq!(run.params, again.params);
    let mut plain = c.clone();
    plain.regularization = None;
    let plain = concord_core::train::train(&plain).unwrap();
    let norm = |p: &[f64]| p.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(norm(&run.params) < norm(&plain.params));
}

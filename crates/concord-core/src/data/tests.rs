//! Multi-task data on shared inputs: counts, split, reproducibility, and the conflict knob
//! measured through the model's Jacobian.

use super::*;
use crate::model::{Activation, HeadConfig, LossKind, Mlp, MlpConfig};

fn cfg(tasks: Vec<Dataset>, seed: u64) -> TaskSetConfig {
    TaskSetConfig::new(tasks, seed)
}

#[test]
fn tasks_label_the_same_points_and_the_native_task_is_the_playground_dataset() {
    let c = cfg(vec![Dataset::Circle, Dataset::Xor, Dataset::Gauss, Dataset::Spiral], 1);
    let d = c.generate().unwrap();
    assert_eq!(d.len(), 500);
    assert_eq!(d.n_train, 250);
    assert_eq!(d.labels.len(), 4);
    assert!(d.labels.iter().all(|l| l.len() == 500 && l.iter().all(|&v| v == 1.0 || v == -1.0)));
    // Task 0 keeps the circle generator's labels: exactly half positive, by radius.
    assert_eq!(d.labels[0].iter().filter(|&&v| v > 0.0).count(), 250);
    for (p, &l) in d.points.iter().zip(&d.labels[0]) {
        assert_eq!(l, if p[0].hypot(p[1]) < 2.5 { 1.0 } else { -1.0 });
    }
    // Task 1 labels the circle's points by the xor rule (noise 0).
    for (p, &l) in d.points.iter().zip(&d.labels[1]) {
        assert_eq!(l, if p[0] * p[1] >= 0.0 { 1.0 } else { -1.0 });
    }
    for (p, &l) in d.points.iter().zip(&d.labels[2]) {
        assert_eq!(l, if p[0] + p[1] >= 0.0 { 1.0 } else { -1.0 });
    }
}

#[test]
fn uniform_and_union_inputs_stay_in_the_domain_and_regression_labels_are_real() {
    let mut c = cfg(vec![Dataset::RegPlane, Dataset::RegGauss], 2);
    c.inputs = InputSource::Uniform;
    let d = c.generate().unwrap();
    assert_eq!(d.len(), 1200);
    assert!(d.points.iter().all(|p| p[0].abs() <= 6.0 && p[1].abs() <= 6.0));
    for (p, &l) in d.points.iter().zip(&d.labels[0]) {
        assert_eq!(l, (p[0] + p[1]) / 10.0);
    }
    let mut u = cfg(vec![Dataset::Spiral, Dataset::Gauss], 3);
    u.inputs = InputSource::Union;
    u.n = 400;
    let d = u.generate().unwrap();
    assert_eq!(d.len(), 400);
    assert_eq!(d.kinds, [LabelKind::Binary, LabelKind::Binary]);
}

#[test]
fn a_seed_reproduces_the_set_and_another_seed_differs() {
    let mut c = cfg(vec![Dataset::Xor, Dataset::Circle], 5);
    c.noise = 0.3;
    assert_eq!(c.generate().unwrap(), c.generate().unwrap());
    c.seed = 6;
    assert_ne!(c.generate().unwrap(), cfg(vec![Dataset::Xor, Dataset::Circle], 5).generate().unwrap());
}

#[test]
fn split_follows_the_ratio_and_targets_map_labels_per_loss() {
    let mut c = cfg(vec![Dataset::Circle, Dataset::RegPlane], 7);
    c.train_ratio = 0.3;
    let d = c.generate().unwrap();
    assert_eq!(d.n_train, 150);
    assert_eq!(d.test_indices().len(), 350);
    let (x, y) = d.batch(d.train_indices(), &[LossKind::Bce, LossKind::Mse]).unwrap();
    assert_eq!(x.shape(), (150, 2));
    let crate::model::Target::Values(b) = &y[0] else { panic!() };
    assert!(b.iter().all(|&v| v == 0.0 || v == 1.0));
    assert!(d.batch(d.train_indices(), &[LossKind::SoftmaxCe, LossKind::Mse]).is_ok());
    assert!(d.batch(d.train_indices(), &[LossKind::Bce, LossKind::Bce]).is_err());
    assert!(d.batch(d.train_indices(), &[LossKind::Bce]).is_err());
    assert!(d.targets(&[9999], &[LossKind::Bce, LossKind::Mse]).is_err());
}

#[test]
fn bad_task_set_configs_are_errors() {
    let ok = cfg(vec![Dataset::Circle, Dataset::Xor], 0);
    let bad = [
        TaskSetConfig { tasks: vec![], ..ok.clone() },
        TaskSetConfig { tasks: vec![Dataset::Xor; 9], ..ok.clone() },
        TaskSetConfig { n: 1, ..ok.clone() },
        TaskSetConfig { noise: 0.6, ..ok.clone() },
        TaskSetConfig { noise: f64::NAN, ..ok.clone() },
        TaskSetConfig { train_ratio: 1.0, ..ok.clone() },
        TaskSetConfig { n: 3, train_ratio: 0.1, ..ok.clone() },
        TaskSetConfig { inputs: InputSource::Native { task: 2 }, ..ok.clone() },
        TaskSetConfig { conflict: Some(Conflict { task: 2, kappa: 0.0 }), ..ok.clone() },
        TaskSetConfig { conflict: Some(Conflict { task: 1, kappa: 1.5 }), ..ok.clone() },
    ];
    for c in bad {
        assert!(c.generate().is_err(), "{c:?}");
    }
}

#[test]
fn conflict_knob_flips_the_documented_sector() {
    let base = cfg(vec![Dataset::Circle, Dataset::Circle], 4);
    let agree = |kappa: f64| {
        let d = TaskSetConfig { conflict: Some(Conflict { task: 1, kappa }), ..base.clone() }.generate().unwrap();
        d.labels[0].iter().zip(&d.labels[1]).filter(|(a, b)| a == b).count() as f64 / d.len() as f64
    };
    assert_eq!(agree(1.0), 1.0);
    assert_eq!(agree(-1.0), 0.0);
    assert!((agree(0.0) - 0.5).abs() < 0.06);
    let c = Conflict { task: 0, kappa: 0.5 }; // φ = 1/4: the third quadrant (angles −π … −π/2)
    assert!(c.flips([-1.0, -0.1]) && !c.flips([1.0, -0.1]) && !c.flips([-1.0, 0.1]));
}

/// The knob dials the cosine between the two tasks' initial shared gradients.
/// Pair: circle (task 0, native) and circle (task 1, knob), on the train split as the batch;
/// a tanh trunk [8] with tied head init, so at κ = 1 the Jacobian rows coincide.
fn knob_cosines(loss: LossKind, head_scale: f64) -> Vec<f64> {
    let mlp = Mlp::new(MlpConfig {
        input_dim: 2,
        hidden: vec![8],
        activation: Activation::Tanh,
        heads: vec![HeadConfig { out_dim: 1, loss }; 2],
        tied_head_init: true,
        head_init_scale: 1.0,
    })
    .unwrap();
    let mut params = mlp.init_params(3);
    for t in 0..2 {
        for v in &mut params[mlp.layout().head_range(t)] {
            *v *= head_scale;
        }
    }
    (0..=8)
        .map(|k| {
            let kappa = 1.0 - k as f64 / 4.0;
            let mut c = cfg(vec![Dataset::Circle, Dataset::Circle], 21);
            c.conflict = Some(Conflict { task: 1, kappa });
            let d = c.generate().unwrap();
            let (x, y) = d.batch(d.train_indices(), &[loss, loss]).unwrap();
            let j = mlp.gradients(&params, &x, &y).unwrap().shared_jacobian;
            let g = &j * j.transpose();
            g[(0, 1)] / (g[(0, 0)] * g[(1, 1)]).sqrt()
        })
        .collect()
}

/// With outputs near 0 at init (heads scaled by 0.1), flipping every label negates every
/// per-sample term, so the cosine runs from 1 to ≈ −1. With the plain Glorot heads the shared
/// σ(o) − ½ part of the BCE gradient does not flip, and the cosine only reaches ≈ −0.48.
#[test]
fn conflict_knob_moves_the_initial_gradient_cosine_from_aligned_to_opposed() {
    let cosines = knob_cosines(LossKind::Bce, 0.1);
    assert!(cosines[0] > 0.5, "{cosines:?}");
    assert!(cosines[8] < -0.5, "{cosines:?}");
    assert!(cosines.windows(2).all(|w| w[1] <= w[0] + 1e-12), "not monotone: {cosines:?}");
    let plain = knob_cosines(LossKind::Bce, 1.0);
    assert!(plain.windows(2).all(|w| w[1] <= w[0] + 1e-12), "not monotone: {plain:?}");
    assert!(plain[0] > 0.99 && plain[8] < 0.0, "{plain:?}");
}

/// Data from a run file: every inconsistency `targets`, `shuffle_and_split` or a panel would
/// index past is an error of `validate` (and of `TrainConfig::validate`), never a panic.
#[test]
fn validate_rejects_every_inconsistent_data_set_and_accepts_parsed_and_generated_data() {
    let ok = parse_csv("x1,x2,a,b:class,c\n0,0,1,0,0.5\n1,1,-1,2,1.5\n2,0,1,1,-3\n").unwrap();
    ok.validate().unwrap();
    for tasks in [vec![Dataset::Xor, Dataset::Xor], vec![Dataset::Circle, Dataset::RegPlane, Dataset::Spiral]] {
        cfg(tasks, 3).generate().unwrap().validate().unwrap();
    }
    let bad = |f: &dyn Fn(&mut MultiTaskData), needle: &str| {
        let mut d = ok.clone();
        f(&mut d);
        let e = d.validate().expect_err(needle);
        assert!(e.contains(needle), "{needle}: {e}");
    };
    bad(
        &|d| {
            d.labels[1].pop();
        },
        "2 labels for 3 points",
    );
    bad(&|d| d.labels[0].push(1.0), "4 labels for 3 points");
    bad(
        &|d| {
            d.kinds.pop();
        },
        "3 label columns but 2 label kinds",
    );
    bad(&|d| drop(d.task_names.pop()), "2 task names");
    bad(&|d| d.labels.clear(), "1–8 label columns, got 0");
    bad(&|d| d.points.clear(), "1–100000 points, got 0");
    bad(&|d| d.points[1][0] = f64::NAN, "point 1 is not finite");
    bad(&|d| d.points[2][1] = f64::INFINITY, "point 2 is not finite");
    bad(&|d| d.labels[0][0] = 0.0, "label 0 of point 0 is not a Binary label");
    bad(&|d| d.labels[1][1] = 3.0, "label 3 of point 1");
    bad(&|d| d.labels[1][1] = 0.5, "label 0.5 of point 1");
    bad(&|d| d.labels[1][1] = -1.0, "label -1 of point 1");
    bad(&|d| d.kinds[1] = LabelKind::Classes { k: 1 }, "1 classes");
    bad(&|d| d.kinds[1] = LabelKind::Classes { k: 100_000 }, "100000 classes");
    bad(&|d| d.labels[2][0] = f64::NAN, "label NaN of point 0");
    bad(&|d| d.n_train = 4, "4 training points of 3");

    // The trainer refuses such data instead of indexing past a column.
    use crate::train::{DataSource, TrainConfig};
    let mut data = ok.clone();
    data.n_train = 2;
    let base = TrainConfig {
        data: DataSource::Points { data: data.clone() },
        model: Some(MlpConfig {
            input_dim: 2,
            hidden: vec![4],
            activation: Activation::Tanh,
            heads: vec![
                HeadConfig { out_dim: 1, loss: LossKind::Bce },
                HeadConfig { out_dim: 3, loss: LossKind::SoftmaxCe },
                HeadConfig { out_dim: 1, loss: LossKind::Mse },
            ],
            tied_head_init: false,
            head_init_scale: 1.0,
        }),
        batch_size: None,
        ..crate::train::preset("xor-conflict").unwrap()
    };
    crate::train::Trainer::new(base.clone()).unwrap();
    for (f, needle) in [
        (Box::new(|d: &mut MultiTaskData| drop(d.task_names.pop())) as Box<dyn Fn(&mut MultiTaskData)>, "task names"),
        (Box::new(|d: &mut MultiTaskData| d.labels[1][0] = 7.0), "label 7"),
        (
            Box::new(|d: &mut MultiTaskData| {
                d.kinds.pop();
            }),
            "label kinds",
        ),
    ] {
        let mut d = data.clone();
        f(&mut d);
        let c = TrainConfig { data: DataSource::Points { data: d }, ..base.clone() };
        let e = crate::train::Trainer::new(c).err().expect(needle);
        assert!(e.contains(needle), "{needle}: {e}");
    }
}

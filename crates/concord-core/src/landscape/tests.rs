//! Landscape tests: hand-computed cases, the published hypervolume unit case, closed-form
//! Hessians, second differences of the loss, and the generic slice as the batched slice's
//! reference.

use super::*;
use crate::model::{Activation, HeadConfig, LossKind, Mlp, MlpConfig, Target};
use crate::problems::{CagradToy, ParetoMtlSynthetic, Problem, ProblemKind};
use nalgebra::{DMatrix, SymmetricEigen};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn mlp(act: Activation, hidden: Vec<usize>, input: usize, heads: Vec<HeadConfig>) -> Mlp {
    Mlp::new(MlpConfig {
        input_dim: input,
        hidden,
        activation: act,
        heads,
        tied_head_init: false,
        head_init_scale: 1.0,
    })
    .unwrap()
}

fn head(out_dim: usize, loss: LossKind) -> HeadConfig {
    HeadConfig { out_dim, loss }
}

fn random_data(mlp: &Mlp, b: usize, seed: u64) -> (DMatrix<f64>, Vec<Target>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cfg = mlp.config();
    let x = DMatrix::from_fn(b, cfg.input_dim, |_, _| rng.random_range(-2.0..2.0));
    let y = cfg
        .heads
        .iter()
        .map(|h| match h.loss {
            LossKind::Mse => Target::Values(DMatrix::from_fn(b, h.out_dim, |_, _| rng.random_range(-1.0..1.0))),
            LossKind::Bce => Target::Values(DMatrix::from_fn(b, h.out_dim, |_, _| rng.random_range(0..2) as f64)),
            LossKind::SoftmaxCe => Target::Classes((0..b).map(|_| rng.random_range(0..h.out_dim)).collect()),
        })
        .collect();
    (x, y)
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    diff / b.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-300)
}

// ---------- grid ----------

#[test]
fn grid_follows_linspace_and_meshgrid_ravel_order() {
    let g = Grid::square(DEFAULT_POINTS, -DEFAULT_RANGE, DEFAULT_RANGE).unwrap();
    assert_eq!(g.len(), 2601);
    assert_eq!((g.alphas[0], g.alphas[50], g.alphas[25]), (-1.0, 1.0, 0.0));
    assert!((g.alphas[1] - (-0.96)).abs() < 1e-15);
    // meshgrid(x, y).ravel(): x varies fastest.
    assert_eq!(g.point(1), (g.alphas[1], -1.0));
    assert_eq!(g.point(51), (-1.0, g.betas[1]));
    for bad in [
        Grid::square(1, -1.0, 1.0),
        Grid::square(51, 1.0, -1.0),
        Grid::square(51, f64::NAN, 1.0),
        Grid::square(MAX_POINTS + 1, -1.0, 1.0),
    ] {
        assert!(bad.is_err());
    }
}

// ---------- directions ----------

#[test]
fn filter_normalisation_scales_each_row_to_theta_and_zeroes_biases() {
    // 1 input → 2 hidden → two 1-output heads: trunk W (2×1), b (2); heads W (1×2), b (1).
    let m = mlp(Activation::Tanh, vec![2], 1, vec![head(1, LossKind::Mse); 2]);
    let l = m.layout();
    let mut theta = vec![0.0; l.total_len];
    let mut d = vec![1.0; l.total_len];
    // head.0 row: θ = (3, 4) (norm 5), d = (1, 0) → (5, 0).
    let h0 = l.heads[0].weight.clone();
    theta[h0.start] = 3.0;
    theta[h0.start + 1] = 4.0;
    d[h0.start + 1] = 0.0;
    // trunk rows are 1 wide: θ = −2 and 0.5, d = 1 → 2 and 0.5 (the sign of d is kept).
    theta[l.trunk[0].weight.start] = -2.0;
    theta[l.trunk[0].weight.start + 1] = 0.5;
    filter_normalise(&mut d, &theta, Some(l));
    assert!((d[h0.start] - 5.0).abs() < 1e-9 && d[h0.start + 1] == 0.0);
    assert!((d[l.trunk[0].weight.start] - 2.0).abs() < 1e-9);
    assert!((d[l.trunk[0].weight.start + 1] - 0.5).abs() < 1e-9);
    for s in l.trunk.iter().chain(&l.heads) {
        assert!(d[s.bias.clone()].iter().all(|&v| v == 0.0), "{} bias not zeroed", s.name);
    }
    // head.1: θ row is 0, so the row is scaled to 0.
    assert!(d[l.heads[1].weight.clone()].iter().all(|&v| v.abs() < 1e-9));
}

#[test]
fn gradient_plane_uses_descent_directions_scaled_to_theta() {
    let m = mlp(Activation::Tanh, vec![5], 2, vec![head(1, LossKind::Bce); 2]);
    let (x, y) = random_data(&m, 30, 1);
    let theta = m.init_params(3);
    let obj = MlpObjective { mlp: &m, x: &x, targets: &y };
    let p = plane(
        DirectionKind::Gradients,
        &obj,
        &theta,
        &PlaneInputs { layout: Some(m.layout()), seed: 0, trajectory: &[], tasks: (0, 1) },
    )
    .unwrap();
    let g = m.gradients(&theta, &x, &y).unwrap();
    let l = m.layout();
    let mut weights = theta.clone();
    for s in l.trunk.iter().chain(&l.heads) {
        weights[s.bias.clone()].iter_mut().for_each(|v| *v = 0.0);
    }
    let target = weights.iter().map(|v| v * v).sum::<f64>().sqrt();
    for (dir, t) in [(&p.delta, 0), (&p.eta, 1)] {
        let n = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((n - target).abs() < 1e-9 * target);
        // Parallel to −∇L_t on the shared block.
        let shared: Vec<f64> = g.shared_jacobian.row(t).iter().map(|v| -v).collect();
        let cos = {
            let a = &dir[..l.shared_len];
            let dot: f64 = a.iter().zip(&shared).map(|(u, v)| u * v).sum();
            dot / (a.iter().map(|v| v * v).sum::<f64>().sqrt() * shared.iter().map(|v| v * v).sum::<f64>().sqrt())
        };
        assert!((cos - 1.0).abs() < 1e-12);
        // The other task's head block is 0.
        assert!(dir[l.head_range(1 - t)].iter().all(|&v| v == 0.0));
    }
    assert!("gradient".parse::<DirectionKind>().is_err());
    assert_eq!("start-end".parse::<DirectionKind>().unwrap(), DirectionKind::StartEnd);
}

#[test]
fn pca_recovers_a_planar_trajectory_with_its_variance_ratios() {
    let p = 6;
    let end = vec![1.0; p];
    // Offsets a·e₀ + b·e₃ with a = (2, −2, 0, 0), b = (0, 0, 1, −1): means 0, variances 8 : 2.
    let traj: Vec<Vec<f64>> = [(2.0, 0.0), (-2.0, 0.0), (0.0, 1.0), (0.0, -1.0)]
        .iter()
        .map(|&(a, b)| {
            let mut t = end.clone();
            t[0] += a;
            t[3] += b;
            t
        })
        .collect();
    let (d1, d2, ratios) = pca_directions(&traj, &end).unwrap();
    let e = |i: usize| (0..p).map(|k| if k == i { 1.0 } else { 0.0 }).collect::<Vec<_>>();
    assert!(rel_err(&d1, &e(0)) < 1e-12, "{d1:?}");
    assert!(rel_err(&d2, &e(3)) < 1e-12, "{d2:?}");
    assert!((ratios[0] - 0.8).abs() < 1e-12 && (ratios[1] - 0.2).abs() < 1e-12);
    // A straight-line trajectory spans one direction only.
    let line: Vec<Vec<f64>> = (0..4).map(|i| end.iter().map(|v| v + i as f64).collect()).collect();
    assert!(pca_directions(&line, &end).is_err());
    assert!(pca_directions(&traj[..2], &end).is_err());
}

#[test]
fn projection_solves_least_squares_on_a_skewed_plane() {
    let origin = vec![1.0, 2.0, 3.0];
    let delta = vec![1.0, 0.0, 0.0];
    let eta = vec![1.0, 1.0, 0.0]; // not orthogonal to δ
    let plane = Plane {
        kind: DirectionKind::Random,
        origin: origin.clone(),
        delta,
        eta,
        cosine: 0.0,
        explained_variance: None,
    };
    // origin + 0.3δ − 0.7η + (0, 0, 2): in-plane part (0.3 − 0.7, −0.7, 0), residual 2.
    let snap = vec![1.0 - 0.4, 2.0 - 0.7, 5.0];
    let path = project(&plane, "run", &[0, 5], &[origin.clone(), snap]).unwrap();
    assert_eq!(path.coords[0], [0.0, 0.0]);
    assert!((path.coords[1][0] - 0.3).abs() < 1e-12 && (path.coords[1][1] + 0.7).abs() < 1e-12);
    let full = (0.4f64.powi(2) + 0.49 + 4.0).sqrt();
    assert!((path.residual[1] - 2.0 / full).abs() < 1e-12);
    assert!(project(&plane, "x", &[0], &[]).is_err());
}

// ---------- slices ----------

#[test]
fn batched_mlp_slice_matches_the_per_point_reference() {
    let cases = [
        mlp(Activation::Tanh, vec![7, 5], 3, vec![head(1, LossKind::Bce), head(2, LossKind::Mse)]),
        mlp(
            Activation::Relu,
            vec![6],
            2,
            vec![head(3, LossKind::SoftmaxCe), head(1, LossKind::Bce), head(2, LossKind::Mse)],
        ),
        mlp(Activation::Gelu, vec![], 4, vec![head(2, LossKind::Mse), head(3, LossKind::SoftmaxCe)]),
    ];
    for (i, m) in cases.iter().enumerate() {
        let (x, y) = random_data(m, 40, i as u64);
        let theta = m.init_params(i as u64);
        let obj = MlpObjective { mlp: m, x: &x, targets: &y };
        let inputs = PlaneInputs { layout: Some(m.layout()), seed: 9, trajectory: &[], tasks: (0, 1) };
        let p = plane(DirectionKind::Random, &obj, &theta, &inputs).unwrap();
        let grid = Grid::new(7, [-1.0, 1.0], 5, [-0.5, 1.5]).unwrap();
        let fast = mlp_slice(m, &x, &y, &p, &grid, 2).unwrap();
        let reference = slice_surface(&obj, &p, &grid, 1).unwrap();
        assert_eq!(fast.tasks.len(), m.num_tasks());
        for t in 0..m.num_tasks() {
            let err = rel_err(&fast.tasks[t], &reference.tasks[t]);
            assert!(err < 1e-12, "case {i} task {t}: relative error {err:e}");
        }
        let err = rel_err(&fast.total, &reference.total);
        assert!(err < 1e-12, "case {i} total: {err:e}");
        // Total is the sum of the tasks.
        // Single precision stays within 1e-4 of the f64 reference.
        let single = mlp_slice_with(m, &x, &y, &p, &grid, 2, Precision::F32).unwrap();
        let err = rel_err(&single.total, &reference.total);
        assert!(err < 1e-4, "case {i} f32 total: {err:e}");
        let k = 17;
        assert!((fast.total[k] - fast.tasks.iter().map(|t| t[k]).sum::<f64>()).abs() < 1e-12);
    }
}

#[test]
fn loss_value_equals_the_trainers_loss() {
    let m = mlp(
        Activation::Tanh,
        vec![4],
        2,
        vec![head(1, LossKind::Bce), head(3, LossKind::SoftmaxCe), head(2, LossKind::Mse)],
    );
    let (x, y) = random_data(&m, 25, 4);
    let theta = m.init_params(1);
    let outs = m.forward(&theta, &x).unwrap();
    for (t, h) in m.config().heads.iter().enumerate() {
        let expected = crate::model::loss_and_grad(h.loss, &outs[t], &y[t]).0;
        assert!((loss_value(h.loss, &outs[t], &y[t]) - expected).abs() < 1e-14 * expected.abs().max(1.0));
    }
}

#[test]
fn pareto_synthetic_slice_matches_the_closed_form() {
    // f₁ = 1 − exp(−Σ(xᵢ − 1/√n)²), f₂ = 1 − exp(−Σ(xᵢ + 1/√n)²); through 0 along e₀, e₁.
    let p = ParetoMtlSynthetic::new(20).unwrap();
    let n = 20;
    let e = |i: usize| (0..n).map(|k| if k == i { 1.0 } else { 0.0 }).collect::<Vec<_>>();
    let plane = Plane {
        kind: DirectionKind::Random,
        origin: vec![0.0; n],
        delta: e(0),
        eta: e(1),
        cosine: 0.0,
        explained_variance: None,
    };
    let grid = Grid::new(3, [-1.0, 1.0], 2, [0.0, 1.0]).unwrap();
    let s = slice_surface(&ProblemObjective(&p), &plane, &grid, 2).unwrap();
    let c = 1.0 / (n as f64).sqrt();
    for k in 0..grid.len() {
        let (a, b) = grid.point(k);
        let rest = (n - 2) as f64 * c * c;
        let f1 = 1.0 - (-((a - c).powi(2) + (b - c).powi(2) + rest)).exp();
        let f2 = 1.0 - (-((a + c).powi(2) + (b + c).powi(2) + rest)).exp();
        assert!((s.tasks[0][k] - f1).abs() < 1e-14 && (s.tasks[1][k] - f2).abs() < 1e-14, "point {k}");
    }
    // At the origin: 1 − e⁻¹ for both.
    assert!((s.tasks[0][1] - (1.0 - (-1.0f64).exp())).abs() < 1e-14);
}

#[test]
fn toy_surface_carries_the_published_markers_and_front() {
    let ts = toy_surface(ProblemKind::CagradToy, 21).unwrap();
    assert_eq!(ts.surface.grid.alphas[0], -11.0);
    assert_eq!(ts.surface.grid.alphas[20], 11.0);
    assert_eq!(ts.optimum, [0.0, -8.3552]);
    assert_eq!(ts.pareto_segment, [[-7.0, -8.3552], [7.0, -8.3552]]);
    assert_eq!(ts.pareto_front.len(), FRONT_POINTS);
    let toy = CagradToy::new(1.0);
    let l = toy.losses(&[7.0, -8.3552]);
    assert_eq!(*ts.pareto_front.last().unwrap(), [l[0], l[1]]);
    let k = 3 * 21 + 5;
    let (a, b) = ts.surface.grid.point(k);
    assert_eq!(ts.surface.tasks[0][k], toy.losses(&[a, b])[0]);
    // Along the segment the tasks trade off: L₁ falls as x₁ → 7 while L₂ rises.
    let f = &ts.pareto_front;
    assert!(f[0][0] > f[FRONT_POINTS - 1][0] && f[0][1] < f[FRONT_POINTS - 1][1]);
}

// ---------- interpolation ----------

/// 1-D double well L₀ = (x² − 1)² on x[0], and L₁ = ½x₁² as a convex second task.
struct DoubleWell;

impl Problem for DoubleWell {
    fn num_tasks(&self) -> usize {
        2
    }
    fn dim(&self) -> usize {
        2
    }
    fn losses(&self, x: &[f64]) -> Vec<f64> {
        vec![(x[0] * x[0] - 1.0).powi(2), 0.5 * x[1] * x[1]]
    }
    fn jacobian(&self, x: &[f64]) -> Vec<Vec<f64>> {
        vec![vec![4.0 * x[0] * (x[0] * x[0] - 1.0), 0.0], vec![0.0, x[1]]]
    }
}

#[test]
fn barriers_follow_both_published_definitions() {
    // Frankle: sup f − ½(f(0)+f(1)); Entezari: sup f − ((1−α)f(0) + αf(1)).
    let alphas = [0.0, 0.25, 0.5, 0.75, 1.0];
    let (fr, en) = barriers(&alphas, &[1.0, 3.0, 2.0, 2.0, 3.0], 1.0, 3.0);
    assert!((fr - 1.0).abs() < 1e-15, "{fr}");
    assert!((en - 1.5).abs() < 1e-15, "{en}");
    // Points outside [0, 1] are ignored.
    let (fr, en) = barriers(&[-0.5, 0.0, 1.0, 1.5], &[100.0, 0.0, 0.0, 100.0], 0.0, 0.0);
    assert_eq!((fr, en), (0.0, 0.0));

    // Double well from x = −1 to x = 1 (x₁ from 0 to 2): the path crosses the bump L₀(0) = 1.
    let obj = ProblemObjective(&DoubleWell);
    let alphas = linspace(-0.5, 1.5, 41);
    let r = interpolate(&obj, &[-1.0, 0.0], &[1.0, 2.0], &alphas, 2).unwrap();
    assert!((r.barrier_frankle[0] - 1.0).abs() < 1e-12 && (r.barrier_entezari[0] - 1.0).abs() < 1e-12);
    // Task 1: ½(2α)² = 2α², ends 0 and 2: Frankle = 2 − 1 = 1 (at α = 1), Entezari 0 (convex).
    assert!((r.barrier_frankle[1] - 1.0).abs() < 1e-12 && r.barrier_entezari[1].abs() < 1e-12);
    // Total 1·(bump) + 2α²: at α = ½ it is 1 + 0.5 = 1.5, the chord there is 1: Entezari ≥ 0.5.
    assert!(r.barrier_entezari[2] >= 0.5 - 1e-12);
    assert!((r.total[20] - 1.5).abs() < 1e-12);
    assert!(interpolate(&obj, &[0.0, f64::NAN], &[1.0, 2.0], &alphas, 1).is_err());
}

// ---------- curvature ----------

/// No hidden layer, MSE heads: each task's loss is quadratic in its head, with Hessian
/// (2/(B·k))·Σ_b x̃_b x̃_bᵀ on every output row (x̃ = [x, 1]), zero elsewhere.
fn closed_form_hessian(m: &Mlp, x: &DMatrix<f64>, task: Option<usize>) -> DMatrix<f64> {
    let l = m.layout();
    let mut h = DMatrix::zeros(l.total_len, l.total_len);
    let b = x.nrows();
    for (t, s) in l.heads.iter().enumerate() {
        if task.is_some_and(|tt| tt != t) {
            continue;
        }
        let c = 2.0 / (b * s.fan_out) as f64;
        for j in 0..s.fan_out {
            // Index of x̃ component r in the flat vector for output row j.
            let idx = |r: usize| if r < s.fan_in { s.weight.start + j * s.fan_in + r } else { s.bias.start + j };
            for r in 0..=s.fan_in {
                for q in 0..=s.fan_in {
                    let xt = |row: usize, i: usize| if i < s.fan_in { x[(row, i)] } else { 1.0 };
                    h[(idx(r), idx(q))] += c * (0..b).map(|row| xt(row, r) * xt(row, q)).sum::<f64>();
                }
            }
        }
    }
    h
}

#[test]
fn hvp_matches_the_closed_form_hessian_of_a_quadratic_model() {
    let m = mlp(Activation::Linear, vec![], 3, vec![head(2, LossKind::Mse), head(1, LossKind::Mse)]);
    let (x, y) = random_data(&m, 15, 2);
    let theta = m.init_params(5);
    let obj = MlpObjective { mlp: &m, x: &x, targets: &y };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for task in [Some(0), Some(1), None] {
        let h = closed_form_hessian(&m, &x, task);
        for _ in 0..3 {
            let v: Vec<f64> = (0..theta.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let exact: Vec<f64> = (&h * nalgebra::DVector::from_vec(v.clone())).iter().copied().collect();
            let err = rel_err(&hvp(&obj, &theta, &v, task).unwrap(), &exact);
            eprintln!("HVP vs closed form, task {task:?}: relative error {err:e}");
            assert!(err < 1e-9, "task {task:?}: HVP relative error {err:e}");
        }
        // Power iteration → the largest eigenvalue (H is PSD here).
        let cfg = CurvatureConfig { max_iter: 2000, tol: 1e-12, seed: 3 };
        let top = top_eigenvalue(&obj, &theta, task, &cfg).unwrap();
        let exact = SymmetricEigen::new(h.clone()).eigenvalues.max();
        eprintln!("λ_max task {task:?}: {} vs {exact} ({} iterations)", top.value, top.iterations);
        assert!((top.value - exact).abs() < 1e-6 * exact, "task {task:?}: λ {} vs {exact}", top.value);
        // Hutchinson within 4σ of the exact trace, σ² = 2·Σ_{i≠j} H_ij² / probes.
        let probes = 400;
        let tr =
            hutchinson_trace(&obj, &theta, task, &CurvatureConfig { max_iter: probes, tol: 1e-300, seed: 1 }).unwrap();
        assert_eq!(tr.samples.len(), probes);
        let off: f64 = (0..h.nrows())
            .flat_map(|i| (0..h.ncols()).map(move |j| (i, j)))
            .filter(|(i, j)| i != j)
            .map(|(i, j)| h[(i, j)].powi(2))
            .sum();
        let sigma = (2.0 * off / probes as f64).sqrt();
        assert!(
            (tr.mean - h.trace()).abs() < 4.0 * sigma + 1e-9,
            "task {task:?}: trace {} vs {} (σ {sigma})",
            tr.mean,
            h.trace()
        );
    }
}

#[test]
fn diagonal_hessian_gives_hand_computed_lambda_and_exact_trace() {
    // x = (−2, 2), one MSE output per head, B = 2: H of each head = diag(½·2·(4 + 4), ½·2·2)
    // = diag(8, 2). Per task λ_max = 8, trace 10; total λ_max 8, trace 20. A diagonal H makes
    // every Rademacher probe exact (vᵢ² = 1).
    let m = mlp(Activation::Linear, vec![], 1, vec![head(1, LossKind::Mse); 2]);
    let x = DMatrix::from_column_slice(2, 1, &[-2.0, 2.0]);
    let y = vec![Target::Values(DMatrix::from_column_slice(2, 1, &[0.5, -1.0])); 2];
    let theta = vec![0.3, -0.1, 0.7, 0.2];
    let obj = MlpObjective { mlp: &m, x: &x, targets: &y };
    let s = sharpness(&obj, &theta, &CurvatureConfig { max_iter: 500, tol: 1e-12, seed: 0 }).unwrap();
    for (got, want) in s.lambda_max.iter().zip([8.0, 8.0, 8.0]) {
        assert!((got - want).abs() < 1e-6, "λ {got} vs {want}");
    }
    for (got, want) in s.trace.iter().zip([10.0, 10.0, 20.0]) {
        assert!((got - want).abs() < 1e-7, "trace {got} vs {want}");
    }
}

#[test]
fn hvp_matches_second_differences_of_the_loss_on_a_tanh_net() {
    let m = mlp(Activation::Tanh, vec![3], 2, vec![head(1, LossKind::Bce), head(1, LossKind::Mse)]);
    let (x, y) = random_data(&m, 12, 6);
    let theta = m.init_params(2);
    let obj = MlpObjective { mlp: &m, x: &x, targets: &y };
    let p = theta.len();
    let total = |v: &[f64]| obj.losses(v).unwrap().iter().sum::<f64>();
    // H_ij ≈ [L(+i+j) − L(+i−j) − L(−i+j) + L(−i−j)]/(4h²): losses only, no gradient code.
    let h = 1e-4;
    let mut fd = DMatrix::zeros(p, p);
    for i in 0..p {
        for j in 0..p {
            let at = |si: f64, sj: f64| {
                let mut v = theta.clone();
                v[i] += si * h;
                v[j] += sj * h;
                total(&v)
            };
            fd[(i, j)] = (at(1.0, 1.0) - at(1.0, -1.0) - at(-1.0, 1.0) + at(-1.0, -1.0)) / (4.0 * h * h);
        }
    }
    let scale = fd.abs().max();
    let mut worst = 0.0f64;
    for j in 0..p {
        let e: Vec<f64> = (0..p).map(|k| if k == j { 1.0 } else { 0.0 }).collect();
        let col = hvp(&obj, &theta, &e, None).unwrap();
        for i in 0..p {
            worst = worst.max((col[i] - fd[(i, j)]).abs() / scale);
        }
    }
    eprintln!("HVP vs second differences of the loss: worst {worst:e} of max|H|");
    assert!(worst < 1e-6, "worst |HVP − FD Hessian| / max|H| = {worst:e}");
}

// ---------- Pareto ----------

#[test]
fn hypervolume_published_unit_case_is_three() {
    assert_eq!(hypervolume_2d(&[[1.0, 2.0], [2.0, 1.0]], [3.0, 3.0]).unwrap(), 3.0);
}

#[test]
fn hypervolume_ignores_dominated_points_and_points_beyond_the_reference() {
    let r = [3.0, 3.0];
    // (2.5, 2.5) is dominated by (2, 1); (0.5, 4) and (3, 0) do not strictly dominate r.
    let hv = hypervolume_2d(&[[1.0, 2.0], [2.5, 2.5], [2.0, 1.0], [0.5, 4.0], [3.0, 0.0]], r).unwrap();
    assert_eq!(hv, 3.0);
    assert_eq!(hypervolume_2d(&[], r).unwrap(), 0.0);
    // One point: a rectangle.
    assert_eq!(hypervolume_2d(&[[1.0, 0.5]], [4.0, 2.0]).unwrap(), 3.0 * 1.5);
    assert!(hypervolume_2d(&[[f64::NAN, 1.0]], r).is_err());
    assert!(hypervolume_2d(&[[1.0, 1.0]], [f64::INFINITY, 1.0]).is_err());
}

#[test]
fn non_dominated_front_in_staircase_order() {
    let pts = [[3.0, 1.0], [1.0, 3.0], [2.0, 2.0], [2.5, 2.5], [1.0, 4.0], [2.0, 2.0]];
    // (2.5, 2.5) is dominated by (2, 2); (1, 4) by (1, 3); the duplicate (2, 2) stays.
    assert_eq!(non_dominated(&pts).unwrap(), vec![1, 2, 5, 0]);
    assert!(dominates([1.0, 1.0], [1.0, 2.0]) && !dominates([1.0, 1.0], [1.0, 1.0]));
    let v = pareto_view(pts.to_vec(), (0..6).map(|i| i.to_string()).collect(), [4.0, 5.0]).unwrap();
    // Staircase (1,3), (2,2), (3,1) against (4,5): 3·2 + 2·1 + 1·1 = 9.
    assert_eq!(v.hypervolume, 9.0);
    assert!(pareto_view(pts.to_vec(), vec![], [4.0, 5.0]).is_err());
}

// ---------- tracking ----------

#[test]
fn tracking_leaves_the_record_unchanged_and_measures_every_k_steps() {
    let mut config = crate::train::preset("circle-vs-gauss").unwrap();
    config.steps = 7;
    let plain = crate::train::train(&config).unwrap();
    let mut trainer = crate::train::Trainer::new(config).unwrap();
    let cfg = TrackingConfig {
        every: 3,
        trace: true,
        curvature: CurvatureConfig { max_iter: 20, tol: 1e-3, seed: 0 },
        snapshot_every: 2,
    };
    let tracked = run_tracked(&mut trainer, &cfg, |_| {}).unwrap();
    assert_eq!(tracked.record, plain);
    assert_eq!(tracked.sharpness.iter().map(|p| p.step).collect::<Vec<_>>(), vec![0, 3, 6, 7]);
    assert_eq!(tracked.snapshot_steps, vec![0, 2, 4, 6, 7]);
    assert_eq!(tracked.snapshots.last().unwrap(), &plain.params);
    for p in &tracked.sharpness {
        assert_eq!(p.lambda_max.len(), 3);
        assert!(p.lambda_max.iter().all(|l| l.is_finite()));
        assert_eq!(p.trace.as_ref().unwrap().len(), 3);
    }
    let bad = TrackingConfig { snapshot_every: 0, ..cfg };
    let mut t2 = crate::train::Trainer::new(crate::train::preset("circle-vs-gauss").unwrap()).unwrap();
    assert!(run_tracked(&mut t2, &bad, |_| {}).is_err());
}

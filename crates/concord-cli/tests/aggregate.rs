//! The documented `concord methods`, `concord aggregate` and `concord bench aggregate`
//! interfaces: torchjd's values on J_base (aggregators.md §6), input formats (also
//! `bench aggregate --input`), bad input (exit code 2, a message, nothing on stdout) and the JSON
//! shapes.

mod common;

use common::{concord_with_stdin as concord, json};

const J_BASE_JSON: &str = "[[-4, 1, 1], [6, 1, 1]]";
const J_BASE_CSV: &str = "-4,1,1\n6,1,1\n";

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
    }
}

/// A temporary file holding `text`, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("concord-test-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("temp file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// aggregators.md §6 (atol 1e-4), J_base on standard input.
#[test]
fn aggregate_gives_torchjds_values_on_j_base() {
    let cases: [(&[&str], [f64; 3], [f64; 2]); 4] = [
        (&["--method", "upgrad"], [0.2929, 1.9004, 1.9004], [1.1109, 0.7894]),
        (&["--method", "mgda"], [0.0, 1.0, 1.0], [0.6, 0.4]),
        (&["--method", "cagrad", "--param", "c=0.5"], [0.1835, 1.2041, 1.2041], [0.7041, 0.5]),
        (&["--method", "constant", "--param", "weights=1,2"], [8.0, 3.0, 3.0], [1.0, 2.0]),
    ];
    for (args, update, weights) in cases {
        let v = json(&concord(&[&["aggregate"], args].concat(), J_BASE_JSON));
        assert_close(&floats(&v["update"]), &update, 1e-4);
        assert_close(&floats(&v["weights"]), &weights, 1e-4);
    }
}

#[test]
fn csv_json_file_and_stdin_inputs_agree() {
    let args = ["aggregate", "--method", "upgrad"];
    let reference = json(&concord(&args, J_BASE_JSON));
    let csv = TempFile::new("j.csv", J_BASE_CSV);
    let js = TempFile::new("j.json", J_BASE_JSON);
    for out in [
        concord(&args, J_BASE_CSV),
        concord(&[&args[..], &["--input", "-"]].concat(), J_BASE_CSV),
        concord(&[&args[..], &["--input", csv.path()]].concat(), ""),
        concord(&[&args[..], &["--input", js.path()]].concat(), ""),
        // Blank lines and spaces around fields are fine.
        concord(&args, "\n -4 , 1, 1\n\n6,1,1 \n\n"),
    ] {
        assert_eq!(json(&out), reference);
    }
}

#[test]
fn non_weighted_methods_print_null_weights() {
    let v = json(&concord(
        &["aggregate", "--method", "trimmed-mean", "--param", "trim_number=1"],
        "1e11,3\n1,-1e11\n-1e10,1e10\n2,2\n",
    ));
    assert!(v["weights"].is_null(), "{v}");
    assert_close(&floats(&v["update"]), &[1.5, 2.5], 1e-4);
    let v = json(&concord(&["aggregate", "--method", "graddrop", "--seed", "3"], J_BASE_JSON));
    assert!(v["weights"].is_null(), "{v}");
    assert_eq!(floats(&v["update"]).len(), 3);
}

/// Exit code 2, a one-line message naming the problem on stderr, nothing on stdout.
fn assert_usage_error(args: &[&str], stdin: &str, needle: &str) {
    let out = concord(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed {}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains(needle), "{args:?}: expected '{needle}' in: {stderr}");
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let agg = ["aggregate", "--method", "mean"];
    assert_usage_error(&agg, "1,2\n3,nan\n", "non-finite entry 'nan'");
    assert_usage_error(&agg, "1,2\n3,inf\n", "non-finite");
    assert_usage_error(&agg, "[[1, 2], [3, 1e999]]", "JSON matrix");
    assert_usage_error(&agg, "[[1, 2], [3]]", "ragged matrix: row 2 has 1 entries, row 1 has 2");
    assert_usage_error(&agg, "1,2,3\n4,5\n", "ragged matrix");
    assert_usage_error(&agg, "", "empty matrix");
    assert_usage_error(&agg, "[]", "empty matrix");
    assert_usage_error(&agg, "[[], []]", "empty matrix");
    assert_usage_error(&agg, "1,x\n", "line 1, column 2: 'x' is not a number");
    assert_usage_error(&agg, "[[1, \"a\"]]", "JSON matrix");
    assert_usage_error(&agg, "[[1, 2]", "JSON matrix");
    assert_usage_error(
        &["aggregate", "--method", "mean", "--input", "/nonexistent/j.csv"],
        "",
        "cannot read /nonexistent/j.csv",
    );
}

#[test]
fn bad_methods_and_parameters_exit_2_with_a_message() {
    assert_usage_error(&["aggregate", "--method", "upgrade"], J_BASE_JSON, "unknown aggregator 'upgrade'");
    assert_usage_error(&["aggregate", "--method", "cagrad", "--param", "c"], J_BASE_JSON, "not KEY=VALUE");
    assert_usage_error(&["aggregate", "--method", "cagrad", "--param", "c=-1"], J_BASE_JSON, "c must be finite, ≥ 0");
    assert_usage_error(&["aggregate", "--method", "cagrad", "--param", "d=1"], J_BASE_JSON, "no parameter 'd'");
    assert_usage_error(&["aggregate", "--method", "constant"], J_BASE_JSON, "needs the parameter weights");
    assert_usage_error(
        &["aggregate", "--method", "constant", "--param", "weights=1,2,3"],
        J_BASE_JSON,
        "weights has 3 entries but the matrix has m = 2 rows",
    );
    assert_usage_error(
        &["aggregate", "--method", "krum", "--param", "n_byzantine=0"],
        J_BASE_JSON,
        "needs m ≥ n_byzantine + 3 = 3 rows, got m = 2",
    );
    assert_usage_error(
        &["aggregate", "--method", "trimmed-mean", "--param", "trim_number=1"],
        J_BASE_JSON,
        "needs m ≥ 2·trim_number + 1 = 3 rows",
    );
    assert_usage_error(&["aggregate"], J_BASE_JSON, "--method");
}

#[test]
fn methods_json_lists_all_25_with_parameters_and_properties() {
    let v = json(&concord(&["methods", "--json"], ""));
    let weightings: Vec<&str> =
        v["weightings"].as_array().expect("weightings array").iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(weightings, ["ew", "uw", "dwa", "gradnorm", "famo", "gls", "stch", "rlw", "imtl-l"]);
    assert!(v["weightings"].as_array().unwrap().iter().all(|w| w["params"].is_array() && w["epochs"].is_string()));
    let stages: Vec<&str> = v["sample_weightings"]
        .as_array()
        .expect("sample_weightings array")
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["harmonize", "curriculum", "conflict-mask"]);
    let aggs = v["aggregators"].as_array().expect("aggregators array");
    let names: Vec<&str> = aggs.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "mean",
            "sum",
            "constant",
            "mgda",
            "pcgrad",
            "gradvac",
            "cagrad",
            "upgrad",
            "dualproj",
            "imtl-g",
            "aligned-mtl",
            "config",
            "graddrop",
            "random",
            "krum",
            "trimmed-mean",
            "nash-mtl",
            "fairgrad",
            "excess-mtl",
            "pcd",
            "cr-mogm",
            "modo",
            "sdmgrad",
            "moco",
            "db-mtl"
        ]
    );
    for a in aggs {
        for key in ["non_conflicting", "linear_under_scaling", "weighted"] {
            let p = a["properties"][key].as_str().unwrap();
            assert!(["yes", "no", "not documented"].contains(&p), "{}: {key} = {p}", a["name"]);
        }
        assert!(a["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(a["gramian_weighted"].is_boolean());
        for p in a["params"].as_array().unwrap() {
            for key in ["name", "type", "default", "range", "meaning"] {
                assert!(p[key].is_string(), "{}: {p}", a["name"]);
            }
        }
    }
    let by_name = |n: &str| aggs.iter().find(|a| a["name"] == n).unwrap();
    assert_eq!(by_name("upgrad")["properties"]["non_conflicting"], "yes");
    assert_eq!(by_name("graddrop")["properties"]["weighted"], "no");
    assert_eq!(by_name("fairgrad")["properties"]["non_conflicting"], "not documented");
    assert_eq!(by_name("cagrad")["params"][0]["default"], "0.5");
    assert_eq!(by_name("krum")["params"][0]["default"], "required");
    assert_eq!(by_name("moco")["needs_losses"], true);
    assert_eq!(by_name("db-mtl")["params"][0]["default"], "0.9");
    assert_eq!(by_name("mgda")["needs_losses"], false);

    let text = concord(&["methods"], "");
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    for n in names {
        assert!(text.contains(n), "methods table lacks {n}");
    }
}

/// `concord methods` lists every MoE router and architecture with its flags and defaults
/// (from concord-core's catalogue, whose defaults are checked against the constructors there).
#[test]
fn methods_lists_the_routers_and_architectures() {
    let v = json(&concord(&["methods", "--json"], ""));
    let routers = v["routers"].as_array().expect("routers array");
    let names: Vec<&str> = routers.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["softmax", "mmoe", "noisy-topk", "switch", "top2", "expert-choice", "task", "cgc", "ple", "dselect-k"]
    );
    let by_name = |n: &str| routers.iter().find(|r| r["name"] == n).unwrap();
    let architectures: Vec<&str> =
        routers.iter().filter(|r| r["architecture"] == true).map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(architectures, ["cgc", "ple", "dselect-k"]);
    assert_eq!(by_name("cgc")["params"][0]["flag"], "--task-experts");
    assert_eq!(
        by_name("dselect-k")["params"][1],
        serde_json::json!({"flag": "--gamma", "default": "1", "meaning": "width γ of the smooth step"})
    );
    assert_eq!(by_name("switch")["params"][0]["default"], "1.25");
    assert!(v["moe_params"].as_array().unwrap().iter().any(|q| q["flag"] == "--experts" && q["default"] == "4"));

    let text = String::from_utf8(concord(&["methods"], "").stdout).unwrap();
    for needle in [
        "MoE routers and architectures",
        "dselect-k",
        "architecture",
        "--task-experts=…  (default 1)",
        "--gamma=…  (default 1)",
        "--aux-entropy",
    ] {
        assert!(text.contains(needle), "methods table lacks {needle}");
    }
}

#[test]
fn bench_aggregate_json_has_the_documented_fields() {
    let out = concord(&["bench", "aggregate", "--method", "upgrad", "--m", "3", "--n", "50", "--json"], "");
    let v = json(&out);
    assert!(v["median_us"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["m"], 3);
    assert_eq!(v["n"], 50);
    assert_eq!(v["method"], "upgrad");
    assert!(v["calls"].as_u64().unwrap() >= 1, "{v}");
    let line = concord(&["bench", "aggregate", "--method", "cagrad", "--param", "c=1", "--m", "2", "--n", "4"], "");
    assert!(line.status.success());
    assert!(String::from_utf8_lossy(&line.stdout).contains("median"), "{line:?}");
}

/// The f32 path (`--precision f32`) agrees with the f64 reference for every method whose
/// update is a continuous function of J on a well-conditioned matrix (Krum and TrimmedMean
/// pick rows, PCGrad/GradDrop/Random draw numbers: the same seed, so they agree too).
#[test]
fn aggregate_in_f32_matches_f64_for_every_method() {
    // A full-rank 4 × 300 matrix: entries uniform in [−1, 1) from a fixed LCG, with a shared
    // component so that the tasks are correlated but not collinear.
    let mut state: u64 = 12345;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let shared: Vec<f64> = (0..300).map(|_| uniform()).collect();
    let rows: Vec<String> = (0..4)
        .map(|_| {
            let row: Vec<String> = shared.iter().map(|s| format!("{:.6}", 0.5 * s + uniform())).collect();
            row.join(",")
        })
        .collect();
    let csv = rows.join("\n");
    let methods = json(&concord(&["methods", "--json"], ""));
    let names: Vec<String> = methods["aggregators"]
        .as_array()
        .expect("an aggregators list")
        .iter()
        .map(|a| a["name"].as_str().expect("a name").to_string())
        .collect();
    assert!(names.len() >= 18, "{names:?}");
    for name in &names {
        let mut args = vec!["aggregate", "--method", name.as_str(), "--losses", "0.5,2,1,0.25"];
        match name.as_str() {
            "constant" => args.extend(["--param", "weights=1,2,0.5,1"]),
            "krum" => args.extend(["--param", "n_byzantine=1"]),
            "trimmed-mean" => args.extend(["--param", "trim_number=1"]),
            "fairgrad" => args.extend(["--param", "alpha=1"]),
            _ => {}
        }
        let f64_run = json(&concord(&args, &csv));
        args.extend(["--precision", "f32"]);
        let f32_run = json(&concord(&args, &csv));
        let (d64, d32) = (floats(&f64_run["update"]), floats(&f32_run["update"]));
        let scale = d64.iter().fold(0.0f64, |a, x| a.max(x.abs())).max(1e-12);
        let err = d64.iter().zip(&d32).fold(0.0f64, |a, (x, y)| a.max((x - y).abs())) / scale;
        // f32 rounding of J (2⁻²⁴) and of 300-term sums, amplified by the m × m solve.
        assert!(err < 1e-4, "{name}: max |d32 − d64| / max |d64| = {err:e}");
    }
}

/// The loss-aware methods read the batch's losses: without `--losses` they are refused (exit 2,
/// the reason), with them they give the reference's values (methods-wave2.md §2a, §2b and §2e's
/// "Test this"); `--losses` is checked against m, and the other methods ignore it.
#[test]
fn loss_aware_methods_need_losses() {
    let j = "[[1,2],[3,-1]]";
    for method in ["moco", "db-mtl"] {
        assert_usage_error(&["aggregate", "--method", method], j, "reads the task losses as well as the matrix");
        assert_usage_error(&["aggregate", "--method", method], j, "--losses L1,L2");
        assert_usage_error(
            &["bench", "aggregate", "--method", method, "--m", "2", "--n", "4"],
            "",
            "reads the task losses",
        );
    }
    // `name[:key=value]` as `--method name --param key=value`.
    let run = |method: &str, m: &str, losses: &str| {
        let (name, param) = method.split_once(':').map_or((method, None), |(n, p)| (n, Some(p)));
        let mut args = vec!["aggregate", "--method", name, "--losses", losses];
        args.extend(param.iter().flat_map(|p| ["--param", p]));
        floats(&json(&concord(&args, m))["update"])
    };
    // The first step of each (a fresh state per call).
    assert_close(&run("moco", j, "0.5,2"), &[0.520438, -0.039985], 1e-6);
    assert_close(&run("db-mtl", j, "0.5,2"), &[0.624264, 0.258579], 1e-6);
    let j2 = "[[1,0],[-1,1]]";
    assert_usage_error(
        &["aggregate", "--method", "mgda", "--param", "gn=loss"],
        j2,
        "mgda:gn=loss reads the task losses",
    );
    assert_close(&run("mgda:gn=loss", j2, "2,0.5"), &[0.195122, 0.243902], 1e-6);
    assert_close(&run("mgda:gn=loss+", j2, "2,0.5"), &[0.176547, 0.238966], 1e-6);
    assert_close(&run("mgda", j2, "2,0.5"), &[0.2, 0.4], 1e-9);
    assert_usage_error(
        &["aggregate", "--method", "moco", "--losses", "1,2,3"],
        j,
        "--losses has 3 entries but the matrix has m = 2",
    );
    assert_usage_error(&["aggregate", "--method", "moco", "--losses", "1,x"], j, "--losses must be finite numbers");
}

/// `bench aggregate --losses` times the loss-aware methods (refused without it, above): every
/// one of them, in both precisions, with the losses echoed in the JSON; the count is checked
/// against m, and a method that ignores the losses is timed as before.
#[test]
fn bench_aggregate_times_the_loss_aware_methods_with_losses() {
    for method in ["moco", "db-mtl", "mgda:gn=loss", "mgda:gn=loss+"] {
        let (name, param) = method.split_once(':').map_or((method, None), |(n, p)| (n, Some(p)));
        for precision in ["f64", "f32"] {
            let mut args = vec!["bench", "aggregate", "--method", name, "--m", "3", "--n", "20"];
            args.extend(param.iter().flat_map(|p| ["--param", p]));
            args.extend(["--losses", "0.5,2,1", "--precision", precision, "--json"]);
            let v = json(&concord(&args, ""));
            assert!(v["median_us"].as_f64().is_some_and(|t| t > 0.0 && t.is_finite()), "{method}: {v}");
            assert_eq!(v["losses"], serde_json::json!([0.5, 2.0, 1.0]), "{method}");
            assert_eq!(v["method"], name);
        }
    }
    assert_usage_error(
        &["bench", "aggregate", "--method", "moco", "--m", "2", "--n", "4", "--losses", "1,2,3"],
        "",
        "--losses has 3 entries but the matrix has m = 2",
    );
    assert_usage_error(
        &["bench", "aggregate", "--method", "moco", "--m", "2", "--n", "4", "--losses", "1,nan"],
        "",
        "--losses must be finite numbers",
    );
    let v = json(&concord(&["bench", "aggregate", "--method", "upgrad", "--m", "2", "--n", "4", "--json"], ""));
    assert_eq!(v["losses"], serde_json::Value::Null);
}

#[test]
fn bench_aggregate_reports_precision_and_threads() {
    let v = json(&concord(
        &[
            "bench",
            "aggregate",
            "--method",
            "mgda",
            "--m",
            "4",
            "--n",
            "40000",
            "--precision",
            "f32",
            "--threads",
            "2",
            "--json",
        ],
        "",
    ));
    assert_eq!(v["precision"], "f32");
    assert_eq!(v["threads"], 2);
    assert!(v["median_us"].as_f64().unwrap() > 0.0, "{v}");
    let v = json(&concord(&["bench", "aggregate", "--method", "mgda", "--m", "4", "--n", "40", "--json"], ""));
    assert_eq!(v["precision"], "f64");
    assert_usage_error(
        &["bench", "aggregate", "--method", "mean", "--m", "2", "--n", "3", "--threads", "0"],
        "",
        "--threads must be at least 1",
    );
    assert_usage_error(
        &["bench", "aggregate", "--method", "mean", "--m", "2", "--n", "3", "--precision", "f16"],
        "",
        "f16",
    );
}

#[test]
fn bench_aggregate_rejects_bad_sizes_and_parameters() {
    assert_usage_error(&["bench", "aggregate", "--method", "mean", "--m", "0", "--n", "3"], "", "at least 1");
    assert_usage_error(
        &["bench", "aggregate", "--method", "krum", "--param", "n_byzantine=2", "--m", "4", "--n", "3"],
        "",
        "needs m ≥ n_byzantine + 3",
    );
    assert_usage_error(&["bench", "aggregate", "--method", "nope", "--m", "2", "--n", "3"], "", "unknown aggregator");
}

#[test]
fn bench_aggregate_times_a_matrix_from_a_file() {
    let js = TempFile::new("bench.json", "[[-4, 1, 1, 2], [6, 1, 1, 0], [1, 2, 3, 4]]");
    let csv = TempFile::new("bench.csv", "-4,1,1,2\n6,1,1,0\n1,2,3,4\n");
    for file in [&js, &csv] {
        let v = json(&concord(&["bench", "aggregate", "--method", "upgrad", "--input", file.path(), "--json"], ""));
        assert!(v["median_us"].as_f64().unwrap() > 0.0, "{v}");
        assert_eq!(v["m"], 3);
        assert_eq!(v["n"], 4);
        assert_eq!(v["method"], "upgrad");
        assert_eq!(v["input"], file.path());
    }
    // --m/--n may be given with --input when they match the file.
    let v = json(&concord(
        &["bench", "aggregate", "--method", "mean", "--m", "3", "--n", "4", "--input", js.path(), "--json"],
        "",
    ));
    assert_eq!((v["m"].as_u64(), v["n"].as_u64()), (Some(3), Some(4)));
    let line = concord(&["bench", "aggregate", "--method", "mgda", "--input", csv.path()], "");
    assert!(line.status.success());
    assert!(String::from_utf8_lossy(&line.stdout).contains("3×4 matrix of"), "{line:?}");
    // Without --input the JSON says so.
    let v = json(&concord(&["bench", "aggregate", "--method", "sum", "--m", "2", "--n", "3", "--json"], ""));
    assert!(v["input"].is_null(), "{v}");
}

#[test]
fn bench_aggregate_rejects_bad_input_files() {
    let bench = ["bench", "aggregate", "--method", "mean", "--input"];
    assert_usage_error(&[&bench[..], &["/nonexistent/j.csv"]].concat(), "", "cannot read /nonexistent/j.csv");
    let ragged = TempFile::new("ragged.csv", "1,2,3\n4,5\n");
    assert_usage_error(&[&bench[..], &[ragged.path()]].concat(), "", "ragged matrix");
    let nan = TempFile::new("nan.json", "[[1, 2], [3, 1e999]]");
    assert_usage_error(&[&bench[..], &[nan.path()]].concat(), "", "JSON matrix");
    let empty = TempFile::new("empty.csv", "");
    assert_usage_error(&[&bench[..], &[empty.path()]].concat(), "", "empty matrix");
    let word = TempFile::new("word.csv", "1,x\n");
    assert_usage_error(&[&bench[..], &[word.path()]].concat(), "", "'x' is not a number");
    let ok = TempFile::new("ok.csv", "1,2,3\n4,5,6\n");
    assert_usage_error(&[&bench[..], &[ok.path(), "--m", "3"]].concat(), "", "--m 3 does not match");
    assert_usage_error(&[&bench[..], &[ok.path(), "--n", "2"]].concat(), "", "--n 2 does not match");
    // m-dependent parameters are checked against the file's m.
    assert_usage_error(
        &["bench", "aggregate", "--method", "krum", "--param", "n_byzantine=0", "--input", ok.path()],
        "",
        "needs m ≥ n_byzantine + 3 = 3 rows, got m = 2",
    );
    // An unknown method is reported before the file is read.
    assert_usage_error(
        &["bench", "aggregate", "--method", "nope", "--input", "/nonexistent/j.csv"],
        "",
        "unknown aggregator",
    );
    // Neither --input nor --m/--n.
    assert_usage_error(&["bench", "aggregate", "--method", "mean"], "", "--m");
}

/// README's Methods table lists every aggregator by CLI name with the registry's properties.
#[test]
fn readme_methods_table_matches_the_registry() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
    let v = json(&concord(&["methods", "--json"], ""));
    for a in v["aggregators"].as_array().unwrap() {
        let name = a["name"].as_str().unwrap();
        let row = readme
            .lines()
            .find(|l| l.starts_with('|') && l.contains(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("README's Methods table has no row for {name}"));
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let marks = &cells[cells.len() - 3..];
        for (cell, key) in marks.iter().zip(["non_conflicting", "linear_under_scaling", "weighted"]) {
            let want = match a["properties"][key].as_str().unwrap() {
                "yes" => "✔",
                "no" => "✘",
                _ => "–",
            };
            assert!(cell.starts_with(want), "README row {name}: {key} is '{cell}', registry says {want}");
        }
        for p in a["params"].as_array().unwrap() {
            let pname = p["name"].as_str().unwrap();
            assert!(row.contains(&format!("`{pname}`")), "README row {name} lacks parameter {pname}");
        }
    }
}

/// A tall matrix (10⁵ rows × 1 column) would ask for a 10⁵ × 10⁵ Gramian (80 GB) and abort:
/// it is bad input instead (exit 2, a message), for `aggregate`, `bench aggregate --input` and
/// `bench aggregate --m`.
#[test]
fn tall_matrices_exit_2_with_a_message() {
    let tall = "1\n".repeat(100_000);
    assert_usage_error(&["aggregate", "--method", "upgrad"], &tall, "at most 1024");
    let tall_json = format!("[{}[1]]", "[1],".repeat(100_000));
    assert_usage_error(&["aggregate", "--method", "mean"], &tall_json, "at most 1024");
    let file = TempFile::new("tall.csv", &tall);
    assert_usage_error(&["bench", "aggregate", "--method", "mgda", "--input", file.path()], "", "at most 1024");
    assert_usage_error(&["bench", "aggregate", "--method", "mgda", "--m", "100000", "--n", "1"], "", "at most 1024");
    // 1024 rows are fine.
    let v = json(&concord(&["aggregate", "--method", "mean"], &"1,2\n".repeat(1024)));
    assert_close(&floats(&v["update"]), &[1.0, 2.0], 1e-12);
    // The bound on m·n is checked by aggregate.rs's unit tests (a 400 MB input is no test input).
}

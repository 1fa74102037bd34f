//! `mho attribute --heatmap`: PNG pictures of input and layer attributions.

use std::path::Path;
use std::process::Command;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(path).expect("png exists"));
    let reader = decoder.read_info().expect("a valid PNG");
    let info = reader.info();
    (info.width, info.height)
}

#[test]
fn heatmaps_for_input_and_for_each_layer() {
    let dir = std::env::temp_dir().join(format!("mho-heatmap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = fixture("bench/digits_cnn.safetensors");
    let input = fixture("bench/digits_input.npy");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mho"))
            .args([
                "attribute",
                "--model",
                model.to_str().unwrap(),
                "--input",
                input.to_str().unwrap(),
                "--target",
                "0",
            ])
            .args(args)
            .args(["--out", dir.join("a.json").to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ig = dir.join("ig.png");
    run(&[
        "--method",
        "integrated-gradients",
        "--heatmap",
        ig.to_str().unwrap(),
    ]);
    let (w, h) = png_size(&ig);
    // 4 examples of 8×8 stacked, each image beside its heatmap.
    assert!(w > h / 4 && h >= 4 * 8, "{w}×{h}");
    let cond = dir.join("cond.png");
    run(&[
        "--method",
        "conductance",
        "--layer",
        "1",
        "--layer",
        "6",
        "--heatmap",
        cond.to_str().unwrap(),
    ]);
    for name in ["cond-1.png", "cond-6.png"] {
        let (w, h) = png_size(&dir.join(name));
        assert!(w > 0 && h > 0);
    }
    assert!(
        !cond.exists(),
        "several layers write one file each, not the bare name"
    );
    // A missing directory is refused before any work, with one line naming --heatmap.
    let out = Command::new(env!("CARGO_BIN_EXE_mho"))
        .args([
            "attribute",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ])
        .args([
            "--target",
            "0",
            "--method",
            "integrated-gradients",
            "--heatmap",
            "/nonexistent-dir/x.png",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.starts_with("error: --heatmap") && err.lines().count() == 1,
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

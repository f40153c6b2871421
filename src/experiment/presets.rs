//! Named experiments a blog post can link and a CLI user can rerun: each is a [`Config`]
//! (differences from the defaults) with a title and one sentence saying what it shows.
//! The page lists them (through `presets()` in wasm) and opens on the first; the CLI takes
//! `--preset NAME`.

use serde::Serialize;

use super::config::{Config, DatasetKind, Scope};

/// One preset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Preset {
    /// Short id (`?preset=` on the page, `--preset` on the CLI).
    pub id: &'static str,
    pub title: &'static str,
    /// What it shows, from the measurements in RESULTS.md.
    pub about: &'static str,
    pub config: Config,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Every preset, the page's default first.
pub fn presets() -> Vec<Preset> {
    let d = Config::default;
    vec![
        Preset {
            id: "mlp",
            title: "VAR on the MLP, 98–99 % — where it helps",
            about: "LeNet-300-100 on 4 000 MNIST images from PyTorch's default \
                    initialisation: with these 4 seeds VAR is above SGD at 95 % sparsity in 4 \
                    of 4 (+1.9 ± 1.0 points), with 8 seeds at 90, 95 and 99 % (RESULTS.md). \
                    The gain is a few points with a spread of the same size, so it takes \
                    several paired seeds to see.",
            config: Config {
                model: "mlp".into(),
                optimizers: strings(&["sgd", "var"]),
                train_size: 4000,
                test_size: 1000,
                epochs: 3,
                seeds: 4,
                sparsities: vec![0.5, 0.8, 0.9, 0.95, 0.98, 0.99],
                ..d()
            },
        },
        Preset {
            id: "cifar-live",
            title: "CIFAR-10, small: VAR keeps the CNN at 98 %",
            about: "The plain CNN on 5 000 CIFAR-10 images for 3 epochs: measured natively \
                    with these 4 seeds, SGD reaches 42 % dense and VAR keeps +11.1 ± 3.7 \
                    points more than SGD at 98 % sparsity (paired t 6.0; RESULTS.md).",
            config: Config {
                dataset: DatasetKind::Cifar10,
                model: "cnn".into(),
                optimizers: strings(&["sgd", "var"]),
                train_size: 5000,
                test_size: 1000,
                augment: true,
                epochs: 3,
                batch: 128,
                seeds: 4,
                sparsities: vec![0.5, 0.9, 0.95, 0.98],
                ..d()
            },
        },
        Preset {
            id: "lenet5",
            title: "LeNet-5 — where it doesn't",
            about: "LeNet-5 on MNIST: at ≥ 95 % sparsity the accuracy of one seed jumps by \
                    tens of points either way, and VAR is within that spread of SGD.",
            config: Config {
                model: "lenet5".into(),
                optimizers: strings(&["sgd", "var"]),
                epochs: 3,
                seeds: 4,
                ..d()
            },
        },
        Preset {
            id: "cifar-cnn",
            title: "CIFAR CNN (drop CIFAR-10 on the page)",
            about: "The plain VGG-like CNN on CIFAR-10, whose large first fully-connected \
                    layer stays near its initialisation under SGD: on the 10 000-image subset \
                    VAR kept +11.4 ± 3.4 points more than SGD at 98 % sparsity (8 of 8 seeds, \
                    5 epochs; RESULTS.md).",
            config: Config {
                dataset: DatasetKind::Cifar10,
                model: "cnn".into(),
                optimizers: strings(&["sgd", "var"]),
                augment: true,
                epochs: 5,
                batch: 128,
                seeds: 4,
                sparsities: vec![0.5, 0.7, 0.8, 0.9, 0.95, 0.98],
                ..d()
            },
        },
        Preset {
            id: "resnet8-cram",
            title: "CrAM vs VAR on ResNet-8 (CIFAR-10)",
            about: "ResNet-8 on CIFAR-10 with BatchNorm re-calibrated after pruning: CrAM, \
                    which trains against the pruned weights at twice the step cost, against \
                    VAR at SGD's cost.",
            config: Config {
                dataset: DatasetKind::Cifar10,
                model: "resnet8".into(),
                optimizers: strings(&["sgd", "var", "cram"]),
                augment: true,
                lr: 0.1,
                epochs: 3,
                batch: 128,
                seeds: 3,
                sparsities: vec![0.5, 0.7, 0.8, 0.9, 0.95, 0.98],
                scope: Scope::Global,
                bn_recal: 500,
                ..d()
            },
        },
    ]
}

/// The preset named `id`.
pub fn preset(id: &str) -> Option<Preset> {
    presets().into_iter().find(|p| p.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_a_valid_config_with_a_unique_id() {
        let all = presets();
        for (i, p) in all.iter().enumerate() {
            p.config
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e}", p.id));
            assert!(all[..i].iter().all(|q| q.id != p.id), "{} twice", p.id);
            assert_eq!(preset(p.id).as_ref(), Some(p));
        }
    }

    #[test]
    fn the_live_cifar_preset_is_second_and_builds_its_model() {
        let p = &presets()[1];
        assert_eq!(p.id, "cifar-live");
        let model = p
            .config
            .build_model(DatasetKind::Cifar10.input(), 10)
            .unwrap();
        assert_eq!(model.name, "cnn");
    }
}

//! Model descriptions (`varlab::nn`): parameter counts of every preset (exact, the arithmetic
//! in comments), names, the aligned flat table, the prunable set, slot shapes, typed errors
//! and seeded initialisation. Pure CPU; plain `#[test]`s.
//!
//! Init statistics: for tensors of ≥ 9,000 elements the sample mean is within 3% of the
//! target std from 0 and the sample std within 5% of the target (the standard error of a
//! std estimate over n draws is ≈ std/√(2n), under 1% here).

use std::collections::HashSet;

use varlab::nn::{
    self, init, Init, InitScheme, Model, Op, ParamKind, SpecError, StateKind, VitConfig, ALIGN,
};

const MNIST: [usize; 3] = [1, 28, 28];
const CIFAR: [usize; 3] = [3, 32, 32];
const PRESETS: [&str; 6] = ["mlp", "lenet5", "cnn", "resnet8", "resnet20", "vit-tiny"];

fn model(name: &str, input: [usize; 3]) -> Model {
    Model::by_name(name, input, 10).unwrap()
}

fn count(name: &str, input: [usize; 3]) -> usize {
    model(name, input).params().count()
}

fn prunable(name: &str, input: [usize; 3]) -> usize {
    model(name, input).params().prunable_count()
}

#[test]
fn mlp_parameter_count() {
    // 784·300 + 300 = 235,500; 300·100 + 100 = 30,100; 100·10 + 10 = 1,010.
    assert_eq!(count("mlp", MNIST), 235_500 + 30_100 + 1_010);
    assert_eq!(count("mlp", MNIST), 266_610);
    // 3072·300 + 300 = 921,900.
    assert_eq!(count("mlp", CIFAR), 921_900 + 30_100 + 1_010);
    assert_eq!(count("mlp", CIFAR), 953_010);
    assert_eq!(prunable("mlp", MNIST), 235_200 + 30_000 + 1_000);
}

#[test]
fn lenet5_parameter_count() {
    // conv1 1·6·5·5 + 6 = 156; conv2 6·16·25 + 16 = 2,416; fc 400·120 + 120 = 48,120;
    // 120·84 + 84 = 10,164; 84·10 + 10 = 850.
    assert_eq!(count("lenet5", MNIST), 156 + 2_416 + 48_120 + 10_164 + 850);
    assert_eq!(count("lenet5", MNIST), 61_706);
    // conv1 3·6·25 + 6 = 456, the rest the same (no padding: 32→28→14→10→5, 400 features).
    assert_eq!(count("lenet5", CIFAR), 456 + 2_416 + 48_120 + 10_164 + 850);
    assert_eq!(count("lenet5", CIFAR), 62_006);
    assert_eq!(
        prunable("lenet5", MNIST),
        150 + 2_400 + 48_000 + 10_080 + 840
    );
}

#[test]
fn cnn_parameter_count() {
    // Width 16: conv 3·16·9 + 16 = 448; 16·16·9 + 16 = 2,320; 16·32·9 + 32 = 4,640;
    // 32·32·9 + 32 = 9,248; fc 32·8·8 = 2,048 → 256: 524,544; 256·10 + 10 = 2,570.
    assert_eq!(
        count("cnn", CIFAR),
        448 + 2_320 + 4_640 + 9_248 + 524_544 + 2_570
    );
    assert_eq!(count("cnn", CIFAR), 543_770);
    // 28×28×1: conv1 1·16·9 + 16 = 160; 28 → 14 → 7, fc 32·7·7 = 1,568 → 256: 401,664.
    assert_eq!(
        count("cnn", MNIST),
        160 + 2_320 + 4_640 + 9_248 + 401_664 + 2_570
    );
    assert_eq!(
        prunable("cnn", CIFAR),
        432 + 2_304 + 4_608 + 9_216 + 524_288 + 2_560
    );
    // cnn-w8: conv 3·8·9 + 8 = 224, 8·8·9 + 8 = 584, 8·16·9 + 16 = 1,168, 16·16·9 + 16
    // = 2,320; fc 16·8·8 = 1,024 → 256: 262,400; 2,570.
    assert_eq!(
        count("cnn-w8", CIFAR),
        224 + 584 + 1_168 + 2_320 + 262_400 + 2_570
    );
    assert_eq!(count("cnn-w8", CIFAR), 269_266);
    assert_eq!(count("cnn-w8", MNIST), 207_682);
    let m = nn::plain_cnn(8, 64, CIFAR, 10).unwrap();
    assert_eq!(m.name, "cnn-w8-fc64");
    assert_eq!(
        m.params().get("classifier.0.weight").unwrap().shape,
        [64, 16 * 8 * 8]
    );
}

/// ResNet parameters on 32×32×3 (convs without bias; a BN has 2·C):
/// - stem: conv1 3·16·9 = 432, bn1 32 → 464
/// - a 16-wide block: 2·(16·16·9 = 2,304) + 2·32 = 4,672
/// - layer2.0: 16·32·9 = 4,608 + 64 + 32·32·9 = 9,216 + 64 + downsample 16·32 = 512 + 64
///   = 14,528; further 32-wide blocks 2·9,216 + 2·64 = 18,560
/// - layer3.0: 32·64·9 = 18,432 + 128 + 64·64·9 = 36,864 + 128 + 32·64 = 2,048 + 128
///   = 57,728; further 64-wide blocks 2·36,864 + 2·128 = 73,984
/// - fc: 64·10 + 10 = 650
///
/// On 28×28×1 only conv1 changes: 1·16·9 = 144 (288 fewer).
#[test]
fn resnet_parameter_counts() {
    let r20 = 464 + 3 * 4_672 + (14_528 + 2 * 18_560) + (57_728 + 2 * 73_984) + 650;
    assert_eq!(r20, 272_474);
    assert_eq!(count("resnet20", CIFAR), r20);
    assert_eq!(count("resnet20", MNIST), r20 - 288);
    let r8 = 464 + 4_672 + 14_528 + 57_728 + 650;
    assert_eq!(r8, 78_042);
    assert_eq!(count("resnet8", CIFAR), r8);
    assert_eq!(count("resnet8", MNIST), r8 - 288);
    // Prunable: all conv weights and fc.weight = total − BN params − fc.bias. BN channels:
    // bn1 16 + layer1 6·16 + layer2 7·32 + layer3 7·64 = 784 → 1,568 parameters.
    assert_eq!(prunable("resnet20", CIFAR), r20 - 1_568 - 10);
    // State: 2·784 running statistics + 21 BN layers' num_batches_tracked.
    let m = model("resnet20", CIFAR);
    let state = m.state();
    assert_eq!(state.count(), 2 * 784 + 21);
    assert_eq!(state.entries.len(), 3 * 21);
}

/// ResNet-18 for CIFAR on 32×32×3 (3×3 stem, no max-pool; convs without bias):
/// - stem: conv1 3·64·9 = 1,728 + bn1 128 → 1,856
/// - layer1: 2 blocks of 2·(64·64·9 = 36,864) + 2·128 = 73,984 → 147,968
/// - layer2.0: 64·128·9 = 73,728 + 256 + 128·128·9 = 147,456 + 256 + downsample
///   64·128 = 8,192 + 256 = 230,144; layer2.1: 2·147,456 + 2·256 = 295,424 → 525,568
/// - layer3.0: 128·256·9 = 294,912 + 512 + 589,824 + 512 + 32,768 + 512 = 919,040;
///   layer3.1: 2·589,824 + 1,024 = 1,180,672 → 2,099,712
/// - layer4.0: 256·512·9 = 1,179,648 + 1,024 + 2,359,296 + 1,024 + 131,072 + 1,024
///   = 3,673,088; layer4.1: 2·2,359,296 + 2,048 = 4,720,640 → 8,393,728
/// - fc: 512·10 + 10 = 5,130
///
/// 11,173,962 in all (kuangliu's `pytorch-cifar` ResNet18); on 28×28×1 conv1 is 576
/// (1,152 fewer). Prunable: total − BN (2·4,800 channels) − fc.bias.
#[test]
fn resnet18_parameter_count_and_names() {
    let r18 = 1_856 + 147_968 + 525_568 + 2_099_712 + 8_393_728 + 5_130;
    assert_eq!(r18, 11_173_962);
    let m = model("resnet18", CIFAR);
    assert_eq!(m.params().count(), r18);
    assert_eq!(count("resnet18", MNIST), r18 - 1_152);
    // BN channels: bn1 64 + layer1 4·64 + layer2 5·128 + layer3 5·256 + layer4 5·512.
    let bn = 64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512;
    assert_eq!(bn, 4_800);
    assert_eq!(m.params().prunable_count(), r18 - 2 * bn - 10);
    let table = m.params();
    let shape = |n: &str| table.get(n).unwrap().shape.clone();
    assert_eq!(shape("conv1.weight"), [64, 3, 3, 3]);
    assert_eq!(shape("layer1.1.conv2.weight"), [64, 64, 3, 3]);
    assert_eq!(shape("layer2.0.downsample.0.weight"), [128, 64, 1, 1]);
    assert_eq!(shape("layer4.1.bn2.weight"), [512]);
    assert_eq!(shape("fc.weight"), [10, 512]);
    assert!(table.get("layer1.0.downsample.0.weight").is_none());
    assert!(table.get("layer4.2.conv1.weight").is_none());
    // No max-pool: layer1 keeps 32×32; layer4 ends at 4×4 before the average pool.
    let shapes = m.shapes(2).unwrap();
    let at = |name: &str| {
        let i = m.nodes.iter().position(|n| n.name == name).unwrap();
        shapes[i + 1].0.clone()
    };
    assert_eq!(at("layer1.1.relu2"), [2, 64, 32, 32]);
    assert_eq!(at("layer4.1.relu2"), [2, 512, 4, 4]);
    // 100 classes change the head only.
    let c100 = Model::by_name("resnet18", CIFAR, 100).unwrap();
    assert_eq!(c100.params().count(), r18 + 90 * 513);
}

/// The GPU executor's memory, counted from the spec. MLP at batch 2: slots (input, flatten,
/// 300, 300, 100, 100, 10 per image) 2·(784 + 784 + 300 + 300 + 100 + 100 + 10) = 4,756
/// floats, twice (values and gradients), no scratch, a sink as wide as the widest slot
/// (1,568): 11,080 floats.
#[test]
fn gpu_memory_is_counted_from_the_spec() {
    let m = model("mlp", MNIST);
    let mem = varlab::exec::gpu_memory(&m, 2).unwrap();
    assert_eq!(mem.batch_bytes, 4 * 11_080);
    assert_eq!(mem.per_image(), 2 * 11_080);
    let fixed = 4 * (2 * m.params().buffer_len + m.state().buffer_len) as u64;
    assert_eq!(mem.fixed_bytes, fixed);
    assert_eq!(
        mem.largest,
        ("activations of slot 0".to_string(), 4 * 1_568)
    );
    // ResNet-18 at batch 128: the per-image weight gradients of a 512→512 3×3 convolution
    // (128·512·512·9 floats, 1.21 GB) are the largest buffer.
    let r18 = varlab::exec::gpu_memory(&model("resnet18", CIFAR), 128).unwrap();
    assert_eq!(
        r18.largest,
        (
            "conv dW per image of layer4.0.conv2".to_string(),
            4 * 128 * 512 * 512 * 9
        )
    );
    assert_eq!(r18.largest_batch_within(1 << 31), 227);
    assert!(r18.describe().contains("per image"), "{}", r18.describe());
}

/// ViT-tiny on 32×32×3, patch 4 → T = 64 tokens, E = 64:
/// - patch_embed.proj: 64·3·4·4 = 3,072 + 64 = 3,136
/// - cls_token 64; pos_embed 65·64 = 4,160
/// - a block: norm1 128 + qkv 64·192 + 192 = 12,480 + proj 64·64 + 64 = 4,160 + norm2 128
///   + fc1 64·128 + 128 = 8,320 + fc2 128·64 + 64 = 8,256 = 33,472; 4 blocks 133,888
/// - norm 128; head 64·10 + 10 = 650
///
/// On 28×28×1: T = 49, patch_embed 64·16 + 64 = 1,088, pos_embed 50·64 = 3,200.
#[test]
fn vit_tiny_parameter_count() {
    let block = 128 + 12_480 + 4_160 + 128 + 8_320 + 8_256;
    assert_eq!(block, 33_472);
    let cifar = 3_136 + 64 + 4_160 + 4 * block + 128 + 650;
    assert_eq!(cifar, 142_026);
    assert_eq!(count("vit-tiny", CIFAR), cifar);
    let mnist = 1_088 + 64 + 3_200 + 4 * block + 128 + 650;
    assert_eq!(mnist, 139_018);
    assert_eq!(count("vit-tiny", MNIST), mnist);
    // Prunable: patch 3,072 + 4·(12,288 + 4,096 + 8,192 + 8,192) + head 640.
    assert_eq!(prunable("vit-tiny", CIFAR), 3_072 + 4 * 32_768 + 640);
    assert!(model("vit-tiny", CIFAR).state().entries.is_empty());
}

#[test]
fn names_are_unique_and_pytorch_style() {
    for name in PRESETS {
        for input in [MNIST, CIFAR] {
            let m = model(name, input);
            let p = m.params();
            let s = m.state();
            let names: Vec<&str> = p
                .entries
                .iter()
                .map(|e| e.name.as_str())
                .chain(s.entries.iter().map(|e| e.name.as_str()))
                .collect();
            let unique: HashSet<&str> = names.iter().copied().collect();
            assert_eq!(unique.len(), names.len(), "{name}: duplicate names");
            for n in &names {
                assert!(
                    n.split('.').all(|part| !part.is_empty()
                        && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')),
                    "{name}: '{n}' is not a PyTorch key"
                );
            }
        }
    }
    let names = |m: &str| -> Vec<String> {
        model(m, MNIST)
            .params()
            .entries
            .into_iter()
            .map(|e| e.name)
            .collect()
    };
    assert_eq!(
        names("mlp"),
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.2.weight",
            "layers.2.bias",
            "layers.4.weight",
            "layers.4.bias"
        ]
    );
    assert_eq!(
        names("lenet5"),
        [
            "features.0.weight",
            "features.0.bias",
            "features.3.weight",
            "features.3.bias",
            "classifier.0.weight",
            "classifier.0.bias",
            "classifier.2.weight",
            "classifier.2.bias",
            "classifier.4.weight",
            "classifier.4.bias"
        ]
    );
    let r8 = names("resnet8");
    for key in [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "layer1.0.conv1.weight",
        "layer1.0.bn2.bias",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.weight",
        "layer3.0.downsample.1.bias",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(r8.iter().any(|n| n == key), "resnet8 lacks {key}");
    }
    assert!(!r8.iter().any(|n| n.starts_with("layer1.0.downsample")));
    assert!(!r8.iter().any(|n| n.ends_with("conv1.bias")));
    let r20 = model("resnet20", CIFAR);
    let state = r20.state();
    let nbt = state.get("layer3.2.bn2.num_batches_tracked").unwrap();
    assert_eq!((nbt.shape.as_slice(), nbt.len), (&[][..], 1));
    assert_eq!(nbt.kind, StateKind::NumBatchesTracked);
    assert_eq!(state.get("bn1.running_var").unwrap().shape, [16]);
    let vit = names("vit-tiny");
    assert_eq!(
        &vit[..4],
        [
            "patch_embed.proj.weight",
            "patch_embed.proj.bias",
            "cls_token",
            "pos_embed"
        ]
    );
    assert_eq!(
        &vit[4..16],
        [
            "blocks.0.norm1.weight",
            "blocks.0.norm1.bias",
            "blocks.0.attn.qkv.weight",
            "blocks.0.attn.qkv.bias",
            "blocks.0.attn.proj.weight",
            "blocks.0.attn.proj.bias",
            "blocks.0.norm2.weight",
            "blocks.0.norm2.bias",
            "blocks.0.mlp.fc1.weight",
            "blocks.0.mlp.fc1.bias",
            "blocks.0.mlp.fc2.weight",
            "blocks.0.mlp.fc2.bias"
        ]
    );
    assert_eq!(
        &vit[vit.len() - 4..],
        ["norm.weight", "norm.bias", "head.weight", "head.bias"]
    );
}

#[test]
fn pytorch_layouts() {
    let p = model("vit-tiny", CIFAR).params();
    let shape = |n: &str| p.get(n).unwrap().shape.clone();
    assert_eq!(shape("patch_embed.proj.weight"), [64, 3, 4, 4]);
    assert_eq!(shape("cls_token"), [1, 1, 64]);
    assert_eq!(shape("pos_embed"), [1, 65, 64]);
    assert_eq!(shape("blocks.3.attn.qkv.weight"), [192, 64]);
    assert_eq!(shape("blocks.3.attn.proj.weight"), [64, 64]);
    assert_eq!(shape("blocks.3.mlp.fc1.weight"), [128, 64]);
    assert_eq!(shape("blocks.3.mlp.fc2.weight"), [64, 128]);
    assert_eq!(shape("head.weight"), [10, 64]);
    let p = model("resnet20", CIFAR).params();
    assert_eq!(
        p.get("layer2.0.conv1.weight").unwrap().shape,
        [32, 16, 3, 3]
    );
    assert_eq!(
        p.get("layer3.0.downsample.0.weight").unwrap().shape,
        [64, 32, 1, 1]
    );
    assert_eq!(p.get("fc.weight").unwrap().shape, [10, 64]);
}

#[test]
fn tables_map_tensors_to_their_nodes() {
    for name in PRESETS {
        let m = model(name, CIFAR);
        let (p, s) = (m.params(), m.state());
        for (i, node) in m.nodes.iter().enumerate() {
            let want: Vec<Vec<usize>> = node.op.params().into_iter().map(|d| d.shape).collect();
            let got: Vec<Vec<usize>> = p.of_node(i).map(|e| e.shape.clone()).collect();
            assert_eq!(got, want, "{name}: node {i} ('{}')", node.name);
            assert_eq!(s.of_node(i).count(), node.op.state().len());
        }
    }
    let m = model("resnet8", CIFAR);
    let bn = m.nodes.iter().position(|n| n.name == "bn1").unwrap();
    let state = m.state();
    let names: Vec<&str> = state.of_node(bn).map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bn1.running_mean",
            "bn1.running_var",
            "bn1.num_batches_tracked"
        ]
    );
    assert_eq!(state.entries[0].node, bn);
}

#[test]
fn offsets_aligned_and_disjoint() {
    for name in PRESETS {
        for input in [MNIST, CIFAR] {
            let m = model(name, input);
            let p = m.params();
            let s = m.state();
            let ranges = |v: Vec<(usize, usize, Vec<usize>)>, buffer_len: usize| {
                let mut end = 0;
                for (offset, len, shape) in v {
                    assert_eq!(offset % ALIGN, 0, "{name}: offset {offset}");
                    assert!(offset >= end, "{name}: overlap at {offset}");
                    assert_eq!(len, shape.iter().product::<usize>());
                    end = offset + len;
                }
                assert!(end <= buffer_len && buffer_len.is_multiple_of(ALIGN));
                assert!(buffer_len - end < ALIGN, "{name}: trailing gap");
            };
            ranges(
                p.entries
                    .iter()
                    .map(|e| (e.offset, e.len, e.shape.clone()))
                    .collect(),
                p.buffer_len,
            );
            ranges(
                s.entries
                    .iter()
                    .map(|e| (e.offset, e.len, e.shape.clone()))
                    .collect(),
                s.buffer_len,
            );
        }
    }
}

#[test]
fn prunable_set_is_the_weight_matrices() {
    for name in PRESETS {
        let p = model(name, CIFAR).params();
        for e in &p.entries {
            let weight_matrix = e.name.ends_with(".weight") && e.shape.len() >= 2;
            assert_eq!(e.prunable, weight_matrix, "{name}: {}", e.name);
            assert_eq!(e.prunable, e.kind == ParamKind::Weight, "{}", e.name);
        }
    }
    let p = model("vit-tiny", CIFAR).params();
    let kind = |n: &str| p.get(n).unwrap().kind;
    assert_eq!(kind("cls_token"), ParamKind::Token);
    assert_eq!(kind("pos_embed"), ParamKind::Embedding);
    assert_eq!(kind("blocks.0.norm1.weight"), ParamKind::NormScale);
    assert_eq!(kind("norm.bias"), ParamKind::NormShift);
    assert_eq!(kind("blocks.1.attn.qkv.bias"), ParamKind::Bias);
    assert!(p.get("patch_embed.proj.weight").unwrap().prunable);
}

#[test]
fn shapes_of_every_slot() {
    for name in PRESETS {
        for input in [MNIST, CIFAR] {
            let m = model(name, input);
            for n in [1, 3] {
                let s = m.shapes(n).unwrap();
                assert_eq!(s.len(), m.nodes.len() + 1);
                assert_eq!(s[0].0, [n, input[0], input[1], input[2]]);
                assert_eq!(s.last().unwrap().0, [n, 10], "{name}");
                assert!(s.iter().all(|s| s[0] == n && s.numel() > 0));
            }
        }
    }
    // Spot checks along the way.
    let m = model("lenet5", MNIST);
    let s = m.shapes(3).unwrap();
    let dims: Vec<Vec<usize>> = s.iter().map(|s| s.0.clone()).collect();
    assert_eq!(dims[1], [3, 6, 28, 28]);
    assert_eq!(dims[3], [3, 6, 14, 14]);
    assert_eq!(dims[4], [3, 16, 10, 10]);
    assert_eq!(dims[6], [3, 16, 5, 5]);
    assert_eq!(dims[7], [3, 400]);
    let m = model("lenet5", CIFAR);
    assert_eq!(m.shapes(1).unwrap()[1].0, [1, 6, 28, 28]);

    let m = model("resnet20", CIFAR);
    let s = m.shapes(3).unwrap();
    let at = |name: &str| {
        let node = m.nodes.iter().find(|n| n.name == name).unwrap();
        s[node.output].0.clone()
    };
    assert_eq!(at("relu"), [3, 16, 32, 32]);
    assert_eq!(at("layer1.2.relu2"), [3, 16, 32, 32]);
    assert_eq!(at("layer2.0.downsample.1"), [3, 32, 16, 16]);
    assert_eq!(at("layer3.2.relu2"), [3, 64, 8, 8]);
    assert_eq!(at("avgpool"), [3, 64]);
    let m = model("resnet8", MNIST);
    let s = m.shapes(1).unwrap();
    let node = m.nodes.iter().find(|n| n.name == "layer3.0.relu2").unwrap();
    assert_eq!(s[node.output].0, [1, 64, 7, 7]);

    let m = model("vit-tiny", CIFAR);
    let s = m.shapes(3).unwrap();
    assert_eq!(s[1].0, [3, 64, 64]);
    assert_eq!(s[2].0, [3, 65, 64]);
    let fc1 = m
        .nodes
        .iter()
        .find(|n| n.name == "blocks.0.mlp.fc1")
        .unwrap();
    assert_eq!(s[fc1.output].0, [3, 65, 128]);
    assert_eq!(
        model("vit-tiny", MNIST).shapes(1).unwrap()[2].0,
        [1, 50, 64]
    );
}

#[test]
fn vit_config_is_configurable_and_validated() {
    let cfg = VitConfig {
        depth: 2,
        dim: 48,
        heads: 3,
        ..VitConfig::default()
    };
    let m = nn::vit(cfg, CIFAR, 100).unwrap();
    assert_eq!(m.shapes(2).unwrap().last().unwrap().0, [2, 100]);
    assert!(m.params().get("blocks.1.attn.qkv.weight").is_some());
    assert!(m.params().get("blocks.2.norm1.weight").is_none());
    assert_eq!(
        m.params().get("blocks.1.mlp.fc1.weight").unwrap().shape,
        [96, 48]
    );

    let bad = VitConfig {
        heads: 5,
        ..VitConfig::default()
    };
    let e = nn::vit(bad, CIFAR, 10).unwrap_err();
    assert!(matches!(e, SpecError::VitConfig(_)));
    assert_eq!(
        e.to_string(),
        "The ViT configuration is invalid: dim 64 is not divisible by heads 5."
    );
    let e = nn::vit(
        VitConfig {
            patch: 5,
            ..VitConfig::default()
        },
        CIFAR,
        10,
    )
    .unwrap_err();
    assert_eq!(
        e,
        SpecError::PatchNotDividing {
            node: 0,
            name: "patch_embed.proj".into(),
            patch: 5,
            h: 32,
            w: 32
        }
    );
    assert_eq!(
        e.to_string(),
        "Node 0 ('patch_embed.proj', PatchEmbed): the patch size 5 does not divide the 32×32 \
         image."
    );
    let e = nn::vit(
        VitConfig {
            mlp_ratio: 0,
            ..VitConfig::default()
        },
        CIFAR,
        10,
    )
    .unwrap_err();
    assert!(e.to_string().contains("mlp_ratio is 0"), "{e}");
}

#[test]
fn invalid_specs_give_typed_readable_errors() {
    // A conv expecting 3 channels on MNIST.
    let mut m = Model::new("bad", MNIST, 10, InitScheme::KaimingNormal);
    let x = m.push(
        "conv",
        Op::Conv2d {
            cin: 3,
            cout: 8,
            k: 3,
            stride: 1,
            pad: 1,
            bias: true,
        },
        &[0],
    );
    let x = m.push("gap", Op::GlobalAvgPool, &[x]);
    m.push(
        "fc",
        Op::Linear {
            inp: 8,
            out: 10,
            bias: true,
        },
        &[x],
    );
    let e = m.shapes(1).unwrap_err();
    assert!(matches!(
        e,
        SpecError::Mismatch {
            node: 0,
            expected: 3,
            found: 1,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "Node 0 ('conv', Conv2d) expects 3 input channels, but its input [1, 1, 28, 28] has 1."
    );

    // Fixing the conv leaves a valid model; a wrong head width is then the error.
    m.nodes[0].op = Op::Conv2d {
        cin: 1,
        cout: 8,
        k: 3,
        stride: 1,
        pad: 1,
        bias: true,
    };
    assert!(m.validate().is_ok());
    m.nodes[2].op = Op::Linear {
        inp: 8,
        out: 7,
        bias: true,
    };
    let e = m.shapes(2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "The last slot holds [2, 7], not logits [2, 10]."
    );

    // Add over different shapes.
    let mut m = Model::new("bad", MNIST, 10, InitScheme::KaimingNormal);
    let a = m.push("pool", Op::MaxPool { k: 2, s: 2 }, &[0]);
    m.push("add", Op::Add, &[0, a]);
    let e = m.shapes(1).unwrap_err();
    assert!(matches!(e, SpecError::AddShapes { node: 1, .. }));
    assert_eq!(
        e.to_string(),
        "Node 1 ('add', Add) sums [1, 1, 28, 28] and [1, 1, 14, 14], which differ in shape."
    );

    // A window larger than the image; a token op on images; attention heads.
    let mut m = Model::new("bad", MNIST, 10, InitScheme::KaimingNormal);
    m.push("pool", Op::AvgPool { k: 29, s: 1 }, &[0]);
    assert!(matches!(
        m.shapes(1),
        Err(SpecError::WindowTooLarge { k: 29, .. })
    ));
    let mut m = Model::new("bad", MNIST, 10, InitScheme::KaimingNormal);
    m.push("cls", Op::ClsSelect, &[0]);
    let e = m.shapes(1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Node 0 ('cls', ClsSelect) expects a token batch [N, T, C] as input, but it is given \
         [1, 1, 28, 28]."
    );
    let mut m = Model::new("bad", [3, 8, 8], 10, InitScheme::KaimingNormal);
    let x = m.push(
        "pe",
        Op::PatchEmbed {
            c: 3,
            e: 10,
            patch: 4,
        },
        &[0],
    );
    m.push("attn", Op::Attention { dim: 10, heads: 4 }, &[x]);
    let e = m.shapes(1).unwrap_err();
    assert!(matches!(
        e,
        SpecError::HeadsNotDividing {
            dim: 10,
            heads: 4,
            ..
        }
    ));
    assert!(e
        .to_string()
        .contains("10 channels cannot be split evenly into 4 heads"));

    // Zero sizes, empty models, batch 0, duplicate names.
    let mut m = Model::new("bad", MNIST, 10, InitScheme::KaimingNormal);
    m.push("pool", Op::MaxPool { k: 2, s: 0 }, &[0]);
    assert_eq!(
        m.shapes(1).unwrap_err().to_string(),
        "Node 0 ('pool', MaxPool) has s = 0; it must be at least 1."
    );
    let m = Model::new("empty", MNIST, 10, InitScheme::KaimingNormal);
    assert_eq!(m.shapes(1).unwrap_err(), SpecError::NoNodes);
    assert_eq!(
        model("mlp", MNIST).shapes(0).unwrap_err(),
        SpecError::EmptyBatch
    );
    let mut m = Model::new("dup", MNIST, 10, InitScheme::KaimingNormal);
    let x = m.push("flatten", Op::Flatten, &[0]);
    let x = m.push(
        "fc",
        Op::Linear {
            inp: 784,
            out: 10,
            bias: true,
        },
        &[x],
    );
    m.push(
        "fc",
        Op::Linear {
            inp: 10,
            out: 10,
            bias: false,
        },
        &[x],
    );
    assert!(m.shapes(1).is_ok());
    assert_eq!(
        m.validate().unwrap_err().to_string(),
        "The parameter name 'fc.weight' occurs twice; every tensor needs its own name for \
         exports."
    );
    // Presets on an image too small for them.
    let e = Model::by_name("lenet5", [1, 8, 8], 10).unwrap_err();
    assert!(matches!(e, SpecError::WindowTooLarge { .. }), "{e}");
}

#[test]
fn by_name_lists_the_models() {
    for name in PRESETS {
        assert_eq!(model(name, CIFAR).name, name);
    }
    assert_eq!(model("resnet18", CIFAR).name, "resnet18");
    let e = Model::by_name("resnet50", CIFAR, 10).unwrap_err();
    assert_eq!(
        e.to_string(),
        "There is no model named 'resnet50'; the models are: mlp, lenet5, cnn, cnn-w8, \
         resnet8, resnet20, resnet18, vit-tiny."
    );
}

#[test]
fn summary_lists_every_tensor() {
    let m = model("lenet5", MNIST);
    let s = m.summary();
    assert!(
        s.starts_with("lenet5: input [1, 28, 28], 10 classes"),
        "{s}"
    );
    assert!(s.contains("features.0.weight"));
    assert!(s.contains("[6, 1, 5, 5]"));
    assert!(s.contains("total 61706 parameters, 61470 prunable"), "{s}");
    assert_eq!(s.lines().count(), 1 + 1 + 10 + 1);
    let s = model("resnet8", CIFAR).summary();
    assert!(s.contains("state values"));
}

fn stats(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn init_is_deterministic_and_seeded() {
    for name in PRESETS {
        let m = model(name, CIFAR);
        let (p1, s1) = init(&m, 42);
        let (p2, s2) = init(&m, 42);
        assert_eq!(p1, p2, "{name}");
        assert_eq!(s1, s2);
        assert_eq!(p1.len(), m.params().buffer_len);
        assert_eq!(s1.len(), m.state().buffer_len);
        let (p3, _) = init(&m, 43);
        let table = m.params();
        for e in table.entries.iter().filter(|e| e.prunable) {
            assert_ne!(p1[e.range()], p3[e.range()], "{name}: {}", e.name);
        }
        // Gaps are zero.
        let mut in_tensor = vec![false; p1.len()];
        for e in &table.entries {
            in_tensor[e.range()].iter_mut().for_each(|b| *b = true);
        }
        assert!(p1
            .iter()
            .zip(&in_tensor)
            .all(|(&v, &inside)| inside || v == 0.0));
        assert!(p1.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn init_streams_are_per_tensor() {
    // Another class count changes only the head; every other tensor keeps its values.
    let a = Model::by_name("resnet8", CIFAR, 10).unwrap();
    let b = Model::by_name("resnet8", CIFAR, 100).unwrap();
    let (pa, _) = init(&a, 7);
    let (pb, _) = init(&b, 7);
    let (ta, tb) = (a.params(), b.params());
    for (ea, eb) in ta.entries.iter().zip(&tb.entries) {
        assert_eq!(ea.name, eb.name);
        if !ea.name.starts_with("fc.") {
            assert_eq!(pa[ea.range()], pb[eb.range()], "{}", ea.name);
        }
    }
    // Two tensors of one model do not share a stream.
    let c1 = ta.get("layer1.0.conv1.weight").unwrap();
    let c2 = ta.get("layer1.0.conv2.weight").unwrap();
    assert_ne!(pa[c1.range()], pa[c2.range()]);
}

fn kaiming(name: &str, input: [usize; 3]) -> Model {
    model(name, input).with_init(Init::KaimingNormal)
}

#[test]
fn kaiming_statistics() {
    let m = kaiming("resnet20", CIFAR);
    let (p, _) = init(&m, 1);
    let mut checked = 0;
    for e in m.params().entries.iter().filter(|e| e.prunable) {
        let target = (2.0f64 / e.fan_in() as f64).sqrt();
        if e.len >= 9_000 {
            let (mean, std) = stats(&p[e.range()]);
            assert!(mean.abs() < 0.03 * target, "{}: mean {mean}", e.name);
            assert!(
                (std / target - 1.0).abs() < 0.05,
                "{}: std {std} vs {target}",
                e.name
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 11); // layer2: 5 convs of 9,216; layer3: 6 of ≥ 18,432
                             // The MLP's first layer: fan_in 784.
    let m = kaiming("mlp", MNIST);
    let (p, _) = init(&m, 5);
    let w = m.params().get("layers.0.weight").unwrap().clone();
    let (mean, std) = stats(&p[w.range()]);
    let target = (2.0f64 / 784.0).sqrt();
    assert!(mean.abs() < 0.01 * target && (std / target - 1.0).abs() < 0.02);
}

#[test]
fn vit_truncated_normal_statistics() {
    // Std of N(0, σ²) truncated at ±2σ: σ·√(1 − 2·2·φ(2)/(2Φ(2) − 1)) = σ·0.87962.
    let phi2 = (-2.0f64).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let mass = 0.954_499_736_103_641_6; // 2Φ(2) − 1
    let ratio = (1.0 - 4.0 * phi2 / mass).sqrt();
    assert!((ratio - 0.87962).abs() < 1e-4);
    let m = kaiming("vit-tiny", CIFAR);
    assert_eq!(m.init, InitScheme::TruncNormal { std: 0.02 });
    let (p, _) = init(&m, 9);
    let table = m.params();
    let mut all = Vec::new();
    for e in &table.entries {
        let v = &p[e.range()];
        match e.kind {
            ParamKind::Weight | ParamKind::Embedding | ParamKind::Token => {
                assert!(
                    v.iter().all(|x| x.abs() <= 0.04 + 1e-7),
                    "{}: beyond 2 std",
                    e.name
                );
                all.extend_from_slice(v);
                if e.len >= 9_000 {
                    let (mean, std) = stats(v);
                    assert!(mean.abs() < 0.03 * 0.02, "{}: mean {mean}", e.name);
                    assert!((std / (0.02 * ratio) - 1.0).abs() < 0.05, "{}", e.name);
                }
            }
            ParamKind::Bias | ParamKind::NormShift => assert!(v.iter().all(|&x| x == 0.0)),
            ParamKind::NormScale => assert!(v.iter().all(|&x| x == 1.0)),
        }
    }
    let (mean, std) = stats(&all);
    assert!(mean.abs() < 0.0005, "{mean}");
    assert!((std / (0.02 * ratio) - 1.0).abs() < 0.02, "{std}");
}

#[test]
fn norm_and_bias_defaults() {
    let m = kaiming("resnet20", CIFAR);
    let (p, s) = init(&m, 3);
    for e in &m.params().entries {
        let v = &p[e.range()];
        match e.kind {
            ParamKind::NormScale => assert!(v.iter().all(|&x| x == 1.0), "{}", e.name),
            ParamKind::NormShift | ParamKind::Bias => {
                assert!(v.iter().all(|&x| x == 0.0), "{}", e.name)
            }
            _ => {}
        }
    }
    for e in &m.state().entries {
        let want = if e.kind == StateKind::RunningVar {
            1.0
        } else {
            0.0
        };
        assert!(s[e.range()].iter().all(|&x| x == want), "{}", e.name);
    }
    assert_eq!(
        m.params().get("fc.bias").map(|e| e.kind),
        Some(ParamKind::Bias)
    );
}

/// Checks `v` against `U(−b, b)`: every value within the bounds, mean 0 and std b/√3 (within
/// 3 % of b and 5 % of b/√3 for tensors of ≥ 9,000 values; bounds only for smaller ones).
fn assert_uniform(v: &[f32], b: f64, what: &str) {
    assert!(
        v.iter().all(|&x| (x as f64).abs() <= b * (1.0 + 1e-6)),
        "{what}: beyond ±{b}"
    );
    if v.len() >= 9_000 {
        let (mean, std) = stats(v);
        let target = b / 3f64.sqrt();
        assert!(mean.abs() < 0.03 * b, "{what}: mean {mean}");
        assert!(
            (std / target - 1.0).abs() < 0.05,
            "{what}: std {std} vs {target}"
        );
        // Uniform, not normal: the fourth moment is 9/5·σ⁴ (a normal's is 3·σ⁴).
        let n = v.len() as f64;
        let m4 = v.iter().map(|&x| (x as f64 - mean).powi(4)).sum::<f64>() / n;
        let kurtosis = m4 / std.powi(4);
        assert!((kurtosis - 1.8).abs() < 0.1, "{what}: kurtosis {kurtosis}");
    }
}

/// The `pytorch` preset (the default) of every CNN/MLP: weights and biases U(±1/√fan_in)
/// with the weight's fan-in (what `nn.Linear`/`nn.Conv2d` do), norms γ 1, β 0.
#[test]
fn pytorch_default_init_of_every_cnn_and_mlp() {
    for (name, input) in [
        ("mlp", MNIST),
        ("lenet5", MNIST),
        ("cnn", CIFAR),
        ("resnet8", CIFAR),
        ("resnet20", CIFAR),
    ] {
        let m = model(name, input);
        assert_eq!(m.init, InitScheme::Pytorch, "{name}");
        let table = m.params();
        let (p, s) = init(&m, 17);
        let mut uniform_checked = 0;
        for e in &table.entries {
            let v = &p[e.range()];
            let what = format!("{name} {}", e.name);
            match e.kind {
                ParamKind::Weight | ParamKind::Bias => {
                    let fan_in = table
                        .of_node(e.node)
                        .find(|w| w.kind == ParamKind::Weight)
                        .unwrap()
                        .fan_in();
                    assert_uniform(v, 1.0 / (fan_in as f64).sqrt(), &what);
                    uniform_checked += (v.len() >= 9_000) as usize;
                    // Not all at the bound or zero: a real draw.
                    assert!(v.iter().any(|&x| x != 0.0), "{what}");
                }
                ParamKind::NormScale => assert!(v.iter().all(|&x| x == 1.0), "{what}"),
                ParamKind::NormShift => assert!(v.iter().all(|&x| x == 0.0), "{what}"),
                kind => panic!("{what}: unexpected {kind:?}"),
            }
        }
        assert!(
            uniform_checked >= 1,
            "{name}: no tensor large enough for moments"
        );
        for e in &m.state().entries {
            let want = (e.kind == StateKind::RunningVar) as u8 as f32;
            assert!(s[e.range()].iter().all(|&x| x == want), "{name} {}", e.name);
        }
    }
    // ψ at init is Σ 12·fan_in for U(±1/√fan_in) weights (the MLP: 12·(784 + 300 + 100)).
    let m = model("mlp", MNIST);
    let (p, _) = init(&m, 0);
    let psi = varlab::optim::psi(&p, &m.params(), false) as f64;
    let want = 12.0 * (784.0 + 300.0 + 100.0);
    assert!((psi / want - 1.0).abs() < 0.05, "ψ₀ {psi} vs {want}");
}

/// The `pytorch` preset of the ViT is timm's: linears N(0, 0.02²) (absolute truncation at
/// ±2, i.e. none in practice; std 0.02, not 0.0176), biases 0, the patch-embedding conv at
/// PyTorch's default, `pos_embed` std 0.02, `cls_token` std 1e-6, LayerNorm 1/0.
#[test]
fn pytorch_preset_of_the_vit_is_timms() {
    let m = model("vit-tiny", CIFAR);
    let table = m.params();
    let (p, _) = init(&m, 23);
    let mut linear = Vec::new();
    for e in &table.entries {
        let v = &p[e.range()];
        let patch = matches!(m.nodes[e.node].op, Op::PatchEmbed { .. });
        match (e.kind, patch) {
            (ParamKind::Weight | ParamKind::Bias, true) => {
                let fan_in = table.of_node(e.node).next().unwrap().fan_in();
                assert_eq!(fan_in, 3 * 4 * 4, "{}", e.name);
                assert_uniform(v, 1.0 / (fan_in as f64).sqrt(), &e.name);
            }
            (ParamKind::Weight, false) => linear.extend_from_slice(v),
            (ParamKind::Bias | ParamKind::NormShift, false) => {
                assert!(v.iter().all(|&x| x == 0.0), "{}", e.name)
            }
            (ParamKind::NormScale, _) => assert!(v.iter().all(|&x| x == 1.0), "{}", e.name),
            (ParamKind::Embedding, _) => {
                let (mean, std) = stats(v);
                assert!(
                    mean.abs() < 0.002 && (std / 0.02 - 1.0).abs() < 0.05,
                    "{std}"
                );
            }
            (ParamKind::Token, _) => {
                assert!(v.iter().all(|&x| x.abs() < 1e-5), "{}", e.name);
                assert!(v.iter().any(|&x| x != 0.0), "{}", e.name);
            }
            (kind, _) => panic!("{}: unexpected {kind:?}", e.name),
        }
    }
    let (mean, std) = stats(&linear);
    assert!(mean.abs() < 0.0005, "{mean}");
    assert!(
        (std / 0.02 - 1.0).abs() < 0.01,
        "{std}: timm's truncation is absolute"
    );
    let max = linear.iter().fold(0f32, |a, &x| a.max(x.abs()));
    assert!(
        max > 0.06,
        "draws beyond 2σ exist (absolute truncation): {max}"
    );
}

/// The presets by name, and `kaiming-normal` giving the first wave's draws exactly.
#[test]
fn init_presets_by_name() {
    assert_eq!(Init::NAMES, ["pytorch", "kaiming-normal"]);
    for init in [Init::Pytorch, Init::KaimingNormal] {
        let json = serde_json::to_string(&init).unwrap();
        assert_eq!(json, format!("\"{}\"", init.name()));
        assert_eq!(serde_json::from_str::<Init>(&json).unwrap(), init);
    }
    assert_eq!(Init::default(), Init::Pytorch);
    let k = kaiming("lenet5", MNIST);
    assert_eq!(k.init, InitScheme::KaimingNormal);
    let (pk, _) = init(&k, 1);
    let (pp, _) = init(&model("lenet5", MNIST), 1);
    assert_ne!(pk, pp);
    let bias = k.params().get("features.0.bias").unwrap().range();
    assert!(pk[bias.clone()].iter().all(|&x| x == 0.0));
    assert!(pp[bias].iter().all(|&x| x != 0.0));
}

//! The preset models, each a function of the input `[C, H, W]` (28×28×1 for MNIST,
//! 32×32×3 for CIFAR-10) and the class count. Node paths follow the PyTorch/torchvision/timm
//! modules they mirror, so parameter names match those modules' `state_dict` keys.
//!
//! Parameter counts (10 classes; the arithmetic is in `tests/nn.rs`):
//!
//! | model     | 28×28×1 | 32×32×3 |
//! |-----------|--------:|--------:|
//! | mlp       | 266,610 | 953,010 |
//! | lenet5    |  61,706 |  62,006 |
//! | cnn       | 420,602 | 543,770 |
//! | cnn-w8    | 207,682 | 269,266 |
//! | resnet8   |  77,754 |  78,042 |
//! | resnet20  | 272,186 | 272,474 |
//! | resnet18  | 11,172,810 | 11,173,962 |
//! | vit-tiny  | 139,018 | 142,026 |

use super::spec::{InitScheme, Model, Op, SpecError};

/// The names [`Model::by_name`] accepts.
pub const MODELS: [&str; 8] = [
    "mlp", "lenet5", "cnn", "cnn-w8", "resnet8", "resnet20", "resnet18", "vit-tiny",
];

impl Model {
    /// A preset by name (`mlp`, `lenet5`, `cnn`, `cnn-w8`, `resnet8`, `resnet20`,
    /// `resnet18`, `vit-tiny`), validated, with the default initialisation
    /// ([`InitScheme::Pytorch`]). `cnn-w8` is [`plain_cnn`] at width 8 (fc 256): a quarter
    /// of `cnn`'s convolution work.
    pub fn by_name(name: &str, input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
        match name {
            "mlp" => mlp(input, classes),
            "lenet5" => lenet5(input, classes),
            "cnn" => cnn(input, classes),
            "cnn-w8" => plain_cnn(8, 256, input, classes),
            "resnet8" => resnet8(input, classes),
            "resnet20" => resnet20(input, classes),
            "resnet18" => resnet18(input, classes),
            "vit-tiny" => vit_tiny(input, classes),
            _ => Err(SpecError::UnknownModel {
                name: name.to_string(),
                valid: MODELS.join(", "),
            }),
        }
    }
}

fn checked(m: Model) -> Result<Model, SpecError> {
    m.validate()?;
    Ok(m)
}

fn linear(inp: usize, out: usize) -> Op {
    Op::Linear {
        inp,
        out,
        bias: true,
    }
}

/// LeNet-300-100 (LeCun et al. 1998; the pruning literature's MLP): Flatten, then an
/// `nn.Sequential` `layers` of Linear C·H·W→300, ReLU, 300→100, ReLU, 100→classes.
pub fn mlp(input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
    let mut m = Model::new("mlp", input, classes, InitScheme::Pytorch);
    let features = input.iter().product();
    let mut x = m.push("flatten", Op::Flatten, &[0]);
    x = m.push("layers.0", linear(features, 300), &[x]);
    x = m.push("layers.1", Op::Relu, &[x]);
    x = m.push("layers.2", linear(300, 100), &[x]);
    x = m.push("layers.3", Op::Relu, &[x]);
    m.push("layers.4", linear(100, classes), &[x]);
    checked(m)
}

/// LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: `features` = conv(C→6, 5×5) ReLU
/// maxpool2, conv(6→16, 5×5) ReLU maxpool2; flatten; `classifier` = 400→120 ReLU, 120→84 ReLU,
/// 84→classes. On 28×28 images the first conv pads by 2 (28→28→14→10→5, the usual MNIST
/// variant); on any other size it has no padding, the classic form for 32×32 (32→28→14→10→5).
/// Either way the flattened features are 16·5·5 = 400 for those two sizes.
pub fn lenet5(input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
    let [c, h, w] = input;
    let pad = if h == 28 && w == 28 { 2 } else { 0 };
    // Spatial size after conv(5, pad) → pool 2 → conv 5 → pool 2; saturating so that a too
    // small image reaches shape inference, which reports it.
    let side = |s: usize| ((s + 2 * pad).saturating_sub(4) / 2).saturating_sub(4) / 2;
    let flat = 16 * side(h) * side(w);
    let conv = |cin, cout, pad| Op::Conv2d {
        cin,
        cout,
        k: 5,
        stride: 1,
        pad,
        bias: true,
    };
    let mut m = Model::new("lenet5", input, classes, InitScheme::Pytorch);
    let mut x = m.push("features.0", conv(c, 6, pad), &[0]);
    x = m.push("features.1", Op::Relu, &[x]);
    x = m.push("features.2", Op::MaxPool { k: 2, s: 2 }, &[x]);
    x = m.push("features.3", conv(6, 16, 0), &[x]);
    x = m.push("features.4", Op::Relu, &[x]);
    x = m.push("features.5", Op::MaxPool { k: 2, s: 2 }, &[x]);
    x = m.push("flatten", Op::Flatten, &[x]);
    x = m.push("classifier.0", linear(flat, 120), &[x]);
    x = m.push("classifier.1", Op::Relu, &[x]);
    x = m.push("classifier.2", linear(120, 84), &[x]);
    x = m.push("classifier.3", Op::Relu, &[x]);
    m.push("classifier.4", linear(84, classes), &[x]);
    checked(m)
}

/// The plain CIFAR CNN of the pruning literature (VGG-like, no BatchNorm) at width 16.
pub fn cnn(input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
    plain_cnn(16, 256, input, classes)
}

/// A VGG-like CNN without normalisation: `features` = conv3×3(C→w) ReLU, conv3×3(w→w) ReLU,
/// maxpool2, conv3×3(w→2w) ReLU, conv3×3(2w→2w) ReLU, maxpool2; flatten; `classifier` =
/// Linear(2w·(H/4)·(W/4) → `fc`) ReLU, Linear(`fc` → classes). Convs pad 1 and have biases,
/// as `nn.Conv2d(…, 3, padding=1)`. The large first fully-connected layer (2048 × 256 on
/// CIFAR-10 at width 16) is where SGD leaves weights near their initialisation.
pub fn plain_cnn(
    width: usize,
    fc: usize,
    input: [usize; 3],
    classes: usize,
) -> Result<Model, SpecError> {
    let [c, h, w] = input;
    let conv = |cin, cout| Op::Conv2d {
        cin,
        cout,
        k: 3,
        stride: 1,
        pad: 1,
        bias: true,
    };
    let name = if (width, fc) == (16, 256) {
        "cnn".to_string()
    } else if fc == 256 {
        format!("cnn-w{width}")
    } else {
        format!("cnn-w{width}-fc{fc}")
    };
    let mut m = Model::new(&name, input, classes, InitScheme::Pytorch);
    let mut x = m.push("features.0", conv(c, width), &[0]);
    x = m.push("features.1", Op::Relu, &[x]);
    x = m.push("features.2", conv(width, width), &[x]);
    x = m.push("features.3", Op::Relu, &[x]);
    x = m.push("features.4", Op::MaxPool { k: 2, s: 2 }, &[x]);
    x = m.push("features.5", conv(width, 2 * width), &[x]);
    x = m.push("features.6", Op::Relu, &[x]);
    x = m.push("features.7", conv(2 * width, 2 * width), &[x]);
    x = m.push("features.8", Op::Relu, &[x]);
    x = m.push("features.9", Op::MaxPool { k: 2, s: 2 }, &[x]);
    x = m.push("flatten", Op::Flatten, &[x]);
    let flat = 2 * width * (h / 4) * (w / 4);
    x = m.push("classifier.0", linear(flat, fc), &[x]);
    x = m.push("classifier.1", Op::Relu, &[x]);
    m.push("classifier.2", linear(fc, classes), &[x]);
    checked(m)
}

/// ResNet-20 for CIFAR (He et al. 2016, §4.2): 3 blocks per stage.
pub fn resnet20(input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
    cifar_resnet("resnet20", 3, input, classes)
}

/// ResNet-8 for CIFAR: 1 block per stage.
pub fn resnet8(input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
    cifar_resnet("resnet8", 1, input, classes)
}

fn conv_nobias(cin: usize, cout: usize, k: usize, stride: usize) -> Op {
    Op::Conv2d {
        cin,
        cout,
        k,
        stride,
        pad: k / 2,
        bias: false,
    }
}

/// ResNet-18 for CIFAR, the variant of the pruning and SAM literature (kuangliu's
/// `pytorch-cifar`, the S²-SAM and CrAM code bases): torchvision's ResNet-18 blocks and names
/// with a 3×3 stride-1 `conv1` and no max-pool, so 32×32 images keep their size through
/// `layer1`; 11,173,962 parameters for 10 classes.
pub fn resnet18(input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
    resnet18_width(64, input, classes)
}

/// [`resnet18`] with stage widths `w, 2w, 4w, 8w` (64 is ResNet-18): the same graph and
/// names at a size the software adapters of the tests can run.
pub fn resnet18_width(width: usize, input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
    let name = if width == 64 {
        "resnet18".to_string()
    } else {
        format!("resnet18-w{width}")
    };
    let widths = [width, 2 * width, 4 * width, 8 * width];
    basic_resnet(&name, &widths, 2, input, classes)
}

/// The CIFAR ResNet of depth 6n+2: `conv1` 3×3→16 + `bn1` + ReLU; stages `layer1..3` of `n`
/// basic blocks (widths 16/32/64; the first block of stages 2 and 3 has stride 2 and a
/// projection shortcut `downsample.0` 1×1 conv stride 2 + `downsample.1` BN — option B of the
/// paper, torchvision's names); global average pool; `fc` 64→classes. Convs have no bias.
/// A block: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
fn cifar_resnet(
    name: &str,
    n: usize,
    input: [usize; 3],
    classes: usize,
) -> Result<Model, SpecError> {
    basic_resnet(name, &[16, 32, 64], n, input, classes)
}

/// A ResNet of basic blocks with a 3×3 stride-1 stem of `widths[0]` channels (no max-pool),
/// one stage `layer{k}` of `n` blocks per width (stride 2 from the second stage on, a
/// projection shortcut where the shape changes), global average pool and `fc`.
fn basic_resnet(
    name: &str,
    widths: &[usize],
    n: usize,
    input: [usize; 3],
    classes: usize,
) -> Result<Model, SpecError> {
    let mut m = Model::new(name, input, classes, InitScheme::Pytorch);
    let stem = widths[0];
    let mut x = m.push("conv1", conv_nobias(input[0], stem, 3, 1), &[0]);
    x = m.push("bn1", Op::BatchNorm2d { c: stem }, &[x]);
    x = m.push("relu", Op::Relu, &[x]);
    let mut cin = stem;
    for (stage, &width) in widths.iter().enumerate() {
        for i in 0..n {
            let p = format!("layer{}.{i}", stage + 1);
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            x = basic_block(&mut m, &p, x, cin, width, stride);
            cin = width;
        }
    }
    x = m.push("avgpool", Op::GlobalAvgPool, &[x]);
    m.push("fc", linear(cin, classes), &[x]);
    checked(m)
}

/// One basic block `p` on slot `x`; returns its output slot.
fn basic_block(m: &mut Model, p: &str, x: usize, cin: usize, width: usize, stride: usize) -> usize {
    let mut y = m.push(
        format!("{p}.conv1"),
        conv_nobias(cin, width, 3, stride),
        &[x],
    );
    y = m.push(format!("{p}.bn1"), Op::BatchNorm2d { c: width }, &[y]);
    y = m.push(format!("{p}.relu1"), Op::Relu, &[y]);
    y = m.push(format!("{p}.conv2"), conv_nobias(width, width, 3, 1), &[y]);
    y = m.push(format!("{p}.bn2"), Op::BatchNorm2d { c: width }, &[y]);
    let shortcut = if stride != 1 || cin != width {
        let s = m.push(
            format!("{p}.downsample.0"),
            conv_nobias(cin, width, 1, stride),
            &[x],
        );
        m.push(
            format!("{p}.downsample.1"),
            Op::BatchNorm2d { c: width },
            &[s],
        )
    } else {
        x
    };
    y = m.push(format!("{p}.add"), Op::Add, &[y, shortcut]);
    m.push(format!("{p}.relu2"), Op::Relu, &[y])
}

/// The shape of a [`vit`]: defaults are ViT-tiny's (patch 4, dim 64, depth 4, 4 heads, MLP
/// ratio 2 → hidden 128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VitConfig {
    pub patch: usize,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    /// MLP hidden width = `dim · mlp_ratio`.
    pub mlp_ratio: usize,
}

impl Default for VitConfig {
    fn default() -> Self {
        VitConfig {
            patch: 4,
            dim: 64,
            depth: 4,
            heads: 4,
            mlp_ratio: 2,
        }
    }
}

impl VitConfig {
    /// Checks the configuration on its own (the image size is checked by shape inference).
    pub fn validate(&self) -> Result<(), SpecError> {
        let bad = |s: String| Err(SpecError::VitConfig(s));
        for (what, v) in [
            ("patch", self.patch),
            ("dim", self.dim),
            ("heads", self.heads),
            ("mlp_ratio", self.mlp_ratio),
        ] {
            if v == 0 {
                return bad(format!("{what} is 0; it must be at least 1"));
            }
        }
        if !self.dim.is_multiple_of(self.heads) {
            return bad(format!(
                "dim {} is not divisible by heads {}",
                self.dim, self.heads
            ));
        }
        Ok(())
    }
}

/// ViT-tiny with the default [`VitConfig`].
pub fn vit_tiny(input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
    vit(VitConfig::default(), input, classes)
}

/// A Vision Transformer (Dosovitskiy et al. 2021) with timm's names: `patch_embed.proj`,
/// `cls_token` + `pos_embed` (learned), `depth` pre-norm blocks
/// `x = x + attn(norm1(x)); x = x + mlp.fc2(gelu(mlp.fc1(norm2(x))))`, the final `norm` and
/// the `head` on the class token. The final LayerNorm runs after selecting the class token:
/// it is per token, so this equals timm's norm-then-select at 1/T of the cost. GELU is the tanh
/// approximation of the kernels (timm's default is the exact erf form).
pub fn vit(cfg: VitConfig, input: [usize; 3], classes: usize) -> Result<Model, SpecError> {
    cfg.validate()?;
    let VitConfig {
        patch,
        dim,
        depth,
        heads,
        mlp_ratio,
    } = cfg;
    let [c, h, w] = input;
    let tokens = (h / patch) * (w / patch);
    let hidden = dim * mlp_ratio;
    let name = if cfg == VitConfig::default() {
        "vit-tiny".to_string()
    } else {
        format!("vit-p{patch}-d{dim}-l{depth}-h{heads}-r{mlp_ratio}")
    };
    let mut m = Model::new(&name, input, classes, InitScheme::Pytorch);
    let mut x = m.push(
        "patch_embed.proj",
        Op::PatchEmbed { c, e: dim, patch },
        &[0],
    );
    x = m.push("", Op::ClsPos { tokens, e: dim }, &[x]);
    for i in 0..depth {
        let p = format!("blocks.{i}");
        let mut y = m.push(format!("{p}.norm1"), Op::LayerNorm { c: dim }, &[x]);
        y = m.push(format!("{p}.attn"), Op::Attention { dim, heads }, &[y]);
        x = m.push(format!("{p}.add1"), Op::Add, &[x, y]);
        y = m.push(format!("{p}.norm2"), Op::LayerNorm { c: dim }, &[x]);
        y = m.push(format!("{p}.mlp.fc1"), linear(dim, hidden), &[y]);
        y = m.push(format!("{p}.mlp.act"), Op::Gelu, &[y]);
        y = m.push(format!("{p}.mlp.fc2"), linear(hidden, dim), &[y]);
        x = m.push(format!("{p}.add2"), Op::Add, &[x, y]);
    }
    x = m.push("cls_select", Op::ClsSelect, &[x]);
    x = m.push("norm", Op::LayerNorm { c: dim }, &[x]);
    m.push("head", linear(dim, classes), &[x]);
    checked(m)
}

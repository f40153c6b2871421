//! The declarative model description that both executors (GPU and CPU) run: a list of
//! [`Node`]s over numbered activation slots, SSA-style. Slot 0 is the input image batch
//! `[N, C, H, W]`; node `i` reads earlier slots and writes slot `i + 1`, so the nodes are
//! already in execution order and the last slot is the logits `[N, classes]`.
//!
//! Layouts follow PyTorch and the kernels in [`crate::ops`]: images NCHW, token tensors
//! `[N, T, C]`. [`Op::Linear`] and [`Op::LayerNorm`] act on the LAST dimension, so on a token
//! tensor `[N, T, C]` an executor runs them over `N·T` rows of `C` (the slot keeps its 3-D
//! shape so that [`Op::Attention`] and the poolings know `T`).
//!
//! Each node carries the PyTorch module path it stands for (`layer1.0.conv1`); the parameters
//! of an op are named `<path>.<suffix>` with PyTorch's suffixes (see [`Op::params`]), so a
//! state dict exported from the flat table loads into the matching PyTorch/timm module.

use std::fmt;

/// The shape of one activation slot (`[N, C, H, W]`, `[N, T, C]` or `[N, F]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
}

impl std::ops::Deref for Shape {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// One layer (or glue step) of a model. Hyper-parameters only; the weights live in the flat
/// parameter table ([`super::params`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `[N, cin, H, W]` → `[N, cout, Ho, Wo]`, square kernel `k`, symmetric zero padding.
    /// Params `weight [cout, cin, k, k]`, `bias [cout]` if `bias`.
    Conv2d {
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bias: bool,
    },
    /// `[.., inp]` → `[.., out]` over the last dimension. Params `weight [out, inp]`, `bias`.
    Linear {
        inp: usize,
        out: usize,
        bias: bool,
    },
    /// `[N, c, H, W]` → same. Params `weight`, `bias [c]`; state `running_mean`,
    /// `running_var [c]`, `num_batches_tracked []`.
    BatchNorm2d {
        c: usize,
    },
    /// `[.., c]` → same, over the last dimension. Params `weight`, `bias [c]`.
    LayerNorm {
        c: usize,
    },
    Relu,
    /// The tanh approximation (`nn.GELU(approximate='tanh')`, see [`crate::ops::activation`]).
    Gelu,
    /// `[N, C, H, W]` → `[N, C, (H−k)/s+1, (W−k)/s+1]`, no padding.
    MaxPool {
        k: usize,
        s: usize,
    },
    /// Like [`Op::MaxPool`], the window mean.
    AvgPool {
        k: usize,
        s: usize,
    },
    /// `[N, C, H, W]` → `[N, C]`.
    GlobalAvgPool,
    /// `[N, ...]` → `[N, product of the rest]` (a reinterpretation: NCHW is already flat).
    Flatten,
    /// Residual sum of two slots of the same shape.
    Add,
    /// `[N, c, H, W]` → `[N, T, e]`, `T = (H/patch)·(W/patch)` (patch divides H and W).
    /// Params `weight [e, c, patch, patch]` (a Conv2d weight), `bias [e]`.
    PatchEmbed {
        c: usize,
        e: usize,
        patch: usize,
    },
    /// `[N, tokens, e]` → `[N, tokens + 1, e]`: class token prepended, position embedding
    /// added. Params `cls_token [1, 1, e]`, `pos_embed [1, tokens + 1, e]`.
    ClsPos {
        tokens: usize,
        e: usize,
    },
    /// Multi-head self-attention `[N, T, dim]` → same (heads divide dim). Params
    /// `qkv.weight [3·dim, dim]`, `qkv.bias [3·dim]`, `proj.weight [dim, dim]`, `proj.bias [dim]`.
    Attention {
        dim: usize,
        heads: usize,
    },
    /// `[N, T, E]` → `[N, E]`, the mean over tokens.
    TokenMeanPool,
    /// `[N, T, E]` → `[N, E]`, token 0 (the class token).
    ClsSelect,
}

/// What a parameter tensor is, which decides its initialisation and whether it is pruned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// A conv/linear/attention/patch-embedding weight matrix (prunable).
    Weight,
    Bias,
    /// A norm layer's γ (`weight` in PyTorch).
    NormScale,
    /// A norm layer's β (`bias` in PyTorch).
    NormShift,
    /// The learned position embedding.
    Embedding,
    /// The class token.
    Token,
}

impl ParamKind {
    /// Pruned (and regularised by VAR): exactly the weight matrices.
    pub fn prunable(self) -> bool {
        self == ParamKind::Weight
    }
}

/// What a non-trainable state tensor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateKind {
    RunningMean,
    RunningVar,
    /// PyTorch's int64 batch counter, stored as one f32 (see [`super::params`]).
    NumBatchesTracked,
}

/// A parameter an op owns, relative to its node: `suffix` is appended to the node's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamDecl {
    pub suffix: &'static str,
    pub shape: Vec<usize>,
    pub kind: ParamKind,
}

/// A state tensor an op owns, relative to its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDecl {
    pub suffix: &'static str,
    pub shape: Vec<usize>,
    pub kind: StateKind,
}

impl Op {
    /// The op's name in messages (`Conv2d`, `Linear`, …).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "Conv2d",
            Op::Linear { .. } => "Linear",
            Op::BatchNorm2d { .. } => "BatchNorm2d",
            Op::LayerNorm { .. } => "LayerNorm",
            Op::Relu => "ReLU",
            Op::Gelu => "GELU",
            Op::MaxPool { .. } => "MaxPool",
            Op::AvgPool { .. } => "AvgPool",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::Flatten => "Flatten",
            Op::Add => "Add",
            Op::PatchEmbed { .. } => "PatchEmbed",
            Op::ClsPos { .. } => "ClsPos",
            Op::Attention { .. } => "Attention",
            Op::TokenMeanPool => "TokenMeanPool",
            Op::ClsSelect => "ClsSelect",
        }
    }

    /// How many input slots the op reads.
    pub fn arity(&self) -> usize {
        match self {
            Op::Add => 2,
            _ => 1,
        }
    }

    /// The trainable parameters, in PyTorch's `state_dict` order.
    pub fn params(&self) -> Vec<ParamDecl> {
        use ParamKind::*;
        let p = |suffix, shape: &[usize], kind| ParamDecl {
            suffix,
            shape: shape.to_vec(),
            kind,
        };
        match *self {
            Op::Conv2d {
                cin, cout, k, bias, ..
            } => {
                let mut v = vec![p("weight", &[cout, cin, k, k], Weight)];
                if bias {
                    v.push(p("bias", &[cout], Bias));
                }
                v
            }
            Op::Linear { inp, out, bias } => {
                let mut v = vec![p("weight", &[out, inp], Weight)];
                if bias {
                    v.push(p("bias", &[out], Bias));
                }
                v
            }
            Op::BatchNorm2d { c } | Op::LayerNorm { c } => {
                vec![p("weight", &[c], NormScale), p("bias", &[c], NormShift)]
            }
            Op::PatchEmbed { c, e, patch } => vec![
                p("weight", &[e, c, patch, patch], Weight),
                p("bias", &[e], Bias),
            ],
            Op::ClsPos { tokens, e } => vec![
                p("cls_token", &[1, 1, e], Token),
                p("pos_embed", &[1, tokens + 1, e], Embedding),
            ],
            Op::Attention { dim, .. } => vec![
                p("qkv.weight", &[3 * dim, dim], Weight),
                p("qkv.bias", &[3 * dim], Bias),
                p("proj.weight", &[dim, dim], Weight),
                p("proj.bias", &[dim], Bias),
            ],
            _ => Vec::new(),
        }
    }

    /// The non-trainable state (BatchNorm's running statistics), in `state_dict` order.
    pub fn state(&self) -> Vec<StateDecl> {
        match *self {
            Op::BatchNorm2d { c } => vec![
                StateDecl {
                    suffix: "running_mean",
                    shape: vec![c],
                    kind: StateKind::RunningMean,
                },
                StateDecl {
                    suffix: "running_var",
                    shape: vec![c],
                    kind: StateKind::RunningVar,
                },
                StateDecl {
                    suffix: "num_batches_tracked",
                    shape: vec![],
                    kind: StateKind::NumBatchesTracked,
                },
            ],
            _ => Vec::new(),
        }
    }
}

/// One step: `op` applied to `inputs` (earlier slots), written to slot `output`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The PyTorch module path (`features.0`, `blocks.2.attn`); `""` for top-level
    /// parameters such as timm's `cls_token`.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<usize>,
    pub output: usize,
}

/// How the parameters are initialised (see [`mod@super::init`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InitScheme {
    /// PyTorch's module defaults, what `nn.Linear`/`nn.Conv2d` give when nobody overrides
    /// them: weights and biases `U(±1/√fan_in)`; in a transformer, timm's ViT init instead
    /// (linears `N(0, 0.02²)` truncated at the absolute ±2, biases 0, the patch-embedding
    /// conv left at PyTorch's default). The default of every preset.
    Pytorch,
    /// He et al.: `N(0, 2/fan_in)`, biases 0 — varlab's first-wave CNN/MLP init.
    KaimingNormal,
    /// Normal with this std truncated at ±2 std (relative), biases 0 — the first-wave ViT init.
    TruncNormal { std: f32 },
}

/// A model: input `[C, H, W]`, a class count and the nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The preset's name (`resnet20`), for summaries and exports.
    pub name: String,
    /// `[C, H, W]` of one image.
    pub input: [usize; 3],
    pub classes: usize,
    pub nodes: Vec<Node>,
    pub init: InitScheme,
}

/// An inconsistent model description, as a sentence naming the node at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("The batch size is 0; shapes need at least one image.")]
    EmptyBatch,
    #[error("The model has no nodes: its last slot would be the input, not logits.")]
    NoNodes,
    #[error("The input shape {0:?} is not [channels, height, width] with every size at least 1.")]
    BadInput([usize; 3]),
    #[error("The model needs at least one class.")]
    NoClasses,
    #[error(
        "Node {node} ('{name}') writes slot {found}, but node {node} must write slot {expected} \
         (nodes write the slots in order)."
    )]
    SlotOrder {
        node: usize,
        name: String,
        expected: usize,
        found: usize,
    },
    #[error(
        "Node {node} ('{name}', {op}) reads slot {slot}, which is not written before it (slots \
         0 to {node} are)."
    )]
    UndefinedSlot {
        node: usize,
        name: String,
        op: &'static str,
        slot: usize,
    },
    #[error("Node {node} ('{name}', {op}) takes {expected} input(s) but is given {found}.")]
    Arity {
        node: usize,
        name: String,
        op: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("Node {node} ('{name}', {op}) has {what} = 0; it must be at least 1.")]
    ZeroSize {
        node: usize,
        name: String,
        op: &'static str,
        what: &'static str,
    },
    #[error("Node {node} ('{name}', {op}) expects {expected} input, but it is given {shape}.")]
    Rank {
        node: usize,
        name: String,
        op: &'static str,
        expected: &'static str,
        shape: Shape,
    },
    #[error(
        "Node {node} ('{name}', {op}) expects {expected} {what}, but its input {shape} has \
         {found}."
    )]
    Mismatch {
        node: usize,
        name: String,
        op: &'static str,
        what: &'static str,
        expected: usize,
        found: usize,
        shape: Shape,
    },
    #[error(
        "Node {node} ('{name}', {op}): the {k}×{k} window is larger than its input {shape} \
         (padding {pad})."
    )]
    WindowTooLarge {
        node: usize,
        name: String,
        op: &'static str,
        k: usize,
        pad: usize,
        shape: Shape,
    },
    #[error(
        "Node {node} ('{name}', PatchEmbed): the patch size {patch} does not divide the \
         {h}×{w} image."
    )]
    PatchNotDividing {
        node: usize,
        name: String,
        patch: usize,
        h: usize,
        w: usize,
    },
    #[error(
        "Node {node} ('{name}', Attention): {dim} channels cannot be split evenly into {heads} \
         heads."
    )]
    HeadsNotDividing {
        node: usize,
        name: String,
        dim: usize,
        heads: usize,
    },
    #[error("Node {node} ('{name}', Add) sums {a} and {b}, which differ in shape.")]
    AddShapes {
        node: usize,
        name: String,
        a: Shape,
        b: Shape,
    },
    #[error("The last slot holds {shape}, not logits [{n}, {classes}].")]
    NotLogits {
        shape: Shape,
        n: usize,
        classes: usize,
    },
    #[error("The parameter name '{0}' occurs twice; every tensor needs its own name for exports.")]
    DuplicateName(String),
    #[error("The ViT configuration is invalid: {0}.")]
    VitConfig(String),
    #[error("There is no model named '{name}'; the models are: {valid}.")]
    UnknownModel { name: String, valid: String },
}

/// `<path>.<suffix>`, or `suffix` alone for a top-level parameter (empty path).
pub fn join_name(path: &str, suffix: &str) -> String {
    if path.is_empty() {
        suffix.to_string()
    } else {
        format!("{path}.{suffix}")
    }
}

impl Model {
    /// An empty model (add nodes with [`Model::push`]).
    pub fn new(name: &str, input: [usize; 3], classes: usize, init: InitScheme) -> Model {
        Model {
            name: name.to_string(),
            input,
            classes,
            nodes: Vec::new(),
            init,
        }
    }

    /// Appends `op` over `inputs` and returns the slot it writes.
    pub fn push(&mut self, name: impl Into<String>, op: Op, inputs: &[usize]) -> usize {
        let output = self.nodes.len() + 1;
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.to_vec(),
            output,
        });
        output
    }

    /// The slot of the last node (the logits), 0 for an empty model.
    pub fn last_slot(&self) -> usize {
        self.nodes.len()
    }

    /// The shape of every slot for a batch of `n` images (index = slot), checking that the
    /// description is consistent and ends in logits `[n, classes]`.
    pub fn shapes(&self, n: usize) -> Result<Vec<Shape>, SpecError> {
        if n == 0 {
            return Err(SpecError::EmptyBatch);
        }
        let [c, h, w] = self.input;
        if c == 0 || h == 0 || w == 0 {
            return Err(SpecError::BadInput(self.input));
        }
        if self.classes == 0 {
            return Err(SpecError::NoClasses);
        }
        if self.nodes.is_empty() {
            return Err(SpecError::NoNodes);
        }
        let mut shapes = vec![Shape(vec![n, c, h, w])];
        for (i, node) in self.nodes.iter().enumerate() {
            shapes.push(infer(i, node, &shapes)?);
        }
        let last = shapes.last().expect("at least the input");
        if last.0 != [n, self.classes] {
            return Err(SpecError::NotLogits {
                shape: last.clone(),
                n,
                classes: self.classes,
            });
        }
        Ok(shapes)
    }

    /// Checks the shapes (for one image) and that every parameter and state name is unique.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.shapes(1)?;
        let mut seen = std::collections::HashSet::new();
        for node in &self.nodes {
            let params = node.op.params().into_iter().map(|p| p.suffix);
            for suffix in params.chain(node.op.state().into_iter().map(|s| s.suffix)) {
                let name = join_name(&node.name, suffix);
                if !seen.insert(name.clone()) {
                    return Err(SpecError::DuplicateName(name));
                }
            }
        }
        Ok(())
    }
}

/// The output shape of node `i` given the shapes of the slots before it.
fn infer(i: usize, node: &Node, shapes: &[Shape]) -> Result<Shape, SpecError> {
    let name = || node.name.clone();
    let op = node.op.kind_name();
    if node.output != i + 1 {
        return Err(SpecError::SlotOrder {
            node: i,
            name: name(),
            expected: i + 1,
            found: node.output,
        });
    }
    if node.inputs.len() != node.op.arity() {
        return Err(SpecError::Arity {
            node: i,
            name: name(),
            op,
            expected: node.op.arity(),
            found: node.inputs.len(),
        });
    }
    if let Some(&slot) = node.inputs.iter().find(|&&s| s > i) {
        return Err(SpecError::UndefinedSlot {
            node: i,
            name: name(),
            op,
            slot,
        });
    }
    let x = &shapes[node.inputs[0]];
    let zero = |what| SpecError::ZeroSize {
        node: i,
        name: name(),
        op,
        what,
    };
    let rank = |expected: &'static str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(SpecError::Rank {
                node: i,
                name: name(),
                op,
                expected,
                shape: x.clone(),
            })
        }
    };
    let matches = |what: &'static str, expected: usize, found: usize| {
        if expected == found {
            Ok(())
        } else {
            Err(SpecError::Mismatch {
                node: i,
                name: name(),
                op,
                what,
                expected,
                found,
                shape: x.clone(),
            })
        }
    };
    let nonzero = |pairs: &[(&'static str, usize)]| match pairs.iter().find(|p| p.1 == 0) {
        Some(&(what, _)) => Err(zero(what)),
        None => Ok(()),
    };
    let window = |k: usize, s: usize, pad: usize| -> Result<Shape, SpecError> {
        let (hp, wp) = (x[2] + 2 * pad, x[3] + 2 * pad);
        if k > hp || k > wp {
            return Err(SpecError::WindowTooLarge {
                node: i,
                name: name(),
                op,
                k,
                pad,
                shape: x.clone(),
            });
        }
        Ok(Shape(vec![x[0], x[1], (hp - k) / s + 1, (wp - k) / s + 1]))
    };
    const IMAGE: &str = "an image batch [N, C, H, W] as";
    const TOKENS: &str = "a token batch [N, T, C] as";
    match node.op {
        Op::Conv2d {
            cin,
            cout,
            k,
            stride,
            pad,
            ..
        } => {
            nonzero(&[("cin", cin), ("cout", cout), ("k", k), ("stride", stride)])?;
            rank(IMAGE, x.len() == 4)?;
            matches("input channels", cin, x[1])?;
            let mut y = window(k, stride, pad)?;
            y.0[1] = cout;
            Ok(y)
        }
        Op::Linear { inp, out, .. } => {
            nonzero(&[("inp", inp), ("out", out)])?;
            rank("a batch [N, .., features] as", x.len() >= 2)?;
            matches("input features", inp, x[x.len() - 1])?;
            let mut y = x.clone();
            *y.0.last_mut().expect("rank ≥ 2") = out;
            Ok(y)
        }
        Op::BatchNorm2d { c } => {
            nonzero(&[("c", c)])?;
            rank(IMAGE, x.len() == 4)?;
            matches("channels", c, x[1])?;
            Ok(x.clone())
        }
        Op::LayerNorm { c } => {
            nonzero(&[("c", c)])?;
            rank("a batch [N, .., C] as", x.len() >= 2)?;
            matches("channels", c, x[x.len() - 1])?;
            Ok(x.clone())
        }
        Op::Relu | Op::Gelu => Ok(x.clone()),
        Op::MaxPool { k, s } | Op::AvgPool { k, s } => {
            nonzero(&[("k", k), ("s", s)])?;
            rank(IMAGE, x.len() == 4)?;
            window(k, s, 0)
        }
        Op::GlobalAvgPool => {
            rank(IMAGE, x.len() == 4)?;
            Ok(Shape(vec![x[0], x[1]]))
        }
        Op::Flatten => {
            rank("a batch [N, ..] as", x.len() >= 2)?;
            Ok(Shape(vec![x[0], x[1..].iter().product()]))
        }
        Op::Add => {
            let b = &shapes[node.inputs[1]];
            if x != b {
                return Err(SpecError::AddShapes {
                    node: i,
                    name: name(),
                    a: x.clone(),
                    b: b.clone(),
                });
            }
            Ok(x.clone())
        }
        Op::PatchEmbed { c, e, patch } => {
            nonzero(&[("c", c), ("e", e), ("patch", patch)])?;
            rank(IMAGE, x.len() == 4)?;
            matches("channels", c, x[1])?;
            let (h, w) = (x[2], x[3]);
            if h % patch != 0 || w % patch != 0 {
                return Err(SpecError::PatchNotDividing {
                    node: i,
                    name: name(),
                    patch,
                    h,
                    w,
                });
            }
            Ok(Shape(vec![x[0], (h / patch) * (w / patch), e]))
        }
        Op::ClsPos { tokens, e } => {
            nonzero(&[("tokens", tokens), ("e", e)])?;
            rank(TOKENS, x.len() == 3)?;
            matches("tokens", tokens, x[1])?;
            matches("channels", e, x[2])?;
            Ok(Shape(vec![x[0], tokens + 1, e]))
        }
        Op::Attention { dim, heads } => {
            nonzero(&[("dim", dim), ("heads", heads)])?;
            rank(TOKENS, x.len() == 3)?;
            matches("channels", dim, x[2])?;
            if dim % heads != 0 {
                return Err(SpecError::HeadsNotDividing {
                    node: i,
                    name: name(),
                    dim,
                    heads,
                });
            }
            Ok(x.clone())
        }
        Op::TokenMeanPool | Op::ClsSelect => {
            rank(TOKENS, x.len() == 3)?;
            Ok(Shape(vec![x[0], x[2]]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Model {
        let mut m = Model::new("tiny", [2, 6, 6], 3, InitScheme::KaimingNormal);
        let a = m.push(
            "conv",
            Op::Conv2d {
                cin: 2,
                cout: 4,
                k: 3,
                stride: 1,
                pad: 1,
                bias: false,
            },
            &[0],
        );
        let b = m.push("relu", Op::Relu, &[a]);
        let c = m.push("add", Op::Add, &[a, b]);
        let d = m.push("pool", Op::MaxPool { k: 2, s: 2 }, &[c]);
        let e = m.push("flatten", Op::Flatten, &[d]);
        m.push(
            "fc",
            Op::Linear {
                inp: 36,
                out: 3,
                bias: true,
            },
            &[e],
        );
        m
    }

    #[test]
    fn shapes_of_a_tiny_model() {
        let s = tiny().shapes(2).unwrap();
        let dims: Vec<Vec<usize>> = s.iter().map(|s| s.0.clone()).collect();
        assert_eq!(
            dims,
            vec![
                vec![2, 2, 6, 6],
                vec![2, 4, 6, 6],
                vec![2, 4, 6, 6],
                vec![2, 4, 6, 6],
                vec![2, 4, 3, 3],
                vec![2, 36],
                vec![2, 3],
            ]
        );
        assert_eq!(s[4].numel(), 72);
        assert_eq!(s[4].to_string(), "[2, 4, 3, 3]");
    }

    #[test]
    fn slot_order_and_forward_references_are_errors() {
        let mut m = tiny();
        m.nodes[2].output = 7;
        assert!(matches!(
            m.shapes(1),
            Err(SpecError::SlotOrder { node: 2, .. })
        ));
        let mut m = tiny();
        m.nodes[2].inputs = vec![1, 3];
        assert!(matches!(
            m.shapes(1),
            Err(SpecError::UndefinedSlot {
                node: 2,
                slot: 3,
                ..
            })
        ));
        let mut m = tiny();
        m.nodes[2].inputs = vec![1];
        assert!(matches!(m.shapes(1), Err(SpecError::Arity { node: 2, .. })));
    }
}

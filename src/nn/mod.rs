//! Model descriptions that both executors (GPU and CPU) run — no execution here:
//! - [`spec`]: the ops, the nodes over numbered activation slots, shape inference and its
//!   typed errors;
//! - [`models`]: the presets (`mlp`, `lenet5`, `cnn`, `resnet8`, `resnet20`, `resnet18`,
//!   `vit-tiny`);
//! - [`params`]: the flat, 256-byte-aligned parameter and state tables, `summary()`;
//! - [`mod@init`]: seeded initialisation of both arrays.

pub mod init;
pub mod models;
pub mod params;
pub mod spec;

pub use init::{init, Init};
pub use models::{
    cnn, lenet5, mlp, plain_cnn, resnet18, resnet18_width, resnet20, resnet8, vit, vit_tiny,
    VitConfig, MODELS,
};
pub use params::{ParamInfo, ParamTable, StateInfo, StateTable, ALIGN};
pub use spec::{InitScheme, Model, Node, Op, ParamKind, Shape, SpecError, StateKind};

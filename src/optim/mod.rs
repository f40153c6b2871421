//! Optimizers over the flat parameter array ([`crate::nn::ParamTable`]).
//! - [`sgd`]: PyTorch's SGD (momentum, Nesterov, weight decay) as a plain CPU function.

pub mod sgd;

pub use sgd::sgd_step;
pub mod shim;
pub use shim::{CpuOptimizer, OptimConfig, OptimError, OptimKind, StepReport};

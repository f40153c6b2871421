//! Optimizers over the flat parameter array ([`crate::nn::ParamTable`]): SGD, VAR-SGD,
//! SAM, CrAM(+, -Multi), SAM+VAR, CrAM+VAR, ℓ1 and Hoyer-square (METHODS.md).
//! - [`config`]: [`OptimConfig`] and its validation;
//! - [`sgd`]: PyTorch's SGD (momentum, Nesterov, weight decay) as a plain CPU function;
//! - [`reg`]: the regularisers (ψ and its gradient, ℓ1, Hoyer) and per-tensor telemetry;
//! - [`cpu`]: [`CpuOptimizer`], the reference step driving a gradient closure;
//! - [`gpu`]: [`GpuOptimizer`], the same step as a fused dispatch list (shaders/optim.wgsl).

pub mod config;
pub mod cpu;
pub mod cram;
pub mod gpu;
pub mod reg;
pub mod sgd;

pub use config::{OptimConfig, OptimError, OptimKind, Scope};
pub use cpu::{CpuOptimizer, StepReport};
pub use gpu::GpuOptimizer;
pub use reg::{psi, psi_grad, var_stats, TensorVar};
pub use sgd::{sgd_step, Sgd};

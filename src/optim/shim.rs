//! TEMPORARY stand-in for the optimizer API being written on branch wip-optim (SGD only);
//! replaced at merge. Same names and signatures as that API.

use crate::nn::ParamTable;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimKind {
    Sgd,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OptimConfig {
    pub kind: OptimKind,
    pub momentum: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OptimError(pub String);

/// Forward + loss + backward at the given parameters.
pub type GradFn<'a> = dyn FnMut(&[f32], bool, &mut [f32]) -> (f32, usize) + 'a;

pub struct StepReport {
    pub loss: f32,
    pub correct: usize,
    pub reg: f32,
}

pub struct CpuOptimizer {
    cfg: OptimConfig,
    momentum: Vec<f32>,
    grads: Vec<f32>,
}

impl CpuOptimizer {
    pub fn new(cfg: &OptimConfig, table: &ParamTable, _seed: u64) -> Result<Self, OptimError> {
        Ok(CpuOptimizer {
            cfg: cfg.clone(),
            momentum: vec![0.0; table.buffer_len],
            grads: vec![0.0; table.buffer_len],
        })
    }

    pub fn step(&mut self, params: &mut [f32], lr: f32, grad: &mut GradFn) -> StepReport {
        let (loss, correct) = grad(params, true, &mut self.grads);
        super::sgd_step(
            params,
            &self.grads,
            &mut self.momentum,
            lr,
            self.cfg.momentum,
            self.cfg.weight_decay,
            self.cfg.nesterov,
        );
        StepReport {
            loss,
            correct,
            reg: 0.0,
        }
    }
}

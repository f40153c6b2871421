//! Exports: weights as safetensors a PyTorch user loads directly (the CSV of a result is
//! `ExperimentResult::to_csv`, in `experiment::csv`).
//!
//! Weights use the PyTorch names and layouts of the parameter and state tables
//! ([`crate::nn::params`]): conv `[out, in, kh, kw]`, linear `[out, in]`, F32; BatchNorm's
//! `num_batches_tracked` is written back as the int64 scalar PyTorch keeps. So
//!
//! ```python
//! from safetensors.torch import load_file
//! model.load_state_dict(load_file("var-seed0-dense.safetensors"))
//! ```
//!
//! loads them into the matching PyTorch module (see the README for the module code).

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::nn::{Model, StateKind};

/// A weights file that cannot be written or read back, as a sentence.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("The safetensors data is invalid: {0}")]
    Format(String),
    #[error("The safetensors file has no tensor '{0}', which the model needs.")]
    Missing(String),
    #[error("The tensor '{name}' has shape {found:?}; the model needs {expected:?}.")]
    Shape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
}

fn format_err(e: impl std::fmt::Display) -> ExportError {
    ExportError::Format(e.to_string())
}

/// The safetensors bytes of `params` and `state` (flat arrays laid out as `model`'s tables),
/// with `metadata` in the header (safetensors' free-form string map; `format: pt` is added).
pub fn to_safetensors(
    model: &Model,
    params: &[f32],
    state: &[f32],
    metadata: &[(&str, String)],
) -> Result<Vec<u8>, ExportError> {
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for p in &model.params().entries {
        let bytes = bytemuck::cast_slice(&params[p.range()]).to_vec();
        tensors.push((p.name.clone(), Dtype::F32, p.shape.clone(), bytes));
    }
    for s in &model.state().entries {
        let v = &state[s.range()];
        if s.kind == StateKind::NumBatchesTracked {
            let count = v[0].round() as i64;
            tensors.push((
                s.name.clone(),
                Dtype::I64,
                vec![],
                count.to_le_bytes().to_vec(),
            ));
        } else {
            let bytes = bytemuck::cast_slice(v).to_vec();
            tensors.push((s.name.clone(), Dtype::F32, s.shape.clone(), bytes));
        }
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(format_err)?;
    let mut info: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    info.insert("format".into(), "pt".into());
    safetensors::tensor::serialize(views, Some(info)).map_err(format_err)
}

/// Reads weights written by [`to_safetensors`] (or by PyTorch for the same module) back into
/// flat `(params, state)` arrays for `model`.
pub fn from_safetensors(model: &Model, bytes: &[u8]) -> Result<(Vec<f32>, Vec<f32>), ExportError> {
    let st = SafeTensors::deserialize(bytes).map_err(format_err)?;
    let get = |name: &str, shape: &[usize]| -> Result<Vec<u8>, ExportError> {
        let t = st
            .tensor(name)
            .map_err(|_| ExportError::Missing(name.to_string()))?;
        if t.shape() != shape {
            return Err(ExportError::Shape {
                name: name.to_string(),
                found: t.shape().to_vec(),
                expected: shape.to_vec(),
            });
        }
        Ok(t.data().to_vec())
    };
    let f32s = |b: Vec<u8>| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let table = model.params();
    let mut params = vec![0.0; table.buffer_len];
    for p in &table.entries {
        params[p.range()].copy_from_slice(&f32s(get(&p.name, &p.shape)?));
    }
    let stable = model.state();
    let mut state = vec![0.0; stable.buffer_len];
    for s in &stable.entries {
        if s.kind == StateKind::NumBatchesTracked {
            let b = get(&s.name, &[])?;
            let count = i64::from_le_bytes(b[..8].try_into().map_err(format_err)?);
            state[s.offset] = count as f32;
        } else {
            state[s.range()].copy_from_slice(&f32s(get(&s.name, &s.shape)?));
        }
    }
    Ok((params, state))
}

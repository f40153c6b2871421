//! GPU runtime: one [`Context`] per device, with buffer helpers, a pipeline cache,
//! dispatch lists encoded into a single command submission, async readback and
//! GPU timestamps. Works the same natively (Vulkan/Metal/DX12/GL) and in the browser
//! (WebGPU); nothing here ever blocks on wasm.

mod buffers;
mod context;
mod dispatch;
mod slice;

pub use context::{AdapterReport, Context, BINDING_CAP_VAR};
pub use dispatch::{Dispatch, Shader};
pub use slice::{OwnedSlice, Slice};

/// Everything that can go wrong on the GPU side, as sentences a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "No GPU adapter was found ({0}). Natively on Debian, install the software Vulkan \
         driver with `apt-get install mesa-vulkan-drivers libvulkan1`; in a browser, use one \
         with WebGPU (Chrome/Edge 113+, Safari 26+, Firefox 141+) or start Chromium with \
         --enable-unsafe-webgpu."
    )]
    NoAdapter(String),
    #[error("The GPU adapter '{adapter}' refused to create a device: {message}")]
    RequestDevice { adapter: String, message: String },
    #[error(
        "{what} needs {requested} but this adapter allows at most {allowed} \
         (limit `{limit}`); use a smaller size or a GPU with a larger limit."
    )]
    LimitExceeded {
        limit: &'static str,
        what: String,
        requested: u64,
        allowed: u64,
    },
    #[error("The WGSL shader '{shader}' (entry point '{entry}') failed to compile: {message}")]
    Shader {
        shader: &'static str,
        entry: &'static str,
        message: String,
    },
    #[error("The GPU rejected {what}: {message}")]
    Validation { what: String, message: String },
    #[error(
        "The GPU device was lost ({0}); finished results are kept, start again on a new device."
    )]
    DeviceLost(String),
    #[error("Reading results back from the GPU failed: {0}")]
    Readback(String),
}

pub type Result<T> = std::result::Result<T, GpuError>;

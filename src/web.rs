//! The wasm-bindgen API the page's JavaScript calls. Results cross as JSON strings;
//! errors as the sentences of [`crate::gpu::GpuError`].

use wasm_bindgen::prelude::*;

use crate::gpu::Context;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// Opens the GPU, runs the smoke matmul against its CPU twin and a small benchmark;
/// resolves to the JSON of [`crate::smoke::SmokeReport`].
#[wasm_bindgen]
pub async fn smoke() -> Result<String, JsError> {
    let ctx = Context::new().await?;
    let report = crate::smoke::run(&ctx, &[64, 128, 256]).await?;
    Ok(serde_json::to_string(&report)?)
}

/// The crate version, for the page's footer and exported results.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

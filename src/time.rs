//! Wall-clock seconds on both targets (`std::time::Instant` panics on wasm32).

#[cfg(not(target_arch = "wasm32"))]
pub fn now() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// The global scope's `performance` clock: the page's window or a worker's (the engine
/// runs in Web Workers, which have no `window`); `Date` only where neither has one.
#[cfg(target_arch = "wasm32")]
pub fn now() -> f64 {
    use wasm_bindgen::JsCast;
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| p.dyn_into::<web_sys::Performance>().ok());
    perf.map(|p| p.now() * 1e-3)
        .unwrap_or_else(|| js_sys::Date::now() * 1e-3)
}

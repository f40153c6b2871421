//! Wall-clock seconds on both targets (`std::time::Instant` panics on wasm32).

#[cfg(not(target_arch = "wasm32"))]
pub fn now() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

#[cfg(target_arch = "wasm32")]
pub fn now() -> f64 {
    let perf = web_sys::window().and_then(|w| w.performance());
    perf.map(|p| p.now() * 1e-3)
        .unwrap_or_else(|| js_sys::Date::now() * 1e-3)
}

//! The wasm entry point: hydrate the server-rendered dashboard.

use wasm_bindgen::prelude::wasm_bindgen;

/// Called by the hydration script once the module has loaded.
#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(slipway_app::App);
}

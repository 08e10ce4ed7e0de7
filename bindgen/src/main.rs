//! The workspace's own bindgen, at exactly the uniffi version the library
//! was built with (PyPI's `uniffi-bindgen` is older and does not match).
fn main() {
    uniffi::uniffi_bindgen_main()
}

//! Lets this crate's component glue replace the real guest's.
//!
//! `capt-status` built for wasm32 carries its own `export!` of `capt:policy/reconciler@0.1.0`,
//! and a cdylib exports every exported symbol of the crates it links: linking `capt-status`
//! into a component defines each `capt:policy/reconciler@0.1.0#...` export twice, the real
//! guest's and ours. `--allow-multiple-definition` makes wasm-ld keep the first definition,
//! which is ours (rustc lists the crate's own objects before its rlibs); the real guest's
//! glue is then dead code that `--gc-sections` drops. This only works without LTO (the
//! `fixture` profile): with LTO the duplicates clash before the linker runs. The `old-world`
//! variant links no `capt-status` at all (see `real` in src/lib.rs) and needs no flag. The
//! flag goes away once `capt-status` can be linked without its glue (see README.md).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "wasm32");
    let old_world = std::env::var_os("CARGO_FEATURE_OLD_WORLD").is_some();
    if wasm && !old_world {
        println!("cargo:rustc-link-arg-cdylib=--allow-multiple-definition");
    }
}

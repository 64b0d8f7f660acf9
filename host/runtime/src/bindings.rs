//! The host side of the `capt:policy` world, generated from `wit/policy.wit`. Nothing else.
#![allow(missing_docs)] // generated code

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "policy",
});

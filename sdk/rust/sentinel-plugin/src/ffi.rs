//! The raw imports of the `sentinel_v1` host module (docs/wasm.md). Use
//! the safe wrappers of the crate root instead.

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "sentinel_v1")]
extern "C" {
    pub fn get_header(kind: u32, name: *const u8, name_len: u32, buf: *mut u8, buf_len: u32) -> i32;
    pub fn set_header(kind: u32, name: *const u8, name_len: u32, value: *const u8, value_len: u32);
    pub fn add_header(kind: u32, name: *const u8, name_len: u32, value: *const u8, value_len: u32);
    pub fn remove_header(kind: u32, name: *const u8, name_len: u32);
    pub fn get_method(buf: *mut u8, buf_len: u32) -> i32;
    pub fn get_path(buf: *mut u8, buf_len: u32) -> i32;
    pub fn get_raw_path(buf: *mut u8, buf_len: u32) -> i32;
    pub fn get_query(buf: *mut u8, buf_len: u32) -> i32;
    pub fn get_client_addr(buf: *mut u8, buf_len: u32) -> i32;
    pub fn get_client_ip(buf: *mut u8, buf_len: u32) -> i32;
    pub fn get_tls(field: u32, buf: *mut u8, buf_len: u32) -> i32;
    pub fn get_route_id(buf: *mut u8, buf_len: u32) -> i32;
    pub fn get_status() -> i32;
    pub fn read_body(buf: *mut u8, buf_len: u32) -> i32;
    pub fn get_config(buf: *mut u8, buf_len: u32) -> i32;
    pub fn log(level: u32, msg: *const u8, msg_len: u32);
    pub fn set_decision(kind: u32, status: u32);
    pub fn set_body(body: *const u8, body_len: u32);
    pub fn set_location(loc: *const u8, loc_len: u32);
    pub fn add_response_header(name: *const u8, name_len: u32, value: *const u8, value_len: u32);
}

// On other targets (cargo test on the host) the imports are stubs that
// answer "absent", so that the pure parts of the crate can be tested.
#[cfg(not(target_arch = "wasm32"))]
mod host {
    pub unsafe fn get_header(_: u32, _: *const u8, _: u32, _: *mut u8, _: u32) -> i32 { -1 }
    pub unsafe fn set_header(_: u32, _: *const u8, _: u32, _: *const u8, _: u32) {}
    pub unsafe fn add_header(_: u32, _: *const u8, _: u32, _: *const u8, _: u32) {}
    pub unsafe fn remove_header(_: u32, _: *const u8, _: u32) {}
    pub unsafe fn get_method(_: *mut u8, _: u32) -> i32 { 0 }
    pub unsafe fn get_path(_: *mut u8, _: u32) -> i32 { 0 }
    pub unsafe fn get_raw_path(_: *mut u8, _: u32) -> i32 { 0 }
    pub unsafe fn get_query(_: *mut u8, _: u32) -> i32 { 0 }
    pub unsafe fn get_client_addr(_: *mut u8, _: u32) -> i32 { 0 }
    pub unsafe fn get_client_ip(_: *mut u8, _: u32) -> i32 { 0 }
    pub unsafe fn get_tls(_: u32, _: *mut u8, _: u32) -> i32 { -1 }
    pub unsafe fn get_route_id(_: *mut u8, _: u32) -> i32 { -1 }
    pub unsafe fn get_status() -> i32 { 0 }
    pub unsafe fn read_body(_: *mut u8, _: u32) -> i32 { -1 }
    pub unsafe fn get_config(_: *mut u8, _: u32) -> i32 { 0 }
    pub unsafe fn log(_: u32, _: *const u8, _: u32) {}
    pub unsafe fn set_decision(_: u32, _: u32) {}
    pub unsafe fn set_body(_: *const u8, _: u32) {}
    pub unsafe fn set_location(_: *const u8, _: u32) {}
    pub unsafe fn add_response_header(_: *const u8, _: u32, _: *const u8, _: u32) {}
}
#[cfg(not(target_arch = "wasm32"))]
pub use host::*;

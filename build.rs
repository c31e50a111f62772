//! Generates the FreeRADIUS 3.2 bindings used by `rlm_jasiyo`.
//!
//! bindgen runs over `include/jasiyo_wrapper.h`, which includes the installed server headers
//! (`/usr/include/freeradius`, or `$FREERADIUS_INCLUDE_DIR/freeradius`) and re-exports the macro
//! values the module needs (the module magic among them) as enumerators. Debian's
//! libfreeradius-dev 3.2.1 omits some headers that `radiusd.h` includes; our own stand-ins in
//! `include/freeradius/` fill the gap. They are searched *after* the real directory
//! (`-idirafter`), so a server whose header set is complete uses its own.
//!
//! Compiled with `-DNDEBUG` like the Debian server (`WITH_NDEBUG`), which removes
//! `REQUEST.magic` and so fixes the `REQUEST` layout the server uses.

use std::env;
use std::path::{Path, PathBuf};

/// Types the module touches. Everything they reference is generated too (opaque where the
/// module never looks inside).
const TYPES: &[&str] = &[
    "module_t",
    "packetmethod",
    "instantiate_t",
    "detach_t",
    "CONF_PARSER",
    "CONF_SECTION",
    "REQUEST",
    "RADIUS_PACKET",
    "VALUE_PAIR",
    "DICT_ATTR",
    "fr_ipaddr_t",
    "rlm_rcode_t",
    "rlm_components_t",
    "value_type_t",
    "FR_TOKEN",
    "PW_TYPE",
    "log_type_t",
    "log_lvl_t",
];

/// Server functions the module calls. All are exported by the radiusd binary (or the
/// libfreeradius-* libraries it links), so they resolve when radiusd dlopens the module.
const FUNCTIONS: &[&str] = &[
    "radlog",
    "radlog_request",
    "radlog_debug_enabled",
    "module_failure_msg",
    "cf_section_name1",
    "cf_section_name2",
    "dict_attrbyname",
    "dict_attrbyvalue",
    "fr_pair_find_by_da",
    "fr_pair_find_by_num",
    "fr_pair_afrom_da",
    "fr_pair_add",
    "fr_pair_replace",
    "fr_pair_value_memcpy",
    "fr_pair_value_bstrncpy",
];

/// Complete structures the module only ever holds pointers to.
/// (Incomplete C types need no entry: bindgen makes them opaque anyway.)
const OPAQUE: &[&str] = &[
    "main_config",
    "main_config_t",
    "home_server",
    "home_server_t",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let standins = manifest_dir.join("include");
    let wrapper = standins.join("jasiyo_wrapper.h");

    println!("cargo:rerun-if-env-changed=FREERADIUS_INCLUDE_DIR");
    println!("cargo:rerun-if-changed={}", standins.display());
    println!("cargo:rerun-if-changed={}", wrapper.display());
    for entry in std::fs::read_dir(standins.join("freeradius")).expect("include/freeradius") {
        let entry = entry.expect("read include/freeradius");
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }

    let fr_include = env::var_os("FREERADIUS_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let radiusd_h = fr_include.join("freeradius").join("radiusd.h");
    if !radiusd_h.is_file() {
        panic!(
            "FreeRADIUS server headers not found: {} is missing.\n\
             Install them (Debian: apt-get install libfreeradius-dev libtalloc-dev \
             libpcre3-dev libclang-dev) or set FREERADIUS_INCLUDE_DIR to the directory that \
             contains freeradius/radiusd.h.",
            radiusd_h.display()
        );
    }
    println!("cargo:rerun-if-changed={}", radiusd_h.display());
    for header in ["autoconf.h", "features.h", "libradius.h", "modules.h"] {
        println!(
            "cargo:rerun-if-changed={}",
            fr_include.join("freeradius").join(header).display()
        );
    }

    let mut builder = bindgen::Builder::default()
        .header(path_str(&wrapper))
        .clang_arg("-DNDEBUG")
        .clang_arg(format!("-I{}", path_str(&fr_include)))
        .clang_arg("-idirafter")
        .clang_arg(path_str(&standins))
        // The magic enum has a fixed 64-bit underlying type (a clang extension in C).
        .clang_arg("-Wno-fixed-enum-extension")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        // The wrapper's enums carry the JASIYO_* constants.
        .allowlist_type("jasiyo_.*")
        .allowlist_var("JASIYO_.*")
        .allowlist_var("(RLM_TYPE|PW_TYPE)_.*")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .use_core()
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for ty in TYPES {
        builder = builder.allowlist_type(ty);
    }
    for func in FUNCTIONS {
        builder = builder.allowlist_function(func);
    }
    for ty in OPAQUE {
        builder = builder.opaque_type(ty);
    }

    let bindings = builder
        .generate()
        .expect("bindgen failed on include/jasiyo_wrapper.h");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it")).join("freeradius.rs");
    bindings.write_to_file(&out).expect("write freeradius.rs");
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("include paths must be UTF-8")
}

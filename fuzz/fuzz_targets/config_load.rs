//! Fuzzes the config loader: any file text plus `HUB_*` overrides must load or
//! fail with a `ConfigError`, never panic. The input's first line is taken as
//! `NAME=VALUE;NAME=VALUE` environment overrides, the rest as the TOML file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (env_line, toml) = text.split_once('\n').unwrap_or(("", text));
    let env: Vec<(String, String)> = env_line
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (format!("HUB_{k}"), v.to_string()))
        .collect();
    // Bind addresses resolve through the system resolver; keep the fuzzer on
    // numeric addresses so it never waits on DNS.
    if text.contains("bind") && !text.contains("127.0.0.1") {
        return;
    }
    if let Err(e) = realtime_hub::config::Config::from_toml("fuzz", toml, env) {
        assert!(!e.to_string().is_empty());
    }
});

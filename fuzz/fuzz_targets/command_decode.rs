//! Fuzzes the client-command decoder: any text a socket can send must decode to
//! a command or a `bad_request` message, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match realtime_hub::command::decode(text) {
            Ok(envelope) => {
                // A decoded ref must serialize back (it is echoed in replies).
                let _ = serde_json::to_string(&envelope.reference);
            }
            Err(e) => assert!(!e.message.is_empty()),
        }
    }
});

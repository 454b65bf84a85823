//! The OAuth token endpoint's answer (crates/delivery/src/destinations/webhook/oauth.rs
//! `parse_token`): `{"access_token": "...", "expires_in": N}`, `expires_in` a number, a
//! string or missing.
#![no_main]

use std::time::Duration;

use hookrelay_delivery::destinations::webhook::oauth::{parse_token_for_fuzzing, TokenError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Tokens are used a day at most, and 5 minutes without `expires_in`.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

fuzz_target!(|data: &[u8]| {
    match parse_token_for_fuzzing(data) {
        Ok((token, lifetime)) => {
            let answer: Value = serde_json::from_slice(data).expect("accepted but not JSON");
            assert_eq!(answer["access_token"].as_str(), Some(&*token));
            assert!(!token.is_empty());
            assert!(lifetime <= MAX_LIFETIME, "{lifetime:?}");
            let expires_in = match &answer["expires_in"] {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match expires_in {
                None => assert_eq!(lifetime, DEFAULT_LIFETIME),
                // Refreshed ahead of the expiry, by a tenth of it at most.
                Some(secs) if secs.is_finite() && secs >= 0.0 => {
                    let secs = Duration::from_secs_f64(secs.min(MAX_LIFETIME.as_secs_f64()));
                    assert!(lifetime <= secs, "{lifetime:?} > {secs:?}");
                    assert!(lifetime + Duration::from_millis(1) >= secs.mul_f64(0.9));
                }
                Some(_) => {}
            }
        }
        Err(e) => assert_eq!(e, TokenError::NoAccessToken),
    }
});

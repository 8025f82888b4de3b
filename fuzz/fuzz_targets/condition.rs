//! Fuzz the threshold condition language: any text parses or fails with an
//! error (never a panic or a stack overflow), and a parsed condition
//! evaluates on NaN, infinities and ordinary numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::analysis::condition::Condition;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(condition) = Condition::parse(text) {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -1.0, 1e308] {
            let _ = condition.holds(value);
        }
    }
});

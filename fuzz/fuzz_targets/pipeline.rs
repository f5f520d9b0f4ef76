//! Fuzzes the pure stages end to end: parse → classify → extract → detect.
//!
//! Run: `cargo +nightly fuzz run pipeline -- -max_total_time=600`
//! (see BENCHMARKS.md for the last run's figures). A panic anywhere is a
//! finding: libFuzzer aborts on it even where postdesk's own
//! `catch_unwind` would contain it in production, so a mail-parser panic
//! that the daemon survives still shows up here to be reported upstream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postdesk::classify::{ClassifyContext, classify};
use postdesk::detect::Detector;
use postdesk::extract::extract;
use postdesk::parse::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(mail) = parse(data) else { return };
    let ctx = ClassifyContext {
        own_addresses: vec!["support@example.com".to_owned()],
        message_id_domain: "example.com".to_owned(),
    };
    let class = classify(&mail, &ctx);
    let text = extract(&mail);
    let detection = Detector::new().detect(&text, &mail.subject);
    // Invariants every stage promises.
    assert!(
        !mail.message_id.is_empty(),
        "every message gets a Message-ID"
    );
    assert!(
        class.bounce.is_none() || class.class == postdesk::mail::Class::Bounce,
        "bounce details only on bounces"
    );
    if let Some(d) = detection {
        assert!((0.0..=1.0).contains(&d.confidence));
    }
});

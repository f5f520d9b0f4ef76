//! Unit tests for `detect` and `resolve`.

use super::*;

fn text(s: &str) -> CustomerText {
    CustomerText {
        text: s.to_owned(),
        quote_removed: false,
        signature_removed: false,
    }
}

#[test]
fn german_sentence_is_reliable() {
    let d = detect(
        &text("Guten Tag, mein Drucker funktioniert seit gestern nicht mehr."),
        "",
    );
    let d = d.unwrap_or_else(|| panic!("no detection"));
    assert_eq!(d.language, "de");
    assert!(d.reliable);
}


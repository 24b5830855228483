//! Property: an identity header value never carries CR, LF or NUL (nor any other control
//! byte), whatever the user, the provider or the directory put in it, in every encoding. A
//! value the gateway joins from several (`identity::join_values`) is one more string, so
//! arbitrary strings cover it.

use proptest::prelude::*;

use super::headers::{encode, Encoding};

const ENCODINGS: [Encoding; 6] = [
    Encoding::Percent,
    Encoding::Utf8,
    Encoding::Latin1,
    Encoding::Ascii,
    Encoding::Base64,
    Encoding::Rfc2047,
];

/// Strings dense in what could split or smuggle a header: CR, LF, NUL, C1 controls (`U+0085`
/// is NEL), Unicode line separators, and characters that transliterate to punctuation.
fn hostile() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                '\r', '\n', '\0', '\t', '\u{7f}', '\u{85}', '\u{9b}', '\u{2028}', '\u{2029}',
                '\u{feff}', '\u{202e}', 'é', 'ß', 'Æ', '，', '：', '＝', '?', '=', '%', ':',
            ]),
            any::<char>(),
        ],
        0..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn assert_clean(value: &str) -> Result<(), TestCaseError> {
    for encoding in ENCODINGS {
        let encoded = encode(value, encoding);
        prop_assert!(
            !encoded
                .as_bytes()
                .iter()
                .any(|&b| b == b'\r' || b == b'\n' || b == 0 || b.is_ascii_control()),
            "{:?} of {:?} is {:?}",
            encoding,
            value,
            encoded
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encoded_values_never_hold_cr_lf_or_nul(value in any::<String>()) {
        assert_clean(&value)?;
    }

    #[test]
    fn hostile_values_never_hold_cr_lf_or_nul(value in hostile()) {
        assert_clean(&value)?;
    }
}

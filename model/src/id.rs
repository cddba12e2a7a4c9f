//! TypeIDs: type-prefixed, sortable, URL-safe identifiers.
//!
//! Every record Slipway exposes is named by a [TypeID](https://github.com/jetify-com/typeid)
//! of the form `<prefix>_<suffix>`, for example `bld_01h2xcejqtf2nbrexx3vqjhp41`:
//!
//! * the **prefix** says what kind of record it is (one of the constants below);
//! * the **suffix** is always 26 characters: the 128 bits of a UUID (version 7 for ids
//!   Slipway creates, so they sort by creation time) written in Crockford base32 with the
//!   lowercase alphabet `0123456789abcdefghjkmnpqrstvwxyz`. 26 characters hold 130 bits,
//!   so the first character is always `0`–`7`.
//!
//! Following the spec, an id with an empty prefix is just the bare suffix (no underscore).
//! Prefixes are 1–63 characters of `a-z` and `_`, starting and ending with a letter; the
//! separator is the *last* underscore.
//!
//! The database stores ids as text with a check constraint built from
//! [`SQL_SUFFIX_PATTERN`]; decoding here applies exactly the same rules.

use std::fmt;

use uuid::Uuid;

/// Prefix of project ids (`prj_…`).
pub const PROJECT: &str = "prj";
/// Prefix of build spec ids (`bld_…`).
pub const BUILD: &str = "bld";
/// Prefix of build run ids (`run_…`).
pub const RUN: &str = "run";
/// Prefix of build artifact ids (`art_…`).
pub const ARTIFACT: &str = "art";
/// Prefix of release ids (`rel_…`).
pub const RELEASE: &str = "rel";
/// Prefix of environment ids (`env_…`).
pub const ENVIRONMENT: &str = "env";
/// Prefix of deployment ids (`dep_…`).
pub const DEPLOYMENT: &str = "dep";
/// Prefix of approval ids (`apv_…`).
pub const APPROVAL: &str = "apv";
/// Prefix of pipeline run ids (`pip_…`).
pub const PIPELINE_RUN: &str = "pip";
/// Prefix of user ids (`usr_…`).
pub const USER: &str = "usr";
/// Prefix of API token ids (`tok_…`).
pub const TOKEN: &str = "tok";
/// Prefix of secret ids (`sec_…`).
pub const SECRET: &str = "sec";
/// Prefix of audit event ids (`aud_…`).
pub const AUDIT: &str = "aud";
/// Prefix of stored manifest ids (`man_…`).
pub const MANIFEST: &str = "man";
/// Prefix of login session ids (`ses_…`).
pub const SESSION: &str = "ses";
/// Prefix of listed registry ids (`reg_…`).
pub const REGISTRY: &str = "reg";
/// Prefix of registered Kubernetes cluster ids (`cls_…`).
pub const CLUSTER: &str = "cls";

/// Every prefix Slipway uses, for exhaustive checks and documentation.
pub const ALL_PREFIXES: &[&str] = &[
    PROJECT,
    BUILD,
    RUN,
    ARTIFACT,
    RELEASE,
    ENVIRONMENT,
    DEPLOYMENT,
    APPROVAL,
    PIPELINE_RUN,
    USER,
    TOKEN,
    SECRET,
    AUDIT,
    MANIFEST,
    SESSION,
    REGISTRY,
    CLUSTER,
];

/// POSIX regular expression matching a valid suffix, for database check constraints,
/// e.g. `CHECK (id ~ '^bld_[0-9a-hjkmnp-tv-z]{26}$')`.
///
/// It checks the alphabet and length only; the "first character is `0`–`7`" rule is
/// enforced by [`decode`] (ids reach the database only after being generated or decoded
/// here). A stricter constraint is `'^bld_[0-7][0-9a-hjkmnp-tv-z]{25}$'`.
pub const SQL_SUFFIX_PATTERN: &str = "[0-9a-hjkmnp-tv-z]{26}";

/// Length of the base32 suffix.
pub const SUFFIX_LEN: usize = 26;

/// Longest prefix the spec allows.
pub const MAX_PREFIX_LEN: usize = 63;

/// The Crockford base32 alphabet, lowercase, as the TypeID spec uses it.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Longest part of a bad input quoted back in an error message.
const MAX_QUOTED: usize = 80;

/// Why a string is not a valid TypeID (of the expected kind).
///
/// `expected` carries the prefix the caller asked for (via [`parse_expect`]), so messages
/// can say "expected a `bld_…` id".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The input was empty.
    #[error("{}: the id is empty", Expecting(.expected))]
    Empty {
        /// Prefix the caller expected, if any.
        expected: Option<String>,
    },
    /// The id is well formed but names another kind of record.
    #[error(
        "expected a `{expected}_…` id but `{input}` {}",
        FoundPrefix(.found)
    )]
    WrongPrefix {
        /// The input (shortened if very long).
        input: String,
        /// Prefix the caller expected.
        expected: String,
        /// Prefix actually present (empty when there is none).
        found: String,
    },
    /// The prefix is not a valid TypeID prefix.
    #[error("{}: `{input}` has an invalid prefix `{prefix}`: {reason}", Expecting(.expected))]
    BadPrefix {
        /// The input (shortened if very long).
        input: String,
        /// Prefix the caller expected, if any.
        expected: Option<String>,
        /// The offending prefix.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The part after the prefix is not 26 characters long.
    #[error(
        "{}: `{input}` has {len} characters after the prefix; an id ends in exactly 26 (was it cut off when copied?)",
        Expecting(.expected)
    )]
    WrongLength {
        /// The input (shortened if very long).
        input: String,
        /// Prefix the caller expected, if any.
        expected: Option<String>,
        /// Number of characters found after the separator.
        len: usize,
    },
    /// The suffix holds a character outside the alphabet.
    #[error(
        "{}: `{input}` has `{ch}` at position {position}; {}",
        Expecting(.expected),
        BadCharHint(*.ch)
    )]
    BadChar {
        /// The input (shortened if very long).
        input: String,
        /// Prefix the caller expected, if any.
        expected: Option<String>,
        /// The offending character.
        ch: char,
        /// 1-based character position in the whole input.
        position: usize,
    },
    /// The suffix encodes a number larger than 128 bits.
    #[error(
        "{}: `{input}` starts its suffix with `{first}`, but the first character must be 0-7 (the value would not fit in 128 bits)",
        Expecting(.expected)
    )]
    Overflow {
        /// The input (shortened if very long).
        input: String,
        /// Prefix the caller expected, if any.
        expected: Option<String>,
        /// The first suffix character.
        first: char,
    },
}

/// Renders the "what we were parsing" lead of an error message.
struct Expecting<'a>(&'a Option<String>);

impl fmt::Display for Expecting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) if !p.is_empty() => write!(f, "invalid `{p}_…` id"),
            _ => f.write_str("invalid id"),
        }
    }
}

/// Renders the found prefix of a [`IdError::WrongPrefix`].
struct FoundPrefix<'a>(&'a str);

impl fmt::Display for FoundPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("has no prefix")
        } else {
            write!(f, "is a `{}_…` id", self.0)
        }
    }
}

/// Explains why a character is not allowed in a suffix.
struct BadCharHint(char);

impl fmt::Display for BadCharHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_uppercase() {
            f.write_str("ids are all lowercase")
        } else if matches!(self.0, 'i' | 'l' | 'o' | 'u') {
            f.write_str("ids never contain i, l, o or u")
        } else {
            f.write_str("ids use only 0-9 and a-z without i, l, o, u")
        }
    }
}

/// Quotes a possibly huge input back to the user, shortened to a readable length.
fn quoted(s: &str) -> String {
    if s.chars().count() <= MAX_QUOTED {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX_QUOTED).collect();
        out.push('…');
        out
    }
}

/// Whether `prefix` is a valid TypeID prefix: 1–63 characters of `a-z` and `_`, starting
/// and ending with a letter. (The empty prefix is valid in the spec but never used here.)
pub fn is_valid_prefix(prefix: &str) -> bool {
    prefix_problem(prefix).is_none()
}

/// What is wrong with a non-empty prefix, if anything.
fn prefix_problem(prefix: &str) -> Option<&'static str> {
    let bytes = prefix.as_bytes();
    if bytes.is_empty() {
        return Some("the prefix is empty");
    }
    if bytes.len() > MAX_PREFIX_LEN {
        return Some("a prefix is at most 63 characters");
    }
    if !bytes.iter().all(|b| b.is_ascii_lowercase() || *b == b'_') {
        return Some("a prefix uses only lowercase letters a-z and `_`");
    }
    if !bytes[0].is_ascii_lowercase() || !bytes[bytes.len() - 1].is_ascii_lowercase() {
        return Some("a prefix starts and ends with a letter");
    }
    None
}

/// Encodes a UUID as the 26-character base32 suffix of a TypeID.
pub fn encode_suffix(uuid: Uuid) -> String {
    let value = uuid.as_u128();
    (0..SUFFIX_LEN)
        .map(|i| {
            let shift = 5 * (SUFFIX_LEN - 1 - i);
            // Truncation to the low five bits is the point; the index is always < 32.
            char::from(ALPHABET[((value >> shift) & 0x1f) as usize])
        })
        .collect()
}

/// Formats a TypeID: `<prefix>_<suffix>`, or the bare suffix when `prefix` is empty.
///
/// `prefix` should be one of the constants of this module; an invalid prefix is a
/// programming error (caught by a debug assertion) and would produce an id that
/// [`decode`] rejects.
pub fn encode(prefix: &str, uuid: Uuid) -> String {
    debug_assert!(
        prefix.is_empty() || is_valid_prefix(prefix),
        "invalid TypeID prefix {prefix:?}"
    );
    let suffix = encode_suffix(uuid);
    if prefix.is_empty() {
        suffix
    } else {
        let mut out = String::with_capacity(prefix.len() + 1 + SUFFIX_LEN);
        out.push_str(prefix);
        out.push('_');
        out.push_str(&suffix);
        out
    }
}

/// Value of one alphabet character, or `None` if it is not in the (lowercase) alphabet.
fn char_value(c: u8) -> Option<u8> {
    let v = match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'h' => c - b'a' + 10,
        b'j' | b'k' => c - b'j' + 18,
        b'm' | b'n' => c - b'm' + 20,
        b'p'..=b't' => c - b'p' + 22,
        b'v'..=b'z' => c - b'v' + 27,
        _ => return None,
    };
    Some(v)
}

/// Decodes the suffix `suffix`, which starts at byte `offset` of `input` (for positions in
/// errors).
fn decode_suffix_in(
    input: &str,
    suffix: &str,
    offset: usize,
    expected: &Option<String>,
) -> Result<Uuid, IdError> {
    let len = suffix.chars().count();
    if len != SUFFIX_LEN {
        // Point at a bad character first if there is one: it is the more specific problem.
        if let Some(err) = first_bad_char(input, suffix, offset, expected) {
            return Err(err);
        }
        return Err(IdError::WrongLength {
            input: quoted(input),
            expected: expected.clone(),
            len,
        });
    }
    if let Some(err) = first_bad_char(input, suffix, offset, expected) {
        return Err(err);
    }
    let bytes = suffix.as_bytes();
    if bytes[0] > b'7' {
        return Err(IdError::Overflow {
            input: quoted(input),
            expected: expected.clone(),
            first: char::from(bytes[0]),
        });
    }
    let mut value: u128 = 0;
    for &b in bytes {
        // All characters were checked above; `unwrap_or(0)` is unreachable in practice.
        value = (value << 5) | u128::from(char_value(b).unwrap_or(0));
    }
    Ok(Uuid::from_u128(value))
}

/// The first character of `suffix` outside the alphabet, as an error.
fn first_bad_char(
    input: &str,
    suffix: &str,
    offset: usize,
    expected: &Option<String>,
) -> Option<IdError> {
    let before = input[..offset].chars().count();
    suffix.chars().enumerate().find_map(|(i, ch)| {
        let ok = ch.is_ascii() && char_value(ch as u8).is_some();
        (!ok).then(|| IdError::BadChar {
            input: quoted(input),
            expected: expected.clone(),
            ch,
            position: before + i + 1,
        })
    })
}

/// Decodes a bare 26-character suffix (no prefix) into its UUID.
pub fn decode_suffix(suffix: &str) -> Result<Uuid, IdError> {
    if suffix.is_empty() {
        return Err(IdError::Empty { expected: None });
    }
    decode_suffix_in(suffix, suffix, 0, &None)
}

/// Shared implementation of [`decode`] and [`parse_expect`].
fn decode_with(s: &str, expected: Option<&str>) -> Result<(String, Uuid), IdError> {
    let expected_owned = expected.map(str::to_owned);
    if s.is_empty() {
        return Err(IdError::Empty {
            expected: expected_owned,
        });
    }
    let (prefix, suffix, offset) = match s.rfind('_') {
        Some(i) => (&s[..i], &s[i + 1..], i + 1),
        None => ("", s, 0),
    };
    if let Some(exp) = expected {
        if prefix != exp {
            // A missing or different prefix is the most useful thing to report, unless the
            // prefix itself is malformed (then say what is wrong with it).
            let malformed = !prefix.is_empty() && prefix_problem(prefix).is_some();
            if !malformed {
                return Err(IdError::WrongPrefix {
                    input: quoted(s),
                    expected: exp.to_owned(),
                    found: quoted(prefix),
                });
            }
        }
    }
    if offset > 0 {
        if let Some(reason) = prefix_problem(prefix) {
            return Err(IdError::BadPrefix {
                input: quoted(s),
                expected: expected_owned,
                prefix: quoted(prefix),
                reason,
            });
        }
    }
    let uuid = decode_suffix_in(s, suffix, offset, &expected_owned)?;
    Ok((prefix.to_owned(), uuid))
}

/// Parses any TypeID into its prefix (empty if it has none) and UUID.
pub fn decode(s: &str) -> Result<(String, Uuid), IdError> {
    decode_with(s, None)
}

/// Parses a TypeID that must carry `prefix` (e.g. [`BUILD`]) and returns its UUID.
///
/// Errors name the expected prefix and what was wrong: a different or missing prefix,
/// the wrong length, a character outside the alphabet, or a value over 128 bits.
pub fn parse_expect(prefix: &str, s: &str) -> Result<Uuid, IdError> {
    decode_with(s, Some(prefix)).map(|(_, uuid)| uuid)
}

/// Creates a fresh id with the given prefix from a UUIDv7 (time-ordered).
///
/// Only native code creates ids, so this needs the `gen` feature.
#[cfg(feature = "gen")]
pub fn new_id(prefix: &str) -> String {
    encode(prefix, Uuid::now_v7())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_UUID: &str = "0188bac7-4afa-78aa-bc3b-bd1eef28d881";
    const SPEC_SUFFIX: &str = "01h2xcejqtf2nbrexx3vqjhp41";

    fn uuid(s: &str) -> Uuid {
        Uuid::parse_str(s).expect("test uuid")
    }

    #[test]
    fn the_nil_uuid_encodes_to_all_zeros() {
        assert_eq!(encode_suffix(Uuid::nil()), "00000000000000000000000000");
        assert_eq!(encode(BUILD, Uuid::nil()), "bld_00000000000000000000000000");
        assert_eq!(
            decode("00000000000000000000000000").expect("decodes"),
            (String::new(), Uuid::nil())
        );
    }

    #[test]
    fn the_spec_vector_encodes_and_decodes() {
        assert_eq!(
            encode("prefix", uuid(SPEC_UUID)),
            format!("prefix_{SPEC_SUFFIX}")
        );
        assert_eq!(encode("", uuid(SPEC_UUID)), SPEC_SUFFIX);
        let (prefix, u) = decode(&format!("prefix_{SPEC_SUFFIX}")).expect("decodes");
        assert_eq!(prefix, "prefix");
        assert_eq!(u, uuid(SPEC_UUID));
    }

    #[test]
    fn the_maximum_uuid_round_trips_and_starts_with_seven() {
        let max = Uuid::max();
        let id = encode(RELEASE, max);
        assert_eq!(id, "rel_7zzzzzzzzzzzzzzzzzzzzzzzzz");
        assert_eq!(parse_expect(RELEASE, &id), Ok(max));
    }

    #[test]
    fn ids_round_trip_for_every_prefix() {
        let samples = [
            Uuid::nil(),
            Uuid::max(),
            uuid(SPEC_UUID),
            Uuid::from_u128(1),
            Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
            Uuid::from_u128(1u128 << 127),
        ];
        for prefix in ALL_PREFIXES {
            assert!(is_valid_prefix(prefix), "{prefix}");
            for u in samples {
                let id = encode(prefix, u);
                assert_eq!(id.len(), prefix.len() + 1 + SUFFIX_LEN);
                assert_eq!(decode(&id), Ok(((*prefix).to_owned(), u)));
                assert_eq!(parse_expect(prefix, &id), Ok(u));
            }
        }
    }

    #[test]
    fn prefixes_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for p in ALL_PREFIXES {
            assert!(seen.insert(*p), "duplicate prefix {p}");
        }
    }

    #[test]
    fn a_prefix_containing_underscores_splits_at_the_last_one() {
        let id = encode("build_run", uuid(SPEC_UUID));
        assert_eq!(decode(&id), Ok(("build_run".to_owned(), uuid(SPEC_UUID))));
    }

    #[test]
    fn uppercase_suffixes_are_rejected_with_a_lowercase_hint() {
        let err = decode(&format!("bld_{}", SPEC_SUFFIX.to_uppercase())).unwrap_err();
        assert!(
            matches!(
                err,
                IdError::BadChar {
                    ch: 'H',
                    position: 7,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("lowercase"), "{err}");
    }

    #[test]
    fn uppercase_prefixes_are_rejected() {
        let err = decode(&format!("BLD_{SPEC_SUFFIX}")).unwrap_err();
        assert!(matches!(err, IdError::BadPrefix { .. }), "{err:?}");
    }

    #[test]
    fn characters_outside_the_alphabet_are_rejected() {
        for bad in ['i', 'l', 'o', 'u', '-', 'é', ' '] {
            let mut suffix: Vec<char> = SPEC_SUFFIX.chars().collect();
            suffix[5] = bad;
            let s: String = suffix.into_iter().collect();
            let err = parse_expect(BUILD, &format!("bld_{s}")).unwrap_err();
            match &err {
                IdError::BadChar {
                    ch,
                    position,
                    expected,
                    ..
                } => {
                    assert_eq!(*ch, bad);
                    assert_eq!(*position, 10);
                    assert_eq!(expected.as_deref(), Some("bld"));
                }
                other => panic!("unexpected {other:?}"),
            }
            assert!(err.to_string().starts_with("invalid `bld_…` id"), "{err}");
        }
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        for s in [&SPEC_SUFFIX[..25], "0", &format!("{SPEC_SUFFIX}0")] {
            let err = parse_expect(RUN, &format!("run_{s}")).unwrap_err();
            assert_eq!(
                err,
                IdError::WrongLength {
                    input: format!("run_{s}"),
                    expected: Some("run".into()),
                    len: s.len()
                }
            );
            assert!(err.to_string().contains("exactly 26"), "{err}");
        }
        assert!(matches!(
            decode("bld_"),
            Err(IdError::WrongLength { len: 0, .. })
        ));
    }

    #[test]
    fn a_first_character_above_seven_is_an_overflow() {
        let err = decode("bld_8zzzzzzzzzzzzzzzzzzzzzzzzz").unwrap_err();
        assert!(
            matches!(err, IdError::Overflow { first: '8', .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("0-7"));
        let err = decode("zzzzzzzzzzzzzzzzzzzzzzzzzz").unwrap_err();
        assert!(matches!(err, IdError::Overflow { first: 'z', .. }));
    }

    #[test]
    fn the_wrong_prefix_names_both_prefixes() {
        let err = parse_expect(BUILD, &format!("rel_{SPEC_SUFFIX}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("expected a `bld_…` id but `rel_{SPEC_SUFFIX}` is a `rel_…` id")
        );
        let err = parse_expect(BUILD, SPEC_SUFFIX).unwrap_err();
        assert!(err.to_string().ends_with("has no prefix"), "{err}");
    }

    #[test]
    fn malformed_prefixes_and_empty_input_are_rejected() {
        assert!(matches!(decode(""), Err(IdError::Empty { expected: None })));
        assert!(matches!(
            parse_expect(USER, ""),
            Err(IdError::Empty { expected: Some(_) })
        ));
        for bad in ["_", "_a_", "b1d_", "bld__", "a__"] {
            let err = decode(&format!("{bad}{SPEC_SUFFIX}")).unwrap_err();
            assert!(matches!(err, IdError::BadPrefix { .. }), "{bad}: {err:?}");
        }
        let long = "a".repeat(64);
        assert!(decode(&format!("{long}_{SPEC_SUFFIX}")).is_err());
        assert!(decode(&format!("{}_{SPEC_SUFFIX}", "a".repeat(63))).is_ok());
    }

    #[test]
    fn very_long_inputs_are_shortened_in_messages() {
        let huge = "x".repeat(10_000);
        let err = decode(&huge).unwrap_err();
        assert!(err.to_string().len() < 400);
    }

    #[test]
    fn the_sql_pattern_accepts_exactly_the_alphabet() {
        // The pattern's character class must list the same 32 characters as ALPHABET.
        let class = "0-9a-hjkmnp-tv-z";
        let mut expanded = String::new();
        let b = class.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if i + 2 < b.len() && b[i + 1] == b'-' {
                for c in b[i]..=b[i + 2] {
                    expanded.push(char::from(c));
                }
                i += 3;
            } else {
                expanded.push(char::from(b[i]));
                i += 1;
            }
        }
        assert_eq!(expanded.as_bytes(), ALPHABET);
        assert_eq!(SQL_SUFFIX_PATTERN, format!("[{class}]{{26}}"));
    }

    #[cfg(feature = "gen")]
    #[test]
    fn new_ids_are_valid_and_sort_by_creation() {
        let a = new_id(DEPLOYMENT);
        let b = new_id(DEPLOYMENT);
        assert!(parse_expect(DEPLOYMENT, &a).is_ok());
        assert!(a < b, "{a} !< {b}");
    }
}

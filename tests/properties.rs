//! Properties of the pure parts over generated input: the line parser and
//! the table parser never panic, never read past the line, stay bounded,
//! and a parsed table prints back to an equal table. The checks are the
//! fuzz targets' own (`common/invariants.rs`); what is here is how the
//! input is generated.

#[path = "common/invariants.rs"]
mod invariants;

use invariants::{check_line_parser, check_table};
use proptest::prelude::*;
use tcpmuxd::protocol::{self, Step};

/// Byte strings that look like requests often enough to reach every rule.
fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => proptest::sample::select(b"abcHELPtcpmux-._+/".to_vec()),
        2 => Just(b'\r'),
        2 => Just(b'\n'),
        1 => any::<u8>(),
    ];
    prop_oneof![
        proptest::collection::vec(byte, 0..300),
        proptest::collection::vec(any::<u8>(), 0..600),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_line_parser_is_bounded_and_stops_at_the_line(bytes in request_bytes()) {
        check_line_parser(&bytes);
    }

    #[test]
    fn a_good_line_is_read_to_its_lf_whatever_follows(
        name in "[!-~]{1,256}",
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = format!("{name}\r\n").into_bytes();
        let line = bytes.len();
        bytes.extend_from_slice(&tail);
        check_line_parser(&bytes);
        let (step, consumed) = protocol::parse(&bytes);
        prop_assert_eq!(consumed, line);
        prop_assert!(matches!(step, Step::Done(_)));
    }

    #[test]
    fn the_table_parser_never_panics(text in "[ -~\t\n#+:=,/]{0,400}") {
        check_table(&text);
    }
}

/// One service line of a valid table, from its parts.
fn service_line() -> impl Strategy<Value = String> {
    let name = "[a-zA-Z0-9][a-zA-Z0-9._-]{0,15}";
    let user = proptest::sample::select(vec!["nobody", "daemon", "root", "nobody:nogroup", "x:y"]);
    let option = prop_oneof![
        Just("hidden".to_owned()),
        (0u8..=32, any::<u32>()).prop_map(|(len, ip)| {
            let net = if len == 0 {
                0
            } else {
                ip & (u32::MAX << (32 - len))
            };
            format!("allow={}/{len}", std::net::Ipv4Addr::from(net))
        }),
        (0u8..=128, any::<u128>()).prop_map(|(len, ip)| {
            let net = if len == 0 {
                0
            } else {
                ip & (u128::MAX << (128 - len))
            };
            format!("deny={}/{len},::1", std::net::Ipv6Addr::from(net))
        }),
    ];
    // Words that read as options or comments, which an argument may be
    // only after "--".
    const MISLEADING: [&str; 5] = ["hidden", "ALLOW=x", "deny=::1", "#", "#c"];
    let arg = prop_oneof![
        3 => "[a-z0-9=-]{1,8}",
        1 => proptest::sample::select(MISLEADING.to_vec()).prop_map(str::to_owned),
    ];
    let args = proptest::collection::vec(arg, 0..3);
    (
        any::<bool>(),
        name,
        user,
        proptest::collection::vec(option, 0..3),
        any::<bool>(),
        "/[a-z]{1,8}/[a-z]{1,8}",
        args,
    )
        .prop_map(|(plus, name, user, options, dashes, program, args)| {
            let plus = if plus { "+" } else { "" };
            let mut line = format!("{plus}{name} {user}");
            for option in options {
                line = format!("{line} {option}");
            }
            // Sometimes where it is not needed, which the printer drops.
            if dashes || args.iter().any(|a| MISLEADING.contains(&a.as_str())) {
                line = format!("{line} --");
            }
            format!("{line} {program} {}", args.join(" "))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn a_parsed_table_prints_back_to_an_equal_table(lines in proptest::collection::vec(service_line(), 0..12)) {
        // Generated names may clash in case; such a table is rightly
        // refused, and the refusal is checked instead.
        check_table(&lines.join("\n"));
    }
}

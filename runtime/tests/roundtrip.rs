//! Property: parse -> serialize -> parse is the identity on generated
//! configurations (the real fixtures are covered in real_headers.rs), and
//! the serde form (API, CRD) round-trips the same way.

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use spaceport_runtime::config::*;

fn text() -> impl Strategy<Value = String> {
    // Any printable text, including quotes, colons, '#' and emoji; the parser
    // trims values, so generated ones are trimmed and non-empty.
    "\\PC{1,24}"
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn checked<T: std::fmt::Debug>(
    pattern: &'static str,
    parse: fn(&str) -> Result<T, Invalid>,
) -> impl Strategy<Value = T> {
    pattern.prop_filter_map("valid", move |s| parse(&s).ok())
}

fn extra_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        text().prop_map(serde_json::Value::from),
        any::<i32>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        vec(text(), 0..3).prop_map(serde_json::Value::from),
    ]
}

fn config() -> impl Strategy<Value = SpaceConfig> {
    let sdk = prop_oneof![
        Just(Sdk::Gradio),
        Just(Sdk::Streamlit),
        Just(Sdk::Docker),
        Just(Sdk::Static)
    ];
    let card = (
        option::of(text()),
        option::of(text()),
        option::of(checked("[a-z]{1,8}", CardColor::parse)),
        option::of(checked("[a-z]{1,8}", CardColor::parse)),
        option::of(text()),
        vec(text(), 0..4),
        option::of(text()),
        option::of(any::<bool>()),
        option::of(text()),
    );
    let run = (
        option::of(checked(
            "[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}",
            SdkVersion::parse,
        )),
        option::of(checked("3(\\.[0-9]{1,2}){0,2}", PythonVersion::parse)),
        option::of(checked(
            "([a-z_]{1,6}/){0,2}[a-z]{1,8}\\.(py|html)",
            RepoPath::parse,
        )),
        option::of(1u16..=65535),
        option::of(text()),
        option::of(checked("/[a-z0-9/_-]{0,12}", BasePath::parse)),
        option::of(any::<bool>()),
        option::of(prop_oneof![
            Just(HeaderStyle::Mini),
            Just(HeaderStyle::Default)
        ]),
        option::of(checked("[1-9][0-9]{0,2}[smhd]", DurationSpec::parse)),
    );
    let hub = (
        vec(checked("([a-z]{1,6}/)?[a-z0-9]{1,8}", RepoId::parse), 0..3),
        vec(checked("[a-z]{1,6}/[a-z0-9]{1,8}", RepoId::parse), 0..3),
        vec(
            checked(
                "[a-z]{1,6}/[a-z0-9]{1,8}( [a-z]{1,5}\\.bin(,[a-z]{1,5}\\.json)?( [0-9a-f]{7})?)?",
                PreloadEntry::parse,
            ),
            0..3,
        ),
        option::of(checked("[a-z0-9]{1,6}(-[a-z0-9]{1,6})?", |s| {
            Ok::<_, Invalid>(s.to_owned())
        })),
        option::of(prop_oneof![
            Just(StorageTier::Small),
            Just(StorageTier::Medium),
            Just(StorageTier::Large)
        ]),
    );
    let access = (
        option::of(any::<bool>()),
        vec("[a-z-]{1,12}", 0..3),
        option::of(1u32..=43_200),
        vec("[a-z0-9-]{1,10}", 0..2),
        option::of(any::<bool>()),
        (
            option::of(prop_oneof![
                Just(EmbedderPolicy::RequireCorp),
                Just(EmbedderPolicy::Credentialless)
            ]),
            option::of(prop_oneof![
                Just(OpenerPolicy::SameOrigin),
                Just(OpenerPolicy::UnsafeNone)
            ]),
            option::of(prop_oneof![
                Just(ResourcePolicy::CrossOrigin),
                Just(ResourcePolicy::SameSite)
            ]),
        ),
        btree_map("x_[a-z]{1,8}", extra_value(), 0..3),
    );
    (sdk, card, run, hub, access).prop_map(|(sdk, card, run, hub, access)| {
        let mut c = SpaceConfig::new(sdk);
        (
            c.title,
            c.emoji,
            c.color_from,
            c.color_to,
            c.short_description,
            c.tags,
            c.thumbnail,
            c.pinned,
            c.license,
        ) = card;
        let app_build_command;
        (
            c.sdk_version,
            c.python_version,
            c.app_file,
            c.app_port,
            app_build_command,
            c.base_path,
            c.full_width,
            c.header,
            c.startup_duration_timeout,
        ) = run;
        c.app_build_command = app_build_command;
        (
            c.models,
            c.datasets,
            c.preload_from_hub,
            c.suggested_hardware,
            c.suggested_storage,
        ) = hub;
        let headers;
        (
            c.hf_oauth,
            c.hf_oauth_scopes,
            c.hf_oauth_expiration_minutes,
            c.hf_oauth_authorized_org,
            c.disable_embedding,
            headers,
            c.extra,
        ) = access;
        (
            c.custom_headers.embedder_policy,
            c.custom_headers.opener_policy,
            c.custom_headers.resource_policy,
        ) = headers;
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_serialize_parse_is_the_identity(c in config()) {
        let yaml = emit::to_front_matter(&c);
        let parsed = parse_readme(yaml.as_bytes());
        let errors: Vec<String> = parsed.errors().map(|d| d.display("README.md").to_string()).collect();
        prop_assert!(errors.is_empty(), "errors {:?} for:\n{}", errors, yaml);
        let again = parsed.config.expect("valid");
        prop_assert_eq!(&again, &c, "changed in a round trip:\n{}", yaml);
        // Emitting is stable too.
        prop_assert_eq!(emit::to_front_matter(&again), yaml);
    }

    #[test]
    fn the_serde_form_round_trips(c in config()) {
        let json = serde_json::to_string(&c).unwrap();
        let back: SpaceConfig = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, c);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_have_positions(bytes in vec(any::<u8>(), 0..512)) {
        let mut input = b"---\n".to_vec();
        input.extend(bytes);
        let parsed = parse_readme(&input);
        for d in &parsed.diagnostics {
            prop_assert!(d.position.line >= 1 && d.position.column >= 1);
        }
        prop_assert_eq!(parsed.config.is_some(), parsed.errors().next().is_none());
    }
}

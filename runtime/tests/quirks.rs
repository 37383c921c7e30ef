//! What real READMEs contain and Hugging Face accepts, read the way HF reads it.

use spaceport_runtime::config::{Code, Sdk, parse_readme};

fn config(text: &[u8]) -> spaceport_runtime::config::SpaceConfig {
    let parsed = parse_readme(text);
    let errors: Vec<_> = parsed.errors().collect();
    assert!(errors.is_empty(), "unexpected errors: {errors:?}");
    parsed.config.expect("valid config")
}

#[test]
fn crlf_bom_and_no_newline_after_the_closing_fence() {
    let c = config(b"\xEF\xBB\xBF---\r\ntitle: Demo\r\nsdk: docker\r\napp_port: 8080\r\n---");
    assert_eq!(c.sdk, Sdk::Docker);
    assert_eq!(c.app_port, Some(8080));
    assert_eq!(c.title.as_deref(), Some("Demo"));
}

#[test]
fn unquoted_python_version_three_ten_means_three_ten() {
    let c = config(b"---\nsdk: gradio\npython_version: 3.10\n---\n");
    assert_eq!(c.effective_python_version().as_str(), "3.10");
}

#[test]
fn quoted_numbers_are_numbers() {
    let c = config(b"---\nsdk: docker\napp_port: \"7860\"\nhf_oauth: true\nhf_oauth_expiration_minutes: '600'\n---\n");
    assert_eq!(c.app_port, Some(7860));
    assert_eq!(c.hf_oauth_expiration_minutes, Some(600));
}

#[test]
fn numbers_are_text_where_text_is_expected() {
    let c = config(b"---\ntitle: 2048\nsdk: gradio\nsdk_version: 4.0\ntags: [1, true]\n---\n");
    assert_eq!(c.title.as_deref(), Some("2048"));
    assert_eq!(c.sdk_version.unwrap().as_str(), "4.0");
    assert_eq!(c.tags, ["1", "true"]);
}

#[test]
fn empty_values_mean_not_set() {
    let c = config(b"---\ntitle:\nemoji: \nsdk: static\ntags:\nmodels: []\n---\n");
    assert_eq!(c.title, None);
    assert_eq!(c.emoji, None);
    assert!(c.tags.is_empty() && c.models.is_empty());
    assert_eq!(c.effective_app_file().as_str(), "index.html");
}

#[test]
fn comments_and_emoji_words_are_fine() {
    let c = config("---\n# a comment\ntitle: Chat 🤖 # trailing comment\nemoji: 🧑‍🚀\nsdk: gradio # the sdk\n---\n".as_bytes());
    assert_eq!(c.title.as_deref(), Some("Chat 🤖"));
    assert_eq!(c.emoji.as_deref(), Some("🧑‍🚀"));
}

#[test]
fn unknown_keys_are_kept_and_warned_about() {
    let parsed = parse_readme(b"---\nsdk: gradio\nduplicated_from: a/b\ncolorfrom: red\n---\n");
    let c = parsed.config.clone().expect("still valid");
    assert_eq!(c.extra["duplicated_from"], serde_json::json!("a/b"));
    let warnings: Vec<_> = parsed.warnings().collect();
    assert_eq!(warnings.len(), 2);
    assert!(warnings.iter().all(|w| w.code == Code::UnknownKey));
    assert_eq!(
        warnings[1].hint.as_deref(),
        Some("did you mean 'colorFrom'?")
    );
}

#[test]
fn single_strings_stand_for_lists() {
    let c = config(b"---\nsdk: gradio\nmodels: openai/whisper-tiny\nhf_oauth: true\nhf_oauth_authorized_org: my-org\n---\n");
    assert_eq!(c.models[0].as_str(), "openai/whisper-tiny");
    assert_eq!(c.hf_oauth_authorized_org, ["my-org"]);
}

#[test]
fn yaml_one_one_booleans_are_read() {
    let c = config(b"---\nsdk: gradio\npinned: yes\ndisable_embedding: False\n---\n");
    assert_eq!(c.pinned, Some(true));
    assert_eq!(c.disable_embedding, Some(false));
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let parsed = parse_readme(b"---\nsdk: gradoi\napp_port: x\nheader: big\n---\n");
    assert_eq!(parsed.errors().count(), 3);
}

#[test]
fn preload_entries_with_files_and_revisions() {
    let c = config(
        b"---\nsdk: gradio\npreload_from_hub:\n  - openai/whisper-large-v3\n  - org/m config.json,model.safetensors 0123abc\n  - repo_id: org/other\n    filename: a.gguf\n---\n",
    );
    assert_eq!(c.preload_from_hub.len(), 3);
    assert_eq!(
        c.preload_from_hub[1].files,
        ["config.json", "model.safetensors"]
    );
    assert_eq!(
        c.preload_from_hub[1].revision.as_ref().unwrap().as_str(),
        "0123abc"
    );
    assert_eq!(c.preload_from_hub[2].files, ["a.gguf"]);
}

#[test]
fn keys_that_do_nothing_for_the_sdk_are_warned_about() {
    let parsed = parse_readme(b"---\nsdk: gradio\napp_port: 8080\n---\n");
    assert!(parsed.is_valid());
    assert!(parsed.warnings().any(|w| w.code == Code::IgnoredKey));
}

#[test]
fn keys_with_control_characters_or_of_absurd_length_are_refused() {
    let long = format!("---\nsdk: gradio\n{}: 1\n---\n", "k".repeat(200));
    assert_eq!(
        parse_readme(long.as_bytes()).errors().next().unwrap().code,
        Code::InvalidType
    );
    let ctl = parse_readme(b"---\nsdk: gradio\n\"a\\u0003b\": 1\n---\n");
    assert_eq!(ctl.errors().next().unwrap().code, Code::InvalidType);
}

#[test]
fn unknown_values_with_long_nested_keys_round_trip() {
    let key = "\\u0003".repeat(200);
    let yaml = format!("---\nsdk: gradio\nx_meta:\n  ? \"{key}\"\n  : [1, {{\"a b\": c}}]\n---\n");
    let parsed = parse_readme(yaml.as_bytes());
    let c = parsed.config.expect("valid");
    let again = parse_readme(spaceport_runtime::config::emit::to_front_matter(&c).as_bytes());
    assert_eq!(again.config, Some(c));
}

#[test]
fn unknown_mappings_with_keys_long_once_escaped_round_trip() {
    let key = "\\u001e".repeat(168);
    let yaml = format!("---\nsdk: static\nx_headers:\n  \"a{key}\": 1\n  b: 2\n---\n");
    let c = parse_readme(yaml.as_bytes()).config.expect("valid");
    let again = parse_readme(spaceport_runtime::config::emit::to_front_matter(&c).as_bytes());
    assert_eq!(again.config, Some(c));
}

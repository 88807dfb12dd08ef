//! veneur-emit's tag strings: `key:value` items separated by commas.

use std::collections::BTreeMap;

/// Parses one tag string into `tags`, later items replacing earlier ones with the same key.
///
/// Items are separated by commas; empty items are skipped; each item is split at its first
/// `:` into key and value, and an item without a colon is a key with the empty value. So
/// `tag1,tag2,tag3,,tag4:value` gives `tag1`, `tag2` and `tag3` with `""` and `tag4` with
/// `value`; `url:http://x` gives `url` with `http://x`.
pub(crate) fn parse_into(text: &str, tags: &mut BTreeMap<String, String>) {
    for item in text.split(',').filter(|item| !item.is_empty()) {
        let (key, value) = item.split_once(':').unwrap_or((item, ""));
        tags.insert(key.to_owned(), value.to_owned());
    }
}

/// Parses every tag string in order into one map; see [`parse_into`].
pub(crate) fn parse_all<'a>(texts: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for text in texts {
        parse_into(text, &mut tags);
    }
    tags
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        ssf_proto::sample::tags(pairs.iter().copied())
    }

    #[test]
    fn veneur_emit_example() {
        assert_eq!(
            parse_all(["tag1,tag2,tag3,,tag4:value"]),
            map(&[("tag1", ""), ("tag2", ""), ("tag3", ""), ("tag4", "value")])
        );
    }

    #[test]
    fn splits_at_the_first_colon() {
        assert_eq!(
            parse_all(["url:http://x:80/a"]),
            map(&[("url", "http://x:80/a")])
        );
        assert_eq!(parse_all([":v"]), map(&[("", "v")]));
        assert_eq!(parse_all(["k:"]), map(&[("k", "")]));
    }

    #[test]
    fn empty_strings_and_commas_give_nothing() {
        assert!(parse_all([""]).is_empty());
        assert!(parse_all([",,,"]).is_empty());
        assert!(parse_all(std::iter::empty()).is_empty());
    }

    #[test]
    fn later_items_and_strings_win() {
        assert_eq!(
            parse_all(["a:1,b:2,a:3", "b:4"]),
            map(&[("a", "3"), ("b", "4")])
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_keys_hold_no_comma(text in ".{0,64}") {
            for (key, value) in parse_all([text.as_str()]) {
                prop_assert!(!key.contains(','));
                prop_assert!(!key.contains(':'));
                prop_assert!(!value.contains(','));
            }
        }

        #[test]
        fn rendered_maps_parse_back(
            tags in prop::collection::btree_map("[a-z0-9_.]{1,8}", "[a-z0-9_.:/]{0,8}", 0..6)
        ) {
            let text: Vec<String> = tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            prop_assert_eq!(parse_all([text.join(",").as_str()]), tags);
        }
    }
}

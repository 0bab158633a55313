//! What the fuzz targets check beyond "no panic", shared by the configuration targets.
//!
//! The rule: an error message about a configuration never quotes a value of it. A value may be a
//! secret (a private key pasted under the wrong key, a token given where a number was expected),
//! and error messages end up in logs. Keys are not values: messages name them on purpose.

use std::collections::BTreeSet;

/// Values up to this long are not checked: `true`, `8080` or a short name may well appear in a
/// message on their own. Secrets are longer.
pub const MAX_UNCHECKED_LEN: usize = 12;

/// Panics if the error message `message_of(text)` quotes a value of the TOML document `text` that
/// is longer than [`MAX_UNCHECKED_LEN`].
///
/// A value counts as quoted when the message contains it and, once the value is changed in the
/// input, contains the changed value instead. A value that stays in the message is text of the
/// message itself (a coincidence), not the input's.
pub fn assert_no_value_quoted(text: &str, message_of: impl Fn(&str) -> Option<String>) {
    let Some(message) = message_of(text) else { return };
    for value in candidate_values(text) {
        let changed = change(&value);
        if changed == value || !text.contains(value.as_str()) {
            continue;
        }
        let Some(changed_message) = message_of(&text.replace(value.as_str(), &changed)) else { continue };
        for (shown, changed_shown) in
            [(value.clone(), changed.clone()), (value.escape_debug().to_string(), changed.escape_debug().to_string())]
        {
            let tracks_the_input = message.contains(&shown)
                && changed_message.contains(&changed_shown)
                && !changed_message.contains(&shown);
            assert!(!tracks_the_input, "the error message quotes the value {value:?} of the input: {message}");
        }
    }
}

/// Panics if `message` spans more than one line (each error is one line of a log or a report).
pub fn assert_one_line(message: &str) {
    assert!(!message.contains(['\n', '\r']), "the error message spans lines: {message:?}");
}

/// The values of `text` longer than [`MAX_UNCHECKED_LEN`] that are not part of a key. When `text`
/// is not TOML, the right-hand sides of its lines and the lines without `=` stand for the values.
fn candidate_values(text: &str) -> Vec<String> {
    let mut keys = BTreeSet::new();
    let mut values = BTreeSet::new();
    match text.parse::<toml::Table>() {
        Ok(table) => collect_table(&table, &mut keys, &mut values),
        Err(_) => {
            for line in text.lines() {
                match line.split_once('=') {
                    Some((key, value)) => {
                        keys.insert(key.trim().to_owned());
                        values.insert(value.trim().to_owned());
                        values.insert(value.trim_matches(|c: char| c.is_whitespace() || "\"',[]{}".contains(c)).into());
                    }
                    None if line.trim_start().starts_with('[') => {
                        keys.insert(line.trim().to_owned());
                    }
                    None => {
                        values.insert(line.trim().to_owned());
                        values.insert(line.trim_matches(|c: char| c.is_whitespace() || "\"',[]{}".contains(c)).into());
                    }
                }
            }
        }
    }
    values
        .into_iter()
        .filter(|value| {
            value.chars().count() > MAX_UNCHECKED_LEN && !keys.iter().any(|key| key.contains(value.as_str()))
        })
        .collect()
}

fn collect_table(table: &toml::Table, keys: &mut BTreeSet<String>, values: &mut BTreeSet<String>) {
    for (key, value) in table {
        keys.insert(key.clone());
        collect_value(value, keys, values);
    }
}

fn collect_value(value: &toml::Value, keys: &mut BTreeSet<String>, values: &mut BTreeSet<String>) {
    match value {
        toml::Value::String(s) => {
            values.insert(s.clone());
        }
        toml::Value::Integer(i) => {
            values.insert(i.to_string());
        }
        toml::Value::Float(f) => {
            values.insert(f.to_string());
        }
        toml::Value::Boolean(_) => {}
        toml::Value::Datetime(d) => {
            values.insert(d.to_string());
        }
        toml::Value::Array(items) => items.iter().for_each(|item| collect_value(item, keys, values)),
        toml::Value::Table(table) => collect_table(table, keys, values),
    }
}

/// `value` with each letter and non-zero digit replaced by the next one: the same kind of token
/// (a number stays a number with no leading zero), another value.
fn change(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            'z' => 'a',
            'Z' => 'A',
            '9' => '1',
            'a'..='y' | 'A'..='Y' | '1'..='8' => char::from(c as u8 + 1),
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_value_is_caught_and_a_named_key_is_not() {
        let text = "private_key = \"hunter2-secret-value\"\nsome_long_key_name = 1\n";
        let quoting = |t: &str| Some(format!("bad: {}", t.lines().next().unwrap()));
        assert!(std::panic::catch_unwind(|| assert_no_value_quoted(text, quoting)).is_err());
        let naming = |_: &str| Some("unknown field `some_long_key_name`".to_owned());
        assert_no_value_quoted(text, naming);
        let coincidence = |_: &str| Some("hunter2-secret-value is in every message".to_owned());
        assert_no_value_quoted(text, coincidence);
    }
}

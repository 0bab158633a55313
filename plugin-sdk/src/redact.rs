//! Error messages about configuration that never quote a value.
//!
//! A configuration holds secrets (a private key, a token), and its error messages end up in logs.
//! toml's `Display` quotes the offending line, and serde's messages quote the offending value
//! (`invalid type: string "...", expected u64`). So messages are built from the key and the
//! message with its value cut out, and the host's config file follows the same rule with this
//! same function.

/// serde's message with the value it quotes left out: `invalid type: string, expected u64`,
/// `unknown variant, expected one of ...`. Other messages are kept as they are.
pub fn without_value(message: &str) -> String {
    let expected_at = message.rfind(", expected ").unwrap_or(message.len());
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if message.starts_with(prefix) && expected_at >= prefix.len() {
            let between = &message[prefix.len()..expected_at];
            let kind = between.find(['"', '`', '\'']).map_or(between, |quote| &between[..quote]).trim();
            let head = if kind.is_empty() { prefix.trim_end().to_owned() } else { format!("{prefix}{kind}") };
            return format!("{head}{}", &message[expected_at..]);
        }
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_out_of_serde_messages() {
        assert_eq!(
            without_value("invalid type: string \"a, expected b\", expected u64"),
            "invalid type: string, expected u64"
        );
        assert_eq!(
            without_value("unknown variant `hunter2`, expected `process` or `in-process`"),
            "unknown variant, expected `process` or `in-process`"
        );
        assert_eq!(without_value("invalid value: integer `-1`, expected u64"), "invalid value: integer, expected u64");
        assert_eq!(
            without_value("unknown field `lisen`, expected `listen`"),
            "unknown field `lisen`, expected `listen`"
        );
    }
}

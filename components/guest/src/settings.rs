//! Settings arrive as environment variables (the host passes the manifest's `[settings]`
//! upper-cased; under `wasmtime serve` they are `--env` flags).

use std::str::FromStr;

/// The variable's value parsed as `T`, or `default` when it is unset or does not parse.
pub fn get<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// A boolean setting: `true/1/yes/on` or `false/0/no/off`, else `default`.
pub fn flag(name: &str, default: bool) -> bool {
    match std::env::var(name).map(|v| v.trim().to_ascii_lowercase()) {
        Ok(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => true,
        Ok(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => false,
        _ => default,
    }
}

/// A string setting, or `default`.
pub fn string(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_string())
}

/// `ORDER_REPLICAS`-style lists: `1=http://127.0.0.1:8091,2=http://127.0.0.1:8092`.
/// Entries that do not parse are skipped.
pub fn id_urls(value: &str) -> Vec<(u32, String)> {
    value
        .split(',')
        .filter_map(|part| {
            let (id, url) = part.trim().split_once('=')?;
            Some((id.trim().parse().ok()?, url.trim().trim_end_matches('/').to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_urls_parse() {
        let v = super::id_urls("1=http://a:1/, 2=http://b:2,bad,x=http://c");
        assert_eq!(v, vec![(1, "http://a:1".to_string()), (2, "http://b:2".to_string())]);
    }
}

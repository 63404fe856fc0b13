//! Errors shown on `/agents` and in the logs without the secrets URLs carry.
//!
//! HTTP clients name the URL a request failed for (reqwest: `error sending request for url
//! (https://…)`), and RPC providers put API keys in the path or the query
//! (`https://eth.example/v2/KEY`, `?apikey=KEY`) or credentials in the authority. An operator's
//! board and logs are read by more people than the config file: only the scheme, host and port
//! of a URL are shown.

/// `text` with every `http(s)://` or `ws(s)://` URL cut to its scheme, host and port (a path or
/// query becomes `/…`, credentials are dropped).
pub(crate) fn redact_urls(text: &str) -> String {
    const SCHEMES: [&str; 4] = ["https://", "http://", "wss://", "ws://"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = SCHEMES
            .iter()
            .filter_map(|s| rest.find(s).map(|i| (i, *s)))
            .min_by_key(|(i, _)| *i);
        let Some((start, scheme)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..start]);
        let url = &rest[start + scheme.len()..];
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ',' | ']'))
            .unwrap_or(url.len());
        let (url, after) = url.split_at(end);
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, tail) = url.split_at(authority_end);
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        out.push_str(scheme);
        out.push_str(host);
        if !tail.is_empty() && tail != "/" {
            out.push_str("/…");
        } else {
            out.push_str(tail);
        }
        rest = after;
    }
}

#[cfg(test)]
mod tests {
    use super::redact_urls;

    #[test]
    fn api_keys_in_paths_and_queries_and_credentials_are_cut() {
        assert_eq!(
            redact_urls(
                "rpc: error sending request for url (https://eth-mainnet.example/v2/SECRETKEY)"
            ),
            "rpc: error sending request for url (https://eth-mainnet.example/…)"
        );
        assert_eq!(
            redact_urls(
                "http://user:pass@10.0.0.1:8545/?apikey=SECRET failed, then wss://node.example/ws/KEY"
            ),
            "http://10.0.0.1:8545/… failed, then wss://node.example/…"
        );
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        for text in [
            "step failed: nonce too low",
            "http://127.0.0.1:8545/ refused the connection",
            "http://127.0.0.1:8545",
            "",
        ] {
            assert_eq!(redact_urls(text), text);
        }
    }
}

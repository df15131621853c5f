//! `Accept` header parsing and the choice between plain JSON and a `meta.k8s.io` Table.
//!
//! kubectl asks for lists with `application/json;as=Table;v=v1;g=meta.k8s.io,
//! application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json` and only prints CPU and
//! MEMORY columns when it gets a Table back; discovery asks for `as=APIGroupDiscoveryList` first
//! and falls back to plain JSON. Parameters are case-insensitive and may be quoted, so the header
//! is parsed rather than substring-matched.

use std::collections::BTreeMap;

/// One media range of an `Accept` header.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRange {
    /// Lower-cased `type/subtype`, e.g. `application/json` or `*/*`.
    pub essence: String,
    /// Lower-cased parameter names with their (unquoted) values.
    pub params: BTreeMap<String, String>,
    /// The `q` weight, 1.0 when absent.
    pub quality: f32,
}

impl MediaRange {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    fn accepts_json(&self) -> bool {
        matches!(
            self.essence.as_str(),
            "application/json" | "application/*" | "*/*"
        )
    }
}

/// Parses an `Accept` header into media ranges ordered by preference (q descending, ties keep
/// header order). Malformed ranges are skipped instead of failing the request.
pub fn parse_accept(header: &str) -> Vec<MediaRange> {
    let mut ranges: Vec<MediaRange> = split_outside_quotes(header, ',')
        .into_iter()
        .filter_map(|part| parse_range(&part))
        .collect();
    // Stable sort keeps the client's order among equal weights.
    ranges.sort_by(|a, b| b.quality.total_cmp(&a.quality));
    ranges
}

fn parse_range(text: &str) -> Option<MediaRange> {
    let mut pieces = split_outside_quotes(text, ';').into_iter();
    let essence = pieces.next()?.trim().to_ascii_lowercase();
    let (ty, sub) = essence.split_once('/')?;
    if ty.is_empty() || sub.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut quality = 1.0;
    for p in pieces {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let key = k.trim().to_ascii_lowercase();
        let value = v.trim().trim_matches('"').to_string();
        if key == "q" {
            quality = value.parse().unwrap_or(1.0);
        } else {
            params.insert(key, value);
        }
    }
    Some(MediaRange {
        essence,
        params,
        quality,
    })
}

fn split_outside_quotes(text: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if c == sep && !quoted {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// How a resource answer should be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The object itself as JSON.
    Json,
    /// A `meta.k8s.io` Table of the given version (`"v1"` or `"v1beta1"`).
    Table(&'static str),
}

/// Picks the representation for a metrics GET/LIST. `None` means nothing acceptable was offered
/// (406). A missing or empty header means JSON.
pub fn negotiate_resource(accept: Option<&str>) -> Option<Representation> {
    let Some(header) = accept.filter(|h| !h.trim().is_empty()) else {
        return Some(Representation::Json);
    };
    for range in parse_accept(header) {
        if range.quality <= 0.0 || !range.accepts_json() {
            continue;
        }
        match range.param("as") {
            None => return Some(Representation::Json),
            Some(kind) if kind.eq_ignore_ascii_case("Table") => {
                if range.param("g") != Some("meta.k8s.io") {
                    continue;
                }
                match range.param("v") {
                    Some("v1") => return Some(Representation::Table("v1")),
                    Some("v1beta1") => return Some(Representation::Table("v1beta1")),
                    _ => continue,
                }
            }
            // PartialObjectMetadata and other conversions are not offered by this server.
            Some(_) => continue,
        }
    }
    None
}

/// The form of `/apis` a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// Aggregated discovery, `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`: what
    /// kube-aggregator asks an APIService's backend for (with no fallback in the same header),
    /// and what kubectl tries first.
    V2,
    /// The legacy `APIGroupList`.
    Legacy,
}

/// Content type of an aggregated discovery answer.
pub const DISCOVERY_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Picks the discovery form for `/apis`. `None` (406) when the header offers neither: a 200
/// with the other form is what made kube-aggregator mark the group Stale, while a 406 is what
/// it and kubectl know to fall back from. A missing header means the legacy form.
pub fn negotiate_discovery(accept: Option<&str>) -> Option<Discovery> {
    let Some(header) = accept.filter(|h| !h.trim().is_empty()) else {
        return Some(Discovery::Legacy);
    };
    for range in parse_accept(header) {
        if range.quality <= 0.0 || !range.accepts_json() {
            continue;
        }
        match range.param("as") {
            None => return Some(Discovery::Legacy),
            Some(kind) if kind.eq_ignore_ascii_case("APIGroupDiscoveryList") => {
                if range.param("g") == Some("apidiscovery.k8s.io") && range.param("v") == Some("v2")
                {
                    return Some(Discovery::V2);
                }
            }
            Some(_) => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_GET: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn parses_ranges_and_params() {
        let r = parse_accept("Application/JSON; AS=\"Table\" ; v=v1;g=meta.k8s.io;q=0.5, */*");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].essence, "*/*");
        assert_eq!(r[1].essence, "application/json");
        assert_eq!(r[1].param("as"), Some("Table"));
        assert_eq!(r[1].quality, 0.5);
    }

    #[test]
    fn kubectl_get_gets_a_v1_table() {
        assert_eq!(
            negotiate_resource(Some(KUBECTL_GET)),
            Some(Representation::Table("v1"))
        );
        assert_eq!(
            negotiate_resource(Some(
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json"
            )),
            Some(Representation::Table("v1beta1"))
        );
    }

    #[test]
    fn plain_and_fallback_json() {
        assert_eq!(negotiate_resource(None), Some(Representation::Json));
        assert_eq!(
            negotiate_resource(Some("application/json, */*")),
            Some(Representation::Json)
        );
        assert_eq!(
            negotiate_resource(Some(
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
            )),
            Some(Representation::Json)
        );
        assert_eq!(
            negotiate_resource(Some("application/vnd.kubernetes.protobuf")),
            None
        );
        assert_eq!(
            negotiate_resource(Some("application/json;as=Table;v=v2;g=meta.k8s.io")),
            None
        );
        // A Table preferred by q over JSON.
        assert_eq!(
            negotiate_resource(Some(
                "application/json;q=0.5,application/json;as=Table;v=v1;g=meta.k8s.io"
            )),
            Some(Representation::Table("v1"))
        );
    }

    #[test]
    fn discovery_v2_legacy_or_not_acceptable() {
        const AGGREGATOR: &str =
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        assert_eq!(negotiate_discovery(Some(AGGREGATOR)), Some(Discovery::V2));
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate_discovery(Some(kubectl)), Some(Discovery::V2));
        assert_eq!(
            negotiate_discovery(Some("application/json")),
            Some(Discovery::Legacy)
        );
        assert_eq!(negotiate_discovery(None), Some(Discovery::Legacy));
        assert_eq!(negotiate_discovery(Some("*/*")), Some(Discovery::Legacy));
        // Only the old beta form, or only protobuf: nothing this server writes.
        assert_eq!(
            negotiate_discovery(Some(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            )),
            None
        );
        assert_eq!(
            negotiate_discovery(Some("application/vnd.kubernetes.protobuf")),
            None
        );
    }
}

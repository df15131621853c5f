//! Decoder for the kubelet `/metrics/resource` payload (Prometheus text exposition format).
//!
//! Every scrape cycle fetches this payload from every node, so decoding is on the hot path of
//! the metrics server: it borrows label values from the input while grouping series, and
//! allocates only for what it keeps (one string arena per batch plus a few vectors), never
//! per line (the one exception: a label value with escapes is unescaped into its own buffer).
//!
//! Semantics follow upstream metrics-server (`pkg/scraper/client/resource`):
//!
//! * only `node_cpu_usage_seconds_total`, `node_memory_working_set_bytes`,
//!   `container_cpu_usage_seconds_total`, `container_memory_working_set_bytes` and
//!   `container_start_time_seconds` are used; every other series and every comment is skipped
//!   (but still has to be well formed);
//! * CPU becomes cumulative core-nanoseconds, truncated (`(seconds * 1e9) as u64`); memory is
//!   bytes (`value as u64`);
//! * a sample's time is its own timestamp (ms) when it has one, else the request time;
//! * the node point is dropped when its CPU or memory is missing or zero; a pod is dropped when
//!   any of its containers lacks CPU or memory or has a zero value.
//!
//! Deliberate differences from upstream, both towards "drop the bad point, keep the node":
//! a negative or zero timestamp, or a negative / NaN / infinite value, invalidates only that
//! series' point (upstream's Prometheus parser rejects negative timestamps for the whole node),
//! and a container series lacking one of its `container`/`namespace`/`pod` labels is ignored
//! (upstream slices at index -1). Syntax errors still fail the whole payload, as upstream does:
//! a half-understood payload is not trusted.
//!
//! Smaller differences: CPU and memory keep their own timestamps (upstream keeps one, from
//! whichever series came last; rates should use the CPU one), start times are rounded to the
//! millisecond, and CRLF line endings are accepted.
//!
//! Why hand-written rather than a Prometheus parser crate: a general parser materialises every
//! series, including the many skipped here (the per-line allocations this decoder avoids),
//! and brings its own edge cases instead of upstream's semantics listed above. Its
//! byte searches are 8 bytes a step instead of `memchr`, which measured slower on these short
//! tokens (BENCHMARKS.md, "byte search in the decoder").

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Cumulative CPU of a node or container at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// Cumulative CPU time in core-nanoseconds.
    pub core_ns: u64,
    /// When it was sampled, in milliseconds since the Unix epoch (always > 0).
    pub timestamp_ms: u64,
}

/// Memory working set of a node or container at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySample {
    pub bytes: u64,
    /// When it was sampled, in milliseconds since the Unix epoch (always > 0).
    pub timestamp_ms: u64,
}

/// The node's own usage. Both values are non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePoint {
    pub cpu: CpuSample,
    pub memory: MemorySample,
}

/// One container of a kept pod. CPU and memory are both present and non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerPoint<'a> {
    pub name: &'a str,
    /// From `container_start_time_seconds`, rounded to ms; `None` when absent or invalid.
    pub start_time_ms: Option<u64>,
    pub cpu: CpuSample,
    pub memory: MemorySample,
}

/// One kept pod, borrowed from its [`MetricsBatch`].
#[derive(Debug, Clone, Copy)]
pub struct PodPoint<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    containers: &'a [ContainerRecord],
    names: &'a str,
}

impl<'a> PodPoint<'a> {
    /// The pod's containers, sorted by name, never empty.
    pub fn containers(&self) -> impl ExactSizeIterator<Item = ContainerPoint<'a>> + 'a {
        let names = self.names;
        self.containers.iter().map(move |c| ContainerPoint {
            name: c.name.get(names),
            start_time_ms: (c.start_time_ms != 0).then_some(c.start_time_ms),
            cpu: c.cpu,
            memory: c.memory,
        })
    }

    pub fn container_count(&self) -> usize {
        self.containers.len()
    }
}

/// Everything usable from one node's payload.
///
/// Names live in one string arena and pods/containers in two flat vectors, so a batch costs a
/// handful of allocations however many pods the node runs.
#[derive(Debug, Clone, Default)]
pub struct MetricsBatch {
    /// The node's usage; `None` when the payload had no complete node point.
    pub node: Option<NodePoint>,
    pods: Vec<PodRecord>,
    containers: Vec<ContainerRecord>,
    names: String,
}

impl MetricsBatch {
    /// Kept pods in first-seen order.
    pub fn pods(&self) -> impl ExactSizeIterator<Item = PodPoint<'_>> + '_ {
        self.pods.iter().map(move |p| self.view(p))
    }

    /// Looks one pod up (linear; meant for tests and diagnostics).
    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodPoint<'_>> {
        self.pods()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub fn container_count(&self) -> usize {
        self.containers.len()
    }

    /// Heap bytes held by this batch (capacities, not lengths).
    pub fn heap_bytes(&self) -> usize {
        self.pods.capacity() * std::mem::size_of::<PodRecord>()
            + self.containers.capacity() * std::mem::size_of::<ContainerRecord>()
            + self.names.capacity()
    }

    fn view(&self, p: &PodRecord) -> PodPoint<'_> {
        let start = p.first as usize;
        let end = start + p.count as usize;
        PodPoint {
            namespace: p.namespace.get(&self.names),
            name: p.name.get(&self.names),
            containers: self.containers.get(start..end).unwrap_or(&[]),
            names: &self.names,
        }
    }
}

/// A slice of the batch's name arena. u32 is enough: payloads over 4 GiB are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn get(self, names: &str) -> &str {
        let start = self.start as usize;
        names.get(start..start + self.len as usize).unwrap_or("")
    }
}

#[derive(Debug, Clone, Copy)]
struct PodRecord {
    namespace: Span,
    name: Span,
    first: u32,
    count: u32,
}

#[derive(Debug, Clone, Copy)]
struct ContainerRecord {
    name: Span,
    /// 0 = unknown (a real start time is never the epoch itself).
    start_time_ms: u64,
    cpu: CpuSample,
    memory: MemorySample,
}

/// A payload that is not valid Prometheus text, with the 1-based line where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kubelet metrics payload, line {line}: {kind}")]
pub struct DecodeError {
    pub line: usize,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("invalid metric name")]
    MetricName,
    #[error("invalid label name")]
    LabelName,
    #[error("expected '=' and a quoted label value")]
    LabelSyntax,
    #[error("unterminated label value")]
    UnterminatedLabelValue,
    #[error("missing sample value")]
    MissingValue,
    #[error("sample value is not a number")]
    Value,
    #[error("timestamp is not an integer")]
    Timestamp,
    #[error("unexpected data after the timestamp")]
    TrailingData,
    #[error("label value is not valid UTF-8")]
    InvalidUtf8,
    #[error("payload larger than 4 GiB")]
    TooLarge,
}

/// Decodes one node's `/metrics/resource` payload.
///
/// `request_time` stamps samples that carry no timestamp of their own.
pub fn decode(input: &[u8], request_time: SystemTime) -> Result<MetricsBatch, DecodeError> {
    if u32::try_from(input.len()).is_err() {
        return Err(DecodeError {
            line: 0,
            kind: DecodeErrorKind::TooLarge,
        });
    }
    let request_ms = request_time
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .unwrap_or(0);

    let mut acc = Accumulator::new(request_ms, input.len());
    let mut rest = input;
    let mut line_no = 0usize;
    while !rest.is_empty() {
        line_no += 1;
        // memchr's vector search: lines are ~120 bytes, and a word-at-a-time search here was
        // 19% of the decode time.
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        // Tolerate CRLF payloads (proxies, hand-edited files).
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match parse_line(line) {
            Ok(Some(sample)) => acc.add(sample, line_no),
            Ok(None) => {}
            Err(kind) => {
                return Err(DecodeError {
                    line: line_no,
                    kind,
                })
            }
        }
    }
    acc.finish()
}

/// Converts a sample time to `SystemTime`.
pub fn ms_to_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Series {
    NodeCpu,
    NodeMemory,
    ContainerCpu,
    ContainerMemory,
    ContainerStart,
    Other,
}

impl Series {
    fn classify(name: &[u8]) -> Series {
        lookup(&KNOWN_SERIES, name).unwrap_or(Series::Other)
    }

    fn is_container(self) -> bool {
        matches!(
            self,
            Series::ContainerCpu | Series::ContainerMemory | Series::ContainerStart
        )
    }
}

/// A label value as it appears in the payload (still escaped when `escaped`).
#[derive(Debug, Clone, Copy)]
struct RawValue<'a> {
    bytes: &'a [u8],
    escaped: bool,
}

impl<'a> RawValue<'a> {
    #[inline]
    fn unescape(self) -> Cow<'a, [u8]> {
        if !self.escaped {
            return Cow::Borrowed(self.bytes);
        }
        // The text format escapes only `\\`, `\"` and `\n`; like Prometheus, any other
        // backslash sequence is kept as written.
        let mut out = Vec::with_capacity(self.bytes.len());
        let mut it = self.bytes.iter();
        while let Some(&c) = it.next() {
            if c != b'\\' {
                out.push(c);
                continue;
            }
            match it.next() {
                Some(b'n') => out.push(b'\n'),
                Some(&e @ (b'\\' | b'"')) => out.push(e),
                Some(&other) => out.extend_from_slice(&[b'\\', other]),
                None => out.push(b'\\'),
            }
        }
        Cow::Owned(out)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ContainerLabels<'a> {
    container: Option<RawValue<'a>>,
    namespace: Option<RawValue<'a>>,
    pod: Option<RawValue<'a>>,
}

struct Sample<'a> {
    series: Series,
    labels: ContainerLabels<'a>,
    value: f64,
    timestamp_ms: Option<i64>,
}

/// Character classes of the text format, looked up instead of compared: the name scans run
/// over every byte of every metric and label name.
const METRIC_START: u8 = 1;
const METRIC_CHAR: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CHAR: u8 = 8;
/// Bytes that may appear in a sample value or timestamp (digits, signs, `.`, exponents,
/// `NaN`/`Inf` letters).
const NUMBER_CHAR: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let alpha = c.is_ascii_alphabetic();
        let digit = c.is_ascii_digit();
        let mut f = 0;
        if alpha || c == b'_' || c == b':' {
            f |= METRIC_START | METRIC_CHAR;
        }
        if digit {
            f |= METRIC_CHAR | LABEL_CHAR | NUMBER_CHAR;
        }
        if alpha || c == b'_' {
            f |= LABEL_START | LABEL_CHAR;
        }
        if alpha || c == b'.' || c == b'+' || c == b'-' {
            f |= NUMBER_CHAR;
        }
        t[b] = f;
        b += 1;
    }
    t
};

fn has_class(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Marks the zero bytes of `x`; exact for the lowest marked byte, which is all callers use.
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

/// Index of the first of the bytes `a`, `b`, `c` at or after `i` (or `line.len()`), eight
/// bytes a step. Names and label values are the bulk of every line, and a byte-at-a-time
/// loop pays a mispredicted exit per token on top of the per-byte work.
fn find_any(line: &[u8], mut i: usize, a: u8, b: u8, c: u8) -> usize {
    let (wa, wb, wc) = (LO * a as u64, LO * b as u64, LO * c as u64);
    while let Some(chunk) = line.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let found = zero_bytes(x ^ wa) | zero_bytes(x ^ wb) | zero_bytes(x ^ wc);
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < line.len() && line[i] != a && line[i] != b && line[i] != c {
        i += 1;
    }
    i
}

/// Whether every byte of `s` is in `class`; branch-free so that it costs the same for every
/// name length.
fn all_in_class(s: &[u8], class: u8) -> bool {
    s.iter().fold(class, |acc, &b| acc & CLASS[b as usize]) != 0
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_blanks(line: &[u8], mut i: usize) -> usize {
    while i < line.len() && is_blank(line[i]) {
        i += 1;
    }
    i
}

fn token_end(line: &[u8], i: usize) -> usize {
    find_any(line, i, b' ', b'\t', b' ')
}

/// Parses one line; `Ok(None)` for blank lines and comments.
fn parse_line(line: &[u8]) -> Result<Option<Sample<'_>>, DecodeErrorKind> {
    let mut i = skip_blanks(line, 0);
    match line.get(i) {
        None | Some(b'#') => return Ok(None),
        Some(&c) if has_class(c, METRIC_START) => {}
        Some(_) => return Err(DecodeErrorKind::MetricName),
    }
    let series = match known_series(&line[i..]) {
        // The kubelet's own names: their bytes are valid, no class scan needed.
        Some((series, len)) => {
            i += len;
            series
        }
        None => {
            let name_start = i;
            i = find_any(line, i, b'{', b' ', b'\t');
            let name = &line[name_start..i];
            if !all_in_class(name, METRIC_CHAR) {
                return Err(DecodeErrorKind::MetricName);
            }
            Series::classify(name)
        }
    };

    let mut labels = ContainerLabels::default();
    let after_name = i;
    i = skip_blanks(line, i);
    if line.get(i) == Some(&b'{') {
        i = parse_labels(line, i + 1, series.is_container(), &mut labels)?;
        i = skip_blanks(line, i);
    } else if i == after_name && i < line.len() {
        // A name must be followed by a blank or a label set.
        return Err(DecodeErrorKind::MetricName);
    }

    let value_end = token_end(line, i);
    if value_end == i {
        return Err(DecodeErrorKind::MissingValue);
    }
    let value_token = &line[i..value_end];
    // Ignored series are only checked for number-like characters: a full float parse of
    // series that are thrown away would be a sizeable share of the decode time.
    let value = if series == Series::Other {
        if !value_token.iter().all(|&b| has_class(b, NUMBER_CHAR)) {
            return Err(DecodeErrorKind::Value);
        }
        0.0
    } else {
        parse_float(value_token).ok_or(DecodeErrorKind::Value)?
    };
    i = skip_blanks(line, value_end);

    let mut timestamp_ms = None;
    if i < line.len() {
        let ts_end = token_end(line, i);
        timestamp_ms = Some(parse_int(&line[i..ts_end]).ok_or(DecodeErrorKind::Timestamp)?);
        i = skip_blanks(line, ts_end);
        if i < line.len() {
            return Err(DecodeErrorKind::TrailingData);
        }
    }
    Ok(Some(Sample {
        series,
        labels,
        value,
        timestamp_ms,
    }))
}

/// The series names the kubelet writes, by first byte; the two pod series are read and
/// thrown away like any other, but without the class scan.
const KNOWN_SERIES: [(&[u8], Series); 7] = [
    (b"container_cpu_usage_seconds_total", Series::ContainerCpu),
    (
        b"container_memory_working_set_bytes",
        Series::ContainerMemory,
    ),
    (b"container_start_time_seconds", Series::ContainerStart),
    (b"pod_cpu_usage_seconds_total", Series::Other),
    (b"pod_memory_working_set_bytes", Series::Other),
    (b"node_cpu_usage_seconds_total", Series::NodeCpu),
    (b"node_memory_working_set_bytes", Series::NodeMemory),
];

/// A known series name at the start of `rest`, ended as the general scan would end it (by
/// `{`, a blank or the end of the line), and its length.
fn known_series(rest: &[u8]) -> Option<(Series, usize)> {
    let candidates = match rest.first()? {
        b'c' => &KNOWN_SERIES[0..3],
        b'p' => &KNOWN_SERIES[3..5],
        b'n' => &KNOWN_SERIES[5..7],
        _ => return None,
    };
    candidates.iter().find_map(|&(name, series)| {
        let ended = matches!(rest.get(name.len()), None | Some(b'{' | b' ' | b'\t'));
        (ended && rest.get(..name.len()).is_some_and(|r| bytes_eq(r, name)))
            .then_some((series, name.len()))
    })
}

#[derive(Debug, Clone, Copy)]
enum Label {
    Container,
    Namespace,
    Pod,
    Other,
}

impl Label {
    fn classify(name: &[u8]) -> Label {
        lookup(&KNOWN_LABELS, name).unwrap_or(Label::Other)
    }
}

/// The value `name` has in a table of known names, if it is one of them.
fn lookup<T: Copy>(table: &[(&[u8], T)], name: &[u8]) -> Option<T> {
    table
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, value)| value)
}

/// The labels that identify a container.
const KNOWN_LABELS: [(&[u8], Label); 3] = [
    (b"container", Label::Container),
    (b"namespace", Label::Namespace),
    (b"pod", Label::Pod),
];

/// `container="`, `namespace="` or `pod="` (no blanks, as the kubelet writes them) at the
/// start of `rest`, and the length up to the value.
fn known_label(rest: &[u8]) -> Option<(Label, usize)> {
    let (name, label) = match rest.first()? {
        b'c' => KNOWN_LABELS[0],
        b'n' => KNOWN_LABELS[1],
        b'p' => KNOWN_LABELS[2],
        _ => return None,
    };
    let len = name.len() + 2;
    let matched = rest.get(..name.len()).is_some_and(|r| bytes_eq(r, name))
        && rest.get(name.len()..len) == Some(b"=\"".as_slice());
    matched.then_some((label, len))
}

/// Equality of two short byte strings, eight bytes a step and inlined: names and label
/// values are 3 to 40 bytes, where a call to libc's memcmp cost 10% of the decode time.
#[inline]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in (&mut x).zip(&mut y) {
        let mut w = [0u8; 8];
        let mut v = [0u8; 8];
        w.copy_from_slice(p);
        v.copy_from_slice(q);
        if u64::from_le_bytes(w) != u64::from_le_bytes(v) {
            return false;
        }
    }
    x.remainder()
        .iter()
        .zip(y.remainder())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// Parses `name="value",...}` starting just after `{`; returns the index after `}`.
fn parse_labels<'a>(
    line: &'a [u8],
    mut i: usize,
    capture: bool,
    labels: &mut ContainerLabels<'a>,
) -> Result<usize, DecodeErrorKind> {
    loop {
        i = skip_blanks(line, i);
        match line.get(i) {
            Some(b'}') => return Ok(i + 1),
            Some(&c) if has_class(c, LABEL_START) => {}
            Some(_) => return Err(DecodeErrorKind::LabelName),
            None => return Err(DecodeErrorKind::UnterminatedLabelValue),
        }
        let name_start = i;
        let slot = match known_label(&line[i..]) {
            // `container="`, `namespace="` or `pod="`: the kubelet's labels, written without
            // blanks, so one comparison replaces the scans.
            Some((slot, len)) => {
                i += len;
                slot
            }
            None => {
                i = find_any(line, i, b'=', b' ', b'\t');
                if !all_in_class(&line[name_start..i], LABEL_CHAR) {
                    return Err(DecodeErrorKind::LabelName);
                }
                let slot = Label::classify(&line[name_start..i]);
                i = skip_blanks(line, i);
                if line.get(i) != Some(&b'=') {
                    return Err(DecodeErrorKind::LabelSyntax);
                }
                i = skip_blanks(line, i + 1);
                if line.get(i) != Some(&b'"') {
                    return Err(DecodeErrorKind::LabelSyntax);
                }
                i += 1;
                slot
            }
        };
        let value_start = i;
        let mut escaped = false;
        loop {
            // memchr's vector search (16 or 32 bytes a step): label values are the longest
            // tokens of a line, and this scan was 18% of the decode time at 8 bytes a step.
            // After a trailing backslash `i` is past the end: `get` gives None, and so the
            // value is unterminated.
            i = line
                .get(i..)
                .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                .map_or(line.len(), |p| i + p);
            match line.get(i) {
                Some(b'"') => break,
                Some(_) => {
                    // A backslash: skip it and the byte it escapes.
                    escaped = true;
                    i += 2;
                }
                None => return Err(DecodeErrorKind::UnterminatedLabelValue),
            }
        }
        // `i` can only pass the end through a trailing backslash, which `get` reports as None.
        let raw = RawValue {
            bytes: &line[value_start..i],
            escaped,
        };
        i += 1;
        if capture {
            match slot {
                Label::Container => labels.container = Some(raw),
                Label::Namespace => labels.namespace = Some(raw),
                Label::Pod => labels.pod = Some(raw),
                Label::Other => {}
            }
        }
        i = skip_blanks(line, i);
        match line.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok(i + 1),
            _ => return Err(DecodeErrorKind::LabelSyntax),
        }
    }
}

fn parse_float(tok: &[u8]) -> Option<f64> {
    // The kubelet writes short decimals ("4.710169", "1.253376e+07"): the exact fast path
    // takes those, std's correctly rounded parser everything else (NaN, Inf, long mantissas).
    fast_float(tok).or_else(|| std::str::from_utf8(tok).ok()?.parse::<f64>().ok())
}

/// Exact powers of ten representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Clinger's fast path: with at most 15 significant digits the mantissa is exact in an f64,
/// and so is 10^e for |e| <= 22, so one multiplication or division is correctly rounded and
/// gives the same bits as a full parser. Returns `None` (fall back) for anything else.
fn fast_float(tok: &[u8]) -> Option<f64> {
    let (negative, s) = match tok.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, tok),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut exponent: i32 = 0;
    let mut i = 0;
    while let Some(&d) = s.get(i).filter(|d| d.is_ascii_digit()) {
        mantissa = mantissa * 10 + u64::from(d - b'0');
        digits += 1;
        i += 1;
        if digits > 15 {
            return None;
        }
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&d) = s.get(i).filter(|d| d.is_ascii_digit()) {
            mantissa = mantissa * 10 + u64::from(d - b'0');
            digits += 1;
            exponent -= 1;
            i += 1;
            if digits > 15 {
                return None;
            }
        }
    }
    if digits == 0 {
        return None;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        let (exp_negative, start) = match s.get(i) {
            Some(b'-') => (true, i + 1),
            Some(b'+') => (false, i + 1),
            _ => (false, i),
        };
        let exp_digits = s.get(start..)?;
        if exp_digits.is_empty() || exp_digits.len() > 3 {
            return None;
        }
        let mut e: i32 = 0;
        for &d in exp_digits {
            if !d.is_ascii_digit() {
                return None;
            }
            e = e * 10 + i32::from(d - b'0');
        }
        exponent += if exp_negative { -e } else { e };
        i = s.len();
    }
    if i != s.len() {
        return None;
    }
    let m = mantissa as f64;
    let magnitude = if exponent >= 0 {
        m * *POW10.get(exponent as usize)?
    } else {
        m / *POW10.get(exponent.unsigned_abs() as usize)?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Parses a decimal i64 with optional sign, without going through `str`.
fn parse_int(tok: &[u8]) -> Option<i64> {
    let (negative, digits) = match tok.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, tok),
    };
    if digits.is_empty() {
        return None;
    }
    // Up to 18 digits cannot overflow: skip the checked arithmetic (ms timestamps have 13),
    // and take eight digits at a time while there are that many.
    if digits.len() <= 18 {
        let mut v: u64 = 0;
        let mut chunks = digits.chunks_exact(8);
        for chunk in &mut chunks {
            v = v * 100_000_000 + eight_digits(chunk)?;
        }
        for &d in chunks.remainder() {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u64::from(d - b'0');
        }
        // v < 10^18 < i64::MAX
        let v = v as i64;
        return Some(if negative { -v } else { v });
    }
    // Accumulate negatively so that i64::MIN parses too.
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// Value of eight ASCII digits, `None` if any byte is not a digit. The multiplications
/// combine digit pairs, then pairs of pairs, then halves (the usual SWAR digit parse), which
/// replaces eight dependent multiply-adds with three.
fn eight_digits(chunk: &[u8]) -> Option<u64> {
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    let v = u64::from_le_bytes(word);
    let digits = v.wrapping_sub(LO * b'0' as u64);
    // A byte below '0' borrows and sets its top bit; one above '9' reaches 0x80 when 0x46 is
    // added. Either way some top bit is set, and valid input never sets one.
    let above = v.wrapping_add(LO * 0x46);
    if (digits | above | v) & HI != 0 {
        return None;
    }
    let pairs = (digits.wrapping_mul(10) + (digits >> 8)) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs.wrapping_mul(100) + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((quads.wrapping_mul(10_000) + (quads >> 32)) & 0xFFFF_FFFF)
}

const NONE: u32 = u32::MAX;

struct PodBuild<'a> {
    namespace: Cow<'a, [u8]>,
    name: Cow<'a, [u8]>,
    /// Head of this pod's container list, threaded through `Accumulator::containers` so that
    /// grouping needs no per-pod allocation.
    head: u32,
    line: usize,
}

struct ContainerBuild<'a> {
    name: Cow<'a, [u8]>,
    pod: u32,
    next: u32,
    cpu: Option<CpuSample>,
    memory: Option<MemorySample>,
    start_time_ms: Option<u64>,
    line: usize,
}

/// (namespace, pod name), unescaped; borrowed from the input unless escapes were present.
type PodKey<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// Collects samples of one payload before the completeness checks.
struct Accumulator<'a> {
    request_ms: u64,
    node_cpu: Option<CpuSample>,
    node_memory: Option<MemorySample>,
    /// Keyed with a randomly seeded hash on purpose (foldhash's `RandomState`: a per-process
    /// and per-map seed): pod names are user-controlled, and a predictable hash would let
    /// crafted names turn grouping quadratic. std's SipHash was 8% of the decode time.
    index: HashMap<PodKey<'a>, u32, foldhash::fast::RandomState>,
    pods: Vec<PodBuild<'a>>,
    containers: Vec<ContainerBuild<'a>>,
    /// The container expected next: the kubelet lists every container series in the same
    /// order, so after the first block most lookups are one comparison instead of a hash.
    cursor: usize,
}

impl<'a> Accumulator<'a> {
    fn new(request_ms: u64, input_len: usize) -> Self {
        // A container series line is ~100 bytes and each container has two or three of them
        // plus pod series; this guess avoids regrowing for typical payloads and stays
        // proportional to the input for hostile ones.
        // Capped, so that a huge garbage payload fails before it reserves much.
        let guess = (input_len / 512 + 8).min(4096);
        Accumulator {
            request_ms,
            node_cpu: None,
            node_memory: None,
            index: HashMap::with_capacity_and_hasher(guess, Default::default()),
            pods: Vec::with_capacity(guess),
            containers: Vec::with_capacity(guess),
            cursor: 0,
        }
    }

    fn add(&mut self, s: Sample<'a>, line: usize) {
        if s.series == Series::Other {
            return;
        }
        // An invalid time or value invalidates this series' point only.
        let timestamp_ms = match s.timestamp_ms {
            Some(t) if t > 0 => Some(t as u64),
            Some(_) => None,
            None => (self.request_ms > 0).then_some(self.request_ms),
        };
        let valid = s.value.is_finite() && s.value >= 0.0;
        let ts = if valid { timestamp_ms } else { None };
        // `as` saturates, so huge values cannot wrap.
        let cpu = ts.map(|t| CpuSample {
            core_ns: (s.value * 1e9) as u64,
            timestamp_ms: t,
        });
        let memory = ts.map(|t| MemorySample {
            bytes: s.value as u64,
            timestamp_ms: t,
        });
        match s.series {
            Series::NodeCpu => self.node_cpu = cpu,
            Series::NodeMemory => self.node_memory = memory,
            Series::ContainerCpu => {
                if let Some(c) = self.container(s.labels, line) {
                    c.cpu = cpu;
                }
            }
            Series::ContainerMemory => {
                if let Some(c) = self.container(s.labels, line) {
                    c.memory = memory;
                }
            }
            Series::ContainerStart => {
                // Rounded, not truncated: seconds like 1699999990.001 are not exact in binary
                // and would otherwise lose a millisecond.
                let start = ts
                    .map(|_| (s.value * 1e3).round() as u64)
                    .filter(|&ms| ms > 0);
                if let Some(c) = self.container(s.labels, line) {
                    c.start_time_ms = start;
                }
            }
            Series::Other => {}
        }
    }

    /// Finds or creates the container a series belongs to; `None` if a label is missing.
    fn container(
        &mut self,
        labels: ContainerLabels<'a>,
        line: usize,
    ) -> Option<&mut ContainerBuild<'a>> {
        let (Some(container), Some(namespace), Some(pod)) =
            (labels.container, labels.namespace, labels.pod)
        else {
            return None;
        };
        let container = container.unescape();
        let namespace = namespace.unescape();
        let pod = pod.unescape();
        if let Some(c) = self.containers.get(self.cursor) {
            let p = &self.pods[c.pod as usize];
            if bytes_eq(&c.name, &container)
                && bytes_eq(&p.name, &pod)
                && bytes_eq(&p.namespace, &namespace)
            {
                let hit = self.cursor;
                self.cursor += 1;
                return self.containers.get_mut(hit);
            }
        }
        let pod_index = match self.index.entry((namespace, pod)) {
            Entry::Occupied(e) => *e.get() as usize,
            Entry::Vacant(e) => {
                let (namespace, name) = e.key().clone();
                let index = self.pods.len();
                // Fewer pods than lines, and lines fit in u32 since the input does.
                e.insert(index as u32);
                self.pods.push(PodBuild {
                    namespace,
                    name,
                    head: NONE,
                    line,
                });
                index
            }
        };
        let mut cursor = self.pods[pod_index].head;
        while cursor != NONE {
            if self.containers[cursor as usize].name == container {
                self.cursor = cursor as usize + 1;
                return Some(&mut self.containers[cursor as usize]);
            }
            cursor = self.containers[cursor as usize].next;
        }
        let index = self.containers.len() as u32;
        self.containers.push(ContainerBuild {
            name: container,
            pod: pod_index as u32,
            next: self.pods[pod_index].head,
            cpu: None,
            memory: None,
            start_time_ms: None,
            line,
        });
        self.pods[pod_index].head = index;
        self.cursor = self.containers.len();
        self.containers.last_mut()
    }

    fn finish(self) -> Result<MetricsBatch, DecodeError> {
        let node = match (self.node_cpu, self.node_memory) {
            (Some(cpu), Some(memory)) if cpu.core_ns > 0 && memory.bytes > 0 => {
                Some(NodePoint { cpu, memory })
            }
            _ => None,
        };

        // First pass: which pods survive, and how much room they need.
        let mut members: Vec<u32> = Vec::with_capacity(self.containers.len());
        let mut kept: Vec<(usize, usize, usize)> = Vec::with_capacity(self.pods.len());
        let mut name_bytes = 0usize;
        for (p, pod) in self.pods.iter().enumerate() {
            let first = members.len();
            let mut complete = true;
            let mut cursor = pod.head;
            while cursor != NONE {
                let c = &self.containers[cursor as usize];
                let usable = matches!(c.cpu, Some(cpu) if cpu.core_ns > 0)
                    && matches!(c.memory, Some(m) if m.bytes > 0);
                complete &= usable;
                members.push(cursor);
                name_bytes += c.name.len();
                cursor = c.next;
            }
            if complete && members.len() > first {
                members[first..].sort_unstable_by(|&a, &b| {
                    self.containers[a as usize]
                        .name
                        .cmp(&self.containers[b as usize].name)
                });
                name_bytes += pod.namespace.len() + pod.name.len();
                kept.push((p, first, members.len()));
            } else {
                members.truncate(first);
            }
        }

        let mut names = String::with_capacity(name_bytes);
        let mut pods = Vec::with_capacity(kept.len());
        let mut containers = Vec::with_capacity(members.len());
        let mut last_namespace: Option<(&[u8], Span)> = None;
        for (p, from, to) in kept {
            let pod = &self.pods[p];
            // Pods of one namespace usually come together: share the namespace string.
            let namespace = match last_namespace {
                Some((ns, span)) if ns == &*pod.namespace => span,
                _ => push_name(&mut names, &pod.namespace, pod.line)?,
            };
            last_namespace = Some((&*pod.namespace, namespace));
            let name = push_name(&mut names, &pod.name, pod.line)?;
            pods.push(PodRecord {
                namespace,
                name,
                first: containers.len() as u32,
                count: (to - from) as u32,
            });
            for &c in &members[from..to] {
                let c = &self.containers[c as usize];
                let (Some(cpu), Some(memory)) = (c.cpu, c.memory) else {
                    continue; // unreachable: checked above
                };
                containers.push(ContainerRecord {
                    name: push_name(&mut names, &c.name, c.line)?,
                    start_time_ms: c.start_time_ms.unwrap_or(0),
                    cpu,
                    memory,
                });
            }
        }
        Ok(MetricsBatch {
            node,
            pods,
            containers,
            names,
        })
    }
}

fn push_name(names: &mut String, raw: &[u8], line: usize) -> Result<Span, DecodeError> {
    let s = std::str::from_utf8(raw).map_err(|_| DecodeError {
        line,
        kind: DecodeErrorKind::InvalidUtf8,
    })?;
    let span = Span {
        start: names.len() as u32,
        len: s.len() as u32,
    };
    names.push_str(s);
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIXTURE: &[u8] =
        include_bytes!("../tests/fixtures/kubelet-metrics-resource-kind-70pods.txt");

    fn t(ms: u64) -> SystemTime {
        ms_to_time(ms)
    }

    fn dec(s: &str) -> MetricsBatch {
        decode(s.as_bytes(), t(1_700_000_000_000)).expect("decodes")
    }

    fn only_container(b: &MetricsBatch, ns: &str, pod: &str) -> ContainerPoint<'static> {
        let p = b.pod(ns, pod).expect("pod present");
        assert_eq!(p.container_count(), 1);
        let c = p.containers().next().expect("one container");
        // Detach from the batch lifetime for easy comparison.
        ContainerPoint {
            name: Box::leak(c.name.to_owned().into_boxed_str()),
            ..c
        }
    }

    #[test]
    fn fixture_has_one_node_and_70_pods() {
        let b = decode(FIXTURE, t(1)).unwrap();
        assert_eq!(b.pod_count(), 70);
        assert_eq!(b.container_count(), 70);
        let node = b.node.expect("node point");
        // node_cpu_usage_seconds_total 357.35491 1633253809720
        assert_eq!(node.cpu.core_ns, 357_354_910_000);
        assert_eq!(node.cpu.timestamp_ms, 1_633_253_809_720);
        // node_memory_working_set_bytes 1.616273408e+09 1633253809720
        assert_eq!(node.memory.bytes, 1_616_273_408);
        assert_eq!(node.memory.timestamp_ms, 1_633_253_809_720);
    }

    #[test]
    fn fixture_container_values() {
        let b = decode(FIXTURE, t(1)).unwrap();
        let c = only_container(&b, "kube-system", "coredns-558bd4d5db-4dpjz");
        assert_eq!(c.name, "coredns");
        assert_eq!(c.cpu.core_ns, 4_710_169_000);
        assert_eq!(c.cpu.timestamp_ms, 1_633_253_812_125);
        assert_eq!(c.memory.bytes, 12_533_760);
        assert_eq!(c.memory.timestamp_ms, 1_633_253_812_125);
        // The fixture has no container_start_time_seconds series.
        assert_eq!(c.start_time_ms, None);

        let c = only_container(&b, "kube-system", "etcd-e2e-control-plane");
        assert_eq!(c.name, "etcd");
        assert_eq!(c.cpu.core_ns, 31_349_402_000);
        assert_eq!(c.memory.bytes, 40_783_872);
        assert_eq!(c.cpu.timestamp_ms, 1_633_253_814_387);

        let c = only_container(&b, "kube-system", "kindnet-blbtj");
        assert_eq!(c.name, "kindnet-cni");
        assert_eq!(c.cpu.core_ns, 960_551_000);
        assert_eq!(c.memory.bytes, 8_495_104);
        assert_eq!(c.cpu.timestamp_ms, 1_633_253_806_022);
    }

    #[test]
    fn fixture_pods_are_unique_and_named() {
        let b = decode(FIXTURE, t(1)).unwrap();
        let mut seen = std::collections::HashSet::new();
        for p in b.pods() {
            assert!(!p.namespace.is_empty() && !p.name.is_empty());
            assert!(seen.insert((p.namespace, p.name)), "duplicate {}", p.name);
        }
        assert_eq!(seen.len(), 70);
    }

    #[test]
    fn crlf_fixture_decodes_the_same() {
        let crlf = String::from_utf8(FIXTURE.to_vec())
            .unwrap()
            .replace('\n', "\r\n");
        let a = decode(FIXTURE, t(1)).unwrap();
        let b = decode(crlf.as_bytes(), t(1)).unwrap();
        assert_eq!(a.node, b.node);
        assert_eq!(a.pod_count(), b.pod_count());
        for (x, y) in a.pods().zip(b.pods()) {
            assert_eq!((x.namespace, x.name), (y.namespace, y.name));
            assert!(x.containers().eq(y.containers()));
        }
    }

    const NORMAL: &str = r#"
# HELP container_cpu_usage_seconds_total [ALPHA] Cumulative cpu time
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-1"} 4.710169 1633253812125
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-1"} 1.253376e+07 1633253812125
container_start_time_seconds{container="coredns",namespace="kube-system",pod="coredns-1"} 1.633252712e+9 1633253812125
node_cpu_usage_seconds_total 357.35491 1633253809720
node_memory_working_set_bytes 1.616273408e+09 1633253809720
pod_cpu_usage_seconds_total{namespace="kube-system",pod="coredns-1"} 4.67812 1633253803935
scrape_error 0
"#;

    #[test]
    fn start_time_is_decoded() {
        let b = dec(NORMAL);
        let c = only_container(&b, "kube-system", "coredns-1");
        assert_eq!(c.start_time_ms, Some(1_633_252_712_000));
        assert_eq!(c.cpu.core_ns, 4_710_169_000);
        assert!(b.node.is_some());
    }

    #[test]
    fn missing_timestamp_uses_request_time() {
        let b = decode(
            concat!(
                "container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\",pod=\"p\"} 4.5\n",
                "container_memory_working_set_bytes{container=\"c\",namespace=\"n\",pod=\"p\"} 100 1633253812125\n",
                "node_cpu_usage_seconds_total 357.35491\n",
                "node_memory_working_set_bytes 1.616273408e+09\n",
            )
            .as_bytes(),
            t(3_398_000_000_000),
        )
        .unwrap();
        let node = b.node.unwrap();
        assert_eq!(node.cpu.timestamp_ms, 3_398_000_000_000);
        assert_eq!(node.memory.timestamp_ms, 3_398_000_000_000);
        let c = only_container(&b, "n", "p");
        assert_eq!(c.cpu.timestamp_ms, 3_398_000_000_000);
        assert_eq!(c.cpu.core_ns, 4_500_000_000);
        assert_eq!(c.memory.timestamp_ms, 1_633_253_812_125);
    }

    #[test]
    fn missing_timestamp_and_pre_epoch_request_time_drops_points() {
        let b = decode(
            b"node_cpu_usage_seconds_total 1\nnode_memory_working_set_bytes 1\n",
            UNIX_EPOCH,
        )
        .unwrap();
        assert!(b.node.is_none());
    }

    #[test]
    fn node_needs_both_series_and_non_zero_values() {
        let cpu = "node_cpu_usage_seconds_total 357.35491 1633253809720\n";
        let mem = "node_memory_working_set_bytes 1.616273408e+09 1633253809720\n";
        assert!(dec(&format!("{cpu}{mem}")).node.is_some());
        assert!(dec(cpu).node.is_none());
        assert!(dec(mem).node.is_none());
        assert!(dec(&format!(
            "node_cpu_usage_seconds_total 0 1633253809720\n{mem}"
        ))
        .node
        .is_none());
        assert!(dec(&format!("{cpu}node_memory_working_set_bytes 0 1\n"))
            .node
            .is_none());
        // Below one nanosecond truncates to zero, which counts as zero.
        assert!(dec(&format!("node_cpu_usage_seconds_total 1e-10 1\n{mem}"))
            .node
            .is_none());
    }

    #[test]
    fn negative_or_zero_timestamp_drops_that_point() {
        let mem = "node_memory_working_set_bytes 1.6e+09 1633253809720\n";
        for ts in ["-1", "0", "-62135596800000", "-9223372036854775808"] {
            let b = dec(&format!("node_cpu_usage_seconds_total 357 {ts}\n{mem}"));
            assert!(b.node.is_none(), "timestamp {ts}");
        }
        // The classic upstream case: a bogus start time is dropped, the container is kept.
        let b = dec(concat!(
            "container_start_time_seconds{container=\"m\",namespace=\"n\",pod=\"p\"} -6.7953645788713455e+09 -62135596800000\n",
            "container_cpu_usage_seconds_total{container=\"m\",namespace=\"n\",pod=\"p\"} 1 5\n",
            "container_memory_working_set_bytes{container=\"m\",namespace=\"n\",pod=\"p\"} 1 5\n",
        ));
        assert_eq!(only_container(&b, "n", "p").start_time_ms, None);
    }

    #[test]
    fn invalid_values_drop_the_point() {
        let mem = "node_memory_working_set_bytes 1.6e+09 5\n";
        for v in ["-1", "NaN", "+Inf", "-Inf", "-0.5"] {
            let b = dec(&format!("node_cpu_usage_seconds_total {v} 5\n{mem}"));
            assert!(b.node.is_none(), "value {v}");
        }
        let b = dec(concat!(
            "container_cpu_usage_seconds_total{container=\"a\",namespace=\"n\",pod=\"p\"} NaN 5\n",
            "container_memory_working_set_bytes{container=\"a\",namespace=\"n\",pod=\"p\"} 10 5\n",
        ));
        assert_eq!(b.pod_count(), 0);
    }

    #[test]
    fn huge_values_saturate() {
        let b =
            dec("node_cpu_usage_seconds_total 1e300 5\nnode_memory_working_set_bytes 1e300 5\n");
        let n = b.node.unwrap();
        assert_eq!(n.cpu.core_ns, u64::MAX);
        assert_eq!(n.memory.bytes, u64::MAX);
    }

    #[test]
    fn container_needs_cpu_and_memory() {
        let cpu =
            "container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\",pod=\"p\"} 4.7 5\n";
        let mem = "container_memory_working_set_bytes{container=\"c\",namespace=\"n\",pod=\"p\"} 1.2e+07 5\n";
        let zcpu =
            "container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\",pod=\"p\"} 0 5\n";
        let zmem =
            "container_memory_working_set_bytes{container=\"c\",namespace=\"n\",pod=\"p\"} 0 5\n";
        assert_eq!(dec(&format!("{cpu}{mem}")).pod_count(), 1);
        assert_eq!(dec(cpu).pod_count(), 0);
        assert_eq!(dec(mem).pod_count(), 0);
        assert_eq!(dec(&format!("{zcpu}{mem}")).pod_count(), 0);
        assert_eq!(dec(&format!("{cpu}{zmem}")).pod_count(), 0);
    }

    #[test]
    fn one_zero_container_drops_the_whole_pod() {
        let b = dec(concat!(
            "container_cpu_usage_seconds_total{container=\"a\",namespace=\"n\",pod=\"p\"} 1 5\n",
            "container_cpu_usage_seconds_total{container=\"b\",namespace=\"n\",pod=\"p\"} 0 5\n",
            "container_cpu_usage_seconds_total{container=\"a\",namespace=\"n\",pod=\"q\"} 1 5\n",
            "container_memory_working_set_bytes{container=\"a\",namespace=\"n\",pod=\"p\"} 10 5\n",
            "container_memory_working_set_bytes{container=\"b\",namespace=\"n\",pod=\"p\"} 10 5\n",
            "container_memory_working_set_bytes{container=\"a\",namespace=\"n\",pod=\"q\"} 10 5\n",
        ));
        assert!(b.pod("n", "p").is_none());
        assert!(b.pod("n", "q").is_some());
        assert_eq!(b.pod_count(), 1);
        assert_eq!(b.container_count(), 1);
    }

    #[test]
    fn a_container_seen_only_in_start_time_drops_the_pod() {
        let b = dec(concat!(
            "container_cpu_usage_seconds_total{container=\"a\",namespace=\"n\",pod=\"p\"} 1 5\n",
            "container_memory_working_set_bytes{container=\"a\",namespace=\"n\",pod=\"p\"} 10 5\n",
            "container_start_time_seconds{container=\"init\",namespace=\"n\",pod=\"p\"} 3 5\n",
        ));
        assert_eq!(b.pod_count(), 0);
    }

    #[test]
    fn containers_are_grouped_and_sorted() {
        let b = dec(concat!(
            "container_cpu_usage_seconds_total{container=\"zeta\",namespace=\"n\",pod=\"p\"} 1 5\n",
            "container_cpu_usage_seconds_total{container=\"alpha\",namespace=\"n\",pod=\"p\"} 2 6\n",
            "container_cpu_usage_seconds_total{container=\"alpha\",namespace=\"m\",pod=\"p\"} 3 7\n",
            "container_memory_working_set_bytes{container=\"alpha\",namespace=\"n\",pod=\"p\"} 20 6\n",
            "container_memory_working_set_bytes{container=\"zeta\",namespace=\"n\",pod=\"p\"} 10 5\n",
            "container_memory_working_set_bytes{container=\"alpha\",namespace=\"m\",pod=\"p\"} 30 7\n",
        ));
        assert_eq!(b.pod_count(), 2);
        let p = b.pod("n", "p").unwrap();
        let got: Vec<(&str, u64, u64)> = p
            .containers()
            .map(|c| (c.name, c.cpu.core_ns, c.memory.bytes))
            .collect();
        assert_eq!(
            got,
            vec![("alpha", 2_000_000_000, 20), ("zeta", 1_000_000_000, 10)]
        );
        assert_eq!(only_container(&b, "m", "p").memory.bytes, 30);
    }

    #[test]
    fn label_order_and_extra_labels_do_not_matter() {
        let b = dec(concat!(
            "container_cpu_usage_seconds_total{pod=\"p\", extra=\"x\",container=\"c\" ,namespace=\"n\",} 1 5\n",
            "container_memory_working_set_bytes{namespace=\"n\",container=\"c\",pod=\"p\"} 10 5\n",
        ));
        assert_eq!(only_container(&b, "n", "p").memory.bytes, 10);
    }

    #[test]
    fn near_misses_of_known_names_take_the_general_path() {
        let b = dec(concat!(
            // A longer name that starts with a known one is another series.
            "container_cpu_usage_seconds_totalx{container=\"c\",namespace=\"n\",pod=\"p\"} 9 5\n",
            "node_cpu_usage_seconds_total_2 9 5\n",
            // Label names that start like the known ones, and known ones written with blanks.
            "container_cpu_usage_seconds_total{containers=\"x\",container =\"c\",namespace= \"n\",pods=\"y\",pod=\"p\"} 1 5\n",
            "container_memory_working_set_bytes{namespace=\"n\",container=\"c\",pod=\"p\"} 10 5\n",
            "node_cpu_usage_seconds_total\t2 5\n",
            "node_memory_working_set_bytes 3 5\n",
        ));
        let c = only_container(&b, "n", "p");
        assert_eq!(
            (c.name, c.cpu.core_ns, c.memory.bytes),
            ("c", 1_000_000_000, 10)
        );
        let node = b.node.expect("node point");
        assert_eq!(node.cpu.core_ns, 2_000_000_000);
        for bad in [
            "container_cpu_usage_seconds_total{container=\"c\"\n",
            "pod_cpu_usage_seconds_total{pod=\"p\"",
            "node_cpu_usage_seconds_total{} 1 x\n",
        ] {
            assert!(decode(bad.as_bytes(), t(1)).is_err(), "{bad:?} must fail");
        }
    }

    #[test]
    fn escaped_label_values() {
        let b = dec(concat!(
            r#"container_cpu_usage_seconds_total{container="a\"b",namespace="n\\s",pod="p\nq"} 1 5"#,
            "\n",
            r#"container_memory_working_set_bytes{container="a\"b",namespace="n\\s",pod="p\nq"} 10 5"#,
            "\n",
            r#"pod_cpu_usage_seconds_total{namespace="}{\"",pod="x,y=\"z\""} 1 5"#,
            "\n",
        ));
        let c = only_container(&b, "n\\s", "p\nq");
        assert_eq!(c.name, "a\"b");
    }

    #[test]
    fn escaped_and_plain_spellings_are_the_same_pod() {
        let b = dec(concat!(
            r#"container_cpu_usage_seconds_total{container="c",namespace="n",pod="p\q"} 1 5"#,
            "\n",
            r#"container_memory_working_set_bytes{container="c",namespace="n",pod="p\\q"} 10 5"#,
            "\n",
        ));
        assert_eq!(only_container(&b, "n", "p\\q").memory.bytes, 10);
    }

    #[test]
    fn container_series_without_identity_labels_is_ignored() {
        let b = dec(concat!(
            "container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\"} 1 5\n",
            "container_memory_working_set_bytes{container=\"c\",pod=\"p\"} 10 5\n",
            "container_cpu_usage_seconds_total 1 5\n",
        ));
        assert_eq!(b.pod_count(), 0);
    }

    #[test]
    fn empty_and_comment_only_payloads() {
        for s in ["", "\n\n", "# HELP x\n# TYPE x gauge\n", "   \n\t\n"] {
            let b = dec(s);
            assert!(b.node.is_none());
            assert_eq!(b.pod_count(), 0);
        }
    }

    #[test]
    fn last_line_without_newline() {
        let b = dec("node_memory_working_set_bytes 10 5\nnode_cpu_usage_seconds_total 1 5");
        assert_eq!(b.node.unwrap().cpu.core_ns, 1_000_000_000);
    }

    #[test]
    fn trailing_garbage_is_an_error_with_its_line() {
        let mut input = FIXTURE.to_vec();
        input.extend_from_slice(b"}}garbage\n");
        let err = decode(&input, t(1)).unwrap_err();
        assert_eq!(err.line, 298);
        assert_eq!(err.kind, DecodeErrorKind::MetricName);

        let cases: &[(&str, DecodeErrorKind)] = &[
            (
                "node_cpu_usage_seconds_total 1 5 6\n",
                DecodeErrorKind::TrailingData,
            ),
            (
                "node_cpu_usage_seconds_total 1 5x\n",
                DecodeErrorKind::Timestamp,
            ),
            (
                "node_cpu_usage_seconds_total 1.2.3\n",
                DecodeErrorKind::Value,
            ),
            (
                "node_cpu_usage_seconds_total\n",
                DecodeErrorKind::MissingValue,
            ),
            (
                "node_cpu_usage_seconds_total{\n",
                DecodeErrorKind::UnterminatedLabelValue,
            ),
            ("x{a=\"b} 1\n", DecodeErrorKind::UnterminatedLabelValue),
            ("x{a=\"b\\\"} 1\n", DecodeErrorKind::UnterminatedLabelValue),
            ("x{a=\"b\\", DecodeErrorKind::UnterminatedLabelValue),
            ("x{a b} 1\n", DecodeErrorKind::LabelSyntax),
            ("x{a=b} 1\n", DecodeErrorKind::LabelSyntax),
            ("x{a=\"b\" c=\"d\"} 1\n", DecodeErrorKind::LabelSyntax),
            ("x{1a=\"b\"} 1\n", DecodeErrorKind::LabelName),
            ("x-y 1\n", DecodeErrorKind::MetricName),
            ("1x 1\n", DecodeErrorKind::MetricName),
            ("x 1 99999999999999999999\n", DecodeErrorKind::Timestamp),
            ("x 1 -\n", DecodeErrorKind::Timestamp),
        ];
        for (input, kind) in cases {
            let err = decode(format!("# ok\n{input}").as_bytes(), t(1)).unwrap_err();
            assert_eq!((err.line, err.kind), (2, *kind), "input {input:?}");
        }
    }

    #[test]
    fn invalid_utf8_in_a_kept_name_is_an_error() {
        let mut input =
            b"container_cpu_usage_seconds_total{container=\"\xff\",namespace=\"n\",pod=\"p\"} 1 5\n"
                .to_vec();
        input.extend_from_slice(
            b"container_memory_working_set_bytes{container=\"\xff\",namespace=\"n\",pod=\"p\"} 1 5\n",
        );
        let err = decode(&input, t(1)).unwrap_err();
        assert_eq!((err.line, err.kind), (1, DecodeErrorKind::InvalidUtf8));
    }

    proptest! {
        /// The inlined comparison agrees with `==` for every length and every differing byte.
        #[test]
        fn bytes_eq_matches_slice_equality(
            a in proptest::collection::vec(any::<u8>(), 0..40),
            flip in any::<proptest::sample::Index>(),
            bit in 0u8..8,
            extra in any::<bool>(),
        ) {
            prop_assert!(bytes_eq(&a, &a.clone()));
            let mut b = a.clone();
            if extra {
                b.push(0);
            } else if !b.is_empty() {
                let i = flip.index(b.len());
                b[i] ^= 1 << bit;
            }
            prop_assert_eq!(bytes_eq(&a, &b), a == b);
        }
    }

    #[test]
    fn float_fast_path_agrees_with_std() {
        for s in [
            "4.710169",
            "1.253376e+07",
            "1.616273408e+09",
            "357.35491",
            "0",
            "-0",
            "0.0",
            ".5",
            "5.",
            "+1.5e-3",
            "1e22",
            "1e23",
            "123456789012345",
            "1234567890123456",
            "9007199254740993",
            "1.633252712e+9",
            "-6.7953645788713455e+09",
            "1E5",
            "0.000001",
        ] {
            let want: f64 = s.parse().unwrap();
            let got = parse_float(s.as_bytes()).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{s}");
        }
        for bad in [
            "", ".", "-", "e5", "1e", "1e+", "1.2.3", "1x", "--1", "1e5000x",
        ] {
            assert_eq!(fast_float(bad.as_bytes()), None, "{bad}");
        }
        assert!(parse_float(b"NaN").unwrap().is_nan());
        assert_eq!(parse_float(b"+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_float(b"-Inf"), Some(f64::NEG_INFINITY));
    }

    #[test]
    fn int_parser_bounds() {
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b"+12"), Some(12));
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"1-2"), None);
    }

    /// Output can never be larger than a fixed multiple of the input.
    fn assert_bounded(input: &[u8], b: &MetricsBatch) {
        assert!(b.container_count() <= input.len() / 8 + 1);
        assert!(b.pod_count() <= b.container_count());
        assert!(
            b.heap_bytes() <= 64 * input.len() + 64,
            "{} for {}",
            b.heap_bytes(),
            input.len()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn int_parse_matches_std(s in "[+-]?[0-9]{1,20}|[+-]?[0-9/:]{1,19}") {
            prop_assert_eq!(parse_int(s.as_bytes()), s.parse::<i64>().ok(), "{}", s);
        }

        #[test]
        fn float_parse_matches_std(s in "[+-]?[0-9]{0,17}(\\.[0-9]{0,17})?([eE][+-]?[0-9]{1,3})?") {
            let want = s.parse::<f64>().ok();
            let got = parse_float(s.as_bytes());
            prop_assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{}", s);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(b) = decode(&input, t(1)) {
                assert_bounded(&input, &b);
            }
        }

        #[test]
        fn arbitrary_lines_of_the_alphabet_never_panic(
            input in proptest::collection::vec(
                proptest::sample::select(b"{}=\",\\ \t\n\r#-+.e0123456789abcnpodtaier_".to_vec()), 0..1024)
        ) {
            if let Ok(b) = decode(&input, t(1)) {
                assert_bounded(&input, &b);
            }
        }

        #[test]
        fn mutated_fixture_never_panics(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..16),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut input = FIXTURE.to_vec();
            for (at, byte) in flips {
                let i = at.index(input.len());
                input[i] = byte;
            }
            if truncate {
                input.truncate(cut.index(input.len()));
            }
            if let Ok(b) = decode(&input, t(1)) {
                assert_bounded(&input, &b);
                prop_assert!(b.pod_count() <= 70 + 16);
            }
        }
    }
}

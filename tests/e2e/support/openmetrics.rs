//! A small reader of OpenMetrics text, strict about what tokend writes:
//! every sample belongs to a family declared by `# TYPE` before it, counter
//! samples end in `_total`, histogram buckets are cumulative and end with
//! `le="+Inf"` equal to `_count`, label values are quoted with `\\`, `\"`
//! and `\n` escaped, and the text ends with `# EOF` and nothing after.

use std::collections::BTreeMap;

/// One sample: its name, labels (unescaped) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample name (`tokend_refreshes_total`).
    pub name: String,
    /// Label name to unescaped value.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// A parsed, validated exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name to its type.
    pub families: BTreeMap<String, String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the one sample named `name` with exactly these labels
    /// among its labels (others may be present); `None` when there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.samples.iter().filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        });
        let first = found.next()?;
        assert!(found.next().is_none(), "more than one {name} {labels:?}");
        Some(first.value)
    }

    /// Every value the label `label` takes in the samples.
    pub fn label_values(&self, label: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .samples
            .iter()
            .filter_map(|s| s.labels.get(label).cloned())
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

/// Parses and validates `text`; the error names the line at fault.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let Some(body) = text.strip_suffix("# EOF\n") else {
        return Err("the text does not end with `# EOF` and a newline".into());
    };
    for (n, line) in body.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line}", n + 1);
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, family) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            match kind {
                "TYPE" => {
                    let t = parts.next().unwrap_or("");
                    if ![
                        "counter",
                        "gauge",
                        "histogram",
                        "info",
                        "stateset",
                        "unknown",
                    ]
                    .contains(&t)
                    {
                        return Err(at(format!("unknown type `{t}`")));
                    }
                    if out
                        .families
                        .insert(family.to_owned(), t.to_owned())
                        .is_some()
                    {
                        return Err(at("family declared twice".into()));
                    }
                }
                "HELP" | "UNIT" => {
                    if !out.families.contains_key(family) {
                        return Err(at("metadata before its TYPE".into()));
                    }
                }
                "EOF" => return Err(at("`# EOF` before the end".into())),
                _ => return Err(at(format!("unknown metadata `{kind}`"))),
            }
            continue;
        }
        let sample = sample(line).map_err(at)?;
        let family_type = family_of(&out.families, &sample.name)
            .ok_or_else(|| at("a sample of no declared family".into()))?;
        if family_type == "counter" && !sample.name.ends_with("_total") {
            return Err(at("a counter sample without `_total`".into()));
        }
        out.samples.push(sample);
    }
    check_histograms(&out)?;
    Ok(out)
}

/// The type of the family `sample` belongs to (its name, or its name less
/// a suffix the type allows).
fn family_of<'a>(families: &'a BTreeMap<String, String>, sample: &str) -> Option<&'a str> {
    if let Some(t) = families.get(sample) {
        return (t != "counter" && t != "histogram").then_some(t.as_str());
    }
    for (suffix, types) in [
        ("_total", &["counter"][..]),
        ("_bucket", &["histogram"]),
        ("_count", &["histogram"]),
        ("_sum", &["histogram"]),
    ] {
        if let Some(t) = sample
            .strip_suffix(suffix)
            .and_then(|family| families.get(family))
            .filter(|t| types.contains(&t.as_str()))
        {
            return Some(t);
        }
    }
    None
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| "no value".to_owned())?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad metric name `{name}`"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find("=\"").ok_or("a label without =\"")?;
            let label = &rest[..eq];
            let (value, after) = quoted(&rest[eq + 2..])?;
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label `{label}` twice"));
            }
            rest = after.strip_prefix(',').unwrap_or(after);
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().map_err(|e| format!("value `{v}`: {e}"))?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The unescaped value of a quoted label value (after its opening quote),
/// and the text after its closing quote.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                other => return Err(format!("bad escape {other:?}")),
            },
            '\n' => return Err("a raw newline in a label value".into()),
            c => value.push(c),
        }
    }
    Err("an unterminated label value".into())
}

/// A series' labels but `le`, sorted.
type LabelSet = Vec<(String, String)>;

/// Each histogram's buckets per label set: cumulative, ending with +Inf,
/// which equals `_count`.
fn check_histograms(out: &Exposition) -> Result<(), String> {
    for (family, t) in &out.families {
        if t != "histogram" {
            continue;
        }
        let mut series: BTreeMap<LabelSet, Vec<(String, f64)>> = BTreeMap::new();
        for s in out
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut key: Vec<_> = s
                .labels
                .clone()
                .into_iter()
                .filter(|(k, _)| k != "le")
                .collect();
            key.sort();
            let le = s.labels.get("le").ok_or("a bucket without le")?.clone();
            series.entry(key).or_default().push((le, s.value));
        }
        for (key, buckets) in series {
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{family} {key:?}: buckets not cumulative"));
            }
            let last = buckets.last().expect("at least one");
            if last.0 != "+Inf" {
                return Err(format!("{family} {key:?}: the last bucket is not +Inf"));
            }
            let labels: Vec<(&str, &str)> =
                key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let count = out.value(&format!("{family}_count"), &labels);
            if count != Some(last.1) {
                return Err(format!(
                    "{family} {key:?}: _count {count:?} is not the +Inf bucket {}",
                    last.1
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn the_reader_unescapes_and_refuses_what_is_not_openmetrics() {
    let good =
        "# TYPE x counter\n# HELP x An x.\nx_total{a=\"q\\\"b\\\\s\\nn\",b=\"2\"} 3\n# EOF\n";
    let parsed = parse(good).unwrap();
    assert_eq!(parsed.samples[0].labels["a"], "q\"b\\s\nn");
    assert_eq!(parsed.value("x_total", &[("b", "2")]), Some(3.0));
    for bad in [
        "# TYPE x counter\nx_total 1\n",            // no EOF
        "# TYPE x counter\nx 1\n# EOF\n",           // counter without _total
        "y 1\n# EOF\n",                             // no family
        "# TYPE x gauge\nx{a=\"b\\t\"} 1\n# EOF\n", // bad escape
        "# TYPE h histogram\nh_bucket{le=\"1.0\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n# EOF\n",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad}");
    }
}

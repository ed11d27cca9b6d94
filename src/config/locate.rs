//! Where each key of a YAML document stands, so that problems found after parsing (a duplicate
//! hostname, a port clash) can still name file:line:column.
//!
//! Not for: parsing values; serde does that. This only walks the parser's events.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser};

/// Line and column (both 1-based) of every path in a document, e.g.
/// `services.grafana.ports.http` or `dns.records[2].name`.
#[derive(Debug, Default)]
pub struct Locations {
    /// Where each mapping key and sequence item starts.
    at: HashMap<String, (usize, usize)>,
    /// Where each value starts (for a key, its value after the colon).
    values: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Locations {
    /// Index a document. A document that does not parse yields what was seen before the error
    /// (serde reports the error itself).
    pub fn index(text: &str) -> Self {
        let mut at = HashMap::new();
        let mut values = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let pos = (span.start.line(), span.start.col() + 1);
            // The path of the node this event starts, if it is a value (not a mapping key).
            let mut value_path = |stack: &mut Vec<Frame>, scalar: Option<&str>| -> Option<String> {
                let path = match stack.last_mut() {
                    None => Some(String::new()),
                    Some(Frame::Map { path, key }) => match key.take() {
                        Some(k) => Some(join(path, &k)),
                        None => {
                            let k = scalar.unwrap_or("?").to_string();
                            at.insert(join(path, &k), pos);
                            *key = Some(k);
                            None
                        }
                    },
                    Some(Frame::Seq { path, next }) => {
                        let p = format!("{path}[{next}]");
                        *next += 1;
                        at.insert(p.clone(), pos);
                        Some(p)
                    }
                };
                if let Some(p) = &path {
                    values.insert(p.clone(), pos);
                }
                path
            };
            match event {
                Event::Scalar(v, ..) => {
                    value_path(&mut stack, Some(&v));
                }
                Event::Alias(..) => {
                    value_path(&mut stack, None);
                }
                Event::MappingStart(..) => {
                    let path = value_path(&mut stack, None).unwrap_or_default();
                    stack.push(Frame::Map { path, key: None });
                }
                Event::SequenceStart(..) => {
                    let path = value_path(&mut stack, None).unwrap_or_default();
                    stack.push(Frame::Seq { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        Locations { at, values }
    }

    /// The position of exactly `path` (its key, or its item in a sequence), if the document
    /// has it.
    pub fn exact(&self, path: &str) -> Option<(usize, usize)> {
        self.at.get(path).copied()
    }

    /// The position of the value of `path`, if the document has it.
    pub fn value(&self, path: &str) -> Option<(usize, usize)> {
        self.values.get(path).copied()
    }

    /// The position of `path`, or of its nearest ancestor that the document has.
    pub fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(pos) = self.at.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_items_and_nearest_ancestors() {
        let text = "name: x\nservices:\n  grafana:\n    ports:\n      http: 3000\ndns:\n  records:\n    - name: a\n      type: A\n    - {name: b, type: A}\n";
        let loc = Locations::index(text);
        assert_eq!(loc.find("name"), Some((1, 1)));
        assert_eq!(loc.find("services.grafana.ports.http"), Some((5, 7)));
        assert_eq!(loc.find("dns.records[1].name"), Some((10, 8)));
        assert_eq!(loc.find("dns.records[0].value"), Some((8, 7)));
        assert_eq!(loc.find("services.grafana.image"), Some((3, 3)));
        assert_eq!(loc.find("cluster.workers"), None);
        assert_eq!(loc.value("services.grafana.ports.http"), Some((5, 13)));
        assert_eq!(loc.value("dns.records[1].type"), Some((10, 23)));
        assert_eq!(loc.exact("services.grafana.image"), None);
    }
}

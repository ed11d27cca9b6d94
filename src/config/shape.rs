//! The shape of a devenv.yaml document, checked against devenv's own JSON Schema before serde
//! reads it: unknown keys, values of the wrong type, names that are not one of the choices,
//! numbers out of range and addresses that do not parse are all found in one pass, each said
//! in devenv's words at its position, and taken out so that the rest of the document can
//! still be read and checked (serde alone stops at the first).
//!
//! Not for: YAML syntax (the parser reports that), nor rules between values (see
//! [`super::validate`]).

use serde_json::{Map, Value};

use super::Config;
use super::validate::{Problem, Problems, shorten};

/// What a value of a JSON Schema `type` is called in messages.
fn kind_name(kind: &str) -> &'static str {
    match kind {
        "boolean" => "true or false",
        "integer" => "a whole number",
        "number" => "a number",
        "string" => "text",
        "array" => "a list",
        "object" => "a mapping (key: value)",
        _ => "a value",
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "true or false",
        Value::Number(n) if n.is_f64() => "a number with a fraction",
        Value::Number(_) => "a whole number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What a string must be (for messages) and the test of it.
type Syntax = (&'static str, fn(&str) -> bool);

/// Strings whose syntax the schema does not state (their Rust types serialize as plain
/// strings): checked here by where they are.
fn string_rule(path: &str) -> Option<Syntax> {
    if path == "network.subnet" {
        return Some(("an IPv4 network such as 172.30.80.0/24", |s| {
            s.parse::<ipnet::Ipv4Net>().is_ok()
        }));
    }
    if path.starts_with("dns.views[") && path.ends_with(".cidr") {
        return Some(("a network such as 172.18.0.0/16", |s| {
            s.parse::<ipnet::IpNet>().is_ok()
        }));
    }
    if path.starts_with("dns.upstreams[") {
        return Some(("an address and port such as 192.0.2.1:53", |s| {
            s.parse::<std::net::SocketAddr>().is_ok()
        }));
    }
    None
}

/// The range of the integer formats schemars writes.
fn range_of(schema: &Map<String, Value>) -> (i128, i128, &'static str) {
    let (lo, hi, hint) = match schema.get("format").and_then(Value::as_str) {
        Some("uint16") => (
            0,
            i128::from(u16::MAX),
            "a port is a whole number from 0 to 65535 (0 leaves it unpublished)",
        ),
        Some("uint8") => (0, i128::from(u8::MAX), "a whole number from 0 to 255"),
        Some("uint32") => (
            0,
            i128::from(u32::MAX),
            "a whole number from 0 to 4294967295",
        ),
        _ => (i128::from(i64::MIN), i128::from(u64::MAX), "a whole number"),
    };
    let lo = schema
        .get("minimum")
        .and_then(Value::as_i64)
        .map_or(lo, |m| lo.max(i128::from(m)));
    let hi = schema
        .get("maximum")
        .and_then(Value::as_u64)
        .map_or(hi, |m| hi.min(i128::from(m)));
    (lo, hi, hint)
}

struct Walk<'a> {
    defs: &'a Map<String, Value>,
    problems: Problems,
    /// The text of a plain scalar as written, by path (YAML reads `0123` as a number).
    written: &'a dyn Fn(&str) -> Option<String>,
}

impl Walk<'_> {
    fn resolve<'s>(defs: &'s Map<String, Value>, schema: &'s Value) -> &'s Value {
        let mut s = schema;
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match r.strip_prefix("#/$defs/").and_then(|name| defs.get(name)) {
                Some(next) => s = next,
                None => break,
            }
        }
        s
    }

    fn problem(&mut self, path: &str, message: String, hint: impl Into<String>, at_value: bool) {
        let mut p = Problem::new(path, message, hint);
        p.at_value = at_value;
        self.problems.push(p);
    }

    /// Check `value` against `schema`; `false` when it cannot be used and must be taken out
    /// (its default then applies, or its list item goes).
    fn check(&mut self, schema: &Value, value: &mut Value, path: &str) -> bool {
        let defs = self.defs;
        let schema = Self::resolve(defs, schema);
        let Some(s) = schema.as_object() else {
            return true;
        };
        // Alternatives (an untagged enum, such as a port as a number or as a mapping): the
        // first that takes the value without a problem; else the problems of the one of the
        // value's own kind.
        if let Some(branches) = s.get("anyOf").and_then(Value::as_array) {
            for branch in branches {
                let mut trial = value.clone();
                let mut sub = Walk {
                    defs,
                    problems: Problems::default(),
                    written: self.written,
                };
                if sub.check(branch, &mut trial, path) && sub.problems.is_empty() {
                    *value = trial;
                    return true;
                }
            }
            let kind = match &*value {
                Value::Object(_) => "object",
                Value::Array(_) => "array",
                Value::Number(_) => "integer",
                Value::Bool(_) => "boolean",
                Value::String(_) => "string",
                Value::Null => "null",
            };
            let own = branches
                .iter()
                .find(|b| Self::resolve(defs, b).get("type").and_then(Value::as_str) == Some(kind));
            return match own {
                Some(branch) => self.check(branch, value, path),
                None => {
                    let first = Self::resolve(defs, &branches[0])
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("value");
                    self.wrong_type(path, first, value);
                    false
                }
            };
        }
        // Choices: `oneOf` of constants (an enum), or `enum`.
        let choices: Option<Vec<String>> = s
            .get("oneOf")
            .and_then(Value::as_array)
            .and_then(|all| {
                all.iter()
                    .map(|c| c.get("const").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .or_else(|| {
                s.get("enum").and_then(Value::as_array).map(|all| {
                    all.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect()
                })
            });
        if let Some(choices) = choices {
            let given = match &*value {
                Value::String(v) => v.clone(),
                other => (self.written)(path).unwrap_or_else(|| other.to_string()),
            };
            if choices.contains(&given) {
                *value = Value::String(given);
                return true;
            }
            let near = choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(&given) || super::validate::similar(c, &given));
            let hint = match near {
                Some(c) => format!("did you mean `{c}`?"),
                None => "use one of the values listed".to_string(),
            };
            self.problem(
                path,
                format!(
                    "`{}` is not one of: {}",
                    shorten(&given),
                    choices.join(", ")
                ),
                hint,
                true,
            );
            return false;
        }
        let kinds: Vec<&str> = match s.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return true,
        };
        if value.is_null() {
            if kinds.contains(&"null") {
                return true;
            }
            // An empty mapping value (`dns:`) means its defaults, as serde reads it.
            if !kinds.contains(&"object") {
                let kind = kinds.first().copied().unwrap_or("value");
                self.problem(
                    path,
                    "has no value".to_string(),
                    format!("give {}, or remove the key", kind_name(kind)),
                    false,
                );
            }
            return false;
        }
        let kind = kinds
            .iter()
            .copied()
            .find(|k| *k != "null")
            .unwrap_or("null");
        match kind {
            "object" => self.object(s, value, path),
            "array" => self.array(s, value, path),
            "integer" => self.integer(s, value, path),
            "boolean" => {
                if value.is_boolean() {
                    return true;
                }
                self.wrong_type(path, "boolean", value);
                false
            }
            "string" => self.string(s, value, path),
            _ => true,
        }
    }

    fn wrong_type(&mut self, path: &str, expected: &str, value: &Value) {
        let shown = match value {
            Value::String(v) => format!("`{}` is ", shorten(v)),
            Value::Number(n) => format!("`{n}` is "),
            Value::Bool(b) => format!("`{b}` is "),
            _ => String::new(),
        };
        self.problem(
            path,
            format!("{shown}{}, not {}", kind_of(value), kind_name(expected)),
            format!(
                "give {}; `devenv config schema` describes every key",
                kind_name(expected)
            ),
            true,
        );
    }

    fn object(&mut self, s: &Map<String, Value>, value: &mut Value, path: &str) -> bool {
        let Value::Object(map) = value else {
            self.wrong_type(path, "object", value);
            return false;
        };
        let empty = Map::new();
        let properties = s
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let additional = s.get("additionalProperties");
        let mut gone = Vec::new();
        for (key, item) in map.iter_mut() {
            let here = join(path, key);
            let ok = match (properties.get(key), additional) {
                (Some(schema), _) => self.check(schema, item, &here),
                (None, Some(schema)) if schema.is_object() => self.check(schema, item, &here),
                _ => {
                    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
                    let near = names.iter().find(|n| super::validate::similar(n, key));
                    let within = if path.is_empty() {
                        "the top level".to_string()
                    } else {
                        format!("`{path}`")
                    };
                    let hint = match near {
                        Some(n) => {
                            format!("did you mean `{n}`? {within} takes: {}", names.join(", "))
                        }
                        None => format!("{within} takes: {}", names.join(", ")),
                    };
                    self.problem(
                        &here,
                        format!("unknown key `{}`", shorten(key)),
                        hint,
                        false,
                    );
                    false
                }
            };
            if !ok {
                gone.push(key.clone());
            }
        }
        for key in &gone {
            map.remove(key);
        }
        let mut complete = true;
        for required in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if gone.iter().any(|g| g == required) {
                // Already reported; the entry cannot be read without it.
                complete = false;
            } else if !map.contains_key(required) {
                let all: Vec<&str> = properties.keys().map(String::as_str).collect();
                self.problem(
                    path,
                    format!("`{required}` is missing"),
                    format!("each entry here needs: {}", all.join(", ")),
                    false,
                );
                complete = false;
            }
        }
        complete
    }

    fn array(&mut self, s: &Map<String, Value>, value: &mut Value, path: &str) -> bool {
        let Value::Array(items) = value else {
            self.wrong_type(path, "array", value);
            return false;
        };
        let Some(schema) = s.get("items") else {
            return true;
        };
        let keep: Vec<bool> = items
            .iter_mut()
            .enumerate()
            .map(|(i, item)| self.check(schema, item, &format!("{path}[{i}]")))
            .collect();
        let mut i = 0;
        items.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        true
    }

    fn integer(&mut self, s: &Map<String, Value>, value: &mut Value, path: &str) -> bool {
        let (lo, hi, hint) = range_of(s);
        let n = match value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from)),
            _ => None,
        };
        match n {
            Some(n) if n >= lo && n <= hi => true,
            Some(n) => {
                self.problem(path, format!("`{n}` is out of range"), hint, true);
                false
            }
            None => {
                let shown = match &*value {
                    Value::String(v) => shorten(v),
                    other => (self.written)(path).unwrap_or_else(|| other.to_string()),
                };
                self.problem(path, format!("`{shown}` is not a whole number"), hint, true);
                false
            }
        }
    }

    fn string(&mut self, s: &Map<String, Value>, value: &mut Value, path: &str) -> bool {
        // A plain scalar YAML reads as a number or boolean is text where text is wanted.
        if let Value::Number(_) | Value::Bool(_) = value {
            let text = (self.written)(path).unwrap_or_else(|| value.to_string());
            *value = Value::String(text);
        }
        let Value::String(text) = value else {
            self.wrong_type(path, "string", value);
            return false;
        };
        let format: Option<Syntax> = match s.get("format").and_then(Value::as_str) {
            Some("ip") => Some(("an IP address", |t| t.parse::<std::net::IpAddr>().is_ok())),
            Some("ipv4") => Some(("an IPv4 address", |t| {
                t.parse::<std::net::Ipv4Addr>().is_ok()
            })),
            Some("ipv6") => Some(("an IPv6 address", |t| {
                t.parse::<std::net::Ipv6Addr>().is_ok()
            })),
            _ => string_rule(path),
        };
        if let Some((what, parses)) = format
            && !parses(text)
        {
            self.problem(
                path,
                format!("`{}` is invalid: not {what}", shorten(text)),
                format!("give {what}"),
                true,
            );
            return false;
        }
        true
    }
}

/// Check `document` against the schema of [`Config`], taking out what cannot be used, and
/// return every problem. `written` gives the text of a plain scalar at a path as written.
pub(super) fn check(document: &mut Value, written: &dyn Fn(&str) -> Option<String>) -> Problems {
    let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or(Value::Null);
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut walk = Walk {
        defs,
        problems: Problems::default(),
        written,
    };
    if !walk.check(&schema, document, "") {
        *document = Value::Object(Map::new());
    }
    walk.problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> (Vec<(String, String)>, Value) {
        let mut v: Value = serde_saphyr::from_str(yaml).unwrap();
        let p = check(&mut v, &|_| None);
        (p.0.into_iter().map(|p| (p.path, p.message)).collect(), v)
    }

    #[test]
    fn every_shape_problem_is_found_in_one_pass_and_taken_out() {
        let (p, v) = problems(
            "nmae: x\nrouting: {mode: splitip}\nservices:\n  grafana:\n    ports: {http: 99999}\n    address: 127.0.0.300\ncluster: {workers: many}\ndns:\n  records:\n    - {name: a, value: b}\n  upstreams: [nowhere]\n",
        );
        let paths: Vec<&str> = p.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "cluster.workers",
                "dns.records[0]",
                "dns.upstreams[0]",
                "nmae",
                "routing.mode",
                "services.grafana.address",
                "services.grafana.ports.http",
            ],
            "{p:?}"
        );
        assert!(p.iter().any(|(_, m)| m == "unknown key `nmae`"));
        assert!(
            p.iter()
                .any(|(_, m)| m == "`splitip` is not one of: split-ip, ports")
        );
        assert!(p.iter().any(|(_, m)| m == "`99999` is out of range"));
        // What remains reads as a Config.
        let config: Config = serde_json::from_value(v).unwrap();
        assert_eq!(config.dns.records.len(), 0);
        assert!(config.services["grafana"].ports.is_empty());
    }

    #[test]
    fn plain_scalars_are_text_where_text_is_wanted() {
        let mut v: Value = serde_saphyr::from_str("name: 0123\n").unwrap();
        let p = check(&mut v, &|path| (path == "name").then(|| "0123".to_string()));
        assert!(p.is_empty());
        assert_eq!(v["name"], "0123");
    }
}

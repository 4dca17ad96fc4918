//! A small, bounded XML tree reader over quick-xml. It refuses DOCTYPE and entity declarations
//! outright (never expands them) and caps depth and node count, so hostile metadata costs little.
//! quick-xml is lenient (it reads control characters, a misplaced declaration, unbound prefixes),
//! so a document it read is then held to XML 1.0 + Namespaces by [`conformance`]: what the
//! archive accepts it must be able to write back as well-formed XML.

use quick_xml::Reader;
use quick_xml::events::Event;

#[derive(Debug, Default, Clone)]
pub struct Node {
    /// Local name (prefix stripped).
    pub name: String,
    pub prefix: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    pub text: String,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    /// Trimmed text of a child element; `None` if absent or empty.
    pub fn text_of(&self, name: &str) -> Option<String> {
        self.child(name)
            .map(|c| c.text.trim().to_string())
            .filter(|t| !t.is_empty())
    }
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

const MAX_DEPTH: usize = 32;
const MAX_NODES: usize = 200_000;

fn split(s: &str) -> (String, String) {
    match s.split_once(':') {
        Some((p, l)) => (p.to_string(), l.to_string()),
        None => (String::new(), s.to_string()),
    }
}

fn resolve_ref(name: &str) -> Option<String> {
    if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse().ok()?
        };
        return char::from_u32(code).map(|c| c.to_string());
    }
    Some(
        match name {
            "amp" => "&",
            "lt" => "<",
            "gt" => ">",
            "apos" => "'",
            "quot" => "\"",
            _ => return None,
        }
        .to_string(),
    )
}

/// Parses a whole document into a tree. Errors are human-readable and never echo document content
/// beyond a byte position; a character XML 1.0 does not allow is reported with its element.
pub fn parse(bytes: &[u8]) -> Result<Node, String> {
    let root = parse_tree(bytes)?;
    forbidden_chars(&root, &mut vec![])?;
    conformance(bytes)?;
    Ok(root)
}

/// XML 1.0's `Char` production: what a document may contain, raw or as a character reference.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The first character outside XML 1.0's `Char` in `s`, if any.
pub fn first_forbidden_char(s: &str) -> Option<char> {
    s.chars().find(|c| !is_xml_char(*c))
}

fn forbidden_chars(node: &Node, path: &mut Vec<String>) -> Result<(), String> {
    path.push(node.name.clone());
    let whole = || path.join("/");
    if let Some(c) = first_forbidden_char(&node.text) {
        return Err(format!(
            "element <{}> contains U+{:04X}, a character XML 1.0 does not allow",
            whole(),
            c as u32
        ));
    }
    for (k, v) in &node.attrs {
        if let Some(c) = first_forbidden_char(v) {
            return Err(format!(
                "attribute {k} of <{}> contains U+{:04X}, a character XML 1.0 does not allow",
                whole(),
                c as u32
            ));
        }
    }
    for c in &node.children {
        forbidden_chars(c, path)?;
    }
    path.pop();
    Ok(())
}

/// Holds a document to XML 1.0 (Fifth Edition) and Namespaces in XML 1.0: roxmltree checks the
/// grammar, characters, references and prefixes; what it lets through is checked here (the
/// declaration's form, `xmlns:p=""`, declaring `xmlns:xmlns`, processing instructions named
/// `xml` in any case).
pub fn conformance(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    declaration(text)?;
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: (MAX_NODES * 4) as u32,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts)
        .map_err(|e| format!("not well-formed XML 1.0 with namespaces: {e}"))?;
    for n in doc.descendants() {
        if let Some(pi) = n.pi()
            && pi.target.eq_ignore_ascii_case("xml")
        {
            return Err(
                "not well-formed XML: a processing instruction may not be named xml".into(),
            );
        }
        if n.is_element() {
            for ns in n.namespaces() {
                match ns.name() {
                    Some("xmlns") => {
                        return Err(format!(
                            "not namespace-well-formed: <{}> declares the reserved prefix xmlns",
                            n.tag_name().name()
                        ));
                    }
                    Some(p) if ns.uri().is_empty() => {
                        return Err(format!(
                            "not namespace-well-formed: <{}> binds prefix {p} to the empty name \
                             (Namespaces in XML 1.0 cannot undeclare a prefix)",
                            n.tag_name().name()
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// `<?xml version="1.0" (encoding="…")? (standalone="yes|no")? ?>` in that order, if present.
fn declaration(text: &str) -> Result<(), String> {
    let Some(rest) = text.strip_prefix("<?xml") else {
        return Ok(());
    };
    if !rest.starts_with([' ', '\t', '\r', '\n']) {
        return Ok(()); // `<?xml-stylesheet …?>` and the like: a processing instruction
    }
    let end = rest
        .find("?>")
        .ok_or("not well-formed XML: the XML declaration is not closed")?;
    let mut attrs = Vec::new();
    let mut s = rest[..end].trim_start();
    while !s.is_empty() {
        let (name, after) = s
            .split_once('=')
            .ok_or("not well-formed XML: a malformed XML declaration")?;
        let after = after.trim_start();
        let q = after
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or("not well-formed XML: a malformed XML declaration")?;
        let close = after[1..]
            .find(q)
            .ok_or("not well-formed XML: a malformed XML declaration")?;
        attrs.push((name.trim().to_string(), after[1..1 + close].to_string()));
        s = after[close + 2..].trim_start();
    }
    let names: Vec<&str> = attrs.iter().map(|(n, _)| n.as_str()).collect();
    let order_ok = matches!(
        names.as_slice(),
        ["version"]
            | ["version", "encoding"]
            | ["version", "standalone"]
            | ["version", "encoding", "standalone"]
    );
    if !order_ok {
        return Err(format!(
            "not well-formed XML: the XML declaration must give version, then encoding, then \
             standalone; found {}",
            names.join(", ")
        ));
    }
    for (n, v) in &attrs {
        match (n.as_str(), v.as_str()) {
            ("version", "1.0") | ("standalone", "yes" | "no") | ("encoding", _) => {}
            ("version", v) => {
                return Err(format!("XML version must be 1.0, declared {v:?}"));
            }
            (_, v) => {
                return Err(format!(
                    "not well-formed XML: standalone must be yes or no, not {v:?}"
                ));
            }
        }
    }
    Ok(())
}

fn parse_tree(bytes: &[u8]) -> Result<Node, String> {
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut count = 0usize;
    let mut buf = Vec::new();
    loop {
        let pos = reader.buffer_position();
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("not well-formed XML near byte {pos}: {e}"))?;
        match ev {
            Event::DocType(_) => {
                return Err("DOCTYPE and entity declarations are not allowed".into());
            }
            Event::Decl(d) => {
                if let Some(Ok(enc)) = d.encoding() {
                    let enc = enc.to_ascii_lowercase();
                    if enc != "utf-8" && enc != "utf8" {
                        return Err(format!("encoding must be UTF-8, declared {enc}"));
                    }
                }
            }
            Event::Start(e) => {
                count += 1;
                if count > MAX_NODES {
                    return Err(format!("more than {MAX_NODES} elements"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
                }
                if root.is_some() {
                    return Err("content after the root element".into());
                }
                let qn = e.name();
                let (prefix, name) = split(AsRef::<str>::as_ref(&qn));
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| format!("bad attribute near byte {pos}: {e}"))?;
                    let key = AsRef::<str>::as_ref(&a.key).to_string();
                    let value = quick_xml::escape::unescape(&a.value)
                        .map_err(|e| format!("bad attribute value near byte {pos}: {e}"))?
                        .to_string();
                    attrs.push((key, value));
                }
                stack.push(Node {
                    name,
                    prefix,
                    attrs,
                    ..Default::default()
                });
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let s: &str = &t;
                match stack.last_mut() {
                    Some(n) => n.text.push_str(s),
                    None if s.trim().is_empty() => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::CData(t) => {
                let s: &str = &t;
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(s);
                }
            }
            Event::GeneralRef(r) => {
                let name = r.to_string();
                let resolved = resolve_ref(&name).ok_or_else(|| {
                    format!("undefined entity reference &{name}; (entities are not allowed)")
                })?;
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err("document ends inside an element".into());
    }
    root.ok_or_else(|| "no root element".to_string())
}

/// The namespace URI bound to the element's prefix, looked up on the element itself.
pub fn namespace_of(node: &Node) -> Option<&str> {
    let key = if node.prefix.is_empty() {
        "xmlns".to_string()
    } else {
        format!("xmlns:{}", node.prefix)
    };
    node.attr(&key)
}

//! XML for the documents guidang writes (archive.xml, registers, forms), through quick-xml's
//! writer — the library that reads metadata.xml — so every text and attribute is escaped by it
//! and what is written reads back unchanged. Documents are built an element at a time into any
//! `io::Write` (a register of a million cases streams to its staging file).

use std::io::Write;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// An XML document being written, indented by two spaces.
pub struct Doc<W: Write> {
    w: Writer<W>,
}

impl Doc<Vec<u8>> {
    /// A document in memory.
    pub fn in_memory() -> std::io::Result<Doc<Vec<u8>>> {
        Doc::new(Vec::with_capacity(4096))
    }

    pub fn into_string(self) -> String {
        let mut v = self.w.into_inner();
        v.push(b'\n');
        String::from_utf8(v).unwrap_or_default()
    }
}

impl<W: Write> Doc<W> {
    /// Starts a document with the XML declaration.
    pub fn new(out: W) -> std::io::Result<Doc<W>> {
        let mut w = Writer::new_with_indent(out, b' ', 2);
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        Ok(Doc { w })
    }

    /// `<name a="…">` (attributes in the order given).
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> std::io::Result<&mut Self> {
        let mut s = BytesStart::new(name);
        for (k, v) in attrs {
            s.push_attribute((*k, *v));
        }
        self.w.write_event(Event::Start(s))?;
        Ok(self)
    }

    /// `</name>`.
    pub fn close(&mut self, name: &str) -> std::io::Result<&mut Self> {
        self.w.write_event(Event::End(BytesEnd::new(name)))?;
        Ok(self)
    }

    /// `<name a="…">text</name>`.
    pub fn text_with(
        &mut self,
        name: &str,
        attrs: &[(&str, &str)],
        text: &str,
    ) -> std::io::Result<&mut Self> {
        let mut s = BytesStart::new(name);
        for (k, v) in attrs {
            s.push_attribute((*k, *v));
        }
        self.w.write_event(Event::Start(s))?;
        self.w.write_event(Event::Text(BytesText::new(text)))?;
        self.w.write_event(Event::End(BytesEnd::new(name)))?;
        Ok(self)
    }

    /// `<name>text</name>`.
    pub fn text(&mut self, name: &str, text: &str) -> std::io::Result<&mut Self> {
        self.text_with(name, &[], text)
    }

    /// `<name a="…"/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> std::io::Result<&mut Self> {
        let mut s = BytesStart::new(name);
        for (k, v) in attrs {
            s.push_attribute((*k, *v));
        }
        self.w.write_event(Event::Empty(s))?;
        Ok(self)
    }

    /// The writer underneath (to flush or hand back).
    pub fn into_inner(self) -> W {
        self.w.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_round_trips_through_the_reader() {
        let raw = r#"泉城 <食品> & "公司""#;
        let mut d = Doc::in_memory().unwrap();
        d.open("root", &[("xmlns", "urn:x"), ("note", raw)])
            .unwrap();
        d.text("name", raw).unwrap();
        d.empty("leaf", &[("v", "1")]).unwrap();
        d.close("root").unwrap();
        let x = d.into_string();
        assert!(
            x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<root"),
            "{x}"
        );
        let inner = x
            .split("<name>")
            .nth(1)
            .and_then(|t| t.split("</name>").next())
            .unwrap();
        assert_eq!(quick_xml::escape::unescape(inner).unwrap(), raw);
        assert!(x.contains("<leaf v=\"1\"/>"), "{x}");
    }
}

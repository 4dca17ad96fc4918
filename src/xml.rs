//! XML text for the documents guidang writes (archive.xml, registers, forms). Escaping is
//! quick-xml's, the same library that reads metadata.xml, so what is written reads back unchanged.

/// Text or attribute content with `& < > " '` escaped.
pub fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_reads_back() {
        let raw = r#"泉城 <食品> & "公司" 'x'"#;
        let e = super::esc(raw);
        assert!(!e.contains('<') && !e.contains('"'), "{e}");
        assert_eq!(quick_xml::escape::unescape(&e).unwrap(), raw);
    }
}

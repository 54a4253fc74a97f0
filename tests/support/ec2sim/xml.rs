//! The EC2 XML documents: a small writer that escapes every text node, the response envelope
//! and the error document, in the shapes aws-sdk-ec2 and botocore parse.

use std::fmt::{Display, Write};

const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// The body of one response, written element by element.
#[derive(Default)]
pub struct Xml(String);

impl Xml {
    /// `<name>value</name>`, the value escaped.
    pub fn leaf(&mut self, name: &str, value: impl Display) -> &mut Xml {
        let _ = write!(self.0, "<{name}>");
        escape_into(&mut self.0, &value.to_string());
        let _ = write!(self.0, "</{name}>");
        self
    }

    /// A leaf only when there is a value: EC2 leaves absent fields out.
    pub fn opt_leaf(&mut self, name: &str, value: Option<impl Display>) -> &mut Xml {
        if let Some(value) = value {
            self.leaf(name, value);
        }
        self
    }

    /// `<name>…</name>` with children written by `body`.
    pub fn node(&mut self, name: &str, body: impl FnOnce(&mut Xml)) -> &mut Xml {
        let _ = write!(self.0, "<{name}>");
        body(self);
        let _ = write!(self.0, "</{name}>");
        self
    }

    /// An EC2 list: `<name><item>…</item>…</name>`.
    pub fn items<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Xml, T),
    ) -> &mut Xml {
        self.node(name, |x| {
            for item in items {
                x.node("item", |x| each(x, item));
            }
        })
    }
}

/// `<ActionResponse xmlns=…><requestId>…</requestId>{body}</ActionResponse>`.
pub fn response(action: &str, request_id: &str, body: &Xml) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{NAMESPACE}\">\
         <requestId>{request_id}</requestId>{}</{action}Response>",
        body.0
    )
}

pub fn error(code: &str, message: &str, request_id: &str) -> String {
    let mut errors = Xml::default();
    errors.node("Errors", |x| {
        x.node("Error", |x| {
            x.leaf("Code", code).leaf("Message", message);
        });
    });
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>{}<RequestID>{request_id}</RequestID></Response>",
        errors.0
    )
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

use super::*;

fn success_with(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
  <cas:authenticationSuccess>
    {body}
  </cas:authenticationSuccess>
</cas:serviceResponse>"#
    )
}

#[test]
fn a_cas3_success_with_multi_valued_and_structured_attributes() {
    let xml = success_with(
        r#"<cas:user>jdupont</cas:user>
    <cas:attributes>
      <cas:mail>jeanne.dupont@example.org</cas:mail>
      <cas:ENTPersonProfils>National_ENS</cas:ENTPersonProfils>
      <cas:ENTPersonProfils>National_DOC</cas:ENTPersonProfils>
      <cas:displayName>Jeanne &amp; Dupont</cas:displayName>
      <cas:structure>
        <cas:UAI>0750001A</cas:UAI>
        <cas:name><![CDATA[Lycée <Jules> Ferry]]></cas:name>
      </cas:structure>
      <cas:structure>
        <cas:UAI>0750002B</cas:UAI>
      </cas:structure>
      <cas:isFromNewLogin>true</cas:isFromNewLogin>
    </cas:attributes>"#,
    );
    let success = parse(xml.as_bytes()).unwrap().unwrap();
    assert_eq!(success.user, "jdupont");
    let a = &success.attributes;
    assert_eq!(a["mail"], vec!["jeanne.dupont@example.org"]);
    assert_eq!(a["ENTPersonProfils"], vec!["National_ENS", "National_DOC"]);
    assert_eq!(a["displayName"], vec!["Jeanne & Dupont"]);
    assert_eq!(a["structure.UAI"], vec!["0750001A", "0750002B"]);
    assert_eq!(a["structure.name"], vec!["Lycée <Jules> Ferry"]);
    assert_eq!(a["isFromNewLogin"], vec!["true"]);
}

#[test]
fn a_cas2_success_and_the_name_value_attribute_form() {
    let xml = success_with(
        r#"<cas:user>u1</cas:user>
    <cas:attributes>
      <cas:attribute name="uid" value="u1"/>
      <cas:attribute name="groups" value="a"/>
      <cas:attribute name="groups" value="b"/>
    </cas:attributes>"#,
    );
    let success = parse(xml.as_bytes()).unwrap().unwrap();
    assert_eq!(success.attributes["groups"], vec!["a", "b"]);
    let bare = success_with("<cas:user>u2</cas:user>");
    assert_eq!(parse(bare.as_bytes()).unwrap().unwrap().user, "u2");
}

#[test]
fn failures_are_reported_with_their_code() {
    let xml = r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
  <cas:authenticationFailure code="INVALID_TICKET">Ticket ST-1 not recognized</cas:authenticationFailure>
</cas:serviceResponse>"#;
    assert_eq!(
        parse(xml.as_bytes()).unwrap(),
        Err(CasFailure {
            code: "INVALID_TICKET".into(),
            message: "Ticket ST-1 not recognized".into()
        })
    );
}

#[test]
fn success_markup_injected_into_a_failure_message_is_still_a_failure() {
    // A server echoing a crafted ticket into its failure message.
    let xml = r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
  <cas:authenticationFailure code="INVALID_TICKET">Ticket ST-x<cas:authenticationSuccess><cas:user>admin</cas:user></cas:authenticationSuccess> not recognized</cas:authenticationFailure>
</cas:serviceResponse>"#;
    let answer = parse(xml.as_bytes()).unwrap();
    assert!(matches!(answer, Err(CasFailure { ref code, .. }) if code == "INVALID_TICKET"));
}

#[test]
fn untrustworthy_answers_are_refused() {
    let cases = [
        (
            "DOCTYPE with an entity",
            r#"<!DOCTYPE x [<!ENTITY u "admin">]><cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>&u;</cas:user></cas:authenticationSuccess></cas:serviceResponse>"#.to_owned(),
        ),
        (
            "two successes",
            r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>a</cas:user></cas:authenticationSuccess><cas:authenticationSuccess><cas:user>admin</cas:user></cas:authenticationSuccess></cas:serviceResponse>"#.to_owned(),
        ),
        (
            "failure then success",
            r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationFailure code="INVALID_TICKET">x</cas:authenticationFailure><cas:authenticationSuccess><cas:user>admin</cas:user></cas:authenticationSuccess></cas:serviceResponse>"#.to_owned(),
        ),
        ("two users", success_with("<cas:user>a</cas:user><cas:user>admin</cas:user>")),
        ("no user", success_with("<cas:attributes/>")),
        ("empty user", success_with("<cas:user> </cas:user>")),
        (
            "proxy ticket",
            success_with("<cas:user>a</cas:user><cas:proxies><cas:proxy>https://x</cas:proxy></cas:proxies>"),
        ),
        (
            "wrong namespace",
            r#"<cas:serviceResponse xmlns:cas="http://evil.example/cas"><cas:authenticationSuccess><cas:user>a</cas:user></cas:authenticationSuccess></cas:serviceResponse>"#.to_owned(),
        ),
        ("not XML", "<html><body>CAS is down</body></html>".to_owned()),
        ("truncated", success_with("<cas:user>a</cas:user>")[..60].to_owned()),
        ("empty", String::new()),
        (
            "too deep",
            success_with(&format!(
                "<cas:user>a</cas:user><cas:attributes>{}{}</cas:attributes>",
                "<x>".repeat(20),
                "</x>".repeat(20)
            )),
        ),
        (
            "too many elements",
            success_with(&format!(
                "<cas:user>a</cas:user><cas:attributes>{}</cas:attributes>",
                "<cas:v>1</cas:v>".repeat(3000)
            )),
        ),
    ];
    for (name, xml) in cases {
        assert!(parse(xml.as_bytes()).is_err(), "{name} accepted");
    }
}

/// A DOCTYPE is refused for being one, not for what it declares: a plain one before an
/// otherwise valid success answer (which quick-xml would read without complaint).
#[test]
fn a_plain_doctype_before_a_valid_success_is_refused() {
    let valid = success_with("<cas:user>jdupont</cas:user>");
    assert_eq!(parse(valid.as_bytes()).unwrap().unwrap().user, "jdupont");
    let declaration = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
    for doctype in [
        "<!DOCTYPE x>",
        "<!DOCTYPE cas:serviceResponse>",
        r#"<!DOCTYPE cas:serviceResponse SYSTEM "http://www.yale.edu/tp/cas.dtd">"#,
    ] {
        let with_doctype = valid.replacen(declaration, &format!("{declaration}{doctype}"), 1);
        assert!(with_doctype.contains(doctype));
        assert_eq!(
            parse(with_doctype.as_bytes()),
            Err(AnswerError::Xml(XmlError::DocType)),
            "{doctype}"
        );
        // Without the XML declaration too.
        let bare = with_doctype.replacen(declaration, "", 1);
        assert_eq!(
            parse(bare.as_bytes()),
            Err(AnswerError::Xml(XmlError::DocType)),
            "{doctype}"
        );
    }
}

#[test]
fn values_keep_cr_lf_for_the_gateway_to_neutralize() {
    // The parser returns what the server sent; header encoding removes control characters.
    let xml = success_with("<cas:user>a</cas:user><cas:attributes><cas:x>a&#13;&#10;X-Injected: 1</cas:x></cas:attributes>");
    let success = parse(xml.as_bytes()).unwrap().unwrap();
    assert_eq!(success.attributes["x"], vec!["a\r\nX-Injected: 1"]);
}

use super::*;

fn query(xml: &str) -> Result<Query, Error> {
    let el: Element = xml.parse().expect("xml");
    parse_query(&el, 50)
}

#[test]
fn form_rsm_and_flip_page() {
    let q = query(
        "<query xmlns='urn:xmpp:mam:2' queryid='q1'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
         <field var='start'><value>2026-01-01T00:00:00Z</value></field>\
         <field var='end'><value>2026-01-01T00:00:01.5Z</value></field>\
         <field var='with'><value>abc</value></field>\
         <field var='after-id'><value>a1</value></field>\
         <field var='before-id'><value>b1</value></field>\
         <field var='ids'><value>i1</value><value>i2</value></field>\
         </x>\
         <set xmlns='http://jabber.org/protocol/rsm'><max>500</max><before/></set>\
         <flip-page/></query>",
    )
    .expect("valid");
    assert_eq!(q.queryid.as_deref(), Some("q1"));
    let a = &q.archive;
    assert_eq!(a.start, Some(1_767_225_600_000_000));
    assert_eq!(a.end, Some(1_767_225_601_500_000));
    assert_eq!(a.with.as_deref(), Some("abc"));
    assert_eq!(a.after_id.as_deref(), Some("a1"));
    assert_eq!(a.before_id.as_deref(), Some("b1"));
    assert_eq!(a.ids, ["i1", "i2"]);
    assert_eq!(a.max, 50, "capped");
    assert_eq!(a.paging, Paging::Last);
    assert!(a.flip_page);
}

#[test]
fn defaults_and_cursors() {
    let q = query("<query xmlns='urn:xmpp:mam:2'/>").expect("valid");
    assert_eq!(q.archive, ArchiveQuery::new(DEFAULT_MAX));
    let q = query(
        "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>5</max><after>x</after></set></query>",
    )
    .expect("valid");
    assert_eq!(q.archive.paging, Paging::After("x".into()));
    assert_eq!(q.archive.max, 5);
    let q = query(
        "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><before>y</before></set></query>",
    )
    .expect("valid");
    assert_eq!(q.archive.paging, Paging::Before("y".into()));
}

#[test]
fn bad_queries() {
    let e = query("<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'><field var='FORM_TYPE'><value>urn:other</value></field></x></query>")
        .expect_err("form type");
    assert_eq!(e.condition, "bad-request");
    let e = query("<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'><field var='start'><value>yesterday</value></field></x></query>")
        .expect_err("time");
    assert_eq!(e.condition, "bad-request");
    let e = query("<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'><field var='color'><value>red</value></field></x></query>")
        .expect_err("field");
    assert_eq!(e.condition, "feature-not-implemented");
    let e = query("<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>many</max></set></query>")
        .expect_err("max");
    assert_eq!(e.condition, "bad-request");
}

#[test]
fn real_jids_are_searched_only_by_who_sees_them() {
    let mut q = query("<query xmlns='urn:xmpp:mam:2'/>").expect("valid");
    q.archive.with = Some("juliet@capulet.example".into());
    let hidden = Access { sees_jids: false };
    assert!(check_query(&q, hidden).is_err());
    assert!(check_query(&q, Access { sees_jids: true }).is_ok());
    q.archive.with = Some("0f3a9c".into());
    assert!(check_query(&q, hidden).is_ok());
}

fn archived(real_jid: Option<&str>) -> ArchivedMessage {
    ArchivedMessage {
        room: "r".into(),
        id: "id1".into(),
        timestamp: 1_767_225_600_123_456,
        nick: "n".into(),
        real_jid: real_jid.map(str::to_owned),
        occupant_id: None,
        xml: "<message xmlns='jabber:component:accept' from='r@muc.example/n' type='groupchat' id='m1'>\
              <body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'><item jid='forged@x'/></x>\
              <stanza-id xmlns='urn:xmpp:sid:0' id='id1' by='r@muc.example'/></message>"
            .into(),
        retracted: false,
    }
}

#[test]
fn results_forward_the_message_as_clients_see_it() {
    let m = archived(Some("juliet@capulet.example"));
    let hidden = result_message(
        "r@muc.example",
        "a@b/c",
        Some("q"),
        &m,
        Access { sees_jids: false },
    )
    .expect("result");
    assert_eq!(hidden.attr("from"), Some("r@muc.example"));
    assert_eq!(hidden.attr("to"), Some("a@b/c"));
    let result = hidden.get_child("result", NS_MAM).expect("result");
    assert_eq!(result.attr("queryid"), Some("q"));
    assert_eq!(result.attr("id"), Some("id1"));
    let fwd = result
        .get_child("forwarded", NS_FORWARD)
        .expect("forwarded");
    let delay = fwd.get_child("delay", NS_DELAY).expect("delay");
    assert_eq!(delay.attr("stamp"), Some("2026-01-01T00:00:00.123456Z"));
    assert_eq!(delay.attr("from"), Some("r@muc.example"));
    let inner = fwd
        .get_child("message", NS_CLIENT)
        .expect("jabber:client message");
    assert_eq!(inner.attr("from"), Some("r@muc.example/n"));
    assert_eq!(
        inner
            .get_child("body", NS_CLIENT)
            .map(Element::text)
            .as_deref(),
        Some("hi")
    );
    assert!(
        !inner.has_child("x", NS_MUC_USER),
        "nothing claimed by the sender"
    );
    let shown = result_message(
        "r@muc.example",
        "a@b/c",
        None,
        &m,
        Access { sees_jids: true },
    )
    .expect("result");
    let inner = shown
        .get_child("result", NS_MAM)
        .and_then(|r| r.get_child("forwarded", NS_FORWARD))
        .and_then(|f| f.get_child("message", NS_CLIENT))
        .expect("message");
    let item = inner
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child("item", NS_MUC_USER))
        .expect("item");
    assert_eq!(item.attr("jid"), Some("juliet@capulet.example"));
}

#[test]
fn fin_and_metadata() {
    let page = ArchivePage {
        messages: vec![archived(None)],
        first: Some("id1".into()),
        last: Some("id1".into()),
        count: 7,
        complete: false,
    };
    let fin = fin(&page, &Paging::Last);
    assert_eq!(fin.attr("complete"), None);
    let set = fin.get_child("set", NS_RSM).expect("set");
    let first = set.get_child("first", NS_RSM).expect("first");
    assert_eq!(first.attr("index"), Some("6"));
    assert_eq!(first.text(), "id1");
    assert_eq!(
        set.get_child("count", NS_RSM).map(Element::text).as_deref(),
        Some("7")
    );
    let meta = metadata(Some(&ArchiveBounds {
        first: ("a".into(), 0),
        last: ("b".into(), 1_000_000),
    }));
    assert_eq!(
        meta.get_child("start", NS_MAM).and_then(|s| s.attr("id")),
        Some("a")
    );
    assert_eq!(
        meta.get_child("end", NS_MAM)
            .and_then(|s| s.attr("timestamp")),
        Some("1970-01-01T00:00:01.000000Z")
    );
    assert_eq!(metadata(None).children().count(), 0);
}

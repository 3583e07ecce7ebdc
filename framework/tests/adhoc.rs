//! XEP-0050 ad-hoc commands through the mock server: list, execute,
//! multi-stage with prev, complete, cancel, sessions and access.

use satellite::adhoc::{Access, AdhocCommand, CommandSession, Step};
use satellite::testing::{self, MockLink, stanza};
use satellite::xmpp::data_forms::{DataForm, DataFormType, Field, FieldType};
use satellite::xmpp::stanza_error::DefinedCondition;
use satellite::{Context, Element, HandlerError, assert_stanza_error, async_trait};

const USER: &str = "user@test/phone";
const NS: &str = "http://jabber.org/protocol/commands";

/// Two stages: a name, then a greeting style; completes with a note.
struct Wizard;

#[async_trait]
impl AdhocCommand for Wizard {
    fn node(&self) -> &str {
        "wizard"
    }
    fn name(&self) -> &str {
        "Two-step wizard"
    }
    async fn execute(&self, _cx: &Context, s: &mut CommandSession) -> Result<Step, HandlerError> {
        let form = |var: &str| {
            DataForm::new(
                DataFormType::Form,
                "urn:test:wizard",
                vec![Field::new(var, FieldType::TextSingle)],
            )
        };
        match s.stage {
            0 => Ok(Step::form_then_more(form("name"))),
            1 => Ok(Step::form(form("style"))),
            _ => Ok(Step::done().note_info(format!(
                "{} {}",
                s.value("style").unwrap_or("hello"),
                s.value("name").unwrap_or("?")
            ))),
        }
    }
}

struct Secret;

#[async_trait]
impl AdhocCommand for Secret {
    fn node(&self) -> &str {
        "secret"
    }
    fn name(&self) -> &str {
        "Admins only"
    }
    fn access(&self) -> Access {
        Access::Admins
    }
    async fn execute(&self, _cx: &Context, _s: &mut CommandSession) -> Result<Step, HandlerError> {
        Ok(Step::done())
    }
}

async fn spawn() -> (MockLink, testing::Running) {
    testing::spawn_with(
        |mut c| {
            c.admins = vec!["boss@test".parse().expect("jid")];
            c
        },
        |b| b.command(Wizard).command(Secret),
    )
    .await
}

fn command(from: &str, id: &str, inner: &str) -> Element {
    stanza(&format!(
        "<iq type='set' id='{id}' from='{from}' to='svc.test'>{inner}</iq>"
    ))
}

fn cmd(reply: &Element) -> &Element {
    reply
        .get_child("command", NS)
        .unwrap_or_else(|| panic!("no command in {reply:?}"))
}

fn submit(node: &str, sid: &str, action: &str, var: &str, value: &str) -> String {
    format!(
        "<command xmlns='{NS}' node='{node}' sessionid='{sid}' action='{action}'><x xmlns='jabber:x:data' type='submit'><field var='{var}'><value>{value}</value></field></x></command>"
    )
}

#[tokio::test]
async fn lists_commands_by_access() {
    let (mut server, component) = spawn().await;
    let items = |reply: Element| -> Vec<String> {
        reply
            .get_child("query", "http://jabber.org/protocol/disco#items")
            .expect("items")
            .children()
            .filter_map(|c| c.attr("node").map(str::to_owned))
            .collect()
    };
    let q = |from: &str, id: &str| {
        stanza(&format!(
            "<iq type='get' id='{id}' from='{from}' to='svc.test'><query xmlns='http://jabber.org/protocol/disco#items' node='{NS}'/></iq>"
        ))
    };
    assert_eq!(items(server.iq(q(USER, "l1")).await), ["wizard"]);
    assert_eq!(
        items(server.iq(q("boss@test/desk", "l2")).await),
        ["wizard", "secret"]
    );
    let info = server
        .iq(stanza(&format!("<iq type='get' id='l3' from='{USER}' to='svc.test'><query xmlns='http://jabber.org/protocol/disco#info' node='wizard'/></iq>")))
        .await;
    let query = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("info");
    assert_eq!(query.attr("node"), Some("wizard"));
    assert!(query.children().any(|c| c.attr("var") == Some(NS)));
    let reply = server
        .iq(command(
            USER,
            "l4",
            &format!("<command xmlns='{NS}' node='secret' action='execute'/>"),
        ))
        .await;
    assert_stanza_error!(reply, DefinedCondition::Forbidden);
    let reply = server
        .iq(command(
            "boss@test/desk",
            "l5",
            &format!("<command xmlns='{NS}' node='secret'/>"),
        ))
        .await;
    assert_eq!(cmd(&reply).attr("status"), Some("completed"));
    component.stop().await;
}

#[tokio::test]
async fn multi_stage_with_prev_and_complete() {
    let (mut server, component) = spawn().await;
    let reply = server
        .iq(command(
            USER,
            "w1",
            &format!("<command xmlns='{NS}' node='wizard' action='execute'/>"),
        ))
        .await;
    let c = cmd(&reply);
    assert_eq!(c.attr("status"), Some("executing"));
    let sid = c.attr("sessionid").expect("sessionid").to_owned();
    let actions = c.get_child("actions", NS).expect("actions");
    assert_eq!(actions.attr("execute"), Some("next"));
    assert!(actions.has_child("next", NS) && !actions.has_child("prev", NS));
    assert!(c.has_child("x", "jabber:x:data"));

    let reply = server
        .iq(command(
            USER,
            "w2",
            &submit("wizard", &sid, "next", "name", "Ada"),
        ))
        .await;
    let actions = cmd(&reply).get_child("actions", NS).expect("actions");
    assert_eq!(actions.attr("execute"), Some("complete"));
    assert!(actions.has_child("prev", NS) && actions.has_child("complete", NS));

    let reply = server
        .iq(command(
            USER,
            "w3",
            &format!("<command xmlns='{NS}' node='wizard' sessionid='{sid}' action='prev'/>"),
        ))
        .await;
    let actions = cmd(&reply).get_child("actions", NS).expect("actions");
    assert_eq!(actions.attr("execute"), Some("next"), "back at stage 0");

    let reply = server
        .iq(command(
            USER,
            "w4",
            &submit("wizard", &sid, "next", "name", "Grace"),
        ))
        .await;
    assert_eq!(cmd(&reply).attr("status"), Some("executing"));
    let reply = server
        .iq(command(
            USER,
            "w5",
            &submit("wizard", &sid, "complete", "style", "hi"),
        ))
        .await;
    let c = cmd(&reply);
    assert_eq!(c.attr("status"), Some("completed"));
    assert_eq!(
        c.get_child("note", NS).map(|n| n.text()),
        Some("hi Grace".into())
    );

    // The session is over.
    let reply = server
        .iq(command(
            USER,
            "w6",
            &submit("wizard", &sid, "next", "name", "x"),
        ))
        .await;
    assert_stanza_error!(reply, DefinedCondition::BadRequest);
    assert!(
        reply
            .get_child("error", "jabber:component:accept")
            .expect("error")
            .has_child("bad-sessionid", NS)
    );
    component.stop().await;
}

#[tokio::test]
async fn cancel_and_foreign_sessions() {
    let (mut server, component) = spawn().await;
    let reply = server
        .iq(command(
            USER,
            "c1",
            &format!("<command xmlns='{NS}' node='wizard'/>"),
        ))
        .await;
    let sid = cmd(&reply).attr("sessionid").expect("sessionid").to_owned();
    // Another user cannot continue it.
    let reply = server
        .iq(command(
            "mallory@test/x",
            "c2",
            &submit("wizard", &sid, "next", "name", "M"),
        ))
        .await;
    assert_stanza_error!(reply, DefinedCondition::BadRequest);
    let reply = server
        .iq(command(
            USER,
            "c3",
            &format!("<command xmlns='{NS}' node='wizard' sessionid='{sid}' action='cancel'/>"),
        ))
        .await;
    assert_eq!(cmd(&reply).attr("status"), Some("canceled"));
    let reply = server
        .iq(command(
            USER,
            "c4",
            &format!("<command xmlns='{NS}' node='wizard' action='dance'/>"),
        ))
        .await;
    assert_stanza_error!(reply, DefinedCondition::BadRequest);
    assert!(
        reply
            .get_child("error", "jabber:component:accept")
            .expect("error")
            .has_child("malformed-action", NS)
    );
    let reply = server
        .iq(command(
            USER,
            "c5",
            &format!("<command xmlns='{NS}' node='nope'/>"),
        ))
        .await;
    assert_stanza_error!(reply, DefinedCondition::ItemNotFound);
    component.stop().await;
}

#[tokio::test]
async fn sessions_are_limited_per_account_not_per_resource() {
    let (mut server, component) = spawn().await;
    let start = |from: String, id: String| {
        command(
            &from,
            &id,
            &format!("<command xmlns='{NS}' node='wizard' action='execute'/>"),
        )
    };
    // Eight sessions of one account, each from another resource.
    for i in 0..8 {
        let reply = server
            .iq(start(format!("many@test/r{i}"), format!("m{i}")))
            .await;
        assert_eq!(cmd(&reply).attr("status"), Some("executing"), "session {i}");
    }
    let reply = server
        .iq(start("many@test/r8".to_owned(), "m8".to_owned()))
        .await;
    assert_stanza_error!(reply, DefinedCondition::ResourceConstraint);
    // Another account is not held up by that one.
    let reply = server.iq(start(USER.to_owned(), "u1".to_owned())).await;
    assert_eq!(cmd(&reply).attr("status"), Some("executing"));
    component.stop().await;
}

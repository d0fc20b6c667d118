//! The real district dialogues in `dialogues/`: they load without errors and every
//! dialogue test an operator wrote passes.

use std::path::Path;

use sportello::dialogue::{self, testing};

fn real() -> (
    sportello::dialogue::Bundle,
    Vec<sportello::diagnostics::Diagnostic>,
) {
    dialogue::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogues"))
}

#[test]
fn the_district_dialogues_have_no_errors() {
    let (_, diagnostics) = real();
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn every_dialogue_test_passes() {
    let (bundle, _) = real();
    assert!(
        bundle.tests.len() >= 25,
        "only {} dialogue tests",
        bundle.tests.len()
    );
    let failures: Vec<String> = testing::run_all(&bundle)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_menu_covers_every_area_and_the_network_is_complete() {
    let (bundle, _) = real();
    for flow in [
        "benvenuto",
        "emergenza",
        "volontario",
        "digitale",
        "casa",
        "poverta",
        "lavoro",
        "anziani",
        "famiglia",
        "conflitti",
        "salute",
        "stranieri",
        "disabilita",
        "ascolto",
    ] {
        assert!(bundle.flow(flow).is_some(), "no flow {flow}");
    }
    for organisation in [
        "caritas-vimodrone",
        "centro-mediazione-vimodrone",
        "cisl-fnp-pioltello",
        "garibaldini-pioltello",
        "cgil-pioltello",
        "aleimar-melzo",
        "caritas-pioltello-segrate",
        "cisl-milano-metropolitana",
        "appha-pioltello",
        "servizi-sociali-pioltello",
        "servizi-sociali-segrate",
        "servizi-sociali-vimodrone",
        "servizi-sociali-rodano",
        "ufficio-di-piano",
    ] {
        assert!(
            bundle.directory.organisation(organisation).is_some(),
            "no organisation {organisation}"
        );
    }
    // Nothing is invented: every phone, email, address, opening hour and service known
    // says where it was read and when (DISTRICT.md, "Public facts found so far").
    for organisation in &bundle.directory.organisations {
        for fact in &organisation.facts {
            assert!(
                fact.source.is_some() && fact.checked.is_some(),
                "{} has no source or date",
                fact.what
            );
        }
    }
    let vimodrone = bundle
        .directory
        .organisation("servizi-sociali-vimodrone")
        .unwrap();
    assert_eq!(
        vimodrone.contacts.email.as_deref(),
        Some("servizisociali@comune.vimodrone.milano.it")
    );
    assert!(vimodrone.locations[0].hours.is_some());
    // Every need a citizen can choose has somewhere to go.
    for flow in &bundle.flows {
        for step in &flow.steps {
            if let sportello::dialogue::Action::Choices { choices, .. } = &step.action {
                for choice in choices {
                    for (name, value) in &choice.set {
                        if name == "need" {
                            assert!(
                                bundle.directory.offers(value, None),
                                "nobody offers {value} ({}.{})",
                                flow.id,
                                step.id
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn emergency_numbers_are_given_at_once_even_before_consent() {
    let (bundle, _) = real();
    let mut conversation = testing::Conversation::new(&bundle, None, dialogue::default_test_now());
    let reply = conversation.say("mi picchia, ho paura");
    for number in ["112", "1522"] {
        assert!(reply.contains(number), "{reply}");
    }
}

use super::*;
use crate::services::identity::did_key::did_key;

const NOW: u64 = 1_790_000_000;

fn key(n: u8) -> NodeKey {
    NodeKey::from_seed(&[n; 32])
}

fn did(n: u8) -> String {
    did_key(&key(n).public_key())
}

fn members(entries: &[(String, String)]) -> View {
    View::Map(
        entries
            .iter()
            .map(|(k, v)| (k.clone(), View::Lww(Some(v.clone()))))
            .collect(),
    )
}

fn load(members_view: &View, revoked: &[String]) -> Registry {
    let mut sorted = revoked.to_vec();
    sorted.sort();
    Registry::load([did(1)], Some(members_view), Some(&View::Set(sorted)), NOW)
}

#[test]
fn admins_enroll_and_strangers_do_not() {
    let roles = vec!["medic".to_owned()];
    let by_admin = enrollment(&key(1), &did(5), &roles, NOW).unwrap();
    let by_stranger = enrollment(&key(2), &did(6), &roles, NOW).unwrap();
    // An enrollment filed under another DID than its subject.
    let misfiled = enrollment(&key(1), &did(7), &roles, NOW).unwrap();
    let view = members(&[
        (did(5), by_admin),
        (did(6), by_stranger),
        (did(8), misfiled),
        (did(9), "not a token".into()),
    ]);
    let registry = load(&view, &[]);
    let member = registry.member(&did(5)).unwrap();
    assert_eq!(member.roles, roles);
    assert_eq!(member.enrolled_by, did(1));
    assert_eq!(member.enrolled_at, NOW);
    for n in [6, 7, 8, 9] {
        assert_eq!(
            registry.member(&did(n)),
            Err(RegistryError::NotMember(did(n)))
        );
    }
    assert_eq!(registry.ignored(), 3);
    assert!(registry.is_admin(&did(1)) && !registry.is_admin(&did(5)));
}

#[test]
fn revocations_count_only_from_those_entitled() {
    let roles = vec!["member".to_owned()];
    let view = members(&[
        (did(5), enrollment(&key(1), &did(5), &roles, NOW).unwrap()),
        (did(6), enrollment(&key(1), &did(6), &roles, NOW).unwrap()),
        (did(7), enrollment(&key(1), &did(7), &roles, NOW).unwrap()),
    ]);
    let revocations = [
        revocation(&key(1), &did(5), "lost device", NOW),
        // Member 6 revokes itself.
        revocation(&key(6), &did(6), "", NOW),
        // A stranger tries to revoke member 7: ignored.
        revocation(&key(2), &did(7), "", NOW),
        // A credential revoked by its issuer (3), which the caller names.
        revocation(&key(3), "urn:uuid:cred-1", "", NOW),
    ];
    let registry = load(&view, &revocations);
    assert_eq!(
        registry.member(&did(5)),
        Err(RegistryError::Revoked {
            target: did(5),
            by: did(1),
            reason: "lost device".into()
        })
    );
    assert!(matches!(
        registry.member(&did(6)),
        Err(RegistryError::Revoked { .. })
    ));
    assert!(registry.member(&did(7)).is_ok());
    assert!(registry.revoked("urn:uuid:cred-1", &[]).is_none());
    assert!(registry.revoked("urn:uuid:cred-1", &[did(3)]).is_some());
    assert_eq!(registry.revocations().count(), 4);
    let message = revoked_error(registry.revoked(&did(5), &[]).unwrap()).to_string();
    assert!(message.contains("lost device"), "{message}");
}

#[test]
fn bad_enrollments_are_not_signed() {
    assert_eq!(
        enrollment(&key(1), "did:web:example.org", &["a".into()], NOW),
        Err(RegistryError::NotDid("did:web:example.org".into()))
    );
    assert_eq!(
        enrollment(&key(1), &did(2), &[], NOW),
        Err(RegistryError::Roles)
    );
    assert_eq!(
        enrollment(&key(1), &did(2), &["x".repeat(65)], NOW),
        Err(RegistryError::Roles)
    );
}

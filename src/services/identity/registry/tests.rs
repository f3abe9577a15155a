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
    Registry::load(
        [did(1)],
        Some(members_view),
        None,
        Some(&View::Set(sorted)),
        NOW,
    )
}

#[test]
fn admins_enroll_and_strangers_do_not() {
    let roles = vec!["medic".to_owned()];
    let by_admin = enrollment(&key(1), &did(5), &roles, NOW, 1).unwrap();
    let by_stranger = enrollment(&key(2), &did(6), &roles, NOW, 1).unwrap();
    // An enrollment filed under another DID than its subject.
    let misfiled = enrollment(&key(1), &did(7), &roles, NOW, 1).unwrap();
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
        (
            did(5),
            enrollment(&key(1), &did(5), &roles, NOW, 1).unwrap(),
        ),
        (
            did(6),
            enrollment(&key(1), &did(6), &roles, NOW, 1).unwrap(),
        ),
        (
            did(7),
            enrollment(&key(1), &did(7), &roles, NOW, 1).unwrap(),
        ),
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
        enrollment(&key(1), "did:web:example.org", &["a".into()], NOW, 1),
        Err(RegistryError::NotDid("did:web:example.org".into()))
    );
    assert_eq!(
        enrollment(&key(1), &did(2), &[], NOW, 1),
        Err(RegistryError::Roles)
    );
    assert_eq!(
        enrollment(&key(1), &did(2), &["x".repeat(65)], NOW, 1),
        Err(RegistryError::Roles)
    );
}

/// An admin's enrollment filed as a set member under its DID (the `enrollments` document).
fn filed(entries: &[(String, &str)]) -> View {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (did, token) in entries {
        map.entry(did.clone())
            .or_default()
            .push((*token).to_owned());
    }
    View::Map(
        map.into_iter()
            .map(|(k, mut v)| {
                v.sort();
                (k, View::Set(v))
            })
            .collect(),
    )
}

#[test]
fn an_older_enrollment_filed_again_never_replaces_a_newer_one() {
    let medic = enrollment(&key(1), &did(5), &["medic".into()], NOW, 1).unwrap();
    let dropped = enrollment(&key(1), &did(5), &["visitor".into()], NOW + 60, 2).unwrap();
    // The newer enrollment (fewer roles) counts, whatever the order; the older one filed again,
    // or in the legacy document, changes nothing.
    let legacy = members(&[(did(5), medic.clone())]);
    for view in [
        filed(&[(did(5), &medic), (did(5), &dropped)]),
        filed(&[(did(5), &dropped), (did(5), &medic)]),
    ] {
        let registry = Registry::load([did(1)], Some(&legacy), Some(&view), None, NOW + 120);
        assert_eq!(registry.member(&did(5)).unwrap().roles, ["visitor"]);
        assert_eq!(registry.version_of(&did(5)), 2);
    }
}

#[test]
fn replicas_store_only_what_can_count() {
    let admin = key(1).public_key();
    let is_admin = |k: &PublicKey| *k == admin;
    let single = |t: &str| View::Set(vec![t.to_owned()]);
    // Enrollments: by an admin, for the DID they are filed under.
    let good = enrollment(&key(1), &did(5), &["medic".into()], NOW, 1).unwrap();
    let stranger = enrollment(&key(2), &did(5), &["medic".into()], NOW, 1).unwrap();
    assert_eq!(
        admit(ENROLLMENTS, &filed(&[(did(5), &good)]), &is_admin),
        Ok(())
    );
    assert!(admit(ENROLLMENTS, &filed(&[(did(6), &good)]), &is_admin).is_err());
    assert!(admit(ENROLLMENTS, &filed(&[(did(5), &stranger)]), &is_admin).is_err());
    assert!(admit(ENROLLMENTS, &single(&good), &is_admin).is_err());
    // Revocations: by an admin, by the DID itself, or by an issuer of the delegation revoked.
    assert_eq!(
        admit(
            REVOCATIONS,
            &single(&revocation(&key(1), &did(7), "", NOW)),
            &is_admin
        ),
        Ok(())
    );
    assert_eq!(
        admit(
            REVOCATIONS,
            &single(&revocation(&key(7), &did(7), "", NOW)),
            &is_admin
        ),
        Ok(())
    );
    assert!(
        admit(
            REVOCATIONS,
            &single(&revocation(&key(2), &did(7), "", NOW)),
            &is_admin
        )
        .is_err()
    );
    assert!(
        admit(
            REVOCATIONS,
            &single(&revocation(&key(2), "urn:uuid:x", "", NOW)),
            &is_admin
        )
        .is_err()
    );
    let delegation = crate::services::identity::ucan::delegate(
        &key(3),
        &did(4),
        &[crate::services::identity::ucan::Capability {
            with: "crdt://village/*".into(),
            can: "crdt/write".into(),
        }],
        NOW,
        NOW + 3600,
        &[],
    );
    let id = crate::services::identity::ucan::token_id(&delegation);
    let by_issuer = revocation_of(&key(3), &delegation, "", NOW);
    assert_eq!(admit(REVOCATIONS, &single(&by_issuer), &is_admin), Ok(()));
    let by_other = revocation_of(&key(2), &delegation, "", NOW);
    assert!(admit(REVOCATIONS, &single(&by_other), &is_admin).is_err());
    // Naming a token by id without carrying it proves nothing.
    assert!(
        admit(
            REVOCATIONS,
            &single(&revocation(&key(3), &id, "", NOW)),
            &is_admin
        )
        .is_err()
    );
    assert!(admit(REVOCATIONS, &single("junk"), &is_admin).is_err());
}

//! Access changes from anywhere: any string decodes as an access change or is refused, and any
//! sequence of access changes (authors, numbers, access points and contents from the input) leaves
//! an access log that never panics and decides the same whatever order the changes came in.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshrouter::services::crdt::access::op::Proof;
use meshrouter::services::crdt::access::{
    AccessLog, AccessOp, Level, NamespaceClass, OpEntry, Subject, TrustRoot,
};
use meshrouter::services::crdt::change::AccessPoint;
use meshrouter::services::crdt::context::Actor;

fn actor(n: u8) -> Actor {
    Actor([n % 5 + 1; 32])
}

fn level(n: u8) -> Level {
    [
        Level::None,
        Level::Pull,
        Level::Read,
        Level::Write,
        Level::Manage,
    ][usize::from(n % 5)]
}

/// Entries from 8-byte records: author, seq, two point entries, op kind, subject, level, keep.
fn entries(data: &[u8]) -> Vec<OpEntry> {
    data.chunks_exact(8)
        .take(64)
        .map(|r| {
            let mut point = AccessPoint::new();
            for (a, n) in [(r[2], r[3]), (r[4] >> 4, r[4] & 0x0f)] {
                if n % 8 > 0 {
                    point.insert(actor(a), u64::from(n % 8));
                }
            }
            let subject = if r[6] & 0x80 != 0 {
                Subject::Anyone
            } else {
                Subject::Key(actor(r[6]))
            };
            let op = if r[5] & 3 == 2 {
                // A redemption of a token from `r[6]`'s key (its shape is checked on decode).
                AccessOp::Redeem {
                    holder: actor(r[0]),
                    level: level(r[7]).max(Level::Pull),
                    issuer: actor(r[6]),
                    proof: Box::new(Proof {
                        token: String::new(),
                        capabilities: Vec::new(),
                        not_before: 0,
                        expires: u64::MAX,
                    }),
                }
            } else if r[5] & 1 == 0 {
                AccessOp::Grant {
                    subject,
                    level: level(r[7]).max(Level::Pull),
                }
            } else {
                let keep = [("_access".to_owned(), u64::from(r[7] >> 4))].into();
                AccessOp::Revoke {
                    subject,
                    level: level(r[7]).min(Level::Write),
                    keep,
                }
            };
            OpEntry {
                author: actor(r[0]),
                seq: u64::from(r[1] % 8) + 1,
                point,
                op,
            }
        })
        .collect()
}

fn settle(log: &mut AccessLog, entries: &[OpEntry]) {
    let mut waiting: Vec<&OpEntry> = entries.iter().collect();
    loop {
        let before = waiting.len();
        waiting.retain(|e| {
            log.insert_op((*e).clone()) == meshrouter::services::crdt::access::Admission::Pending
        });
        if waiting.len() == before {
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = AccessOp::decode(text, 1);
    }
    let ops = entries(data);
    let class = NamespaceClass::Owned(actor(0));
    let mut one = AccessLog::new(class.clone(), TrustRoot::default());
    let mut two = AccessLog::new(class, TrustRoot::default());
    settle(&mut one, &ops);
    let reversed: Vec<OpEntry> = ops.iter().rev().cloned().collect();
    settle(&mut two, &reversed);
    // Two different entries under one number are first-come, so the logs may hold different sets;
    // holding the same set, they must decide the same.
    let held =
        |log: &AccessLog| -> Vec<OpEntry> { log.entries().map(|(e, _)| e.clone()).collect() };
    if held(&one) == held(&two) {
        for (e, counts) in one.entries() {
            assert_eq!(two.verdict(e.author, e.seq), Some(counts), "{e:?}");
        }
    }
    for n in 0..5 {
        let _ = one.level_now(actor(n), "d");
    }
});

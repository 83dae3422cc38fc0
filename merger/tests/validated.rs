//! The validation proof (`Footprint::checked` → `Program::validated`): the build validates each
//! program once and hands the proof to the merge, which then only parses it. A proof covers
//! exactly the bytes it was made for: with any other bytes the merge validates as usual, so an
//! invalid program is refused whatever proof it carries.

use merger::{merge, Footprint, MergeError, MergeOptions, Program, Unsupported};
use runtime_check::cases::fixture_programs;

/// A WASI command that parses but does not validate: `_start` returns nothing, its body
/// leaves an i32 on the stack.
const INVALID: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") i32.const 1))"#;

fn program<'a>(name: &str, wasm: &'a [u8], validated: Option<merger::Validated>) -> Program<'a> {
    Program {
        name: name.into(),
        wasm,
        aliases: vec![],
        validated,
    }
}

#[test]
fn a_validation_proof_covers_only_the_bytes_it_was_made_for() {
    let fixtures = fixture_programs();
    let (_, good) = &fixtures[0];
    let opts = MergeOptions::default();
    let (footprint, proof) = Footprint::checked(good, &opts).unwrap();
    assert_eq!(footprint, Footprint::of_with(good, &opts).unwrap());
    let proof = proof.expect("a program small enough to parse has a proof");

    // With its own bytes, the proof is accepted and the merge is the same as without it.
    let with = merge(&[program("good", good, Some(proof))], &opts).unwrap();
    let without = merge(&[program("good", good, None)], &opts).unwrap();
    assert_eq!(with.wasm, without.wasm);

    // Bytes that do not validate are refused, with the proof of other bytes as without one.
    let invalid = wat::parse_str(INVALID).unwrap();
    assert!(matches!(
        Footprint::checked(&invalid, &opts),
        Err(Unsupported::Invalid(_))
    ));
    for validated in [Some(proof), None] {
        match merge(&[program("bad", &invalid, validated)], &opts) {
            Err(MergeError::Unsupported {
                reason: Unsupported::Invalid(_),
                entry,
            }) => assert_eq!(entry, "bad"),
            other => panic!("{validated:?}: {other:?}"),
        }
    }
}
